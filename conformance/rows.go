package conformance

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// rowCase is one rule of a snapshot row (docs/spec.md, "The snapshot") on
// a set-up the scenario table does not make, or at parameters a scenario's
// configuration cannot give (a lookback finer than a microsecond, a
// negative hard limit).
type rowCase struct {
	name, rule string
	pos        scenario.Pos
	// steps run after the claim fixture (t1, v1 active, p1 desired 1), at
	// offsets from the epoch.
	steps []scenario.Step
	// at is the snapshot's offset; edit, when set, changes its parameters
	// (the default configuration's at now).
	at   time.Duration
	edit func(p *prebuilds.SnapshotParams)
	// check states what the rule demands of the snapshot ("" when met);
	// the model's snapshot must meet it too.
	check func(s *prebuilds.GlobalSnapshot) string
}

func row(name, rule string, at time.Duration, steps []scenario.Step, check func(*prebuilds.GlobalSnapshot) string) rowCase {
	return rowCase{name: name, rule: rule, pos: scenario.Here(0), steps: steps, at: at, check: check}
}

// rowsGroup: Snapshot/Rows/<row>/<case>.
func (s *suite) rowsGroup(t *testing.T) {
	for _, tc := range rowCases() {
		s.run(t, "Rows/"+tc.name, func(t *testing.T) { s.rowCase(t, tc) })
	}
}

func rowCases() []rowCase {
	type (
		step = scenario.Step
		job  = scenario.UpdateJob
	)
	const sec = time.Second
	at := func(d time.Duration, ops ...op) step { return step{At: d, Op: scenario.Seq(ops)} }
	fail := func(k string, d time.Duration) step {
		return at(d, prebuildOp(k), job{Instance: k, Number: 1, Status: prebuilds.JobFailed, FailureKind: prebuilds.FailureTransient})
	}
	ok := func(k string, d time.Duration) step { return at(d, prebuildOp(k), jobOp(k, prebuilds.JobSucceeded)) }
	build := func(k string, n int, v, preset string, tr prebuilds.Transition, st prebuilds.JobStatus) []op {
		ops := []op{scenario.StartBuild{Instance: k, Number: n, Version: v, Preset: preset, Transition: tr}}
		switch st {
		case prebuilds.JobPending:
		case prebuilds.JobFailed:
			ops = append(ops, job{Instance: k, Number: n, Status: st, FailureKind: prebuilds.FailureTransient})
		default:
			ops = append(ops, job{Instance: k, Number: n, Status: st})
		}
		return ops
	}
	desired := func(n int) step { return at(0, scenario.UpsertPreset{Key: "p1", Version: "v1", Desired: count(n)}) }
	p1 := id("p1")

	// Checks.
	backoff := func(wantRow bool) func(*prebuilds.GlobalSnapshot) string {
		return func(s *prebuilds.GlobalSnapshot) string {
			has := slices.ContainsFunc(s.Backoffs, func(r prebuilds.BackoffRow) bool { return r.PresetID == p1 })
			if has != wantRow {
				return fmt.Sprintf("p1 has a backoff row: %v, want %v", has, wantRow)
			}
			return ""
		}
	}
	numFailed := func(n int) func(*prebuilds.GlobalSnapshot) string {
		return func(s *prebuilds.GlobalSnapshot) string {
			for _, r := range s.Backoffs {
				if r.PresetID == p1 && r.NumFailed == n {
					return ""
				}
			}
			return fmt.Sprintf("p1's backoff rows are %v, want one with NumFailed %d", s.Backoffs, n)
		}
	}
	limited := func(want bool) func(*prebuilds.GlobalSnapshot) string {
		return func(s *prebuilds.GlobalSnapshot) string {
			if got := slices.Contains(s.HardLimited, p1); got != want {
				return fmt.Sprintf("p1 hard-limited: %v, want %v", got, want)
			}
			return ""
		}
	}
	both := func(cs ...func(*prebuilds.GlobalSnapshot) string) func(*prebuilds.GlobalSnapshot) string {
		return func(s *prebuilds.GlobalSnapshot) string {
			for _, c := range cs {
				if m := c(s); m != "" {
					return m
				}
			}
			return ""
		}
	}
	k := func(n int) func(*prebuilds.SnapshotParams) {
		return func(p *prebuilds.SnapshotParams) { p.HardLimit = prebuilds.HardLimit(n) }
	}
	with := func(c rowCase, edit func(*prebuilds.SnapshotParams)) rowCase { c.edit = edit; return c }

	cases := []rowCase{
		// Backoff rows.
		row("Backoffs/DesiredZero", "A preset whose desired count is 0 has no backoff row, whatever its failures.",
			20*sec, []step{desired(0), fail("a", 10*sec)}, backoff(false)),
		row("Backoffs/PendingBuildRanks", "A pending start build is a candidate like any other: newer than a failure, it pushes the failure out of a window of desired 1.",
			20*sec, []step{fail("a", 10*sec), at(11*sec, prebuildOp("b"))}, backoff(false)),
		row("Backoffs/RunningBuildRanks", "A running start build is a candidate like any other: newer than a failure, it pushes the failure out of a window of desired 1.",
			20*sec, []step{fail("a", 10*sec), at(11*sec, prebuildOp("b"), jobOp("b", prebuilds.JobRunning))}, backoff(false)),
		row("Backoffs/NumFailedBeyondWindow", "NumFailed counts every recent failure of the candidates, ranked within desired or not.",
			20*sec, []step{fail("a", 10*sec), fail("b", 11*sec), fail("c", 12*sec)}, numFailed(3)),
		with(row("Backoffs/Scope/Deprecated", "The failures of a deprecated template's preset still count toward backoff and the hard limit (deprecation does not empty the candidates).",
			20*sec, []step{fail("a", 10*sec), at(11*sec, scenario.Deprecate{Template: "t1"})}, both(backoff(true), limited(true))), k(1)),
		with(row("Backoffs/Scope/DeletedTemplate", "A deleted template's presets have no candidates: no backoff row, no hard limit.",
			20*sec, []step{fail("a", 10*sec), at(11*sec, scenario.DeleteTemplate{Template: "t1"})}, both(backoff(false), limited(false))), k(1)),
		with(row("Backoffs/Scope/VersionActiveAgain", "A version made active again brings its presets' failures back (the candidates follow the version's activity).",
			20*sec, []step{fail("a", 10*sec), at(11*sec, scenario.AddVersion{Key: "v2", Template: "t1"}, scenario.Activate{Template: "t1", Version: "v2"}),
				at(12*sec, scenario.Activate{Template: "t1", Version: "v1"})}, both(backoff(true), limited(true))), k(1)),
		with(row("Backoffs/Scope/LatestIsStop", "Only an instance's latest build is a candidate, and only a start: a failed start followed by a failed stop is none.",
			20*sec, []step{fail("a", 10*sec), at(11*sec, build("a", 2, "v1", "", prebuilds.TransitionStop, prebuilds.JobFailed)...)},
			both(backoff(false), limited(false))), k(1)),
		with(row("Backoffs/Scope/Claimed", "A claimed instance leaves the pool: a failed later start of it is the user's and no candidate.",
			20*sec, []step{at(10*sec, readyOps("a")...), at(11*sec, scenario.Claim{Preset: "p1", Want: "a"}),
				at(12*sec, build("a", 2, "v1", "p1", prebuilds.TransitionStop, prebuilds.JobSucceeded)...),
				at(13*sec, build("a", 3, "v1", "p1", prebuilds.TransitionStart, prebuilds.JobFailed)...)},
			both(backoff(false), limited(false))), k(1)),
		with(row("Backoffs/Scope/RetrySucceeded", "A failed start retried by a start that succeeded is no candidate any more: the latest build is.",
			20*sec, []step{fail("a", 10*sec), at(11*sec, build("a", 2, "v1", "p1", prebuilds.TransitionStart, prebuilds.JobSucceeded)...)},
			both(backoff(false), limited(false))), k(1)),

		// A lookback finer than a microsecond is compared as given.
		with(row("Backoffs/Lookback/NanosecondBefore", "A lookback 1ns before a failure's created_at keeps the failure (created_at ≥ lookback, compared as given).",
			20*sec, []step{fail("a", 10*sec)}, backoff(true)), func(p *prebuilds.SnapshotParams) { p.Lookback = epoch.Add(10*sec - time.Nanosecond) }),
		with(row("Backoffs/Lookback/NanosecondAfter", "A lookback 1ns after a failure's created_at drops the failure, though both share a microsecond.",
			20*sec, []step{fail("a", 10*sec)}, backoff(false)), func(p *prebuilds.SnapshotParams) { p.Lookback = epoch.Add(10*sec + time.Nanosecond) }),
		with(row("Backoffs/Lookback/HalfMicrosecondAfter", "A lookback 500ns after a failure's created_at drops the failure, though both share a microsecond.",
			20*sec, []step{fail("a", 10*sec)}, backoff(false)), func(p *prebuilds.SnapshotParams) { p.Lookback = epoch.Add(10*sec + 500*time.Nanosecond) }),

		// The hard limit.
		with(row("HardLimited/PendingBreaksStreak", "A newer pending start among the K newest candidates keeps a preset from the hard limit.",
			20*sec, []step{desired(2), fail("a", 10*sec), fail("b", 11*sec), at(12*sec, prebuildOp("c"))}, limited(false)), k(2)),
		with(row("HardLimited/OlderSuccessBeyondK", "A success ranked beyond K does not keep a preset from the hard limit.",
			20*sec, []step{desired(2), ok("a", 10*sec), fail("b", 11*sec), fail("c", 12*sec)}, limited(true)), k(2)),
		with(row("HardLimited/IgnoresLookback", "The hard limit ignores the lookback: failures older than it still count.",
			3*time.Hour, []step{desired(2), fail("a", 10*sec), fail("b", 11*sec)}, both(limited(true), backoff(false))), k(2)),

		// In-progress builds.
		row("InProgress/WhatCounts", "in_progress(P, tr) counts the prebuilds of P whose latest build is of tr and pending or running: not a canceling job, a user's instance, a removed instance, or a finished delete.",
			20*sec, []step{
				at(10*sec, prebuildOp("pending"), prebuildOp("running"), jobOp("running", prebuilds.JobRunning),
					prebuildOp("canceling"), jobOp("canceling", prebuilds.JobRunning), jobOp("canceling", prebuilds.JobCanceling),
					scenario.CreateInstance{Key: "user", Template: "t1", Version: "v1", Preset: "p1", Owner: "someone"},
					prebuildOp("removed"), scenario.RemoveInstance{Instance: "removed"}),
				at(11*sec, seq(runningOps("stopping"), build("stopping", 2, "v1", "", prebuilds.TransitionStop, prebuilds.JobRunning),
					runningOps("deleting"), build("deleting", 2, "v1", "", prebuilds.TransitionDelete, prebuilds.JobPending),
					runningOps("deleted"), build("deleted", 2, "v1", "", prebuilds.TransitionDelete, prebuilds.JobSucceeded))...),
			},
			func(s *prebuilds.GlobalSnapshot) string {
				want := []prebuilds.InProgressCount{
					{PresetID: p1, Transition: prebuilds.TransitionDelete, Count: 1},
					{PresetID: p1, Transition: prebuilds.TransitionStart, Count: 2},
					{PresetID: p1, Transition: prebuilds.TransitionStop, Count: 1},
				}
				got := slices.Clone(s.InProgress)
				slices.SortFunc(got, func(a, b prebuilds.InProgressCount) int {
					return cmpStrings(string(a.Transition), string(b.Transition))
				})
				if !slices.Equal(got, want) {
					return fmt.Sprintf("in progress %v, want %v", got, want)
				}
				return ""
			}),

		// Pending inactive.
		row("PendingInactive/WhatCounts", "pending_inactive(P) of an inactive preset counts its prebuilds whose only build is a pending start: not a running first build, a user's instance, a stop, a removed instance, or a retry.",
			20*sec, []step{
				at(10*sec, prebuildOp("q1"), prebuildOp("q2"), prebuildOp("taken"), jobOp("taken", prebuilds.JobRunning),
					scenario.CreateInstance{Key: "user", Template: "t1", Version: "v1", Preset: "p1", Owner: "someone"},
					scenario.CreateInstance{Key: "stop", Template: "t1", Version: "v1", Preset: "p1", Transition: prebuilds.TransitionStop},
					prebuildOp("removed"), scenario.RemoveInstance{Instance: "removed"}),
				at(11*sec, append([]op{prebuildOp("retry"), job{Instance: "retry", Number: 1, Status: prebuilds.JobFailed, FailureKind: prebuilds.FailureTransient}},
					build("retry", 2, "v1", "p1", prebuilds.TransitionStart, prebuilds.JobPending)...)...),
				at(12*sec, scenario.Deprecate{Template: "t1"}),
			},
			pendingInactive(map[uuid.UUID]int{p1: 2})),
		row("PendingInactive/NoActiveVersion", "A preset of a template without an active version is inactive: its queued first builds are pending_inactive.",
			20*sec, []step{at(10*sec, scenario.AddTemplate{Key: "t2"}, scenario.AddVersion{Key: "v2", Template: "t2"},
				scenario.UpsertPreset{Key: "p2", Version: "v2", Desired: count(1)},
				scenario.CreateInstance{Key: "q", Template: "t2", Version: "v2", Preset: "p2"})},
			pendingInactive(map[uuid.UUID]int{id("p2"): 1})),

		// Counters.
		row("Counters/WhatCounts", "Counters count, by build #1's preset, the instances created as prebuilds (removed and claimed included; not a user's instance, not a later build's failure, not a preset whose desired is unset), their failed build #1 and their claims.",
			20*sec, []step{
				at(0, scenario.UpsertPreset{Key: "p2", Version: "v1", Desired: count(1)}, scenario.UpsertPreset{Key: "p3", Version: "v1"}),
				at(10*sec, prebuildOp("pending")),
				fail("failed", 10*sec),
				fail("removed", 10*sec), at(10*sec, scenario.RemoveInstance{Instance: "removed"}),
				at(10*sec, seq(readyOps("claimed"), []op{scenario.Claim{Preset: "p1", Want: "claimed"}})...),
				at(10*sec, scenario.CreateInstance{Key: "user", Template: "t1", Version: "v1", Preset: "p1", Owner: "someone"},
					job{Instance: "user", Number: 1, Status: prebuilds.JobFailed, FailureKind: prebuilds.FailureTransient}),
				at(11*sec, seq(runningOps("later"), build("later", 2, "v1", "", prebuilds.TransitionStop, prebuilds.JobSucceeded),
					build("later", 3, "v1", "p1", prebuilds.TransitionStart, prebuilds.JobFailed))...),
				at(12*sec, seq(runningOps("moved"), build("moved", 2, "v1", "", prebuilds.TransitionStop, prebuilds.JobSucceeded),
					build("moved", 3, "v1", "p2", prebuilds.TransitionStart, prebuilds.JobSucceeded),
					[]op{scenario.SetReady{Instance: "moved"}, scenario.Claim{Preset: "p2", Want: "moved"}})...),
				at(13*sec, scenario.CreateInstance{Key: "unset", Template: "t1", Version: "v1", Preset: "p3"},
					job{Instance: "unset", Number: 1, Status: prebuilds.JobFailed, FailureKind: prebuilds.FailureTransient}),
			},
			func(s *prebuilds.GlobalSnapshot) string {
				// pending, failed, removed, claimed, later, moved.
				want := []prebuilds.PresetCounters{{PresetID: p1, Created: 6, Failed: 2, Claimed: 2}}
				if !slices.Equal(s.Counters, want) {
					return fmt.Sprintf("counters %v, want %v", s.Counters, want)
				}
				return ""
			}),
	}
	return cases
}

func cmpStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func pendingInactive(want map[uuid.UUID]int) func(*prebuilds.GlobalSnapshot) string {
	return func(s *prebuilds.GlobalSnapshot) string {
		got := map[uuid.UUID]int{}
		for _, r := range s.PendingInactive {
			got[r.PresetID] += r.Count
		}
		if len(got) != len(want) {
			return fmt.Sprintf("pending inactive %v, want %v", s.PendingInactive, want)
		}
		for p, n := range want {
			if got[p] != n {
				return fmt.Sprintf("pending inactive %v, want %v", s.PendingInactive, want)
			}
		}
		return ""
	}
}

// rowCase: the store's snapshot equals the model's and meets the rule.
func (s *suite) rowCase(t *testing.T, tc rowCase) {
	e := s.claimFixture(t, tc.rule, tc.pos)
	for _, st := range tc.steps {
		now := epoch.Add(st.At)
		e.clock.Set(now)
		e.apply(st.Op, now)
	}
	now := epoch.Add(tc.at)
	e.clock.Set(now)
	p := defaultParams(now)
	if tc.edit != nil {
		tc.edit(&p)
	}
	if bad := tc.check(e.world.Snapshot(p)); bad != "" {
		t.Fatalf("conformance: the model's snapshot breaks the rule: %s (a bug in the suite)", bad)
	}
	l := e.labels()
	v := e.verdict()
	diff, objects, snap, err := snapshotCompare(e.ctx, e.store, e.world, p, l)
	if err != nil {
		v.fatalf(t, "%v", err)
	}
	if bad := tc.check(snap); bad != "" {
		v.addf("%s", l.text(bad))
	}
	v.objects = objects
	v.diff("store snapshot (-model +store)", diff)
	v.report(t)
}
