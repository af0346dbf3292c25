package bench

import (
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// SnapshotParams returns the snapshot inputs a Reconciler with the default
// Config (BackoffLookback 1h, FailureHardLimit 3) uses at f.Now.
func (f *Fleet) SnapshotParams() prebuilds.SnapshotParams {
	return prebuilds.Config{}.SnapshotParams(f.Now)
}

// Snapshot computes, without a store, the snapshot (docs/spec.md, "The snapshot") a store seeded
// with f returns for p, in canonical order (prebuilds.SortSnapshot). It
// serves the planner benchmarks, which must not pay for a store, and the
// tests prove it equal to memstore's and pgstore's. It is one pass over the
// instances with maps, O(presets + builds).
func (f *Fleet) Snapshot(p prebuilds.SnapshotParams) *prebuilds.GlobalSnapshot {
	now := prebuilds.Micro(p.Now)
	lookback := prebuilds.Micro(p.Lookback)
	snap := &prebuilds.GlobalSnapshot{Now: now}

	templates := make(map[uuid.UUID]prebuilds.Template, len(f.Templates))
	for _, t := range f.Templates {
		templates[t.ID] = t
	}
	versionTemplate := make(map[uuid.UUID]uuid.UUID, len(f.Versions))
	for _, v := range f.Versions {
		versionTemplate[v.ID] = v.TemplateID
	}
	rows := make(map[uuid.UUID]prebuilds.PresetRow, len(f.Presets))
	for _, pr := range f.Presets {
		if pr.Desired == nil {
			continue
		}
		t := templates[versionTemplate[pr.TemplateVersionID]]
		row := prebuilds.NewPresetRow(microPreset(pr), t)
		if row.Status == "" {
			row.Status = prebuilds.PresetHealthy
		}
		rows[pr.ID] = row
		snap.Presets = append(snap.Presets, row)
	}

	type countKey struct {
		preset     uuid.UUID
		transition prebuilds.Transition
	}
	inProgress := map[countKey]int{}
	pendingInactive := map[uuid.UUID]int{}
	candidates := map[uuid.UUID][]prebuilds.Build{}
	counters := map[uuid.UUID]*prebuilds.PresetCounters{}

	for _, in := range f.Instances {
		first := in.Builds[0]
		if first.PresetID != uuid.Nil {
			if _, ok := rows[first.PresetID]; ok {
				c := counters[first.PresetID]
				if c == nil {
					c = &prebuilds.PresetCounters{PresetID: first.PresetID}
					counters[first.PresetID] = c
				}
				c.Created++
				if first.JobStatus == prebuilds.JobFailed {
					c.Failed++
				}
				if !in.ClaimedAt.IsZero() {
					c.Claimed++
				}
			}
		}
		if in.OwnerID != prebuilds.SystemOwner || in.Deleted {
			continue
		}
		current := uuid.Nil
		for _, b := range in.Builds {
			if b.Transition == prebuilds.TransitionStart && b.PresetID != uuid.Nil {
				current = b.PresetID
			}
		}
		row, ok := rows[current]
		if !ok {
			continue
		}
		latest := in.Builds[len(in.Builds)-1]
		if latest.Transition == prebuilds.TransitionStart && latest.JobStatus == prebuilds.JobSucceeded {
			snap.Running = append(snap.Running, prebuilds.RunningPrebuild{
				InstanceID: in.ID, PresetID: current, CreatedAt: prebuilds.Micro(in.CreatedAt), Ready: in.Ready,
			})
		}
		if latest.JobStatus.InProgress() {
			inProgress[countKey{current, latest.Transition}]++
		}
		if len(in.Builds) == 1 && latest.Transition == prebuilds.TransitionStart &&
			latest.JobStatus == prebuilds.JobPending && !row.Active() {
			pendingInactive[current]++
		}
		if latest.Transition == prebuilds.TransitionStart && row.TemplateVersionID == row.ActiveVersionID && !row.Deleted &&
			(row.ResetAt.IsZero() || !latest.CreatedAt.Before(row.ResetAt)) {
			candidates[current] = append(candidates[current], latest)
		}
	}

	for k, n := range inProgress {
		snap.InProgress = append(snap.InProgress, prebuilds.InProgressCount{PresetID: k.preset, Transition: k.transition, Count: n})
	}
	for id, n := range pendingInactive {
		snap.PendingInactive = append(snap.PendingInactive, prebuilds.PendingInactiveCount{PresetID: id, Count: n})
	}
	for _, c := range counters {
		snap.Counters = append(snap.Counters, *c)
	}
	for _, id := range slices.SortedFunc(maps.Keys(candidates), prebuilds.CompareUUID) {
		cs := candidates[id]
		slices.SortFunc(cs, func(a, b prebuilds.Build) int {
			if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
				return c
			}
			return prebuilds.CompareUUID(b.ID, a.ID)
		})
		desired := *rows[id].Desired
		numFailed := 0
		var last time.Time
		backoff := false
		for rank, b := range cs {
			if b.JobStatus != prebuilds.JobFailed || b.CreatedAt.Before(lookback) {
				continue
			}
			numFailed++
			if rank+1 <= desired {
				backoff = true
				if b.CreatedAt.After(last) {
					last = b.CreatedAt
				}
			}
		}
		if backoff {
			snap.Backoffs = append(snap.Backoffs, prebuilds.BackoffRow{PresetID: id, NumFailed: numFailed, LastBuildAt: prebuilds.Micro(last)})
		}
		if k := p.HardLimit.K(); k > 0 && len(cs) >= k {
			all := true
			for _, b := range cs[:k] {
				all = all && b.JobStatus == prebuilds.JobFailed
			}
			if all {
				snap.HardLimited = append(snap.HardLimited, id)
			}
		}
	}
	prebuilds.SortSnapshot(snap)
	return snap
}

// microPreset is p with its times at the microsecond precision stores keep.
func microPreset(p prebuilds.Preset) prebuilds.Preset {
	p.InvalidatedAt = micro(p.InvalidatedAt)
	p.ResetAt = micro(p.ResetAt)
	return p
}

// micro is prebuilds.Micro that keeps the zero time zero.
func micro(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return prebuilds.Micro(t)
}
