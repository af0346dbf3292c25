package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/memstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Targeted passes. Reconciler.Run follows a store's change feed on a
// goroutine of its own and arms a timer per burst of changes; the
// simulation does the same on its one goroutine, in simulated time:
//
//   - After the actors of a step have written (claims, job reports, the
//     operator, a roll-out), it drains memstore's feed synchronously
//     (drainFeed) into the trigger: the changed presets, and the instant
//     of the pending targeted pass, -trigger-delay after the first change
//     of the burst.
//   - When simulated time reaches that instant, between steps or at one,
//     it plans and runs ReconcilePresets over the changed presets
//     (targetedPass); changes drained meanwhile join the same pass, as they
//     join Run's.
//
// memstore delivers changes from a goroutine of its own, so "drained" needs
// a barrier: after each step the simulation writes to a hidden,
// unconfigured preset whose ID, uuid.Max, sorts after every other
// (barrierPresetID), and reads the feed until that change arrives. memstore
// hands a subscriber its changes in commit order, burst by burst, each
// burst in preset-ID order; a change committed before the barrier is
// therefore delivered before it, and nothing drained depends on goroutine
// scheduling. The preset has no desired count, so it is in no snapshot
// and no pass ever sees it.

// The hidden template, version and preset of the barrier. Fixed IDs, so
// that the seeded UUID stream the fleet and the Reconciler draw from is
// the same with and without targeted passes.
var (
	barrierTemplateID = uuid.MustParse("00000000-0000-4000-8000-0000000000b1")
	barrierVersionID  = uuid.MustParse("00000000-0000-4000-8000-0000000000b2")
	barrierPresetID   = uuid.Max
)

// setUpBarrier creates the barrier's template, version (never activated)
// and preset (no desired count).
func (s *sim) setUpBarrier(ctx context.Context) error {
	if err := s.store.CreateTemplate(ctx, prebuilds.Template{
		ID: barrierTemplateID, OrganizationID: organization.id, OrganizationName: organization.name, Name: "prebuildsim-feed-barrier",
	}); err != nil {
		return fmt.Errorf("feed barrier: %w", err)
	}
	if err := s.store.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{
		ID: barrierVersionID, TemplateID: barrierTemplateID, Name: "barrier", CreatedAt: s.clock.Now(),
	}); err != nil {
		return fmt.Errorf("feed barrier: %w", err)
	}
	if err := s.store.UpsertPreset(ctx, prebuilds.Preset{ID: barrierPresetID, TemplateVersionID: barrierVersionID, Name: "barrier"}); err != nil {
		return fmt.Errorf("feed barrier: %w", err)
	}
	return nil
}

// subscribe starts following memstore's change feed. The returned function
// stops it and waits until the feed's goroutine is gone.
func (s *sim) subscribe(ctx context.Context) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	ch, err := s.store.Changes(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("change feed: %w", err)
	}
	s.feed = ch
	return func() {
		cancel()
		for range ch { // memstore closes the channel when its goroutine ends
		}
		s.feed = nil
	}, nil
}

// trigger is the state of the targeted passes: what changed since the
// last one, and when the next one runs.
type trigger struct {
	dirty map[uuid.UUID]struct{}
	// full is set by a resync: the pass is a full one.
	full bool
	// at is the instant of the pending pass; zero when none is pending.
	at time.Time
}

func (t *trigger) pending() bool { return !t.at.IsZero() }

// drainFeed reads every change committed so far into the trigger (see the
// barrier above). The first change of a burst sets the pass -trigger-delay
// later.
func (s *sim) drainFeed(ctx context.Context, now time.Time) error {
	if s.feed == nil {
		return nil
	}
	if err := s.store.InvalidatePreset(ctx, barrierPresetID, now); err != nil {
		return fmt.Errorf("change feed barrier at %s: %w", offset(now, s.opts.start), err)
	}
	for {
		select {
		case c, ok := <-s.feed:
			if !ok {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("simulation interrupted at %s: %w", offset(now, s.opts.start), err)
				}
				return fmt.Errorf("change feed closed at %s", offset(now, s.opts.start))
			}
			if c.PresetID == barrierPresetID {
				return nil
			}
			// The feed may coalesce a preset's changes or not, depending on
			// its goroutine: count the presets it made dirty, which does not.
			if c.Kind == prebuilds.ChangeResync {
				s.trigger.full = true
			} else if _, ok := s.trigger.dirty[c.PresetID]; !ok {
				s.trigger.dirty[c.PresetID] = struct{}{}
				s.dirtied++
			}
			if !s.trigger.pending() {
				s.trigger.at = now.Add(s.rec.Config().TriggerDelay)
			}
		case <-ctx.Done():
			return fmt.Errorf("simulation interrupted at %s: %w", offset(now, s.opts.start), ctx.Err())
		}
	}
}

// targetedPass runs the pending pass: ReconcilePresets over the changed
// presets (a full pass after a resync), observed like a full pass through
// its plan (a lock-free snapshot of the same presets at the same instant,
// planned as the pass will plan it). It prints no progress line.
func (s *sim) targetedPass(ctx context.Context, now time.Time) error {
	ids := make([]uuid.UUID, 0, len(s.trigger.dirty))
	for id := range s.trigger.dirty {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, prebuilds.CompareUUID)
	full := s.trigger.full
	clear(s.trigger.dirty)
	s.trigger.full, s.trigger.at = false, time.Time{}

	cfg := s.rec.Config()
	params := cfg.SnapshotParams(now)
	if !full {
		params.Presets = ids
	}
	snap, err := s.store.Snapshot(ctx, params)
	if err != nil {
		return fmt.Errorf("targeted pass at %s: snapshot: %w", offset(now, s.opts.start), err)
	}
	pp := prebuilds.PlanAll(snap, cfg.PlanConfig())
	for i, v := range pp.Views {
		s.observe(v, pp.Plans[i], now)
	}
	s.noteWakes(pp)
	var stats prebuilds.Stats
	if full {
		stats, err = s.rec.ReconcileAll(ctx)
	} else {
		stats, err = s.rec.ReconcilePresets(ctx, ids)
	}
	if err != nil {
		return fmt.Errorf("targeted pass at %s: %w", offset(now, s.opts.start), err)
	}
	if !stats.Acquired {
		return errors.New("targeted pass: lock held elsewhere, but the simulation is the only reconciler")
	}
	s.targetedPasses++
	s.tally(stats)
	s.log.DebugContext(ctx, "sim: targeted pass", slog.Int("presets", len(ids)), slog.Bool("full", full),
		slog.Int("created", stats.Created), slog.Int("deleted", stats.Deleted))
	return nil
}

// simStore is the Reconciler's view of the memstore: every method is
// memstore's, and CreatePrebuilds also reports each committed create, so
// that the simulation can time a claim's refill.
type simStore struct {
	*memstore.Store
	created func(p prebuilds.CreatePrebuildsParams, n int)
}

func (s simStore) CreatePrebuilds(ctx context.Context, p prebuilds.CreatePrebuildsParams) ([]prebuilds.Job, error) {
	jobs, err := s.Store.CreatePrebuilds(ctx, p)
	if err == nil {
		s.created(p, len(jobs))
	}
	return jobs, err
}

// noteWakes records, with targeted passes, the end of every backoff a pass
// planned and forgets the presets it planned without one, as Run does.
func (s *sim) noteWakes(pp prebuilds.PassPlan) {
	if s.feed == nil {
		return
	}
	if s.wakes == nil {
		s.wakes = map[uuid.UUID]time.Time{}
	}
	for _, p := range pp.Plans {
		end := time.Time{}
		for _, a := range p.Actions {
			if a.Kind == prebuilds.ActionBackoff && !a.Until.IsZero() {
				end = a.Until
			}
		}
		if end.IsZero() {
			delete(s.wakes, p.PresetID)
		} else {
			s.wakes[p.PresetID] = end
		}
	}
}

// nextWake is the instant Run wakes for the earliest backoff end: a
// microsecond after it, when creation may resume.
func (s *sim) nextWake() (time.Time, bool) {
	var next time.Time
	for _, end := range s.wakes {
		if next.IsZero() || end.Before(next) {
			next = end
		}
	}
	return next.Add(time.Microsecond), !next.IsZero()
}

// wakeUp makes the presets whose backoff ended before now dirty and, if no
// targeted pass is pending, sets one -trigger-delay later, as Run's
// follower does.
func (s *sim) wakeUp(now time.Time) {
	for id, end := range s.wakes {
		if !now.After(end) {
			continue
		}
		delete(s.wakes, id)
		s.trigger.dirty[id] = struct{}{}
		if !s.trigger.pending() {
			s.trigger.at = now.Add(s.rec.Config().TriggerDelay)
		}
	}
}
