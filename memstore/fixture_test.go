package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/prebuildkit/prebuildkit/memstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the fixtures' initial instant; it is a whole microsecond.
var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// fixture is a store with one template whose version is active.
type fixture struct {
	t     testing.TB
	ctx   context.Context
	s     *memstore.Store
	now   time.Time
	tmpl  uuid.UUID
	ver   uuid.UUID
	users uuid.UUID
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{
		t:     t,
		ctx:   context.Background(),
		s:     memstore.New(),
		now:   t0,
		tmpl:  uuid.New(),
		ver:   uuid.New(),
		users: uuid.New(),
	}
	require.NoError(t, f.s.CreateTemplate(f.ctx, prebuilds.Template{
		ID: f.tmpl, Name: "tmpl", OrganizationID: uuid.New(), OrganizationName: "org",
	}))
	require.NoError(t, f.s.CreateTemplateVersion(f.ctx, prebuilds.TemplateVersion{ID: f.ver, TemplateID: f.tmpl, Name: "v1", CreatedAt: t0}))
	require.NoError(t, f.s.SetActiveVersion(f.ctx, f.tmpl, f.ver))
	return f
}

func ptr(n int) *int { return &n }

// preset creates a preset on f.ver with the given desired count (nil leaves
// prebuilds unconfigured).
func (f *fixture) preset(desired *int) uuid.UUID {
	f.t.Helper()
	return f.presetOn(f.ver, desired)
}

func (f *fixture) presetOn(version uuid.UUID, desired *int) uuid.UUID {
	f.t.Helper()
	id := uuid.New()
	require.NoError(f.t, f.s.UpsertPreset(f.ctx, prebuilds.Preset{
		ID: id, TemplateVersionID: version, Name: "p-" + id.String(), Desired: desired,
		Parameters: map[string]string{"size": "large"},
	}))
	return id
}

// inst describes an instance to seed.
type inst struct {
	id      uuid.UUID // uuid.New() when nil
	buildID uuid.UUID // uuid.New() when nil
	owner   uuid.UUID // SystemOwner when nil
	version uuid.UUID // f.ver when nil
	preset  uuid.UUID
	tr      prebuilds.Transition // start when empty
	status  prebuilds.JobStatus  // pending when empty
	kind    prebuilds.FailureKind
	ready   bool
}

// instance creates an instance with build #1 at f.now and moves its job to
// the requested status. It returns the instance and build IDs.
func (f *fixture) instance(p inst) (uuid.UUID, uuid.UUID) {
	f.t.Helper()
	if p.id == uuid.Nil {
		p.id = uuid.New()
	}
	if p.buildID == uuid.Nil {
		p.buildID = uuid.New()
	}
	if p.owner == uuid.Nil {
		p.owner = prebuilds.SystemOwner
	}
	if p.version == uuid.Nil {
		p.version = f.ver
	}
	if p.tr == "" {
		p.tr = prebuilds.TransitionStart
	}
	require.NoError(f.t, f.s.CreateInstance(f.ctx, prebuilds.CreateInstanceParams{
		InstanceID: p.id, OwnerID: p.owner, TemplateID: f.tmpl, Name: "i-" + p.id.String(),
		BuildID: p.buildID, TemplateVersionID: p.version, PresetID: p.preset, Transition: p.tr, Now: f.now,
	}))
	f.finish(p.buildID, p.status, p.kind)
	if p.ready {
		require.NoError(f.t, f.s.SetReady(f.ctx, p.id, true))
	}
	return p.id, p.buildID
}

// build starts a build on an instance at f.now and moves its job to status.
func (f *fixture) build(instanceID uuid.UUID, p inst) uuid.UUID {
	f.t.Helper()
	if p.buildID == uuid.Nil {
		p.buildID = uuid.New()
	}
	if p.version == uuid.Nil {
		p.version = f.ver
	}
	if p.tr == "" {
		p.tr = prebuilds.TransitionStart
	}
	require.NoError(f.t, f.s.StartBuild(f.ctx, prebuilds.StartBuildParams{
		InstanceID: instanceID, BuildID: p.buildID, TemplateVersionID: p.version, PresetID: p.preset,
		Transition: p.tr, Now: f.now,
	}))
	f.finish(p.buildID, p.status, p.kind)
	return p.buildID
}

func (f *fixture) finish(buildID uuid.UUID, status prebuilds.JobStatus, kind prebuilds.FailureKind) {
	f.t.Helper()
	if status == "" || status == prebuilds.JobPending {
		return
	}
	_, err := f.s.UpdateJob(f.ctx, prebuilds.UpdateJobParams{BuildID: buildID, Status: status, FailureKind: kind, Now: f.now})
	require.NoError(f.t, err)
}

// running seeds a ready prebuild of preset whose build #1 succeeded.
func (f *fixture) running(preset uuid.UUID) uuid.UUID {
	f.t.Helper()
	id, _ := f.instance(inst{preset: preset, status: prebuilds.JobSucceeded, ready: true})
	return id
}

// snapshot takes a snapshot under the lock at f.now with a one-hour lookback
// and hard limit k.
func (f *fixture) snapshot(k int) *prebuilds.GlobalSnapshot {
	f.t.Helper()
	return f.snapshotAt(prebuilds.SnapshotParams{Now: f.now, Lookback: f.now.Add(-time.Hour), HardLimit: hardLimit(k)})
}

func (f *fixture) snapshotAt(p prebuilds.SnapshotParams) *prebuilds.GlobalSnapshot {
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

// view returns the indexed view of preset id in snap.
func view(t testing.TB, snap *prebuilds.GlobalSnapshot, id uuid.UUID) prebuilds.PresetSnapshot {
	t.Helper()
	for _, v := range snap.Index() {
		if v.Preset.ID == id {
			return v
		}
	}
	t.Fatalf("preset %s not in snapshot", id)
	return prebuilds.PresetSnapshot{}
}

// hardLimit encodes k for SnapshotParams: k > 0 is K, 0 turns it off here.
func hardLimit(k int) prebuilds.HardLimit {
	if k == 0 {
		return prebuilds.NoHardLimit
	}
	return prebuilds.HardLimit(k)
}
