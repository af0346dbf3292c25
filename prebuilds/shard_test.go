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

// negativePassLog is a memstore whose ShardPassesBegun answers -1 for
// every shard.
type negativePassLog struct{ *memstore.Store }

func (negativePassLog) ShardPassesBegun(context.Context, int) ([]int64, error) {
	return []int64{-1, -1, -1, -1}, nil
}

func TestShardPassLogNegativeCountIsNotUsed(t *testing.T) {
	t.Parallel()
	s, _ := shardedFleet(t)
	var logs strings.Builder
	stats, err := prebuilds.NewReconciler(negativePassLog{s}, prebuilds.Config{Shards: 4, Logger: slog.New(slog.NewTextHandler(&logs, nil))}).ReconcileAll(context.Background())
	require.NoError(t, err)
	require.Equal(t, 4, stats.ShardPasses, "a shard never passed is not fresh, whatever the log says")
	require.Zero(t, stats.ShardsFresh)
	require.Contains(t, logs.String(), "negative count")
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

// createHook is a memstore whose CreatePrebuilds runs hook after the
// store's own and returns hook's error.
type createHook struct {
	*memstore.Store
	hook func() error
}

func (c createHook) CreatePrebuilds(ctx context.Context, p prebuilds.CreatePrebuildsParams) ([]prebuilds.Job, error) {
	jobs, err := c.Store.CreatePrebuilds(ctx, p)
	if err != nil {
		return jobs, err
	}
	return jobs, c.hook()
}

// completedPasses returns the newest completed pass number of each of the
// 4 shards (numbering one more pass of each).
func completedPasses(t *testing.T, s *memstore.Store) []int64 {
	t.Helper()
	var out []int64
	for i := range 4 {
		_, completed, err := s.BeginShardPass(context.Background(), prebuilds.Shard{Index: i, Count: 4})
		require.NoError(t, err)
		out = append(out, completed)
	}
	return out
}

func TestShardPassRecordedOnlyWhenItsPlanRanWhole(t *testing.T) {
	t.Parallel()
	t.Run("Complete", func(t *testing.T) {
		t.Parallel()
		s, _ := shardedFleet(t)
		_, err := prebuilds.NewReconciler(s, prebuilds.Config{Shards: 4, Logger: slog.New(slog.DiscardHandler)}).ReconcileAll(context.Background())
		require.NoError(t, err)
		require.Equal(t, []int64{1, 1, 1, 1}, completedPasses(t, s))
	})
	t.Run("Canceled", func(t *testing.T) {
		t.Parallel()
		s, _ := shardedFleet(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		h := createHook{Store: s, hook: func() error { cancel(); return nil }}
		stats, err := prebuilds.NewReconciler(h, prebuilds.Config{Shards: 4, MaxConcurrency: 1, Logger: slog.New(slog.DiscardHandler)}).ReconcileAll(ctx)
		require.NoError(t, err, "a canceled pass reports what it did, not an error")
		require.Equal(t, 1, stats.ShardPasses, "the pass stops in its first shard")
		require.Less(t, stats.Created, 3, "the first shard's plan was cut short")
		require.Equal(t, []int64{0, 0, 0, 0}, completedPasses(t, s), "a pass cut short stands for nobody")
	})
	t.Run("PresetError", func(t *testing.T) {
		t.Parallel()
		s, _ := shardedFleet(t)
		h := createHook{Store: s, hook: func() error { return errors.New("provisioner hand-off failed") }}
		stats, err := prebuilds.NewReconciler(h, prebuilds.Config{Shards: 4, Logger: slog.New(slog.DiscardHandler)}).ReconcileAll(context.Background())
		require.NoError(t, err, "preset errors are counted, not returned")
		require.Equal(t, 4, stats.ShardPasses)
		require.Positive(t, stats.PresetErrors)
		require.Equal(t, []int64{0, 0, 0, 0}, completedPasses(t, s), "a pass with preset errors stands for nobody")
	})
}

func TestTargetedPassesLeaveTheShardPassLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, shardOf := shardedFleet(t)
	ids := make([]uuid.UUID, 0, len(shardOf))
	for p := range shardOf {
		ids = append(ids, p)
	}
	stats, err := prebuilds.NewReconciler(s, prebuilds.Config{Shards: 4, Logger: slog.New(slog.DiscardHandler)}).ReconcilePresets(ctx, ids)
	require.NoError(t, err)
	require.Equal(t, 4, stats.ShardPasses)
	begun, err := s.ShardPassesBegun(ctx, 4)
	require.NoError(t, err)
	require.Equal(t, []int64{0, 0, 0, 0}, begun)
}

// failingBegin is a memstore whose BeginShardPass always fails.
type failingBegin struct{ *memstore.Store }

func (failingBegin) BeginShardPass(context.Context, prebuilds.Shard) (int64, int64, error) {
	return 0, 0, errPassLog
}

// inconsistentBegin is a memstore whose BeginShardPass says a pass newer
// than the one it numbers has completed.
type inconsistentBegin struct{ *memstore.Store }

func (inconsistentBegin) BeginShardPass(context.Context, prebuilds.Shard) (int64, int64, error) {
	return 1, 5, nil
}

func TestShardPassLogBeginFailurePassesAnyway(t *testing.T) {
	t.Parallel()
	for name, wrap := range map[string]func(*memstore.Store) prebuilds.Store{
		"Error":        func(s *memstore.Store) prebuilds.Store { return failingBegin{s} },
		"Inconsistent": func(s *memstore.Store) prebuilds.Store { return inconsistentBegin{s} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, _ := shardedFleet(t)
			var logs strings.Builder
			stats, err := prebuilds.NewReconciler(wrap(s), prebuilds.Config{Shards: 4, Logger: slog.New(slog.NewTextHandler(&logs, nil))}).ReconcileAll(context.Background())
			require.NoError(t, err)
			require.Equal(t, 4, stats.ShardPasses, "every shard is passed without the log")
			require.Zero(t, stats.ShardsFresh)
			require.Equal(t, 12, stats.Created)
			require.Contains(t, logs.String(), "passing the shard without the log")
			require.Equal(t, []int64{0, 0, 0, 0}, completedPasses(t, s), "nothing recorded for an unnumbered pass")
		})
	}
}
