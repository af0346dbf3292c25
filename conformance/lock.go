package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// lockWait bounds how long a lock test waits for its goroutines before it
// declares the store blocking. It is a failure guard, never a delay.
const lockWait = 30 * time.Second

func (s *suite) lockGroup(t *testing.T) {
	s.run(t, "Exclusive", s.lockExclusive)
	s.run(t, "FnError", s.lockFnError)
	s.run(t, "StatusCompareAndSet", s.lockStatusCAS)
	s.run(t, "HardLimitRace", s.lockHardLimitRace)
	s.run(t, "SnapshotWithoutLock", s.lockFreeSnapshot)
	s.run(t, "Shards", s.shardLocks)
	s.run(t, "ShardPassLog", s.shardPassLog)
}

// lockExclusive: 5 goroutines contend for the lock, round after round. The
// holder stays inside fn until every other contender has either been
// refused (acquired=false, at once) or, wrongly, entered fn too; so exactly
// one may be inside at any time, and nobody may block.
func (s *suite) lockExclusive(t *testing.T) {
	const contenders, rounds = 5, 20
	e := s.newEnv(t, epoch, "WithReconciliationLock lets one holder in at a time and never blocks: every other caller gets (false, nil) at once.", defined())
	ctx, cancel := context.WithTimeout(e.ctx, lockWait)
	defer cancel()
	for round := range rounds {
		var inside, maxInside, arrived, acquiredN atomic.Int32
		all := make(chan struct{})
		arrive := func() {
			if arrived.Add(1) == contenders {
				close(all)
			}
		}
		start := make(chan struct{})
		errs := make([]error, contenders)
		var wg sync.WaitGroup
		for i := range contenders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				acquired, err := e.store.WithReconciliationLock(ctx, func(ctx context.Context, _ prebuilds.SnapshotReader) error {
					n := inside.Add(1)
					for m := maxInside.Load(); n > m && !maxInside.CompareAndSwap(m, n); m = maxInside.Load() {
					}
					arrive()
					select {
					case <-all:
					case <-ctx.Done():
						return errors.New("holder waited for the other contenders in vain: WithReconciliationLock blocked a contender instead of returning (false, nil)")
					}
					inside.Add(-1)
					return nil
				})
				if acquired {
					acquiredN.Add(1)
				} else {
					arrive()
				}
				errs[i] = err
			}()
		}
		close(start)
		wg.Wait()
		v := e.verdict()
		v.note(fmt.Sprintf("round %d of %d, %d contenders", round+1, rounds, contenders))
		for i, err := range errs {
			if err != nil {
				v.addf("contender %d: %v", i, err)
			}
		}
		if m := maxInside.Load(); m != 1 {
			v.addf("%d contenders held the reconciliation lock at the same time, want exactly 1", m)
		}
		if n := acquiredN.Load(); n != 1 {
			v.addf("%d of %d contenders acquired the lock, want exactly 1", n, contenders)
		}
		v.report(t)
	}
}

// lockFnError: fn's error comes back with acquired = true, and the lock is
// released afterwards.
func (s *suite) lockFnError(t *testing.T) {
	e := s.newEnv(t, epoch, "WithReconciliationLock returns fn's error with acquired = true, and releases the lock.", defined())
	v := e.verdict()
	boom := errors.New("boom")
	acquired, err := e.store.WithReconciliationLock(e.ctx, func(context.Context, prebuilds.SnapshotReader) error { return boom })
	if !acquired || !errors.Is(err, boom) {
		v.addf("WithReconciliationLock with failing fn = (%v, %v), want (true, an error matching fn's)", acquired, err)
	}
	called := false
	acquired, err = e.store.WithReconciliationLock(e.ctx, func(context.Context, prebuilds.SnapshotReader) error { called = true; return nil })
	if !acquired || err != nil || !called {
		v.addf("WithReconciliationLock after a failed fn = (%v, %v), fn called %v: the lock was not released", acquired, err, called)
	}
	v.report(t)
}

// lockStatusCAS: concurrent compare-and-sets of the same transition change
// the row exactly once.
func (s *suite) lockStatusCAS(t *testing.T) {
	const racers = 5
	e := s.claimFixture(t, "SetPresetStatus is a compare-and-set: of concurrent identical transitions exactly one reports changed.", defined())
	start := make(chan struct{})
	var wg sync.WaitGroup
	var changed atomic.Int32
	errs := make([]error, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ok, err := e.store.SetPresetStatus(e.ctx, id("p1"), prebuilds.PresetHealthy, prebuilds.PresetHardLimited)
			errs[i] = err
			if ok {
				changed.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	v := e.verdict()
	v.object("preset %s", e.labels().of(id("p1")))
	for i, err := range errs {
		if err != nil {
			v.addf("racer %d: SetPresetStatus: %v", i, err)
		}
	}
	if n := changed.Load(); n != 1 {
		v.addf("%d concurrent SetPresetStatus(healthy→hard_limited) reported changed %d times, want exactly 1", racers, n)
	}
	p, err := e.store.GetPreset(e.ctx, id("p1"))
	if err != nil || p.Status != prebuilds.PresetHardLimited {
		v.addf("GetPreset after the race = %v, %v: want status hard_limited", p.Status, err)
	}
	v.report(t)
}

// lockHardLimitRace: five Reconcilers (replicas) sharing the store race
// passes over a preset that just hit the hard limit (K = 1, one failed
// prebuild): in total exactly one status change and one event.
func (s *suite) lockHardLimitRace(t *testing.T) {
	const replicas, rounds = 5, 3
	e := s.claimFixture(t, "Replicas racing passes over a preset that just hit the hard limit make exactly one status change and emit one event.", defined())
	at := epoch.Add(10 * time.Second)
	e.clock.Set(at)
	e.applyAll(at, prebuildOp("i1"), scenario.UpdateJob{Instance: "i1", Number: 1, Status: prebuilds.JobFailed, FailureKind: prebuilds.FailureTransient})
	e.clock.Set(epoch.Add(20 * time.Second))

	cfg := scenario.Config{BackoffInterval: time.Minute, BackoffLookback: time.Hour, FailureHardLimit: 1}
	rec := newRecorder(e.store)
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	for i := range replicas {
		r := prebuilds.NewReconciler(rec, reconcilerConfig(cfg, e.clock, rec.notifier(), io.Discard))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range rounds {
				if _, err := r.ReconcileAll(e.ctx); err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	l := e.labels()
	v := e.verdict()
	v.object("preset %s", l.of(id("p1")))
	v.object("failed prebuild %s", l.of(id("i1")))
	for i, err := range errs {
		if err != nil {
			v.addf("replica %d: ReconcileAll: %v", i, err)
		}
	}
	changes := 0
	for _, w := range rec.recorded() {
		switch {
		case w.Kind == writeSetPresetStatus && w.Err != nil:
			v.addf("SetPresetStatus: %v", w.Err)
		case w.Kind == writeSetPresetStatus && w.Changed:
			changes++
		case w.Kind != writeSetPresetStatus:
			v.addf("unexpected write by a pass over a hard-limited preset: %s", describeWrite(w, l))
		}
	}
	events := rec.notified()
	if changes != 1 || len(events) != 1 {
		v.addf("%d racing replicas: %d status changes and %d events, want exactly 1 of each", replicas, changes, len(events))
	}
	for _, ev := range events {
		if ev.Kind != prebuilds.EventHardLimited || ev.PresetID != id("p1") {
			v.addf("event %s for %s, want %s for p1", ev.Kind, l.of(ev.PresetID), prebuilds.EventHardLimited)
		}
	}
	p, err := e.store.GetPreset(e.ctx, id("p1"))
	if err != nil || p.Status != prebuilds.PresetHardLimited {
		v.addf("GetPreset after the race = %v, %v: want status hard_limited", p.Status, err)
	}
	v.report(t)
}
