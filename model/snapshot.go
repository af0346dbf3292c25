package model

import (
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Snapshot computes the snapshot (docs/spec.md, "The snapshot") by scanning the world. Rows are
// in canonical order (prebuilds.SortSnapshot's), Now is p.Now.
func (w *World) Snapshot(p prebuilds.SnapshotParams) *prebuilds.GlobalSnapshot {
	s := &prebuilds.GlobalSnapshot{Now: p.Now, Paused: w.Paused}
	for _, pr := range w.plannedPresets() {
		if p.Presets != nil && !slices.Contains(p.Presets, pr.ID) {
			continue // a filtered snapshot: only the given presets' rows
		}
		if !w.inShard(pr, p.Shard) {
			continue
		}
		s.Presets = append(s.Presets, w.presetRow(pr))
		s.Running = append(s.Running, w.running(pr.ID)...)
		for _, tr := range []prebuilds.Transition{prebuilds.TransitionDelete, prebuilds.TransitionStart, prebuilds.TransitionStop} {
			if n := w.inProgress(pr.ID, tr); n > 0 {
				s.InProgress = append(s.InProgress, prebuilds.InProgressCount{PresetID: pr.ID, Transition: tr, Count: n})
			}
		}
		if n := w.pendingInactive(pr); n > 0 {
			s.PendingInactive = append(s.PendingInactive, prebuilds.PendingInactiveCount{PresetID: pr.ID, Count: n})
		}
		switch policyOf(p.Policy) {
		case prebuilds.PolicyAdaptive:
			if n, at := w.streak(pr, p.Lookback); n > 0 {
				s.Streaks = append(s.Streaks, prebuilds.StreakRow{PresetID: pr.ID, Streak: n, LastFailedAt: at})
			}
			if w.proven(pr) {
				s.Proven = append(s.Proven, pr.ID)
			}
		default:
			if b := w.backoff(pr, p.Lookback); b != nil {
				s.Backoffs = append(s.Backoffs, *b)
			}
		}
		if w.limited(pr, p) {
			s.HardLimited = append(s.HardLimited, pr.ID)
		}
		s.Stuck = append(s.Stuck, w.stuck(pr, p.StuckBefore)...)
		if c := w.counters(pr.ID); c != (prebuilds.PresetCounters{PresetID: pr.ID}) {
			s.Counters = append(s.Counters, c)
		}
	}
	return s
}

// plannedPresets are the presets whose desired count is set, by ID.
func (w *World) plannedPresets() []prebuilds.Preset {
	var out []prebuilds.Preset
	for _, p := range w.Presets {
		if p.Desired != nil {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b prebuilds.Preset) int { return compareUUID(a.ID, b.ID) })
	return out
}

func (w *World) presetRow(p prebuilds.Preset) prebuilds.PresetRow {
	row := prebuilds.PresetRow{Preset: copyPreset(p)}
	row.Parameters = maps.Clone(p.Parameters)
	if v := w.version(p.TemplateVersionID); v != nil {
		if t := w.template(v.TemplateID); t != nil {
			row.TemplateID = t.ID
			row.TemplateName = t.Name
			row.OrganizationID = t.OrganizationID
			row.OrganizationName = t.OrganizationName
			row.ActiveVersionID = t.ActiveVersionID
			row.Deprecated = t.Deprecated
			row.Deleted = t.Deleted
		}
	}
	return row
}

// running(P): SystemOwner, not deleted, latest build start+succeeded,
// current preset P. Oldest first (created_at, then instance ID).
func (w *World) running(presetID uuid.UUID) []prebuilds.RunningPrebuild {
	var out []prebuilds.RunningPrebuild
	for _, inst := range w.Instances {
		if inst.OwnerID != prebuilds.SystemOwner || inst.Deleted {
			continue
		}
		latest, ok := w.latestBuild(inst.ID)
		if !ok || latest.Transition != prebuilds.TransitionStart || latest.JobStatus != prebuilds.JobSucceeded {
			continue
		}
		if w.currentPreset(inst.ID) != presetID {
			continue
		}
		out = append(out, prebuilds.RunningPrebuild{
			InstanceID: inst.ID,
			PresetID:   presetID,
			CreatedAt:  inst.CreatedAt,
			Ready:      inst.Ready,
		})
	}
	slices.SortFunc(out, func(a, b prebuilds.RunningPrebuild) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return compareUUID(a.InstanceID, b.InstanceID)
	})
	return out
}

// inProgress(P, tr): SystemOwner, not-deleted instances whose latest build is
// a pending or running tr, with current preset P.
func (w *World) inProgress(presetID uuid.UUID, tr prebuilds.Transition) int {
	n := 0
	for _, inst := range w.Instances {
		if inst.OwnerID != prebuilds.SystemOwner || inst.Deleted {
			continue
		}
		latest, ok := w.latestBuild(inst.ID)
		if !ok || latest.Transition != tr {
			continue
		}
		if latest.JobStatus != prebuilds.JobPending && latest.JobStatus != prebuilds.JobRunning {
			continue
		}
		if w.currentPreset(inst.ID) == presetID {
			n++
		}
	}
	return n
}

// pendingInactive(P): for an inactive P, SystemOwner, not-deleted instances
// whose only build is #1 start pending, with current preset P.
func (w *World) pendingInactive(p prebuilds.Preset) int {
	if w.active(p) {
		return 0
	}
	n := 0
	for _, inst := range w.Instances {
		if inst.OwnerID == prebuilds.SystemOwner && !inst.Deleted && w.pendingFirstBuild(inst.ID) &&
			w.currentPreset(inst.ID) == p.ID {
			n++
		}
	}
	return n
}

// candidates is C(P) of docs/spec.md ("Candidate builds"), ranked newest first (created_at desc,
// then build ID desc).
func (w *World) candidates(p prebuilds.Preset) []prebuilds.Build {
	if !w.versionActive(p) {
		return nil
	}
	var out []prebuilds.Build
	for _, inst := range w.Instances {
		if inst.OwnerID != prebuilds.SystemOwner || inst.Deleted {
			continue
		}
		latest, ok := w.latestBuild(inst.ID)
		if !ok || latest.Transition != prebuilds.TransitionStart || w.currentPreset(inst.ID) != p.ID {
			continue
		}
		if !p.ResetAt.IsZero() && latest.CreatedAt.Before(p.ResetAt) {
			continue
		}
		out = append(out, latest)
	}
	slices.SortFunc(out, func(a, b prebuilds.Build) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return compareUUID(b.ID, a.ID)
	})
	return out
}

// backoff(P) of docs/spec.md ("Backoff"), nil when there is no row.
func (w *World) backoff(p prebuilds.Preset, lookback time.Time) *prebuilds.BackoffRow {
	static := 0
	if p.Desired != nil {
		static = *p.Desired
	}
	row := prebuilds.BackoffRow{PresetID: p.ID}
	exists := false
	for i, b := range w.candidates(p) {
		if b.JobStatus != prebuilds.JobFailed || b.CreatedAt.Before(lookback) {
			continue
		}
		row.NumFailed++
		rank := i + 1
		if rank <= static {
			if !exists || b.CreatedAt.After(row.LastBuildAt) {
				row.LastBuildAt = b.CreatedAt
			}
			exists = true
		}
	}
	if !exists {
		return nil
	}
	return &row
}

// limited is hard_limited(P) under the policy of p: PolicyCoder looks at
// the K newest candidates, PolicyAdaptive at the failure streak.
func (w *World) limited(pr prebuilds.Preset, p prebuilds.SnapshotParams) bool {
	k := hardLimitK(p.HardLimit)
	if policyOf(p.Policy) == prebuilds.PolicyAdaptive {
		n, _ := w.streak(pr, p.Lookback)
		return k > 0 && n >= k
	}
	return w.hardLimited(pr, k)
}

// hardLimited(P): K > 0, |C(P)| ≥ K and the K newest all failed.
func (w *World) hardLimited(p prebuilds.Preset, k int) bool {
	c := w.candidates(p)
	if k <= 0 || len(c) < k {
		return false
	}
	for _, b := range c[:k] {
		if b.JobStatus != prebuilds.JobFailed {
			return false
		}
	}
	return true
}

// counters follow docs/spec.md ("Counters"): instances created as
// prebuilds whose build #1 has the preset, deleted ones included, and the
// claims of the preset that found nothing claimable. A row exists iff one of
// them is positive.
func (w *World) counters(presetID uuid.UUID) prebuilds.PresetCounters {
	c := prebuilds.PresetCounters{PresetID: presetID}
	for _, inst := range w.Instances {
		if !inst.CreatedAsPrebuild {
			continue
		}
		builds := w.buildsOf(inst.ID)
		if len(builds) == 0 || builds[0].Number != 1 || builds[0].PresetID != presetID {
			continue
		}
		c.Created++
		if builds[0].JobStatus == prebuilds.JobFailed {
			c.Failed++
		}
		if inst.Claimed {
			c.Claimed++
		}
	}
	for _, id := range w.ClaimMisses {
		if id == presetID {
			c.ClaimsMissed++
		}
	}
	return c
}

// hardLimitK is the model's own reading of the hard-limit encoding: a
// positive value is K, 0 the default 3, a negative value turns it off (0).
func hardLimitK(h prebuilds.HardLimit) int {
	switch {
	case h == 0:
		return 3
	case h < 0:
		return 0
	}
	return int(h)
}
