package conformance

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// snapshotGroup: Snapshot/<scenario> for every scenario of the table, and
// Snapshot/RankTieBreak/... and Snapshot/Rows/....
func (s *suite) snapshotGroup(t *testing.T) {
	for _, sc := range scenario.Table() {
		s.run(t, sc.Name, func(t *testing.T) { s.scenarioSnapshot(t, sc) })
	}
	s.ties(t)
	s.rowsGroup(t)
}

// checkName names a check of a scenario by its offset, e.g. "at +1m30s".
func checkName(c scenario.Check) string { return "at +" + c.At.String() }

// scenarioVerdict starts the verdict of a scenario's check: the scenario's
// rule, where the scenario and the check are defined.
func scenarioVerdict(sc scenario.Scenario, c scenario.Check) *verdict {
	return newVerdict(sc.Rule, checkPos(sc, c))
}

// checkPos says where a check is defined: "<check pos>, the check at +1m of
// the scenario at <scenario pos>".
func checkPos(sc scenario.Scenario, c scenario.Check) scenario.Pos {
	return scenario.Pos(fmt.Sprintf("%s, the check %s of the scenario at %s", c.Pos, checkName(c), sc.Pos))
}

// replay applies the scenario's steps with index in [from, until offset]
// to the env, the clock following the steps; it returns the next index.
func (e *env) replay(sc scenario.Scenario, from int, until time.Duration) int {
	e.t.Helper()
	for ; from < len(sc.Steps) && sc.Steps[from].At <= until; from++ {
		st := sc.Steps[from]
		at := sc.Time(st.At)
		e.clock.Set(at)
		e.apply(st.Op, at)
	}
	return from
}

// scenarioSnapshot replays the scenario's steps into one store and the
// model; at every check the store's snapshot must equal the model's, and
// the pure planner fed the store's snapshot must produce the expected
// plans. The first check that differs fails the case with everything it
// found.
func (s *suite) scenarioSnapshot(t *testing.T, sc scenario.Scenario) {
	e := s.newEnv(t, sc.Time(0), sc.Rule, sc.Pos)
	next := 0
	for _, c := range sc.Checks {
		e.pos = checkPos(sc, c)
		next = e.replay(sc, next, c.At)
		now := sc.Time(c.At)
		e.clock.Set(now)
		params := sc.Config.SnapshotParams(now)
		l := e.labels()
		v := e.named(scenarioVerdict(sc, c))

		diff, objects, snap, err := snapshotCompare(e.ctx, e.store, e.world, params, l)
		if err != nil {
			v.fatalf(t, "%s: %v", checkName(c), err)
		}
		v.objects = objects
		v.diff("store snapshot "+checkName(c)+" (-model +store)", diff)
		got := prebuilds.PlanAll(snap, sc.Config.PlanConfig()).Plans
		if d := l.diff(sc.Expected(c), got); d != "" {
			if len(v.objects) == 0 {
				v.objects = planObjects(sc.Expected(c), got, l)
			}
			v.diff("plans of the store's snapshot (-want +got)", d)
		}
		v.report(t)
	}
}

// ties: docs/spec.md ranks backoff candidates newest first, created_at
// desc, then build ID desc (UUID byte order). Two prebuilds of a preset
// with desired 1 are created in the same microsecond; one build fails, the
// other succeeds. The backoff row and the hard limit (K = 1) exist iff the
// failed build ranks first, i.e. has the greater ID.
func (s *suite) ties(t *testing.T) {
	const rule = "Builds created in the same microsecond rank by build ID, the greater first (newest first: created_at desc, then build ID desc)."
	pos := defined()
	for _, failedFirst := range []bool{true, false} {
		name := "RankTieBreak/FailedBuildRanksFirst"
		if !failedFirst {
			name = "RankTieBreak/SucceededBuildRanksFirst"
		}
		s.run(t, name, func(t *testing.T) {
			e := s.claimFixture(t, rule, pos)
			failed, ok := "a", "b"
			if (prebuilds.CompareUUID(scenario.ID(scenario.BuildKey("a", 1)), scenario.ID(scenario.BuildKey("b", 1))) > 0) != failedFirst {
				failed, ok = ok, failed
			}
			at := scenario.Epoch.Add(10 * time.Second)
			e.clock.Set(at)
			e.applyAll(at, prebuildOp(failed), prebuildOp(ok),
				scenario.UpdateJob{Instance: failed, Number: 1, Status: prebuilds.JobFailed, FailureKind: prebuilds.FailureTransient},
				scenario.UpdateJob{Instance: ok, Number: 1, Status: prebuilds.JobSucceeded})
			now := at.Add(time.Second)
			e.clock.Set(now)
			params := prebuilds.SnapshotParams{Now: now, Lookback: now.Add(-time.Hour), HardLimit: 1}

			l := e.labels()
			v := e.verdict()
			v.object("failed build %s", l.of(scenario.ID(scenario.BuildKey(failed, 1))))
			v.object("succeeded build %s", l.of(scenario.ID(scenario.BuildKey(ok, 1))))
			diff, snap, err := snapshotDiff(e.ctx, e.store, e.world, params, l)
			if err != nil {
				v.fatalf(t, "%v", err)
			}
			hasRow := len(snap.Backoffs) == 1
			limited := slices.Contains(snap.HardLimited, scenario.ID("p1"))
			if hasRow != failedFirst || limited != failedFirst {
				v.addf("the failed build ranks first: %v; the store's snapshot has a backoff row: %v, p1 hard-limited (K = 1): %v; want both %v",
					failedFirst, hasRow, limited, failedFirst)
			}
			v.diff("store snapshot (-model +store)", diff)
			v.report(t)
		})
	}
}
