package prebuilds

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"slices"

	"github.com/google/uuid"
)

// Shard names one of Count shards of the presets. Presets are sharded by
// their template: shard(P) = ShardOf(template of P, Count), so every version
// of a template, and every preset of a label set, is reconciled by one shard
// pass. The zero Shard (Count ≤ 1) is every preset.
type Shard struct {
	Index, Count int
}

// ShardOf returns the shard, among count, of the presets of a template: the
// first four bytes of the template ID as a big-endian unsigned integer,
// modulo count (0 when count ≤ 1). In SQL:
// ('x' || substr(template_id::text, 1, 8))::bit(32)::bigint % count.
func ShardOf(templateID uuid.UUID, count int) int {
	if count <= 1 {
		return 0
	}
	return int(binary.BigEndian.Uint32(templateID[:4]) % uint32(count))
}

// All reports whether s is every preset (Count ≤ 1).
func (s Shard) All() bool { return s.Count <= 1 }

// Contains reports whether the presets of the template belong to s.
func (s Shard) Contains(templateID uuid.UUID) bool {
	return s.All() || ShardOf(templateID, s.Count) == s.Index
}

// Valid reports whether s is the zero shard, or 0 ≤ Index < Count.
func (s Shard) Valid() bool { return s.All() && s.Index == 0 || s.Index >= 0 && s.Index < s.Count }

// ShardLocker is the optional Store capability that Config.Shards > 1
// needs: one reconciliation lock per shard, so that replicas reconcile
// different shards at once. WithShardLock behaves exactly like
// WithReconciliationLock for the shard's lock (non-blocking, released when
// fn returns whatever happened to ctx); locks of different shards are
// independent. Every replica must use the same Config.Shards.
type ShardLocker interface {
	WithShardLock(ctx context.Context, shard Shard, fn func(ctx context.Context, r SnapshotReader) error) (acquired bool, err error)
}

// check reports a Reconciler that cannot run: an invalid Config, or shards
// without a store that locks them.
func (r *Reconciler) check() error {
	if err := r.cfg.Validate(); err != nil {
		return err
	}
	if _, ok := r.store.(ShardLocker); r.cfg.Shards > 1 && !ok {
		return fmt.Errorf("prebuilds: config: Shards %d needs a store that implements prebuilds.ShardLocker, %T does not: %w",
			r.cfg.Shards, r.store, ErrInvalidArgument)
	}
	return nil
}

// withLock takes the lock of shard (the cluster-wide lock when unsharded).
func (r *Reconciler) withLock(ctx context.Context, shard Shard, fn func(ctx context.Context, sr SnapshotReader) error) (bool, error) {
	if shard.All() {
		return r.store.WithReconciliationLock(ctx, fn)
	}
	return r.store.(ShardLocker).WithShardLock(ctx, shard, fn)
}

// shardWork is one shard pass: a shard and, for a targeted pass, its
// presets.
type shardWork struct {
	shard   Shard
	presets []uuid.UUID
}

// work lists the shard passes of a pass. Unsharded: one pass. A full
// sharded pass visits every shard in order, starting one further at each
// pass of this replica. Replicas whose passes start together spread over
// the shards because a replica skips a shard whose lock another holds and
// moves on: they leapfrog. A replica may pass a shard again that another
// passed moments before in the same cycle (Stats.ShardPasses counts every
// shard pass). A targeted pass visits the shards of the given presets.
func (r *Reconciler) work(ctx context.Context, presets []uuid.UUID) []shardWork {
	n := r.cfg.Shards
	if n <= 1 {
		return []shardWork{{presets: presets}}
	}
	if presets == nil {
		r.mu.Lock()
		first := r.nextShard
		r.nextShard = (r.nextShard + 1) % n
		r.mu.Unlock()
		out := make([]shardWork, n)
		for i := range out {
			out[i] = shardWork{shard: Shard{Index: (first + i) % n, Count: n}}
		}
		return out
	}
	byShard := map[int][]uuid.UUID{}
	for _, id := range presets {
		s := ShardOf(r.presetRow(ctx, id).TemplateID, n)
		byShard[s] = append(byShard[s], id)
	}
	var out []shardWork
	for i := range n {
		if ids := byShard[i]; ids != nil {
			out = append(out, shardWork{shard: Shard{Index: i, Count: n}, presets: ids})
		}
	}
	return out
}

// shardPass runs one pass under the lock of w.shard: snapshot (restricted
// to the shard and, when targeted, to its presets), plan, execute.
func (r *Reconciler) shardPass(ctx context.Context, w shardWork, targeted bool, stats *Stats) (bool, error) {
	metricsShard := max(w.shard.Index, 0)
	acquired, err := r.withLock(ctx, w.shard, func(ctx context.Context, sr SnapshotReader) error {
		params := r.cfg.SnapshotParams(r.cfg.Clock.Now())
		params.Presets = w.presets
		params.Shard = w.shard
		snap, err := sr.Snapshot(ctx, params)
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		pp := planAll(snap, r.cfg.PlanConfig(), params.StuckBefore)
		r.wakes.note(pp)
		r.remember(pp)
		if !targeted {
			r.metrics.presets.update(metricsShard, pp)
		}
		var s Stats
		r.execute(ctx, pp, &s)
		stats.add(s)
		stats.Presets += s.Presets
		stats.Paused = stats.Paused || s.Paused
		return nil
	})
	if !acquired && err == nil {
		if !targeted {
			r.metrics.presets.clear(metricsShard)
		}
		r.log.DebugContext(ctx, "reconciliation lock held elsewhere, skipping pass",
			slog.Bool("targeted", targeted), slog.Int("shard", w.shard.Index), slog.Int("shards", max(w.shard.Count, 1)))
	}
	if acquired {
		stats.ShardPasses++
	}
	return acquired, err
}

// sortedIDs returns ids sorted and without repeats.
func sortedIDs(ids []uuid.UUID) []uuid.UUID {
	out := slices.Clone(ids)
	slices.SortFunc(out, compareUUID)
	return slices.Compact(out)
}
