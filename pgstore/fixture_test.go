package pgstore_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/prebuildkit/prebuildkit/internal/pgtest"
	"github.com/prebuildkit/prebuildkit/pgstore"
	"github.com/prebuildkit/prebuildkit/pgstore/pgstoretest"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "pgstore: goroutines leaked: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// t0 is the fixtures' first instant: a Monday, a whole microsecond.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// newPool returns a pool on a fresh migrated database.
func newPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return pgtest.NewPool(t, pgstoretest.New())
}

// openPool opens another pool on the database behind pool, as a separate
// replica would; it is closed in t.Cleanup.
func openPool(t testing.TB, pool *pgxpool.Pool) *pgxpool.Pool {
	t.Helper()
	cfg := pool.Config().Copy()
	other, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(other.Close)
	return other
}

// id returns a UUID whose byte order is n's order, for tie-break tests.
func id(n int) uuid.UUID {
	return uuid.MustParse(fmt.Sprintf("00000000-0000-4000-8000-%012x", n))
}

func ptr(n int) *int { return &n }

// fixture is a store on a fresh database with one template whose version is
// active.
type fixture struct {
	t    testing.TB
	ctx  context.Context
	pool *pgxpool.Pool
	s    *pgstore.Store
	org  uuid.UUID
	tmpl uuid.UUID
	ver  uuid.UUID
	user uuid.UUID
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	pool := newPool(t)
	f := &fixture{
		t: t, ctx: context.Background(), pool: pool, s: pgstore.New(pool),
		org: uuid.New(), tmpl: uuid.New(), ver: uuid.New(), user: uuid.New(),
	}
	require.NoError(t, f.s.CreateTemplate(f.ctx, prebuilds.Template{
		ID: f.tmpl, Name: "tmpl", OrganizationID: f.org, OrganizationName: "org",
	}))
	require.NoError(t, f.s.CreateTemplateVersion(f.ctx, prebuilds.TemplateVersion{ID: f.ver, TemplateID: f.tmpl, Name: "v1", CreatedAt: t0}))
	require.NoError(t, f.s.SetActiveVersion(f.ctx, f.tmpl, f.ver))
	return f
}

// preset creates a preset on f.ver.
func (f *fixture) preset(desired *int) uuid.UUID {
	f.t.Helper()
	return f.presetOn(f.ver, desired)
}

func (f *fixture) presetOn(version uuid.UUID, desired *int) uuid.UUID {
	f.t.Helper()
	p := uuid.New()
	require.NoError(f.t, f.s.UpsertPreset(f.ctx, prebuilds.Preset{
		ID: p, TemplateVersionID: version, Name: "p-" + p.String(), Desired: desired,
		Parameters: map[string]string{"size": "large"},
	}))
	return p
}

// version creates another (inactive) version of f.tmpl.
func (f *fixture) version() uuid.UUID {
	f.t.Helper()
	v := uuid.New()
	require.NoError(f.t, f.s.CreateTemplateVersion(f.ctx, prebuilds.TemplateVersion{ID: v, TemplateID: f.tmpl, Name: v.String(), CreatedAt: t0}))
	return v
}

// versionOf returns the version of a preset.
func (f *fixture) versionOf(preset uuid.UUID) uuid.UUID {
	f.t.Helper()
	p, err := f.s.GetPreset(f.ctx, preset)
	require.NoError(f.t, err)
	return p.TemplateVersionID
}

// prebuild creates one prebuild of preset at `at` whose build #1 job ends
// in status (pending leaves it queued), and returns the instance ID.
func (f *fixture) prebuild(preset uuid.UUID, at time.Time, status prebuilds.JobStatus) uuid.UUID {
	f.t.Helper()
	return f.prebuildID(uuid.New(), uuid.New(), preset, at, status)
}

func (f *fixture) prebuildID(instanceID, buildID, preset uuid.UUID, at time.Time, status prebuilds.JobStatus) uuid.UUID {
	f.t.Helper()
	_, err := f.s.CreatePrebuilds(f.ctx, prebuilds.CreatePrebuildsParams{
		PresetID: preset, TemplateVersionID: f.versionOf(preset), Now: at,
		Instances: []prebuilds.NewPrebuild{{InstanceID: instanceID, BuildID: buildID, Name: "pb"}},
	})
	require.NoError(f.t, err)
	f.job(buildID, status, at)
	return instanceID
}

// ready creates a running, ready prebuild.
func (f *fixture) ready(preset uuid.UUID, at time.Time) uuid.UUID {
	f.t.Helper()
	inst := f.prebuild(preset, at, prebuilds.JobSucceeded)
	require.NoError(f.t, f.s.SetReady(f.ctx, inst, true))
	return inst
}

// job moves a pending job to status (through running when that is allowed).
func (f *fixture) job(buildID uuid.UUID, status prebuilds.JobStatus, at time.Time) {
	f.t.Helper()
	if status == prebuilds.JobPending {
		return
	}
	_, err := f.s.UpdateJob(f.ctx, prebuilds.UpdateJobParams{BuildID: buildID, Status: status, Now: at})
	require.NoError(f.t, err)
}

// build appends a build to an instance and sets its job status; it returns
// the build ID.
func (f *fixture) build(inst, version, preset uuid.UUID, tr prebuilds.Transition, status prebuilds.JobStatus, at time.Time) uuid.UUID {
	f.t.Helper()
	b := uuid.New()
	require.NoError(f.t, f.s.StartBuild(f.ctx, prebuilds.StartBuildParams{
		InstanceID: inst, BuildID: b, TemplateVersionID: version, PresetID: preset, Transition: tr, Now: at,
	}))
	f.job(b, status, at)
	return b
}

// latestBuildID returns the ID of the instance's latest build.
func (f *fixture) latestBuildID(inst uuid.UUID) uuid.UUID {
	f.t.Helper()
	bs, err := f.s.ListBuilds(f.ctx, inst)
	require.NoError(f.t, err)
	require.NotEmpty(f.t, bs)
	return bs[len(bs)-1].ID
}

// snapshot takes the lock and reads a snapshot at now with lookback 1h and
// hard limit k.
func (f *fixture) snapshot(now time.Time, k int) *prebuilds.GlobalSnapshot {
	f.t.Helper()
	return f.snapshotParams(prebuilds.SnapshotParams{Now: now, Lookback: now.Add(-time.Hour), HardLimit: hardLimit(k)})
}

func (f *fixture) snapshotParams(p prebuilds.SnapshotParams) *prebuilds.GlobalSnapshot {
	f.t.Helper()
	var snap *prebuilds.GlobalSnapshot
	acquired, err := f.s.WithReconciliationLock(f.ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
		var err error
		snap, err = r.Snapshot(ctx, p)
		return err
	})
	require.NoError(f.t, err)
	require.True(f.t, acquired)
	prebuilds.SortSnapshot(snap)
	return snap
}

// hardLimit encodes k for SnapshotParams: k > 0 is K, 0 turns it off here.
func hardLimit(k int) prebuilds.HardLimit {
	if k == 0 {
		return prebuilds.NoHardLimit
	}
	return prebuilds.HardLimit(k)
}
