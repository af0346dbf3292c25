package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

var _ prebuilds.ShardPassLog = (*Store)(nil)

// checkPassShard validates a shard of the pass log: one of 2..MaxShards.
func checkPassShard(shard prebuilds.Shard) error {
	switch {
	case !shard.Valid() || shard.All():
		return errf(prebuilds.ErrInvalidArgument, "shard %d of %d is not one of several shards", shard.Index, shard.Count)
	case shard.Count > MaxShards:
		return errf(prebuilds.ErrInvalidArgument, "shard count %d is above %d", shard.Count, MaxShards)
	}
	return nil
}

// ShardPassesBegun implements prebuilds.ShardPassLog: one read of the
// store's rows of shard_passes for count.
func (s *Store) ShardPassesBegun(ctx context.Context, count int) ([]int64, error) {
	if count < 2 || count > MaxShards {
		return nil, opError("shard passes begun", fmt.Sprintf("of %d shards", count),
			errf(prebuilds.ErrInvalidArgument, "%d shards is not 2..%d", count, MaxShards))
	}
	rows, err := s.pool.Query(ctx,
		`SELECT shard_index, begun FROM shard_passes WHERE lock_key = $1 AND shard_count = $2`, s.lockKey, count)
	if err != nil {
		return nil, opError("shard passes begun", fmt.Sprintf("of %d shards", count), err)
	}
	begun := make([]int64, count)
	var index int
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&index, &n}, func() error {
		begun[index] = n // the table's CHECK keeps index below count
		return nil
	}); err != nil {
		return nil, opError("shard passes begun", fmt.Sprintf("of %d shards", count), err)
	}
	return begun, nil
}

// BeginShardPass implements prebuilds.ShardPassLog: one upsert that numbers
// the pass and returns the newest completed number.
func (s *Store) BeginShardPass(ctx context.Context, shard prebuilds.Shard) (number, completed int64, err error) {
	key := fmt.Sprintf("%d of %d", shard.Index, shard.Count)
	if err := checkPassShard(shard); err != nil {
		return 0, 0, opError("begin shard pass", key, err)
	}
	err = s.pool.QueryRow(ctx, `
INSERT INTO shard_passes AS p (lock_key, shard_count, shard_index, begun) VALUES ($1, $2, $3, 1)
ON CONFLICT (lock_key, shard_count, shard_index) DO UPDATE SET begun = p.begun + 1
RETURNING begun, completed`, s.lockKey, shard.Count, shard.Index).Scan(&number, &completed)
	if err != nil {
		return 0, 0, opError("begin shard pass", key, err)
	}
	return number, completed, nil
}

// CompleteShardPass implements prebuilds.ShardPassLog: the newest
// completed number rises to number, never falls.
func (s *Store) CompleteShardPass(ctx context.Context, shard prebuilds.Shard, number int64) error {
	key := fmt.Sprintf("%d of %d", shard.Index, shard.Count)
	if err := checkPassShard(shard); err != nil {
		return opError("complete shard pass", key, err)
	}
	var updated bool
	var begun int64
	err := s.pool.QueryRow(ctx, `
WITH upd AS (
	UPDATE shard_passes SET completed = greatest(completed, $4::bigint)
	WHERE lock_key = $1 AND shard_count = $2 AND shard_index = $3 AND $4::bigint BETWEEN 1 AND begun
	RETURNING begun
)
SELECT EXISTS (SELECT FROM upd),
	coalesce((SELECT begun FROM shard_passes WHERE lock_key = $1 AND shard_count = $2 AND shard_index = $3), 0)`,
		s.lockKey, shard.Count, shard.Index, number).Scan(&updated, &begun)
	if err != nil {
		return opError("complete shard pass", key, err)
	}
	if !updated {
		return opError("complete shard pass", key,
			errf(prebuilds.ErrInvalidArgument, "pass %d: %d passes have begun", number, begun))
	}
	return nil
}
