package prebuilds

import (
	"time"

	"github.com/google/uuid"
)

// ActionKind says what an action does.
type ActionKind string

// Action kinds. FailStuck, SetStatus, Create, Delete and CancelPending
// write; Backoff and Blocked explain why nothing is created.
const (
	// ActionFailStuck fails stuck start builds (BuildIDs) by a conditional
	// update to failed with failure kind timeout.
	ActionFailStuck ActionKind = "fail_stuck"
	// ActionSetStatus moves the preset's stored status From → To by
	// compare-and-set, so that it follows the live hard-limit condition.
	ActionSetStatus     ActionKind = "set_status"
	ActionCreate        ActionKind = "create"
	ActionDelete        ActionKind = "delete"
	ActionCancelPending ActionKind = "cancel_pending"
	ActionBackoff       ActionKind = "backoff"
	ActionBlocked       ActionKind = "blocked"
)

// Reason is the machine-readable cause of an action.
type Reason string

// Reasons.
const (
	// ReasonMissing: fewer valid prebuilds (running or starting) than desired.
	ReasonMissing Reason = "missing"
	// ReasonExpired: the prebuild outlived the TTL or predates invalidation.
	ReasonExpired Reason = "expired"
	// ReasonExtraneous: more valid prebuilds than desired.
	ReasonExtraneous Reason = "extraneous"
	// ReasonInactive: the preset is not active (version replaced, template
	// deprecated or deleted).
	ReasonInactive Reason = "inactive"
	// ReasonBackoff: recent failures delay creation.
	ReasonBackoff Reason = "backoff"
	// ReasonHardLimited: the newest K builds failed; creation stops.
	ReasonHardLimited Reason = "hard_limited"
	// ReasonRecovered: the hard-limit condition cleared (ActionSetStatus
	// hard_limited → healthy).
	ReasonRecovered Reason = "recovered"
	// ReasonValidationFailed: the provisioner reported a failure that
	// retrying cannot fix; creation stops until an admin reset or a new
	// version.
	ReasonValidationFailed Reason = "validation_failed"
	// ReasonProbe (PolicyAdaptive): after a failure (and its backoff, if
	// any), one build at a time tests whether the preset works again.
	ReasonProbe Reason = "probe"
	// ReasonCanary (PolicyAdaptive): the preset has no successful build yet
	// (new version, cold start, reset); one build goes first.
	ReasonCanary Reason = "canary"
	// ReasonDeadline: a start build outlived Config.BuildTimeout.
	ReasonDeadline Reason = "deadline"
	// ReasonBudget: Config.MaxCreatesPerPass was spent on presets missing a
	// larger fraction of their pool.
	ReasonBudget Reason = "budget"
)

// Action is one step of a plan.
type Action struct {
	Kind   ActionKind
	Reason Reason
	// Count is the number of prebuilds to create (ActionCreate) or the
	// number that would have been created (ActionBackoff, ActionBlocked).
	Count int
	// InstanceIDs are the prebuilds to delete, oldest first (ActionDelete),
	// or the instances of BuildIDs (ActionFailStuck).
	InstanceIDs []uuid.UUID
	// BuildIDs are the stuck builds to fail, in ID order (ActionFailStuck).
	BuildIDs []uuid.UUID
	// Until is when backoff ends (ActionBackoff); creation resumes strictly
	// after it.
	Until time.Time
	// From and To are the status transition of ActionSetStatus.
	From, To PresetStatus
}

// Plan is what the reconciler should do for one preset at one instant.
type Plan struct {
	PresetID uuid.UUID
	// Desired is desired_at(P, now): the scheduled or static target.
	Desired int
	// ScheduleInvalid reports that a stored timezone or cron expression could
	// not be evaluated, so Desired fell back to the static value.
	ScheduleInvalid bool
	Actions         []Action
}

// Empty reports whether the plan does nothing and explains nothing.
func (p Plan) Empty() bool { return len(p.Actions) == 0 }

// Creates returns the total number of prebuilds the plan creates.
func (p Plan) Creates() int {
	n := 0
	for _, a := range p.Actions {
		if a.Kind == ActionCreate {
			n += a.Count
		}
	}
	return n
}

// Deletes returns the prebuilds the plan deletes, in order.
func (p Plan) Deletes() []uuid.UUID {
	var ids []uuid.UUID
	for _, a := range p.Actions {
		if a.Kind == ActionDelete {
			ids = append(ids, a.InstanceIDs...)
		}
	}
	return ids
}

// StatusChange returns the plan's status transition, if it has one.
func (p Plan) StatusChange() (Action, bool) {
	for _, a := range p.Actions {
		if a.Kind == ActionSetStatus {
			return a, true
		}
	}
	return Action{}, false
}

// PlanConfig is the part of Config the planner reads. Build it with
// Config.PlanConfig.
type PlanConfig struct {
	// BackoffInterval is the unit of both policies' backoff.
	BackoffInterval time.Duration
	// Policy is the failure policy ("" means DefaultFailurePolicy).
	Policy FailurePolicy
	// BackoffMax bounds PolicyAdaptive's exponential backoff.
	BackoffMax time.Duration
	// Canary turns PolicyAdaptive's canary on.
	Canary bool
	// MaxCreatesPerPass bounds the creates of a pass (PlanAll); 0 is
	// unlimited.
	MaxCreatesPerPass int
}

// Expired reports whether a prebuild created at createdAt has expired at now
// under preset p: created before p.InvalidatedAt, or older than a positive
// TTL.
func Expired(p Preset, createdAt, now time.Time) bool {
	if !p.InvalidatedAt.IsZero() && createdAt.Before(p.InvalidatedAt) {
		return true
	}
	return p.TTL > 0 && now.Sub(createdAt) > p.TTL
}

// PlanPreset is the pure planner (docs/spec.md, "The planner"): it decides
// what to do for one preset at now. It performs no I/O and depends on
// nothing but its inputs.
func PlanPreset(s PresetSnapshot, now time.Time, cfg PlanConfig) Plan {
	plan := Plan{PresetID: s.Preset.ID}
	d, err := DesiredAt(s.Preset.Preset, now)
	d = max(d, 0) // a negative count from unvalidated stored data wants nothing
	plan.Desired = d
	plan.ScheduleInvalid = err != nil
	if s.Paused {
		return plan
	}

	// Stuck builds first, under both policies and whatever the preset's
	// state: they are failed, and no longer count as supply.
	if len(s.Stuck) > 0 {
		a := Action{Kind: ActionFailStuck, Reason: ReasonDeadline,
			BuildIDs: make([]uuid.UUID, len(s.Stuck)), InstanceIDs: make([]uuid.UUID, len(s.Stuck))}
		for i, b := range s.Stuck {
			a.BuildIDs[i], a.InstanceIDs[i] = b.BuildID, b.InstanceID
		}
		plan.Actions = append(plan.Actions, a)
	}
	starting := max(s.Starting-len(s.Stuck), 0)

	if !s.Preset.Active() {
		// An inactive preset keeps its status: its builds no longer count
		// toward the hard limit, and a version change is not a recovery.
		if s.PendingInactive > 0 {
			plan.Actions = append(plan.Actions, Action{Kind: ActionCancelPending, Reason: ReasonInactive, Count: s.PendingInactive})
		}
		if len(s.Running) > 0 {
			ids := make([]uuid.UUID, len(s.Running))
			for i, r := range s.Running {
				ids[i] = r.InstanceID
			}
			plan.Actions = append(plan.Actions, Action{Kind: ActionDelete, Reason: ReasonInactive, InstanceIDs: ids})
		}
		return plan
	}

	// The stored status follows the live hard-limit condition in both
	// directions; validation_failed is left to ResetPreset.
	switch {
	case s.HardLimited && s.Preset.Status == PresetHealthy:
		plan.Actions = append(plan.Actions, Action{Kind: ActionSetStatus, Reason: ReasonHardLimited, From: PresetHealthy, To: PresetHardLimited})
	case !s.HardLimited && s.Preset.Status == PresetHardLimited:
		plan.Actions = append(plan.Actions, Action{Kind: ActionSetStatus, Reason: ReasonRecovered, From: PresetHardLimited, To: PresetHealthy})
	}

	// Running is oldest first. Count before collecting IDs, so that a preset
	// with nothing to delete (the steady state) allocates nothing.
	nExpired := 0
	for _, r := range s.Running {
		if Expired(s.Preset.Preset, r.CreatedAt, now) {
			nExpired++
		}
	}
	nValid := len(s.Running) - nExpired
	if nExpired > 0 {
		ids := make([]uuid.UUID, 0, nExpired)
		for _, r := range s.Running {
			if Expired(s.Preset.Preset, r.CreatedAt, now) {
				ids = append(ids, r.InstanceID)
			}
		}
		plan.Actions = append(plan.Actions, Action{Kind: ActionDelete, Reason: ReasonExpired, InstanceIDs: ids})
	}
	if extra := nValid - d; extra > 0 {
		ids := make([]uuid.UUID, 0, extra)
		for _, r := range s.Running {
			if len(ids) == extra {
				break
			}
			if !Expired(s.Preset.Preset, r.CreatedAt, now) {
				ids = append(ids, r.InstanceID)
			}
		}
		plan.Actions = append(plan.Actions, Action{Kind: ActionDelete, Reason: ReasonExtraneous, InstanceIDs: ids})
	}
	want := d - nValid - starting
	if want <= 0 {
		return plan
	}
	block := func(r Reason, n int) {
		plan.Actions = append(plan.Actions, Action{Kind: ActionBlocked, Reason: r, Count: n})
	}
	switch {
	case s.HardLimited:
		block(ReasonHardLimited, want)
	case s.Preset.Status == PresetValidationFailed:
		block(ReasonValidationFailed, want)
	case cfg.Policy.Resolved() == PolicyAdaptive:
		plan.Actions = adaptiveGate(plan.Actions, s, now, cfg, want, starting)
	case s.Backoff != nil && !now.After(backoffUntil(*s.Backoff, cfg)):
		plan.Actions = append(plan.Actions, Action{Kind: ActionBackoff, Reason: ReasonBackoff, Count: want, Until: backoffUntil(*s.Backoff, cfg)})
	default:
		plan.Actions = append(plan.Actions, Action{Kind: ActionCreate, Reason: ReasonMissing, Count: want})
	}
	return plan
}

// adaptiveGate appends PolicyAdaptive's decision for a preset that wants
// more prebuilds: back off after a failure streak (from its second failure
// when the preset is proven), then probe one build at a time; build one
// canary before a preset is proven; otherwise create.
func adaptiveGate(actions []Action, s PresetSnapshot, now time.Time, cfg PlanConfig, want, starting int) []Action {
	one := func(r Reason) []Action {
		if starting > 0 {
			return append(actions, Action{Kind: ActionBlocked, Reason: r, Count: want})
		}
		actions = append(actions, Action{Kind: ActionCreate, Reason: r, Count: 1})
		if want > 1 {
			actions = append(actions, Action{Kind: ActionBlocked, Reason: r, Count: want - 1})
		}
		return actions
	}
	switch {
	case s.Streak >= 1:
		if n := backoffSteps(s.Streak, s.Proven); n >= 1 {
			if until := adaptiveUntil(s.LastFailedAt, n, cfg.BackoffInterval, cfg.BackoffMax); !now.After(until) {
				return append(actions, Action{Kind: ActionBackoff, Reason: ReasonBackoff, Count: want, Until: until})
			}
		}
		return one(ReasonProbe)
	case cfg.Canary && !s.Proven:
		return one(ReasonCanary)
	}
	return append(actions, Action{Kind: ActionCreate, Reason: ReasonMissing, Count: want})
}

func backoffUntil(b BackoffRow, cfg PlanConfig) time.Time {
	return b.LastBuildAt.Add(time.Duration(b.NumFailed) * cfg.BackoffInterval)
}

// PassPlan is the whole plan of one pass: every preset of a snapshot, its
// view and its plan.
type PassPlan struct {
	// Now is the snapshot's instant, at which every preset was planned.
	Now time.Time
	// StuckBefore is the snapshot's stuck-build cut-off (zero when off),
	// re-checked by FailStuckBuild.
	StuckBefore time.Time
	// Paused is the snapshot's pause switch: every plan is empty.
	Paused bool
	// Views are the per-preset views of the snapshot in canonical preset
	// order (see GlobalSnapshot.Index); Plans[i] is the plan of Views[i].
	Views []PresetSnapshot
	Plans []Plan
}

// Find returns the view and plan of a preset, if the pass planned it.
func (pp PassPlan) Find(presetID uuid.UUID) (PresetSnapshot, Plan, bool) {
	for i, v := range pp.Views {
		if v.Preset.ID == presetID {
			return v, pp.Plans[i], true
		}
	}
	return PresetSnapshot{}, Plan{}, false
}

// PlanAll plans every preset of a snapshot: one indexing pass, one
// planning pass, then the create budget (cfg.MaxCreatesPerPass, shared by
// ShareCreates). Plans come back in canonical preset order.
func PlanAll(s *GlobalSnapshot, cfg PlanConfig) PassPlan {
	return planAll(s, cfg, time.Time{})
}

func planAll(s *GlobalSnapshot, cfg PlanConfig, stuckBefore time.Time) PassPlan {
	views := s.Index()
	plans := make([]Plan, len(views))
	for i, v := range views {
		plans[i] = PlanPreset(v, s.Now, cfg)
	}
	if cfg.MaxCreatesPerPass > 0 {
		applyBudget(plans, cfg.MaxCreatesPerPass)
	}
	return PassPlan{Now: s.Now, StuckBefore: stuckBefore, Paused: s.Paused, Views: views, Plans: plans}
}
