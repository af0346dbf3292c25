package pgstore_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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

// lockKinds are the session advisory locks a pass takes: the cluster-wide
// reconciliation lock and a shard's lock, released by the same code.
var lockKinds = []struct {
	name string
	with func(ctx context.Context, s *pgstore.Store, fn func(context.Context, prebuilds.SnapshotReader) error) (bool, error)
}{
	{"reconciliation", func(ctx context.Context, s *pgstore.Store, fn func(context.Context, prebuilds.SnapshotReader) error) (bool, error) {
		return s.WithReconciliationLock(ctx, fn)
	}},
	{"shard", func(ctx context.Context, s *pgstore.Store, fn func(context.Context, prebuilds.SnapshotReader) error) (bool, error) {
		return s.WithShardLock(ctx, prebuilds.Shard{Index: 2, Count: 3}, fn)
	}},
}

// TestLockReleasedOnCancel: a pass whose context is canceled under the lock
// releases the lock before WithReconciliationLock (WithShardLock) returns,
// on the healthy connection it was taken on, which goes back to the pool.
func TestLockReleasedOnCancel(t *testing.T) {
	t.Parallel()
	for _, lock := range lockKinds {
		t.Run(lock.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			pools := []*pgxpool.Pool{openPool(t, f.pool), openPool(t, f.pool)}
			stores := []*pgstore.Store{pgstore.New(pools[0]), pgstore.New(pools[1])}
			nop := func(context.Context, prebuilds.SnapshotReader) error { return nil }
			// The other replica's pool gets a connection now, so that its next try
			// is one round trip: a lock still held for a moment after the canceled
			// pass returned would not go unseen while a connection is opened.
			acquired, err := lock.with(context.Background(), stores[1], nop)
			require.NoError(t, err)
			require.True(t, acquired)

			ctx, cancel := context.WithCancel(context.Background())
			acquired, err = lock.with(ctx, stores[0], func(ctx context.Context, r prebuilds.SnapshotReader) error {
				cancel()
				_, err := r.Snapshot(ctx, prebuilds.SnapshotParams{Now: t0})
				return err
			})
			require.True(t, acquired)
			require.ErrorIs(t, err, context.Canceled)

			// The lock is free again, for another replica and for the same pool.
			for _, s := range []*pgstore.Store{stores[1], stores[0]} {
				acquired, err := lock.with(context.Background(), s, nop)
				require.NoError(t, err)
				require.True(t, acquired)
			}
			// The canceled pass neither closed its connection nor unlocked on the
			// canceled context (which fails, and drops the connection): the pool
			// has the one connection it ever opened.
			require.Equal(t, int64(1), pools[0].Stat().NewConnsCount(), "connections opened by the canceled replica's pool")
		})
	}
}

// TestLockReleasedWhenConnectionDrops: when the lock's connection breaks
// and the server has not noticed yet (its backend lives on, holding the
// lock), WithReconciliationLock (WithShardLock) asks the server on another
// connection and returns only once the backend is gone and the lock free.
func TestLockReleasedWhenConnectionDrops(t *testing.T) {
	t.Parallel()
	for _, lock := range lockKinds {
		t.Run(lock.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			proxy := newCutProxy(t, f.pool.Config().ConnConfig)
			cfg := f.pool.Config().Copy()
			cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Fallbacks = proxy.host, proxy.port, nil
			viaProxy, err := pgxpool.NewWithConfig(context.Background(), cfg)
			require.NoError(t, err)
			t.Cleanup(viaProxy.Close)
			broken, other := pgstore.New(viaProxy), pgstore.New(openPool(t, f.pool))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			type result struct {
				acquired bool
				err      error
			}
			done := make(chan result, 1)
			go func() {
				acquired, err := lock.with(ctx, broken, func(ctx context.Context, r prebuilds.SnapshotReader) error {
					proxy.cut()
					if _, err := r.Snapshot(ctx, prebuilds.SnapshotParams{Now: t0}); err == nil {
						return errors.New("snapshot read on a cut connection")
					}
					return nil
				})
				done <- result{acquired, err}
			}()
			var res result
			select {
			case <-proxy.dialedAfterCut:
				// The store connects again to check on the server: end the
				// backend behind the cut connection, as the server eventually
				// would, and the check sees the lock go.
				proxy.heal()
				res = <-done
			case res = <-done:
				// Returned without asking the server: the backend still holds
				// the lock, which the next acquirer finds below.
			}
			require.True(t, res.acquired)
			require.NoError(t, res.err, "the lock was released, through the end of its session")

			acquired, err := lock.with(ctx, other, func(context.Context, prebuilds.SnapshotReader) error { return nil })
			require.NoError(t, err)
			require.True(t, acquired, "the lock is free when the call returns")
		})
	}
}

// cutProxy forwards TCP connections to a PostgreSQL server. cut closes the
// client side of every connection then open but keeps its server side open,
// as a network failure the server has not noticed yet does: the backend
// lives on, holding its locks, until heal closes the server side too.
type cutProxy struct {
	ln         net.Listener
	target     string
	host       string
	port       uint16
	wg         sync.WaitGroup
	mu         sync.Mutex
	open       map[*proxyPair]bool
	closed     bool
	isCut      bool
	cutServers []net.Conn
	// dialedAfterCut is closed when a client opens a session (not a
	// cancel request) after cut.
	dialedAfterCut chan struct{}
	dialOnce       sync.Once
}

type proxyPair struct {
	client, server net.Conn
	cut            bool // the server side stays open when the pair ends
}

func newCutProxy(t testing.TB, target *pgx.ConnConfig) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().(*net.TCPAddr)
	p := &cutProxy{
		ln: ln, target: net.JoinHostPort(target.Host, strconv.Itoa(int(target.Port))),
		host: addr.IP.String(), port: uint16(addr.Port),
		open: map[*proxyPair]bool{}, dialedAfterCut: make(chan struct{}),
	}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.wg.Add(1)
		go p.serve(client)
	}
}

// cancelRequestCode opens a cancel request (a new connection that asks the
// server to cancel another one's query) in the PostgreSQL protocol.
const cancelRequestCode = 80877102

func (p *cutProxy) serve(client net.Conn) {
	defer p.wg.Done()
	// The first 8 bytes are a startup packet's length and code.
	head := make([]byte, 8)
	if _, err := io.ReadFull(client, head); err != nil {
		client.Close()
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	pair := &proxyPair{client: client, server: server}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	p.open[pair] = true
	if p.isCut && binary.BigEndian.Uint32(head[4:]) != cancelRequestCode {
		p.dialOnce.Do(func() { close(p.dialedAfterCut) })
	}
	p.mu.Unlock()
	if _, err := server.Write(head); err != nil {
		p.end(pair)
		return
	}
	var copies sync.WaitGroup
	copies.Add(2)
	go func() {
		defer copies.Done()
		_, _ = io.Copy(server, client)
		p.end(pair)
	}()
	go func() {
		defer copies.Done()
		_, _ = io.Copy(client, server)
		p.end(pair)
	}()
	copies.Wait()
}

// end closes both sides of pair, or only the client side of a cut pair.
func (p *cutProxy) end(pair *proxyPair) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.open, pair)
	pair.client.Close()
	if !pair.cut { // a cut pair's server side stays open until heal
		pair.server.Close()
	}
}

// cut breaks every open connection on the client side only.
func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isCut = true
	for pair := range p.open {
		pair.cut = true
		p.cutServers = append(p.cutServers, pair.server)
		// Stop forwarding in both directions: the client side is closed,
		// and reads from the server side fail at once from now on.
		_ = pair.server.SetReadDeadline(time.Unix(1, 0))
		pair.client.Close()
	}
}

// heal closes the server side of the cut connections: their backends see
// the connection end and exit.
func (p *cutProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.cutServers {
		c.Close()
	}
	p.cutServers = nil
}

func (p *cutProxy) close() {
	p.heal()
	p.mu.Lock()
	p.closed = true
	for pair := range p.open {
		pair.client.Close()
		pair.server.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
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
