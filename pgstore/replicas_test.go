package pgstore_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/internal/pgtest"
	"github.com/prebuildkit/prebuildkit/pgstore"
	"github.com/prebuildkit/prebuildkit/pgstore/pgstoretest"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// The multi-replica reliability test: several Reconcilers on one
// database, concurrent claimers, a provisioner that fails at random, and
// killed connections. Time is a shared quartz mock clock that only the test
// goroutine moves, between rounds; every pass is a direct ReconcileAll call.
//
// Faults, all drawn from one seeded generator (goroutine interleavings are
// of course not reproducible):
//   - a fault injector terminates the backends of one replica's pool
//     (selected by application_name), all of them or only the busy ones, at
//     points spread over the round;
//   - a "stale replica" fault: right after a replica read its snapshot under
//     the lock, the backend holding the advisory lock is terminated (which
//     releases the lock on the server), another replica runs a whole pass,
//     each preset's oldest prebuild is claimed, and only then does the first
//     replica go on, acting on its now stale snapshot without the lock. This
//     is what a dead lock connection does to a real deployment, made
//     deterministic so that the compare-and-set of the preset status and the
//     conditional delete are actually raced. It fires in a random third of
//     the rounds, and in most rounds whose snapshot calls for a status
//     transition;
//   - the provisioner fails start builds at random (one preset always), and
//     leaves some jobs running across rounds;
//   - an admin removes failed prebuilds (which lets hard-limited presets
//     recover) and changes a preset's desired count (extraneous deletes race
//     claims of the same oldest prebuilds).
//
// Ground truth for the invariants comes from triggers the test installs on
// its own database: every owner change of an instance and every status
// change of a preset is logged in commit order, whoever made it.
const (
	replicaSeed      = 20260302
	faultRounds      = 30
	maxCleanRounds   = 12
	replicaCount     = 3
	claimersPerRound = 3
	passesPerReplica = 2
	replicaHardLimit = 2
	replicaRoundStep = 10 * time.Second
	replicaTTL       = 25 * time.Second
	replicaPoolConns = 4
)

// replicaTriggersSQL logs, in the test's database only, every owner change of
// an instance and every status change of a preset.
const replicaTriggersSQL = `
CREATE TABLE test_owner_log (
    seq         bigserial PRIMARY KEY,
    instance_id uuid NOT NULL,
    old_owner   uuid NOT NULL,
    new_owner   uuid NOT NULL
);
CREATE FUNCTION test_log_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_owner_log (instance_id, old_owner, new_owner) VALUES (NEW.id, OLD.owner_id, NEW.owner_id);
    RETURN NULL;
END $$;
CREATE TRIGGER test_owner_log AFTER UPDATE OF owner_id ON instances
    FOR EACH ROW WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id) EXECUTE FUNCTION test_log_owner();

CREATE TABLE test_status_log (
    seq        bigserial PRIMARY KEY,
    preset_id  uuid NOT NULL,
    old_status preset_status NOT NULL,
    new_status preset_status NOT NULL
);
CREATE FUNCTION test_log_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_status_log (preset_id, old_status, new_status) VALUES (NEW.id, OLD.status, NEW.status);
    RETURN NULL;
END $$;
CREATE TRIGGER test_status_log AFTER UPDATE OF status ON presets
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION test_log_status();
`

// presetKind steers the provisioner's outcomes for a preset's start builds.
type presetKind int

const (
	kindSteady presetKind = iota // fails rarely
	kindFlaky                    // fails half the time
	kindBroken                   // always fails
)

type replicaPreset struct {
	id   uuid.UUID
	name string
	kind presetKind
	// preset is the preset as last written (the admin changes Desired);
	// guarded by replicaHarness.mu.
	preset prebuilds.Preset
}

type replica struct {
	name  string
	pool  *pgxpool.Pool
	store *pgstore.Store
	rec   *prebuilds.Reconciler
}

type claimOutcome struct {
	preset   uuid.UUID
	owner    uuid.UUID
	instance uuid.UUID // uuid.Nil unless the claim returned one
	// uncertain: the claim failed with an error other than
	// ErrNoClaimablePrebuild (a killed connection), so it may or may not
	// have committed.
	uncertain bool
}

type recordedEvent struct {
	replica int
	event   prebuilds.Event
}

// replicaHarness is the shared state of one TestReplicasUnderFaults run.
type replicaHarness struct {
	t        *testing.T
	ctx      context.Context
	clk      *quartz.Mock
	admin    *pgxpool.Pool  // inspections and kills; never killed
	cp       *pgstore.Store // provisioner and admin control plane; never killed
	replicas []*replica
	presets  []*replicaPreset
	rng      *rand.Rand // test goroutine only

	mu     sync.Mutex
	faults bool // fault phase (kills, failures, stale replicas)
	// staleArmed: the next snapshot read triggers the stale-replica fault;
	// staleUsed: it ran this round (at most once per round, and never from
	// within itself).
	staleArmed, staleUsed bool
	staleRng              *rand.Rand
	staleFaults           int
	kills                 int
	passes                []prebuilds.Stats
	passErrors            []error
	events                []recordedEvent
	claims                []claimOutcome
	unexpected            []error // errors from clients that are never killed
	// running holds the jobs the provisioner took (pending → running) and
	// has not finished yet.
	running map[uuid.UUID]prebuilds.Job
}

// TestReplicasUnderFaults runs unsharded (one cluster-wide lock) and with
// Config.Shards 3 (a lock per shard: replicas pass different shards at once,
// the stale-replica fault kills every shard lock held).
func TestReplicasUnderFaults(t *testing.T) {
	t.Parallel()
	for _, shards := range []int{1, 3} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			t.Parallel()
			testReplicasUnderFaults(t, shards)
		})
	}
}

func testReplicasUnderFaults(t *testing.T, shards int) {
	h := newReplicaHarness(t, shards)
	t.Logf("seed %d, %d replicas, %d shards, %d fault rounds", replicaSeed, replicaCount, shards, faultRounds)

	h.setFaults(true)
	for round := range faultRounds {
		h.faultRound(round)
		h.checkClaims()
		h.checkEvents()
		h.clk.Advance(replicaRoundStep).MustWait(h.ctx)
	}

	// Faults stop: no kills, no stale replicas, no claimers; the provisioner
	// always succeeds except for the broken preset; the admin removes every
	// failed prebuild once. The clock stays put so that no prebuild expires
	// while the pool settles. The replicas' pools drop the connections that
	// were killed while idle (a pool only notices on use).
	h.setFaults(false)
	for _, r := range h.replicas {
		r.pool.Reset()
	}
	h.removeFailed(uuid.Nil)
	var problems []string
	clean := 0
	for clean < maxCleanRounds {
		clean++
		h.cleanRound()
		if problems = h.convergence(); len(problems) == 0 {
			break
		}
	}
	require.Empty(t, problems, "not converged after %d clean rounds", clean)
	// Converged means stable: one more round of passes writes nothing.
	before := len(h.passStats())
	h.cleanRound()
	for _, s := range h.passStats()[before:] {
		require.Zero(t, s.Created+s.Deleted+s.Canceled+s.StatusChanges, "a converged pass wrote: %+v", s)
	}

	h.checkClaims()
	h.checkEvents()
	h.checkExercised()
	if shards > 1 {
		// Sharded passes were split: a full pass that held a lock made a
		// shard pass for each shard it got, more than one on the whole.
		acquired, shardPasses := 0, 0
		for _, s := range h.passStats() {
			if s.Acquired {
				acquired++
				shardPasses += s.ShardPasses
			}
		}
		require.Greater(t, shardPasses, acquired, "shard passes vs passes that held a lock")
	}
	t.Logf("converged after %d clean rounds", clean)
}

func newReplicaHarness(t *testing.T, shards int) *replicaHarness {
	t.Helper()
	// The test's own context: the replicas' connections die mid-query under
	// it (pg_terminate_backend) and goleak in TestMain checks that pgx
	// leaves no context watcher behind.
	ctx := t.Context()
	dsn := pgtest.NewDatabase(t, pgstoretest.New())
	admin := openNamedPool(t, dsn, "prebuildkit-test-admin", 4)
	_, err := admin.Exec(ctx, replicaTriggersSQL)
	require.NoError(t, err)

	clk := quartz.NewMock(t).WithLogger(quartz.NoOpLogger)
	clk.Set(t0).MustWait(ctx)
	h := &replicaHarness{
		t: t, ctx: ctx, clk: clk, admin: admin,
		cp:       pgstore.New(openNamedPool(t, dsn, "prebuildkit-test-provisioner", 4)),
		rng:      rand.New(rand.NewPCG(replicaSeed, 1)),
		staleRng: rand.New(rand.NewPCG(replicaSeed, 3)),
		running:  map[uuid.UUID]prebuilds.Job{},
	}
	for i := range replicaCount {
		name := fmt.Sprintf("prebuildkit-test-replica-%d", i)
		pool := openNamedPool(t, dsn, name, replicaPoolConns)
		store := pgstore.New(pool)
		r := &replica{name: name, pool: pool, store: store}
		r.rec = prebuilds.NewReconciler(&staleStore{Store: store, h: h, self: i}, prebuilds.Config{
			Clock:            clk,
			Shards:           shards,
			FailureHardLimit: replicaHardLimit,
			BackoffInterval:  time.Second,
			MaxConcurrency:   4,
			Logger:           slog.New(slog.DiscardHandler),
			Notifier: prebuilds.NotifierFunc(func(_ context.Context, e prebuilds.Event) {
				h.mu.Lock()
				h.events = append(h.events, recordedEvent{replica: i, event: e})
				h.mu.Unlock()
			}),
		})
		h.replicas = append(h.replicas, r)
	}
	h.seed()
	return h
}

// openNamedPool opens a pool on dsn whose connections carry
// application_name, so that the fault injector can find them.
func openNamedPool(t *testing.T, dsn, name string, conns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dsn)
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["application_name"] = name
	cfg.MaxConns = conns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// seed writes two templates with four presets: two steady ones (one with a
// TTL, so prebuilds expire and get deleted), a flaky one and a broken one.
func (h *replicaHarness) seed() {
	h.t.Helper()
	org := uuid.New()
	specs := []struct {
		tmpl    int
		name    string
		kind    presetKind
		desired int
		ttl     time.Duration
	}{
		{0, "steady", kindSteady, 5, 0},
		{0, "expiring", kindSteady, 4, replicaTTL},
		{1, "flaky", kindFlaky, 3, 0},
		{1, "broken", kindBroken, 3, 0},
	}
	versions := make([]uuid.UUID, 2)
	for i := range versions {
		// Template i is in shard i of any count above 1 (prebuilds.ShardOf
		// reads the ID's first four bytes), so that with Shards 3 the two
		// templates' presets are reconciled under different locks.
		tmpl, ver := uuid.New(), uuid.New()
		binary.BigEndian.PutUint32(tmpl[:4], uint32(i))
		require.NoError(h.t, h.cp.CreateTemplate(h.ctx, prebuilds.Template{
			ID: tmpl, OrganizationID: org, OrganizationName: "org", Name: fmt.Sprintf("tmpl-%d", i),
		}))
		require.NoError(h.t, h.cp.CreateTemplateVersion(h.ctx, prebuilds.TemplateVersion{ID: ver, TemplateID: tmpl, Name: "v1", CreatedAt: t0}))
		require.NoError(h.t, h.cp.SetActiveVersion(h.ctx, tmpl, ver))
		versions[i] = ver
	}
	for _, s := range specs {
		p := prebuilds.Preset{
			ID: uuid.New(), TemplateVersionID: versions[s.tmpl], Name: s.name, Desired: ptr(s.desired), TTL: s.ttl,
			Parameters: map[string]string{"preset": s.name},
		}
		require.NoError(h.t, h.cp.UpsertPreset(h.ctx, p))
		h.presets = append(h.presets, &replicaPreset{id: p.ID, name: s.name, kind: s.kind, preset: p})
	}
}

func (h *replicaHarness) setFaults(on bool) {
	h.mu.Lock()
	h.faults = on
	h.staleArmed = false
	h.mu.Unlock()
}

// faultRound runs every actor of one round concurrently: each replica
// reconciles passesPerReplica times, the provisioner works the queue,
// claimers claim, the admin meddles and the injector kills connections.
func (h *replicaHarness) faultRound(round int) {
	h.t.Helper()
	h.mu.Lock()
	h.staleArmed = h.rng.IntN(3) == 0
	h.staleUsed = false
	h.mu.Unlock()

	// Each actor gets its own generator, seeded from the test's.
	rngs := make([]*rand.Rand, claimersPerRound+3)
	for i := range rngs {
		rngs[i] = rand.New(rand.NewPCG(h.rng.Uint64(), uint64(round)))
	}
	progress := make(chan struct{}, 1)
	tick := func() {
		select {
		case progress <- struct{}{}:
		default:
		}
	}

	var workers sync.WaitGroup
	for _, r := range h.replicas {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for range passesPerReplica {
				h.recordPass(r.rec.ReconcileAll(h.ctx))
				tick()
			}
		}()
	}
	workers.Add(1)
	go func() {
		defer workers.Done()
		h.provision(rngs[0], tick)
	}()
	workers.Add(1)
	go func() {
		defer workers.Done()
		h.meddle(rngs[1])
	}()
	for c := range claimersPerRound {
		workers.Add(1)
		go func() {
			defer workers.Done()
			h.claimSome(rngs[3+c], c, tick)
		}()
	}
	done := make(chan struct{})
	injected := make(chan struct{})
	go func() {
		defer close(injected)
		h.inject(rngs[2], progress, done)
	}()
	workers.Wait()
	close(done)
	<-injected
}

// cleanRound runs every replica's passes concurrently, then finishes every
// job. No faults.
func (h *replicaHarness) cleanRound() {
	h.t.Helper()
	var wg sync.WaitGroup
	for _, r := range h.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.recordPass(r.rec.ReconcileAll(h.ctx))
		}()
	}
	wg.Wait()
	h.provision(rand.New(rand.NewPCG(replicaSeed, 2)), func() {})
	h.mu.Lock()
	unexpected := slices.Clone(h.unexpected)
	h.mu.Unlock()
	require.Empty(h.t, unexpected)
}

func (h *replicaHarness) recordPass(s prebuilds.Stats, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		h.passErrors = append(h.passErrors, err)
		if !h.faults {
			h.unexpected = append(h.unexpected, fmt.Errorf("pass without faults: %w", err))
		}
		return
	}
	if s.Acquired {
		h.passes = append(h.passes, s)
		if !h.faults && s.PresetErrors > 0 {
			h.unexpected = append(h.unexpected, fmt.Errorf("pass without faults had %d preset errors", s.PresetErrors))
		}
	}
}

func (h *replicaHarness) passStats() []prebuilds.Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.passes)
}

func (h *replicaHarness) unexpectedErr(err error) {
	h.mu.Lock()
	h.unexpected = append(h.unexpected, err)
	h.mu.Unlock()
}

func (h *replicaHarness) faulty() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.faults
}

// provision polls the store (ControlPlane.PendingJobs), takes every pending
// job (pending → running) and finishes the jobs it holds: start builds fail at the preset kind's rate (during faults)
// and are marked ready when they succeed; during faults some jobs stay
// running until a later round.
func (h *replicaHarness) provision(rng *rand.Rand, tick func()) {
	faults := h.faulty()
	jobs, err := h.cp.PendingJobs(h.ctx, prebuilds.PendingJobsParams{Limit: prebuilds.MaxPendingJobsLimit})
	if err != nil {
		h.unexpectedErr(fmt.Errorf("provisioner: list pending jobs: %w", err))
		return
	}
	now := h.clk.Now()
	for _, j := range jobs {
		_, err := h.cp.UpdateJob(h.ctx, prebuilds.UpdateJobParams{BuildID: j.BuildID, Status: prebuilds.JobRunning, Now: now})
		if err != nil {
			h.unexpectedErr(fmt.Errorf("provisioner: take job %s: %w", j.BuildID, err))
			continue
		}
		h.mu.Lock()
		h.running[j.BuildID] = j
		h.mu.Unlock()
	}
	h.mu.Lock()
	held := make([]prebuilds.Job, 0, len(h.running))
	for _, j := range h.running {
		held = append(held, j)
	}
	h.mu.Unlock()
	slices.SortFunc(held, func(a, b prebuilds.Job) int { return prebuilds.CompareUUID(a.BuildID, b.BuildID) })
	for _, j := range held {
		if faults && rng.IntN(5) == 0 {
			continue // still running next round
		}
		status := prebuilds.JobSucceeded
		if h.fails(rng, j, faults) {
			status = prebuilds.JobFailed
		}
		p := prebuilds.UpdateJobParams{BuildID: j.BuildID, Status: status, Now: now}
		if status == prebuilds.JobFailed {
			p.FailureKind = prebuilds.FailureTransient
		}
		if _, err := h.cp.UpdateJob(h.ctx, p); err != nil {
			h.unexpectedErr(fmt.Errorf("provisioner: finish job %s: %w", j.BuildID, err))
			continue
		}
		h.mu.Lock()
		delete(h.running, j.BuildID)
		h.mu.Unlock()
		if status == prebuilds.JobSucceeded && j.Transition == prebuilds.TransitionStart {
			if err := h.cp.SetReady(h.ctx, j.InstanceID, true); err != nil {
				h.unexpectedErr(fmt.Errorf("provisioner: ready %s: %w", j.InstanceID, err))
			}
		}
		tick()
	}
}

func (h *replicaHarness) fails(rng *rand.Rand, j prebuilds.Job, faults bool) bool {
	if j.Transition != prebuilds.TransitionStart {
		return faults && rng.IntN(10) == 0
	}
	for _, p := range h.presets {
		if p.id != j.PresetID {
			continue
		}
		switch p.kind {
		case kindBroken:
			return true
		case kindFlaky:
			return faults && rng.IntN(2) == 0
		default:
			return faults && rng.IntN(10) == 0
		}
	}
	return false
}

// meddle is the admin during faults: it removes failed prebuilds (so that a
// hard-limited preset recovers) and changes the steady preset's desired
// count (so that extraneous prebuilds are deleted while claimers take them).
func (h *replicaHarness) meddle(rng *rand.Rand) {
	if rng.IntN(3) == 0 {
		target := h.presets[rng.IntN(len(h.presets))].id
		h.removeFailedErr(target)
	}
	if rng.IntN(5) == 0 {
		p := h.presets[0]
		h.mu.Lock()
		next := p.preset
		next.Desired = ptr(3 + rng.IntN(4))
		p.preset = next
		h.mu.Unlock()
		if err := h.cp.UpsertPreset(h.ctx, next); err != nil {
			h.unexpectedErr(fmt.Errorf("admin: set desired: %w", err))
		}
	}
}

// removeFailed removes every failed prebuild (latest build a failed start)
// of preset, or of every preset when preset is uuid.Nil.
func (h *replicaHarness) removeFailed(preset uuid.UUID) {
	h.t.Helper()
	h.removeFailedErr(preset)
	h.mu.Lock()
	unexpected := slices.Clone(h.unexpected)
	h.mu.Unlock()
	require.Empty(h.t, unexpected)
}

func (h *replicaHarness) removeFailedErr(preset uuid.UUID) {
	rows, err := h.admin.Query(h.ctx, `
		SELECT i.id FROM instances i
		JOIN LATERAL (SELECT b.transition, b.job_status, b.preset_id FROM builds b
		              WHERE b.instance_id = i.id ORDER BY b.number DESC LIMIT 1) l ON true
		WHERE i.owner_id = $1 AND NOT i.deleted AND l.transition = 'start' AND l.job_status = 'failed'
		  AND ($2::uuid IS NULL OR l.preset_id = $2::uuid)
		ORDER BY i.id`, prebuilds.SystemOwner, nullID(preset))
	if err != nil {
		h.unexpectedErr(fmt.Errorf("admin: list failed: %w", err))
		return
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		h.unexpectedErr(fmt.Errorf("admin: list failed: %w", err))
		return
	}
	for _, id := range ids {
		if err := h.cp.RemoveInstance(h.ctx, id); err != nil {
			h.unexpectedErr(fmt.Errorf("admin: remove %s: %w", id, err))
		}
	}
}

func nullID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

// claimSome makes two claims through one replica's store (claims are
// served by the replicas, so their connections get killed too), each with a
// fresh owner.
func (h *replicaHarness) claimSome(rng *rand.Rand, c int, tick func()) {
	store := h.replicas[c%len(h.replicas)].store
	for range 2 {
		p := h.presets[rng.IntN(3)].id // not the broken one: it never has any
		owner := uuid.New()
		inst, err := store.Claim(h.ctx, prebuilds.ClaimParams{PresetID: p, Owner: owner, Now: h.clk.Now()})
		out := claimOutcome{preset: p, owner: owner}
		switch {
		case err == nil:
			out.instance = inst.ID
			if inst.OwnerID != owner {
				h.unexpectedErr(fmt.Errorf("claim by %s returned instance %s owned by %s", owner, inst.ID, inst.OwnerID))
			}
		case errors.Is(err, prebuilds.ErrNoClaimablePrebuild):
		default:
			out.uncertain = true
		}
		h.mu.Lock()
		h.claims = append(h.claims, out)
		h.mu.Unlock()
		tick()
	}
}

// inject kills connections of a random replica's pool 0–3 times in the
// round, each after some other actor made progress.
func (h *replicaHarness) inject(rng *rand.Rand, progress <-chan struct{}, done <-chan struct{}) {
	n := rng.IntN(4)
	for range n {
		// Let a few operations pass first so the kills land at different
		// points of the round.
		for range 1 + rng.IntN(4) {
			select {
			case <-progress:
			case <-done:
				return
			}
		}
		name := h.replicas[rng.IntN(len(h.replicas))].name
		onlyBusy := rng.IntN(2) == 0
		var killed int
		err := h.admin.QueryRow(h.ctx, `
			SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
			FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1 AND (NOT $2 OR state <> 'idle')`,
			name, onlyBusy).Scan(&killed)
		if err != nil {
			h.unexpectedErr(fmt.Errorf("injector: kill %s: %w", name, err))
			return
		}
		h.mu.Lock()
		h.kills += killed
		h.mu.Unlock()
	}
}

// staleStore is a replica's store with the stale-replica fault: when armed,
// the first snapshot read under the lock is followed by the termination of
// the lock holder's backend, a whole pass of the next replica and a claim
// from each preset, before the snapshot is returned to its (now lock-less)
// reader.
type staleStore struct {
	*pgstore.Store
	h    *replicaHarness
	self int
}

func (s *staleStore) WithReconciliationLock(ctx context.Context, fn func(context.Context, prebuilds.SnapshotReader) error) (bool, error) {
	return s.Store.WithReconciliationLock(ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
		return fn(ctx, staleReader{r: r, s: s})
	})
}

func (s *staleStore) WithShardLock(ctx context.Context, shard prebuilds.Shard, fn func(context.Context, prebuilds.SnapshotReader) error) (bool, error) {
	return s.Store.WithShardLock(ctx, shard, func(ctx context.Context, r prebuilds.SnapshotReader) error {
		return fn(ctx, staleReader{r: r, s: s})
	})
}

type staleReader struct {
	r prebuilds.SnapshotReader
	s *staleStore
}

func (sr staleReader) Snapshot(ctx context.Context, p prebuilds.SnapshotParams) (*prebuilds.GlobalSnapshot, error) {
	snap, err := sr.r.Snapshot(ctx, p)
	if err != nil {
		return snap, err
	}
	h := sr.s.h
	// The fault fires when armed, and otherwise most of the time when the
	// snapshot calls for a status transition: then the other replica makes
	// the transition and this one must not make it again.
	pending := false
	for _, v := range snap.Index() {
		if v.HardLimited != (v.Preset.Status == prebuilds.PresetHardLimited) {
			pending = true
		}
	}
	h.mu.Lock()
	fire := h.faults && !h.staleUsed && (h.staleArmed || (pending && h.staleRng.IntN(4) != 0))
	if fire {
		h.staleUsed = true
	}
	h.mu.Unlock()
	if !fire {
		return snap, nil
	}
	// pg_terminate_backend with a timeout waits until the backend is gone,
	// and with it its session advisory lock.
	var killed int
	if err := h.admin.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE pg_terminate_backend(l.pid, 10000))
		FROM pg_locks l
		WHERE l.locktype = 'advisory' AND l.granted
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed); err != nil {
		h.unexpectedErr(fmt.Errorf("stale fault: kill lock holder: %w", err))
		return snap, nil
	}
	other := h.replicas[(sr.s.self+1)%len(h.replicas)]
	stats, err := other.rec.ReconcileAll(ctx)
	h.recordPass(stats, err)
	// Claim the oldest claimable prebuild of each preset: the ones the stale
	// snapshot's extraneous deletes pick first.
	for _, p := range h.presets[:3] {
		owner := uuid.New()
		inst, err := h.cp.Claim(ctx, prebuilds.ClaimParams{PresetID: p.id, Owner: owner, Now: snap.Now})
		out := claimOutcome{preset: p.id, owner: owner, instance: inst.ID}
		if err != nil && !errors.Is(err, prebuilds.ErrNoClaimablePrebuild) {
			h.unexpectedErr(fmt.Errorf("stale fault: claim: %w", err))
		}
		h.mu.Lock()
		h.claims = append(h.claims, out)
		h.mu.Unlock()
	}
	h.mu.Lock()
	h.kills += killed
	if stats.Acquired {
		h.staleFaults++
	}
	h.mu.Unlock()
	return snap, nil
}

// checkClaims checks, against the database, that no instance was claimed
// twice and that no claimed instance was deleted.
func (h *replicaHarness) checkClaims() {
	t := h.t
	t.Helper()
	h.mu.Lock()
	claims := slices.Clone(h.claims)
	unexpected := slices.Clone(h.unexpected)
	h.mu.Unlock()
	require.Empty(t, unexpected)

	// Every successful claim returned a distinct instance, now owned by its
	// claimant.
	byInstance := map[uuid.UUID]claimOutcome{}
	owners := map[uuid.UUID]bool{}
	for _, c := range claims {
		owners[c.owner] = true
		if c.instance == uuid.Nil {
			continue
		}
		prev, dup := byInstance[c.instance]
		require.False(t, dup, "instance %s claimed twice: by %s and by %s", c.instance, prev.owner, c.owner)
		byInstance[c.instance] = c
	}
	for id, c := range byInstance {
		inst, err := h.cp.GetInstance(h.ctx, id)
		require.NoError(t, err)
		require.Equal(t, c.owner, inst.OwnerID, "claimed instance %s: owner is not its claimant", id)
		require.False(t, inst.ClaimedAt.IsZero(), "claimed instance %s has no claimed_at", id)
	}

	// Every ownership change in the database took a prebuild from
	// SystemOwner to one of the claimers, at most once per instance.
	rows, err := h.admin.Query(h.ctx, `SELECT instance_id, old_owner, new_owner FROM test_owner_log ORDER BY seq`)
	require.NoError(t, err)
	type change struct{ inst, from, to uuid.UUID }
	changes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (change, error) {
		var c change
		err := row.Scan(&c.inst, &c.from, &c.to)
		return c, err
	})
	require.NoError(t, err)
	seen := map[uuid.UUID]bool{}
	for _, c := range changes {
		require.Equal(t, prebuilds.SystemOwner, c.from, "instance %s changed owner from %s to %s: claimed twice", c.inst, c.from, c.to)
		require.False(t, seen[c.inst], "instance %s changed owner twice", c.inst)
		seen[c.inst] = true
		require.True(t, owners[c.to], "instance %s went to %s, who never claimed", c.inst, c.to)
	}
	for id := range byInstance {
		require.True(t, seen[id], "claim of %s left no owner change", id)
	}

	// No claimed instance got a delete build or was deleted (the test
	// issues no deletes of its own; the admin removes failed prebuilds
	// only).
	var bad []uuid.UUID
	rows, err = h.admin.Query(h.ctx, `
		SELECT i.id FROM instances i
		WHERE i.owner_id <> $1
		  AND (i.deleted OR EXISTS (SELECT 1 FROM builds b WHERE b.instance_id = i.id AND b.transition = 'delete'))
		ORDER BY i.id`, prebuilds.SystemOwner)
	require.NoError(t, err)
	bad, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	require.NoError(t, err)
	require.Empty(t, bad, "claimed instances deleted or given a delete build")
}

// checkEvents compares, per preset, the hard-limit events of all replicas
// with the status transitions the database logged: one event per
// transition, in the same order, and the stored status agrees with the last
// event.
//
// A connection killed after the status compare-and-set committed but before
// its reply arrived would lose the event (the replica sees an error, not
// changed = true); that window is a few microseconds and this check would
// report it as a missing event.
func (h *replicaHarness) checkEvents() {
	t := h.t
	t.Helper()
	h.mu.Lock()
	events := slices.Clone(h.events)
	h.mu.Unlock()

	got := map[uuid.UUID][]prebuilds.EventKind{}
	for _, e := range events {
		switch e.event.Kind {
		case prebuilds.EventHardLimited, prebuilds.EventRecovered:
			got[e.event.PresetID] = append(got[e.event.PresetID], e.event.Kind)
		default:
			t.Fatalf("unexpected event %+v from replica %d", e.event, e.replica)
		}
	}
	rows, err := h.admin.Query(h.ctx, `SELECT preset_id, old_status, new_status FROM test_status_log ORDER BY seq`)
	require.NoError(t, err)
	type change struct {
		preset   uuid.UUID
		from, to string
	}
	changes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (change, error) {
		var c change
		err := row.Scan(&c.preset, &c.from, &c.to)
		return c, err
	})
	require.NoError(t, err)
	want := map[uuid.UUID][]prebuilds.EventKind{}
	for _, c := range changes {
		switch {
		case c.from == string(prebuilds.PresetHealthy) && c.to == string(prebuilds.PresetHardLimited):
			want[c.preset] = append(want[c.preset], prebuilds.EventHardLimited)
		case c.from == string(prebuilds.PresetHardLimited) && c.to == string(prebuilds.PresetHealthy):
			want[c.preset] = append(want[c.preset], prebuilds.EventRecovered)
		default:
			t.Fatalf("preset %s: unexpected status transition %s → %s", c.preset, c.from, c.to)
		}
	}
	for _, p := range h.presets {
		id := p.id
		require.Equal(t, want[id], got[id], "preset %s: events (got) must match the stored status transitions (want), one each", p.name)
		for i := 1; i < len(got[id]); i++ {
			require.NotEqual(t, got[id][i-1], got[id][i], "preset %s: two %s events in a row", p.name, got[id][i])
		}
		stored, err := h.cp.GetPreset(h.ctx, id)
		require.NoError(t, err)
		wantStatus := prebuilds.PresetHealthy
		if n := len(got[id]); n > 0 && got[id][n-1] == prebuilds.EventHardLimited {
			wantStatus = prebuilds.PresetHardLimited
		}
		require.Equal(t, wantStatus, stored.Status, "preset %s: stored status disagrees with its last event", p.name)
	}
}

// convergence lists what keeps the pool from its desired state: every
// healthy preset has exactly its desired count running and ready, nothing in
// progress and an empty plan; the broken preset is hard-limited with
// nothing running and a plan that is only Blocked(HardLimited).
func (h *replicaHarness) convergence() []string {
	h.t.Helper()
	pp, err := h.replicas[0].rec.Plan(h.ctx)
	require.NoError(h.t, err)
	views := map[uuid.UUID]prebuilds.PresetSnapshot{}
	plans := map[uuid.UUID]prebuilds.Plan{}
	for i, v := range pp.Views {
		views[v.Preset.ID] = v
		plans[v.Preset.ID] = pp.Plans[i]
	}
	var problems []string
	for _, p := range h.presets {
		v, ok := views[p.id]
		if !ok {
			problems = append(problems, p.name+": not in the snapshot")
			continue
		}
		plan := plans[p.id]
		if p.kind == kindBroken {
			if v.Preset.Status != prebuilds.PresetHardLimited || len(v.Running) != 0 ||
				len(plan.Actions) != 1 || plan.Actions[0].Kind != prebuilds.ActionBlocked {
				problems = append(problems, fmt.Sprintf("%s: status %s, %d running, plan %+v", p.name, v.Preset.Status, len(v.Running), plan.Actions))
			}
			continue
		}
		h.mu.Lock()
		desired := *p.preset.Desired
		h.mu.Unlock()
		ready := 0
		for _, r := range v.Running {
			if r.Ready {
				ready++
			}
		}
		if v.Preset.Status != prebuilds.PresetHealthy || len(v.Running) != desired || ready != desired ||
			v.Starting+v.Stopping+v.Deleting != 0 || !plan.Empty() {
			problems = append(problems, fmt.Sprintf("%s: status %s, desired %d, running %d (ready %d), in progress %d, plan %+v",
				p.name, v.Preset.Status, desired, len(v.Running), ready, v.Starting+v.Stopping+v.Deleting, plan.Actions))
		}
	}
	return problems
}

// checkExercised makes sure the faults and transitions the invariants are
// about actually happened, so that a passing run means something.
func (h *replicaHarness) checkExercised() {
	t := h.t
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var hardLimited, recovered, claimed, uncertain int
	for _, e := range h.events {
		switch e.event.Kind {
		case prebuilds.EventHardLimited:
			hardLimited++
		case prebuilds.EventRecovered:
			recovered++
		}
	}
	for _, c := range h.claims {
		if c.instance != uuid.Nil {
			claimed++
		}
		if c.uncertain {
			uncertain++
		}
	}
	var created, deleted, conflicts int
	for _, s := range h.passes {
		created += s.Created
		deleted += s.Deleted
		conflicts += s.Conflicts
	}
	t.Logf("passes %d (failed %d), created %d, deleted %d, delete conflicts %d; kills %d, stale replicas %d; "+
		"claims %d ok, %d uncertain of %d; events: %d hard_limited, %d recovered",
		len(h.passes), len(h.passErrors), created, deleted, conflicts, h.kills, h.staleFaults,
		claimed, uncertain, len(h.claims), hardLimited, recovered)
	require.Positive(t, h.kills, "no connection was killed")
	require.Positive(t, h.staleFaults, "no stale-replica fault ran")
	require.Positive(t, claimed, "nothing was claimed")
	require.Positive(t, deleted, "nothing was deleted")
	require.Positive(t, hardLimited, "no preset was hard-limited")
	require.Positive(t, recovered, "no preset recovered")
}
