package prebuilds

import (
	"context"
	"log/slog"
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
// resync makes it a full pass. A pass that finds the lock held keeps the
// presets dirty and retries after TriggerDelay, at most targetedRetries
// times. It returns when ctx is done or the feed closes.
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
	var timer *quartz.Timer
	var fire <-chan time.Time
	arm := func() {
		timer = r.cfg.Clock.NewTimer(r.cfg.TriggerDelay, "prebuilds", "trigger")
		fire = timer.C
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-changes:
			if !ok {
				return
			}
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
				stats, err = r.ReconcileAll(ctx)
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
			if !stats.Acquired && err == nil && retries < targetedRetries {
				retries++
				arm()
				continue
			}
			clear(dirty)
			full, retries = false, 0
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
	stats, err := r.reconcile(ctx, ids)
	stats.Targeted = true
	if stats.Acquired && err == nil {
		r.metrics.targeted.Inc()
	}
	return stats, err
}
