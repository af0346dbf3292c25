// Package naive builds per-preset views of a prebuilds.GlobalSnapshot the
// obvious way, by scanning every row for each preset. It is the oracle that
// prebuilds' tests check GlobalSnapshot.Index against and the baseline that
// package bench measures the indexed planner against; it shares no code with
// Index.
package naive

import (
	"slices"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Index returns View for every preset of s, in canonical preset order (by
// ID), like GlobalSnapshot.Index. s is not modified.
func Index(s *prebuilds.GlobalSnapshot) []prebuilds.PresetSnapshot {
	presets := slices.Clone(s.Presets)
	slices.SortFunc(presets, func(a, b prebuilds.PresetRow) int { return prebuilds.CompareUUID(a.ID, b.ID) })
	views := make([]prebuilds.PresetSnapshot, len(presets))
	for i, p := range presets {
		views[i] = View(s, p)
	}
	return views
}

// View builds preset p's view of s by scanning every row of every slice of
// s: O(rows) per preset. Running is oldest first, as in prebuilds.Index.
func View(s *prebuilds.GlobalSnapshot, p prebuilds.PresetRow) prebuilds.PresetSnapshot {
	v := prebuilds.PresetSnapshot{Preset: p, Paused: s.Paused, Counters: prebuilds.PresetCounters{PresetID: p.ID}}
	for _, r := range s.Running {
		if r.PresetID == p.ID {
			v.Running = append(v.Running, r)
		}
	}
	slices.SortStableFunc(v.Running, func(a, b prebuilds.RunningPrebuild) int {
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
