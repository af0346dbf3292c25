package model

import (
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// The failure policies and stuck builds, computed from the world by
// scanning, with the model's own reading of docs/spec.md ("Failure
// policies", "Stuck builds", "Create budget").

const maxStreak = 64

// policyOf is the model's own reading of the policy encoding: empty means
// the default, PolicyCoder.
func policyOf(p prebuilds.FailurePolicy) prebuilds.FailurePolicy {
	if p == "" {
		return prebuilds.PolicyCoder
	}
	return p
}

// ValidateSnapshotParams reports snapshot inputs a store must refuse: an
// unknown policy, or a shard whose index is outside 0..count−1
// (ErrInvalidArgument).
func ValidateSnapshotParams(p prebuilds.SnapshotParams) error {
	switch p.Policy {
	case "", prebuilds.PolicyCoder, prebuilds.PolicyAdaptive:
	default:
		return fmt.Errorf("model: snapshot: unknown policy %q: %w", p.Policy, prebuilds.ErrInvalidArgument)
	}
	if p.Shard.Count > 1 && (p.Shard.Index < 0 || p.Shard.Index >= p.Shard.Count) || p.Shard.Count <= 1 && p.Shard.Index != 0 {
		return fmt.Errorf("model: snapshot: shard %d of %d: %w", p.Shard.Index, p.Shard.Count, prebuilds.ErrInvalidArgument)
	}
	return nil
}

// inShard reports whether the preset's template is in shard s: the first
// four bytes of the template ID, big-endian, modulo the count (every preset
// when the count is at most 1).
func (w *World) inShard(p prebuilds.Preset, s prebuilds.Shard) bool {
	if s.Count <= 1 {
		return true
	}
	v := w.version(p.TemplateVersionID)
	if v == nil {
		return false
	}
	t := v.TemplateID
	n := uint64(t[0])<<24 | uint64(t[1])<<16 | uint64(t[2])<<8 | uint64(t[3])
	return int(n%uint64(s.Count)) == s.Index
}

// firstBuild is the instance's build #1, if any.
func (w *World) firstBuild(instanceID uuid.UUID) (prebuilds.Build, bool) {
	for _, b := range w.Builds {
		if b.InstanceID == instanceID && b.Number == 1 {
			return b, true
		}
	}
	return prebuilds.Build{}, false
}

// outcomes is O(P): build #1 of every instance created as a prebuild with
// preset P, succeeded or failed, completed at or after max(lookback,
// reset_at); deleted and claimed instances included. Newest first:
// completed_at desc, then build ID desc.
func (w *World) outcomes(p prebuilds.Preset, lookback time.Time) []prebuilds.Build {
	since := lookback
	if p.ResetAt.After(since) {
		since = p.ResetAt
	}
	var out []prebuilds.Build
	for _, inst := range w.Instances {
		if !inst.CreatedAsPrebuild {
			continue
		}
		b, ok := w.firstBuild(inst.ID)
		if !ok || b.PresetID != p.ID {
			continue
		}
		if b.JobStatus != prebuilds.JobSucceeded && b.JobStatus != prebuilds.JobFailed {
			continue
		}
		if b.CompletedAt.Before(since) {
			continue
		}
		out = append(out, b)
	}
	slices.SortFunc(out, func(a, b prebuilds.Build) int {
		if c := b.CompletedAt.Compare(a.CompletedAt); c != 0 {
			return c
		}
		return compareUUID(b.ID, a.ID)
	})
	return out
}

// streak is streak(P), capped at 64, and last_failed_at(P) (zero when the
// streak is 0).
func (w *World) streak(p prebuilds.Preset, lookback time.Time) (int, time.Time) {
	o := w.outcomes(p, lookback)
	n := 0
	for _, b := range o {
		if b.JobStatus != prebuilds.JobFailed {
			break
		}
		n++
	}
	if n == 0 {
		return 0, time.Time{}
	}
	return min(n, maxStreak), o[0].CompletedAt
}

// proven is proven(P): some build #1 with preset P of an instance created
// as a prebuild succeeded, completed at or after reset_at when set. No
// lookback.
func (w *World) proven(p prebuilds.Preset) bool {
	for _, inst := range w.Instances {
		if !inst.CreatedAsPrebuild {
			continue
		}
		b, ok := w.firstBuild(inst.ID)
		if !ok || b.PresetID != p.ID || b.JobStatus != prebuilds.JobSucceeded {
			continue
		}
		if !p.ResetAt.IsZero() && b.CompletedAt.Before(p.ResetAt) {
			continue
		}
		return true
	}
	return false
}

// stuck is stuck(P): the latest builds of P's pool that are start builds,
// pending or running, created before stuckBefore, except the queued first
// builds that pending_inactive(P) counts (CancelPending handles those). In
// build ID order.
func (w *World) stuck(p prebuilds.Preset, stuckBefore time.Time) []prebuilds.StuckBuild {
	if stuckBefore.IsZero() {
		return nil
	}
	inactive := !w.active(p)
	var out []prebuilds.StuckBuild
	for _, inst := range w.Instances {
		if inst.OwnerID != prebuilds.SystemOwner || inst.Deleted || w.currentPreset(inst.ID) != p.ID {
			continue
		}
		latest, ok := w.latestBuild(inst.ID)
		if !ok || latest.Transition != prebuilds.TransitionStart {
			continue
		}
		if latest.JobStatus != prebuilds.JobPending && latest.JobStatus != prebuilds.JobRunning {
			continue
		}
		if !latest.CreatedAt.Before(stuckBefore) {
			continue
		}
		if inactive && w.pendingFirstBuild(inst.ID) {
			continue
		}
		out = append(out, prebuilds.StuckBuild{PresetID: p.ID, InstanceID: inst.ID, BuildID: latest.ID})
	}
	slices.SortFunc(out, func(a, b prebuilds.StuckBuild) int { return compareUUID(a.BuildID, b.BuildID) })
	return out
}

// FailStuckBuild mirrors prebuilds.Store.FailStuckBuild.
func (w *World) FailStuckBuild(p prebuilds.FailStuckBuildParams) error {
	const op = "fail stuck build"
	if p.BuildID == uuid.Nil {
		return errorf(op, p.BuildID, prebuilds.ErrInvalidArgument)
	}
	b := w.build(p.BuildID)
	if b == nil {
		return errorf(op, p.BuildID, prebuilds.ErrNotFound)
	}
	inst := w.instance(b.InstanceID)
	if b.Transition != prebuilds.TransitionStart ||
		(b.JobStatus != prebuilds.JobPending && b.JobStatus != prebuilds.JobRunning) ||
		!b.CreatedAt.Before(p.StuckBefore) ||
		inst == nil || inst.OwnerID != prebuilds.SystemOwner || inst.Deleted {
		return errorf(op, p.BuildID, prebuilds.ErrConflict)
	}
	b.JobStatus = prebuilds.JobFailed
	b.FailureKind = prebuilds.FailureTimeout
	b.CompletedAt = micro(p.Now)
	return nil
}

// adaptiveWait is min(interval × 2^(n−1), max), computed by doubling.
func adaptiveWait(n int, interval, maxWait time.Duration) time.Duration {
	wait := interval
	for i := 1; i < n; i++ {
		if wait > maxWait/2 {
			return maxWait
		}
		wait *= 2
	}
	return min(wait, maxWait)
}

// shareBudget hands out budget creates one at a time, round-robin over the
// presets ordered by missing fraction (want ÷ desired, largest first, then
// preset ID order) until the budget is spent or every want is met.
func shareBudget(plans []prebuilds.Plan, budget int) []int {
	wants := make([]int, len(plans))
	for i, p := range plans {
		for _, a := range p.Actions {
			if a.Kind == prebuilds.ActionCreate {
				wants[i] += a.Count
			}
		}
	}
	order := make([]int, len(plans))
	for i := range order {
		order[i] = i
	}
	fraction := func(i int) (int, int) {
		if plans[i].Desired <= 0 {
			return 1, 1
		}
		return wants[i], plans[i].Desired
	}
	slices.SortStableFunc(order, func(a, b int) int {
		an, ad := fraction(a)
		bn, bd := fraction(b)
		// larger fraction first: compare b with a
		l, r := bn*ad, an*bd
		switch {
		case l < r:
			return -1
		case l > r:
			return 1
		}
		return 0
	})
	grants := make([]int, len(plans))
	for budget > 0 {
		progress := false
		for _, i := range order {
			if budget == 0 {
				break
			}
			if grants[i] < wants[i] {
				grants[i]++
				budget--
				progress = true
			}
		}
		if !progress {
			break
		}
	}
	return grants
}

// applyBudget rewrites the creates of plans to the granted counts: a cut
// create keeps its grant and is followed by Blocked(budget) for the rest.
func applyBudget(plans []prebuilds.Plan, budget int) {
	grants := shareBudget(plans, budget)
	for i := range plans {
		var out []prebuilds.Action
		left := grants[i]
		for _, a := range plans[i].Actions {
			if a.Kind != prebuilds.ActionCreate {
				out = append(out, a)
				continue
			}
			g := min(a.Count, left)
			left -= g
			if g > 0 {
				out = append(out, prebuilds.Action{Kind: prebuilds.ActionCreate, Reason: a.Reason, Count: g})
			}
			if g < a.Count {
				out = append(out, prebuilds.Action{Kind: prebuilds.ActionBlocked, Reason: prebuilds.ReasonBudget, Count: a.Count - g})
			}
		}
		plans[i].Actions = out
	}
}
