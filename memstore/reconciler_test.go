package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func newPrebuilds(n int) []prebuilds.NewPrebuild {
	out := make([]prebuilds.NewPrebuild, n)
	for i := range out {
		out[i] = prebuilds.NewPrebuild{InstanceID: uuid.New(), BuildID: uuid.New(), Name: "pb-" + uuid.NewString()}
	}
	return out
}

func TestCreatePrebuildsErrors(t *testing.T) {
	t.Parallel()
	with := func(mod func(f *fixture, p *prebuilds.CreatePrebuildsParams)) func(f *fixture) error {
		return func(f *fixture) error {
			p := prebuilds.CreatePrebuildsParams{PresetID: f.preset(ptr(2)), TemplateVersionID: f.ver, Instances: newPrebuilds(2), Now: t0}
			mod(f, &p)
			before := f.snapshot(0)
			_, err := f.s.CreatePrebuilds(f.ctx, p)
			if err != nil {
				require.Equal(f.t, before, f.snapshot(0), "a failed create writes nothing")
			}
			return err
		}
	}
	runErrCases(t, []errCase{
		{"EmptyIsNoop", with(func(_ *fixture, p *prebuilds.CreatePrebuildsParams) {
			*p = prebuilds.CreatePrebuildsParams{} // even nil IDs: empty wins
		}), nil},
		{"NilVersion", with(func(_ *fixture, p *prebuilds.CreatePrebuildsParams) { p.TemplateVersionID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"NilBuildID", with(func(_ *fixture, p *prebuilds.CreatePrebuildsParams) { p.Instances[1].BuildID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"NilBeforeMissing", with(func(_ *fixture, p *prebuilds.CreatePrebuildsParams) {
			p.PresetID = uuid.New()
			p.Instances[0].BuildID = uuid.Nil
		}), prebuilds.ErrInvalidArgument},
	})
}

func TestDeletePrebuildErrors(t *testing.T) {
	t.Parallel()
	del := func(setup func(f *fixture) uuid.UUID) func(f *fixture) error {
		return func(f *fixture) error {
			_, err := f.s.DeletePrebuild(f.ctx, prebuilds.DeletePrebuildParams{InstanceID: setup(f), BuildID: uuid.New(), Now: t0})
			return err
		}
	}
	running := func(f *fixture) uuid.UUID { return f.running(f.preset(ptr(1))) }
	runErrCases(t, []errCase{
		{"NilInstance", del(func(*fixture) uuid.UUID { return uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"LatestStopSucceeded", del(func(f *fixture) uuid.UUID {
			id := running(f)
			f.build(id, inst{tr: prebuilds.TransitionStop, status: prebuilds.JobSucceeded})
			return id
		}), prebuilds.ErrConflict},
		{"ConflictBeforeBuildExists", func(f *fixture) error {
			id, b := f.instance(inst{preset: f.preset(ptr(1))})
			_, err := f.s.DeletePrebuild(f.ctx, prebuilds.DeletePrebuildParams{InstanceID: id, BuildID: b, Now: t0})
			return err
		}, prebuilds.ErrConflict},
	})
}

func TestDeletePrebuildEffects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(1))
	id := f.running(p)
	// The latest build is a preset-less start on another version.
	v2 := f.version()
	f.build(id, inst{tr: prebuilds.TransitionStop, status: prebuilds.JobSucceeded})
	f.build(id, inst{tr: prebuilds.TransitionStart, version: v2, status: prebuilds.JobSucceeded})
	b := uuid.New()
	now := t0.Add(time.Minute + 1*time.Nanosecond)
	job, err := f.s.DeletePrebuild(f.ctx, prebuilds.DeletePrebuildParams{InstanceID: id, BuildID: b, Now: now})
	require.NoError(t, err)
	require.Equal(t, prebuilds.Job{BuildID: b, InstanceID: id, TemplateVersionID: v2, Transition: prebuilds.TransitionDelete}, job)
	builds, err := f.s.ListBuilds(f.ctx, id)
	require.NoError(t, err)
	require.Len(t, builds, 4)
	require.Equal(t, prebuilds.Build{
		ID: b, InstanceID: id, Number: 4, TemplateVersionID: v2, Transition: prebuilds.TransitionDelete,
		JobStatus: prebuilds.JobPending, CreatedAt: prebuilds.Micro(now),
	}, builds[3])
	// The instance still counts for its current preset, as deleting.
	v := view(t, f.snapshot(0), p)
	require.Equal(t, 1, v.Deleting)
	require.Empty(t, v.Running)
}

func TestCancelPending(t *testing.T) {
	t.Parallel()
	t.Run("ActivePresetUntouched", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		p := f.preset(ptr(1))
		id, _ := f.instance(inst{preset: p})
		got, err := f.s.CancelPending(f.ctx, prebuilds.CancelPendingParams{PresetID: p, Now: t0})
		require.NoError(t, err)
		require.NotNil(t, got)
		require.Empty(t, got)
		in, err := f.s.GetInstance(f.ctx, id)
		require.NoError(t, err)
		require.False(t, in.Deleted)
	})
	for _, deactivate := range []struct {
		name string
		do   func(f *fixture)
	}{
		{"NewVersion", func(f *fixture) { require.NoError(f.t, f.s.SetActiveVersion(f.ctx, f.tmpl, f.version())) }},
		{"Deprecated", func(f *fixture) { require.NoError(f.t, f.s.SetTemplateDeprecated(f.ctx, f.tmpl, true)) }},
		{"Deleted", func(f *fixture) { require.NoError(f.t, f.s.DeleteTemplate(f.ctx, f.tmpl)) }},
	} {
		t.Run("Inactive/"+deactivate.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			p, other := f.preset(ptr(1)), f.preset(ptr(1))
			id := ids(6)
			// Victims, created in reverse ID order.
			for i := len(id) - 1; i >= 0; i-- {
				f.instance(inst{id: id[i], preset: p})
			}
			// Not victims.
			notVictims := []uuid.UUID{
				first(f.instance(inst{preset: p, status: prebuilds.JobRunning})),
				first(f.instance(inst{preset: p, status: prebuilds.JobSucceeded})),
				first(f.instance(inst{preset: p, owner: f.users})),
				first(f.instance(inst{preset: other})),
				first(f.instance(inst{preset: p, tr: prebuilds.TransitionStop})),
			}
			second, _ := f.instance(inst{preset: p, status: prebuilds.JobFailed})
			f.build(second, inst{preset: p})
			notVictims = append(notVictims, second)
			deactivate.do(f)

			cancelAt := t0.Add(time.Minute + 3*time.Nanosecond)
			got, err := f.s.CancelPending(f.ctx, prebuilds.CancelPendingParams{PresetID: p, Now: cancelAt})
			require.NoError(t, err)
			require.Equal(t, id, got, "canceled IDs in UUID order")
			for _, v := range id {
				in, err := f.s.GetInstance(f.ctx, v)
				require.NoError(t, err)
				require.True(t, in.Deleted)
				builds, err := f.s.ListBuilds(f.ctx, v)
				require.NoError(t, err)
				require.Equal(t, prebuilds.JobCanceled, builds[0].JobStatus)
				require.Equal(t, prebuilds.Micro(cancelAt), builds[0].CompletedAt)
			}
			for _, v := range notVictims {
				in, err := f.s.GetInstance(f.ctx, v)
				require.NoError(t, err)
				require.False(t, in.Deleted, "instance %s must survive", v)
			}
			again, err := f.s.CancelPending(f.ctx, prebuilds.CancelPendingParams{PresetID: p, Now: cancelAt})
			require.NoError(t, err)
			require.Empty(t, again)
		})
	}
}

func first(a, _ uuid.UUID) uuid.UUID { return a }

func TestSetPresetStatus(t *testing.T) {
	t.Parallel()
	set := func(from, to prebuilds.PresetStatus, missing bool) func(f *fixture) error {
		return func(f *fixture) error {
			id := uuid.New()
			if !missing {
				id = f.preset(ptr(1))
			}
			_, err := f.s.SetPresetStatus(f.ctx, id, from, to)
			return err
		}
	}
	runErrCases(t, []errCase{
		{"BadFrom", set("", prebuilds.PresetHardLimited, false), prebuilds.ErrInvalidArgument},
		{"BadBeforeMissing", set("", prebuilds.PresetHealthy, true), prebuilds.ErrInvalidArgument},
	})

	f := newFixture(t)
	p := f.preset(ptr(1))
	for _, step := range []struct {
		from, to prebuilds.PresetStatus
		changed  bool
		after    prebuilds.PresetStatus
	}{
		{prebuilds.PresetHardLimited, prebuilds.PresetHealthy, false, prebuilds.PresetHealthy},
		{prebuilds.PresetHealthy, prebuilds.PresetHardLimited, true, prebuilds.PresetHardLimited},
		{prebuilds.PresetHealthy, prebuilds.PresetHardLimited, false, prebuilds.PresetHardLimited},
		{prebuilds.PresetHardLimited, prebuilds.PresetHardLimited, true, prebuilds.PresetHardLimited},
		{prebuilds.PresetHardLimited, prebuilds.PresetHealthy, true, prebuilds.PresetHealthy},
	} {
		changed, err := f.s.SetPresetStatus(f.ctx, p, step.from, step.to)
		require.NoError(t, err)
		require.Equal(t, step.changed, changed, "%s → %s", step.from, step.to)
		got, err := f.s.GetPreset(f.ctx, p)
		require.NoError(t, err)
		require.Equal(t, step.after, got.Status)
	}
}

func TestReconciliationLock(t *testing.T) {
	t.Parallel()
	t.Run("ReleasedOnPanic", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		require.Panics(t, func() {
			_, _ = f.s.WithReconciliationLock(f.ctx, func(context.Context, prebuilds.SnapshotReader) error { panic("fn") })
		})
		acquired, err := f.s.WithReconciliationLock(f.ctx, func(context.Context, prebuilds.SnapshotReader) error { return nil })
		require.True(t, acquired)
		require.NoError(t, err)
	})
	t.Run("NestedIsNotAcquired", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		called := false
		acquired, err := f.s.WithReconciliationLock(f.ctx, func(ctx context.Context, _ prebuilds.SnapshotReader) error {
			inner, err := f.s.WithReconciliationLock(ctx, func(context.Context, prebuilds.SnapshotReader) error {
				called = true
				return nil
			})
			require.False(t, inner)
			return err
		})
		require.True(t, acquired)
		require.NoError(t, err)
		require.False(t, called, "fn must not run without the lock")
	})
	t.Run("ReaderExpiresWithFn", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		var kept prebuilds.SnapshotReader
		_, err := f.s.WithReconciliationLock(f.ctx, func(_ context.Context, r prebuilds.SnapshotReader) error {
			kept = r
			return nil
		})
		require.NoError(t, err)
		_, err = kept.Snapshot(f.ctx, prebuilds.SnapshotParams{Now: t0})
		require.ErrorIs(t, err, prebuilds.ErrConflict)
	})
}
