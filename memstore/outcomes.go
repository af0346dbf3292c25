package memstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// outcome is the result of one prebuild's build #1: O(P) of docs/spec.md
// ("Outcomes") is a preset's outcomes completed since max(lookback,
// reset_at).
type outcome struct {
	at     time.Time
	id     uuid.UUID
	failed bool
}

// outcomeLog keeps a preset's outcomes oldest first (completed_at, then
// build ID), deleted and claimed instances included, so that streak(P)
// reads only its leading failures from the end, and the latest success for
// proven(P). Callers hold s.mu.
type outcomeLog struct {
	entries []outcome
	// lastSuccess is the latest completed_at of a succeeded outcome; ok
	// says there is one.
	lastSuccess time.Time
	ok          bool
}

func olderOutcome(a, b outcome) int {
	if c := a.at.Compare(b.at); c != 0 {
		return c
	}
	return prebuilds.CompareUUID(a.id, b.id)
}

// add files an outcome in order. Builds complete in roughly clock order,
// so the position is almost always the end.
func (l *outcomeLog) add(o outcome) {
	i := len(l.entries)
	for i > 0 && olderOutcome(l.entries[i-1], o) > 0 {
		i--
	}
	l.entries = slices.Insert(l.entries, i, o)
	if !o.failed && (!l.ok || o.at.After(l.lastSuccess)) {
		l.lastSuccess, l.ok = o.at, true
	}
}

// streak returns streak(P) (capped at prebuilds.MaxStreak) and
// last_failed_at(P) over the outcomes completed at or after since.
func (l *outcomeLog) streak(since time.Time) (int, time.Time) {
	n := 0
	var last time.Time
	for i := len(l.entries) - 1; i >= 0 && n < prebuilds.MaxStreak; i-- {
		o := l.entries[i]
		if o.at.Before(since) || !o.failed {
			break
		}
		if n == 0 {
			last = o.at
		}
		n++
	}
	return n, last
}

// proven reports proven(P): a succeeded outcome completed at or after
// resetAt (any, when resetAt is zero).
func (l *outcomeLog) proven(resetAt time.Time) bool {
	return l.ok && (resetAt.IsZero() || !l.lastSuccess.Before(resetAt))
}

// recordOutcome files b's result when b is the build #1 of an instance
// created as a prebuild and it just succeeded or failed. Callers hold s.mu.
func (s *Store) recordOutcome(in *instance, b *prebuilds.Build) {
	if b.Number != 1 || in.counted == uuid.Nil {
		return
	}
	if b.JobStatus != prebuilds.JobSucceeded && b.JobStatus != prebuilds.JobFailed {
		return
	}
	l := s.outcomes[in.counted]
	if l == nil {
		l = &outcomeLog{}
		s.outcomes[in.counted] = l
	}
	l.add(outcome{at: b.CompletedAt, id: b.ID, failed: b.JobStatus == prebuilds.JobFailed})
}

// FailStuckBuild implements prebuilds.Store.
func (s *Store) FailStuckBuild(_ context.Context, p prebuilds.FailStuckBuildParams) error {
	if p.BuildID == uuid.Nil {
		return fmt.Errorf("memstore: fail stuck build: build id is required: %w", prebuilds.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.builds[p.BuildID]
	if !ok {
		return fmt.Errorf("memstore: fail stuck build %s: %w", p.BuildID, prebuilds.ErrNotFound)
	}
	in := s.instances[b.InstanceID]
	switch {
	case b.Transition != prebuilds.TransitionStart || !b.JobStatus.InProgress():
		return fmt.Errorf("memstore: fail stuck build %s: %s %s is not in progress: %w", p.BuildID, b.Transition, b.JobStatus, prebuilds.ErrConflict)
	case !b.CreatedAt.Before(p.StuckBefore):
		return fmt.Errorf("memstore: fail stuck build %s: created at %s, not before %s: %w",
			p.BuildID, b.CreatedAt.Format(time.RFC3339Nano), p.StuckBefore.Format(time.RFC3339Nano), prebuilds.ErrConflict)
	case in.OwnerID != prebuilds.SystemOwner || in.Deleted:
		return fmt.Errorf("memstore: fail stuck build %s: instance %s is no longer a live prebuild: %w", p.BuildID, in.ID, prebuilds.ErrConflict)
	}
	b.JobStatus = prebuilds.JobFailed
	b.FailureKind = prebuilds.FailureTimeout
	b.CompletedAt = prebuilds.Micro(p.Now)
	s.syncPending(in, b)
	if b.Number == 1 && in.counted != uuid.Nil {
		s.counter(in.counted).Failed++
	}
	s.recordOutcome(in, b)
	return nil
}
