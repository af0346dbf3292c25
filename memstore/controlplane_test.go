package memstore_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// errCase is one operation applied to a fresh fixture and the error it must
// match (nil: success).
type errCase struct {
	name string
	op   func(f *fixture) error
	want error
}

func runErrCases(t *testing.T, cases []errCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			err := tc.op(f)
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tc.want)
			for _, other := range []error{prebuilds.ErrNotFound, prebuilds.ErrConflict, prebuilds.ErrNoClaimablePrebuild,
				prebuilds.ErrInvalidPreset, prebuilds.ErrInvalidArgument, prebuilds.ErrInvalidTransition} {
				if other != tc.want {
					require.NotErrorIs(t, err, other)
				}
			}
		})
	}
}

func TestTemplateErrors(t *testing.T) {
	t.Parallel()
	runErrCases(t, []errCase{
		{"CreateTemplate/NilID", func(f *fixture) error {
			return f.s.CreateTemplate(f.ctx, prebuilds.Template{Name: "x"})
		}, prebuilds.ErrInvalidArgument},
		{"CreateTemplate/EmptyName", func(f *fixture) error {
			return f.s.CreateTemplate(f.ctx, prebuilds.Template{ID: uuid.New()})
		}, prebuilds.ErrInvalidArgument},
		{"CreateTemplate/InvalidBeforeConflict", func(f *fixture) error {
			return f.s.CreateTemplate(f.ctx, prebuilds.Template{ID: f.tmpl})
		}, prebuilds.ErrInvalidArgument},

		{"CreateTemplateVersion/NilID", func(f *fixture) error {
			return f.s.CreateTemplateVersion(f.ctx, prebuilds.TemplateVersion{TemplateID: f.tmpl})
		}, prebuilds.ErrInvalidArgument},
		{"CreateTemplateVersion/TemplateMissing", func(f *fixture) error {
			return f.s.CreateTemplateVersion(f.ctx, prebuilds.TemplateVersion{ID: f.ver, TemplateID: uuid.New()})
		}, prebuilds.ErrNotFound},

		{"SetActiveVersion/VersionMissing", func(f *fixture) error {
			return f.s.SetActiveVersion(f.ctx, f.tmpl, uuid.New())
		}, prebuilds.ErrNotFound},
		{"SetActiveVersion/NotFoundBeforeDeleted", func(f *fixture) error {
			require.NoError(f.t, f.s.DeleteTemplate(f.ctx, f.tmpl))
			return f.s.SetActiveVersion(f.ctx, f.tmpl, uuid.New())
		}, prebuilds.ErrNotFound},

		{"DeleteTemplate/Idempotent", func(f *fixture) error {
			require.NoError(f.t, f.s.DeleteTemplate(f.ctx, f.tmpl))
			return f.s.DeleteTemplate(f.ctx, f.tmpl)
		}, nil},
		{"DeleteTemplate/Missing", func(f *fixture) error {
			return f.s.DeleteTemplate(f.ctx, uuid.New())
		}, prebuilds.ErrNotFound},
	})
}

func TestUpsertPresetErrors(t *testing.T) {
	t.Parallel()
	valid := func(f *fixture) prebuilds.Preset {
		return prebuilds.Preset{ID: uuid.New(), TemplateVersionID: f.ver, Name: "p", Desired: ptr(1)}
	}
	runErrCases(t, []errCase{
		{"NameTakenOnOtherVersionIsFine", func(f *fixture) error {
			require.NoError(f.t, f.s.UpsertPreset(f.ctx, valid(f)))
			p := valid(f)
			p.TemplateVersionID = f.version()
			return f.s.UpsertPreset(f.ctx, p)
		}, nil},
		{"NameTakenBeforeDesiredUnset", func(f *fixture) error {
			a, b := valid(f), valid(f)
			b.Name = "q"
			require.NoError(f.t, f.s.UpsertPreset(f.ctx, a))
			require.NoError(f.t, f.s.UpsertPreset(f.ctx, b))
			b.Name, b.Desired = "p", nil
			return f.s.UpsertPreset(f.ctx, b)
		}, prebuilds.ErrConflict},
		{"DesiredSetLater", func(f *fixture) error {
			p := valid(f)
			p.Desired = nil
			require.NoError(f.t, f.s.UpsertPreset(f.ctx, p))
			p.Desired = ptr(0)
			return f.s.UpsertPreset(f.ctx, p)
		}, nil},
		{"GetPreset/Missing", func(f *fixture) error {
			_, err := f.s.GetPreset(f.ctx, uuid.New())
			return err
		}, prebuilds.ErrNotFound},
	})
}

func TestUpsertPresetEffects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := uuid.New()
	inv := t0.Add(1500 * time.Nanosecond)
	require.NoError(t, f.s.UpsertPreset(f.ctx, prebuilds.Preset{
		ID: id, TemplateVersionID: f.ver, Name: "p", Desired: ptr(2), TTL: time.Hour,
		InvalidatedAt: inv, ResetAt: inv, Parameters: map[string]string{"a": "1"},
	}))
	got, err := f.s.GetPreset(f.ctx, id)
	require.NoError(t, err)
	require.Equal(t, prebuilds.PresetHealthy, got.Status, "empty status defaults to healthy")
	require.Equal(t, prebuilds.Micro(inv), got.InvalidatedAt)
	require.Equal(t, prebuilds.Micro(inv), got.ResetAt)

	// An update replaces name, desired, ttl, timezone, schedules and
	// parameters, and keeps status, reset_at and invalidated_at.
	_, err = f.s.SetPresetStatus(f.ctx, id, prebuilds.PresetHealthy, prebuilds.PresetHardLimited)
	require.NoError(t, err)
	require.NoError(t, f.s.UpsertPreset(f.ctx, prebuilds.Preset{
		ID: id, TemplateVersionID: f.ver, Name: "renamed", Desired: ptr(3), TTL: time.Minute,
		Timezone: "Europe/Paris", Schedules: []prebuilds.Schedule{{Cron: "* 9-17 * * 1-5", Instances: 5}},
		Parameters: map[string]string{"b": "2"}, Status: prebuilds.PresetValidationFailed,
	}))
	got, err = f.s.GetPreset(f.ctx, id)
	require.NoError(t, err)
	require.Equal(t, prebuilds.Preset{
		ID: id, TemplateVersionID: f.ver, Name: "renamed", Desired: ptr(3), TTL: time.Minute,
		InvalidatedAt: prebuilds.Micro(inv), Timezone: "Europe/Paris",
		Schedules:  []prebuilds.Schedule{{Cron: "* 9-17 * * 1-5", Instances: 5}},
		Parameters: map[string]string{"b": "2"}, Status: prebuilds.PresetHardLimited, ResetAt: prebuilds.Micro(inv),
	}, got)

	require.NoError(t, f.s.InvalidatePreset(f.ctx, id, t0))
	require.NoError(t, f.s.ResetPreset(f.ctx, id, t0.Add(time.Second)))
	got, err = f.s.GetPreset(f.ctx, id)
	require.NoError(t, err)
	require.Equal(t, t0, got.InvalidatedAt)
	require.Equal(t, t0.Add(time.Second), got.ResetAt)
	require.Equal(t, prebuilds.PresetHealthy, got.Status)
}

func TestCreateInstanceErrors(t *testing.T) {
	t.Parallel()
	valid := func(f *fixture) prebuilds.CreateInstanceParams {
		return prebuilds.CreateInstanceParams{
			InstanceID: uuid.New(), OwnerID: f.users, TemplateID: f.tmpl, BuildID: uuid.New(),
			TemplateVersionID: f.ver, Transition: prebuilds.TransitionStart, Now: t0,
		}
	}
	with := func(mod func(f *fixture, p *prebuilds.CreateInstanceParams)) func(f *fixture) error {
		return func(f *fixture) error {
			p := valid(f)
			mod(f, &p)
			return f.s.CreateInstance(f.ctx, p)
		}
	}
	runErrCases(t, []errCase{
		{"NilInstance", with(func(_ *fixture, p *prebuilds.CreateInstanceParams) { p.InstanceID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"NilBuild", with(func(_ *fixture, p *prebuilds.CreateInstanceParams) { p.BuildID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"NilTemplate", with(func(_ *fixture, p *prebuilds.CreateInstanceParams) { p.TemplateID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"NilVersion", with(func(_ *fixture, p *prebuilds.CreateInstanceParams) { p.TemplateVersionID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"BadTransition", with(func(_ *fixture, p *prebuilds.CreateInstanceParams) { p.Transition = "restart" }), prebuilds.ErrInvalidArgument},
		{"VersionMissing", with(func(_ *fixture, p *prebuilds.CreateInstanceParams) { p.TemplateVersionID = uuid.New() }), prebuilds.ErrNotFound},
		{"PresetMissingBeforeDuplicate", with(func(f *fixture, p *prebuilds.CreateInstanceParams) {
			id, _ := f.instance(inst{})
			p.InstanceID, p.PresetID = id, uuid.New()
		}), prebuilds.ErrNotFound},
	})
}

func TestStartBuildErrors(t *testing.T) {
	t.Parallel()
	// seed returns a not-deleted instance whose latest job succeeded.
	seed := func(f *fixture) uuid.UUID {
		id, _ := f.instance(inst{owner: f.users, status: prebuilds.JobSucceeded})
		return id
	}
	with := func(mod func(f *fixture, p *prebuilds.StartBuildParams)) func(f *fixture) error {
		return func(f *fixture) error {
			p := prebuilds.StartBuildParams{
				InstanceID: seed(f), BuildID: uuid.New(), TemplateVersionID: f.ver,
				Transition: prebuilds.TransitionStop, Now: t0,
			}
			mod(f, &p)
			return f.s.StartBuild(f.ctx, p)
		}
	}
	runErrCases(t, []errCase{
		{"NilInstance", with(func(_ *fixture, p *prebuilds.StartBuildParams) { p.InstanceID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"NilBuild", with(func(_ *fixture, p *prebuilds.StartBuildParams) { p.BuildID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"NilVersion", with(func(_ *fixture, p *prebuilds.StartBuildParams) { p.TemplateVersionID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"LatestJobNotTerminal", with(func(f *fixture, p *prebuilds.StartBuildParams) {
			p.InstanceID, _ = f.instance(inst{status: prebuilds.JobCanceling})
			p.PresetID = uuid.New() // busy is checked before the preset
		}), prebuilds.ErrConflict},
	})
}

func TestUpdateJobErrors(t *testing.T) {
	t.Parallel()
	update := func(from, to prebuilds.JobStatus, kind prebuilds.FailureKind) func(f *fixture) error {
		return func(f *fixture) error {
			_, b := f.instance(inst{status: from})
			_, err := f.s.UpdateJob(f.ctx, prebuilds.UpdateJobParams{BuildID: b, Status: to, FailureKind: kind, Now: t0})
			return err
		}
	}
	all := []prebuilds.JobStatus{prebuilds.JobPending, prebuilds.JobRunning, prebuilds.JobSucceeded,
		prebuilds.JobFailed, prebuilds.JobCanceling, prebuilds.JobCanceled}
	allowed := map[[2]prebuilds.JobStatus]bool{
		{prebuilds.JobPending, prebuilds.JobRunning}: true, {prebuilds.JobPending, prebuilds.JobSucceeded}: true,
		{prebuilds.JobPending, prebuilds.JobFailed}: true, {prebuilds.JobPending, prebuilds.JobCanceling}: true,
		{prebuilds.JobPending, prebuilds.JobCanceled}:  true,
		{prebuilds.JobRunning, prebuilds.JobSucceeded}: true, {prebuilds.JobRunning, prebuilds.JobFailed}: true,
		{prebuilds.JobRunning, prebuilds.JobCanceling}: true, {prebuilds.JobRunning, prebuilds.JobCanceled}: true,
		{prebuilds.JobCanceling, prebuilds.JobCanceled}: true, {prebuilds.JobCanceling, prebuilds.JobFailed}: true,
	}
	var cases []errCase
	for _, from := range all {
		for _, to := range all {
			if from == prebuilds.JobPending && to == prebuilds.JobPending {
				// A fresh job is pending; pending → pending is still refused.
				cases = append(cases, errCase{"Transition/pending→pending", update(from, to, ""), prebuilds.ErrInvalidTransition})
				continue
			}
			var want error
			if !allowed[[2]prebuilds.JobStatus{from, to}] {
				want = prebuilds.ErrInvalidTransition
			}
			// The fixture reaches `from` through one allowed update, except
			// running → canceling paths that need two.
			op := update(from, to, "")
			if from == prebuilds.JobCanceling {
				op = func(f *fixture) error {
					_, b := f.instance(inst{status: prebuilds.JobRunning})
					f.finish(b, prebuilds.JobCanceling, "")
					_, err := f.s.UpdateJob(f.ctx, prebuilds.UpdateJobParams{BuildID: b, Status: to, Now: t0})
					return err
				}
			}
			cases = append(cases, errCase{"Transition/" + string(from) + "→" + string(to), op, want})
		}
	}
	runErrCases(t, cases)
}

// TestUpdateJobEffects: a validation failure marks the preset
// validation_failed only for a prebuild's start build that names a healthy
// preset.
func TestUpdateJobEffects(t *testing.T) {
	t.Parallel()
	validation := func(t *testing.T, owner uuid.UUID, tr prebuilds.Transition, withPreset bool, status prebuilds.PresetStatus, kind prebuilds.FailureKind) (uuid.UUID, prebuilds.UpdateJobResult, prebuilds.Preset) {
		t.Helper()
		f := newFixture(t)
		preset := f.preset(ptr(1))
		if status != prebuilds.PresetHealthy {
			_, err := f.s.SetPresetStatus(f.ctx, preset, prebuilds.PresetHealthy, status)
			require.NoError(t, err)
		}
		p := inst{owner: owner, tr: tr, status: prebuilds.JobRunning}
		if withPreset {
			p.preset = preset
		}
		_, b := f.instance(p)
		res, err := f.s.UpdateJob(f.ctx, prebuilds.UpdateJobParams{BuildID: b, Status: prebuilds.JobFailed, FailureKind: kind, Now: t0})
		require.NoError(t, err)
		got, err := f.s.GetPreset(f.ctx, preset)
		require.NoError(t, err)
		return preset, res, got
	}
	t.Run("ValidationFailure", func(t *testing.T) {
		t.Parallel()
		preset, res, got := validation(t, prebuilds.SystemOwner, prebuilds.TransitionStart, true, prebuilds.PresetHealthy, prebuilds.FailureValidation)
		require.Equal(t, preset, res.ValidationFailedPreset)
		require.Equal(t, prebuilds.PresetValidationFailed, got.Status)
	})
	for _, tc := range []struct {
		name       string
		owner      uuid.UUID
		tr         prebuilds.Transition
		withPreset bool
		status     prebuilds.PresetStatus
		kind       prebuilds.FailureKind
		want       prebuilds.PresetStatus
	}{
		{"Transient", prebuilds.SystemOwner, prebuilds.TransitionStart, true, prebuilds.PresetHealthy, prebuilds.FailureTransient, prebuilds.PresetHealthy},
		{"UserOwned", uuid.New(), prebuilds.TransitionStart, true, prebuilds.PresetHealthy, prebuilds.FailureValidation, prebuilds.PresetHealthy},
		{"StopBuild", prebuilds.SystemOwner, prebuilds.TransitionStop, true, prebuilds.PresetHealthy, prebuilds.FailureValidation, prebuilds.PresetHealthy},
		{"NoPreset", prebuilds.SystemOwner, prebuilds.TransitionStart, false, prebuilds.PresetHealthy, prebuilds.FailureValidation, prebuilds.PresetHealthy},
		{"HardLimitedKept", prebuilds.SystemOwner, prebuilds.TransitionStart, true, prebuilds.PresetHardLimited, prebuilds.FailureValidation, prebuilds.PresetHardLimited},
	} {
		t.Run("ValidationFailureIgnored/"+tc.name, func(t *testing.T) {
			t.Parallel()
			_, res, got := validation(t, tc.owner, tc.tr, tc.withPreset, tc.status, tc.kind)
			require.Equal(t, uuid.Nil, res.ValidationFailedPreset)
			require.Equal(t, tc.want, got.Status)
		})
	}
}

// TestRemoveInstanceIdempotent: removing a removed instance succeeds and
// writes nothing.
func TestRemoveInstanceIdempotent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id, _ := f.instance(inst{})
	require.NoError(t, f.s.RemoveInstance(f.ctx, id))
	require.NoError(t, f.s.RemoveInstance(f.ctx, id))
	got, err := f.s.GetInstance(f.ctx, id)
	require.NoError(t, err)
	require.True(t, got.Deleted)
	builds, err := f.s.ListBuilds(f.ctx, id)
	require.NoError(t, err)
	require.Len(t, builds, 1, "removal writes no build")
}

func TestClaimErrors(t *testing.T) {
	t.Parallel()
	claim := func(setup func(f *fixture) (preset uuid.UUID, owner uuid.UUID)) func(f *fixture) error {
		return func(f *fixture) error {
			preset, owner := setup(f)
			_, err := f.s.Claim(f.ctx, prebuilds.ClaimParams{PresetID: preset, Owner: owner, Now: f.now})
			return err
		}
	}
	// ready makes a preset with one claimable prebuild.
	ready := func(f *fixture) uuid.UUID {
		p := f.preset(ptr(1))
		f.running(p)
		return p
	}
	runErrCases(t, []errCase{
		{"InvalidBeforeMissing", claim(func(*fixture) (uuid.UUID, uuid.UUID) { return uuid.New(), uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"InvalidatedAtCreation", claim(func(f *fixture) (uuid.UUID, uuid.UUID) {
			p := ready(f)
			require.NoError(f.t, f.s.InvalidatePreset(f.ctx, p, f.now))
			return p, f.users
		}), nil},
		{"CurrentPresetMovedAway", claim(func(f *fixture) (uuid.UUID, uuid.UUID) {
			p, q := f.preset(ptr(1)), f.preset(ptr(1))
			id := f.running(p)
			f.build(id, inst{tr: prebuilds.TransitionStart, preset: q, status: prebuilds.JobSucceeded})
			return p, f.users
		}), prebuilds.ErrNoClaimablePrebuild},
		{"CurrentPresetKeptByPresetlessStart", claim(func(f *fixture) (uuid.UUID, uuid.UUID) {
			p := f.preset(ptr(1))
			id := f.running(p)
			f.build(id, inst{tr: prebuilds.TransitionStop, status: prebuilds.JobSucceeded})
			f.build(id, inst{tr: prebuilds.TransitionStart, status: prebuilds.JobSucceeded})
			return p, f.users
		}), nil},
	})
}
