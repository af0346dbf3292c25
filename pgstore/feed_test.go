package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/internal/pgtest"
	"github.com/prebuildkit/prebuildkit/pgstore"
	"github.com/prebuildkit/prebuildkit/pgstore/pgstoretest"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// feedWait bounds every wait of the change feed tests.
const feedWait = 60 * time.Second

// nextChange receives the next change, failing the test after feedWait.
func nextChange(t *testing.T, ch <-chan prebuilds.Change) prebuilds.Change {
	t.Helper()
	select {
	case c, ok := <-ch:
		require.True(t, ok, "the feed closed")
		return c
	case <-time.After(feedWait):
		t.Fatal("no change delivered")
		return prebuilds.Change{}
	}
}

// nextChanges receives the next n changes, in any order.
func nextChanges(t *testing.T, ch <-chan prebuilds.Change, n int) []prebuilds.Change {
	t.Helper()
	out := make([]prebuilds.Change, n)
	for i := range out {
		out[i] = nextChange(t, ch)
	}
	return out
}

// TestChangeFeedDeliversChanges: every control-plane write that may change
// a plan notifies, after it commits, the presets it concerns; the
// Reconciler's writes and failed writes notify nothing; a template-level
// write names every configured preset of the template, or is one resync
// when there are more than 1,000; resuming is a resync; a payload pgstore
// does not write is a resync; the channel closes with its context.
func TestChangeFeedDeliversChanges(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	p1, p2 := f.preset(ptr(1)), f.preset(ptr(1))
	v2 := f.version()
	p3 := f.presetOn(v2, ptr(1))
	unconfigured := f.presetOn(v2, nil)
	ready := f.ready(p1, t0)

	ch, err := f.s.Changes(ctx)
	require.NoError(t, err)
	change := func(p uuid.UUID, k prebuilds.ChangeKind) prebuilds.Change {
		return prebuilds.Change{PresetID: p, Kind: k}
	}
	// marker makes a write whose change must be the next one delivered:
	// nothing was notified in between.
	marker := func(what string) {
		t.Helper()
		require.NoError(t, f.s.ResetPreset(ctx, p2, t0))
		require.Equal(t, change(p2, prebuilds.ChangePresetWritten), nextChange(t, ch), "%s notified nothing", what)
	}

	// Preset writes.
	require.NoError(t, f.s.UpsertPreset(ctx, prebuilds.Preset{ID: p1, TemplateVersionID: f.ver, Name: "p-" + p1.String(), Desired: ptr(2)}))
	require.Equal(t, change(p1, prebuilds.ChangePresetWritten), nextChange(t, ch))
	require.NoError(t, f.s.InvalidatePreset(ctx, p1, t0.Add(-time.Hour)))
	require.Equal(t, change(p1, prebuilds.ChangePresetWritten), nextChange(t, ch))
	require.NoError(t, f.s.ResetPreset(ctx, p1, t0))
	require.Equal(t, change(p1, prebuilds.ChangePresetWritten), nextChange(t, ch))

	// Claims, hit and miss; a claim of a missing preset fails and is no
	// change.
	_, err = f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: p1, Owner: f.user, Now: t0})
	require.NoError(t, err)
	require.Equal(t, change(p1, prebuilds.ChangeClaimed), nextChange(t, ch))
	_, err = f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: p1, Owner: f.user, Now: t0})
	require.ErrorIs(t, err, prebuilds.ErrNoClaimablePrebuild)
	require.Equal(t, change(p1, prebuilds.ChangeClaimed), nextChange(t, ch))
	_, err = f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: uuid.New(), Owner: f.user, Now: t0})
	require.ErrorIs(t, err, prebuilds.ErrNotFound)
	marker("a claim of a missing preset")

	// The Reconciler's own writes, a job that is not terminal, SetReady and
	// failed writes are no changes.
	pending := f.prebuild(p2, t0, prebuilds.JobPending) // CreatePrebuilds only
	pendingBuild := f.latestBuildID(pending)
	_, err = f.s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: pendingBuild, Status: prebuilds.JobRunning, Now: t0})
	require.NoError(t, err)
	require.NoError(t, f.s.FailStuckBuild(ctx, prebuilds.FailStuckBuildParams{BuildID: pendingBuild, StuckBefore: t0.Add(time.Hour), Now: t0}))
	running := f.prebuild(p2, t0, prebuilds.JobSucceeded)
	require.Equal(t, change(p2, prebuilds.ChangeJobCompleted), nextChange(t, ch), "its job succeeded")
	require.NoError(t, f.s.SetReady(ctx, running, true))
	f.prebuild(p3, t0, prebuilds.JobPending) // for CancelPending: p3's version is not active
	_, err = f.s.DeletePrebuild(ctx, prebuilds.DeletePrebuildParams{InstanceID: running, BuildID: uuid.New(), Now: t0})
	require.NoError(t, err)
	canceled, err := f.s.CancelPending(ctx, prebuilds.CancelPendingParams{PresetID: p3, Now: t0})
	require.NoError(t, err)
	require.Len(t, canceled, 1)
	_, err = f.s.SetPresetStatus(ctx, p1, prebuilds.PresetHealthy, prebuilds.PresetHardLimited)
	require.NoError(t, err)
	require.ErrorIs(t, f.s.InvalidatePreset(ctx, uuid.New(), t0), prebuilds.ErrNotFound)
	require.ErrorIs(t, f.s.DeleteTemplate(ctx, uuid.New()), prebuilds.ErrNotFound)
	require.ErrorIs(t, f.s.RemoveInstance(ctx, uuid.New()), prebuilds.ErrNotFound)
	marker("the Reconciler's writes (creates, a stuck build failed, a delete, a cancel, a status change), a running job, SetReady, failed writes")

	// The control plane's builds: a user's instance created with p2, its
	// job completing, a start moving it to p1 (both pools change), its
	// removal. The prebuild whose first build counts for p2 notifies p2
	// even after it moved.
	user := uuid.New()
	b1 := uuid.New()
	require.NoError(t, f.s.CreateInstance(ctx, prebuilds.CreateInstanceParams{
		InstanceID: user, BuildID: b1, OwnerID: f.user, TemplateID: f.tmpl, TemplateVersionID: f.ver, PresetID: p2,
		Transition: prebuilds.TransitionStart, Now: t0,
	}))
	require.Equal(t, change(p2, prebuilds.ChangeBuildStarted), nextChange(t, ch))
	f.job(b1, prebuilds.JobSucceeded, t0)
	require.Equal(t, change(p2, prebuilds.ChangeJobCompleted), nextChange(t, ch))
	f.build(user, f.ver, p1, prebuilds.TransitionStart, prebuilds.JobPending, t0)
	require.ElementsMatch(t, []prebuilds.Change{change(p1, prebuilds.ChangeBuildStarted), change(p2, prebuilds.ChangeBuildStarted)},
		nextChanges(t, ch, 2), "a start with another preset changes both pools")
	require.NoError(t, f.s.RemoveInstance(ctx, user))
	require.Equal(t, change(p1, prebuilds.ChangeInstanceRemoved), nextChange(t, ch))
	moved := f.prebuild(p2, t0, prebuilds.JobSucceeded)
	require.Equal(t, change(p2, prebuilds.ChangeJobCompleted), nextChange(t, ch))
	f.build(moved, f.ver, p1, prebuilds.TransitionStart, prebuilds.JobPending, t0)
	require.ElementsMatch(t, []prebuilds.Change{change(p1, prebuilds.ChangeBuildStarted), change(p2, prebuilds.ChangeBuildStarted)}, nextChanges(t, ch, 2))
	require.NoError(t, f.s.RemoveInstance(ctx, moved))
	require.ElementsMatch(t, []prebuilds.Change{change(p1, prebuilds.ChangeInstanceRemoved), change(p2, prebuilds.ChangeInstanceRemoved)},
		nextChanges(t, ch, 2), "the pool and the preset its first build counts for")

	// Template-level writes name every configured preset of the template.
	all := []prebuilds.Change{change(p1, prebuilds.ChangePresetWritten), change(p2, prebuilds.ChangePresetWritten), change(p3, prebuilds.ChangePresetWritten)}
	require.NoError(t, f.s.SetTemplateDeprecated(ctx, f.tmpl, true))
	require.ElementsMatch(t, all, nextChanges(t, ch, 3))
	require.NoError(t, f.s.SetActiveVersion(ctx, f.tmpl, v2))
	require.ElementsMatch(t, all, nextChanges(t, ch, 3))
	require.NoError(t, f.s.DeleteTemplate(ctx, f.tmpl))
	require.ElementsMatch(t, all, nextChanges(t, ch, 3))
	marker("an unconfigured preset " + unconfigured.String())

	// More than 1,000 configured presets: one resync.
	big, bigVer := uuid.New(), uuid.New()
	require.NoError(t, f.s.CreateTemplate(ctx, prebuilds.Template{ID: big, Name: "big", OrganizationID: f.org}))
	require.NoError(t, f.s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: bigVer, TemplateID: big, CreatedAt: t0}))
	_, err = f.pool.Exec(ctx, `INSERT INTO presets (id, template_version_id, name, desired)
		SELECT gen_random_uuid(), $1, 'p' || g, 1 FROM generate_series(1, 1001) g`, bigVer)
	require.NoError(t, err)
	require.NoError(t, f.s.SetTemplateDeprecated(ctx, big, true))
	require.Equal(t, prebuilds.Change{Kind: prebuilds.ChangeResync}, nextChange(t, ch))
	marker("the big template's presets")

	// Pausing is no change; resuming is a resync.
	require.NoError(t, f.s.SetPaused(ctx, true))
	require.NoError(t, f.s.SetPaused(ctx, false))
	require.Equal(t, prebuilds.Change{Kind: prebuilds.ChangeResync}, nextChange(t, ch))

	// Payloads pgstore does not write are resyncs.
	for _, payload := range []string{"garbage", "claimed:not-a-uuid", "exploded:" + p1.String(), "resync:" + p1.String()} {
		_, err := f.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, f.s.Channel(), payload)
		require.NoError(t, err)
		require.Equal(t, prebuilds.Change{Kind: prebuilds.ChangeResync}, nextChange(t, ch), payload)
	}
	require.NotEqual(t, uuid.Nil, ready)

	cancel()
	for range ch { // closes with its context
	}
}

// TestParsePayload: payloads pgstore writes read back; anything else is a
// resync, never a panic.
func TestParsePayload(t *testing.T) {
	t.Parallel()
	p := uuid.MustParse("c0ffee00-1234-4abc-8def-0123456789ab")
	for _, c := range []struct {
		payload string
		want    prebuilds.Change
	}{
		{"claimed:" + p.String(), prebuilds.Change{PresetID: p, Kind: prebuilds.ChangeClaimed}},
		{"job_completed:" + p.String(), prebuilds.Change{PresetID: p, Kind: prebuilds.ChangeJobCompleted}},
		{"build_started:" + p.String(), prebuilds.Change{PresetID: p, Kind: prebuilds.ChangeBuildStarted}},
		{"instance_removed:" + p.String(), prebuilds.Change{PresetID: p, Kind: prebuilds.ChangeInstanceRemoved}},
		{"preset_written:" + p.String(), prebuilds.Change{PresetID: p, Kind: prebuilds.ChangePresetWritten}},
		{"resync", prebuilds.Change{Kind: prebuilds.ChangeResync}},
		{"", prebuilds.Change{Kind: prebuilds.ChangeResync}},
		{"claimed", prebuilds.Change{Kind: prebuilds.ChangeResync}},
		{"claimed:", prebuilds.Change{Kind: prebuilds.ChangeResync}},
		{"claimed:" + uuid.Nil.String(), prebuilds.Change{Kind: prebuilds.ChangeResync}},
		{"claimed:{" + p.String() + "}", prebuilds.Change{Kind: prebuilds.ChangeResync}},
		{"claimed:" + strings.ToUpper(p.String()) + "x", prebuilds.Change{Kind: prebuilds.ChangeResync}},
		{"resync:" + p.String(), prebuilds.Change{Kind: prebuilds.ChangeResync}},
		{"Claimed:" + p.String(), prebuilds.Change{Kind: prebuilds.ChangeResync}},
	} {
		require.Equal(t, c.want, pgstore.ParsePayload(c.payload), "%q", c.payload)
	}
}

func FuzzParsePayload(f *testing.F) {
	for _, s := range []string{"", "resync", "claimed:c0ffee00-1234-4abc-8def-0123456789ab", "claimed:", ":", "x:y:z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		c := pgstore.ParsePayload(payload)
		if (c.Kind == prebuilds.ChangeResync) != (c.PresetID == uuid.Nil) {
			t.Fatalf("%q → %+v: a resync names no preset, any other change names one", payload, c)
		}
		if c.Kind != prebuilds.ChangeResync && payload != string(c.Kind)+":"+c.PresetID.String() &&
			!strings.EqualFold(payload, string(c.Kind)+":"+c.PresetID.String()) {
			t.Fatalf("%q → %+v: not the payload of that change", payload, c)
		}
	})
}

// replicaStore is a replica's store for the feed tests: every pass that
// held the lock is reported on passes once it released it, each Changes
// call that returned is reported on listening, and hold, when set, is
// called under the lock before the snapshot is read ("locked") and after
// ("read").
type replicaStore struct {
	*pgstore.Store
	passes    chan passRecord
	listening chan struct{}
	hold      atomic.Pointer[func(stage string)]
}

// passRecord is one pass: the presets of a targeted pass, nil for a full
// one.
type passRecord struct {
	presets []uuid.UUID
}

func newReplicaStore(s *pgstore.Store) *replicaStore {
	return &replicaStore{Store: s, passes: make(chan passRecord, 1024), listening: make(chan struct{}, 16)}
}

func (s *replicaStore) Changes(ctx context.Context) (<-chan prebuilds.Change, error) {
	ch, err := s.Store.Changes(ctx)
	if err == nil {
		s.listening <- struct{}{}
	}
	return ch, err
}

func (s *replicaStore) WithReconciliationLock(ctx context.Context, fn func(context.Context, prebuilds.SnapshotReader) error) (bool, error) {
	var rec *passRecord
	acquired, err := s.Store.WithReconciliationLock(ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
		if hold := s.hold.Load(); hold != nil {
			(*hold)("locked")
		}
		return fn(ctx, recordingReader{r: r, s: s, rec: &rec})
	})
	if acquired && rec != nil {
		s.passes <- *rec
	}
	return acquired, err
}

type recordingReader struct {
	r   prebuilds.SnapshotReader
	s   *replicaStore
	rec **passRecord
}

func (r recordingReader) Snapshot(ctx context.Context, p prebuilds.SnapshotParams) (*prebuilds.GlobalSnapshot, error) {
	snap, err := r.r.Snapshot(ctx, p)
	*r.rec = &passRecord{presets: p.Presets}
	if hold := r.s.hold.Load(); hold != nil {
		(*hold)("read")
	}
	return snap, err
}

// nextPass receives a replica's next pass.
func nextPass(t *testing.T, s *replicaStore) passRecord {
	t.Helper()
	select {
	case p := <-s.passes:
		return p
	case <-time.After(feedWait):
		t.Fatal("no pass")
		return passRecord{}
	}
}

// feedFixture is a database with one template, one preset (desired 2, two
// running, ready prebuilds) and the pools and stores of the feed tests.
type feedFixture struct {
	t      *testing.T
	ctx    context.Context
	dsn    string
	admin  *pgxpool.Pool  // inspections and kills
	client *pgstore.Store // claims, on its own pool
	cp     *pgstore.Store // seeding
	preset uuid.UUID
	ready  []uuid.UUID
}

func newFeedFixture(t *testing.T) *feedFixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*feedWait)
	t.Cleanup(cancel)
	dsn := pgtest.NewDatabase(t, pgstoretest.New())
	ff := &feedFixture{
		t: t, ctx: ctx, dsn: dsn,
		admin:  openNamedPool(t, dsn, "prebuildkit-test-admin", 2),
		client: pgstore.New(openNamedPool(t, dsn, "prebuildkit-test-client", 4)),
		cp:     pgstore.New(openNamedPool(t, dsn, "prebuildkit-test-cp", 2)),
	}
	tmpl, ver := uuid.New(), uuid.New()
	require.NoError(t, ff.cp.CreateTemplate(ctx, prebuilds.Template{ID: tmpl, Name: "t", OrganizationID: uuid.New()}))
	require.NoError(t, ff.cp.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: ver, TemplateID: tmpl, CreatedAt: t0}))
	require.NoError(t, ff.cp.SetActiveVersion(ctx, tmpl, ver))
	ff.preset = uuid.New()
	require.NoError(t, ff.cp.UpsertPreset(ctx, prebuilds.Preset{ID: ff.preset, TemplateVersionID: ver, Name: "p", Desired: ptr(2)}))
	for i := range 2 {
		inst, build := uuid.New(), uuid.New()
		_, err := ff.cp.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{PresetID: ff.preset, TemplateVersionID: ver,
			Instances: []prebuilds.NewPrebuild{{InstanceID: inst, BuildID: build}}, Now: t0.Add(time.Duration(i) * time.Second)})
		require.NoError(t, err)
		_, err = ff.cp.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: build, Status: prebuilds.JobSucceeded, Now: t0})
		require.NoError(t, err)
		require.NoError(t, ff.cp.SetReady(ctx, inst, true))
		ff.ready = append(ff.ready, inst)
	}
	return ff
}

// feedReplica is a Reconciler on its own named pool, with a mock clock.
type feedReplica struct {
	name  string
	pool  *pgxpool.Pool
	store *replicaStore
	rec   *prebuilds.Reconciler
	clk   *quartz.Mock
}

func (ff *feedFixture) replica(name string, conns int32) *feedReplica {
	ff.t.Helper()
	pool := openNamedPool(ff.t, ff.dsn, name, conns)
	clk := quartz.NewMock(ff.t).WithLogger(quartz.NoOpLogger)
	clk.Set(t0.Add(time.Minute)).MustWait(ff.ctx)
	store := newReplicaStore(pgstore.New(pool))
	rec := prebuilds.NewReconciler(store, prebuilds.Config{
		Clock: clk, Interval: time.Hour, Logger: slog.New(slog.DiscardHandler),
	})
	return &feedReplica{name: name, pool: pool, store: store, rec: rec, clk: clk}
}

// run starts the replica's Run and returns once its first (full) pass is
// over and its feed listens; trigger traps its trigger timers. Run is
// stopped when the test ends.
func (r *feedReplica) run(t *testing.T, ctx context.Context) (trigger *quartz.Trap) {
	t.Helper()
	ran := make(chan error, 1)
	// Run has its own context: t's is canceled before the clean-ups run.
	rctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		defer cancel()
		require.NoError(t, r.rec.Stop(context.Background(), nil))
		require.ErrorIs(t, <-ran, prebuilds.ErrReconcilerStopped)
	})
	// Closed before Stop (clean-ups run last first): a timer the follower
	// arms after the test stopped waiting is released.
	trigger = r.clk.Trap().NewTimer("prebuilds", "trigger")
	t.Cleanup(trigger.Close)
	tick := r.clk.Trap().TickerFunc("prebuilds", "reconciler")
	defer tick.Close()
	go func() { ran <- r.rec.Run(rctx) }()
	select {
	case <-r.store.listening:
	case <-time.After(feedWait):
		t.Fatal("the feed never listened")
	}
	require.Nil(t, nextPass(t, r.store).presets, "the first pass is a full pass")
	tick.MustWait(ctx).MustRelease(ctx)
	return trigger
}

// fire lets the replica's armed trigger timer go off: its pass starts.
func (r *feedReplica) fire(t *testing.T, ctx context.Context, trigger *quartz.Trap) {
	t.Helper()
	trigger.MustWait(ctx).MustRelease(ctx)
	r.clk.Advance(prebuilds.DefaultTriggerDelay).MustWait(ctx)
}

// claim claims a prebuild of the preset through the client's pool.
func (ff *feedFixture) claim() error {
	_, err := ff.client.Claim(ff.ctx, prebuilds.ClaimParams{PresetID: ff.preset, Owner: uuid.New(), Now: t0.Add(time.Minute)})
	return err
}

// builds counts the preset's start builds: its prebuilds ever created.
func (ff *feedFixture) builds() int {
	ff.t.Helper()
	var n int
	require.NoError(ff.t, ff.admin.QueryRow(ff.ctx,
		`SELECT count(*) FROM builds WHERE preset_id = $1 AND transition = 'start'`, ff.preset).Scan(&n))
	return n
}

// listenerPID is the backend of the replica's LISTEN connection.
func (ff *feedFixture) listenerPID(r *feedReplica) int32 {
	ff.t.Helper()
	var pid int32
	require.NoError(ff.t, ff.admin.QueryRow(ff.ctx, `
		SELECT pid FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = $1 AND query LIKE 'LISTEN %'`, r.name).Scan(&pid))
	return pid
}

// TestChangeFeedListenerKilled: a claim triggers a targeted pass that
// refills the pool. Then the replica's LISTEN connection is killed
// (pg_terminate_backend) and a claim commits while it is down, so its
// notification is lost; once the feed listens again it sends a resync and
// the Reconciler runs a full pass, which refills the pool. A claim after
// that triggers a targeted pass again: the new connection works.
func TestChangeFeedListenerKilled(t *testing.T) {
	t.Parallel()
	ff := newFeedFixture(t)
	ctx := ff.ctx
	const conns = 3
	r := ff.replica("prebuildkit-test-feed-killed", conns)
	trigger := r.run(t, ctx)
	require.Equal(t, 2, ff.builds())

	require.NoError(t, ff.claim())
	r.fire(t, ctx, trigger)
	require.Equal(t, []uuid.UUID{ff.preset}, nextPass(t, r.store).presets, "a claim triggers a targeted pass")
	require.Equal(t, 3, ff.builds(), "the targeted pass refilled the pool")

	// Hold every connection of the replica's pool, so that the listener
	// cannot connect again until the claim below has committed.
	held := make([]*pgxpool.Conn, conns)
	for i := range held {
		var err error
		held[i], err = r.pool.Acquire(ctx)
		require.NoError(t, err)
	}
	pid := ff.listenerPID(r)
	var killed bool
	require.NoError(t, ff.admin.QueryRow(ctx, `SELECT pg_terminate_backend($1, 10000)`, pid).Scan(&killed))
	require.True(t, killed)
	require.NoError(t, ff.claim(), "claimed while nobody listens: the notification is lost")
	for _, c := range held {
		c.Release()
	}
	r.fire(t, ctx, trigger)
	require.Nil(t, nextPass(t, r.store).presets, "the resync after the reconnection triggers a full pass")
	require.Equal(t, 4, ff.builds(), "the full pass refilled the pool the lost notification was about")
	require.NotEqual(t, pid, ff.listenerPID(r), "the feed listens on a new connection")

	_, err := ff.client.Claim(ctx, prebuilds.ClaimParams{PresetID: ff.preset, Owner: uuid.New(), Now: t0.Add(time.Minute)})
	require.ErrorIs(t, err, prebuilds.ErrNoClaimablePrebuild, "both ready prebuilds were claimed")
	r.fire(t, ctx, trigger)
	require.Equal(t, []uuid.UUID{ff.preset}, nextPass(t, r.store).presets, "the new connection delivers changes")
}

// TestChangeFeedReplicaWithoutLock: replica B follows the feed while
// replica A, on another pool, holds the reconciliation lock in a pass.
// B's targeted pass finds the lock held and retries after TriggerDelay;
// once A released it the retry gets the lock. Either A's pass covers the
// claim (its snapshot was read after the claim) or B's retry does (A's
// snapshot was older); either way the pool gets exactly one replacement.
func TestChangeFeedReplicaWithoutLock(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		stage   string // where A holds the lock
		covered string // who creates the replacement
	}{
		{"HolderCovers", "locked", "A"},
		{"RetryCovers", "read", "B"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ff := newFeedFixture(t)
			ctx := ff.ctx
			a := ff.replica("prebuildkit-test-feed-a-"+c.name, 3)
			b := ff.replica("prebuildkit-test-feed-b-"+c.name, 3)
			triggerB := b.run(t, ctx)

			inside, release := make(chan struct{}), make(chan struct{})
			hold := func(stage string) {
				if stage == c.stage {
					close(inside)
					<-release
				}
			}
			a.store.hold.Store(&hold)
			passA := make(chan prebuilds.Stats, 1)
			go func() {
				stats, err := a.rec.ReconcileAll(ctx)
				if err != nil {
					t.Errorf("A's pass: %v", err)
				}
				passA <- stats
			}()
			<-inside // A holds the lock

			require.NoError(t, ff.claim())
			b.fire(t, ctx, triggerB)
			// B's targeted pass found the lock held: it arms its trigger
			// again to retry.
			retry := triggerB.MustWait(ctx)
			a.store.hold.Store(nil)
			close(release)
			statsA := <-passA
			require.True(t, statsA.Acquired)
			retry.MustRelease(ctx)
			b.clk.Advance(prebuilds.DefaultTriggerDelay).MustWait(ctx)
			require.Equal(t, []uuid.UUID{ff.preset}, nextPass(t, b.store).presets, "B's retry got the lock")

			require.Equal(t, 3, ff.builds(), "exactly one replacement")
			if c.covered == "A" {
				require.Equal(t, 1, statsA.Created, "A's pass, whose snapshot saw the claim, refilled the pool")
			} else {
				require.Zero(t, statsA.Created, "A's snapshot predates the claim")
			}
		})
	}
}

// TestChangeFeedClaimStorm: 10,000 claims as fast as the machine makes
// them, spread over 100 presets, against a Reconciler with the real clock
// and the default TriggerDelay (25ms). Changes are coalesced: targeted
// passes start at most once per TriggerDelay, however many claims commit,
// so there are at most elapsed/TriggerDelay + 1 of them; the test reports
// how many ran.
func TestChangeFeedClaimStorm(t *testing.T) {
	t.Parallel()
	const (
		presets  = 100
		claims   = 10_000
		claimers = 8
	)
	ctx := t.Context()
	dsn := pgtest.NewDatabase(t, pgstoretest.New())
	cp := pgstore.New(openNamedPool(t, dsn, "prebuildkit-test-storm-cp", 2))
	client := pgstore.New(openNamedPool(t, dsn, "prebuildkit-test-storm-client", claimers))
	tmpl, ver := uuid.New(), uuid.New()
	require.NoError(t, cp.CreateTemplate(ctx, prebuilds.Template{ID: tmpl, Name: "t", OrganizationID: uuid.New()}))
	require.NoError(t, cp.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: ver, TemplateID: tmpl, CreatedAt: t0}))
	require.NoError(t, cp.SetActiveVersion(ctx, tmpl, ver))
	ids := make([]uuid.UUID, presets)
	for i := range ids {
		ids[i] = uuid.New()
		require.NoError(t, cp.UpsertPreset(ctx, prebuilds.Preset{ID: ids[i], TemplateVersionID: ver, Name: fmt.Sprint("p", i), Desired: ptr(1)}))
	}
	sentinel := uuid.New() // never claimed
	require.NoError(t, cp.UpsertPreset(ctx, prebuilds.Preset{ID: sentinel, TemplateVersionID: ver, Name: "sentinel", Desired: ptr(1)}))

	store := newReplicaStore(pgstore.New(openNamedPool(t, dsn, "prebuildkit-test-storm-replica", 4)))
	rec := prebuilds.NewReconciler(store, prebuilds.Config{Interval: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	ran := make(chan error, 1)
	go func() { ran <- rec.Run(ctx) }()
	defer func() {
		require.NoError(t, rec.Stop(context.Background(), nil))
		require.ErrorIs(t, <-ran, prebuilds.ErrReconcilerStopped)
	}()
	<-store.listening
	require.Nil(t, nextPass(t, store).presets, "the first pass is a full pass")

	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failures atomic.Int64
	for range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < claims; i = next.Add(1) - 1 {
				_, err := client.Claim(ctx, prebuilds.ClaimParams{PresetID: ids[i%presets], Owner: uuid.New(), Now: t0})
				if err != nil && !errors.Is(err, prebuilds.ErrNoClaimablePrebuild) {
					failures.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	storm := time.Since(start)
	require.Zero(t, failures.Load(), "claims failed")
	// A write after the storm: once a pass includes it, every change of the
	// storm was delivered before it, and passed.
	require.NoError(t, cp.UpsertPreset(ctx, prebuilds.Preset{ID: sentinel, TemplateVersionID: ver, Name: "sentinel", Desired: ptr(2)}))
	targeted := 0
	for {
		p := nextPass(t, store)
		require.NotNil(t, p.presets, "no resync: nothing was lost")
		targeted++
		if slices.Contains(p.presets, sentinel) {
			break
		}
	}
	elapsed := time.Since(start)
	bound := int(elapsed/prebuilds.DefaultTriggerDelay) + 1
	t.Logf("%d claims over %d presets in %v (%.0f claims/s); %d targeted passes in %v (at most %d possible)",
		claims, presets, storm.Round(time.Millisecond), float64(claims)/storm.Seconds(), targeted, elapsed.Round(time.Millisecond), bound)
	require.LessOrEqual(t, targeted, bound, "a targeted pass starts at most once per TriggerDelay")
	require.Less(t, targeted, claims/10, "changes are coalesced")
}
