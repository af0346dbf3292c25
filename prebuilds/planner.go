package prebuilds

import (
	"time"

	"github.com/google/uuid"
)

// ActionKind says what an action does.
type ActionKind string

// Action kinds. SetStatus, Create, Delete and CancelPending write; Backoff
// and Blocked explain why nothing is created.
const (
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
)

// Action is one step of a plan.
type Action struct {
	Kind   ActionKind
	Reason Reason
	// Count is the number of prebuilds to create (ActionCreate) or the
	// number that would have been created (ActionBackoff, ActionBlocked).
	Count int
	// InstanceIDs are the prebuilds to delete, oldest first (ActionDelete).
	InstanceIDs []uuid.UUID
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
	// BackoffInterval is multiplied by the number of recent failures to get
	// the backoff window.
	BackoffInterval time.Duration
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
	want := d - nValid - s.Starting
	if want <= 0 {
		return plan
	}
	switch {
	case s.HardLimited:
		plan.Actions = append(plan.Actions, Action{Kind: ActionBlocked, Reason: ReasonHardLimited, Count: want})
	case s.Preset.Status == PresetValidationFailed:
		plan.Actions = append(plan.Actions, Action{Kind: ActionBlocked, Reason: ReasonValidationFailed, Count: want})
	case s.Backoff != nil && !now.After(backoffUntil(*s.Backoff, cfg)):
		plan.Actions = append(plan.Actions, Action{Kind: ActionBackoff, Reason: ReasonBackoff, Count: want, Until: backoffUntil(*s.Backoff, cfg)})
	default:
		plan.Actions = append(plan.Actions, Action{Kind: ActionCreate, Reason: ReasonMissing, Count: want})
	}
	return plan
}

func backoffUntil(b BackoffRow, cfg PlanConfig) time.Time {
	return b.LastBuildAt.Add(time.Duration(b.NumFailed) * cfg.BackoffInterval)
}

// PassPlan is the whole plan of one pass: every preset of a snapshot, its
// view and its plan.
type PassPlan struct {
	// Now is the snapshot's instant, at which every preset was planned.
	Now time.Time
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

// PlanAll plans every preset of a snapshot: one indexing pass, then one
// planning pass. Plans come back in canonical preset order.
func PlanAll(s *GlobalSnapshot, cfg PlanConfig) PassPlan {
	views := s.Index()
	plans := make([]Plan, len(views))
	for i, v := range views {
		plans[i] = PlanPreset(v, s.Now, cfg)
	}
	return PassPlan{Now: s.Now, Paused: s.Paused, Views: views, Plans: plans}
}
