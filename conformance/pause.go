package conformance

import (
	"testing"
	"time"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// pause: with the pause switch on, a pass over a store with every kind of
// work to do (create, delete extraneous, delete and cancel for an inactive
// preset, a hard-limit status transition) writes nothing at all and emits
// no event. Unpaused, the same pass does the work (positive control).
func (s *suite) pause(t *testing.T) {
	e := s.newEnv(t, Epoch)
	cfg := Config{BackoffInterval: time.Minute, BackoffLookback: time.Hour, HardLimit: 1}
	ok := func(k string) UpdateJob { return UpdateJob{k, 1, prebuilds.JobSucceeded, ""} }
	mk := func(k, tmpl, v, p string) CreateInstance {
		return CreateInstance{Key: k, Template: tmpl, Version: v, Preset: p}
	}
	e.applyAll(Epoch,
		// t1: p0 of the old version v0 has a running and a queued prebuild.
		AddTemplate{"t1"}, AddVersion{"v0", "t1"}, UpsertPreset{Key: "p0", Version: "v0", Desired: count(2)}, Activate{"t1", "v0"},
		mk("old-running", "t1", "v0", "p0"), ok("old-running"), mk("old-queued", "t1", "v0", "p0"),
		// p1 of the new active version v1 has one prebuild too many.
		AddVersion{"v1", "t1"}, UpsertPreset{Key: "p1", Version: "v1", Desired: count(1)}, Activate{"t1", "v1"},
		mk("i1", "t1", "v1", "p1"), ok("i1"), mk("i2", "t1", "v1", "p1"), ok("i2"),
		// t2: p2 wants one and has none.
		AddTemplate{"t2"}, AddVersion{"v2", "t2"}, Activate{"t2", "v2"}, UpsertPreset{Key: "p2", Version: "v2", Desired: count(1)},
		// t3: p3 just hit the hard limit (K = 1).
		AddTemplate{"t3"}, AddVersion{"v3", "t3"}, Activate{"t3", "v3"}, UpsertPreset{Key: "p3", Version: "v3", Desired: count(1)},
		mk("f1", "t3", "v3", "p3"), UpdateJob{"f1", 1, prebuilds.JobFailed, prebuilds.FailureTransient},
		Pause{},
	)
	now := Epoch.Add(time.Minute)
	e.clock.Set(now)
	params := passConfig{cfg}.params(now)
	e.requireSnapshot(params, "before the paused pass")

	rec := NewRecorder(e.store)
	r := prebuilds.NewReconciler(rec, reconcilerConfig(t, cfg, e.clock, rec.Notifier()))
	stats, err := r.ReconcileAll(e.ctx)
	if err != nil {
		t.Fatalf("ReconcileAll: %v", err)
	}
	if !stats.Acquired || !stats.Paused {
		t.Fatalf("paused pass stats %+v: want Acquired and Paused", stats)
	}
	if w := rec.Writes(); len(w) != 0 {
		t.Fatalf("a paused pass wrote %d times, want nothing at all: %+v", len(w), w)
	}
	if ev := rec.Events(); len(ev) != 0 {
		t.Fatalf("a paused pass emitted %d events, want none: %+v", len(ev), ev)
	}
	e.requireSnapshot(params, "after the paused pass")

	e.apply(Pause{Undo: true}, now)
	plans := e.world.PlanAll(now, cfg.PlanConfig(), params)
	if writes := reconcileOnce(e.ctx, t, e.clock, e.store, e.world, cfg, plans); len(writes) < 5 {
		t.Fatalf("unpaused control pass wrote %d times, want the pending work done (suite bug?)", len(writes))
	}
	e.requireSnapshot(params, "after the unpaused pass")
}
