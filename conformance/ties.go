package conformance

import (
	"slices"
	"testing"
	"time"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// ties: docs/spec.md ranks backoff candidates newest first, created_at desc,
// then build ID desc (UUID byte order). Two prebuilds of a preset with
// desired 1 are created in the same microsecond; one build fails, the other
// succeeds. The backoff row and the hard limit (K = 1) exist iff the failed
// build ranks first, i.e. has the greater ID.
func (s *suite) ties(t *testing.T) {
	for _, failedFirst := range []bool{true, false} {
		name := "Snapshot/RankTieBreak/FailedBuildRanksFirst"
		if !failedFirst {
			name = "Snapshot/RankTieBreak/SucceededBuildRanksFirst"
		}
		t.Run(name, func(t *testing.T) {
			s.parallel(t)
			e := s.claimFixture(t)
			failed, ok := "a", "b"
			if (prebuilds.CompareUUID(ID(BuildKey("a", 1)), ID(BuildKey("b", 1))) > 0) != failedFirst {
				failed, ok = ok, failed
			}
			at := Epoch.Add(10 * time.Second)
			e.clock.Set(at)
			e.applyAll(at, prebuildOp(failed), prebuildOp(ok),
				UpdateJob{failed, 1, prebuilds.JobFailed, prebuilds.FailureTransient},
				UpdateJob{ok, 1, prebuilds.JobSucceeded, ""})
			now := at.Add(time.Second)
			e.clock.Set(now)
			params := prebuilds.SnapshotParams{Now: now, Lookback: now.Add(-time.Hour), HardLimit: 1}
			e.requireSnapshot(params, "same created_at, ranked by build ID")

			snap, err := storeSnapshot(e.ctx, e.store, params)
			if err != nil {
				t.Fatal(err)
			}
			hasRow := len(snap.Backoffs) == 1
			limited := slices.Contains(snap.HardLimited, ID("p1"))
			if hasRow != failedFirst || limited != failedFirst {
				t.Fatalf("failed build %s ranks first: %v; got backoff row %v and hard-limited %v, want both %v",
					ID(BuildKey(failed, 1)), failedFirst, hasRow, limited, failedFirst)
			}
		})
	}
}
