package prebuilds_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/memstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func TestShardOf(t *testing.T) {
	t.Parallel()
	id := uuid.MustParse("00000102-0000-4000-8000-000000000000") // first four bytes: 258
	require.Equal(t, 258%7, prebuilds.ShardOf(id, 7))
	require.Equal(t, 0, prebuilds.ShardOf(id, 1))
	require.Equal(t, 0, prebuilds.ShardOf(id, 0))
	top := uuid.MustParse("ffffffff-0000-4000-8000-000000000000") // unsigned, not negative
	require.Equal(t, int(uint32(0xffffffff)%10), prebuilds.ShardOf(top, 10))
	require.True(t, prebuilds.Shard{}.Contains(id))
	require.True(t, prebuilds.Shard{Index: 258 % 7, Count: 7}.Contains(id))
	require.False(t, prebuilds.Shard{Index: (258 + 1) % 7, Count: 7}.Contains(id))
	for _, s := range []prebuilds.Shard{{}, {Index: 0, Count: 1}, {Index: 3, Count: 4}} {
		require.True(t, s.Valid(), "%+v", s)
	}
	for _, s := range []prebuilds.Shard{{Index: 1, Count: 1}, {Index: 4, Count: 4}, {Index: -1, Count: 4}} {
		require.False(t, s.Valid(), "%+v", s)
	}
}

// shardedFleet is a memstore with templates in each of 4 shards, one preset
// of desired 1 each, and the shard of every preset.
func shardedFleet(t *testing.T) (*memstore.Store, map[uuid.UUID]int) {
	t.Helper()
	ctx := context.Background()
	s := memstore.New()
	shardOf := map[uuid.UUID]int{}
	for i := range 12 {
		tmpl, ver, p := uuid.New(), uuid.New(), uuid.New()
		tmpl[0], tmpl[1], tmpl[2], tmpl[3] = 0, 0, 0, byte(i) // shard i mod 4
		d := 1
		require.NoError(t, s.CreateTemplate(ctx, prebuilds.Template{ID: tmpl, Name: fmt.Sprintf("t%d", i)}))
		require.NoError(t, s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: ver, TemplateID: tmpl, Name: "v"}))
		require.NoError(t, s.SetActiveVersion(ctx, tmpl, ver))
		require.NoError(t, s.UpsertPreset(ctx, prebuilds.Preset{ID: p, TemplateVersionID: ver, Name: "p", Desired: &d}))
		shardOf[p] = i % 4
	}
	return s, shardOf
}

func TestShardedPassSkipsShardsHeldElsewhere(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, shardOf := shardedFleet(t)
	r := prebuilds.NewReconciler(s, prebuilds.Config{Shards: 4, Logger: slog.New(slog.DiscardHandler)})

	// Another replica is in a pass over shard 2.
	holding, release, released := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(released)
		_, err := s.WithShardLock(ctx, prebuilds.Shard{Index: 2, Count: 4}, func(context.Context, prebuilds.SnapshotReader) error {
			close(holding)
			<-release
			return nil
		})
		if err != nil {
			panic(err)
		}
	}()
	<-holding
	stats, err := r.ReconcileAll(ctx)
	require.NoError(t, err)
	require.True(t, stats.Acquired)
	require.Equal(t, 3, stats.ShardPasses, "three shards reconciled, the held one skipped")
	require.Equal(t, 9, stats.Created)
	require.Equal(t, 9, stats.Presets, "each shard pass reads only its shard's presets")
	close(release)
	<-released

	stats, err = r.ReconcileAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, stats.ShardPasses)
	require.Equal(t, 3, stats.Created, "the skipped shard's presets are created by the next pass")
	snap, err := s.Snapshot(ctx, prebuilds.Config{}.SnapshotParams(time.Now()))
	require.NoError(t, err)
	starting := map[uuid.UUID]int{}
	for _, c := range snap.InProgress {
		starting[c.PresetID] += c.Count
	}
	for p := range shardOf {
		require.Equal(t, 1, starting[p], "preset of shard %d", shardOf[p])
	}
}

func TestTargetedPassTakesOnlyItsShardsLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, shardOf := shardedFleet(t)
	r := prebuilds.NewReconciler(s, prebuilds.Config{Shards: 4, Logger: slog.New(slog.DiscardHandler)})
	var inShard1, inShard3 uuid.UUID
	for p, i := range shardOf {
		switch i {
		case 1:
			inShard1 = p
		case 3:
			inShard3 = p
		}
	}
	holding, release, released := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(released)
		_, _ = s.WithShardLock(ctx, prebuilds.Shard{Index: 3, Count: 4}, func(context.Context, prebuilds.SnapshotReader) error {
			close(holding)
			<-release
			return nil
		})
	}()
	<-holding
	stats, err := r.ReconcilePresets(ctx, []uuid.UUID{inShard1, inShard3})
	require.NoError(t, err)
	require.Equal(t, 1, stats.ShardPasses, "shard 1's lock was free, shard 3's was not")
	require.Equal(t, 1, stats.Created)
	close(release)
	<-released
}

func TestShardsNeedAShardLocker(t *testing.T) {
	t.Parallel()
	r := prebuilds.NewReconciler(struct{ prebuilds.Store }{memstore.New()}, prebuilds.Config{Shards: 2})
	_, err := r.ReconcileAll(context.Background())
	require.ErrorIs(t, err, prebuilds.ErrInvalidArgument)
	require.ErrorContains(t, err, "ShardLocker")
}

// hookedShards is a memstore whose lock of shard 0 runs hook while held,
// before the pass inside it.
type hookedShards struct {
	*memstore.Store
	hook func()
}

func (h hookedShards) WithShardLock(ctx context.Context, shard prebuilds.Shard, fn func(context.Context, prebuilds.SnapshotReader) error) (bool, error) {
	return h.Store.WithShardLock(ctx, shard, func(ctx context.Context, sr prebuilds.SnapshotReader) error {
		if shard.Index == 0 && h.hook != nil {
			h.hook()
		}
		return fn(ctx, sr)
	})
}

func TestShardedPassSkipsShardsPassedSinceItBegan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := shardedFleet(t)
	quiet := prebuilds.Config{Shards: 4, Logger: slog.New(slog.DiscardHandler)}
	other := prebuilds.NewReconciler(s, quiet)
	var otherStats prebuilds.Stats
	h := hookedShards{Store: s}
	h.hook = func() {
		// While this replica holds shard 0, the other makes a whole pass:
		// shard 0 is held, so it passes 1, 2 and 3.
		h.hook = nil
		st, err := other.ReconcileAll(ctx)
		require.NoError(t, err)
		otherStats = st
	}
	r := prebuilds.NewReconciler(&h, quiet)
	stats, err := r.ReconcileAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 3, otherStats.ShardPasses)
	require.Equal(t, 9, otherStats.Created)
	require.Equal(t, 1, stats.ShardPasses, "shards 1-3 were passed by the other replica after this pass began")
	require.Equal(t, 3, stats.ShardsFresh)
	require.Equal(t, 3, stats.Created)

	// The next pass began after those passes: it passes every shard.
	stats, err = r.ReconcileAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, stats.ShardPasses)
	require.Zero(t, stats.ShardsFresh)
	require.Zero(t, stats.Created, "every pool was already filled")
}

// failingPassLog is a memstore whose ShardPassLog always fails.
type failingPassLog struct{ *memstore.Store }

var errPassLog = errors.New("pass log unavailable")

func (failingPassLog) ShardPassesBegun(context.Context, int) ([]int64, error) {
	return nil, errPassLog
}

func (failingPassLog) BeginShardPass(context.Context, prebuilds.Shard) (int64, int64, error) {
	return 0, 0, errPassLog
}

func TestShardPassLogFailureRepeatsRatherThanSkips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _ := shardedFleet(t)
	var logs strings.Builder
	cfg := prebuilds.Config{Shards: 4, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	// Another replica passed every shard, and recorded it, a moment ago.
	_, err := prebuilds.NewReconciler(s, cfg).ReconcileAll(ctx)
	require.NoError(t, err)
	stats, err := prebuilds.NewReconciler(failingPassLog{s}, cfg).ReconcileAll(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, stats.ShardPasses, "without a readable log every shard is passed")
	require.Zero(t, stats.ShardsFresh)
	require.Contains(t, logs.String(), "reading the shard pass log failed")
}
