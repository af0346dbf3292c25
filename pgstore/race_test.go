package pgstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/pgstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// replicas returns n Stores, each on its own pool, on f's database.
func replicas(t *testing.T, f *fixture, n int) []*pgstore.Store {
	t.Helper()
	out := make([]*pgstore.Store, n)
	for i := range out {
		out[i] = pgstore.New(openPool(t, f.pool))
	}
	return out
}

func TestLockExclusive(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	stores := replicas(t, f, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	entered := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		acquired, err := stores[0].WithReconciliationLock(ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
			if _, err := r.Snapshot(ctx, prebuilds.SnapshotParams{Now: t0}); err != nil {
				return err
			}
			close(entered)
			<-release
			return nil
		})
		if err == nil && !acquired {
			err = errors.New("first holder did not acquire the lock")
		}
		done <- err
	}()
	select {
	case <-entered:
	case err := <-done:
		t.Fatalf("holder returned early: %v", err)
	}

	// Every other replica returns (false, nil) without waiting, fn not called.
	for i, s := range stores[1:] {
		for range 3 {
			acquired, err := s.WithReconciliationLock(ctx, func(context.Context, prebuilds.SnapshotReader) error {
				t.Errorf("replica %d: fn called while the lock is held", i+1)
				return nil
			})
			require.NoError(t, err)
			require.False(t, acquired, "replica %d", i+1)
		}
	}
	// Same store, another connection: also refused.
	acquired, err := stores[0].WithReconciliationLock(ctx, func(context.Context, prebuilds.SnapshotReader) error { return nil })
	require.NoError(t, err)
	require.False(t, acquired)

	close(release)
	require.NoError(t, <-done)

	// Released: the next replica gets it, and fn's error comes back with
	// acquired = true.
	boom := errors.New("boom")
	acquired, err = stores[1].WithReconciliationLock(ctx, func(context.Context, prebuilds.SnapshotReader) error { return boom })
	require.True(t, acquired)
	require.ErrorIs(t, err, boom)
	acquired, err = stores[2].WithReconciliationLock(ctx, func(context.Context, prebuilds.SnapshotReader) error { return nil })
	require.NoError(t, err)
	require.True(t, acquired, "an fn error still releases the lock")
}

func TestLockContention(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(1))
	stores := replicas(t, f, 5)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var holders, maxHolders, acquisitions atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, len(stores))
	for _, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				_, err := s.WithReconciliationLock(ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
					n := holders.Add(1)
					defer holders.Add(-1)
					for {
						m := maxHolders.Load()
						if n <= m || maxHolders.CompareAndSwap(m, n) {
							break
						}
					}
					acquisitions.Add(1)
					if _, err := r.Snapshot(ctx, prebuilds.SnapshotParams{Now: t0}); err != nil {
						return err
					}
					// A write under the lock, through the store's pool.
					_, err := s.SetPresetStatus(ctx, p, prebuilds.PresetHealthy, prebuilds.PresetHealthy)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int32(1), maxHolders.Load(), "never two holders at once")
	require.Positive(t, acquisitions.Load())
}

func TestClaimExclusive(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ claimers, ready int }{{8, 5}, {4, 10}, {6, 6}} {
		f := newFixture(t)
		p := f.preset(ptr(c.ready))
		for i := range c.ready {
			f.ready(p, t0.Add(time.Duration(i)*time.Second))
		}
		stores := replicas(t, f, 3)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := make(chan struct{})
		got := make([]uuid.UUID, c.claimers)
		errs := make([]error, c.claimers)
		var wg sync.WaitGroup
		for i := range c.claimers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				inst, err := stores[i%len(stores)].Claim(ctx, prebuilds.ClaimParams{PresetID: p, Owner: uuid.New(), Now: t0.Add(time.Hour)})
				got[i], errs[i] = inst.ID, err
			}()
		}
		close(start)
		wg.Wait()
		cancel()

		distinct := map[uuid.UUID]bool{}
		for i := range c.claimers {
			if errs[i] != nil {
				require.ErrorIs(t, errs[i], prebuilds.ErrNoClaimablePrebuild)
				continue
			}
			require.False(t, distinct[got[i]], "instance %s claimed twice", got[i])
			distinct[got[i]] = true
		}
		require.Len(t, distinct, min(c.claimers, c.ready), "%d claimers, %d ready", c.claimers, c.ready)
	}
}

func TestClaimVersusDelete(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(1))
	stores := replicas(t, f, 2)
	claimer, deleter := stores[0], stores[1]
	const iterations = 60
	claims, deletes := 0, 0
	for i := range iterations {
		at := t0.Add(time.Duration(i) * time.Second)
		inst := f.ready(p, at)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := make(chan struct{})
		var (
			wg               sync.WaitGroup
			claimed          prebuilds.Instance
			claimErr, delErr error
			deleteBuild      = uuid.New()
		)
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			claimed, claimErr = claimer.Claim(ctx, prebuilds.ClaimParams{PresetID: p, Owner: f.user, Now: at})
		}()
		go func() {
			defer wg.Done()
			<-start
			_, delErr = deleter.DeletePrebuild(ctx, prebuilds.DeletePrebuildParams{InstanceID: inst, BuildID: deleteBuild, Now: at})
		}()
		close(start)
		wg.Wait()
		cancel()

		require.True(t, (claimErr == nil) != (delErr == nil), "iteration %d: exactly one must win: claim=%v delete=%v", i, claimErr, delErr)
		got, err := f.s.GetInstance(f.ctx, inst)
		require.NoError(t, err)
		builds, err := f.s.ListBuilds(f.ctx, inst)
		require.NoError(t, err)
		if claimErr == nil {
			claims++
			require.Equal(t, inst, claimed.ID)
			require.ErrorIs(t, delErr, prebuilds.ErrConflict)
			require.Equal(t, f.user, got.OwnerID)
			require.Len(t, builds, 1, "a claimed instance gets no delete build")
		} else {
			deletes++
			require.ErrorIs(t, claimErr, prebuilds.ErrNoClaimablePrebuild)
			require.Equal(t, prebuilds.SystemOwner, got.OwnerID)
			require.Len(t, builds, 2)
			require.Equal(t, prebuilds.TransitionDelete, builds[1].Transition)
		}
	}
	t.Logf("claims won %d, deletes won %d of %d", claims, deletes, iterations)
}

func TestLockReleasedOnCancel(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	stores := replicas(t, f, 2)
	ctx, cancel := context.WithCancel(context.Background())
	acquired, err := stores[0].WithReconciliationLock(ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
		cancel()
		_, err := r.Snapshot(ctx, prebuilds.SnapshotParams{Now: t0})
		return err
	})
	require.True(t, acquired)
	require.ErrorIs(t, err, context.Canceled)

	// The lock is free again, for another replica and for the same pool.
	for _, s := range stores {
		acquired, err := s.WithReconciliationLock(context.Background(), func(context.Context, prebuilds.SnapshotReader) error { return nil })
		require.NoError(t, err)
		require.True(t, acquired)
	}
}

// TestFailStuckBuildVersusUpdateJob races the Reconciler failing a stuck
// build against the provisioner's late report on it: exactly one wins, and
// the build ends as the winner left it.
func TestFailStuckBuildVersusUpdateJob(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(1))
	stores := replicas(t, f, 2)
	reconciler, provisioner := stores[0], stores[1]
	const iterations = 60
	fails, reports := 0, 0
	for i := range iterations {
		at := t0.Add(time.Duration(i) * time.Second)
		inst := f.prebuild(p, at, prebuilds.JobRunning)
		build := f.latestBuildID(inst)
		now := at.Add(time.Hour)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		start := make(chan struct{})
		var (
			wg              sync.WaitGroup
			failErr, jobErr error
		)
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			failErr = reconciler.FailStuckBuild(ctx, prebuilds.FailStuckBuildParams{BuildID: build, StuckBefore: now, Now: now})
		}()
		go func() {
			defer wg.Done()
			<-start
			_, jobErr = provisioner.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: build, Status: prebuilds.JobSucceeded, Now: now})
		}()
		close(start)
		wg.Wait()
		cancel()

		require.True(t, (failErr == nil) != (jobErr == nil), "iteration %d: exactly one must win: fail=%v report=%v", i, failErr, jobErr)
		builds, err := f.s.ListBuilds(f.ctx, inst)
		require.NoError(t, err)
		if failErr == nil {
			fails++
			require.ErrorIs(t, jobErr, prebuilds.ErrInvalidTransition)
			require.Equal(t, prebuilds.JobFailed, builds[0].JobStatus)
			require.Equal(t, prebuilds.FailureTimeout, builds[0].FailureKind)
		} else {
			reports++
			require.ErrorIs(t, failErr, prebuilds.ErrConflict)
			require.Equal(t, prebuilds.JobSucceeded, builds[0].JobStatus)
			require.Equal(t, prebuilds.FailureNone, builds[0].FailureKind)
		}
	}
	t.Logf("fail-stuck won %d, reports won %d of %d", fails, reports, iterations)
}
