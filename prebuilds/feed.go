package prebuilds

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
)

// ChangeKind says what a Change is about.
type ChangeKind string

// Change kinds.
const (
	// ChangeClaimed: a prebuild of the preset was claimed (or a claim
	// missed): its pool is short.
	ChangeClaimed ChangeKind = "claimed"
	// ChangeJobCompleted: a build of an instance in the preset's pool, or
	// the first build of one created for the preset, reached a terminal
	// status.
	ChangeJobCompleted ChangeKind = "job_completed"
	// ChangeBuildStarted: a build started through the control plane
	// (CreateInstance, StartBuild) on an instance of the preset's pool.
	ChangeBuildStarted ChangeKind = "build_started"
	// ChangeInstanceRemoved: an admin removed an instance of the preset's
	// pool (RemoveInstance).
	ChangeInstanceRemoved ChangeKind = "instance_removed"
	// ChangePresetWritten: the preset, or its template, was written
	// (desired count, schedules, TTL, invalidation, reset, activation,
	// deprecation, deletion).
	ChangePresetWritten ChangeKind = "preset_written"
	// ChangeResync: anything may have changed (a feed connection dropped
	// and changes may have been lost, or reconciliation was resumed):
	// PresetID is uuid.Nil, and the Reconciler runs a full pass.
	ChangeResync ChangeKind = "resync"
)

// Change names a preset whose plan may have changed since a write
// committed.
type Change struct {
	PresetID uuid.UUID
	Kind     ChangeKind
}

// ChangeFeed is an optional Store capability: a stream of the changes that
// may alter a preset's plan, delivered after the write that made them
// committed. With one, a running Reconciler refills a claimed pool within
// milliseconds (a targeted pass) instead of at its next Interval tick.
type ChangeFeed interface {
	// Changes streams the changes committed after it returns until ctx is
	// done; then the channel is closed. A feed may coalesce several changes
	// of a preset into one. A feed that may have lost changes (a dropped
	// connection) sends ChangeResync as soon as it delivers again; the
	// Reconciler answers it with a full pass.
	Changes(ctx context.Context) (<-chan Change, error)
}

// DefaultTriggerDelay is how long the Reconciler gathers changes before a
// targeted pass.
const DefaultTriggerDelay = 25 * time.Millisecond

// targetedRetries bounds the retries of a targeted pass that found the
// lock held; the next full pass is the backstop.
const targetedRetries = 8

// follow consumes the store's change feed for Run: changed presets are
// gathered for Config.TriggerDelay, then reconciled by a targeted pass; a
// resync makes it a full pass. A preset whose plan backed off is made
// dirty when its backoff ends, so that it refills then rather than at the
// next Interval tick: the end of a backoff is a change no store writes. A
// pass that finds the lock held keeps the presets dirty and retries after
// TriggerDelay, at most targetedRetries times. It returns when ctx is done
// or the feed closes.
func (r *Reconciler) follow(ctx context.Context, feed ChangeFeed) {
	changes, err := feed.Changes(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.ErrorContext(ctx, "change feed unavailable, reconciling on the interval only", slog.Any("error", err))
		}
		return
	}
	dirty := map[uuid.UUID]struct{}{}
	full := false
	retries := 0
	// fullLog is the shard pass log read by the first attempt of a full
	// pass, reused by its retries until a new change comes in.
	var fullLog *passLog
	var timer, wakeTimer *quartz.Timer
	var fire, wake <-chan time.Time
	arm := func() {
		timer = r.cfg.Clock.NewTimer(r.cfg.TriggerDelay, "prebuilds", "trigger")
		fire = timer.C
	}
	// rewake makes the presets whose backoff has ended dirty, and sets the
	// wake-up timer to the next end.
	rewake := func() {
		now := r.cfg.Clock.Now()
		ended, next := r.wakes.due(now)
		for _, id := range ended {
			dirty[id] = struct{}{}
		}
		if len(ended) > 0 {
			fullLog = nil // like a change: a pass that began before cannot stand for it
		}
		if len(ended) > 0 && fire == nil {
			arm()
		}
		if wakeTimer != nil {
			wakeTimer.Stop()
			wakeTimer, wake = nil, nil
		}
		if !next.IsZero() {
			// Creation resumes strictly after the end (microsecond
			// precision, as stores keep time).
			wakeTimer = r.cfg.Clock.NewTimer(next.Sub(now)+time.Microsecond, "prebuilds", "backoff")
			wake = wakeTimer.C
		}
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		if wakeTimer != nil {
			wakeTimer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wakes.kick:
			rewake()
		case <-wake:
			rewake()
		case c, ok := <-changes:
			if !ok {
				return
			}
			fullLog = nil // a pass that began before this change cannot stand for it
			if c.Kind == ChangeResync {
				full = true
			} else {
				dirty[c.PresetID] = struct{}{}
			}
			if fire == nil {
				arm()
			}
		case <-fire:
			fire = nil
			var stats Stats
			var err error
			if full {
				if fullLog == nil {
					fullLog = r.passLog(ctx)
				}
				stats, err = r.reconcile(ctx, nil, fullLog)
			} else {
				ids := make([]uuid.UUID, 0, len(dirty))
				for id := range dirty {
					ids = append(ids, id)
				}
				stats, err = r.ReconcilePresets(ctx, ids)
			}
			if err != nil && ctx.Err() == nil {
				r.log.ErrorContext(ctx, "triggered reconciliation pass failed", slog.Any("error", err), slog.Bool("full", full))
			}
			// Retry while every shard the pass reached was held elsewhere;
			// shards other replicas passed since the first attempt began
			// (fresh) need no retry.
			if !stats.Acquired && err == nil && ctx.Err() == nil && stats.ShardsFresh < max(r.cfg.Shards, 1) && retries < targetedRetries {
				retries++
				arm()
				continue
			}
			clear(dirty)
			full, retries, fullLog = false, 0, nil
		}
	}
}

// ReconcilePresets runs a targeted pass: ReconcileAll restricted to the
// given presets (their snapshot rows only, SnapshotParams.Presets), under
// the same lock, with the same status transitions, plan and execution. It
// does not update the per-preset metrics, which full passes refresh. Run
// calls it for the presets its store's ChangeFeed names.
func (r *Reconciler) ReconcilePresets(ctx context.Context, presets []uuid.UUID) (Stats, error) {
	ids := sortedIDs(presets)
	if ids == nil {
		ids = []uuid.UUID{} // no presets: a targeted pass over nothing, not a full pass
	}
	stats, err := r.reconcile(ctx, ids, nil)
	stats.Targeted = true
	if stats.Acquired && err == nil {
		r.metrics.targeted.Inc()
	}
	return stats, err
}

// backoffWakes are the instants at which presets' backoffs end, as the
// passes of a Reconciler whose Run follows a change feed planned them.
type backoffWakes struct {
	mu sync.Mutex
	on bool
	at map[uuid.UUID]time.Time
	// kick wakes the follower when an end was added or moved.
	kick chan struct{}
}

func newBackoffWakes() *backoffWakes {
	return &backoffWakes{at: map[uuid.UUID]time.Time{}, kick: make(chan struct{}, 1)}
}

// follow turns recording on (true) or off.
func (w *backoffWakes) follow(on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.on = on
	clear(w.at)
}

// note records the backoff end of every plan of a pass that backs off, and
// forgets the presets it planned without one.
func (w *backoffWakes) note(pp PassPlan) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.on {
		return
	}
	changed := false
	for _, p := range pp.Plans {
		until, ok := backoffEnd(p)
		switch {
		case ok && !w.at[p.PresetID].Equal(until):
			w.at[p.PresetID] = until
			changed = true
		case !ok:
			delete(w.at, p.PresetID)
		}
	}
	if changed {
		select {
		case w.kick <- struct{}{}:
		default: // a kick is pending already
		}
	}
}

// due removes and returns the presets whose backoff ended before now, and
// returns the earliest end still to come (zero when none).
func (w *backoffWakes) due(now time.Time) (ended []uuid.UUID, next time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, until := range w.at {
		if now.After(until) {
			ended = append(ended, id)
			delete(w.at, id)
		} else if next.IsZero() || until.Before(next) {
			next = until
		}
	}
	return ended, next
}

// backoffEnd is the end of the plan's backoff, if it backs off.
func backoffEnd(p Plan) (time.Time, bool) {
	for _, a := range p.Actions {
		if a.Kind == ActionBackoff && !a.Until.IsZero() {
			return a.Until, true
		}
	}
	return time.Time{}, false
}
