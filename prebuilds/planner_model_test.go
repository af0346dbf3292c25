package prebuilds_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// TestPlanAllOnScenarios: prebuilds.PlanAll on the model's snapshot of every
// conformance scenario gives the hand-written plans, and the model's
// snapshot is already in SortSnapshot's canonical order.
func TestPlanAllOnScenarios(t *testing.T) {
	t.Parallel()
	for _, s := range scenario.Table() {
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			for _, c := range s.Checks {
				w, err := s.Model(c.At)
				if err != nil {
					t.Fatal(err)
				}
				now := s.Time(c.At)
				snap := w.Snapshot(s.Config.SnapshotParams(now))
				sorted := cloneSnapshot(snap) // SortSnapshot sorts in place
				prebuilds.SortSnapshot(sorted)
				if diff := cmp.Diff(sorted, snap); diff != "" {
					t.Errorf("at %s: model snapshot not in canonical order (-sorted +got):\n%s", c.At, diff)
				}
				got := prebuilds.PlanAll(snap, s.Config.PlanConfig()).Plans
				if diff := cmp.Diff(s.Expected(c), got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("%s: %s\ncheck at %s (%s): PlanAll (-want +got):\n%s", s.Pos, s.Rule, c.At, c.Pos, diff)
				}
			}
		})
	}
}
