package bench

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// RefillReplicas is the number of Reconcilers Refill runs, each on its own
// store handle (Harness.Handle), as replicas of one deployment.
const RefillReplicas = 2

// refill is Refill/presets=N: claim → replacement create committed, with
// RefillReplicas Reconcilers following the store's change feed in Run, on
// the real clock. See Run's documentation.
func (r *runner) refill(b *testing.B, n int) {
	if r.h.Config.DisableChangeFeed {
		b.Skip("bench: Refill measures Reconcilers that follow the store's change feed; Harness.Config.DisableChangeFeed is set")
	}
	f := cachedFleet(b, r.h.Fleet(n))
	s := r.load(b, f)
	if _, ok := s.(prebuilds.ChangeFeed); !ok {
		b.Skipf("bench: %T does not implement prebuilds.ChangeFeed: without a change feed a claimed pool is refilled at the next Interval tick, which Refill does not measure (its interval-only figure is half an Interval on average)", s)
	}
	if _, ok := s.(prebuilds.ShardLocker); r.h.Config.Shards > 1 && !ok {
		b.Fatalf("bench: Harness.Config.Shards is %d but %T does not implement prebuilds.ShardLocker", r.h.Config.Shards, s)
	}
	fx := r.fixtureOf(f, s)
	if len(fx.healthy) == 0 {
		b.Fatalf("the fleet has no preset with a running prebuild and no failure")
	}
	// Every healthy preset can give away as many prebuilds as it has
	// ready; refills stay pending, so that no job report triggers passes
	// that would stand in the way of the next claim's.
	left := maps.Clone(fx.ready)
	capacity := 0
	for _, p := range fx.healthy {
		capacity += left[p.ID]
	}

	handles := make([]Store, RefillReplicas+1) // the replicas', then the claimer's
	handles[0] = s
	for i := 1; i < len(handles); i++ {
		handles[i] = r.handle(b, s)
	}
	claimer := handles[RefillReplicas]

	// The fleet was generated for f.Now: the clock runs in real time from
	// there, so that no prebuild has expired and no schedule has moved.
	clock := shiftedClock{Clock: quartz.NewReal(), shift: f.Now.Sub(time.Now())}
	cfg := r.h.Config
	cfg.Clock, cfg.Logger, cfg.Registerer, cfg.Notifier = clock, slog.New(slog.DiscardHandler), nil, nil
	cfg = withConfigDefaults(cfg)
	sink := make(chan prebuilds.Job, capacity+16)
	cfg.JobSink = sink

	ctx, cancel := context.WithCancel(b.Context())
	replicas := make([]*watched, RefillReplicas)
	var runs errgroup.Group
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := runs.Wait(); err != nil {
			b.Errorf("bench: a Reconciler's Run: %v", err)
		}
	}
	defer stop()
	for i := range RefillReplicas {
		w := watch(handles[i], max(cfg.Shards, 1))
		replicas[i] = w
		rec := prebuilds.NewReconciler(w, cfg)
		ended := make(chan error, 1)
		runs.Go(func() error {
			err := rec.Run(ctx)
			ended <- err
			if ctx.Err() == nil {
				return err
			}
			return nil
		})
		// Measure from the moment both replicas follow the feed and have
		// finished their first full pass, which Run starts with.
		for _, ch := range []<-chan struct{}{w.subscribed, w.passed} {
			select {
			case <-ch:
			case err := <-ended:
				b.Fatalf("bench: replica %d: Run returned before its first pass: %v", i, err)
			}
		}
		if w.feedErr != nil {
			b.Fatalf("bench: replica %d: the change feed: %v", i, w.feedErr)
		}
	}

	// The refill must come from a targeted pass: a full pass would come at
	// the next Interval tick. Twice the interval bounds a wait for a pass
	// that never comes (a feed that does not deliver), so that the
	// benchmark fails instead of hanging.
	guard := 2 * cfg.Interval
	latencies := make([]time.Duration, 0, min(capacity, 4096))
	acquired := make([]int, RefillReplicas)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		for k, w := range replicas {
			acquired[k], _ = w.acquisitions()
		}
		if i == capacity {
			b.Fatalf("bench: Refill ran out of ready prebuilds after %d claims (the fleet of %d presets has %d): run it with a smaller -benchtime, e.g. 300x",
				i, n, capacity)
		}
		// Round-robin over the presets, so that each claim finds a pool
		// with a ready prebuild.
		p := fx.healthy[i%len(fx.healthy)]
		i++
		left[p.ID]--
		start := time.Now()
		if _, err := claimer.Claim(ctx, prebuilds.ClaimParams{PresetID: p.ID, Owner: fx.users[i%len(fx.users)], Now: clock.Now()}); err != nil {
			b.Fatalf("bench: claim %d from preset %s: %v", i, p.Name, err)
		}
		timer := time.NewTimer(guard)
		select {
		case job := <-sink:
			latencies = append(latencies, time.Since(start))
			if job.PresetID != p.ID || job.Transition != prebuilds.TransitionStart {
				b.Fatalf("bench: after a claim from preset %s the Reconcilers handed off a %s job of preset %s; want only the refill's create",
					p.Name, job.Transition, job.PresetID)
			}
		case <-timer.C:
			b.Fatalf("bench: no replacement for the claim from preset %s within %s (2 × Interval): the change feed did not trigger a targeted pass", p.Name, guard)
		}
		// Every replica follows the feed and answers the claim with a pass
		// of its own; the one that finds the lock held retries. Claim again
		// once each has held the lock since this claim: a claim that comes
		// while a retry is pending joins it and is refilled sooner, which
		// would flatter the figures.
		b.StopTimer()
		for k, w := range replicas {
			if !w.waitAcquired(acquired[k], timer) {
				b.Fatalf("bench: replica %d did not hold the lock within %s of the claim from preset %s (a targeted pass that finds the lock held is retried a few times, TriggerDelay apart, then left to the next full pass)",
					k, guard, p.Name)
			}
		}
		timer.Stop()
		b.StartTimer()
	}
	b.StopTimer()
	stop()
	if len(sink) > 0 {
		job := <-sink
		b.Fatalf("bench: %d more jobs than refills (the first of preset %s): a claim was refilled twice", len(sink)+1, job.PresetID)
	}

	p50, p99 := quantile(latencies, 0.5), quantile(latencies, 0.99)
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")

	// The interval-only figure beside it: without a feed a claim waits for
	// the next tick, uniformly over the Interval for claims that come at
	// random, then for the full pass to reach its preset. The pass is
	// timed; the wait is derived.
	pass := r.fullPassRefill(b, fx, claimer, handles[0], clock, left)
	b.ReportMetric(ms(cfg.Interval/2+pass), "interval-p50-ms")
	b.ReportMetric(ms(time.Duration(0.99*float64(cfg.Interval))+pass), "interval-p99-ms")
}

// fullPassRefill claims from presets with a ready prebuild left and times
// claim → replacement create by a full pass (ReconcileAll right after the
// claim), a few times; it returns the slowest.
func (r *runner) fullPassRefill(b *testing.B, fx *fixture, claimer, s Store, clock quartz.Clock, left map[uuid.UUID]int) time.Duration {
	b.Helper()
	const passes = 3
	cfg := r.h.Config
	cfg.Clock, cfg.Logger, cfg.Registerer, cfg.Notifier = clock, slog.New(slog.DiscardHandler), nil, nil
	sink := make(chan prebuilds.Job, passes)
	cfg.JobSink = sink
	rec := prebuilds.NewReconciler(s, cfg)
	ctx := b.Context()
	var slowest time.Duration
	k := 0
	for _, p := range slices.Backward(fx.healthy) {
		if k == passes {
			break
		}
		if left[p.ID] == 0 {
			continue
		}
		left[p.ID]--
		k++
		start := time.Now()
		if _, err := claimer.Claim(ctx, prebuilds.ClaimParams{PresetID: p.ID, Owner: fx.users[0], Now: clock.Now()}); err != nil {
			b.Fatalf("bench: claim from preset %s before a full pass: %v", p.Name, err)
		}
		st, err := rec.ReconcileAll(ctx)
		if err != nil || !st.Acquired {
			b.Fatalf("bench: full pass after a claim: acquired %v, err %v", st.Acquired, err)
		}
		if st.Created < 1 || len(sink) != st.Created {
			b.Fatalf("bench: a full pass after a claim from preset %s created %d prebuilds and handed off %d jobs", p.Name, st.Created, len(sink))
		}
		for range st.Created {
			if job := <-sink; job.PresetID == p.ID {
				slowest = max(slowest, time.Since(start))
			}
		}
	}
	return slowest
}

// quantile returns the q-quantile of ds by nearest rank (0 for none).
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// withConfigDefaults resolves the Config fields Refill reads (Interval,
// TriggerDelay) as the Reconciler does.
func withConfigDefaults(cfg prebuilds.Config) prebuilds.Config {
	if cfg.Interval <= 0 {
		cfg.Interval = prebuilds.DefaultInterval
	}
	if cfg.TriggerDelay <= 0 {
		cfg.TriggerDelay = prebuilds.DefaultTriggerDelay
	}
	return cfg
}

// handle returns another handle on the data of s (Harness.Handle), or s.
func (r *runner) handle(b *testing.B, s Store) Store {
	b.Helper()
	if r.h.Handle == nil {
		return s
	}
	h := r.h.Handle(b, s)
	if h == nil {
		b.Fatal("bench: Harness.Handle returned nil")
	}
	return h
}

// shiftedClock is the real clock, shifted: Now is the real time plus shift.
// Timers and tickers are the real clock's.
type shiftedClock struct {
	quartz.Clock
	shift time.Duration
}

func (c shiftedClock) Now(tags ...string) time.Time { return c.Clock.Now(tags...).Add(c.shift) }

func (c shiftedClock) Since(t time.Time, _ ...string) time.Duration { return c.Now().Sub(t) }

func (c shiftedClock) Until(t time.Time, _ ...string) time.Duration { return t.Sub(c.Now()) }

// watched is a replica's store with signals: subscribed is closed once its
// change feed is followed (or failed: feedErr), passed once it has returned from as many lock
// attempts as a full pass makes (one per shard), so that Refill starts
// measuring after the first full pass of Run; acquired counts the lock
// attempts that got the lock, and changed is closed (and replaced) at each.
type watched struct {
	Store
	feed       prebuilds.ChangeFeed
	subscribed chan struct{}
	feedErr    error // set before subscribed is closed
	passed     chan struct{}

	mu       sync.Mutex
	locks    int
	shards   int
	acquired int
	changed  chan struct{}
}

// watch wraps s, which must implement prebuilds.ChangeFeed. It always
// offers WithShardLock; Refill checks beforehand that s does when the
// Config shards.
func watch(s Store, shards int) *watched {
	return &watched{Store: s, feed: s.(prebuilds.ChangeFeed), subscribed: make(chan struct{}), passed: make(chan struct{}),
		shards: shards, changed: make(chan struct{})}
}

// acquisitions returns how many lock attempts got the lock, and a channel
// closed at the next one.
func (w *watched) acquisitions() (int, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.acquired, w.changed
}

// waitAcquired waits until more than n lock attempts got the lock, or
// timer fires (false).
func (w *watched) waitAcquired(n int, timer *time.Timer) bool {
	for {
		got, changed := w.acquisitions()
		if got > n {
			return true
		}
		select {
		case <-changed:
		case <-timer.C:
			return false
		}
	}
}

func (w *watched) Changes(ctx context.Context) (<-chan prebuilds.Change, error) {
	ch, err := w.feed.Changes(ctx)
	w.feedErr = err
	close(w.subscribed)
	return ch, err
}

func (w *watched) WithReconciliationLock(ctx context.Context, fn func(context.Context, prebuilds.SnapshotReader) error) (bool, error) {
	acquired, err := w.Store.WithReconciliationLock(ctx, fn)
	w.locked(acquired)
	return acquired, err
}

func (w *watched) WithShardLock(ctx context.Context, shard prebuilds.Shard, fn func(context.Context, prebuilds.SnapshotReader) error) (bool, error) {
	sl, ok := w.Store.(prebuilds.ShardLocker)
	if !ok {
		return false, fmt.Errorf("bench: %T does not implement prebuilds.ShardLocker: %w", w.Store, prebuilds.ErrInvalidArgument)
	}
	acquired, err := sl.WithShardLock(ctx, shard, fn)
	w.locked(acquired)
	return acquired, err
}

// locked records the end of a lock attempt.
func (w *watched) locked(acquired bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.locks++
	if w.locks == w.shards {
		close(w.passed)
	}
	if acquired {
		w.acquired++
		close(w.changed)
		w.changed = make(chan struct{})
	}
}
