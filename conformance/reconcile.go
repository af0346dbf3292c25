package conformance

import (
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// reconcileGroup: Reconcile/<scenario> for every scenario of the table, and
// Reconcile/Pause/WritesNothing.
func (s *suite) reconcileGroup(t *testing.T) {
	for _, sc := range scenario.Table() {
		s.run(t, sc.Name, func(t *testing.T) { s.scenarioReconcile(t, sc) })
	}
	s.run(t, "Pause/WritesNothing", s.pause)
}

// snapshotFirst reports, in a few lines, that the store's snapshot already
// differs from the model's before a pass: the writes of the pass would
// only repeat it, and the Snapshot case of the scenario shows the diff.
func snapshotFirst(t *testing.T, v *verdict, sc scenario.Scenario, when string) {
	t.Helper()
	v.fatalf(t, "%s the store's snapshot differs from the model's; the diff is in TestConformance/Snapshot/%s", when, sc.Name)
}

// scenarioReconcile runs the real Reconciler on the scenario, twice over:
//
//   - for every check, on a fresh store replayed up to it, one pass at the
//     check's instant must write exactly the expected plan (creates per
//     preset, deleted instances, pending builds canceled) and the status
//     transitions and events the model's snapshot calls for;
//   - then as a deployment would, on one store: steps applied in order and
//     a pass at every check, with the model as the oracle (each pass must
//     write model.PlanAll's plan; the same writes are applied to the model).
//     Steps may fail once the Reconciler has acted (e.g. a job update on an
//     instance it deleted meanwhile), but store and model must fail alike.
//
// The first check that goes wrong fails the case with everything it found.
func (s *suite) scenarioReconcile(t *testing.T, sc scenario.Scenario) {
	for _, c := range sc.Checks {
		e := s.newEnv(t, sc.Time(0), sc.Rule, checkPos(sc, c))
		e.replay(sc, 0, c.At)
		now := sc.Time(c.At)
		e.clock.Set(now)
		params := sc.Config.SnapshotParams(now)
		v := e.named(scenarioVerdict(sc, c))
		if !e.checkSnapshot(newVerdict("", ""), params, "") {
			snapshotFirst(t, v, sc, "before the pass "+checkName(c)+",")
		}
		reconcilePass(e.ctx, v, e.clock, e.store, e.world, sc.Config, sc.Expected(c), passOptions{})
		e.checkSnapshot(v, params, "after the pass "+checkName(c))
		v.report(t)
	}
	s.scenarioSequence(t, sc)
}

// scenarioSequence is the second half of scenarioReconcile.
func (s *suite) scenarioSequence(t *testing.T, sc scenario.Scenario) {
	e := s.newEnv(t, sc.Time(0), sc.Rule, sc.Pos)
	next := 0
	for _, c := range sc.Checks {
		v := e.named(scenarioVerdict(sc, c))
		v.note("in the sequence run: one store, steps in order, a pass at every check")
		for ; next < len(sc.Steps) && sc.Steps[next].At <= c.At; next++ {
			st := sc.Steps[next]
			at := sc.Time(st.At)
			if at.After(e.clock.Now()) {
				e.clock.Set(at)
			}
			merr := st.Op.ApplyModel(e.world, at)
			serr := st.Op.ApplyStore(e.ctx, e.store, at)
			if !sameError(v, fmt.Sprintf("step %d at +%s, %s", next, st.At, describeOp(st.Op)), serr, merr) {
				v.rule = ruleSameError
				v.report(t)
			}
		}
		now := sc.Time(c.At)
		if now.After(e.clock.Now()) {
			e.clock.Set(now)
		}
		params := sc.Config.SnapshotParams(now)
		if !e.checkSnapshot(newVerdict("", ""), params, "") {
			snapshotFirst(t, v, sc, "in the sequence run, before the pass "+checkName(c)+",")
		}
		want := e.world.PlanAll(now, sc.Config.PlanConfig(), params)
		reconcilePass(e.ctx, v, e.clock, e.store, e.world, sc.Config, want, passOptions{})
		e.checkSnapshot(v, params, "after the pass "+checkName(c))
		v.report(t)
	}
}

// pause: with the pause switch on, a pass over a store with every kind of
// work to do (create, delete extraneous, delete and cancel for an inactive
// preset, a hard-limit status transition) writes nothing at all and emits
// no event. Unpaused, the same pass does the work (positive control).
func (s *suite) pause(t *testing.T) {
	const rule = "A paused pass writes nothing and emits no event, whatever work is pending."
	e := s.newEnv(t, scenario.Epoch, rule, defined())
	cfg := scenario.Config{BackoffInterval: time.Minute, BackoffLookback: time.Hour, FailureHardLimit: 1}
	ok := func(k string) scenario.UpdateJob {
		return scenario.UpdateJob{Instance: k, Number: 1, Status: prebuilds.JobSucceeded}
	}
	mk := func(k, tmpl, v, p string) scenario.CreateInstance {
		return scenario.CreateInstance{Key: k, Template: tmpl, Version: v, Preset: p}
	}
	preset := func(k, v string, desired int) scenario.UpsertPreset {
		return scenario.UpsertPreset{Key: k, Version: v, Desired: &desired}
	}
	type (
		addT = scenario.AddTemplate
		addV = scenario.AddVersion
		act  = scenario.Activate
	)
	e.applyAll(scenario.Epoch,
		// t1: p0 of the old version v0 has a running and a queued prebuild.
		addT{Key: "t1"}, addV{Key: "v0", Template: "t1"}, preset("p0", "v0", 2), act{Template: "t1", Version: "v0"},
		mk("old-running", "t1", "v0", "p0"), ok("old-running"), mk("old-queued", "t1", "v0", "p0"),
		// p1 of the new active version v1 has one prebuild too many.
		addV{Key: "v1", Template: "t1"}, preset("p1", "v1", 1), act{Template: "t1", Version: "v1"},
		mk("i1", "t1", "v1", "p1"), ok("i1"), mk("i2", "t1", "v1", "p1"), ok("i2"),
		// t2: p2 wants one and has none.
		addT{Key: "t2"}, addV{Key: "v2", Template: "t2"}, act{Template: "t2", Version: "v2"}, preset("p2", "v2", 1),
		// t3: p3 just hit the hard limit (K = 1).
		addT{Key: "t3"}, addV{Key: "v3", Template: "t3"}, act{Template: "t3", Version: "v3"}, preset("p3", "v3", 1),
		mk("f1", "t3", "v3", "p3"), scenario.UpdateJob{Instance: "f1", Number: 1, Status: prebuilds.JobFailed, FailureKind: prebuilds.FailureTransient},
		scenario.Pause{},
	)
	now := scenario.Epoch.Add(time.Minute)
	e.clock.Set(now)
	params := cfg.SnapshotParams(now)
	e.requireSnapshot(params, "before the paused pass")

	v := e.verdict()
	rec := newRecorder(e.store)
	r := prebuilds.NewReconciler(rec, reconcilerConfig(cfg, e.clock, rec.notifier(), io.Discard))
	stats, err := r.ReconcileAll(e.ctx)
	if err != nil {
		v.fatalf(t, "ReconcileAll: %v", err)
	}
	if !stats.Acquired || !stats.Paused {
		v.addf("paused pass stats %+v: want Acquired and Paused", stats)
	}
	l := e.labels()
	for _, w := range rec.recorded() {
		v.addf("the paused pass wrote: %s", describeWrite(w, l))
	}
	for _, ev := range rec.notified() {
		v.addf("the paused pass emitted event %s for %s", ev.Kind, l.of(ev.PresetID))
	}
	e.checkSnapshot(v, params, "after the paused pass")
	v.report(t)

	e.apply(scenario.Pause{Undo: true}, now)
	plans := e.world.PlanAll(now, cfg.PlanConfig(), params)
	control := e.named(newVerdict("An unpaused pass does the pending work (the control of this case).", e.pos))
	writes := reconcilePass(e.ctx, control, e.clock, e.store, e.world, cfg, plans, passOptions{})
	if len(writes) < 5 {
		control.addf("the unpaused control pass wrote %d times, want the pending work done (a bug in the suite?)", len(writes))
	}
	e.checkSnapshot(control, params, "after the unpaused pass")
	control.report(t)
}

// describeWrite renders a recorded write by keys.
func describeWrite(w write, l labeler) string {
	switch w.Kind {
	case writeCreatePrebuilds:
		return fmt.Sprintf("CreatePrebuilds(%s, %d instances)", l.of(w.Create.PresetID), len(w.Create.Instances))
	case writeDeletePrebuild:
		return fmt.Sprintf("DeletePrebuild(%s)", l.of(w.Delete.InstanceID))
	case writeCancelPending:
		return fmt.Sprintf("CancelPending(%s)", l.of(w.Cancel.PresetID))
	default:
		return fmt.Sprintf("SetPresetStatus(%s, %s→%s)", l.of(w.PresetID), w.From, w.To)
	}
}
