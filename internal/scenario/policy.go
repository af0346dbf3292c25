package scenario

import (
	"slices"
	"time"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Scenarios of the adaptive failure policy, stuck builds and the create
// budget (docs/spec.md, "Failure policies", "Outcomes", "Stuck builds",
// "Create budget").

// adaptive is the configuration of the adaptive scenarios: 10s backoff unit
// capped at 1m, K 3, no build timeout unless a scenario sets one.
var adaptive = Config{
	BackoffInterval: 10 * sec, BackoffLookback: time.Hour, FailureHardLimit: 3,
	FailurePolicy: prebuilds.PolicyAdaptive, BackoffMax: time.Minute, BuildTimeout: prebuilds.NoBuildTimeout,
}

func withConfig(c Config, edit func(*Config)) Config {
	edit(&c)
	return c
}

// finish completes build #1 of key with status at `at`.
func (f fixture) finish(key string, at time.Duration, status prebuilds.JobStatus) Step {
	return Step{at, UpdateJob{Instance: key, Number: 1, Status: status}}
}

func probe(created, held int) []ExpectedAction {
	return one(prebuilds.ReasonProbe, created, held)
}

func canary(created, held int) []ExpectedAction {
	return one(prebuilds.ReasonCanary, created, held)
}

// one is an adaptive single build: created (0 or 1) with reason r, and the
// rest of the shortfall held with the same reason.
func one(r prebuilds.Reason, created, held int) []ExpectedAction {
	var out []ExpectedAction
	if created > 0 {
		out = append(out, ExpectedAction{Kind: prebuilds.ActionCreate, Reason: r, Count: created})
	}
	if held > 0 {
		out = append(out, blocked(r, held))
	}
	return out
}

// failStuck fails the first builds of instances, in build ID order.
func failStuck(instances ...string) ExpectedAction {
	keys := slices.Clone(instances)
	slices.SortFunc(keys, func(a, b string) int { return prebuilds.CompareUUID(ID(BuildKey(a, 1)), ID(BuildKey(b, 1))) })
	a := ExpectedAction{Kind: prebuilds.ActionFailStuck, Reason: prebuilds.ReasonDeadline}
	for _, k := range keys {
		a.Instances = append(a.Instances, k)
		a.Builds = append(a.Builds, BuildKey(k, 1))
	}
	return a
}

func policies() []Scenario {
	const us = time.Microsecond
	hardLimited := setStatus(prebuilds.PresetHealthy, prebuilds.PresetHardLimited)
	p2 := UpsertPreset{Key: "p2", Version: "v2", Desired: intp(3)}
	return []Scenario{
		def(Scenario{
			Name:   "Adaptive/Canary/ColdStart",
			Rule:   "Under the adaptive policy a preset with no successful build yet builds one canary and holds the rest.",
			Config: adaptive,
			Steps:  steps(f1.active(3)),
			Checks: []Check{check(sec, want("p1", 3, canary(1, 2)...))},
		}),
		def(Scenario{
			Name:   "Adaptive/Canary/HeldWhileInFlight",
			Rule:   "Under the adaptive policy a canary in flight holds the rest of an unproven preset's pool.",
			Config: adaptive,
			Steps:  steps(f1.active(3), f1.starting("c", sec)),
			Checks: []Check{check(10*sec, want("p1", 3, canary(0, 2)...))},
		}),
		def(Scenario{
			Name:   "Adaptive/Canary/ProvenFills",
			Rule:   "Once a first build of the preset succeeded, the adaptive policy fills the pool at once.",
			Config: adaptive,
			Steps:  steps(f1.active(3), f1.starting("c", sec), f1.finish("c", 50*sec, prebuilds.JobSucceeded)),
			Checks: []Check{check(40*sec, want("p1", 3, canary(0, 2)...)), check(51*sec, want("p1", 3, create(2)))},
		}),
		def(Scenario{
			Name:   "Adaptive/Canary/NewVersion",
			Rule:   "A new version's preset is not proven by the old version's successes: it starts with a canary.",
			Config: adaptive,
			Steps:  steps(f1.active(1), f1.running("i1", 10*sec), f1.newVersion("v2", 20*sec, &p2)),
			Checks: []Check{check(30*sec, want("p1", 1, del(prebuilds.ReasonInactive, "i1")), want("p2", 3, canary(1, 2)...))},
		}),
		def(Scenario{
			Name:   "Adaptive/Canary/AfterReset",
			Rule:   "An admin reset forgets that the preset was proven: successes completed before the reset no longer count.",
			Config: adaptive,
			Steps:  steps(f1.active(3), f1.running("i1", 10*sec), Step{20 * sec, Reset{Preset: "p1"}}),
			Checks: []Check{check(15*sec, want("p1", 3, create(2))), check(30*sec, want("p1", 3, canary(1, 1)...))},
		}),
		def(Scenario{
			Name:   "Adaptive/Canary/Off",
			Rule:   "With the canary turned off, an unproven preset fills its pool at once.",
			Config: withConfig(adaptive, func(c *Config) { c.DisableCanary = true }),
			Steps:  steps(f1.active(3)),
			Checks: []Check{check(sec, want("p1", 3, create(3)))},
		}),
		def(Scenario{
			Name:   "Adaptive/Streak/EndedBySuccess",
			Rule:   "A success that completes after a failure ends the failure streak, even if its build was created before the failure's.",
			Config: adaptive,
			Steps: steps(f1.active(3), f1.starting("i2", 20*sec), f1.starting("i3", 30*sec),
				f1.finish("i3", 40*sec, prebuilds.JobFailed), f1.finish("i2", 60*sec, prebuilds.JobSucceeded)),
			Checks: []Check{
				check(45*sec, want("p1", 3, backoff(2, 50*sec))), // not proven yet: the first failure backs off
				check(55*sec, want("p1", 3, probe(0, 2)...)),     // i2 still in flight: one probe at a time
				check(61*sec, want("p1", 3, create(2))),
			},
		}),
		def(Scenario{
			Name:   "Adaptive/Streak/CompletionOrder",
			Rule:   "The adaptive policy orders outcomes by completion: a failure completing after a success is the newest outcome, whatever the creation order.",
			Config: adaptive,
			Steps: steps(f1.active(3), f1.running("i1", 0), f1.starting("i2", 20*sec), f1.starting("i3", 30*sec),
				f1.finish("i3", 35*sec, prebuilds.JobSucceeded), f1.finish("i2", 40*sec, prebuilds.JobFailed)),
			Checks: []Check{check(45*sec, want("p1", 3, probe(1, 0)...))}, // in creation order i3 is newest: create(1)
		}),
		def(Scenario{
			Name:   "Adaptive/Streak/ExponentialAndCapped",
			Rule:   "The adaptive backoff of a preset not proven yet is BackoffInterval × 2^(streak−1), at most BackoffMax, from the last failure's completion.",
			Config: withConfig(adaptive, func(c *Config) { c.FailureHardLimit = 5 }),
			Steps: steps(f1.active(3),
				f1.failed("f1", sec, ""), f1.failed("f2", 2*sec, ""), f1.failed("f3", 3*sec, ""),
				Step{100 * sec, f1.create("f4")}, f1.finish("f4", 110*sec, prebuilds.JobFailed)),
			Checks: []Check{
				check(4*sec, want("p1", 3, backoff(3, 3*sec+40*sec))),          // streak 3: 10s × 4
				check(111*sec, want("p1", 3, backoff(3, 110*sec+time.Minute))), // streak 4: 80s, capped at 1m
				check(170*sec+us, want("p1", 3, probe(1, 2)...)),
			},
		}),
		def(Scenario{
			Name:   "Adaptive/Streak/ProvenFirstFailureProbes",
			Rule:   "A proven preset answers the first failure of a streak with one probe at once; its backoff is BackoffInterval × 2^(streak−2), at most BackoffMax.",
			Config: withConfig(adaptive, func(c *Config) { c.FailureHardLimit = 5 }),
			Steps: steps(f1.active(3), f1.running("ok", 0),
				f1.failed("f1", 10*sec, ""), f1.failed("f2", 20*sec, ""), f1.failed("f3", 30*sec, "")),
			Checks: []Check{
				check(10*sec, want("p1", 3, probe(1, 1)...)),     // streak 1: no backoff
				check(20*sec, want("p1", 3, backoff(2, 30*sec))), // streak 2: 10s
				check(30*sec, want("p1", 3, backoff(2, 50*sec))), // streak 3: 20s
				check(50*sec+us, want("p1", 3, probe(1, 1)...)),
			},
		}),
		def(Scenario{
			Name:   "Boundary/AdaptiveUntil/Inside",
			Rule:   "Under the adaptive policy creation is held while now ≤ last_failed_at + min(BackoffInterval × 2^(n−1), BackoffMax), n the streak of a preset not proven yet.",
			Config: adaptive,
			Steps:  steps(f1.active(2), f1.failed("f1", 10*sec, ""), f1.failed("f2", 20*sec, "")),
			Checks: []Check{check(20*sec+20*sec, want("p1", 2, backoff(2, 40*sec)))},
		}),
		def(Scenario{
			Name:   "Boundary/AdaptiveUntil/Outside",
			Rule:   "Under the adaptive policy a probe is built 1µs after the backoff of a failure streak ends.",
			Config: adaptive,
			Steps:  steps(f1.active(2), f1.failed("f1", 10*sec, ""), f1.failed("f2", 20*sec, "")),
			Checks: []Check{check(40*sec+us, want("p1", 2, probe(1, 1)...))},
		}),
		def(Scenario{
			Name:   "Adaptive/Probe/HeldWhileInFlight",
			Rule:   "Under the adaptive policy one probe at a time: a build in flight after a failure streak holds the rest.",
			Config: adaptive,
			Steps:  steps(f1.active(3), f1.running("ok", 0), f1.failed("f1", 10*sec, ""), f1.starting("pr", 30*sec)),
			Checks: []Check{check(40*sec, want("p1", 3, probe(0, 1)...))},
		}),
		def(Scenario{
			Name:   "Boundary/AdaptiveUntil/ProvenInside",
			Rule:   "A proven preset's creation is held while now ≤ last_failed_at + min(BackoffInterval × 2^(n−1), BackoffMax), n one less than its streak.",
			Config: adaptive,
			Steps:  steps(f1.active(2), f1.running("ok", 0), f1.failed("f1", 10*sec, ""), f1.failed("f2", 20*sec, "")),
			Checks: []Check{check(30*sec, want("p1", 2, backoff(1, 30*sec)))},
		}),
		def(Scenario{
			Name:   "Boundary/AdaptiveUntil/ProvenOutside",
			Rule:   "A proven preset probes 1µs after the backoff of its failure streak ends.",
			Config: adaptive,
			Steps:  steps(f1.active(2), f1.running("ok", 0), f1.failed("f1", 10*sec, ""), f1.failed("f2", 20*sec, "")),
			Checks: []Check{check(30*sec+us, want("p1", 2, probe(1, 0)...))},
		}),
		def(Scenario{
			Name:   "Adaptive/HardLimit/ProvenStreak",
			Rule:   "A proven preset's first failure, answered by a probe at once, still counts toward the hard limit: a streak of K failures hard-limits it.",
			Config: adaptive,
			Steps: steps(f1.active(3), f1.running("ok", 0),
				f1.failed("f1", 10*sec, ""), f1.failed("f2", 20*sec, ""), f1.failed("f3", 40*sec, "")),
			Checks: []Check{
				check(10*sec, want("p1", 3, probe(1, 1)...)),
				check(20*sec, want("p1", 3, backoff(2, 30*sec))),
				check(30*sec+us, want("p1", 3, probe(1, 1)...)),
				check(40*sec, want("p1", 3, hardLimited, blocked(prebuilds.ReasonHardLimited, 2))),
			},
		}),
		def(Scenario{
			Name:   "Adaptive/HardLimit/Streak",
			Rule:   "Under the adaptive policy a streak of K failures hard-limits the preset.",
			Config: adaptive,
			Steps:  steps(f1.active(2), f1.failed("f1", sec, ""), f1.failed("f2", 2*sec, ""), f1.failed("f3", 3*sec, "")),
			Checks: []Check{
				check(2*sec+500*time.Millisecond, want("p1", 2, backoff(2, 22*sec))), // streak 2 < K: backoff 2 × 10s
				check(time.Hour, want("p1", 2, hardLimited, blocked(prebuilds.ReasonHardLimited, 2))),
			},
		}),
		def(Scenario{
			Name:   "Adaptive/Outcomes/RemovedFailuresCount",
			Rule:   "Under the adaptive policy a failure stays evidence after its instance is removed: removing failed prebuilds does not end a streak.",
			Config: adaptive,
			Steps: steps(f1.active(2), f1.failed("f1", sec, ""), f1.failed("f2", 2*sec, ""), f1.failed("f3", 3*sec, ""),
				Step{10 * sec, Seq{RemoveInstance{"f1"}, RemoveInstance{"f2"}, RemoveInstance{"f3"}}}),
			Checks: []Check{check(time.Hour, want("p1", 2, hardLimited, blocked(prebuilds.ReasonHardLimited, 2)))},
		}),
		def(Scenario{
			Name:   "Adaptive/Outcomes/ClaimedSuccessCounts",
			Rule:   "Under the adaptive policy a claimed prebuild's successful first build still proves the preset and ends a streak.",
			Config: adaptive,
			Steps: steps(f1.active(1), f1.failed("f1", sec, ""), f1.running("ok", 2*sec),
				Step{3 * sec, SetReady{Instance: "ok"}}, Step{4 * sec, Claim{Preset: "p1", Want: "ok"}}),
			Checks: []Check{check(5*sec, want("p1", 1, create(1)))},
		}),
		def(Scenario{
			Name:   "Boundary/OutcomeWindow/Inside",
			Rule:   "Under the adaptive policy an outcome completed exactly at now − BackoffLookback is in O(P).",
			Config: adaptive,
			Steps:  steps(f1.active(2), f1.running("ok", 0), Step{sec, f1.create("f")}, f1.finish("f", 10*time.Minute, prebuilds.JobFailed)),
			Checks: []Check{check(70*time.Minute, want("p1", 2, probe(1, 0)...))},
		}),
		def(Scenario{
			Name:   "Boundary/OutcomeWindow/Outside",
			Rule:   "Under the adaptive policy an outcome completed 1µs before now − BackoffLookback is not in O(P).",
			Config: adaptive,
			Steps:  steps(f1.active(2), f1.running("ok", 0), Step{sec, f1.create("f")}, f1.finish("f", 10*time.Minute-us, prebuilds.JobFailed)),
			Checks: []Check{check(70*time.Minute, want("p1", 2, create(1)))},
		}),
		def(Scenario{
			Name:   "Boundary/BuildTimeout/Inside",
			Rule:   "A prebuild's start build pending or running since before now − BuildTimeout is failed as stuck and is no longer supply.",
			Config: withConfig(DefaultConfig, func(c *Config) { c.BuildTimeout = 10 * time.Minute }),
			Steps:  steps(f1.active(2), f1.starting("old", 0), f1.starting("stuck", 5*time.Minute-us), f1.starting("new", 8*time.Minute)),
			Checks: []Check{check(15*time.Minute, want("p1", 2, failStuck("old", "stuck"), create(1)))},
		}),
		def(Scenario{
			Name:   "Boundary/BuildTimeout/Outside",
			Rule:   "A start build created exactly at now − BuildTimeout is not stuck yet.",
			Config: withConfig(DefaultConfig, func(c *Config) { c.BuildTimeout = 10 * time.Minute }),
			Steps:  steps(f1.active(2), f1.starting("old", 0), f1.starting("edge", 5*time.Minute), f1.starting("new", 8*time.Minute)),
			Checks: []Check{check(15*time.Minute, want("p1", 2, failStuck("old")))},
		}),
		def(Scenario{
			Name:   "Stuck/InactiveQueuedIsCanceled",
			Rule:   "An inactive preset's queued first build is canceled, not failed as stuck; a taken one that outlived the timeout is failed.",
			Config: withConfig(DefaultConfig, func(c *Config) { c.BuildTimeout = 10 * time.Minute }),
			Steps: steps(f1.active(2), f1.starting("queued", 0), f1.starting("taken", 0),
				Step{sec, UpdateJob{Instance: "taken", Number: 1, Status: prebuilds.JobRunning}},
				f1.newVersion("v2", 20*time.Minute, nil)),
			Checks: []Check{check(30*time.Minute, want("p1", 2, failStuck("taken"), cancelPending(1)))},
		}),
		def(Scenario{
			Name:   "Stuck/AdaptiveProbeTimesOut",
			Rule:   "Under the adaptive policy a canary that never completes is failed after the build timeout, so it cannot hold its preset forever.",
			Config: withConfig(adaptive, func(c *Config) { c.BuildTimeout = 0 }), // the adaptive default, 30m
			Steps:  steps(f1.active(2), f1.starting("canary", 0)),
			Checks: []Check{
				check(30*time.Minute, want("p1", 2, canary(0, 1)...)),
				check(30*time.Minute+us, want("p1", 2, append([]ExpectedAction{failStuck("canary")}, canary(1, 1)...)...)),
			},
		}),
		def(Scenario{
			Name:   "Budget/MaxMinFairByMissingFraction",
			Rule:   "MaxCreatesPerPass is shared one create at a time, emptiest pools (missing fraction) first; the rest is blocked for budget.",
			Config: withConfig(DefaultConfig, func(c *Config) { c.MaxCreatesPerPass = 3 }),
			Steps: steps(f1.active(4), Step{0, UpsertPreset{Key: "p2", Version: "v1", Desired: intp(4)}},
				Step{sec, Seq{CreateInstance{Key: "a", Template: "t1", Version: "v1", Preset: "p2"}, UpdateJob{"a", 1, prebuilds.JobSucceeded, ""}}},
				Step{sec, Seq{CreateInstance{Key: "b", Template: "t1", Version: "v1", Preset: "p2"}, UpdateJob{"b", 1, prebuilds.JobSucceeded, ""}}}),
			Checks: []Check{check(10*sec, // p1 misses 4 of 4, p2 2 of 4: p1 2, p2 1
				want("p1", 4, create(2), blocked(prebuilds.ReasonBudget, 2)),
				want("p2", 4, create(1), blocked(prebuilds.ReasonBudget, 1)))},
		}),
	}
}
