package bench

import (
	"slices"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// NaivePlanAll is the baseline the indexed planner is measured against
// (DESIGN §10): for each preset it builds the preset's view by scanning every
// row of every slice of s, then calls prebuilds.PlanPreset. It costs
// O(presets × rows) where prebuilds.PlanAll costs O(presets + rows). Plans
// come back in canonical preset order, like PlanAll's, so the two can be
// compared; s is not modified.
func NaivePlanAll(s *prebuilds.GlobalSnapshot, cfg prebuilds.PlanConfig) []prebuilds.Plan {
	presets := slices.Clone(s.Presets)
	slices.SortFunc(presets, func(a, b prebuilds.PresetRow) int { return prebuilds.CompareUUID(a.ID, b.ID) })
	plans := make([]prebuilds.Plan, len(presets))
	for i, p := range presets {
		plans[i] = prebuilds.PlanPreset(naiveView(s, p), s.Now, cfg)
	}
	return plans
}

// naiveView scans all rows of s for preset p.
func naiveView(s *prebuilds.GlobalSnapshot, p prebuilds.PresetRow) prebuilds.PresetSnapshot {
	v := prebuilds.PresetSnapshot{Preset: p, Paused: s.Paused, Counters: prebuilds.PresetCounters{PresetID: p.ID}}
	for _, r := range s.Running {
		if r.PresetID == p.ID {
			v.Running = append(v.Running, r)
		}
	}
	slices.SortFunc(v.Running, func(a, b prebuilds.RunningPrebuild) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return prebuilds.CompareUUID(a.InstanceID, b.InstanceID)
	})
	for _, c := range s.InProgress {
		if c.PresetID != p.ID {
			continue
		}
		switch c.Transition {
		case prebuilds.TransitionStart:
			v.Starting += c.Count
		case prebuilds.TransitionStop:
			v.Stopping += c.Count
		case prebuilds.TransitionDelete:
			v.Deleting += c.Count
		}
	}
	for _, c := range s.PendingInactive {
		if c.PresetID == p.ID {
			v.PendingInactive += c.Count
		}
	}
	for _, b := range s.Backoffs {
		if b.PresetID == p.ID {
			row := b
			v.Backoff = &row
		}
	}
	for _, id := range s.HardLimited {
		if id == p.ID {
			v.HardLimited = true
		}
	}
	for _, c := range s.Counters {
		if c.PresetID == p.ID {
			v.Counters = c
		}
	}
	return v
}
