package model

import (
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Plan computes the planner rules (docs/spec.md, "The planner") for one
// preset at now, straight from the world (it does not go through a
// snapshot). Of p it reads Lookback and HardLimit.
// A preset that does not exist or whose desired count is nil is not planned:
// the result is an empty plan naming it.
func (w *World) Plan(presetID uuid.UUID, now time.Time, cfg prebuilds.PlanConfig, p prebuilds.SnapshotParams) prebuilds.Plan {
	plan := prebuilds.Plan{PresetID: presetID}
	pr := w.preset(presetID)
	if pr == nil || pr.Desired == nil {
		return plan
	}
	d, invalid := desiredAt(pr.Desired, pr.Timezone, pr.Schedules, now)
	plan.Desired = d
	plan.ScheduleInvalid = invalid
	if w.Paused {
		return plan
	}

	stuck := w.stuck(*pr, p.StuckBefore)
	if len(stuck) > 0 {
		a := prebuilds.Action{Kind: prebuilds.ActionFailStuck, Reason: prebuilds.ReasonDeadline}
		for _, b := range stuck {
			a.BuildIDs = append(a.BuildIDs, b.BuildID)
			a.InstanceIDs = append(a.InstanceIDs, b.InstanceID)
		}
		plan.Actions = append(plan.Actions, a)
	}

	running := w.running(presetID) // oldest first
	var all, valid, stale []uuid.UUID
	for _, r := range running {
		all = append(all, r.InstanceID)
		if expired(*pr, r.CreatedAt, now) {
			stale = append(stale, r.InstanceID)
		} else {
			valid = append(valid, r.InstanceID)
		}
	}

	if !w.active(*pr) {
		if n := w.pendingInactive(*pr); n > 0 {
			plan.Actions = append(plan.Actions, prebuilds.Action{
				Kind: prebuilds.ActionCancelPending, Reason: prebuilds.ReasonInactive, Count: n,
			})
		}
		if len(all) > 0 {
			plan.Actions = append(plan.Actions, prebuilds.Action{
				Kind: prebuilds.ActionDelete, Reason: prebuilds.ReasonInactive, InstanceIDs: all,
			})
		}
		return plan
	}

	limited := w.limited(*pr, p)
	if limited && pr.Status == prebuilds.PresetHealthy {
		plan.Actions = append(plan.Actions, prebuilds.Action{
			Kind: prebuilds.ActionSetStatus, Reason: prebuilds.ReasonHardLimited,
			From: prebuilds.PresetHealthy, To: prebuilds.PresetHardLimited,
		})
	}
	if !limited && pr.Status == prebuilds.PresetHardLimited {
		plan.Actions = append(plan.Actions, prebuilds.Action{
			Kind: prebuilds.ActionSetStatus, Reason: prebuilds.ReasonRecovered,
			From: prebuilds.PresetHardLimited, To: prebuilds.PresetHealthy,
		})
	}
	if len(stale) > 0 {
		plan.Actions = append(plan.Actions, prebuilds.Action{
			Kind: prebuilds.ActionDelete, Reason: prebuilds.ReasonExpired, InstanceIDs: stale,
		})
	}
	if extra := max(len(valid)-d, 0); extra > 0 {
		plan.Actions = append(plan.Actions, prebuilds.Action{
			Kind: prebuilds.ActionDelete, Reason: prebuilds.ReasonExtraneous, InstanceIDs: slices.Clone(valid[:extra]),
		})
	}
	starting := max(w.inProgress(presetID, prebuilds.TransitionStart)-len(stuck), 0)
	want := max(d-len(valid)-starting, 0)
	if want == 0 {
		return plan
	}
	if limited {
		plan.Actions = append(plan.Actions, prebuilds.Action{
			Kind: prebuilds.ActionBlocked, Reason: prebuilds.ReasonHardLimited, Count: want,
		})
		return plan
	}
	if pr.Status == prebuilds.PresetValidationFailed {
		plan.Actions = append(plan.Actions, prebuilds.Action{
			Kind: prebuilds.ActionBlocked, Reason: prebuilds.ReasonValidationFailed, Count: want,
		})
		return plan
	}
	if policyOf(cfg.Policy) == prebuilds.PolicyAdaptive {
		plan.Actions = append(plan.Actions, w.adaptive(*pr, now, cfg, p, want, starting)...)
		return plan
	}
	if b := w.backoff(*pr, p.Lookback); b != nil {
		until := b.LastBuildAt.Add(time.Duration(b.NumFailed) * cfg.BackoffInterval)
		if now.Before(until) || now.Equal(until) {
			plan.Actions = append(plan.Actions, prebuilds.Action{
				Kind: prebuilds.ActionBackoff, Reason: prebuilds.ReasonBackoff, Count: want, Until: until,
			})
			return plan
		}
	}
	plan.Actions = append(plan.Actions, prebuilds.Action{
		Kind: prebuilds.ActionCreate, Reason: prebuilds.ReasonMissing, Count: want,
	})
	return plan
}

// adaptive is PolicyAdaptive's decision for an active preset that wants
// more prebuilds (after the hard limit and validation_failed).
func (w *World) adaptive(pr prebuilds.Preset, now time.Time, cfg prebuilds.PlanConfig, p prebuilds.SnapshotParams, want, starting int) []prebuilds.Action {
	single := func(r prebuilds.Reason) []prebuilds.Action {
		if starting > 0 {
			return []prebuilds.Action{{Kind: prebuilds.ActionBlocked, Reason: r, Count: want}}
		}
		out := []prebuilds.Action{{Kind: prebuilds.ActionCreate, Reason: r, Count: 1}}
		if want > 1 {
			out = append(out, prebuilds.Action{Kind: prebuilds.ActionBlocked, Reason: r, Count: want - 1})
		}
		return out
	}
	if streak, lastFailedAt := w.streak(pr, p.Lookback); streak >= 1 {
		// The failures that back off: all of them, or all but the first
		// when the preset is proven (its first failure gets a probe now).
		n := streak
		if w.proven(pr) {
			n = streak - 1
		}
		if n >= 1 {
			until := lastFailedAt.Add(adaptiveWait(n, cfg.BackoffInterval, cfg.BackoffMax))
			if !now.After(until) {
				return []prebuilds.Action{{Kind: prebuilds.ActionBackoff, Reason: prebuilds.ReasonBackoff, Count: want, Until: until}}
			}
		}
		return single(prebuilds.ReasonProbe)
	}
	if cfg.Canary && !w.proven(pr) {
		return single(prebuilds.ReasonCanary)
	}
	return []prebuilds.Action{{Kind: prebuilds.ActionCreate, Reason: prebuilds.ReasonMissing, Count: want}}
}

// PlanAll plans every preset whose desired count is set, in preset ID order,
// then applies the create budget (cfg.MaxCreatesPerPass).
func (w *World) PlanAll(now time.Time, cfg prebuilds.PlanConfig, p prebuilds.SnapshotParams) []prebuilds.Plan {
	var plans []prebuilds.Plan
	for _, pr := range w.plannedPresets() {
		plans = append(plans, w.Plan(pr.ID, now, cfg, p))
	}
	if cfg.MaxCreatesPerPass > 0 {
		applyBudget(plans, cfg.MaxCreatesPerPass)
	}
	return plans
}
