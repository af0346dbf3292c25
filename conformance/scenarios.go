package conformance

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

// Config is the reconciler configuration a scenario runs under.
type Config struct {
	BackoffInterval time.Duration
	BackoffLookback time.Duration
	// HardLimit is K; 0 turns the hard limit off.
	HardLimit int
}

// DefaultConfig is the Reconciler's defaults: BackoffInterval 1m, BackoffLookback
// 1h, FailureHardLimit 3.
var DefaultConfig = Config{BackoffInterval: time.Minute, BackoffLookback: time.Hour, HardLimit: 3}

// reconciler is the Reconciler configuration of c: a HardLimit of 0 (off in
// scenarios) becomes prebuilds.NoHardLimit.
func (c Config) reconciler() prebuilds.Config {
	k := prebuilds.HardLimit(c.HardLimit)
	if c.HardLimit <= 0 {
		k = prebuilds.NoHardLimit
	}
	return prebuilds.Config{BackoffInterval: c.BackoffInterval, BackoffLookback: c.BackoffLookback, FailureHardLimit: k}
}

// PlanConfig is the planner's part of c (prebuilds.Config.PlanConfig).
func (c Config) PlanConfig() prebuilds.PlanConfig { return c.reconciler().PlanConfig() }

// SnapshotParams are the snapshot inputs at now under c
// (prebuilds.Config.SnapshotParams).
func (c Config) SnapshotParams(now time.Time) prebuilds.SnapshotParams {
	return c.reconciler().SnapshotParams(now)
}

// Scenario is one scenario as data: operations at time offsets, and
// the plans expected at later offsets. Keys ("t1", "p1", "i1") become IDs
// through ID.
type Scenario struct {
	// Name is stable, e.g. "Backoff/NumFailed", usable with go test -run.
	Name string
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

// ---- table helpers ----

const sec = time.Second

func intp(n int) *int { return &n }

// fixture names a template, its version and a preset of that version.
type fixture struct{ t, v, p string }

var f1 = fixture{"t1", "v1", "p1"}

// preset is the UpsertPreset of the fixture's preset.
func (f fixture) preset(desired int) UpsertPreset {
	return UpsertPreset{Key: f.p, Version: f.v, Desired: intp(desired)}
}

// active sets up the template, its version as the active one, and the
// preset with the given desired count, at offset 0.
func (f fixture) active(desired int) Step {
	return f.activeWith(f.preset(desired))
}

func (f fixture) activeWith(p UpsertPreset) Step {
	return Step{0, Seq{AddTemplate{f.t}, AddVersion{f.v, f.t}, Activate{f.t, f.v}, p}}
}

func (f fixture) create(key string) CreateInstance {
	return CreateInstance{Key: key, Template: f.t, Version: f.v, Preset: f.p}
}

// running: a prebuild created at `at` whose build #1 succeeded at once.
func (f fixture) running(key string, at time.Duration) Step {
	return Step{at, Seq{f.create(key), UpdateJob{key, 1, prebuilds.JobSucceeded, ""}}}
}

// failed: a prebuild created at `at` whose build #1 failed at once.
func (f fixture) failed(key string, at time.Duration, kind prebuilds.FailureKind) Step {
	return Step{at, Seq{f.create(key), UpdateJob{key, 1, prebuilds.JobFailed, kind}}}
}

// starting: a prebuild created at `at`, build #1 still pending.
func (f fixture) starting(key string, at time.Duration) Step {
	return Step{at, f.create(key)}
}

// stopping: a running prebuild created at `at` with a pending stop build #2.
func (f fixture) stopping(key string, at time.Duration) Step {
	return Step{at, Seq{f.create(key), UpdateJob{key, 1, prebuilds.JobSucceeded, ""},
		StartBuild{Instance: key, Number: 2, Version: f.v, Transition: prebuilds.TransitionStop}}}
}

// deleting: a running prebuild created at `at` with a pending delete build #2.
func (f fixture) deleting(key string, at time.Duration) Step {
	return Step{at, Seq{f.create(key), UpdateJob{key, 1, prebuilds.JobSucceeded, ""},
		StartBuild{Instance: key, Number: 2, Version: f.v, Transition: prebuilds.TransitionDelete}}}
}

// runningN: n running prebuilds key1..keyN created one second apart from at.
func (f fixture) runningN(prefix string, n int, at time.Duration) []Step {
	var out []Step
	for i := range n {
		out = append(out, f.running(fmt.Sprintf("%s%d", prefix, i+1), at+time.Duration(i)*sec))
	}
	return out
}

// newVersion adds version v of the fixture's template, optionally with a
// preset, and activates it, at `at`.
func (f fixture) newVersion(v string, at time.Duration, preset *UpsertPreset) Step {
	ops := Seq{AddVersion{v, f.t}}
	if preset != nil {
		ops = append(ops, *preset)
	}
	return Step{at, append(ops, Activate{f.t, v})}
}

func steps(groups ...any) []Step {
	var out []Step
	for _, g := range groups {
		switch g := g.(type) {
		case Step:
			out = append(out, g)
		case []Step:
			out = append(out, g...)
		default:
			panic(fmt.Sprintf("conformance: steps: unexpected %T", g)) // table construction bug, not input
		}
	}
	slices.SortStableFunc(out, func(a, b Step) int { return int(a.At - b.At) })
	return out
}

func want(preset string, desired int, actions ...ExpectedAction) ExpectedPlan {
	return ExpectedPlan{Preset: preset, Desired: desired, Actions: actions}
}

func check(at time.Duration, plans ...ExpectedPlan) Check { return Check{At: at, Plans: plans} }

func create(n int) ExpectedAction {
	return ExpectedAction{Kind: prebuilds.ActionCreate, Reason: prebuilds.ReasonMissing, Count: n}
}

func del(reason prebuilds.Reason, keys ...string) ExpectedAction {
	return ExpectedAction{Kind: prebuilds.ActionDelete, Reason: reason, Instances: keys}
}

func backoff(n int, until time.Duration) ExpectedAction {
	return ExpectedAction{Kind: prebuilds.ActionBackoff, Reason: prebuilds.ReasonBackoff, Count: n, Until: until}
}

func blocked(reason prebuilds.Reason, n int) ExpectedAction {
	return ExpectedAction{Kind: prebuilds.ActionBlocked, Reason: reason, Count: n}
}

func setStatus(from, to prebuilds.PresetStatus) ExpectedAction {
	r := prebuilds.ReasonHardLimited
	if to == prebuilds.PresetHealthy {
		r = prebuilds.ReasonRecovered
	}
	return ExpectedAction{Kind: prebuilds.ActionSetStatus, Reason: r, From: from, To: to}
}

// hardLimited is the status transition of a healthy preset that reached the
// hard limit.
var hardLimited = setStatus(prebuilds.PresetHealthy, prebuilds.PresetHardLimited)

func cancelPending(n int) ExpectedAction {
	return ExpectedAction{Kind: prebuilds.ActionCancelPending, Reason: prebuilds.ReasonInactive, Count: n}
}

func withConfig(s Scenario) Scenario {
	if s.Config == (Config{}) {
		s.Config = DefaultConfig
	}
	return s
}

// ---- the table ----

// Scenarios returns the planning scenarios of docs/spec.md (and a few more that pin
// definitions down), each a fresh value. The expected plans are written by
// hand from the rules of docs/spec.md.
func Scenarios() []Scenario {
	const (
		expired    = prebuilds.ReasonExpired
		extraneous = prebuilds.ReasonExtraneous
		inactive   = prebuilds.ReasonInactive
	)
	p2 := UpsertPreset{Key: "p2", Version: "v2", Desired: intp(1)}
	ttl := func(d time.Duration, desired int) UpsertPreset {
		p := f1.preset(desired)
		p.TTL = d
		return p
	}
	withSchedules := func(desired int, tz string, s ...prebuilds.Schedule) UpsertPreset {
		p := f1.preset(desired)
		p.Timezone = tz
		p.Schedules = s
		return p
	}
	la := func(ts string) time.Time {
		t, err := time.Parse(time.RFC3339, ts)
		if err != nil {
			panic(err) // constant in the table
		}
		return t
	}
	fallStart := la("2025-11-02T00:00:00Z")
	springStart := la("2025-03-08T00:00:00Z")
	off := func(start time.Time, ts string) time.Duration { return la(ts).Sub(start) }

	list := []Scenario{
		{
			Name:   "Basic/NoPrebuilds",
			Steps:  steps(f1.active(0)),
			Checks: []Check{check(time.Minute, want("p1", 0))},
		},
		{
			Name:   "Basic/NetNew",
			Steps:  steps(f1.active(1)),
			Checks: []Check{check(time.Minute, want("p1", 1, create(1)))},
		},
		{
			Name:   "Basic/DesiredUpdatedInPlace",
			Steps:  steps(f1.active(1), Step{10 * sec, f1.preset(3)}),
			Checks: []Check{check(5*sec, want("p1", 1, create(1))), check(20*sec, want("p1", 3, create(3)))},
		},
		{
			Name:   "Basic/UnconfiguredPresetNotPlanned",
			Steps:  steps(f1.activeWith(UpsertPreset{Key: "p1", Version: "v1"})),
			Checks: []Check{check(time.Minute)},
		},
		{
			Name:  "Outdated/DeleteAndReplace",
			Steps: steps(f1.active(1), f1.running("i1", 10*sec), f1.newVersion("v2", 20*sec, &p2)),
			Checks: []Check{
				check(15*sec, want("p1", 1)),
				check(30*sec, want("p1", 1, del(inactive, "i1")), want("p2", 1, create(1))),
			},
		},
		{
			Name: "Outdated/Deleting",
			Steps: steps(f1.active(2), f1.running("i1", 10*sec), f1.deleting("i2", 11*sec),
				f1.newVersion("v2", 20*sec, nil)),
			Checks: []Check{check(30*sec, want("p1", 2, del(inactive, "i1")))},
		},
		{
			Name: "Outdated/CancelPending",
			Steps: steps(f1.active(2), f1.starting("i1", 10*sec), f1.starting("i2", 11*sec),
				// A first build a worker already took is not pending: it is left alone.
				f1.starting("i3", 12*sec), Step{12 * sec, UpdateJob{"i3", 1, prebuilds.JobRunning, ""}},
				f1.newVersion("v2", 20*sec, nil)),
			Checks: []Check{
				check(15*sec, want("p1", 2)),
				check(30*sec, want("p1", 2, cancelPending(2))),
			},
		},
		{
			Name:   "Inactive/Deprecated",
			Steps:  steps(f1.active(1), f1.running("i1", 10*sec), Step{20 * sec, Deprecate{Template: "t1"}}),
			Checks: []Check{check(30*sec, want("p1", 1, del(inactive, "i1")))},
		},
		{
			Name:   "Inactive/DeletedTemplate",
			Steps:  steps(f1.active(2), f1.running("i1", 10*sec), Step{20 * sec, DeleteTemplate{"t1"}}),
			Checks: []Check{check(15*sec, want("p1", 2, create(1))), check(30*sec, want("p1", 2, del(inactive, "i1")))},
		},
		{
			Name: "Inactive/ExpiredDeletedToo",
			Steps: steps(f1.activeWith(ttl(time.Minute, 2)), f1.running("i1", 10*sec), f1.running("i2", 2*time.Minute),
				Step{2*time.Minute + 10*sec, Deprecate{Template: "t1"}}),
			// i1 expired, i2 valid: both go.
			Checks: []Check{check(2*time.Minute+30*sec, want("p1", 2, del(inactive, "i1", "i2")))},
		},
		{
			Name:   "Supply/Starting/d1r0s1",
			Steps:  steps(f1.active(1), f1.starting("i1", 10*sec)),
			Checks: []Check{check(20*sec, want("p1", 1))},
		},
		{
			Name:   "Supply/Starting/d2r1s1",
			Steps:  steps(f1.active(2), f1.running("i1", 10*sec), f1.starting("i2", 11*sec)),
			Checks: []Check{check(20*sec, want("p1", 2))},
		},
		{
			Name:   "Supply/Starting/d3r1s2",
			Steps:  steps(f1.active(3), f1.running("i1", 10*sec), f1.starting("i2", 11*sec), f1.starting("i3", 12*sec)),
			Checks: []Check{check(20*sec, want("p1", 3))},
		},
		{
			Name:   "Supply/StartingNotExtraneous",
			Steps:  steps(f1.active(2), f1.runningN("i", 2, 10*sec), f1.starting("s1", 15*sec)),
			Checks: []Check{check(20*sec, want("p1", 2))},
		},
		{
			Name:   "Supply/StoppingNotSupply/d1r0st1",
			Steps:  steps(f1.active(1), f1.stopping("i1", 10*sec)),
			Checks: []Check{check(20*sec, want("p1", 1, create(1)))},
		},
		{
			Name:   "Supply/StoppingNotSupply/d3r2st1",
			Steps:  steps(f1.active(3), f1.runningN("i", 2, 10*sec), f1.stopping("st1", 15*sec)),
			Checks: []Check{check(20*sec, want("p1", 3, create(1)))},
		},
		{
			Name:   "Supply/DeletingNotSupply/d2r1dl1",
			Steps:  steps(f1.active(2), f1.running("i1", 10*sec), f1.deleting("dl1", 15*sec)),
			Checks: []Check{check(20*sec, want("p1", 2, create(1)))},
		},
		{
			Name:   "Supply/BalancedWithStop/d3r3st1",
			Steps:  steps(f1.active(3), f1.runningN("i", 3, 10*sec), f1.stopping("st1", 15*sec)),
			Checks: []Check{check(20*sec, want("p1", 3))},
		},
		{
			Name:   "Supply/BalancedWithDelete/d2r2dl1",
			Steps:  steps(f1.active(2), f1.runningN("i", 2, 10*sec), f1.deleting("dl1", 15*sec)),
			Checks: []Check{check(20*sec, want("p1", 2))},
		},
		{
			Name: "Supply/CanceledStartNotSupply",
			Steps: steps(f1.active(1), f1.starting("i1", 10*sec),
				Step{11 * sec, UpdateJob{"i1", 1, prebuilds.JobCanceled, ""}}),
			Checks: []Check{check(20*sec, want("p1", 1, create(1)))},
		},
		{
			Name: "Supply/ClaimedNotSupply",
			Steps: steps(f1.active(1), f1.running("i1", 10*sec), Step{11 * sec, SetReady{Instance: "i1"}},
				Step{20 * sec, Claim{Preset: "p1", Want: "i1"}}),
			Checks: []Check{check(15*sec, want("p1", 1)), check(30*sec, want("p1", 1, create(1)))},
		},
		{
			// The current preset is the preset of the latest start build
			// that has one: a preset-less restart stays attributed to p1.
			Name: "Supply/PresetlessRestart",
			Steps: steps(f1.active(1), f1.running("i1", 10*sec),
				Step{20 * sec, StartBuild{Instance: "i1", Number: 2, Version: "v1", Transition: prebuilds.TransitionStop}},
				Step{21 * sec, UpdateJob{"i1", 2, prebuilds.JobSucceeded, ""}},
				Step{30 * sec, StartBuild{Instance: "i1", Number: 3, Version: "v1", Transition: prebuilds.TransitionStart}},
				Step{40 * sec, UpdateJob{"i1", 3, prebuilds.JobSucceeded, ""}}),
			Checks: []Check{
				check(15*sec, want("p1", 1)),            // running
				check(20*sec, want("p1", 1, create(1))), // stop pending: not supply
				check(25*sec, want("p1", 1, create(1))), // stopped: not supply
				check(35*sec, want("p1", 1)),            // preset-less start pending counts as starting
				check(45*sec, want("p1", 1)),            // running again, for p1
			},
		},
		{
			Name:   "Extraneous/DeleteOldest",
			Steps:  steps(f1.active(1), f1.running("i1", 10*sec), f1.running("i2", 20*sec)),
			Checks: []Check{check(30*sec, want("p1", 1, del(extraneous, "i1")))},
		},
		{
			Name:   "Extraneous/WithDeleting/d3r5dl2",
			Steps:  steps(f1.active(3), f1.runningN("i", 5, 10*sec), f1.deleting("dl1", 20*sec), f1.deleting("dl2", 21*sec)),
			Checks: []Check{check(30*sec, want("p1", 3, del(extraneous, "i1", "i2")))},
		},
		{
			Name:  "Expiry/TTL",
			Steps: steps(f1.activeWith(ttl(time.Hour, 2)), f1.running("i1", 0), f1.running("i2", 30*time.Minute)),
			Checks: []Check{
				check(45*time.Minute, want("p1", 2)),                                                       // r2 e0
				check(time.Hour, want("p1", 2)),                                                            // age = ttl is not expired
				check(time.Hour+time.Microsecond, want("p1", 2, del(expired, "i1"), create(1))),            // r1 e1
				check(90*time.Minute+time.Microsecond, want("p1", 2, del(expired, "i1", "i2"), create(2))), // r0 e2
			},
		},
		{
			Name: "Expiry/TwoExpiredTwoValid",
			Steps: steps(f1.activeWith(ttl(time.Hour, 2)), f1.running("i1", 0), f1.running("i2", sec),
				f1.running("i3", time.Hour), f1.running("i4", time.Hour+sec)),
			Checks: []Check{check(time.Hour+2*sec, want("p1", 2, del(expired, "i1", "i2")))},
		},
		{
			Name: "Expiry/AndSurplus",
			Steps: steps(f1.activeWith(ttl(time.Hour, 2)), f1.running("i1", 0), f1.running("i2", 10*time.Minute),
				f1.running("i3", 20*time.Minute), f1.running("i4", 30*time.Minute)),
			Checks: []Check{check(time.Hour+time.Minute, want("p1", 2, del(expired, "i1"), del(extraneous, "i2")))},
		},
		{
			Name: "Invalidation/AllBefore",
			Steps: steps(f1.active(2), f1.running("i1", 10*sec), f1.running("i2", 20*sec),
				Step{30 * sec, Invalidate{"p1"}}),
			Checks: []Check{
				check(25*sec, want("p1", 2)),
				check(40*sec, want("p1", 2, del(expired, "i1", "i2"), create(2))),
			},
		},
		{
			// A prebuild created at the invalidation instant is valid.
			Name: "Invalidation/OneNotBefore",
			Steps: steps(f1.active(2), f1.running("i1", 10*sec), Step{20 * sec, Invalidate{"p1"}},
				f1.running("i2", 20*sec)),
			Checks: []Check{check(40*sec, want("p1", 2, del(expired, "i1"), create(1)))},
		},
		{
			Name:   "Backoff/Boundary",
			Config: Config{BackoffInterval: 5 * sec, BackoffLookback: time.Hour, HardLimit: 3},
			Steps:  steps(f1.active(1), f1.failed("i1", 10*sec, prebuilds.FailureTransient)),
			Checks: []Check{
				check(10*sec, want("p1", 1, backoff(1, 15*sec))),
				check(15*sec, want("p1", 1, backoff(1, 15*sec))),
				check(15*sec+time.Microsecond, want("p1", 1, create(1))),
			},
		},
		{
			// Only failures ranked within the static desired count open a
			// backoff window: two newer successes push the failure out, and a
			// claim of one of them brings it back in.
			Name: "Backoff/Window",
			Steps: steps(f1.active(2), f1.failed("i1", 10*sec, ""), f1.running("i2", 20*sec), f1.running("i3", 30*sec),
				Step{31 * sec, SetReady{Instance: "i2"}}, Step{50 * sec, Claim{Preset: "p1", Want: "i2"}}),
			Checks: []Check{
				check(40*sec, want("p1", 2)),
				check(60*sec, want("p1", 2, backoff(1, 70*sec))),
				check(70*sec+time.Microsecond, want("p1", 2, create(1))),
			},
		},
		{
			// Without a row the schedule's extra demand is created at once.
			Name: "Backoff/WindowUsesStaticDesired",
			Steps: steps(f1.activeWith(withSchedules(2, "UTC", prebuilds.Schedule{Cron: "* * * * *", Instances: 3})),
				f1.failed("i1", 10*sec, ""), f1.running("i2", 20*sec), f1.running("i3", 30*sec)),
			Checks: []Check{check(40*sec, want("p1", 3, create(1)))},
		},
		{
			Name:   "Backoff/NumFailed",
			Config: Config{BackoffInterval: 5 * sec, BackoffLookback: time.Hour, HardLimit: 3},
			Steps: steps(f1.active(2), f1.failed("i1", 10*sec, ""), f1.failed("i2", 10*sec, ""),
				f1.failed("i3", 30*sec, ""), f1.running("i4", 31*sec)),
			Checks: []Check{
				check(15*sec, want("p1", 2, backoff(2, 20*sec))), // 10s + 2×5s
				check(20*sec+time.Microsecond, want("p1", 2, create(2))),
				check(40*sec, want("p1", 2, backoff(1, 45*sec))), // 30s + 3×5s
				check(45*sec+time.Microsecond, want("p1", 2, create(1))),
			},
		},
		{
			Name:   "Backoff/Lookback",
			Config: Config{BackoffInterval: 2 * time.Hour, BackoffLookback: time.Hour, HardLimit: 3},
			Steps:  steps(f1.active(1), f1.failed("i1", 0, "")),
			Checks: []Check{
				check(59*time.Minute, want("p1", 1, backoff(1, 2*time.Hour))),
				check(time.Hour, want("p1", 1, backoff(1, 2*time.Hour))), // created_at = lookback still counts
				check(time.Hour+time.Microsecond, want("p1", 1, create(1))),
			},
		},
		{
			Name:  "Backoff/Reset",
			Steps: steps(f1.active(1), f1.failed("i1", 10*sec, ""), Step{20 * sec, Reset{"p1"}}),
			Checks: []Check{
				check(15*sec, want("p1", 1, backoff(1, 70*sec))),
				check(21*sec, want("p1", 1, create(1))),
			},
		},
		{
			Name: "Backoff/SparesDeletes",
			Steps: steps(f1.active(1), f1.running("i1", 10*sec), f1.running("i2", 20*sec),
				f1.failed("i3", 30*sec, "")),
			Checks: []Check{check(40*sec, want("p1", 1, del(extraneous, "i1")))},
		},
		{
			Name: "Backoff/SparesExpired",
			Steps: steps(f1.active(1), f1.running("i1", 10*sec), Step{20 * sec, Invalidate{"p1"}},
				f1.failed("i2", 30*sec, "")),
			Checks: []Check{check(40*sec, want("p1", 1, del(expired, "i1"), backoff(1, 90*sec)))},
		},
		{
			Name:   "HardLimit/Reached",
			Config: Config{BackoffInterval: time.Minute, BackoffLookback: time.Hour, HardLimit: 1},
			Steps:  steps(f1.active(1), f1.failed("i1", 10*sec, "")),
			Checks: []Check{check(20*sec, want("p1", 1, hardLimited, blocked(prebuilds.ReasonHardLimited, 1))),
				check(2*time.Minute, want("p1", 1, hardLimited, blocked(prebuilds.ReasonHardLimited, 1)))},
		},
		{
			Name:   "HardLimit/NotReached",
			Config: Config{BackoffInterval: time.Minute, BackoffLookback: time.Hour, HardLimit: 2},
			Steps:  steps(f1.active(1), f1.failed("i1", 10*sec, "")),
			Checks: []Check{check(20*sec, want("p1", 1, backoff(1, 70*sec))), check(2*time.Minute, want("p1", 1, create(1)))},
		},
		{
			Name:   "HardLimit/Off",
			Config: Config{BackoffInterval: time.Minute, BackoffLookback: time.Hour, HardLimit: 0},
			Steps:  steps(f1.active(1), f1.failed("i1", 10*sec, ""), f1.failed("i2", 11*sec, "")),
			Checks: []Check{check(5*time.Minute, want("p1", 1, create(1)))},
		},
		{
			Name:   "HardLimit/SparesDeletes",
			Config: Config{BackoffInterval: time.Minute, BackoffLookback: time.Hour, HardLimit: 1},
			Steps: steps(f1.active(2), f1.running("i1", 10*sec), f1.failed("i2", 20*sec, ""),
				f1.newVersion("v2", 40*sec, &p2)),
			Checks: []Check{
				check(30*sec, want("p1", 2, hardLimited, blocked(prebuilds.ReasonHardLimited, 1))),
				check(50*sec, want("p1", 2, del(inactive, "i1")), want("p2", 1, create(1))),
			},
		},
		{
			Name:   "HardLimit/Recovers",
			Config: Config{BackoffInterval: time.Minute, BackoffLookback: time.Hour, HardLimit: 1},
			Steps:  steps(f1.active(1), f1.failed("i1", 10*sec, ""), Step{30 * sec, RemoveInstance{"i1"}}),
			Checks: []Check{
				check(20*sec, want("p1", 1, hardLimited, blocked(prebuilds.ReasonHardLimited, 1))),
				check(40*sec, want("p1", 1, create(1))),
			},
		},
		{
			Name: "ValidationFailed/BlocksUntilReset",
			Steps: steps(f1.active(2), f1.running("i1", 10*sec), f1.failed("i2", 20*sec, prebuilds.FailureValidation),
				Step{5 * time.Minute, Reset{"p1"}}),
			Checks: []Check{
				check(3*time.Minute, want("p1", 2, blocked(prebuilds.ReasonValidationFailed, 1))),
				check(5*time.Minute+sec, want("p1", 2, create(1))),
			},
		},
		{
			Name: "Schedules/Monday",
			Steps: steps(f1.activeWith(withSchedules(1, "UTC",
				prebuilds.Schedule{Cron: "* 2-4 * * 1", Instances: 2},
				prebuilds.Schedule{Cron: "* 6-8 * * 1", Instances: 3}))),
			Checks: []Check{
				check(1*time.Hour, want("p1", 1, create(1))),
				check(3*time.Hour, want("p1", 2, create(2))),
				check(7*time.Hour, want("p1", 3, create(3))),
				check(9*time.Hour-sec, want("p1", 3, create(3))),
				check(9*time.Hour, want("p1", 1, create(1))),
				check(27*time.Hour, want("p1", 1, create(1))), // Tuesday 03:00
			},
		},
		{
			Name: "Schedules/FirstMatchWins",
			Steps: steps(f1.activeWith(withSchedules(1, "UTC",
				prebuilds.Schedule{Cron: "* 2-4 * * *", Instances: 2},
				prebuilds.Schedule{Cron: "* 3 * * *", Instances: 5}))),
			Checks: []Check{check(3*time.Hour, want("p1", 2, create(2)))},
		},
		{
			Name: "Schedules/ExtraneousWhenScheduleEnds",
			Steps: steps(f1.activeWith(withSchedules(1, "UTC", prebuilds.Schedule{Cron: "* 2-4 * * *", Instances: 3})),
				f1.runningN("i", 3, 2*time.Hour)),
			Checks: []Check{
				check(4*time.Hour+59*time.Minute, want("p1", 3)),
				check(5*time.Hour, want("p1", 1, del(extraneous, "i1", "i2"))),
			},
		},
		{
			// 09:00–16:59 Los Angeles time, across the spring DST change
			// (Sunday 2025-03-09 02:00 PST → 03:00 PDT).
			Name:  "Timezone/LosAngelesAcrossDST",
			Start: springStart,
			Steps: steps(f1.activeWith(withSchedules(1, "America/Los_Angeles", prebuilds.Schedule{Cron: "* 9-16 * * *", Instances: 5}))),
			Checks: []Check{
				check(off(springStart, "2025-03-08T16:59:00Z"), want("p1", 1, create(1))), // 08:59 PST
				check(off(springStart, "2025-03-08T17:00:00Z"), want("p1", 5, create(5))), // 09:00 PST
				check(off(springStart, "2025-03-10T15:59:00Z"), want("p1", 1, create(1))), // 08:59 PDT
				check(off(springStart, "2025-03-10T16:00:00Z"), want("p1", 5, create(5))), // 09:00 PDT
				check(off(springStart, "2025-03-10T23:59:59Z"), want("p1", 5, create(5))), // 16:59:59 PDT
				check(off(springStart, "2025-03-11T00:00:00Z"), want("p1", 1, create(1))), // 17:00 PDT
			},
		},
		{
			// 02:00–02:59 does not exist on 2025-03-09 in Los Angeles.
			Name:  "Timezone/LosAngelesSpringForward",
			Start: springStart,
			Steps: steps(f1.activeWith(withSchedules(1, "America/Los_Angeles", prebuilds.Schedule{Cron: "* 2 * * *", Instances: 4}))),
			Checks: []Check{
				check(off(springStart, "2025-03-08T10:30:00Z"), want("p1", 4, create(4))), // Sat 02:30 PST
				check(off(springStart, "2025-03-09T09:59:59Z"), want("p1", 1, create(1))), // 01:59:59 PST
				check(off(springStart, "2025-03-09T10:00:00Z"), want("p1", 1, create(1))), // 03:00 PDT
				check(off(springStart, "2025-03-10T09:30:00Z"), want("p1", 4, create(4))), // Mon 02:30 PDT
			},
		},
		{
			// 01:00–01:59 happens twice on 2025-11-02 in Los Angeles.
			Name:  "Timezone/LosAngelesFallBack",
			Start: fallStart,
			Steps: steps(f1.activeWith(withSchedules(1, "America/Los_Angeles", prebuilds.Schedule{Cron: "* 1 * * *", Instances: 4}))),
			Checks: []Check{
				check(off(fallStart, "2025-11-02T07:59:59Z"), want("p1", 1, create(1))), // 00:59:59 PDT
				check(off(fallStart, "2025-11-02T08:30:00Z"), want("p1", 4, create(4))), // 01:30 PDT
				check(off(fallStart, "2025-11-02T09:30:00Z"), want("p1", 4, create(4))), // 01:30 PST
				check(off(fallStart, "2025-11-02T10:00:00Z"), want("p1", 1, create(1))), // 02:00 PST
			},
		},
		{
			Name: "Pause/NothingHappens",
			Steps: steps(f1.active(1), f1.running("i1", 10*sec), f1.newVersion("v2", 20*sec, &p2),
				Step{30 * sec, Pause{}}, Step{50 * sec, Pause{Undo: true}}),
			Checks: []Check{
				check(40*sec, want("p1", 1), want("p2", 1)),
				check(60*sec, want("p1", 1, del(inactive, "i1")), want("p2", 1, create(1))),
			},
		},
	}
	for i := range list {
		list[i] = withConfig(list[i])
	}
	return list
}
