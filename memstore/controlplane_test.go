package memstore_test

import (
	"errors"
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
		{"CreateTemplate/ok", func(f *fixture) error {
			return f.s.CreateTemplate(f.ctx, prebuilds.Template{ID: uuid.New(), Name: "x"})
		}, nil},
		{"CreateTemplate/NilID", func(f *fixture) error {
			return f.s.CreateTemplate(f.ctx, prebuilds.Template{Name: "x"})
		}, prebuilds.ErrInvalidArgument},
		{"CreateTemplate/EmptyName", func(f *fixture) error {
			return f.s.CreateTemplate(f.ctx, prebuilds.Template{ID: uuid.New()})
		}, prebuilds.ErrInvalidArgument},
		{"CreateTemplate/ActiveVersionSet", func(f *fixture) error {
			return f.s.CreateTemplate(f.ctx, prebuilds.Template{ID: uuid.New(), Name: "x", ActiveVersionID: uuid.New()})
		}, prebuilds.ErrInvalidArgument},
		{"CreateTemplate/InvalidBeforeConflict", func(f *fixture) error {
			return f.s.CreateTemplate(f.ctx, prebuilds.Template{ID: f.tmpl})
		}, prebuilds.ErrInvalidArgument},
		{"CreateTemplate/Duplicate", func(f *fixture) error {
			return f.s.CreateTemplate(f.ctx, prebuilds.Template{ID: f.tmpl, Name: "again"})
		}, prebuilds.ErrConflict},

		{"CreateTemplateVersion/NilID", func(f *fixture) error {
			return f.s.CreateTemplateVersion(f.ctx, prebuilds.TemplateVersion{TemplateID: f.tmpl})
		}, prebuilds.ErrInvalidArgument},
		{"CreateTemplateVersion/NilTemplate", func(f *fixture) error {
			return f.s.CreateTemplateVersion(f.ctx, prebuilds.TemplateVersion{ID: uuid.New()})
		}, prebuilds.ErrInvalidArgument},
		{"CreateTemplateVersion/TemplateMissing", func(f *fixture) error {
			return f.s.CreateTemplateVersion(f.ctx, prebuilds.TemplateVersion{ID: f.ver, TemplateID: uuid.New()})
		}, prebuilds.ErrNotFound},
		{"CreateTemplateVersion/Duplicate", func(f *fixture) error {
			return f.s.CreateTemplateVersion(f.ctx, prebuilds.TemplateVersion{ID: f.ver, TemplateID: f.tmpl})
		}, prebuilds.ErrConflict},

		{"SetActiveVersion/ok", func(f *fixture) error {
			return f.s.SetActiveVersion(f.ctx, f.tmpl, f.version())
		}, nil},
		{"SetActiveVersion/TemplateMissing", func(f *fixture) error {
			return f.s.SetActiveVersion(f.ctx, uuid.New(), f.ver)
		}, prebuilds.ErrNotFound},
		{"SetActiveVersion/VersionMissing", func(f *fixture) error {
			return f.s.SetActiveVersion(f.ctx, f.tmpl, uuid.New())
		}, prebuilds.ErrNotFound},
		{"SetActiveVersion/VersionOfOtherTemplate", func(f *fixture) error {
			other := uuid.New()
			require.NoError(f.t, f.s.CreateTemplate(f.ctx, prebuilds.Template{ID: other, Name: "other"}))
			return f.s.SetActiveVersion(f.ctx, other, f.ver)
		}, prebuilds.ErrNotFound},
		{"SetActiveVersion/TemplateDeleted", func(f *fixture) error {
			require.NoError(f.t, f.s.DeleteTemplate(f.ctx, f.tmpl))
			return f.s.SetActiveVersion(f.ctx, f.tmpl, f.ver)
		}, prebuilds.ErrConflict},
		{"SetActiveVersion/NotFoundBeforeDeleted", func(f *fixture) error {
			require.NoError(f.t, f.s.DeleteTemplate(f.ctx, f.tmpl))
			return f.s.SetActiveVersion(f.ctx, f.tmpl, uuid.New())
		}, prebuilds.ErrNotFound},

		{"SetTemplateDeprecated/ok", func(f *fixture) error {
			return f.s.SetTemplateDeprecated(f.ctx, f.tmpl, true)
		}, nil},
		{"SetTemplateDeprecated/Missing", func(f *fixture) error {
			return f.s.SetTemplateDeprecated(f.ctx, uuid.New(), true)
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
		{"ok", func(f *fixture) error { return f.s.UpsertPreset(f.ctx, valid(f)) }, nil},
		{"Invalid/NegativeDesired", func(f *fixture) error {
			p := valid(f)
			p.Desired = ptr(-1)
			return f.s.UpsertPreset(f.ctx, p)
		}, prebuilds.ErrInvalidPreset},
		{"Invalid/BadCron", func(f *fixture) error {
			p := valid(f)
			p.Timezone = "UTC"
			p.Schedules = []prebuilds.Schedule{{Cron: "not cron", Instances: 1}}
			return f.s.UpsertPreset(f.ctx, p)
		}, prebuilds.ErrInvalidPreset},
		{"Invalid/BeforeVersionMissing", func(f *fixture) error {
			p := valid(f)
			p.TemplateVersionID = uuid.New()
			p.Name = ""
			return f.s.UpsertPreset(f.ctx, p)
		}, prebuilds.ErrInvalidPreset},
		{"VersionMissing", func(f *fixture) error {
			p := valid(f)
			p.TemplateVersionID = uuid.New()
			return f.s.UpsertPreset(f.ctx, p)
		}, prebuilds.ErrNotFound},
		{"IDOnOtherVersion", func(f *fixture) error {
			p := valid(f)
			require.NoError(f.t, f.s.UpsertPreset(f.ctx, p))
			p.TemplateVersionID = f.version()
			return f.s.UpsertPreset(f.ctx, p)
		}, prebuilds.ErrConflict},
		{"NameTaken", func(f *fixture) error {
			require.NoError(f.t, f.s.UpsertPreset(f.ctx, valid(f)))
			return f.s.UpsertPreset(f.ctx, valid(f))
		}, prebuilds.ErrConflict},
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
		{"DesiredUnset", func(f *fixture) error {
			p := valid(f)
			require.NoError(f.t, f.s.UpsertPreset(f.ctx, p))
			p.Desired = nil
			err := f.s.UpsertPreset(f.ctx, p)
			var ve *prebuilds.ValidationError
			require.ErrorAs(f.t, err, &ve)
			require.Equal(f.t, "desired", ve.Field)
			return err
		}, prebuilds.ErrInvalidPreset},
		{"DesiredSetLater", func(f *fixture) error {
			p := valid(f)
			p.Desired = nil
			require.NoError(f.t, f.s.UpsertPreset(f.ctx, p))
			p.Desired = ptr(0)
			return f.s.UpsertPreset(f.ctx, p)
		}, nil},
		{"InvalidatePreset/Missing", func(f *fixture) error {
			return f.s.InvalidatePreset(f.ctx, uuid.New(), t0)
		}, prebuilds.ErrNotFound},
		{"ResetPreset/Missing", func(f *fixture) error {
			return f.s.ResetPreset(f.ctx, uuid.New(), t0)
		}, prebuilds.ErrNotFound},
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
		{"ok", with(func(*fixture, *prebuilds.CreateInstanceParams) {}), nil},
		{"okWithPreset", with(func(f *fixture, p *prebuilds.CreateInstanceParams) { p.PresetID = f.preset(ptr(1)) }), nil},
		{"NilInstance", with(func(_ *fixture, p *prebuilds.CreateInstanceParams) { p.InstanceID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"NilBuild", with(func(_ *fixture, p *prebuilds.CreateInstanceParams) { p.BuildID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"NilOwner", with(func(_ *fixture, p *prebuilds.CreateInstanceParams) { p.OwnerID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"NilTemplate", with(func(_ *fixture, p *prebuilds.CreateInstanceParams) { p.TemplateID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"NilVersion", with(func(_ *fixture, p *prebuilds.CreateInstanceParams) { p.TemplateVersionID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"BadTransition", with(func(_ *fixture, p *prebuilds.CreateInstanceParams) { p.Transition = "restart" }), prebuilds.ErrInvalidArgument},
		{"TemplateMissing", with(func(_ *fixture, p *prebuilds.CreateInstanceParams) { p.TemplateID = uuid.New() }), prebuilds.ErrNotFound},
		{"VersionMissing", with(func(_ *fixture, p *prebuilds.CreateInstanceParams) { p.TemplateVersionID = uuid.New() }), prebuilds.ErrNotFound},
		{"VersionOfOtherTemplate", with(func(f *fixture, p *prebuilds.CreateInstanceParams) {
			other := uuid.New()
			require.NoError(f.t, f.s.CreateTemplate(f.ctx, prebuilds.Template{ID: other, Name: "o"}))
			p.TemplateID = other
		}), prebuilds.ErrNotFound},
		{"PresetMissing", with(func(_ *fixture, p *prebuilds.CreateInstanceParams) { p.PresetID = uuid.New() }), prebuilds.ErrNotFound},
		{"PresetOfOtherVersion", with(func(f *fixture, p *prebuilds.CreateInstanceParams) {
			p.PresetID = f.presetOn(f.version(), ptr(1))
		}), prebuilds.ErrInvalidArgument},
		{"PresetMissingBeforeDuplicate", with(func(f *fixture, p *prebuilds.CreateInstanceParams) {
			id, _ := f.instance(inst{})
			p.InstanceID, p.PresetID = id, uuid.New()
		}), prebuilds.ErrNotFound},
		{"DuplicateInstance", with(func(f *fixture, p *prebuilds.CreateInstanceParams) {
			p.InstanceID, _ = f.instance(inst{})
		}), prebuilds.ErrConflict},
		{"DuplicateBuild", with(func(f *fixture, p *prebuilds.CreateInstanceParams) {
			_, p.BuildID = f.instance(inst{})
		}), prebuilds.ErrConflict},
	})
}

func TestCreateInstanceEffects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	preset := f.preset(ptr(1))
	id, b := uuid.New(), uuid.New()
	now := t0.Add(1234 * time.Nanosecond)
	params := map[string]string{"k": "v"}
	require.NoError(t, f.s.CreateInstance(f.ctx, prebuilds.CreateInstanceParams{
		InstanceID: id, OwnerID: f.users, TemplateID: f.tmpl, Name: "mine", BuildID: b,
		TemplateVersionID: f.ver, PresetID: preset, Transition: prebuilds.TransitionStop, Parameters: params, Now: now,
	}))
	params["k"] = "changed"
	got, err := f.s.GetInstance(f.ctx, id)
	require.NoError(t, err)
	require.Equal(t, prebuilds.Instance{ID: id, OwnerID: f.users, TemplateID: f.tmpl, Name: "mine", CreatedAt: prebuilds.Micro(now)}, got)
	builds, err := f.s.ListBuilds(f.ctx, id)
	require.NoError(t, err)
	require.Equal(t, []prebuilds.Build{{
		ID: b, InstanceID: id, Number: 1, TemplateVersionID: f.ver, PresetID: preset,
		Transition: prebuilds.TransitionStop, JobStatus: prebuilds.JobPending,
		Parameters: map[string]string{"k": "v"}, CreatedAt: prebuilds.Micro(now),
	}}, builds)
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
		{"ok", with(func(*fixture, *prebuilds.StartBuildParams) {}), nil},
		{"NilInstance", with(func(_ *fixture, p *prebuilds.StartBuildParams) { p.InstanceID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"NilBuild", with(func(_ *fixture, p *prebuilds.StartBuildParams) { p.BuildID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"NilVersion", with(func(_ *fixture, p *prebuilds.StartBuildParams) { p.TemplateVersionID = uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"BadTransition", with(func(_ *fixture, p *prebuilds.StartBuildParams) { p.Transition = "" }), prebuilds.ErrInvalidArgument},
		{"InstanceMissing", with(func(_ *fixture, p *prebuilds.StartBuildParams) { p.InstanceID = uuid.New() }), prebuilds.ErrNotFound},
		{"InstanceDeleted", with(func(f *fixture, p *prebuilds.StartBuildParams) {
			require.NoError(f.t, f.s.RemoveInstance(f.ctx, p.InstanceID))
			p.TemplateVersionID = uuid.New() // deleted is checked first
		}), prebuilds.ErrConflict},
		{"LatestJobNotTerminal", with(func(f *fixture, p *prebuilds.StartBuildParams) {
			p.InstanceID, _ = f.instance(inst{status: prebuilds.JobCanceling})
			p.PresetID = uuid.New() // busy is checked before the preset
		}), prebuilds.ErrConflict},
		{"VersionMissing", with(func(_ *fixture, p *prebuilds.StartBuildParams) { p.TemplateVersionID = uuid.New() }), prebuilds.ErrNotFound},
		{"PresetMissing", with(func(_ *fixture, p *prebuilds.StartBuildParams) { p.PresetID = uuid.New() }), prebuilds.ErrNotFound},
		{"VersionOfOtherTemplate", with(func(f *fixture, p *prebuilds.StartBuildParams) {
			other := uuid.New()
			require.NoError(f.t, f.s.CreateTemplate(f.ctx, prebuilds.Template{ID: other, Name: "other"}))
			p.TemplateVersionID = uuid.New()
			require.NoError(f.t, f.s.CreateTemplateVersion(f.ctx, prebuilds.TemplateVersion{ID: p.TemplateVersionID, TemplateID: other, Name: "ov"}))
			p.PresetID = f.presetOn(p.TemplateVersionID, ptr(1)) // supply of another template's preset
		}), prebuilds.ErrInvalidArgument},
		{"VersionOfOtherTemplateBeforePresetMissing", with(func(f *fixture, p *prebuilds.StartBuildParams) {
			other := uuid.New()
			require.NoError(f.t, f.s.CreateTemplate(f.ctx, prebuilds.Template{ID: other, Name: "other"}))
			p.TemplateVersionID = uuid.New()
			require.NoError(f.t, f.s.CreateTemplateVersion(f.ctx, prebuilds.TemplateVersion{ID: p.TemplateVersionID, TemplateID: other, Name: "ov"}))
			p.PresetID = uuid.New()
		}), prebuilds.ErrInvalidArgument},
		{"PresetOfOtherVersion", with(func(f *fixture, p *prebuilds.StartBuildParams) {
			p.TemplateVersionID = f.version()
			p.PresetID = f.preset(ptr(1))
		}), prebuilds.ErrInvalidArgument},
		{"PresetOfOtherVersionBeforeDuplicateBuild", with(func(f *fixture, p *prebuilds.StartBuildParams) {
			p.PresetID = f.presetOn(f.version(), ptr(1))
			_, p.BuildID = f.instance(inst{})
		}), prebuilds.ErrInvalidArgument},
		{"PresetOnVersion", with(func(f *fixture, p *prebuilds.StartBuildParams) {
			p.TemplateVersionID = f.version()
			p.PresetID = f.presetOn(p.TemplateVersionID, ptr(1))
			p.Transition = prebuilds.TransitionStart
		}), nil},
		{"DuplicateBuild", with(func(f *fixture, p *prebuilds.StartBuildParams) {
			_, p.BuildID = f.instance(inst{})
		}), prebuilds.ErrConflict},
	})
}

func TestStartBuildNumbers(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id, _ := f.instance(inst{status: prebuilds.JobFailed})
	f.advance(time.Second)
	b2 := f.build(id, inst{tr: prebuilds.TransitionStop, status: prebuilds.JobSucceeded})
	f.advance(time.Second)
	b3 := f.build(id, inst{tr: prebuilds.TransitionStart})
	builds, err := f.s.ListBuilds(f.ctx, id)
	require.NoError(t, err)
	require.Len(t, builds, 3)
	for i, b := range builds {
		require.Equal(t, i+1, b.Number)
	}
	require.Equal(t, b2, builds[1].ID)
	require.Equal(t, b3, builds[2].ID)
	require.Equal(t, prebuilds.JobPending, builds[2].JobStatus)
	require.Equal(t, t0.Add(2*time.Second), builds[2].CreatedAt)
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
	cases := []errCase{
		{"UnknownStatus", update(prebuilds.JobPending, "done", ""), prebuilds.ErrInvalidArgument},
		{"KindWithoutFailure", update(prebuilds.JobPending, prebuilds.JobSucceeded, prebuilds.FailureTransient), prebuilds.ErrInvalidArgument},
		{"UnknownKind", update(prebuilds.JobPending, prebuilds.JobFailed, "cosmic"), prebuilds.ErrInvalidArgument},
		{"InvalidBeforeMissing", func(f *fixture) error {
			_, err := f.s.UpdateJob(f.ctx, prebuilds.UpdateJobParams{BuildID: uuid.New(), Status: "x"})
			return err
		}, prebuilds.ErrInvalidArgument},
		{"BuildMissing", func(f *fixture) error {
			_, err := f.s.UpdateJob(f.ctx, prebuilds.UpdateJobParams{BuildID: uuid.New(), Status: prebuilds.JobRunning})
			return err
		}, prebuilds.ErrNotFound},
		{"FailedWithKind", update(prebuilds.JobRunning, prebuilds.JobFailed, prebuilds.FailureTransient), nil},
	}
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

func TestUpdateJobEffects(t *testing.T) {
	t.Parallel()
	t.Run("CompletedAt", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		id, b := f.instance(inst{status: prebuilds.JobRunning})
		builds, err := f.s.ListBuilds(f.ctx, id)
		require.NoError(t, err)
		require.True(t, builds[0].CompletedAt.IsZero(), "running is not terminal")
		at := t0.Add(time.Minute + 999*time.Nanosecond)
		_, err = f.s.UpdateJob(f.ctx, prebuilds.UpdateJobParams{BuildID: b, Status: prebuilds.JobFailed, FailureKind: prebuilds.FailureTransient, Now: at})
		require.NoError(t, err)
		builds, err = f.s.ListBuilds(f.ctx, id)
		require.NoError(t, err)
		require.Equal(t, prebuilds.Micro(at), builds[0].CompletedAt)
		require.Equal(t, prebuilds.FailureTransient, builds[0].FailureKind)
		require.Equal(t, prebuilds.JobFailed, builds[0].JobStatus)
	})
	t.Run("SucceededDeleteDeletesInstance", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		id, _ := f.instance(inst{owner: f.users, status: prebuilds.JobSucceeded})
		b := f.build(id, inst{tr: prebuilds.TransitionDelete, status: prebuilds.JobRunning})
		got, err := f.s.GetInstance(f.ctx, id)
		require.NoError(t, err)
		require.False(t, got.Deleted)
		f.finish(b, prebuilds.JobSucceeded, "")
		got, err = f.s.GetInstance(f.ctx, id)
		require.NoError(t, err)
		require.True(t, got.Deleted)
	})
	t.Run("FailedDeleteKeepsInstance", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		id, _ := f.instance(inst{owner: f.users, status: prebuilds.JobSucceeded})
		f.build(id, inst{tr: prebuilds.TransitionDelete, status: prebuilds.JobFailed})
		got, err := f.s.GetInstance(f.ctx, id)
		require.NoError(t, err)
		require.False(t, got.Deleted)
	})

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

func TestInstanceErrors(t *testing.T) {
	t.Parallel()
	runErrCases(t, []errCase{
		{"SetReady/Missing", func(f *fixture) error { return f.s.SetReady(f.ctx, uuid.New(), true) }, prebuilds.ErrNotFound},
		{"RemoveInstance/Missing", func(f *fixture) error { return f.s.RemoveInstance(f.ctx, uuid.New()) }, prebuilds.ErrNotFound},
		{"RemoveInstance/Idempotent", func(f *fixture) error {
			id, _ := f.instance(inst{})
			require.NoError(f.t, f.s.RemoveInstance(f.ctx, id))
			require.NoError(f.t, f.s.RemoveInstance(f.ctx, id))
			got, err := f.s.GetInstance(f.ctx, id)
			require.NoError(f.t, err)
			require.True(f.t, got.Deleted)
			builds, err := f.s.ListBuilds(f.ctx, id)
			require.NoError(f.t, err)
			require.Len(f.t, builds, 1, "removal writes no build")
			return nil
		}, nil},
		{"GetInstance/Missing", func(f *fixture) error {
			_, err := f.s.GetInstance(f.ctx, uuid.New())
			return err
		}, prebuilds.ErrNotFound},
		{"ListBuilds/Missing", func(f *fixture) error {
			_, err := f.s.ListBuilds(f.ctx, uuid.New())
			return err
		}, prebuilds.ErrNotFound},
	})
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
		{"ok", claim(func(f *fixture) (uuid.UUID, uuid.UUID) { return ready(f), f.users }), nil},
		{"NilOwner", claim(func(f *fixture) (uuid.UUID, uuid.UUID) { return ready(f), uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"SystemOwner", claim(func(f *fixture) (uuid.UUID, uuid.UUID) { return ready(f), prebuilds.SystemOwner }), prebuilds.ErrInvalidArgument},
		{"InvalidBeforeMissing", claim(func(*fixture) (uuid.UUID, uuid.UUID) { return uuid.New(), uuid.Nil }), prebuilds.ErrInvalidArgument},
		{"PresetMissing", claim(func(f *fixture) (uuid.UUID, uuid.UUID) { return uuid.New(), f.users }), prebuilds.ErrNotFound},
		{"VersionNotActive", claim(func(f *fixture) (uuid.UUID, uuid.UUID) {
			p := ready(f)
			require.NoError(f.t, f.s.SetActiveVersion(f.ctx, f.tmpl, f.version()))
			return p, f.users
		}), prebuilds.ErrNoClaimablePrebuild},
		{"TemplateDeprecated", claim(func(f *fixture) (uuid.UUID, uuid.UUID) {
			p := ready(f)
			require.NoError(f.t, f.s.SetTemplateDeprecated(f.ctx, f.tmpl, true))
			return p, f.users
		}), prebuilds.ErrNoClaimablePrebuild},
		{"TemplateDeleted", claim(func(f *fixture) (uuid.UUID, uuid.UUID) {
			p := ready(f)
			require.NoError(f.t, f.s.DeleteTemplate(f.ctx, f.tmpl))
			return p, f.users
		}), prebuilds.ErrNoClaimablePrebuild},
		{"Empty", claim(func(f *fixture) (uuid.UUID, uuid.UUID) { return f.preset(ptr(1)), f.users }), prebuilds.ErrNoClaimablePrebuild},
		{"NotReady", claim(func(f *fixture) (uuid.UUID, uuid.UUID) {
			p := f.preset(ptr(1))
			f.instance(inst{preset: p, status: prebuilds.JobSucceeded})
			return p, f.users
		}), prebuilds.ErrNoClaimablePrebuild},
		{"StillStarting", claim(func(f *fixture) (uuid.UUID, uuid.UUID) {
			p := f.preset(ptr(1))
			f.instance(inst{preset: p, status: prebuilds.JobRunning, ready: true})
			return p, f.users
		}), prebuilds.ErrNoClaimablePrebuild},
		{"FailedStart", claim(func(f *fixture) (uuid.UUID, uuid.UUID) {
			p := f.preset(ptr(1))
			f.instance(inst{preset: p, status: prebuilds.JobFailed, ready: true})
			return p, f.users
		}), prebuilds.ErrNoClaimablePrebuild},
		{"Stopping", claim(func(f *fixture) (uuid.UUID, uuid.UUID) {
			p := f.preset(ptr(1))
			id, _ := f.instance(inst{preset: p, status: prebuilds.JobSucceeded, ready: true})
			f.build(id, inst{tr: prebuilds.TransitionStop})
			return p, f.users
		}), prebuilds.ErrNoClaimablePrebuild},
		{"Deleted", claim(func(f *fixture) (uuid.UUID, uuid.UUID) {
			p := f.preset(ptr(1))
			require.NoError(f.t, f.s.RemoveInstance(f.ctx, f.running(p)))
			return p, f.users
		}), prebuilds.ErrNoClaimablePrebuild},
		{"UserOwned", claim(func(f *fixture) (uuid.UUID, uuid.UUID) {
			p := f.preset(ptr(1))
			f.instance(inst{owner: uuid.New(), preset: p, status: prebuilds.JobSucceeded, ready: true})
			return p, f.users
		}), prebuilds.ErrNoClaimablePrebuild},
		{"AlreadyClaimed", claim(func(f *fixture) (uuid.UUID, uuid.UUID) {
			p := ready(f)
			_, err := f.s.Claim(f.ctx, prebuilds.ClaimParams{PresetID: p, Owner: uuid.New(), Now: f.now})
			require.NoError(f.t, err)
			return p, f.users
		}), prebuilds.ErrNoClaimablePrebuild},
		{"TTLExpired", claim(func(f *fixture) (uuid.UUID, uuid.UUID) {
			p := ready(f)
			setTTL(f, p, time.Minute)
			f.advance(time.Minute + time.Microsecond)
			return p, f.users
		}), prebuilds.ErrNoClaimablePrebuild},
		{"TTLExactlyReached", claim(func(f *fixture) (uuid.UUID, uuid.UUID) {
			p := ready(f)
			setTTL(f, p, time.Minute)
			f.advance(time.Minute)
			return p, f.users
		}), nil},
		{"Invalidated", claim(func(f *fixture) (uuid.UUID, uuid.UUID) {
			p := ready(f)
			require.NoError(f.t, f.s.InvalidatePreset(f.ctx, p, f.now.Add(time.Microsecond)))
			return p, f.users
		}), prebuilds.ErrNoClaimablePrebuild},
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

func setTTL(f *fixture, presetID uuid.UUID, ttl time.Duration) {
	f.t.Helper()
	p, err := f.s.GetPreset(f.ctx, presetID)
	require.NoError(f.t, err)
	p.TTL = ttl
	require.NoError(f.t, f.s.UpsertPreset(f.ctx, p))
}

func TestClaimOldestFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(3))
	id := ids(3)
	// Created in reverse ID order at the same instant, then one older.
	f.advance(time.Second)
	f.instance(inst{id: id[2], preset: p, status: prebuilds.JobSucceeded, ready: true})
	f.instance(inst{id: id[1], preset: p, status: prebuilds.JobSucceeded, ready: true})
	f.advance(-time.Second)
	f.instance(inst{id: id[0], preset: p, status: prebuilds.JobSucceeded, ready: true})
	claimAt := t0.Add(time.Hour + 7*time.Nanosecond)
	for _, want := range []uuid.UUID{id[0], id[1], id[2]} {
		got, err := f.s.Claim(f.ctx, prebuilds.ClaimParams{PresetID: p, Owner: f.users, Now: claimAt})
		require.NoError(t, err)
		require.Equal(t, want, got.ID)
		require.Equal(t, f.users, got.OwnerID)
		require.Equal(t, prebuilds.Micro(claimAt), got.ClaimedAt)
		stored, err := f.s.GetInstance(f.ctx, want)
		require.NoError(t, err)
		require.Equal(t, got, stored)
	}
	_, err := f.s.Claim(f.ctx, prebuilds.ClaimParams{PresetID: p, Owner: f.users, Now: claimAt})
	require.True(t, errors.Is(err, prebuilds.ErrNoClaimablePrebuild), "got %v", err)
}
