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

// MaxShards is the largest shard count: Config.Shards above it is
// ErrInvalidArgument, and stores may refuse shards of a larger Count
// (pgstore packs Count and Index into one 32-bit lock key).
const MaxShards = 1<<16 - 1

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

// ShardPassLog is an optional Store capability that stops sharded replicas
// from repeating each other's work. The store numbers the passes of each
// shard as they begin and remembers the newest one that completed; a
// replica notes how many passes of every shard had begun when its full pass
// started, and skips a shard whose newest completed pass began after that
// (Stats.ShardsFresh): that pass read the shard after this full pass
// began. Only a shard pass that carried out its whole plan is recorded as
// completed. Without it a replica passes a shard again that
// another replica finished a moment before. Numbers are per Shard (Index
// and Count); every method returns ErrInvalidArgument for a shard that is
// not Valid, is every preset (Count ≤ 1) or has a Count above MaxShards.
type ShardPassLog interface {
	// ShardPassesBegun returns, for each shard of count (index i for shard
	// i), how many of its passes have begun: 0 for a shard never passed.
	ShardPassesBegun(ctx context.Context, count int) ([]int64, error)
	// BeginShardPass numbers a new pass of shard, whose lock the caller
	// holds: number is one more than the shard's previous pass number, and
	// completed is the number of its newest pass that completed (0: none).
	BeginShardPass(ctx context.Context, shard Shard) (number, completed int64, err error)
	// CompleteShardPass records that pass number of shard completed. The
	// newest completed number never decreases: completing an older pass
	// after a newer one changes nothing. A number that has not begun is
	// ErrInvalidArgument.
	CompleteShardPass(ctx context.Context, shard Shard, number int64) error
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
// moves on: they leapfrog. Without a ShardPassLog a replica may pass a shard
// again that another passed moments before in the same cycle
// (Stats.ShardPasses counts every shard pass); with one it skips it
// (Stats.ShardsFresh). A targeted pass visits the shards of the given
// presets.
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

// passLog is the store's ShardPassLog when a full pass of a sharded
// Reconciler can use it, with the number of passes of each shard begun
// before the pass: a shard whose newest completed pass has a larger number
// was passed by another replica since, and is skipped. A log that fails is
// not used for the pass (the pass repeats work rather than skip it).
type passLog struct {
	log   ShardPassLog
	begun []int64
}

// fresh reports whether shard's newest completed pass began after the
// full pass that p was read for.
func (p *passLog) fresh(shard Shard, completed int64) bool {
	return p != nil && shard.Index < len(p.begun) && completed > p.begun[shard.Index]
}

// passLog reads the passes begun so far, for a full sharded pass whose
// store keeps a ShardPassLog; nil otherwise.
func (r *Reconciler) passLog(ctx context.Context) *passLog {
	l, ok := r.store.(ShardPassLog)
	if !ok || r.cfg.Shards <= 1 {
		return nil
	}
	begun, err := l.ShardPassesBegun(ctx, r.cfg.Shards)
	if err != nil {
		r.log.WarnContext(ctx, "reading the shard pass log failed; this pass may repeat other replicas' shard passes", slog.Any("error", err))
		return nil
	}
	if len(begun) != r.cfg.Shards || slices.ContainsFunc(begun, func(n int64) bool { return n < 0 }) {
		r.log.WarnContext(ctx, "the shard pass log returned the wrong number of shards or a negative count; not using it",
			slog.Int("shards", r.cfg.Shards), slog.Int("returned", len(begun)))
		return nil
	}
	return &passLog{log: l, begun: begun}
}

// shardPass runs one pass under the lock of w.shard: snapshot (restricted
// to the shard and, when targeted, to its presets), plan, execute. With a
// pass log (full sharded passes), it numbers the pass in the log first,
// skips the shard if another replica passed it since the full pass began,
// and records the pass as completed after executing all of its plan
// without a preset error.
func (r *Reconciler) shardPass(ctx context.Context, w shardWork, targeted bool, pl *passLog, stats *Stats) (bool, error) {
	metricsShard := max(w.shard.Index, 0)
	fresh := false
	acquired, err := r.withLock(ctx, w.shard, func(ctx context.Context, sr SnapshotReader) error {
		var number int64
		if pl != nil {
			n, completed, err := pl.log.BeginShardPass(ctx, w.shard)
			switch {
			case err != nil:
				if ctx.Err() == nil {
					r.log.WarnContext(ctx, "numbering a shard pass failed; passing the shard without the log",
						slog.Int("shard", w.shard.Index), slog.Int("shards", w.shard.Count), slog.Any("error", err))
				}
			case n < 1 || completed < 0 || completed >= n:
				r.log.WarnContext(ctx, "the shard pass log numbered a pass inconsistently; passing the shard without the log",
					slog.Int("shard", w.shard.Index), slog.Int("shards", w.shard.Count),
					slog.Int64("number", n), slog.Int64("completed", completed))
			case pl.fresh(w.shard, completed):
				fresh = true
				return nil
			default:
				number = n
			}
		}
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
		// Only a pass that carried out its whole plan stands for others: one
		// cut short (ctx done) or with a preset error is not recorded.
		if number > 0 && ctx.Err() == nil && s.PresetErrors == 0 {
			if err := pl.log.CompleteShardPass(ctx, w.shard, number); err != nil && ctx.Err() == nil {
				r.log.WarnContext(ctx, "recording a completed shard pass failed; other replicas may pass the shard again",
					slog.Int("shard", w.shard.Index), slog.Int("shards", w.shard.Count), slog.Any("error", err))
			}
		}
		return nil
	})
	if fresh {
		if !targeted {
			r.metrics.presets.clear(metricsShard)
		}
		r.log.DebugContext(ctx, "shard passed by another replica since this pass began, skipping it",
			slog.Int("shard", w.shard.Index), slog.Int("shards", w.shard.Count))
		stats.ShardsFresh++
		return false, err // err: the lock's release failed
	}
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
