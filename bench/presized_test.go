package bench

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// presizedPlanAll is prebuilds.PlanAll with an indexing pass that counts
// each preset's running prebuilds first and carves every view's Running
// out of one backing array, instead of growing a slice per preset. It is
// not API: BenchmarkPlan measures it to show what that change to
// prebuilds.(*GlobalSnapshot).Index would gain.
func presizedPlanAll(s *prebuilds.GlobalSnapshot, cfg prebuilds.PlanConfig) []prebuilds.Plan {
	views := make([]prebuilds.PresetSnapshot, len(s.Presets))
	for i, p := range s.Presets {
		views[i] = prebuilds.PresetSnapshot{Preset: p, Paused: s.Paused, Counters: prebuilds.PresetCounters{PresetID: p.ID}}
	}
	slices.SortFunc(views, func(a, b prebuilds.PresetSnapshot) int { return prebuilds.CompareUUID(a.Preset.ID, b.Preset.ID) })
	pos := make(map[uuid.UUID]int32, len(views))
	for i := range views {
		pos[views[i].Preset.ID] = int32(i)
	}
	counts := make([]int32, len(views))
	at := make([]int32, len(s.Running))
	for k, r := range s.Running {
		i, ok := pos[r.PresetID]
		if !ok {
			at[k] = -1
			continue
		}
		at[k] = i
		counts[i]++
	}
	backing := make([]prebuilds.RunningPrebuild, 0, len(s.Running))
	for i := range views {
		if counts[i] > 0 {
			views[i].Running = backing[len(backing) : len(backing) : len(backing)+int(counts[i])]
			backing = backing[:len(backing)+int(counts[i])]
		}
	}
	for k, r := range s.Running {
		if i := at[k]; i >= 0 {
			views[i].Running = append(views[i].Running, r)
		}
	}
	for _, c := range s.InProgress {
		if i, ok := pos[c.PresetID]; ok {
			switch c.Transition {
			case prebuilds.TransitionStart:
				views[i].Starting += c.Count
			case prebuilds.TransitionStop:
				views[i].Stopping += c.Count
			case prebuilds.TransitionDelete:
				views[i].Deleting += c.Count
			}
		}
	}
	for _, c := range s.PendingInactive {
		if i, ok := pos[c.PresetID]; ok {
			views[i].PendingInactive += c.Count
		}
	}
	backoffs := slices.Clone(s.Backoffs)
	for k, b := range backoffs {
		if i, ok := pos[b.PresetID]; ok {
			views[i].Backoff = &backoffs[k]
		}
	}
	for _, id := range s.HardLimited {
		if i, ok := pos[id]; ok {
			views[i].HardLimited = true
		}
	}
	for _, c := range s.Counters {
		if i, ok := pos[c.PresetID]; ok {
			views[i].Counters = c
		}
	}
	plans := make([]prebuilds.Plan, len(views))
	for i := range views {
		slices.SortFunc(views[i].Running, func(a, b prebuilds.RunningPrebuild) int {
			if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
				return c
			}
			return prebuilds.CompareUUID(a.InstanceID, b.InstanceID)
		})
		plans[i] = prebuilds.PlanPreset(views[i], s.Now, cfg)
	}
	return plans
}

func TestPresizedPlanAllMatchesPlanAll(t *testing.T) {
	t.Parallel()
	cfg := prebuilds.PlanConfig{BackoffInterval: prebuilds.DefaultBackoffInterval}
	for _, p := range []FleetParams{mixedParams, coldParams(20), planParams(300), {Seed: 9}} {
		f := MustFleet(p)
		for _, later := range []int{0, 25} {
			sp := f.SnapshotParams()
			sp.Now = sp.Now.Add(timeHours(later))
			sp.Lookback = sp.Now.Add(-timeHours(1))
			snap := f.Snapshot(sp)
			if diff := cmp.Diff(prebuilds.PlanAll(snap, cfg), presizedPlanAll(snap, cfg)); diff != "" {
				t.Fatalf("fleet %+v, +%dh: presized plans differ (-PlanAll +presized):\n%s", p, later, diff)
			}
		}
	}
}

func timeHours(n int) time.Duration { return time.Duration(n) * time.Hour }
