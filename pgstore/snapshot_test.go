package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/pgstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func TestSnapshotRunningAndCurrentPreset(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	a := f.preset(ptr(3))
	b := f.preset(ptr(3))
	unconfigured := f.preset(nil)

	r1 := f.prebuildID(id(1), uuid.New(), a, t0, prebuilds.JobSucceeded)
	require.NoError(t, f.s.SetReady(ctx, r1, true))
	// Started again without a preset: current preset stays a.
	r2 := f.prebuildID(id(2), uuid.New(), a, t0.Add(time.Second), prebuilds.JobSucceeded)
	f.build(r2, f.ver, uuid.Nil, prebuilds.TransitionStop, prebuilds.JobSucceeded, t0.Add(time.Minute))
	f.build(r2, f.ver, uuid.Nil, prebuilds.TransitionStart, prebuilds.JobSucceeded, t0.Add(2*time.Minute))
	// Moved to b by a later start build with a preset.
	r3 := f.prebuildID(id(3), uuid.New(), a, t0, prebuilds.JobSucceeded)
	f.build(r3, f.ver, uuid.Nil, prebuilds.TransitionStop, prebuilds.JobSucceeded, t0.Add(time.Minute))
	f.build(r3, f.ver, b, prebuilds.TransitionStart, prebuilds.JobSucceeded, t0.Add(2*time.Minute))
	// Not running: stopped, failed, canceled, pending, deleted, claimed,
	// unconfigured preset.
	stopped := f.prebuild(a, t0, prebuilds.JobSucceeded)
	f.build(stopped, f.ver, uuid.Nil, prebuilds.TransitionStop, prebuilds.JobSucceeded, t0)
	f.prebuild(a, t0, prebuilds.JobFailed)
	f.prebuild(a, t0, prebuilds.JobCanceled)
	removed := f.prebuild(a, t0, prebuilds.JobSucceeded)
	require.NoError(t, f.s.RemoveInstance(ctx, removed))
	f.prebuild(unconfigured, t0, prebuilds.JobSucceeded)
	claimed := f.prebuildID(id(0), uuid.New(), a, t0.Add(-time.Hour), prebuilds.JobSucceeded)
	require.NoError(t, f.s.SetReady(ctx, claimed, true))
	got, err := f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: a, Owner: f.user, Now: t0})
	require.NoError(t, err)
	require.Equal(t, claimed, got.ID)

	snap := f.snapshot(t0.Add(time.Hour), 0)
	want := []prebuilds.RunningPrebuild{
		{InstanceID: r1, PresetID: a, CreatedAt: t0, Ready: true},
		{InstanceID: r2, PresetID: a, CreatedAt: t0.Add(time.Second)},
		{InstanceID: r3, PresetID: b, CreatedAt: t0},
	}
	s := &prebuilds.GlobalSnapshot{Running: want}
	prebuilds.SortSnapshot(s)
	if d := cmp.Diff(s.Running, snap.Running); d != "" {
		t.Fatalf("running (-want +got):\n%s", d)
	}
	require.Empty(t, snap.InProgress)
	require.Equal(t, time.UTC, snap.Running[0].CreatedAt.Location())
}

func TestSnapshotReaderClosed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var kept prebuilds.SnapshotReader
	acquired, err := f.s.WithReconciliationLock(f.ctx, func(_ context.Context, r prebuilds.SnapshotReader) error {
		kept = r
		return nil
	})
	require.NoError(t, err)
	require.True(t, acquired)
	_, err = kept.Snapshot(f.ctx, prebuilds.SnapshotParams{Now: t0})
	require.ErrorContains(t, err, "snapshot reader used after WithReconciliationLock returned")
}

// lockHolderSQL finds the backend holding the session advisory lock $1 in
// the current database and reports its state and whether it pins xmin.
const lockHolderSQL = `
SELECT a.state, a.backend_xmin IS NULL
FROM pg_locks l
JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND ((l.classid::bigint << 32) | l.objid::bigint) = $1`

// TestSnapshotTransactionClosedWhileLockHeld checks that the snapshot
// transaction is committed when Snapshot returns, while the session lock
// stays held for the rest of fn: the lock connection is idle, not idle in
// transaction, and holds back no xmin. It also checks that each Snapshot
// call is its own transaction: a write committed between two calls is seen
// by the second.
func TestSnapshotTransactionClosedWhileLockHeld(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(2))
	replica := pgstore.New(openPool(t, f.pool))
	type holder struct {
		state    string
		xminNull bool
	}
	var during []holder
	var first, second *prebuilds.GlobalSnapshot
	acquired, err := f.s.WithReconciliationLock(f.ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
		var err error
		if first, err = r.Snapshot(ctx, prebuilds.SnapshotParams{Now: t0}); err != nil {
			return err
		}
		var h holder
		if err := f.pool.QueryRow(ctx, lockHolderSQL, pgstore.DefaultLockKey).Scan(&h.state, &h.xminNull); err != nil {
			return fmt.Errorf("find lock holder: %w", err)
		}
		during = append(during, h)
		// The lock is still held after the snapshot transaction ended.
		got, err := replica.WithReconciliationLock(ctx, func(context.Context, prebuilds.SnapshotReader) error {
			return errors.New("fn called while another holder has the lock")
		})
		if err != nil || got {
			return fmt.Errorf("replica took the lock during fn: acquired %v, err %v", got, err)
		}
		if _, err := f.s.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{PresetID: p, TemplateVersionID: f.ver, Now: t0,
			Instances: []prebuilds.NewPrebuild{{InstanceID: uuid.New(), BuildID: uuid.New()}}}); err != nil {
			return err
		}
		if second, err = r.Snapshot(ctx, prebuilds.SnapshotParams{Now: t0}); err != nil {
			return err
		}
		if err := f.pool.QueryRow(ctx, lockHolderSQL, pgstore.DefaultLockKey).Scan(&h.state, &h.xminNull); err != nil {
			return fmt.Errorf("find lock holder: %w", err)
		}
		during = append(during, h)
		return nil
	})
	require.NoError(t, err)
	require.True(t, acquired)
	require.Equal(t, []holder{{"idle", true}, {"idle", true}}, during)
	require.Empty(t, first.InProgress)
	require.Equal(t, []prebuilds.InProgressCount{{PresetID: p, Transition: prebuilds.TransitionStart, Count: 1}}, second.InProgress)

	// After fn returns the lock is released.
	var n int
	require.NoError(t, f.pool.QueryRow(f.ctx, `SELECT count(*) FROM (`+lockHolderSQL+`) h`, pgstore.DefaultLockKey).Scan(&n))
	require.Zero(t, n)
}

// TestSnapshotSeesWritesUnderLock checks that writes made through the store
// while the lock is held commit on other connections, and that a later
// holder's snapshot sees them.
func TestSnapshotSeesWritesUnderLock(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(2))
	replica := pgstore.New(openPool(t, f.pool))
	acquired, err := f.s.WithReconciliationLock(f.ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
		snap, err := r.Snapshot(ctx, prebuilds.SnapshotParams{Now: t0})
		if err != nil {
			return err
		}
		require.Empty(t, snap.InProgress)
		_, err = f.s.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{PresetID: p, TemplateVersionID: f.ver, Now: t0,
			Instances: []prebuilds.NewPrebuild{{InstanceID: uuid.New(), BuildID: uuid.New()}}})
		return err
	})
	require.NoError(t, err)
	require.True(t, acquired)
	var snap *prebuilds.GlobalSnapshot
	acquired, err = replica.WithReconciliationLock(f.ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
		snap, err = r.Snapshot(ctx, prebuilds.SnapshotParams{Now: t0})
		return err
	})
	require.NoError(t, err)
	require.True(t, acquired)
	require.Equal(t, []prebuilds.InProgressCount{{PresetID: p, Transition: prebuilds.TransitionStart, Count: 1}}, snap.InProgress)
}
