package bench

import (
	"github.com/prebuildkit/prebuildkit/internal/naive"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// NaivePlanAll is the baseline the indexed planner is measured against
// (≥ 100× at 10,000 presets): for each preset it builds the preset's view by scanning every
// row of every slice of s, then calls prebuilds.PlanPreset. It costs
// O(presets × rows) where prebuilds.PlanAll costs O(presets + rows). Plans
// come back in canonical preset order, like PlanAll's, so the two can be
// compared; s is not modified.
func NaivePlanAll(s *prebuilds.GlobalSnapshot, cfg prebuilds.PlanConfig) []prebuilds.Plan {
	views := naive.Index(s)
	plans := make([]prebuilds.Plan, len(views))
	for i, v := range views {
		plans[i] = prebuilds.PlanPreset(v, s.Now, cfg)
	}
	return plans
}
