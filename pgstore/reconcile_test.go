package pgstore_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// TestCreatePrebuildsErrors: the CreatePrebuilds errors the conformance
// suite does not make: an empty batch is a no-op before any check, nil
// version and build IDs, and arguments checked before the preset lookup.
// Nothing of a failed batch is written.
func TestCreatePrebuildsErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	preset := f.preset(ptr(3))

	one := func() []prebuilds.NewPrebuild {
		return []prebuilds.NewPrebuild{{InstanceID: uuid.New(), BuildID: uuid.New(), Name: "a"}}
	}
	jobs, err := f.s.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{PresetID: uuid.Nil, Now: t0})
	require.NoError(t, err, "empty is a no-op, before any check")
	require.Nil(t, jobs)

	cases := []struct {
		name string
		p    prebuilds.CreatePrebuildsParams
		want error
	}{
		{"nil version", prebuilds.CreatePrebuildsParams{PresetID: preset, Instances: one()}, prebuilds.ErrInvalidArgument},
		{"nil instance id before preset missing", prebuilds.CreatePrebuildsParams{PresetID: uuid.New(), TemplateVersionID: f.ver,
			Instances: []prebuilds.NewPrebuild{{BuildID: uuid.New()}}}, prebuilds.ErrInvalidArgument},
		{"nil build id", prebuilds.CreatePrebuildsParams{PresetID: preset, TemplateVersionID: f.ver,
			Instances: append(one(), prebuilds.NewPrebuild{InstanceID: uuid.New()})}, prebuilds.ErrInvalidArgument},
	}
	for _, c := range cases {
		c.p.Now = t0
		_, err := f.s.CreatePrebuilds(ctx, c.p)
		require.ErrorIs(t, err, c.want, c.name)
	}
	var instances int
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM instances`).Scan(&instances))
	require.Zero(t, instances)
}

// TestDeletePrebuildErrors: the DeletePrebuild errors the conformance suite
// does not make: a nil instance ID, a stopped prebuild, and a conflict
// decided before the build ID is looked at.
func TestDeletePrebuildErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	preset := f.preset(ptr(5))
	del := func(inst uuid.UUID, build uuid.UUID) error {
		_, err := f.s.DeletePrebuild(ctx, prebuilds.DeletePrebuildParams{InstanceID: inst, BuildID: build, Now: t0})
		return err
	}
	claimed := f.ready(preset, t0)
	got, err := f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: preset, Owner: f.user, Now: t0})
	require.NoError(t, err)
	require.Equal(t, claimed, got.ID)
	running := f.ready(preset, t0)
	runningBuild := f.latestBuildID(running)

	require.ErrorIs(t, del(uuid.Nil, uuid.New()), prebuilds.ErrInvalidArgument)

	removed := f.ready(preset, t0)
	require.NoError(t, f.s.RemoveInstance(ctx, removed))
	pending := f.prebuild(preset, t0, prebuilds.JobPending)
	failed := f.prebuild(preset, t0, prebuilds.JobFailed)
	stopped := f.ready(preset, t0)
	f.build(stopped, f.ver, uuid.Nil, prebuilds.TransitionStop, prebuilds.JobSucceeded, t0)
	for name, inst := range map[string]uuid.UUID{"claimed": claimed, "removed": removed, "pending": pending, "failed": failed, "stopped": stopped} {
		// The conflict is decided before the build ID is looked at.
		require.ErrorIs(t, del(inst, runningBuild), prebuilds.ErrConflict, name)
	}
}

// TestDeletePrebuildEffects: the delete build runs on the version of the
// instance's latest build, not on its preset's.
func TestDeletePrebuildEffects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	preset := f.preset(ptr(1))
	inst := f.ready(preset, t0)
	// The latest build runs on another version: the delete uses it.
	v2 := f.version()
	p2 := f.presetOn(v2, nil)
	f.build(inst, v2, p2, prebuilds.TransitionStart, prebuilds.JobSucceeded, t0.Add(time.Minute))
	now := t0.Add(2*time.Minute + 5*time.Nanosecond)
	b := uuid.New()
	job, err := f.s.DeletePrebuild(ctx, prebuilds.DeletePrebuildParams{InstanceID: inst, BuildID: b, Now: now})
	require.NoError(t, err)
	require.Equal(t, prebuilds.Job{BuildID: b, InstanceID: inst, TemplateVersionID: v2, Transition: prebuilds.TransitionDelete}, job)
	builds, err := f.s.ListBuilds(ctx, inst)
	require.NoError(t, err)
	require.Len(t, builds, 3)
	require.Equal(t, prebuilds.Build{ID: b, InstanceID: inst, Number: 3, TemplateVersionID: v2, Transition: prebuilds.TransitionDelete,
		JobStatus: prebuilds.JobPending, CreatedAt: prebuilds.Micro(now)}, builds[2])
}

func TestCancelPending(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	preset := f.preset(ptr(5))
	cancel := func(p uuid.UUID) ([]uuid.UUID, error) {
		return f.s.CancelPending(ctx, prebuilds.CancelPendingParams{PresetID: p, Now: t0.Add(time.Hour)})
	}
	q2 := f.prebuildID(id(2), uuid.New(), preset, t0, prebuilds.JobPending)
	q1 := f.prebuildID(id(1), uuid.New(), preset, t0, prebuilds.JobPending)
	runningJob := f.prebuild(preset, t0, prebuilds.JobRunning)
	done := f.prebuild(preset, t0, prebuilds.JobSucceeded)
	second := f.prebuild(preset, t0, prebuilds.JobCanceled)
	f.build(second, f.ver, preset, prebuilds.TransitionStart, prebuilds.JobPending, t0) // build #2 pending
	userInst := prebuilds.CreateInstanceParams{InstanceID: uuid.New(), OwnerID: f.user, TemplateID: f.tmpl, BuildID: uuid.New(),
		TemplateVersionID: f.ver, PresetID: preset, Transition: prebuilds.TransitionStart, Now: t0}
	require.NoError(t, f.s.CreateInstance(ctx, userInst))

	// Active preset: nothing, an empty list.
	ids, err := cancel(preset)
	require.NoError(t, err)
	require.NotNil(t, ids)
	require.Empty(t, ids)

	require.NoError(t, f.s.SetActiveVersion(ctx, f.tmpl, f.version()))
	ids, err = cancel(preset)
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{q1, q2}, ids, "UUID order")
	for _, inst := range []uuid.UUID{q1, q2} {
		got, err := f.s.GetInstance(ctx, inst)
		require.NoError(t, err)
		require.True(t, got.Deleted)
		builds, err := f.s.ListBuilds(ctx, inst)
		require.NoError(t, err)
		require.Equal(t, prebuilds.JobCanceled, builds[0].JobStatus)
		require.Equal(t, t0.Add(time.Hour), builds[0].CompletedAt)
	}
	for _, inst := range []uuid.UUID{runningJob, done, second, userInst.InstanceID} {
		got, err := f.s.GetInstance(ctx, inst)
		require.NoError(t, err)
		require.False(t, got.Deleted)
	}
	ids, err = cancel(preset)
	require.NoError(t, err)
	require.Empty(t, ids)
}

func TestSetPresetStatus(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	preset := f.preset(ptr(1))

	_, err := f.s.SetPresetStatus(ctx, preset, "bogus", prebuilds.PresetHealthy)
	require.ErrorIs(t, err, prebuilds.ErrInvalidArgument)
	// Arguments are checked before the preset is looked up.
	_, err = f.s.SetPresetStatus(ctx, uuid.New(), prebuilds.PresetHealthy, "")
	require.ErrorIs(t, err, prebuilds.ErrInvalidArgument)

	changed, err := f.s.SetPresetStatus(ctx, preset, prebuilds.PresetHardLimited, prebuilds.PresetHealthy)
	require.NoError(t, err)
	require.False(t, changed)
	changed, err = f.s.SetPresetStatus(ctx, preset, prebuilds.PresetHealthy, prebuilds.PresetHardLimited)
	require.NoError(t, err)
	require.True(t, changed)
	changed, err = f.s.SetPresetStatus(ctx, preset, prebuilds.PresetHealthy, prebuilds.PresetHardLimited)
	require.NoError(t, err)
	require.False(t, changed)
	p, err := f.s.GetPreset(ctx, preset)
	require.NoError(t, err)
	require.Equal(t, prebuilds.PresetHardLimited, p.Status)
}
