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

func TestSnapshotInProgress(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.preset(ptr(3))
	f.prebuild(a, t0, prebuilds.JobPending)
	f.prebuild(a, t0, prebuilds.JobRunning)
	canceling := f.prebuild(a, t0, prebuilds.JobRunning)
	f.job(f.latestBuildID(canceling), prebuilds.JobCanceling, t0)
	stopping := f.prebuild(a, t0, prebuilds.JobSucceeded)
	f.build(stopping, f.ver, uuid.Nil, prebuilds.TransitionStop, prebuilds.JobRunning, t0)
	deleting := f.prebuild(a, t0, prebuilds.JobSucceeded)
	f.build(deleting, f.ver, uuid.Nil, prebuilds.TransitionDelete, prebuilds.JobPending, t0)
	deleting2 := f.prebuild(a, t0, prebuilds.JobSucceeded)
	_, err := f.s.DeletePrebuild(f.ctx, prebuilds.DeletePrebuildParams{InstanceID: deleting2, BuildID: uuid.New(), Now: t0})
	require.NoError(t, err)
	// A user's instance is not counted.
	require.NoError(t, f.s.CreateInstance(f.ctx, prebuilds.CreateInstanceParams{InstanceID: uuid.New(), OwnerID: f.user,
		TemplateID: f.tmpl, BuildID: uuid.New(), TemplateVersionID: f.ver, PresetID: a, Transition: prebuilds.TransitionStart, Now: t0}))

	snap := f.snapshot(t0, 0)
	require.Equal(t, []prebuilds.InProgressCount{
		{PresetID: a, Transition: prebuilds.TransitionDelete, Count: 2},
		{PresetID: a, Transition: prebuilds.TransitionStart, Count: 2},
		{PresetID: a, Transition: prebuilds.TransitionStop, Count: 1},
	}, snap.InProgress)
	require.Empty(t, snap.PendingInactive, "the preset is active")
}

func TestSnapshotPendingInactive(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	a := f.preset(ptr(3))
	f.prebuild(a, t0, prebuilds.JobPending)
	f.prebuild(a, t0, prebuilds.JobPending)
	f.prebuild(a, t0, prebuilds.JobRunning) // taken by a worker: not pending
	rebuilt := f.prebuild(a, t0, prebuilds.JobFailed)
	f.build(rebuilt, f.ver, a, prebuilds.TransitionStart, prebuilds.JobPending, t0) // build #2: not "only build"
	require.Empty(t, f.snapshot(t0, 0).PendingInactive)

	require.NoError(t, f.s.SetTemplateDeprecated(ctx, f.tmpl, true))
	snap := f.snapshot(t0, 0)
	require.Equal(t, []prebuilds.PendingInactiveCount{{PresetID: a, Count: 2}}, snap.PendingInactive)
	require.Equal(t, []prebuilds.InProgressCount{{PresetID: a, Transition: prebuilds.TransitionStart, Count: 4}}, snap.InProgress)

	// A template without an active version has no active preset.
	bare := uuid.New()
	require.NoError(t, f.s.CreateTemplate(ctx, prebuilds.Template{ID: bare, Name: "bare"}))
	bareVer := uuid.New()
	require.NoError(t, f.s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: bareVer, TemplateID: bare, CreatedAt: t0}))
	bp := f.presetOn(bareVer, ptr(1))
	_, err := f.s.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{PresetID: bp, TemplateVersionID: bareVer, Now: t0,
		Instances: []prebuilds.NewPrebuild{{InstanceID: uuid.New(), BuildID: uuid.New()}}})
	require.NoError(t, err)
	snap = f.snapshot(t0, 0)
	want := []prebuilds.PendingInactiveCount{{PresetID: a, Count: 2}, {PresetID: bp, Count: 1}}
	s := &prebuilds.GlobalSnapshot{PendingInactive: want}
	prebuilds.SortSnapshot(s)
	require.Equal(t, s.PendingInactive, snap.PendingInactive)
}

func TestSnapshotBackoff(t *testing.T) {
	t.Parallel()
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	type build struct {
		at     time.Duration
		status prebuilds.JobStatus
	}
	cases := []struct {
		name    string
		desired int
		builds  []build
		want    *prebuilds.BackoffRow // PresetID filled in
	}{
		{name: "one failure", desired: 1, builds: []build{{0, prebuilds.JobFailed}},
			want: &prebuilds.BackoffRow{NumFailed: 1, LastBuildAt: at(0)}},
		{name: "window: newest two succeeded", desired: 2, builds: []build{
			{0, prebuilds.JobFailed}, {time.Second, prebuilds.JobSucceeded}, {2 * time.Second, prebuilds.JobSucceeded}}},
		{name: "window: failure within desired", desired: 2, builds: []build{
			{0, prebuilds.JobSucceeded}, {time.Second, prebuilds.JobFailed}, {2 * time.Second, prebuilds.JobSucceeded}},
			want: &prebuilds.BackoffRow{NumFailed: 1, LastBuildAt: at(time.Second)}},
		{name: "num_failed counts beyond the window", desired: 1, builds: []build{
			{0, prebuilds.JobFailed}, {time.Second, prebuilds.JobFailed}, {2 * time.Second, prebuilds.JobFailed}},
			want: &prebuilds.BackoffRow{NumFailed: 3, LastBuildAt: at(2 * time.Second)}},
		{name: "desired 0 has no row", desired: 0, builds: []build{{0, prebuilds.JobFailed}}},
		{name: "failures before lookback forgotten", desired: 2, builds: []build{
			{-2 * time.Hour, prebuilds.JobFailed}, {-90 * time.Minute, prebuilds.JobFailed}}},
		{name: "lookback boundary counts", desired: 2, builds: []build{
			{0, prebuilds.JobFailed}, {-time.Microsecond, prebuilds.JobFailed}},
			want: &prebuilds.BackoffRow{NumFailed: 1, LastBuildAt: at(0)}},
		{name: "a pending build is a candidate too", desired: 1, builds: []build{
			{0, prebuilds.JobFailed}, {time.Second, prebuilds.JobPending}}},
		{name: "a running build is a candidate too", desired: 1, builds: []build{
			{0, prebuilds.JobFailed}, {time.Second, prebuilds.JobRunning}}},
		{name: "canceled is not failed", desired: 1, builds: []build{{0, prebuilds.JobCanceled}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			p := f.preset(ptr(c.desired))
			for _, b := range c.builds {
				f.prebuild(p, at(b.at), b.status)
			}
			snap := f.snapshot(at(time.Hour), 0) // lookback = t0
			if c.want == nil {
				require.Empty(t, snap.Backoffs)
				return
			}
			want := *c.want
			want.PresetID = p
			require.Equal(t, []prebuilds.BackoffRow{want}, snap.Backoffs)
		})
	}
}

func TestSnapshotBackoffScope(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	p := f.preset(ptr(2))
	failed := f.prebuild(p, t0, prebuilds.JobFailed)
	require.Len(t, f.snapshot(t0, 1).Backoffs, 1)
	require.Len(t, f.snapshot(t0, 1).HardLimited, 1)

	// Deprecated templates still count (only version and deletion matter).
	require.NoError(t, f.s.SetTemplateDeprecated(ctx, f.tmpl, true))
	require.Len(t, f.snapshot(t0, 1).Backoffs, 1)
	require.NoError(t, f.s.SetTemplateDeprecated(ctx, f.tmpl, false))

	// An admin reset forgets earlier failures; later ones count.
	require.NoError(t, f.s.ResetPreset(ctx, p, t0.Add(time.Microsecond)))
	snap := f.snapshot(t0, 1)
	require.Empty(t, snap.Backoffs)
	require.Empty(t, snap.HardLimited)
	require.NoError(t, f.s.ResetPreset(ctx, p, t0))
	require.Len(t, f.snapshot(t0, 1).Backoffs, 1, "created at reset_at counts")

	// Removed instances are not candidates.
	require.NoError(t, f.s.RemoveInstance(ctx, failed))
	require.Empty(t, f.snapshot(t0, 1).Backoffs)
	f.prebuild(p, t0, prebuilds.JobFailed)

	// A new active version: the old preset has no candidates.
	require.NoError(t, f.s.SetActiveVersion(ctx, f.tmpl, f.version()))
	snap = f.snapshot(t0, 1)
	require.Empty(t, snap.Backoffs)
	require.Empty(t, snap.HardLimited)
	require.NoError(t, f.s.SetActiveVersion(ctx, f.tmpl, f.ver))
	require.Len(t, f.snapshot(t0, 1).Backoffs, 1)
	require.NoError(t, f.s.DeleteTemplate(ctx, f.tmpl))
	require.Empty(t, f.snapshot(t0, 1).Backoffs)
}

func TestSnapshotHardLimit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(5))
	f.prebuild(p, t0, prebuilds.JobSucceeded)
	f.prebuild(p, t0.Add(time.Second), prebuilds.JobFailed)
	f.prebuild(p, t0.Add(2*time.Second), prebuilds.JobFailed)
	now := t0.Add(time.Minute)
	for k, want := range map[int]bool{0: false, 1: true, 2: true, 3: false, 4: false} {
		got := f.snapshot(now, k).HardLimited
		if want {
			require.Equal(t, []uuid.UUID{p}, got, "K=%d", k)
		} else {
			require.Empty(t, got, "K=%d", k)
		}
	}
	// The hard limit ignores the lookback.
	require.Equal(t, []uuid.UUID{p}, f.snapshot(now.Add(48*time.Hour), 2).HardLimited)
	require.Empty(t, f.snapshot(now.Add(48*time.Hour), 2).Backoffs)
	// Negative K is off, like 0.
	require.Empty(t, f.snapshot(now, -1).HardLimited)
}

func TestSnapshotLookbackPrecision(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(1))
	f.prebuild(p, t0, prebuilds.JobFailed)
	// A lookback 1ns after the failure excludes it, exactly at it includes it.
	snap := f.snapshotParams(prebuilds.SnapshotParams{Now: t0, Lookback: t0.Add(time.Nanosecond)})
	require.Empty(t, snap.Backoffs)
	snap = f.snapshotParams(prebuilds.SnapshotParams{Now: t0, Lookback: t0})
	require.Len(t, snap.Backoffs, 1)
}

func TestSnapshotCounters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	a := f.preset(ptr(3))
	b := f.preset(ptr(3))
	f.prebuild(a, t0, prebuilds.JobFailed)
	f.prebuild(a, t0, prebuilds.JobPending)
	removed := f.prebuild(a, t0, prebuilds.JobFailed)
	require.NoError(t, f.s.RemoveInstance(ctx, removed))
	f.ready(a, t0)
	_, err := f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: a, Owner: f.user, Now: t0})
	require.NoError(t, err)
	// Moved to b later: still counted for a (build #1's preset).
	moved := f.prebuild(a, t0, prebuilds.JobSucceeded)
	f.build(moved, f.ver, b, prebuilds.TransitionStart, prebuilds.JobFailed, t0)
	// A user's instance is not a prebuild.
	require.NoError(t, f.s.CreateInstance(ctx, prebuilds.CreateInstanceParams{InstanceID: uuid.New(), OwnerID: f.user,
		TemplateID: f.tmpl, BuildID: uuid.New(), TemplateVersionID: f.ver, PresetID: b, Transition: prebuilds.TransitionStart, Now: t0}))
	// A seeded SystemOwner instance is.
	seeded := prebuilds.CreateInstanceParams{InstanceID: uuid.New(), OwnerID: prebuilds.SystemOwner,
		TemplateID: f.tmpl, BuildID: uuid.New(), TemplateVersionID: f.ver, PresetID: b, Transition: prebuilds.TransitionStart, Now: t0}
	require.NoError(t, f.s.CreateInstance(ctx, seeded))

	want := []prebuilds.PresetCounters{{PresetID: a, Created: 5, Failed: 2, Claimed: 1}, {PresetID: b, Created: 1}}
	s := &prebuilds.GlobalSnapshot{Counters: want}
	prebuilds.SortSnapshot(s)
	require.Equal(t, s.Counters, f.snapshot(t0, 0).Counters)
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
