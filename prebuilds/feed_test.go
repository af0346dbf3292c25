package prebuilds

import (
	"context"
	"testing"
	"time"

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
	tick := clk.Trap().TickerFunc("prebuilds", "reconciler")
	defer tick.Close()
	trigger := clk.Trap().NewTimer("prebuilds", "trigger")
	defer trigger.Close()
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
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
	tick := clk.Trap().TickerFunc("prebuilds", "reconciler")
	defer tick.Close()
	trigger := clk.Trap().NewTimer("prebuilds", "trigger")
	defer trigger.Close()
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
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
	tick := clk.Trap().TickerFunc("prebuilds", "reconciler")
	defer tick.Close()
	trigger := clk.Trap().NewTimer("prebuilds", "trigger")
	defer trigger.Close()
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
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
