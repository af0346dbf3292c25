package conformance

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// lockWait bounds how long a lock test waits for its goroutines before it
// declares the store blocking. It is a failure guard, never a delay.
const lockWait = 30 * time.Second

func (s *suite) lock(t *testing.T) {
	t.Run("Exclusive", func(t *testing.T) { s.parallel(t); s.lockExclusive(t) })
	t.Run("FnError", func(t *testing.T) { s.parallel(t); s.lockFnError(t) })
	t.Run("StatusCompareAndSet", func(t *testing.T) { s.parallel(t); s.lockStatusCAS(t) })
	t.Run("HardLimitRace", func(t *testing.T) { s.parallel(t); s.lockHardLimitRace(t) })
}

// lockExclusive: 5 goroutines contend for the lock, round after round. The
// holder stays inside fn until every other contender has either been
// refused (acquired=false, at once) or, wrongly, entered fn too; so exactly
// one may be inside at any time, and nobody may block.
func (s *suite) lockExclusive(t *testing.T) {
	const contenders, rounds = 5, 20
	e := s.newEnv(t, Epoch)
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
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, contender %d: %v", round, i, err)
			}
		}
		if m := maxInside.Load(); m != 1 {
			t.Fatalf("round %d: %d contenders held the reconciliation lock at the same time, want exactly 1", round, m)
		}
		if n := acquiredN.Load(); n != 1 {
			t.Fatalf("round %d: %d of %d contenders acquired the lock, want exactly 1", round, n, contenders)
		}
	}
}

// lockFnError: fn's error comes back with acquired = true, and the lock is
// released afterwards.
func (s *suite) lockFnError(t *testing.T) {
	e := s.newEnv(t, Epoch)
	boom := errors.New("boom")
	acquired, err := e.store.WithReconciliationLock(e.ctx, func(context.Context, prebuilds.SnapshotReader) error { return boom })
	if !acquired || !errors.Is(err, boom) {
		t.Fatalf("WithReconciliationLock with failing fn = (%v, %v), want (true, an error matching fn's)", acquired, err)
	}
	called := false
	acquired, err = e.store.WithReconciliationLock(e.ctx, func(context.Context, prebuilds.SnapshotReader) error { called = true; return nil })
	if !acquired || err != nil || !called {
		t.Fatalf("WithReconciliationLock after a failed fn = (%v, %v), fn called %v: the lock was not released", acquired, err, called)
	}
}

// lockStatusCAS: concurrent compare-and-sets of the same transition change
// the row exactly once.
func (s *suite) lockStatusCAS(t *testing.T) {
	const racers = 5
	e := s.claimFixture(t)
	start := make(chan struct{})
	var wg sync.WaitGroup
	var changed atomic.Int32
	errs := make([]error, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			ok, err := e.store.SetPresetStatus(e.ctx, ID("p1"), prebuilds.PresetHealthy, prebuilds.PresetHardLimited)
			errs[i] = err
			if ok {
				changed.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("racer %d: SetPresetStatus: %v", i, err)
		}
	}
	if n := changed.Load(); n != 1 {
		t.Fatalf("%d concurrent SetPresetStatus(healthy→hard_limited) reported changed %d times, want exactly 1", racers, n)
	}
	p, err := e.store.GetPreset(e.ctx, ID("p1"))
	if err != nil || p.Status != prebuilds.PresetHardLimited {
		t.Fatalf("GetPreset after the race = %v, %v: want status hard_limited", p.Status, err)
	}
}

// lockHardLimitRace: five Reconcilers (replicas) sharing the store race
// passes over a preset that just hit the hard limit (K = 1, one failed
// prebuild): in total exactly one status change and one event.
func (s *suite) lockHardLimitRace(t *testing.T) {
	const replicas, rounds = 5, 3
	e := s.claimFixture(t)
	at := Epoch.Add(10 * time.Second)
	e.clock.Set(at)
	e.applyAll(at, prebuildOp("i1"), UpdateJob{"i1", 1, prebuilds.JobFailed, prebuilds.FailureTransient})
	e.clock.Set(Epoch.Add(20 * time.Second))

	cfg := Config{BackoffInterval: time.Minute, BackoffLookback: time.Hour, HardLimit: 1}
	rec := NewRecorder(e.store)
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, replicas)
	for i := range replicas {
		r := prebuilds.NewReconciler(rec, reconcilerConfig(t, cfg, e.clock, rec.Notifier()))
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
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: ReconcileAll: %v", i, err)
		}
	}
	changes := 0
	for _, w := range rec.Writes() {
		switch {
		case w.Kind == WriteSetPresetStatus && w.Err != nil:
			t.Fatalf("SetPresetStatus: %v", w.Err)
		case w.Kind == WriteSetPresetStatus && w.Changed:
			changes++
		case w.Kind != WriteSetPresetStatus:
			t.Fatalf("unexpected write %s by a pass over a hard-limited preset", w.Kind)
		}
	}
	events := rec.Events()
	if changes != 1 || len(events) != 1 {
		t.Fatalf("%d racing replicas: %d status changes and %d events, want exactly 1 of each (events: %+v)", replicas, changes, len(events), events)
	}
	if events[0].Kind != prebuilds.EventHardLimited || events[0].PresetID != ID("p1") {
		t.Fatalf("event %+v, want %s for p1", events[0], prebuilds.EventHardLimited)
	}
	p, err := e.store.GetPreset(e.ctx, ID("p1"))
	if err != nil || p.Status != prebuilds.PresetHardLimited {
		t.Fatalf("GetPreset after the race = %v, %v: want status hard_limited", p.Status, err)
	}
}
