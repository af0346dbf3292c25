package pgstore_test

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/pgstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// TestShardSQLMatchesShardOf: the snapshot's shard expression is
// prebuilds.ShardOf, for random template IDs (half of them with a first
// byte of 0x80 or more, where a signed reading would go wrong) and the
// edges of the 32-bit range.
func TestShardSQLMatchesShardOf(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	rng := rand.New(rand.NewPCG(1, 2))
	ids := []uuid.UUID{
		uuid.MustParse("00000000-0000-4000-8000-000000000000"),
		uuid.MustParse("7fffffff-ffff-4fff-bfff-ffffffffffff"),
		uuid.MustParse("80000000-0000-4000-8000-000000000000"),
		uuid.MustParse("ffffffff-ffff-4fff-bfff-ffffffffffff"),
	}
	high := 0
	for range 2_000 {
		var id uuid.UUID
		for i := range id {
			id[i] = byte(rng.UintN(256))
		}
		if id[0] >= 0x80 {
			high++
		}
		ids = append(ids, id)
	}
	require.Greater(t, high, 900)
	for _, count := range []int{2, 3, 4, 7, 16, 1_000, pgstore.MaxShards, 1 << 31, 1<<32 - 1} {
		rows, err := pool.Query(context.Background(),
			`SELECT `+pgstore.ShardSQL+` % $2::int8 FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, n) ORDER BY n`, ids, int64(count))
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		require.NoError(t, err)
		require.Len(t, got, len(ids))
		for i, id := range ids {
			require.Equal(t, int64(prebuilds.ShardOf(id, count)), got[i], "template %s, %d shards", id, count)
		}
	}
}

// TestShardLockKeys: each (Count, Index) has its own lock, a pair of
// integer keys (the first from the store's lock key, folded), which
// pg_locks shows in the two-key space (objsubid 2), apart from the bigint
// keys of the cluster-wide and migration locks; the zero shard is the
// cluster-wide lock; a count above MaxShards or an index outside the
// count is ErrInvalidArgument.
func TestShardLockKeys(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	s := f.s
	seen := map[[2]int32]prebuilds.Shard{}
	var first int32
	for count := 2; count <= 64; count++ {
		for index := range count {
			shard := prebuilds.Shard{Index: index, Count: count}
			k1, k2, ok := s.ShardKey(shard)
			require.True(t, ok, "%+v", shard)
			if first == 0 {
				first = k1
			}
			require.Equal(t, first, k1, "one first key per store")
			prev, dup := seen[[2]int32{k1, k2}]
			require.False(t, dup, "%+v and %+v share a lock", shard, prev)
			seen[[2]int32{k1, k2}] = shard
		}
	}
	other, _, _ := pgstore.New(f.pool, pgstore.WithLockKey(42)).ShardKey(prebuilds.Shard{Index: 1, Count: 2})
	require.NotEqual(t, first, other, "another lock key, other shard locks")
	for _, shard := range []prebuilds.Shard{{}, {Count: 1}} {
		_, _, ok := s.ShardKey(shard)
		require.False(t, ok, "%+v is the cluster-wide lock", shard)
	}

	// held lists the advisory locks granted in the database as pg_locks
	// shows them, which is how a dropped connection's release is checked.
	held := func(ctx context.Context) [][]int64 {
		rows, err := f.pool.Query(ctx, `
			SELECT ARRAY[classid::int8, objid::int8, objsubid::int8] FROM pg_locks
			WHERE locktype = 'advisory' AND granted
			  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
		require.NoError(t, err)
		locks, err := pgx.CollectRows(rows, pgx.RowTo[[]int64])
		require.NoError(t, err)
		return locks
	}
	acquired, err := s.WithReconciliationLock(ctx, func(ctx context.Context, _ prebuilds.SnapshotReader) error {
		require.Equal(t, [][]int64{s.LockRow(prebuilds.Shard{})}, held(ctx))
		require.Equal(t, int64(1), s.LockRow(prebuilds.Shard{})[2], "a bigint key")
		return nil
	})
	require.NoError(t, err)
	require.True(t, acquired)
	shard := prebuilds.Shard{Index: 1, Count: 4}
	k1, k2, _ := s.ShardKey(shard)
	acquired, err = s.WithShardLock(ctx, shard, func(ctx context.Context, _ prebuilds.SnapshotReader) error {
		require.Equal(t, [][]int64{{int64(uint32(k1)), int64(uint32(k2)), 2}}, held(ctx), "the shard's lock, in the two-key space")
		require.Equal(t, [][]int64{s.LockRow(shard)}, held(ctx))
		// The zero shard is the cluster-wide lock, which is free.
		ok, err := s.WithShardLock(ctx, prebuilds.Shard{}, func(context.Context, prebuilds.SnapshotReader) error {
			ok, err := s.WithReconciliationLock(ctx, func(context.Context, prebuilds.SnapshotReader) error { return nil })
			require.NoError(t, err)
			require.False(t, ok, "the zero shard's lock is the cluster-wide lock")
			return nil
		})
		require.NoError(t, err)
		require.True(t, ok)
		return nil
	})
	require.NoError(t, err)
	require.True(t, acquired)

	for _, bad := range []prebuilds.Shard{{Index: -1, Count: 4}, {Index: 4, Count: 4}, {Index: 2}, {Index: 0, Count: pgstore.MaxShards + 1}} {
		ok, err := s.WithShardLock(ctx, bad, func(context.Context, prebuilds.SnapshotReader) error {
			t.Errorf("fn called for %+v", bad)
			return nil
		})
		require.False(t, ok)
		require.ErrorIs(t, err, prebuilds.ErrInvalidArgument, "%+v", bad)
	}
	ok, err := s.WithShardLock(ctx, prebuilds.Shard{Index: pgstore.MaxShards - 1, Count: pgstore.MaxShards}, func(context.Context, prebuilds.SnapshotReader) error { return nil })
	require.NoError(t, err)
	require.True(t, ok)
}

// TestShardPassLogPerLockKey: stores with different lock keys on one
// database are different deployments: their shard pass logs are apart.
func TestShardPassLogPerLockKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	other := pgstore.New(f.pool, pgstore.WithLockKey(42))
	shard := prebuilds.Shard{Index: 1, Count: 2}
	for want := int64(1); want <= 3; want++ {
		n, completed, err := f.s.BeginShardPass(ctx, shard)
		require.NoError(t, err)
		require.Equal(t, want, n)
		require.Zero(t, completed)
	}
	require.NoError(t, f.s.CompleteShardPass(ctx, shard, 3))
	begun, err := other.ShardPassesBegun(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, []int64{0, 0}, begun, "the other deployment's log is empty")
	n, completed, err := other.BeginShardPass(ctx, shard)
	require.NoError(t, err)
	require.Equal(t, [2]int64{1, 0}, [2]int64{n, completed})
	require.ErrorIs(t, other.CompleteShardPass(ctx, shard, 3), prebuilds.ErrInvalidArgument, "pass 3 began in the other deployment only")
	begun, err = f.s.ShardPassesBegun(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, []int64{0, 3}, begun)
}
