package prebuilds_test

import (
	"context"
	"fmt"
	"log/slog"
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
