package prebuilds

import (
	"context"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// feedStore is a fakeStore with a change feed the test writes to.
type feedStore struct {
	*fakeStore
	changes chan Change
}

func (f *feedStore) Changes(ctx context.Context) (<-chan Change, error) {
	out := make(chan Change)
	go func() {
		defer close(out)
		for {
			select {
			case <-ctx.Done():
				return
			case c := <-f.changes:
				select {
				case out <- c:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// runTrapped starts r.Run with its ticker and its trigger timers trapped
// (the traps close with the test) and returns the traps and Run's result.
func runTrapped(ctx context.Context, t *testing.T, r *Reconciler, clk *quartz.Mock) (tick, trigger *quartz.Trap, errc <-chan error) {
	t.Helper()
	tick = clk.Trap().TickerFunc("prebuilds", "reconciler")
	t.Cleanup(tick.Close)
	trigger = clk.Trap().NewTimer("prebuilds", "trigger")
	t.Cleanup(trigger.Close)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return tick, trigger, done
}

func (f *fakeStore) snapshotCalls() []SnapshotParams {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]SnapshotParams(nil), f.params...)
}

func TestRunFollowsChangeFeed(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := presetRow("a", 1), presetRow("b", 1)
	passes := make(chan SnapshotParams, 8)
	fs := &feedStore{fakeStore: &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{a, b}}, passDone: passes}, changes: make(chan Change)}
	reg := prometheus.NewPedanticRegistry()
	r, clk, _ := newTestReconciler(t, fs, Config{Interval: time.Hour, Registerer: reg})
	tick, trigger, errc := runTrapped(ctx, t, r, clk)
	require.Nil(t, (<-passes).Presets, "the first pass is a full pass")
	tick.MustWait(ctx).MustRelease(ctx)

	// Two changes of b and one of a within the delay: one targeted pass.
	fs.changes <- Change{PresetID: b.ID, Kind: ChangeClaimed}
	trigger.MustWait(ctx).MustRelease(ctx) // armed by the first change
	fs.changes <- Change{PresetID: a.ID, Kind: ChangeJobCompleted}
	fs.changes <- Change{PresetID: b.ID, Kind: ChangeClaimed}
	clk.Advance(DefaultTriggerDelay).MustWait(ctx)
	require.ElementsMatch(t, []uuid.UUID{a.ID, b.ID}, (<-passes).Presets, "one targeted pass over the changed presets")
	require.Equal(t, 1.0, testutil.ToFloat64(r.metrics.targeted))
	require.Equal(t, uint64(1), histogramCount(t, r.metrics.duration), "a targeted pass is not a full pass")

	// A resync makes the next triggered pass a full one.
	fs.changes <- Change{Kind: ChangeResync}
	trigger.MustWait(ctx).MustRelease(ctx)
	clk.Advance(DefaultTriggerDelay).MustWait(ctx)
	require.Nil(t, (<-passes).Presets, "a resync triggers a full pass")

	require.NoError(t, r.Stop(ctx, nil))
	require.Len(t, fs.snapshotCalls(), 3, "no other pass ran")
	require.ErrorIs(t, <-errc, ErrReconcilerStopped)
}

func TestTargetedPassRetriesWhileLockHeld(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := presetRow("a", 1)
	passes := make(chan SnapshotParams, 8)
	fs := &feedStore{fakeStore: &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{a}}, passDone: passes}, changes: make(chan Change)}
	r, clk, _ := newTestReconciler(t, fs, Config{Interval: time.Hour, TriggerDelay: time.Second})
	tick, trigger, errc := runTrapped(ctx, t, r, clk)
	<-passes
	tick.MustWait(ctx).MustRelease(ctx)

	fs.mu.Lock()
	fs.lockHeld = true // another replica is in a pass
	fs.mu.Unlock()
	fs.changes <- Change{PresetID: a.ID, Kind: ChangeClaimed}
	trigger.MustWait(ctx).MustRelease(ctx)
	for range 3 { // the lock is busy: the change stays dirty and is retried
		clk.Advance(time.Second).MustWait(ctx)
		trigger.MustWait(ctx).MustRelease(ctx)
	}
	fs.mu.Lock()
	fs.lockHeld = false
	fs.mu.Unlock()
	clk.Advance(time.Second).MustWait(ctx)
	require.Equal(t, []uuid.UUID{a.ID}, (<-passes).Presets, "the retry after the lock was freed reconciles the preset")

	require.NoError(t, r.Stop(ctx, nil))
	require.ErrorIs(t, <-errc, ErrReconcilerStopped)
}

func TestTargetedPassGivesUpAfterBoundedRetries(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := presetRow("a", 1)
	refused := make(chan struct{}, 1)
	fs := &feedStore{fakeStore: &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{a}}, refused: refused}, changes: make(chan Change)}
	r, clk, _ := newTestReconciler(t, fs, Config{Interval: time.Hour, TriggerDelay: time.Second})
	tick, trigger, errc := runTrapped(ctx, t, r, clk)
	tick.MustWait(ctx).MustRelease(ctx)
	fs.mu.Lock()
	fs.lockHeld = true // held for good
	fs.mu.Unlock()
	fs.changes <- Change{PresetID: a.ID, Kind: ChangeClaimed}
	trigger.MustWait(ctx).MustRelease(ctx)
	for range targetedRetries {
		clk.Advance(time.Second).MustWait(ctx)
		<-refused
		trigger.MustWait(ctx).MustRelease(ctx)
	}
	// The last attempt gives up: no timer is armed again, and a new change
	// arms a fresh one.
	clk.Advance(time.Second).MustWait(ctx)
	<-refused
	fs.changes <- Change{PresetID: a.ID, Kind: ChangeClaimed}
	call := trigger.MustWait(ctx)
	require.Equal(t, time.Second, call.Duration)
	call.MustRelease(ctx)
	require.Len(t, fs.snapshotCalls(), 1, "only the first full pass held the lock")

	require.NoError(t, r.Stop(ctx, nil))
	require.ErrorIs(t, <-errc, ErrReconcilerStopped)
}

// TestRunReconcilesWhenBackoffEnds: a pool in backoff is reconciled by a
// targeted pass TriggerDelay after its backoff ends, not at the next
// Interval tick (TestBackoffWakes covers moved and lifted backoffs).
func TestRunReconcilesWhenBackoffEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, b := presetRow("a", 1), presetRow("b", 1)
	// a failed twice, the last build a minute ago: with a 1m
	// BackoffInterval, backoff until t0+1m.
	until := t0.Add(time.Minute)
	passes := make(chan SnapshotParams, 8)
	fs := &feedStore{fakeStore: &fakeStore{snap: GlobalSnapshot{
		Presets:  []PresetRow{a, b},
		Running:  []RunningPrebuild{{InstanceID: uuid.New(), PresetID: b.ID, CreatedAt: t0.Add(-time.Hour)}},
		Backoffs: []BackoffRow{{PresetID: a.ID, NumFailed: 2, LastBuildAt: t0.Add(-time.Minute)}},
	}, passDone: passes}, changes: make(chan Change)}
	r, clk, _ := newTestReconciler(t, fs, Config{Interval: time.Hour, BackoffInterval: time.Minute})
	tick := clk.Trap().TickerFunc("prebuilds", "reconciler")
	defer tick.Close()
	wake := clk.Trap().NewTimer("prebuilds", "backoff")
	defer wake.Close()
	trigger := clk.Trap().NewTimer("prebuilds", "trigger")
	defer trigger.Close()
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	require.Nil(t, (<-passes).Presets, "the first pass is a full pass")
	call := wake.MustWait(ctx)
	require.Equal(t, until.Sub(t0)+time.Microsecond, call.Duration, "the wake-up is just after the backoff's end")
	call.MustRelease(ctx)
	tick.MustWait(ctx).MustRelease(ctx)
	require.Empty(t, fs.created(), "the first pass backs off")

	// The store's failures are in the past once the backoff ends: the
	// targeted pass creates.
	_, w := clk.AdvanceNext()
	w.MustWait(ctx)
	trigger.MustWait(ctx).MustRelease(ctx)
	clk.Advance(DefaultTriggerDelay).MustWait(ctx)
	require.Equal(t, []uuid.UUID{a.ID}, (<-passes).Presets, "a targeted pass over the preset whose backoff ended")
	require.Equal(t, 1, fs.created()[a.ID], "it refilled the pool")
	require.Equal(t, until.Add(time.Microsecond+DefaultTriggerDelay), clk.Now(), "before the next tick, an hour away")

	require.NoError(t, r.Stop(ctx, nil))
	require.Len(t, fs.snapshotCalls(), 2, "no other pass ran")
	require.ErrorIs(t, <-errc, ErrReconcilerStopped)
}

// created counts the prebuilds created per preset.
func (f *fakeStore) created() map[uuid.UUID]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[uuid.UUID]int{}
	for _, c := range f.creates {
		out[c.PresetID] += len(c.Instances)
	}
	return out
}

// TestBackoffWakes: a pass's plans set, move and lift the backoff ends the
// follower waits for; each addition or move kicks it once; nothing is
// recorded while no follower runs.
func TestBackoffWakes(t *testing.T) {
	t.Parallel()
	a, b := uuid.New(), uuid.New()
	backoff := func(id uuid.UUID, until time.Time) Plan {
		return Plan{PresetID: id, Actions: []Action{{Kind: ActionBackoff, Reason: ReasonBackoff, Count: 1, Until: until}}}
	}
	kicked := func(w *backoffWakes) bool {
		select {
		case <-w.kick:
			return true
		default:
			return false
		}
	}
	w := newBackoffWakes()
	w.note(PassPlan{Plans: []Plan{backoff(a, t0)}})
	require.False(t, kicked(w), "nothing is recorded while no follower runs")
	ended, next := w.due(t0.Add(time.Hour))
	require.Empty(t, ended)
	require.True(t, next.IsZero())

	w.follow(true)
	w.note(PassPlan{Plans: []Plan{backoff(a, t0.Add(time.Minute)), backoff(b, t0.Add(2*time.Minute))}})
	require.True(t, kicked(w))
	w.note(PassPlan{Plans: []Plan{backoff(a, t0.Add(time.Minute))}})
	require.False(t, kicked(w), "the same end again is no news")
	ended, next = w.due(t0)
	require.Empty(t, ended)
	require.Equal(t, t0.Add(time.Minute), next)

	// A later pass moves a's end and lifts b's backoff.
	w.note(PassPlan{Plans: []Plan{backoff(a, t0.Add(3*time.Minute)), {PresetID: b}}})
	require.True(t, kicked(w), "a moved end wakes the follower")
	ended, next = w.due(t0.Add(2*time.Minute + time.Microsecond))
	require.Empty(t, ended, "b's lifted backoff wakes nothing")
	require.Equal(t, t0.Add(3*time.Minute), next)
	ended, _ = w.due(t0.Add(3 * time.Minute))
	require.Empty(t, ended, "creation resumes strictly after the end")
	ended, next = w.due(t0.Add(3*time.Minute + time.Microsecond))
	require.Equal(t, []uuid.UUID{a}, ended)
	require.True(t, next.IsZero(), "a woken preset is forgotten")

	w.follow(false)
	w.note(PassPlan{Plans: []Plan{backoff(a, t0.Add(time.Hour))}})
	_, next = w.due(t0)
	require.True(t, next.IsZero(), "recording stops with the follower")
}

// shardedFeedStore is a feedStore with two shard locks and a shard pass
// log that the test drives, standing in for another replica.
type shardedFeedStore struct {
	*feedStore
	held             [2]bool
	begun, completed [2]int64
	logReads         int
	// begins, when set, receives the shard of every BeginShardPass.
	begins chan Shard
}

func (s *shardedFeedStore) WithShardLock(ctx context.Context, shard Shard, fn func(context.Context, SnapshotReader) error) (bool, error) {
	s.mu.Lock()
	held := s.held[shard.Index]
	s.mu.Unlock()
	if held {
		return false, nil
	}
	return true, fn(ctx, s.fakeStore)
}

func (s *shardedFeedStore) ShardPassesBegun(_ context.Context, count int) ([]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.logReads++
	return append([]int64(nil), s.begun[:count]...), nil // a copy, as stores return
}

func (s *shardedFeedStore) BeginShardPass(_ context.Context, shard Shard) (int64, int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.begun[shard.Index]++
	if s.begins != nil {
		s.begins <- shard
	}
	return s.begun[shard.Index], s.completed[shard.Index], nil
}

func (s *shardedFeedStore) CompleteShardPass(_ context.Context, shard Shard, number int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.completed[shard.Index] = max(s.completed[shard.Index], number)
	return nil
}

// otherPasses stands for another replica that passed shard i and released
// its lock.
func (s *shardedFeedStore) otherPasses(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.begun[i]++
	s.completed[i] = s.begun[i]
	s.held[i] = false
}

// TestFullPassRetriesReuseTheShardPassLog: a resync's full pass that finds
// every shard's lock held is retried with the shard pass log it read first,
// so a shard another replica passed since is skipped, not passed again;
// once every shard is held or fresh and none held remains, no retry.
func TestFullPassRetriesReuseTheShardPassLog(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := presetRow("a", 1)
	fs := &shardedFeedStore{feedStore: &feedStore{fakeStore: &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{a}}}, changes: make(chan Change)}}
	r, clk, _ := newTestReconciler(t, fs, Config{Interval: time.Hour, TriggerDelay: time.Second, Shards: 2})
	tick, trigger, errc := runTrapped(ctx, t, r, clk)
	tick.MustWait(ctx).MustRelease(ctx)
	require.Len(t, fs.snapshotCalls(), 2, "the first full pass passed both shards")

	fs.mu.Lock()
	fs.held = [2]bool{true, true} // other replicas are in both shards
	fs.mu.Unlock()
	fs.changes <- Change{Kind: ChangeResync}
	trigger.MustWait(ctx).MustRelease(ctx)
	clk.Advance(time.Second).MustWait(ctx)
	trigger.MustWait(ctx).MustRelease(ctx) // both held: retry
	fs.otherPasses(1)
	clk.Advance(time.Second).MustWait(ctx)
	trigger.MustWait(ctx).MustRelease(ctx) // 0 held, 1 fresh: retry for 0
	fs.otherPasses(0)
	fs.mu.Lock()
	fs.begins = make(chan Shard, 2)
	fs.mu.Unlock()
	clk.Advance(time.Second).MustWait(ctx) // both fresh: done, no retry armed
	<-fs.begins
	<-fs.begins
	// Two more changes: the second is taken from the feed only once the
	// follower is back waiting for changes, which it never is if it armed
	// a retry (the trap holds that timer). The first arms a targeted pass.
	for range 2 {
		select {
		case fs.changes <- Change{PresetID: a.ID, Kind: ChangeClaimed}:
		case <-ctx.Done():
			t.Fatal("the follower never waited for changes again: it armed a retry after a pass that found every shard fresh")
		}
	}
	trigger.MustWait(ctx).MustRelease(ctx)

	require.NoError(t, r.Stop(ctx, nil))
	require.ErrorIs(t, <-errc, ErrReconcilerStopped)
	require.Len(t, fs.snapshotCalls(), 2, "the retries passed no shard again")
	fs.mu.Lock()
	defer fs.mu.Unlock()
	require.Equal(t, 2, fs.logReads, "the first pass and the resync's first attempt read the log; retries reuse it")
}
