package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func TestClaimExclusivity(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ claimers, ready int }{{10, 3}, {3, 10}, {16, 16}, {32, 1}} {
		t.Run(fmt.Sprintf("claimers=%d/ready=%d", tc.claimers, tc.ready), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			p := f.preset(ptr(tc.ready))
			for range tc.ready {
				f.running(p)
			}
			start := make(chan struct{})
			got := make([]uuid.UUID, tc.claimers)
			errs := make([]error, tc.claimers)
			var wg sync.WaitGroup
			for i := range tc.claimers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					in, err := f.s.Claim(f.ctx, prebuilds.ClaimParams{PresetID: p, Owner: uuid.New(), Now: f.now})
					got[i], errs[i] = in.ID, err
				}()
			}
			close(start)
			wg.Wait()

			claimed := map[uuid.UUID]bool{}
			for i, err := range errs {
				if err != nil {
					require.ErrorIs(t, err, prebuilds.ErrNoClaimablePrebuild)
					continue
				}
				require.False(t, claimed[got[i]], "instance %s claimed twice", got[i])
				claimed[got[i]] = true
			}
			require.Len(t, claimed, min(tc.claimers, tc.ready))
			require.Len(t, f.snapshot(0).Running, tc.ready-len(claimed))
		})
	}
}

func TestClaimVersusDelete(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(1))
	var claims, deletes int
	for range 300 {
		id := f.running(p)
		start := make(chan struct{})
		var claimErr, deleteErr error
		var claimed prebuilds.Instance
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			claimed, claimErr = f.s.Claim(f.ctx, prebuilds.ClaimParams{PresetID: p, Owner: f.users, Now: f.now})
		}()
		go func() {
			defer wg.Done()
			<-start
			_, deleteErr = f.s.DeletePrebuild(f.ctx, prebuilds.DeletePrebuildParams{InstanceID: id, BuildID: uuid.New(), Now: f.now})
		}()
		close(start)
		wg.Wait()

		require.True(t, (claimErr == nil) != (deleteErr == nil), "exactly one must succeed: claim %v, delete %v", claimErr, deleteErr)
		builds, err := f.s.ListBuilds(f.ctx, id)
		require.NoError(t, err)
		in, err := f.s.GetInstance(f.ctx, id)
		require.NoError(t, err)
		if claimErr == nil {
			claims++
			require.Equal(t, id, claimed.ID)
			require.ErrorIs(t, deleteErr, prebuilds.ErrConflict)
			require.Len(t, builds, 1, "a claimed prebuild gets no delete build")
			require.Equal(t, f.users, in.OwnerID)
		} else {
			deletes++
			require.ErrorIs(t, claimErr, prebuilds.ErrNoClaimablePrebuild)
			require.Len(t, builds, 2)
			require.Equal(t, prebuilds.TransitionDelete, builds[1].Transition)
			require.Equal(t, prebuilds.SystemOwner, in.OwnerID)
			// Finish the delete so the next round starts from one prebuild.
			f.finish(builds[1].ID, prebuilds.JobSucceeded, "")
		}
	}
	t.Logf("claims won %d, deletes won %d", claims, deletes)
	require.Equal(t, 300, claims+deletes)
}

func TestLockExclusivity(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(1))
	f.running(p)

	held := make(chan struct{})
	release := make(chan struct{})
	holderDone := make(chan error, 1)
	go func() {
		_, err := f.s.WithReconciliationLock(f.ctx, func(context.Context, prebuilds.SnapshotReader) error {
			close(held)
			<-release
			return nil
		})
		holderDone <- err
	}()
	<-held

	// While the lock is held, every contender returns at once without
	// running fn (the call cannot block: the holder waits on us).
	const contenders = 5
	type result struct {
		acquired bool
		err      error
	}
	results := make(chan result, contenders)
	for range contenders {
		go func() {
			acquired, err := f.s.WithReconciliationLock(f.ctx, func(context.Context, prebuilds.SnapshotReader) error {
				return errors.New("fn must not run")
			})
			results <- result{acquired, err}
		}()
	}
	for range contenders {
		r := <-results
		require.False(t, r.acquired)
		require.NoError(t, r.err)
	}
	// Control-plane operations are not excluded by the lock.
	_, err := f.s.Claim(f.ctx, prebuilds.ClaimParams{PresetID: p, Owner: f.users, Now: f.now})
	require.NoError(t, err)

	close(release)
	require.NoError(t, <-holderDone)
	acquired, err := f.s.WithReconciliationLock(f.ctx, func(context.Context, prebuilds.SnapshotReader) error { return nil })
	require.NoError(t, err)
	require.True(t, acquired, "released after fn returned")
}

func TestLockContenders(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var holders, maxHolders, acquisitions atomic.Int32
	const contenders, rounds = 5, 200
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range contenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range rounds {
				_, _ = f.s.WithReconciliationLock(f.ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
					n := holders.Add(1)
					defer holders.Add(-1)
					for {
						m := maxHolders.Load()
						if n <= m || maxHolders.CompareAndSwap(m, n) {
							break
						}
					}
					acquisitions.Add(1)
					runtime.Gosched() // invite the others to overlap
					_, err := r.Snapshot(ctx, prebuilds.SnapshotParams{Now: t0})
					return err
				})
			}
		}()
	}
	close(start)
	wg.Wait()
	require.Equal(t, int32(1), maxHolders.Load(), "exactly one holder at any time")
	require.Positive(t, acquisitions.Load())
}
