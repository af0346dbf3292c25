package scenario

import (
	"fmt"
	"slices"
	"time"

	"github.com/prebuildkit/prebuildkit/model"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Epoch is the instant of offset 0 of every scenario that does not set its
// own Start: Monday 2025-06-02 00:00 UTC.
var Epoch = time.Date(2025, time.June, 2, 0, 0, 0, 0, time.UTC)

// Config is the reconciler configuration a scenario runs under: a
// prebuilds.Config, whose SnapshotParams and PlanConfig are the one mapping
// to the snapshot's and the planner's inputs, and whose hard limit has the
// one encoding of prebuilds.HardLimit (0 is the default 3, NoHardLimit off).
type Config = prebuilds.Config

// DefaultConfig is the Reconciler's defaults, spelt out: BackoffInterval
// 1m, BackoffLookback 1h, FailureHardLimit 3, PolicyCoder.
var DefaultConfig = Config{BackoffInterval: time.Minute, BackoffLookback: time.Hour, FailureHardLimit: 3}

// Scenario is one scenario as data: operations at time offsets, and the
// plans expected at later offsets. Keys ("t1", "p1", "i1") become IDs
// through ID.
type Scenario struct {
	// Name is stable, e.g. "Backoff/NumFailed", usable with go test -run.
	Name string
	// Rule is what the scenario pins down, in one plain sentence; a failure
	// prints it first.
	Rule string
	// Pos is where the scenario is defined.
	Pos Pos
	// Start is the instant of offset 0; zero means Epoch.
	Start  time.Time
	Config Config
	// Steps are in non-decreasing At order.
	Steps []Step
	// Checks are in non-decreasing At order. A check sees every step whose
	// At is at or before its own.
	Checks []Check
}

// Step applies Op at offset At.
type Step struct {
	At time.Duration
	Op Op
}

// Check is the expected plan, at offset At, of every preset whose desired
// count is set (a preset not listed must not be planned).
type Check struct {
	At    time.Duration
	Plans []ExpectedPlan
	// Pos is where the check is defined.
	Pos Pos
}

// ExpectedPlan is a prebuilds.Plan written with keys.
type ExpectedPlan struct {
	Preset          string
	Desired         int
	ScheduleInvalid bool
	Actions         []ExpectedAction
}

// ExpectedAction is a prebuilds.Action written with keys. Until is an offset
// and only read for ActionBackoff.
type ExpectedAction struct {
	Kind      prebuilds.ActionKind
	Reason    prebuilds.Reason
	Count     int
	Instances []string
	Until     time.Duration
	// From and To are read only for ActionSetStatus.
	From, To prebuilds.PresetStatus
	// Builds are build keys (BuildKey), read only for ActionFailStuck; its
	// Instances are theirs.
	Builds []string
}

// Time returns the instant of offset d.
func (s Scenario) Time(d time.Duration) time.Time {
	start := s.Start
	if start.IsZero() {
		start = Epoch
	}
	return prebuilds.Micro(start.Add(d))
}

// Expected returns the plans of c with IDs, in canonical preset order (the
// order of prebuilds.PlanAll and model.World.PlanAll).
func (s Scenario) Expected(c Check) []prebuilds.Plan {
	plans := make([]prebuilds.Plan, 0, len(c.Plans))
	for _, e := range c.Plans {
		p := prebuilds.Plan{PresetID: ID(e.Preset), Desired: e.Desired, ScheduleInvalid: e.ScheduleInvalid}
		for _, a := range e.Actions {
			act := prebuilds.Action{Kind: a.Kind, Reason: a.Reason, Count: a.Count}
			for _, k := range a.Instances {
				act.InstanceIDs = append(act.InstanceIDs, ID(k))
			}
			if a.Kind == prebuilds.ActionBackoff {
				act.Until = s.Time(a.Until)
			}
			if a.Kind == prebuilds.ActionSetStatus {
				act.From, act.To = a.From, a.To
			}
			for _, k := range a.Builds {
				act.BuildIDs = append(act.BuildIDs, ID(k))
			}
			p.Actions = append(p.Actions, act)
		}
		plans = append(plans, p)
	}
	slices.SortFunc(plans, func(a, b prebuilds.Plan) int { return prebuilds.CompareUUID(a.PresetID, b.PresetID) })
	return plans
}

// StepsUntil returns the steps whose offset is at or before at.
func (s Scenario) StepsUntil(at time.Duration) []Step {
	var out []Step
	for _, st := range s.Steps {
		if st.At <= at {
			out = append(out, st)
		}
	}
	return out
}

// Model replays the steps up to offset at into a fresh model world.
func (s Scenario) Model(at time.Duration) (*model.World, error) {
	w := &model.World{}
	for i, st := range s.StepsUntil(at) {
		if err := st.Op.ApplyModel(w, s.Time(st.At)); err != nil {
			return nil, fmt.Errorf("scenario %s: step %d at %s (%T): %w", s.Name, i, st.At, st.Op, err)
		}
	}
	return w, nil
}
