package memstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Snapshot implements prebuilds.Store: one consistent read without the
// reconciliation lock. It takes the state mutex for reading only, so it
// waits for no reconciliation pass, only for the write in progress, and a
// pass holding the lock is never kept from acting by it.
func (s *Store) Snapshot(_ context.Context, p prebuilds.SnapshotParams) (*prebuilds.GlobalSnapshot, error) {
	if err := checkParams(p); err != nil {
		return nil, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.snapshot(p), nil
}

// reader is the SnapshotReader handed to WithReconciliationLock's fn.
type reader struct {
	s *Store
	// held is true while the reconciliation lock is held; guarded by s.mu.
	held bool
}

// Snapshot implements prebuilds.SnapshotReader. It reads the whole state in
// one critical section of the state mutex, so the result is one consistent
// read, and it shares no memory with the store. Using the reader after the
// fn it was handed to returned is an error matching prebuilds.ErrConflict.
func (r *reader) Snapshot(_ context.Context, p prebuilds.SnapshotParams) (*prebuilds.GlobalSnapshot, error) {
	if err := checkParams(p); err != nil {
		return nil, err
	}
	r.s.mu.RLock()
	defer r.s.mu.RUnlock()
	if !r.held {
		return nil, fmt.Errorf("memstore: snapshot: reconciliation lock no longer held: %w", prebuilds.ErrConflict)
	}
	return r.s.snapshot(p), nil
}

// snapshot computes the snapshot (docs/spec.md, "The snapshot") in one
// pass over the presets and, for each preset with a desired count, one pass
// over the live prebuilds attributed to it (Store.live). Callers hold s.mu.
func (s *Store) snapshot(p prebuilds.SnapshotParams) *prebuilds.GlobalSnapshot {
	// Now is echoed as given. Lookback is compared as given: created_at is
	// microsecond-precise, so "created_at ≥ lookback" needs no rounding.
	now, lookback := p.Now, p.Lookback
	adaptive := p.Policy.Resolved() == prebuilds.PolicyAdaptive
	k := p.HardLimit.K()
	order := s.presetOrder
	if p.Presets != nil {
		// A filtered snapshot reads only these presets' pools.
		order = make([]*prebuilds.Preset, 0, len(p.Presets))
		seen := make(map[uuid.UUID]bool, len(p.Presets))
		for _, id := range p.Presets {
			if preset := s.presets[id]; preset != nil && !seen[id] {
				seen[id] = true
				order = append(order, preset)
			}
		}
	}
	snap := &prebuilds.GlobalSnapshot{
		Now:     now,
		Paused:  s.paused,
		Presets: make([]prebuilds.PresetRow, 0, min(s.configured, len(order))),
	}
	if p.Presets == nil {
		snap.Running = make([]prebuilds.RunningPrebuild, 0, s.liveCount)
	}
	var candidates []*prebuilds.Build // C(P), reused across presets
	for _, preset := range order {
		if preset.Desired == nil {
			continue
		}
		t := s.templateOf(preset)
		if !p.Shard.Contains(t.ID) {
			continue
		}
		row := prebuilds.NewPresetRow(*preset, *t)
		snap.Presets = append(snap.Presets, row)
		active := row.Active()
		// Backoff and the hard limit look at presets whose version is active
		// and whose template is not deleted (deprecation does not matter).
		failureScope := preset.TemplateVersionID == t.ActiveVersionID && !t.Deleted

		var starting, stopping, deleting, pendingInactive int
		candidates = candidates[:0]
		firstRunning := len(snap.Running)
		for _, in := range s.live[preset.ID] {
			latest := in.latest()
			if latest.Transition == prebuilds.TransitionStart && latest.JobStatus == prebuilds.JobSucceeded {
				snap.Running = append(snap.Running, prebuilds.RunningPrebuild{
					InstanceID: in.ID,
					PresetID:   preset.ID,
					CreatedAt:  in.CreatedAt,
					Ready:      in.Ready,
				})
			}
			if latest.JobStatus.InProgress() {
				switch latest.Transition {
				case prebuilds.TransitionStart:
					starting++
				case prebuilds.TransitionStop:
					stopping++
				case prebuilds.TransitionDelete:
					deleting++
				}
			}
			queued := !active && pendingFirstBuild(in)
			if queued {
				pendingInactive++
			}
			if !p.StuckBefore.IsZero() && latest.Transition == prebuilds.TransitionStart && latest.JobStatus.InProgress() &&
				latest.CreatedAt.Before(p.StuckBefore) && !queued {
				snap.Stuck = append(snap.Stuck, prebuilds.StuckBuild{PresetID: preset.ID, InstanceID: in.ID, BuildID: latest.ID})
			}
			if failureScope && latest.Transition == prebuilds.TransitionStart &&
				(preset.ResetAt.IsZero() || !latest.CreatedAt.Before(preset.ResetAt)) {
				candidates = append(candidates, latest)
			}
		}
		slices.SortFunc(snap.Running[firstRunning:], func(a, b prebuilds.RunningPrebuild) int {
			if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
				return c
			}
			return prebuilds.CompareUUID(a.InstanceID, b.InstanceID)
		})
		for _, c := range []prebuilds.InProgressCount{
			{PresetID: preset.ID, Transition: prebuilds.TransitionStart, Count: starting},
			{PresetID: preset.ID, Transition: prebuilds.TransitionStop, Count: stopping},
			{PresetID: preset.ID, Transition: prebuilds.TransitionDelete, Count: deleting},
		} {
			if c.Count > 0 {
				snap.InProgress = append(snap.InProgress, c)
			}
		}
		if pendingInactive > 0 {
			snap.PendingInactive = append(snap.PendingInactive, prebuilds.PendingInactiveCount{PresetID: preset.ID, Count: pendingInactive})
		}
		if adaptive {
			if l := s.outcomes[preset.ID]; l != nil {
				since := lookback
				if preset.ResetAt.After(since) {
					since = preset.ResetAt
				}
				if n, at := l.streak(since); n > 0 {
					snap.Streaks = append(snap.Streaks, prebuilds.StreakRow{PresetID: preset.ID, Streak: n, LastFailedAt: at})
					if k > 0 && n >= k {
						snap.HardLimited = append(snap.HardLimited, preset.ID)
					}
				}
				if l.proven(preset.ResetAt) {
					snap.Proven = append(snap.Proven, preset.ID)
				}
			}
		} else if len(candidates) > 0 {
			// Rank C(P) newest first: created_at desc, then build ID desc.
			slices.SortFunc(candidates, func(a, b *prebuilds.Build) int {
				if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
					return c
				}
				return prebuilds.CompareUUID(b.ID, a.ID)
			})
			if row, ok := backoffRow(candidates, *preset.Desired, lookback); ok {
				row.PresetID = preset.ID
				snap.Backoffs = append(snap.Backoffs, row)
			}
			if hardLimited(candidates, k) {
				snap.HardLimited = append(snap.HardLimited, preset.ID)
			}
		}
		if c := s.counters[preset.ID]; c != nil && (c.Created > 0 || c.ClaimsMissed > 0) {
			snap.Counters = append(snap.Counters, *c)
		}
	}
	// Empty row lists are nil, whatever capacity was reserved.
	if len(snap.Presets) == 0 {
		snap.Presets = nil
	}
	if len(snap.Running) == 0 {
		snap.Running = nil
	}
	return snap
}

// backoffRow applies backoff(P) (docs/spec.md, "Backoff") to C(P) ranked newest first:
// num_failed counts failures at or after lookback over all of C(P); the row
// exists iff one of them has rank ≤ desired, and last_build_at is the latest
// created_at among those.
func backoffRow(ranked []*prebuilds.Build, desired int, lookback time.Time) (prebuilds.BackoffRow, bool) {
	var row prebuilds.BackoffRow
	found := false
	for rank, b := range ranked {
		if b.JobStatus != prebuilds.JobFailed || b.CreatedAt.Before(lookback) {
			continue
		}
		row.NumFailed++
		if rank < desired {
			found = true
			if b.CreatedAt.After(row.LastBuildAt) {
				row.LastBuildAt = b.CreatedAt
			}
		}
	}
	return row, found
}

// hardLimited reports whether k > 0 and the k newest builds of C(P) (ranked
// newest first) exist and all failed.
func hardLimited(ranked []*prebuilds.Build, k int) bool {
	if k <= 0 || len(ranked) < k {
		return false
	}
	for _, b := range ranked[:k] {
		if b.JobStatus != prebuilds.JobFailed {
			return false
		}
	}
	return true
}

// checkParams refuses snapshot inputs no snapshot can answer.
func checkParams(p prebuilds.SnapshotParams) error {
	if !p.Policy.Valid() {
		return fmt.Errorf("memstore: snapshot: unknown failure policy %q: %w", p.Policy, prebuilds.ErrInvalidArgument)
	}
	if !p.Shard.Valid() {
		return fmt.Errorf("memstore: snapshot: shard %d of %d: %w", p.Shard.Index, p.Shard.Count, prebuilds.ErrInvalidArgument)
	}
	return nil
}
