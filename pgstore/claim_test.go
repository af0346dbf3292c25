package pgstore_test

import (
	"context"
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

// claimImpls are pgstore's claim and the claim it replaced (kept for the
// benchmark): both must give the same answers.
var claimImpls = []struct {
	name  string
	claim func(ctx context.Context, s *pgstore.Store, p prebuilds.ClaimParams) (prebuilds.Instance, error)
}{
	{"one-statement", func(ctx context.Context, s *pgstore.Store, p prebuilds.ClaimParams) (prebuilds.Instance, error) {
		return s.Claim(ctx, p)
	}},
	{"two-step", pgstore.ClaimTwoStep},
}

// TestClaimImplementations: oldest first (created_at, then ID), only
// claimable prebuilds of the preset's pool, a miss counted for an empty
// pool and an inactive preset, ErrNotFound for a missing preset.
func TestClaimImplementations(t *testing.T) {
	t.Parallel()
	for _, impl := range claimImpls {
		t.Run(impl.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			ctx := f.ctx
			claim := func(p uuid.UUID) (prebuilds.Instance, error) {
				return impl.claim(ctx, f.s, prebuilds.ClaimParams{PresetID: p, Owner: f.user, Now: t0})
			}
			preset, other := f.preset(ptr(5)), f.preset(ptr(1))
			c := f.prebuildID(id(3), uuid.New(), preset, t0, prebuilds.JobSucceeded)
			a := f.prebuildID(id(1), uuid.New(), preset, t0, prebuilds.JobSucceeded)
			older := f.prebuildID(id(9), uuid.New(), preset, t0.Add(-time.Microsecond), prebuilds.JobSucceeded)
			for _, inst := range []uuid.UUID{a, c, older} {
				require.NoError(t, f.s.SetReady(ctx, inst, true))
			}
			notReady := f.prebuild(preset, t0.Add(-time.Hour), prebuilds.JobSucceeded)
			moved := f.ready(preset, t0.Add(-time.Hour))
			f.build(moved, f.ver, other, prebuilds.TransitionStart, prebuilds.JobSucceeded, t0)
			deleting := f.ready(preset, t0.Add(-time.Hour))
			_, err := f.s.DeletePrebuild(ctx, prebuilds.DeletePrebuildParams{InstanceID: deleting, BuildID: uuid.New(), Now: t0})
			require.NoError(t, err)

			var order []uuid.UUID
			for range 3 {
				got, err := claim(preset)
				require.NoError(t, err)
				require.Equal(t, f.user, got.OwnerID)
				require.Equal(t, t0, got.ClaimedAt)
				order = append(order, got.ID)
			}
			require.Equal(t, []uuid.UUID{older, a, c}, order)
			_, err = claim(preset)
			require.ErrorIs(t, err, prebuilds.ErrNoClaimablePrebuild, "not ready, moved to another preset, being deleted")
			for _, inst := range []uuid.UUID{notReady, moved, deleting} {
				got, err := f.s.GetInstance(ctx, inst)
				require.NoError(t, err)
				require.Equal(t, prebuilds.SystemOwner, got.OwnerID)
			}
			got, err := claim(other)
			require.NoError(t, err)
			require.Equal(t, moved, got.ID, "the moved prebuild is in its new preset's pool")

			f.ready(preset, t0)
			require.NoError(t, f.s.SetTemplateDeprecated(ctx, f.tmpl, true))
			_, err = claim(preset)
			require.ErrorIs(t, err, prebuilds.ErrNoClaimablePrebuild, "inactive")
			_, err = claim(uuid.New())
			require.ErrorIs(t, err, prebuilds.ErrNotFound)
			require.NoError(t, f.s.SetTemplateDeprecated(ctx, f.tmpl, false))

			snap := f.snapshot(t0, 0)
			var misses int
			for _, cnt := range snap.Counters {
				if cnt.PresetID == preset {
					misses = cnt.ClaimsMissed
				}
			}
			require.Equal(t, 2, misses, "the empty pool and the inactive preset")
		})
	}
}

// queryCounter counts the queries sent on a pool's connections.
type queryCounter struct{ n atomic.Int64 }

func (c *queryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

func (c *queryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// TestClaimIsOneStatement: a claim, hit or miss, of an active or inactive
// preset, is one statement: one round trip once it is prepared.
func TestClaimIsOneStatement(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	preset := f.preset(ptr(2))
	f.ready(preset, t0)
	cfg := f.pool.Config().Copy()
	counter := &queryCounter{}
	cfg.ConnConfig.Tracer = counter
	pool, err := pgxpool.NewWithConfig(f.ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	s := pgstore.New(pool)
	for _, c := range []struct {
		name string
		want error
		prep func()
	}{
		{"hit", nil, func() {}},
		{"miss", prebuilds.ErrNoClaimablePrebuild, func() {}},
		{"inactive", prebuilds.ErrNoClaimablePrebuild, func() { require.NoError(t, f.s.SetTemplateDeprecated(f.ctx, f.tmpl, true)) }},
	} {
		c.prep()
		before := counter.n.Load()
		_, err := s.Claim(f.ctx, prebuilds.ClaimParams{PresetID: preset, Owner: f.user, Now: t0})
		require.ErrorIs(t, err, c.want, c.name)
		require.Equal(t, int64(1), counter.n.Load()-before, "%s: statements sent", c.name)
	}
}

// TestClaimRechecksLatestBuild: the claim statement re-checks the latest
// build of the candidate it locked with a snapshot taken after the lock: a
// build committed after the statement began (here a delete build of the
// oldest prebuild, committed while the claim holds its row) is seen, and
// the candidate is passed over for the next one.
//
// To hold the claim at that point, the test wraps prebuildkit_running in
// its own database: the wrapper's first call releases advisory lock 1001,
// which the claim's connection took before the claim (so the test, waiting
// for 1001, learns that the statement is re-checking its first candidate,
// whose row it must hold by then), then waits for lock 1002, which the test
// holds until the delete build has committed.
func TestClaimRechecksLatestBuild(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(f.ctx, time.Minute)
	defer cancel()
	preset := f.preset(ptr(2))
	oldest := f.ready(preset, t0)
	next := f.ready(preset, t0.Add(time.Second))
	_, err := f.pool.Exec(ctx, `
		ALTER FUNCTION prebuildkit_running(uuid) RENAME TO test_running;
		CREATE FUNCTION prebuildkit_running(instance uuid) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
		BEGIN
		    IF pg_advisory_unlock(1001) THEN
		        PERFORM pg_advisory_lock(1002);
		        PERFORM pg_advisory_unlock(1002);
		    END IF;
		    RETURN test_running(instance);
		END
		$$;`)
	require.NoError(t, err)

	cfg := f.pool.Config().Copy()
	cfg.MaxConns = 1
	claimPool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(claimPool.Close)
	_, err = claimPool.Exec(ctx, `SELECT pg_advisory_lock(1001)`)
	require.NoError(t, err)
	holder, err := f.pool.Acquire(ctx)
	require.NoError(t, err)
	defer holder.Release()
	_, err = holder.Exec(ctx, `SELECT pg_advisory_lock(1002)`)
	require.NoError(t, err)

	type result struct {
		inst prebuilds.Instance
		err  error
	}
	claimed := make(chan result, 1)
	go func() {
		inst, err := pgstore.New(claimPool).Claim(ctx, prebuilds.ClaimParams{PresetID: preset, Owner: f.user, Now: t0.Add(time.Minute)})
		claimed <- result{inst, err}
	}()
	waiter, err := f.pool.Acquire(ctx)
	require.NoError(t, err)
	defer waiter.Release()
	_, err = waiter.Exec(ctx, `SELECT pg_advisory_lock(1001)`) // the claim is re-checking its first candidate
	require.NoError(t, err)
	// The re-check runs after the lock: the claim holds the oldest's row.
	err = pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		var locked uuid.UUID
		return tx.QueryRow(ctx, `SELECT id FROM instances WHERE id = $1 FOR UPDATE SKIP LOCKED`, oldest).Scan(&locked)
	})
	require.ErrorIs(t, err, pgx.ErrNoRows, "the claim re-checks a candidate it has locked")
	_, err = f.pool.Exec(ctx, `
		INSERT INTO builds (id, instance_id, number, template_version_id, transition, job_status, created_at)
		VALUES ($1, $2, 2, $3, 'delete', 'pending', $4)`, uuid.New(), oldest, f.ver, t0.Add(time.Minute))
	require.NoError(t, err)
	_, err = holder.Exec(ctx, `SELECT pg_advisory_unlock(1002)`)
	require.NoError(t, err)

	res := <-claimed
	require.NoError(t, res.err)
	require.Equal(t, next, res.inst.ID, "the oldest, being deleted, is passed over")
	got, err := f.s.GetInstance(ctx, oldest)
	require.NoError(t, err)
	require.Equal(t, prebuilds.SystemOwner, got.OwnerID)
}
