package scenario

import (
	"time"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// boundaries returns a scenario on each side of every rule of docs/spec.md
// that has a boundary, named Boundary/<rule>/Inside (the object that sits
// exactly on the inclusive edge: it counts) and Boundary/<rule>/Outside
// (the same object 1µs beyond the edge: it does not). Each also has
// evidence well inside and well outside the window, so that a store which
// ignores the window, or widens it, fails too. Claim eligibility at the TTL
// and invalidation edges is checked by conformance's Claim/Boundary cases.
func boundaries() []Scenario {
	const (
		us      = time.Microsecond
		expired = prebuilds.ReasonExpired
	)
	ttl := func(d time.Duration, desired int) UpsertPreset {
		p := f1.preset(desired)
		p.TTL = d
		return p
	}
	// A static desired count of 2 raised to 3 by a schedule that always
	// matches: backoff ranks against the static count, so a pool of 3 has
	// room for a failure ranked 3rd.
	scheduled := func() UpsertPreset {
		p := f1.preset(2)
		p.Timezone = "UTC"
		p.Schedules = []prebuilds.Schedule{{Cron: "* * * * *", Instances: 3}}
		return p
	}
	minute := func() UpsertPreset {
		p := f1.preset(1)
		p.Timezone = "UTC"
		p.Schedules = []prebuilds.Schedule{{Cron: "30 2 * * *", Instances: 3}}
		return p
	}
	lookback := Config{BackoffInterval: 2 * time.Hour, BackoffLookback: time.Hour, FailureHardLimit: prebuilds.NoHardLimit}
	until := Config{BackoffInterval: 10 * sec, BackoffLookback: time.Minute, FailureHardLimit: prebuilds.NoHardLimit}
	failed := func(key string, at time.Duration) Step { return f1.failed(key, at, prebuilds.FailureTransient) }
	return []Scenario{
		// Lookback: created_at ≥ now − BackoffLookback. At +1h10m the edge
		// is +10m: "old" (+0) is outside, "new" (+30m) inside, and the probe
		// sits on the edge or 1µs before it. Backoff lasts until the last
		// failure + failures in the window × 2h.
		def(Scenario{
			Name:   "Boundary/Lookback/Inside",
			Rule:   "A failed build created exactly at now − BackoffLookback counts toward backoff (created_at ≥ now − BackoffLookback).",
			Config: lookback,
			Steps:  steps(f1.active(1), failed("old", 0), failed("probe", 10*time.Minute), failed("new", 30*time.Minute)),
			Checks: []Check{check(70*time.Minute, want("p1", 1, backoff(1, 30*time.Minute+2*2*time.Hour)))}, // new, probe
		}),
		def(Scenario{
			Name:   "Boundary/Lookback/Outside",
			Rule:   "A failed build created 1µs before now − BackoffLookback does not count toward backoff.",
			Config: lookback,
			Steps:  steps(f1.active(1), failed("old", 0), failed("probe", 10*time.Minute-us), failed("new", 30*time.Minute)),
			Checks: []Check{check(70*time.Minute, want("p1", 1, backoff(1, 30*time.Minute+2*time.Hour)))}, // new only
		}),

		// Backoff until: last failure + failures in the window ×
		// BackoffInterval = 110s + 2 × 10s = 130s ("old", outside the 1m
		// lookback, does not count).
		def(Scenario{
			Name:   "Boundary/BackoffUntil/Inside",
			Rule:   "A pass backs off while now ≤ until (last failure + failures in the lookback window × BackoffInterval): at until exactly it still backs off.",
			Config: until,
			Steps:  steps(f1.active(1), failed("old", 0), failed("f1", 100*sec), failed("f2", 110*sec)),
			Checks: []Check{check(130*sec, want("p1", 1, backoff(1, 130*sec)))},
		}),
		def(Scenario{
			Name:   "Boundary/BackoffUntil/Outside",
			Rule:   "A pass creates again from until + 1µs (until = last failure + failures in the lookback window × BackoffInterval).",
			Config: until,
			Steps:  steps(f1.active(1), failed("old", 0), failed("f1", 100*sec), failed("f2", 110*sec)),
			Checks: []Check{check(130*sec+us, want("p1", 1, create(1)))},
		}),

		// Rank ≤ desired: candidates ranked newest first; a failure ranked
		// within the static desired count (2) opens the window. The schedule
		// wants 3, so creates are still missing either way.
		def(Scenario{
			Name:  "Boundary/BackoffRank/Inside",
			Rule:  "A failed build ranked exactly the static desired count (newest builds first) opens a backoff window.",
			Steps: steps(f1.activeWith(scheduled()), failed("older", 5*sec), failed("probe", 10*sec), f1.running("r1", 20*sec)),
			// rank 1 r1, rank 2 probe, rank 3 older: 2 failures, last 10s.
			Checks: []Check{check(40*sec, want("p1", 3, backoff(2, 10*sec+2*time.Minute)))},
		}),
		def(Scenario{
			Name:  "Boundary/BackoffRank/Outside",
			Rule:  "A failed build ranked desired + 1 (newest builds first) opens no backoff window, however many failures there are.",
			Steps: steps(f1.activeWith(scheduled()), failed("older", 5*sec), failed("probe", 10*sec), f1.running("r1", 20*sec), f1.running("r2", 30*sec)),
			// rank 1 r2, rank 2 r1, rank 3 probe, rank 4 older.
			Checks: []Check{check(40*sec, want("p1", 3, create(1)))},
		}),

		// The hard limit (K = 3): the K newest builds all failed. Inside, the
		// K − 1 failures before the K-th do not hit it; Outside, a success
		// ranked K keeps it off although there are K failures in all.
		def(Scenario{
			Name:  "Boundary/HardLimit/Inside",
			Rule:  "A preset whose K newest builds all failed is hard-limited (K failures), and not before (K − 1 failures).",
			Steps: steps(f1.active(2), failed("f1", 10*sec), failed("f2", 11*sec), failed("f3", 12*sec)),
			Checks: []Check{
				check(11*sec+500*time.Millisecond, want("p1", 2, backoff(2, 11*sec+2*time.Minute))), // K − 1 failures: backoff only
				check(20*sec, want("p1", 2, hardLimited, blocked(prebuilds.ReasonHardLimited, 2))),
			},
		}),
		def(Scenario{
			Name:  "Boundary/HardLimit/Outside",
			Rule:  "A success among the K newest builds keeps a preset from the hard limit, even with K failures in all (K − 1 newer, one older).",
			Steps: steps(f1.active(2), failed("f0", 5*sec), f1.running("ok", 10*sec), failed("f2", 11*sec), failed("f3", 12*sec)),
			// Not limited, so it backs off: 3 failures, the last at 12s.
			Checks: []Check{check(20*sec, want("p1", 2, backoff(1, 12*sec+3*time.Minute)))},
		}),

		// TTL: expired when now − created_at > ttl. At +3h with ttl 1h:
		// "old" (+0) is expired, "young" (+2h30m) valid, the probe aged
		// exactly 1h or 1h + 1µs.
		def(Scenario{
			Name:   "Boundary/TTL/Inside",
			Rule:   "A prebuild aged exactly its preset's TTL is valid (expired only when now − created_at > ttl).",
			Steps:  steps(f1.activeWith(ttl(time.Hour, 3)), f1.running("old", 0), f1.running("probe", 2*time.Hour), f1.running("young", 150*time.Minute)),
			Checks: []Check{check(3*time.Hour, want("p1", 3, del(expired, "old"), create(1)))},
		}),
		def(Scenario{
			Name:   "Boundary/TTL/Outside",
			Rule:   "A prebuild aged its preset's TTL + 1µs is expired, deleted and replaced.",
			Steps:  steps(f1.activeWith(ttl(time.Hour, 3)), f1.running("old", 0), f1.running("probe", 2*time.Hour-us), f1.running("young", 150*time.Minute)),
			Checks: []Check{check(3*time.Hour, want("p1", 3, del(expired, "old", "probe"), create(2)))},
		}),

		// Invalidation at +20s: created_at < invalidated_at expires.
		def(Scenario{
			Name: "Boundary/Invalidation/Inside",
			Rule: "A prebuild created exactly at its preset's invalidated_at is valid (expired only when created_at < invalidated_at).",
			Steps: steps(f1.active(3), f1.running("old", 10*sec), f1.running("probe", 20*sec), Step{20 * sec, Invalidate{"p1"}},
				f1.running("young", 30*sec)),
			Checks: []Check{check(40*sec, want("p1", 3, del(expired, "old"), create(1)))},
		}),
		def(Scenario{
			Name: "Boundary/Invalidation/Outside",
			Rule: "A prebuild created 1µs before its preset's invalidated_at is expired, deleted and replaced.",
			Steps: steps(f1.active(3), f1.running("old", 10*sec), f1.running("probe", 20*sec-us), Step{20 * sec, Invalidate{"p1"}},
				f1.running("young", 30*sec)),
			Checks: []Check{check(40*sec, want("p1", 3, del(expired, "old", "probe"), create(2)))},
		}),

		// Schedules match by the minute: "30 2 * * *" is 02:30:00 to
		// 02:30:59.999999 UTC.
		def(Scenario{
			Name:  "Boundary/ScheduleMinute/Inside",
			Rule:  "A schedule matches from the first to the last microsecond of its minute.",
			Steps: steps(f1.activeWith(minute())),
			Checks: []Check{
				check(time.Hour, want("p1", 1, create(1))), // well outside
				check(150*time.Minute, want("p1", 3, create(3))),
				check(151*time.Minute-us, want("p1", 3, create(3))),
			},
		}),
		def(Scenario{
			Name:  "Boundary/ScheduleMinute/Outside",
			Rule:  "A schedule does not match at the last microsecond before its minute, nor at the first after it.",
			Steps: steps(f1.activeWith(minute())),
			Checks: []Check{
				check(150*time.Minute-us, want("p1", 1, create(1))),
				check(150*time.Minute+30*sec, want("p1", 3, create(3))), // well inside
				check(151*time.Minute, want("p1", 1, create(1))),
			},
		}),

		// Reset at +20s: builds created before reset_at are forgotten. "old"
		// (+10s) is, "new" (+25s) is not; until = new + failures × 1m.
		def(Scenario{
			Name: "Boundary/Reset/Inside",
			Rule: "A failed build created exactly at reset_at still counts toward backoff (an admin reset forgets builds created before it).",
			Steps: steps(f1.active(1), failed("old", 10*sec), failed("probe", 20*sec), Step{20 * sec, Reset{"p1"}},
				failed("new", 25*sec)),
			Checks: []Check{check(30*sec, want("p1", 1, backoff(1, 25*sec+2*time.Minute)))},
		}),
		def(Scenario{
			Name: "Boundary/Reset/Outside",
			Rule: "A failed build created 1µs before reset_at no longer counts toward backoff.",
			Steps: steps(f1.active(1), failed("old", 10*sec), failed("probe", 20*sec-us), Step{20 * sec, Reset{"p1"}},
				failed("new", 25*sec)),
			Checks: []Check{check(30*sec, want("p1", 1, backoff(1, 25*sec+time.Minute)))},
		}),

		// Attribution: a failure counts toward the instance's current preset
		// (the preset of its latest start build that has one), whatever the
		// version of the failed build. Here a preset-less restart on v2, a
		// version of the template that is not active, fails: it backs p1 off.
		def(Scenario{
			Name: "Backoff/AttributedThroughCurrentPreset",
			Rule: "A failed build counts toward the backoff of its instance's current preset, even a preset-less start on an inactive version of the template.",
			Steps: steps(f1.active(1), f1.running("i1", 10*sec), Step{20 * sec, AddVersion{"v2", "t1"}},
				Step{30 * sec, StartBuild{Instance: "i1", Number: 2, Version: "v2", Transition: prebuilds.TransitionStart}},
				Step{31 * sec, UpdateJob{"i1", 2, prebuilds.JobFailed, prebuilds.FailureTransient}}),
			Checks: []Check{
				check(25*sec, want("p1", 1)),
				check(40*sec, want("p1", 1, backoff(1, 30*sec+time.Minute))), // build #2 created at 30s
				check(90*sec+us, want("p1", 1, create(1))),
			},
		}),
	}
}
