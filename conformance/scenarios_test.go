package conformance_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// TestScenarios checks every scenario's hand-written plans against the
// reference model and against the pure planner fed the model's snapshot:
// the table the suite replays into every store is right before any store
// is involved.
func TestScenarios(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, s := range scenario.Table() {
		if seen[s.Name] {
			t.Fatalf("duplicate scenario name %q", s.Name)
		}
		seen[s.Name] = true
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			if s.Rule == "" || s.Pos == "" {
				t.Fatalf("scenario defined at %q has no rule or no position", s.Pos)
			}
			if len(s.Checks) == 0 {
				t.Fatal("scenario has no checks")
			}
			for i := 1; i < len(s.Steps); i++ {
				if s.Steps[i].At < s.Steps[i-1].At {
					t.Fatalf("step %d at %s before step %d at %s", i, s.Steps[i].At, i-1, s.Steps[i-1].At)
				}
			}
			for _, c := range s.Checks {
				w, err := s.Model(c.At)
				if err != nil {
					t.Fatalf("replay to %s: %v", c.At, err)
				}
				now := s.Time(c.At)
				params := s.Config.SnapshotParams(now)
				cfg := s.Config.PlanConfig()
				want := s.Expected(c)

				got := w.PlanAll(now, cfg, params)
				if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("%s: %s\ncheck at %s (%s): model.PlanAll (-want +got):\n%s", s.Pos, s.Rule, c.At, c.Pos, diff)
				}

				planned := prebuilds.PlanAll(w.Snapshot(params), cfg).Plans
				if diff := cmp.Diff(want, planned, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("%s: %s\ncheck at %s (%s): prebuilds.PlanAll on the model's snapshot (-want +got):\n%s", s.Pos, s.Rule, c.At, c.Pos, diff)
				}
			}
		})
	}
}
