package scenario

import (
	"fmt"
	"slices"
	"time"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

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
			panic(fmt.Sprintf("scenario: steps: unexpected %T", g)) // table construction bug, not input
		}
	}
	slices.SortStableFunc(out, func(a, b Step) int { return int(a.At - b.At) })
	return out
}

func want(preset string, desired int, actions ...ExpectedAction) ExpectedPlan {
	return ExpectedPlan{Preset: preset, Desired: desired, Actions: actions}
}

func check(at time.Duration, plans ...ExpectedPlan) Check {
	return Check{At: at, Plans: plans, Pos: Here(0)}
}

// def completes a table entry: the position of its definition, and the
// default configuration when it sets none.
func def(s Scenario) Scenario {
	s.Pos = Here(0)
	if s.Config == (Config{}) {
		s.Config = DefaultConfig
	}
	return s
}

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
// hard limit: the plan's first action.
var hardLimited = setStatus(prebuilds.PresetHealthy, prebuilds.PresetHardLimited)

func cancelPending(n int) ExpectedAction {
	return ExpectedAction{Kind: prebuilds.ActionCancelPending, Reason: prebuilds.ReasonInactive, Count: n}
}

// ---- the table ----

// Table returns the planning scenarios of docs/spec.md (and a few more that
// pin definitions down), each a fresh value. The expected plans are written
// by hand from the rules of docs/spec.md.
func Table() []Scenario {
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
		def(Scenario{
			Name:   "Basic/NoPrebuilds",
			Rule:   "A preset with desired 0 and no prebuilds plans nothing.",
			Steps:  steps(f1.active(0)),
			Checks: []Check{check(time.Minute, want("p1", 0))},
		}),
		def(Scenario{
			Name:   "Basic/NetNew",
			Rule:   "A preset with desired n and no prebuilds plans n creates.",
			Steps:  steps(f1.active(1)),
			Checks: []Check{check(time.Minute, want("p1", 1, create(1)))},
		}),
		def(Scenario{
			Name:   "Basic/DesiredUpdatedInPlace",
			Rule:   "A change of desired by UpsertPreset is planned from the next pass on.",
			Steps:  steps(f1.active(1), Step{10 * sec, f1.preset(3)}),
			Checks: []Check{check(5*sec, want("p1", 1, create(1))), check(20*sec, want("p1", 3, create(3)))},
		}),
		def(Scenario{
			Name:   "Basic/UnconfiguredPresetNotPlanned",
			Rule:   "A preset whose desired count is not set is neither in the snapshot nor planned.",
			Steps:  steps(f1.activeWith(UpsertPreset{Key: "p1", Version: "v1"})),
			Checks: []Check{check(time.Minute)},
		}),
		def(Scenario{
			Name:  "Outdated/DeleteAndReplace",
			Rule:  "When a new version becomes active, the old version's prebuilds are deleted as inactive and the new preset's are created.",
			Steps: steps(f1.active(1), f1.running("i1", 10*sec), f1.newVersion("v2", 20*sec, &p2)),
			Checks: []Check{
				check(15*sec, want("p1", 1)),
				check(30*sec, want("p1", 1, del(inactive, "i1")), want("p2", 1, create(1))),
			},
		}),
		def(Scenario{
			Name: "Outdated/Deleting",
			Rule: "An inactive preset's running prebuilds are deleted; one already being deleted is not deleted again.",
			Steps: steps(f1.active(2), f1.running("i1", 10*sec), f1.deleting("i2", 11*sec),
				f1.newVersion("v2", 20*sec, nil)),
			Checks: []Check{check(30*sec, want("p1", 2, del(inactive, "i1")))},
		}),
		def(Scenario{
			Name: "Outdated/CancelPending",
			Rule: "An inactive preset's prebuilds whose only build is a pending start are canceled; one a provisioner already took is left alone.",
			Steps: steps(f1.active(2), f1.starting("i1", 10*sec), f1.starting("i2", 11*sec),
				// A first build a worker already took is not pending: it is left alone.
				f1.starting("i3", 12*sec), Step{12 * sec, UpdateJob{"i3", 1, prebuilds.JobRunning, ""}},
				f1.newVersion("v2", 20*sec, nil)),
			Checks: []Check{
				check(15*sec, want("p1", 2)),
				check(30*sec, want("p1", 2, cancelPending(2))),
			},
		}),
		def(Scenario{
			Name:   "Inactive/Deprecated",
			Rule:   "The prebuilds of a deprecated template are deleted as inactive.",
			Steps:  steps(f1.active(1), f1.running("i1", 10*sec), Step{20 * sec, Deprecate{Template: "t1"}}),
			Checks: []Check{check(30*sec, want("p1", 1, del(inactive, "i1")))},
		}),
		def(Scenario{
			Name:   "Inactive/DeletedTemplate",
			Rule:   "The prebuilds of a deleted template are deleted as inactive.",
			Steps:  steps(f1.active(2), f1.running("i1", 10*sec), Step{20 * sec, DeleteTemplate{"t1"}}),
			Checks: []Check{check(15*sec, want("p1", 2, create(1))), check(30*sec, want("p1", 2, del(inactive, "i1")))},
		}),
		def(Scenario{
			Name: "Inactive/ExpiredDeletedToo",
			Rule: "An inactive preset deletes all its running prebuilds, expired or not, with reason inactive.",
			Steps: steps(f1.activeWith(ttl(time.Minute, 2)), f1.running("i1", 10*sec), f1.running("i2", 2*time.Minute),
				Step{2*time.Minute + 10*sec, Deprecate{Template: "t1"}}),
			// i1 expired, i2 valid: both go.
			Checks: []Check{check(2*time.Minute+30*sec, want("p1", 2, del(inactive, "i1", "i2")))},
		}),
		def(Scenario{
			Name:   "Supply/Starting/d1r0s1",
			Rule:   "A prebuild whose start build is pending counts as supply.",
			Steps:  steps(f1.active(1), f1.starting("i1", 10*sec)),
			Checks: []Check{check(20*sec, want("p1", 1))},
		}),
		def(Scenario{
			Name:   "Supply/Starting/d2r1s1",
			Rule:   "A prebuild whose start build is pending counts as supply.",
			Steps:  steps(f1.active(2), f1.running("i1", 10*sec), f1.starting("i2", 11*sec)),
			Checks: []Check{check(20*sec, want("p1", 2))},
		}),
		def(Scenario{
			Name:   "Supply/Starting/d3r1s2",
			Rule:   "A prebuild whose start build is pending counts as supply.",
			Steps:  steps(f1.active(3), f1.running("i1", 10*sec), f1.starting("i2", 11*sec), f1.starting("i3", 12*sec)),
			Checks: []Check{check(20*sec, want("p1", 3))},
		}),
		def(Scenario{
			Name:   "Supply/StartingNotExtraneous",
			Rule:   "Only running prebuilds can be extraneous: a starting one is never deleted as surplus.",
			Steps:  steps(f1.active(2), f1.runningN("i", 2, 10*sec), f1.starting("s1", 15*sec)),
			Checks: []Check{check(20*sec, want("p1", 2))},
		}),
		def(Scenario{
			Name:   "Supply/StoppingNotSupply/d1r0st1",
			Rule:   "A prebuild being stopped is not supply: it is replaced.",
			Steps:  steps(f1.active(1), f1.stopping("i1", 10*sec)),
			Checks: []Check{check(20*sec, want("p1", 1, create(1)))},
		}),
		def(Scenario{
			Name:   "Supply/StoppingNotSupply/d3r2st1",
			Rule:   "A prebuild being stopped is not supply: it is replaced.",
			Steps:  steps(f1.active(3), f1.runningN("i", 2, 10*sec), f1.stopping("st1", 15*sec)),
			Checks: []Check{check(20*sec, want("p1", 3, create(1)))},
		}),
		def(Scenario{
			Name:   "Supply/DeletingNotSupply/d2r1dl1",
			Rule:   "A prebuild being deleted is not supply: it is replaced.",
			Steps:  steps(f1.active(2), f1.running("i1", 10*sec), f1.deleting("dl1", 15*sec)),
			Checks: []Check{check(20*sec, want("p1", 2, create(1)))},
		}),
		def(Scenario{
			Name:   "Supply/BalancedWithStop/d3r3st1",
			Rule:   "Running prebuilds equal to desired plan nothing, whatever is being stopped besides.",
			Steps:  steps(f1.active(3), f1.runningN("i", 3, 10*sec), f1.stopping("st1", 15*sec)),
			Checks: []Check{check(20*sec, want("p1", 3))},
		}),
		def(Scenario{
			Name:   "Supply/BalancedWithDelete/d2r2dl1",
			Rule:   "Running prebuilds equal to desired plan nothing, whatever is being deleted besides.",
			Steps:  steps(f1.active(2), f1.runningN("i", 2, 10*sec), f1.deleting("dl1", 15*sec)),
			Checks: []Check{check(20*sec, want("p1", 2))},
		}),
		def(Scenario{
			Name: "Supply/CanceledStartNotSupply",
			Rule: "A prebuild whose start build was canceled is not supply: it is replaced.",
			Steps: steps(f1.active(1), f1.starting("i1", 10*sec),
				Step{11 * sec, UpdateJob{"i1", 1, prebuilds.JobCanceled, ""}}),
			Checks: []Check{check(20*sec, want("p1", 1, create(1)))},
		}),
		def(Scenario{
			Name: "Supply/ClaimedNotSupply",
			Rule: "A claimed prebuild leaves the pool and is replaced.",
			Steps: steps(f1.active(1), f1.running("i1", 10*sec), Step{11 * sec, SetReady{Instance: "i1"}},
				Step{20 * sec, Claim{Preset: "p1", Want: "i1"}}),
			Checks: []Check{check(15*sec, want("p1", 1)), check(30*sec, want("p1", 1, create(1)))},
		}),
		def(Scenario{
			// The current preset is the preset of the latest start build
			// that has one: a preset-less restart stays attributed to p1.
			Name: "Supply/PresetlessRestart",
			Rule: "An instance's current preset is the preset of its latest start build that has one: a preset-less restart keeps it in its preset's pool.",
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
		}),
		def(Scenario{
			Name:   "Extraneous/DeleteOldest",
			Rule:   "Surplus running prebuilds are deleted oldest first (created_at, then instance ID).",
			Steps:  steps(f1.active(1), f1.running("i1", 10*sec), f1.running("i2", 20*sec)),
			Checks: []Check{check(30*sec, want("p1", 1, del(extraneous, "i1")))},
		}),
		def(Scenario{
			Name:   "Extraneous/WithDeleting/d3r5dl2",
			Rule:   "Surplus is counted over running prebuilds only, and the oldest surplus are deleted.",
			Steps:  steps(f1.active(3), f1.runningN("i", 5, 10*sec), f1.deleting("dl1", 20*sec), f1.deleting("dl2", 21*sec)),
			Checks: []Check{check(30*sec, want("p1", 3, del(extraneous, "i1", "i2")))},
		}),
		def(Scenario{
			Name:  "Expiry/TTL",
			Rule:  "A prebuild expires when now − created_at > ttl; expired prebuilds are deleted and replaced.",
			Steps: steps(f1.activeWith(ttl(time.Hour, 2)), f1.running("i1", 0), f1.running("i2", 30*time.Minute)),
			Checks: []Check{
				check(45*time.Minute, want("p1", 2)),                                                       // r2 e0
				check(time.Hour, want("p1", 2)),                                                            // age = ttl is not expired
				check(time.Hour+time.Microsecond, want("p1", 2, del(expired, "i1"), create(1))),            // r1 e1
				check(90*time.Minute+time.Microsecond, want("p1", 2, del(expired, "i1", "i2"), create(2))), // r0 e2
			},
		}),
		def(Scenario{
			Name: "Expiry/TwoExpiredTwoValid",
			Rule: "Expired prebuilds are deleted even when the valid ones meet desired.",
			Steps: steps(f1.activeWith(ttl(time.Hour, 2)), f1.running("i1", 0), f1.running("i2", sec),
				f1.running("i3", time.Hour), f1.running("i4", time.Hour+sec)),
			Checks: []Check{check(time.Hour+2*sec, want("p1", 2, del(expired, "i1", "i2")))},
		}),
		def(Scenario{
			Name: "Expiry/AndSurplus",
			Rule: "Expired prebuilds are deleted as expired, then the oldest valid surplus as extraneous.",
			Steps: steps(f1.activeWith(ttl(time.Hour, 2)), f1.running("i1", 0), f1.running("i2", 10*time.Minute),
				f1.running("i3", 20*time.Minute), f1.running("i4", 30*time.Minute)),
			Checks: []Check{check(time.Hour+time.Minute, want("p1", 2, del(expired, "i1"), del(extraneous, "i2")))},
		}),
		def(Scenario{
			Name: "Invalidation/AllBefore",
			Rule: "Prebuilds created before the preset's invalidated_at expire and are replaced.",
			Steps: steps(f1.active(2), f1.running("i1", 10*sec), f1.running("i2", 20*sec),
				Step{30 * sec, Invalidate{"p1"}}),
			Checks: []Check{
				check(25*sec, want("p1", 2)),
				check(40*sec, want("p1", 2, del(expired, "i1", "i2"), create(2))),
			},
		}),
		def(Scenario{
			// Only failures ranked within the static desired count open a
			// backoff window: two newer successes push the failure out, and a
			// claim of one of them brings it back in.
			Name: "Backoff/Window",
			Rule: "Only a failure ranked within the static desired count (newest builds first) opens a backoff window.",
			Steps: steps(f1.active(2), f1.failed("i1", 10*sec, ""), f1.running("i2", 20*sec), f1.running("i3", 30*sec),
				Step{31 * sec, SetReady{Instance: "i2"}}, Step{50 * sec, Claim{Preset: "p1", Want: "i2"}}),
			Checks: []Check{
				check(40*sec, want("p1", 2)),
				check(60*sec, want("p1", 2, backoff(1, 70*sec))),
				check(70*sec+time.Microsecond, want("p1", 2, create(1))),
			},
		}),
		def(Scenario{
			// Without a row the schedule's extra demand is created at once.
			Name: "Backoff/WindowUsesStaticDesired",
			Rule: "Backoff ranks failures against the static desired count, not the scheduled one.",
			Steps: steps(f1.activeWith(withSchedules(2, "UTC", prebuilds.Schedule{Cron: "* * * * *", Instances: 3})),
				f1.failed("i1", 10*sec, ""), f1.running("i2", 20*sec), f1.running("i3", 30*sec)),
			Checks: []Check{check(40*sec, want("p1", 3, create(1)))},
		}),
		def(Scenario{
			Name:   "Backoff/NumFailed",
			Rule:   "The backoff lasts until the last failure + (failures in the lookback window) × BackoffInterval.",
			Config: Config{BackoffInterval: 5 * sec, BackoffLookback: time.Hour, FailureHardLimit: 3},
			Steps: steps(f1.active(2), f1.failed("i1", 10*sec, ""), f1.failed("i2", 10*sec, ""),
				f1.failed("i3", 30*sec, ""), f1.running("i4", 31*sec)),
			Checks: []Check{
				check(15*sec, want("p1", 2, backoff(2, 20*sec))), // 10s + 2×5s
				check(20*sec+time.Microsecond, want("p1", 2, create(2))),
				check(40*sec, want("p1", 2, backoff(1, 45*sec))), // 30s + 3×5s
				check(45*sec+time.Microsecond, want("p1", 2, create(1))),
			},
		}),
		def(Scenario{
			Name:  "Backoff/Reset",
			Rule:  "An admin reset forgets the failures created before reset_at.",
			Steps: steps(f1.active(1), f1.failed("i1", 10*sec, ""), Step{20 * sec, Reset{"p1"}}),
			Checks: []Check{
				check(15*sec, want("p1", 1, backoff(1, 70*sec))),
				check(21*sec, want("p1", 1, create(1))),
			},
		}),
		def(Scenario{
			Name: "Backoff/SparesDeletes",
			Rule: "Backoff blocks creates only: extraneous prebuilds are still deleted.",
			Steps: steps(f1.active(1), f1.running("i1", 10*sec), f1.running("i2", 20*sec),
				f1.failed("i3", 30*sec, "")),
			Checks: []Check{check(40*sec, want("p1", 1, del(extraneous, "i1")))},
		}),
		def(Scenario{
			Name: "Backoff/SparesExpired",
			Rule: "Backoff blocks creates only: expired prebuilds are still deleted.",
			Steps: steps(f1.active(1), f1.running("i1", 10*sec), Step{20 * sec, Invalidate{"p1"}},
				f1.failed("i2", 30*sec, "")),
			Checks: []Check{check(40*sec, want("p1", 1, del(expired, "i1"), backoff(1, 90*sec)))},
		}),
		def(Scenario{
			Name:   "HardLimit/Reached",
			Rule:   "When the K newest builds of a preset all failed, it is hard-limited and its creates are blocked.",
			Config: Config{BackoffInterval: time.Minute, BackoffLookback: time.Hour, FailureHardLimit: 1},
			Steps:  steps(f1.active(1), f1.failed("i1", 10*sec, "")),
			Checks: []Check{check(20*sec, want("p1", 1, hardLimited, blocked(prebuilds.ReasonHardLimited, 1))),
				check(2*time.Minute, want("p1", 1, hardLimited, blocked(prebuilds.ReasonHardLimited, 1)))},
		}),
		def(Scenario{
			Name:   "HardLimit/NotReached",
			Rule:   "Fewer than K failed builds cannot hit the hard limit: the failure only backs off.",
			Config: Config{BackoffInterval: time.Minute, BackoffLookback: time.Hour, FailureHardLimit: 2},
			Steps:  steps(f1.active(1), f1.failed("i1", 10*sec, "")),
			Checks: []Check{check(20*sec, want("p1", 1, backoff(1, 70*sec))), check(2*time.Minute, want("p1", 1, create(1)))},
		}),
		def(Scenario{
			Name:   "HardLimit/Off",
			Rule:   "With the hard limit off (K = 0), failures only back off.",
			Config: Config{BackoffInterval: time.Minute, BackoffLookback: time.Hour, FailureHardLimit: prebuilds.NoHardLimit},
			Steps:  steps(f1.active(1), f1.failed("i1", 10*sec, ""), f1.failed("i2", 11*sec, "")),
			Checks: []Check{check(5*time.Minute, want("p1", 1, create(1)))},
		}),
		def(Scenario{
			Name:   "HardLimit/SparesDeletes",
			Rule:   "A hard-limited preset blocks creates only: its prebuilds are still deleted when it becomes inactive.",
			Config: Config{BackoffInterval: time.Minute, BackoffLookback: time.Hour, FailureHardLimit: 1},
			Steps: steps(f1.active(2), f1.running("i1", 10*sec), f1.failed("i2", 20*sec, ""),
				f1.newVersion("v2", 40*sec, &p2)),
			Checks: []Check{
				check(30*sec, want("p1", 2, hardLimited, blocked(prebuilds.ReasonHardLimited, 1))),
				check(50*sec, want("p1", 2, del(inactive, "i1")), want("p2", 1, create(1))),
			},
		}),
		def(Scenario{
			Name:   "HardLimit/Recovers",
			Rule:   "A hard-limited preset recovers when its failed prebuild is removed.",
			Config: Config{BackoffInterval: time.Minute, BackoffLookback: time.Hour, FailureHardLimit: 1},
			Steps:  steps(f1.active(1), f1.failed("i1", 10*sec, ""), Step{30 * sec, RemoveInstance{"i1"}}),
			Checks: []Check{
				check(20*sec, want("p1", 1, hardLimited, blocked(prebuilds.ReasonHardLimited, 1))),
				check(40*sec, want("p1", 1, create(1))),
			},
		}),
		def(Scenario{
			Name: "ValidationFailed/BlocksUntilReset",
			Rule: "A validation failure blocks the preset's creates until an admin reset.",
			Steps: steps(f1.active(2), f1.running("i1", 10*sec), f1.failed("i2", 20*sec, prebuilds.FailureValidation),
				Step{5 * time.Minute, Reset{"p1"}}),
			Checks: []Check{
				check(3*time.Minute, want("p1", 2, blocked(prebuilds.ReasonValidationFailed, 1))),
				check(5*time.Minute+sec, want("p1", 2, create(1))),
			},
		}),
		def(Scenario{
			Name: "Schedules/Monday",
			Rule: "Desired is the instance count of the first schedule matching now in the preset's timezone, else the static count.",
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
		}),
		def(Scenario{
			Name: "Schedules/FirstMatchWins",
			Rule: "When several schedules match, the first one listed wins.",
			Steps: steps(f1.activeWith(withSchedules(1, "UTC",
				prebuilds.Schedule{Cron: "* 2-4 * * *", Instances: 2},
				prebuilds.Schedule{Cron: "* 3 * * *", Instances: 5}))),
			Checks: []Check{check(3*time.Hour, want("p1", 2, create(2)))},
		}),
		def(Scenario{
			Name: "Schedules/ExtraneousWhenScheduleEnds",
			Rule: "When a schedule ends, the prebuilds above the static count become extraneous.",
			Steps: steps(f1.activeWith(withSchedules(1, "UTC", prebuilds.Schedule{Cron: "* 2-4 * * *", Instances: 3})),
				f1.runningN("i", 3, 2*time.Hour)),
			Checks: []Check{
				check(4*time.Hour+59*time.Minute, want("p1", 3)),
				check(5*time.Hour, want("p1", 1, del(extraneous, "i1", "i2"))),
			},
		}),
		def(Scenario{
			// 09:00–16:59 Los Angeles time, across the spring DST change
			// (Sunday 2025-03-09 02:00 PST → 03:00 PDT).
			Name:  "Timezone/LosAngelesAcrossDST",
			Rule:  "Schedules are evaluated in the preset's timezone, across daylight-saving changes.",
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
		}),
		def(Scenario{
			// 02:00–02:59 does not exist on 2025-03-09 in Los Angeles.
			Name:  "Timezone/LosAngelesSpringForward",
			Rule:  "A schedule on an hour that a spring-forward day skips does not match that day.",
			Start: springStart,
			Steps: steps(f1.activeWith(withSchedules(1, "America/Los_Angeles", prebuilds.Schedule{Cron: "* 2 * * *", Instances: 4}))),
			Checks: []Check{
				check(off(springStart, "2025-03-08T10:30:00Z"), want("p1", 4, create(4))), // Sat 02:30 PST
				check(off(springStart, "2025-03-09T09:59:59Z"), want("p1", 1, create(1))), // 01:59:59 PST
				check(off(springStart, "2025-03-09T10:00:00Z"), want("p1", 1, create(1))), // 03:00 PDT
				check(off(springStart, "2025-03-10T09:30:00Z"), want("p1", 4, create(4))), // Mon 02:30 PDT
			},
		}),
		def(Scenario{
			// 01:00–01:59 happens twice on 2025-11-02 in Los Angeles.
			Name:  "Timezone/LosAngelesFallBack",
			Rule:  "A schedule on an hour that a fall-back day repeats matches both times.",
			Start: fallStart,
			Steps: steps(f1.activeWith(withSchedules(1, "America/Los_Angeles", prebuilds.Schedule{Cron: "* 1 * * *", Instances: 4}))),
			Checks: []Check{
				check(off(fallStart, "2025-11-02T07:59:59Z"), want("p1", 1, create(1))), // 00:59:59 PDT
				check(off(fallStart, "2025-11-02T08:30:00Z"), want("p1", 4, create(4))), // 01:30 PDT
				check(off(fallStart, "2025-11-02T09:30:00Z"), want("p1", 4, create(4))), // 01:30 PST
				check(off(fallStart, "2025-11-02T10:00:00Z"), want("p1", 1, create(1))), // 02:00 PST
			},
		}),
		def(Scenario{
			Name: "Pause/NothingHappens",
			Rule: "While paused nothing is planned; once unpaused the pending work is planned.",
			Steps: steps(f1.active(1), f1.running("i1", 10*sec), f1.newVersion("v2", 20*sec, &p2),
				Step{30 * sec, Pause{}}, Step{50 * sec, Pause{Undo: true}}),
			Checks: []Check{
				check(40*sec, want("p1", 1), want("p2", 1)),
				check(60*sec, want("p1", 1, del(inactive, "i1")), want("p2", 1, create(1))),
			},
		}),
	}
	list = append(list, boundaries()...)
	return append(list, policies()...)
}
