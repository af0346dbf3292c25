package conformance

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// checkName names a check of a scenario by its offset, e.g. "at=1m30s".
func checkName(c Check) string { return "at=" + c.At.String() }

// scenarioSnapshot replays the scenario's steps into one store and the
// model; at every check the store's snapshot must equal the model's, and
// the pure planner fed the store's snapshot must produce the expected
// plans.
func (s *suite) scenarioSnapshot(t *testing.T, sc Scenario) {
	e := s.newEnv(t, sc.Time(0))
	next := 0
	for _, c := range sc.Checks {
		for ; next < len(sc.Steps) && sc.Steps[next].At <= c.At; next++ {
			st := sc.Steps[next]
			e.clock.Set(sc.Time(st.At))
			e.apply(st.Op, sc.Time(st.At))
		}
		now := sc.Time(c.At)
		e.clock.Set(now)
		params := passConfig{sc.Config}.params(now)
		e.requireSnapshot(params, fmt.Sprintf("check %s", checkName(c)))

		snap, err := storeSnapshot(e.ctx, e.store, params)
		if err != nil {
			t.Fatalf("check %s: %v", checkName(c), err)
		}
		views := snap.Index()
		got := make([]prebuilds.Plan, 0, len(views))
		for _, v := range views {
			got = append(got, prebuilds.PlanPreset(v, now, sc.Config.PlanConfig()))
		}
		if diff := cmp.Diff(sc.Expected(c), got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("check %s: plans of the store's snapshot (-want +got):\n%s", checkName(c), diff)
		}
	}
}

// scenarioReconcile, for every check, replays the steps up to it into a
// fresh store, runs the real Reconciler at the check's instant, and
// requires its writes to be exactly the expected plan (and the status
// transitions and events the model's snapshot calls for).
func (s *suite) scenarioReconcile(t *testing.T, sc Scenario) {
	for _, c := range sc.Checks {
		t.Run(checkName(c), func(t *testing.T) {
			e := s.newEnv(t, sc.Time(0))
			for _, st := range sc.StepsUntil(c.At) {
				e.clock.Set(sc.Time(st.At))
				e.apply(st.Op, sc.Time(st.At))
			}
			e.clock.Set(sc.Time(c.At))
			reconcileOnce(e.ctx, t, e.clock, e.store, e.world, sc.Config, sc.Expected(c))
			e.requireSnapshot(passConfig{sc.Config}.params(e.now()), "after the pass")
		})
	}
}

// scenarioSequence runs the scenario on one store as a deployment would:
// steps applied in order, a reconciliation pass at every check. The model
// is the oracle: each pass must write model.PlanAll's plan; the same writes
// are applied to the model, and the snapshots must stay equal. Steps may
// fail once the reconciler has acted (e.g. a job update on an instance the
// reconciler deleted meanwhile), but store and model must fail alike.
func (s *suite) scenarioSequence(t *testing.T, sc Scenario) {
	e := s.newEnv(t, sc.Time(0))
	next := 0
	for _, c := range sc.Checks {
		for ; next < len(sc.Steps) && sc.Steps[next].At <= c.At; next++ {
			st := sc.Steps[next]
			at := sc.Time(st.At)
			if at.After(e.clock.Now()) {
				e.clock.Set(at)
			}
			merr := st.Op.ApplyModel(e.world, at)
			serr := st.Op.ApplyStore(e.ctx, e.store, at)
			sameError(t, fmt.Sprintf("step %d (%T) at %s", next, st.Op, st.At), serr, merr)
		}
		now := sc.Time(c.At)
		if now.After(e.clock.Now()) {
			e.clock.Set(now)
		}
		params := passConfig{sc.Config}.params(now)
		e.requireSnapshot(params, fmt.Sprintf("check %s, before the pass", checkName(c)))
		want := e.world.PlanAll(now, sc.Config.PlanConfig(), params)
		reconcileOnce(e.ctx, t, e.clock, e.store, e.world, sc.Config, want)
		e.requireSnapshot(params, fmt.Sprintf("check %s, after the pass", checkName(c)))
	}
}
