package pgstore_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func TestTemplateErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx

	cases := []struct {
		name string
		err  error
		want error
	}{
		{"create nil id", f.s.CreateTemplate(ctx, prebuilds.Template{Name: "x"}), prebuilds.ErrInvalidArgument},
		{"create empty name", f.s.CreateTemplate(ctx, prebuilds.Template{ID: uuid.New()}), prebuilds.ErrInvalidArgument},
		{"create with active version", f.s.CreateTemplate(ctx, prebuilds.Template{ID: uuid.New(), Name: "x", ActiveVersionID: f.ver}), prebuilds.ErrInvalidArgument},
		{"create existing", f.s.CreateTemplate(ctx, prebuilds.Template{ID: f.tmpl, Name: "x"}), prebuilds.ErrConflict},
		{"version nil id", f.s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{TemplateID: f.tmpl}), prebuilds.ErrInvalidArgument},
		{"version nil template", f.s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: uuid.New()}), prebuilds.ErrInvalidArgument},
		// Template missing is checked before the ID conflict.
		{"version template missing", f.s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: f.ver, TemplateID: uuid.New()}), prebuilds.ErrNotFound},
		{"version exists", f.s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: f.ver, TemplateID: f.tmpl}), prebuilds.ErrConflict},
		{"activate template missing", f.s.SetActiveVersion(ctx, uuid.New(), f.ver), prebuilds.ErrNotFound},
		{"activate version missing", f.s.SetActiveVersion(ctx, f.tmpl, uuid.New()), prebuilds.ErrNotFound},
		{"deprecate missing", f.s.SetTemplateDeprecated(ctx, uuid.New(), true), prebuilds.ErrNotFound},
		{"delete missing", f.s.DeleteTemplate(ctx, uuid.New()), prebuilds.ErrNotFound},
	}
	for _, c := range cases {
		require.ErrorIs(t, c.err, c.want, c.name)
		require.ErrorContains(t, c.err, "pgstore: ", c.name)
	}

	// A version of another template is not found; a deleted template
	// conflicts only once the version is known.
	other := uuid.New()
	require.NoError(t, f.s.CreateTemplate(ctx, prebuilds.Template{ID: other, Name: "other"}))
	require.ErrorIs(t, f.s.SetActiveVersion(ctx, other, f.ver), prebuilds.ErrNotFound)
	require.NoError(t, f.s.DeleteTemplate(ctx, other))
	require.NoError(t, f.s.DeleteTemplate(ctx, other), "delete is idempotent")
	require.ErrorIs(t, f.s.SetActiveVersion(ctx, other, uuid.New()), prebuilds.ErrNotFound)
	otherVer := uuid.New()
	require.NoError(t, f.s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: otherVer, TemplateID: other}))
	require.ErrorIs(t, f.s.SetActiveVersion(ctx, other, otherVer), prebuilds.ErrConflict)
}

func TestUpsertPresetErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	existing := f.preset(ptr(1))
	unset := f.preset(nil)
	other := f.version()

	err := f.s.UpsertPreset(ctx, prebuilds.Preset{ID: uuid.New(), TemplateVersionID: f.ver, Name: "n", Desired: ptr(-1)})
	require.ErrorIs(t, err, prebuilds.ErrInvalidPreset)
	var verr *prebuilds.ValidationError
	require.ErrorAs(t, err, &verr)
	require.Equal(t, "desired", verr.Field)

	// Validation comes before the version lookup.
	err = f.s.UpsertPreset(ctx, prebuilds.Preset{ID: uuid.New(), TemplateVersionID: uuid.New(), Name: "n", TTL: -time.Second})
	require.ErrorIs(t, err, prebuilds.ErrInvalidPreset)
	err = f.s.UpsertPreset(ctx, prebuilds.Preset{ID: uuid.New(), TemplateVersionID: uuid.New(), Name: "n"})
	require.ErrorIs(t, err, prebuilds.ErrNotFound)
	// Existing ID on another version.
	err = f.s.UpsertPreset(ctx, prebuilds.Preset{ID: existing, TemplateVersionID: other, Name: "n"})
	require.ErrorIs(t, err, prebuilds.ErrConflict)
	// Name taken by another preset of the version.
	err = f.s.UpsertPreset(ctx, prebuilds.Preset{ID: uuid.New(), TemplateVersionID: f.ver, Name: "p-" + existing.String()})
	require.ErrorIs(t, err, prebuilds.ErrConflict)
	// Desired cannot be unset; the name check comes first.
	err = f.s.UpsertPreset(ctx, prebuilds.Preset{ID: existing, TemplateVersionID: f.ver, Name: "p-" + existing.String()})
	require.ErrorAs(t, err, &verr)
	require.Equal(t, "desired", verr.Field)
	// Still nil → nil is fine, and nil → set.
	require.NoError(t, f.s.UpsertPreset(ctx, prebuilds.Preset{ID: unset, TemplateVersionID: f.ver, Name: "renamed"}))
	require.NoError(t, f.s.UpsertPreset(ctx, prebuilds.Preset{ID: unset, TemplateVersionID: f.ver, Name: "renamed", Desired: ptr(0)}))

	require.ErrorIs(t, f.s.InvalidatePreset(ctx, uuid.New(), t0), prebuilds.ErrNotFound)
	require.ErrorIs(t, f.s.ResetPreset(ctx, uuid.New(), t0), prebuilds.ErrNotFound)
	_, err = f.s.GetPreset(ctx, uuid.New())
	require.ErrorIs(t, err, prebuilds.ErrNotFound)
}

func TestUpsertPresetEffects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	p := prebuilds.Preset{
		ID: uuid.New(), TemplateVersionID: f.ver, Name: "ws", Desired: ptr(2), TTL: 90 * time.Minute,
		InvalidatedAt: t0.Add(123 * time.Nanosecond), Timezone: "America/Los_Angeles",
		Schedules:  []prebuilds.Schedule{{Cron: "* 2-4 * * 1", Instances: 3}, {Cron: "* 6-8 * * 1", Instances: 0}},
		Parameters: map[string]string{"a": "1", "b": "2"},
		Status:     prebuilds.PresetHardLimited, ResetAt: t0.Add(time.Second),
	}
	require.NoError(t, f.s.UpsertPreset(ctx, p))
	got, err := f.s.GetPreset(ctx, p.ID)
	require.NoError(t, err)
	want := p
	want.InvalidatedAt = t0 // microsecond precision
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("inserted preset (-want +got):\n%s", d)
	}
	require.Equal(t, time.UTC, got.ResetAt.Location())

	// An update replaces name, desired, TTL, zone, schedules and parameters
	// and keeps status, reset_at and invalidated_at.
	upd := prebuilds.Preset{
		ID: p.ID, TemplateVersionID: f.ver, Name: "ws2", Desired: ptr(0), TTL: 0, Timezone: "UTC",
		Schedules: []prebuilds.Schedule{{Cron: "0 * * * *", Instances: 1}},
		Status:    prebuilds.PresetHealthy, ResetAt: t0.Add(time.Hour), InvalidatedAt: t0.Add(time.Hour),
	}
	require.NoError(t, f.s.UpsertPreset(ctx, upd))
	got, err = f.s.GetPreset(ctx, p.ID)
	require.NoError(t, err)
	want = upd
	want.Status, want.ResetAt, want.InvalidatedAt = p.Status, p.ResetAt, t0
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("updated preset (-want +got):\n%s", d)
	}

	require.NoError(t, f.s.InvalidatePreset(ctx, p.ID, t0.Add(2*time.Hour)))
	require.NoError(t, f.s.ResetPreset(ctx, p.ID, t0.Add(3*time.Hour)))
	got, err = f.s.GetPreset(ctx, p.ID)
	require.NoError(t, err)
	require.Equal(t, t0.Add(2*time.Hour), got.InvalidatedAt)
	require.Equal(t, t0.Add(3*time.Hour), got.ResetAt)
	require.Equal(t, prebuilds.PresetHealthy, got.Status)

	// Status "" defaults to healthy.
	q := f.preset(nil)
	got, err = f.s.GetPreset(ctx, q)
	require.NoError(t, err)
	require.Equal(t, prebuilds.PresetHealthy, got.Status)
	require.Nil(t, got.Desired)
	require.Nil(t, got.Schedules)
}

func TestCreateInstanceErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	preset := f.preset(ptr(1))
	otherVer := f.version()
	otherPreset := f.presetOn(otherVer, nil)
	otherTmpl := uuid.New()
	require.NoError(t, f.s.CreateTemplate(ctx, prebuilds.Template{ID: otherTmpl, Name: "o"}))

	good := func() prebuilds.CreateInstanceParams {
		return prebuilds.CreateInstanceParams{
			InstanceID: uuid.New(), OwnerID: f.user, TemplateID: f.tmpl, BuildID: uuid.New(),
			TemplateVersionID: f.ver, PresetID: preset, Transition: prebuilds.TransitionStart, Now: t0,
		}
	}
	existing := good()
	require.NoError(t, f.s.CreateInstance(ctx, existing))

	cases := []struct {
		name string
		mod  func(*prebuilds.CreateInstanceParams)
		want error
	}{
		{"nil instance", func(p *prebuilds.CreateInstanceParams) { p.InstanceID = uuid.Nil }, prebuilds.ErrInvalidArgument},
		{"nil build", func(p *prebuilds.CreateInstanceParams) { p.BuildID = uuid.Nil }, prebuilds.ErrInvalidArgument},
		{"nil owner", func(p *prebuilds.CreateInstanceParams) { p.OwnerID = uuid.Nil }, prebuilds.ErrInvalidArgument},
		{"nil template", func(p *prebuilds.CreateInstanceParams) { p.TemplateID = uuid.Nil }, prebuilds.ErrInvalidArgument},
		{"nil version", func(p *prebuilds.CreateInstanceParams) { p.TemplateVersionID = uuid.Nil }, prebuilds.ErrInvalidArgument},
		{"bad transition", func(p *prebuilds.CreateInstanceParams) { p.Transition = "restart"; p.TemplateID = uuid.New() }, prebuilds.ErrInvalidArgument},
		{"template missing", func(p *prebuilds.CreateInstanceParams) { p.TemplateID = uuid.New(); p.InstanceID = existing.InstanceID }, prebuilds.ErrNotFound},
		{"version missing", func(p *prebuilds.CreateInstanceParams) { p.TemplateVersionID = uuid.New() }, prebuilds.ErrNotFound},
		{"version of another template", func(p *prebuilds.CreateInstanceParams) { p.TemplateID = otherTmpl }, prebuilds.ErrNotFound},
		{"preset missing", func(p *prebuilds.CreateInstanceParams) { p.PresetID = uuid.New(); p.InstanceID = existing.InstanceID }, prebuilds.ErrNotFound},
		{"preset of another version", func(p *prebuilds.CreateInstanceParams) { p.PresetID = otherPreset; p.InstanceID = existing.InstanceID }, prebuilds.ErrInvalidArgument},
		{"instance exists", func(p *prebuilds.CreateInstanceParams) { p.InstanceID = existing.InstanceID }, prebuilds.ErrConflict},
		{"build exists", func(p *prebuilds.CreateInstanceParams) { p.BuildID = existing.BuildID }, prebuilds.ErrConflict},
	}
	for _, c := range cases {
		p := good()
		c.mod(&p)
		require.ErrorIs(t, f.s.CreateInstance(ctx, p), c.want, c.name)
	}
}

func TestCreateInstanceEffects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	preset := f.preset(ptr(1))
	now := t0.Add(1500 * time.Nanosecond)
	p := prebuilds.CreateInstanceParams{
		InstanceID: uuid.New(), OwnerID: f.user, TemplateID: f.tmpl, Name: "mine", BuildID: uuid.New(),
		TemplateVersionID: f.ver, PresetID: preset, Transition: prebuilds.TransitionStart,
		Parameters: map[string]string{"k": "v"}, Now: now,
	}
	require.NoError(t, f.s.CreateInstance(ctx, p))
	inst, err := f.s.GetInstance(ctx, p.InstanceID)
	require.NoError(t, err)
	require.Equal(t, prebuilds.Instance{ID: p.InstanceID, OwnerID: f.user, TemplateID: f.tmpl, Name: "mine",
		CreatedAt: prebuilds.Micro(now)}, inst)
	builds, err := f.s.ListBuilds(ctx, p.InstanceID)
	require.NoError(t, err)
	require.Equal(t, []prebuilds.Build{{
		ID: p.BuildID, InstanceID: p.InstanceID, Number: 1, TemplateVersionID: f.ver, PresetID: preset,
		Transition: prebuilds.TransitionStart, JobStatus: prebuilds.JobPending, Parameters: map[string]string{"k": "v"},
		CreatedAt: prebuilds.Micro(now),
	}}, builds)

	_, err = f.s.GetInstance(ctx, uuid.New())
	require.ErrorIs(t, err, prebuilds.ErrNotFound)
	_, err = f.s.ListBuilds(ctx, uuid.New())
	require.ErrorIs(t, err, prebuilds.ErrNotFound)
	require.ErrorIs(t, f.s.SetReady(ctx, uuid.New(), true), prebuilds.ErrNotFound)
	require.ErrorIs(t, f.s.RemoveInstance(ctx, uuid.New()), prebuilds.ErrNotFound)
	require.NoError(t, f.s.SetReady(ctx, p.InstanceID, true))
	require.NoError(t, f.s.RemoveInstance(ctx, p.InstanceID))
	require.NoError(t, f.s.RemoveInstance(ctx, p.InstanceID), "idempotent")
	inst, err = f.s.GetInstance(ctx, p.InstanceID)
	require.NoError(t, err)
	require.True(t, inst.Ready)
	require.True(t, inst.Deleted)
}

func TestStartBuildErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	preset := f.preset(ptr(1))
	running := f.prebuild(preset, t0, prebuilds.JobSucceeded)
	pending := f.prebuild(preset, t0, prebuilds.JobPending)
	gone := f.prebuild(preset, t0, prebuilds.JobSucceeded)
	require.NoError(t, f.s.RemoveInstance(ctx, gone))
	existingBuild := f.latestBuildID(pending)
	otherTmpl, otherVer := uuid.New(), uuid.New()
	require.NoError(t, f.s.CreateTemplate(ctx, prebuilds.Template{ID: otherTmpl, Name: "other", OrganizationID: f.org, OrganizationName: "org"}))
	require.NoError(t, f.s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: otherVer, TemplateID: otherTmpl, Name: "ov", CreatedAt: t0}))
	otherTmplPreset := f.presetOn(otherVer, ptr(1))
	v2 := f.version()

	good := func() prebuilds.StartBuildParams {
		return prebuilds.StartBuildParams{InstanceID: running, BuildID: uuid.New(), TemplateVersionID: f.ver,
			Transition: prebuilds.TransitionStop, Now: t0}
	}
	cases := []struct {
		name string
		mod  func(*prebuilds.StartBuildParams)
		want error
	}{
		{"nil instance", func(p *prebuilds.StartBuildParams) { p.InstanceID = uuid.Nil }, prebuilds.ErrInvalidArgument},
		{"nil build", func(p *prebuilds.StartBuildParams) { p.BuildID = uuid.Nil }, prebuilds.ErrInvalidArgument},
		{"nil version", func(p *prebuilds.StartBuildParams) { p.TemplateVersionID = uuid.Nil }, prebuilds.ErrInvalidArgument},
		{"bad transition", func(p *prebuilds.StartBuildParams) { p.Transition = ""; p.InstanceID = uuid.New() }, prebuilds.ErrInvalidArgument},
		{"instance missing", func(p *prebuilds.StartBuildParams) { p.InstanceID = uuid.New() }, prebuilds.ErrNotFound},
		{"instance deleted", func(p *prebuilds.StartBuildParams) { p.InstanceID = gone; p.TemplateVersionID = uuid.New() }, prebuilds.ErrConflict},
		{"latest job in progress", func(p *prebuilds.StartBuildParams) { p.InstanceID = pending; p.TemplateVersionID = uuid.New() }, prebuilds.ErrConflict},
		{"version missing", func(p *prebuilds.StartBuildParams) { p.TemplateVersionID = uuid.New(); p.BuildID = existingBuild }, prebuilds.ErrNotFound},
		{"preset missing", func(p *prebuilds.StartBuildParams) { p.PresetID = uuid.New(); p.BuildID = existingBuild }, prebuilds.ErrNotFound},
		{"version of another template", func(p *prebuilds.StartBuildParams) {
			p.TemplateVersionID, p.PresetID, p.Transition = otherVer, otherTmplPreset, prebuilds.TransitionStart
		}, prebuilds.ErrInvalidArgument},
		{"version of another template before preset missing", func(p *prebuilds.StartBuildParams) {
			p.TemplateVersionID, p.PresetID = otherVer, uuid.New()
		}, prebuilds.ErrInvalidArgument},
		{"preset of another version", func(p *prebuilds.StartBuildParams) {
			p.TemplateVersionID, p.PresetID, p.BuildID = v2, preset, existingBuild
		}, prebuilds.ErrInvalidArgument},
		{"build exists", func(p *prebuilds.StartBuildParams) { p.BuildID = existingBuild }, prebuilds.ErrConflict},
	}
	for _, c := range cases {
		p := good()
		c.mod(&p)
		require.ErrorIs(t, f.s.StartBuild(ctx, p), c.want, c.name)
	}

	builds, err := f.s.ListBuilds(ctx, running)
	require.NoError(t, err)
	require.Len(t, builds, 1, "rejected StartBuild calls wrote builds")

	// Numbers follow the latest.
	b2 := f.build(running, f.ver, uuid.Nil, prebuilds.TransitionStop, prebuilds.JobSucceeded, t0.Add(time.Minute))
	b3 := f.build(running, f.ver, preset, prebuilds.TransitionStart, prebuilds.JobPending, t0.Add(2*time.Minute))
	builds, err = f.s.ListBuilds(ctx, running)
	require.NoError(t, err)
	require.Len(t, builds, 3)
	require.Equal(t, []uuid.UUID{b2, b3}, []uuid.UUID{builds[1].ID, builds[2].ID})
	require.Equal(t, []int{1, 2, 3}, []int{builds[0].Number, builds[1].Number, builds[2].Number})
	require.Equal(t, uuid.Nil, builds[1].PresetID)
}

func TestUpdateJobErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	preset := f.preset(ptr(1))
	inst := f.prebuild(preset, t0, prebuilds.JobPending)
	b := f.latestBuildID(inst)

	for _, p := range []prebuilds.UpdateJobParams{
		{BuildID: b, Status: "done"},
		{BuildID: b, Status: prebuilds.JobSucceeded, FailureKind: prebuilds.FailureTransient},
		{BuildID: b, Status: prebuilds.JobFailed, FailureKind: "cosmic"},
		{BuildID: uuid.New(), Status: "done"},
	} {
		_, err := f.s.UpdateJob(ctx, p)
		require.ErrorIs(t, err, prebuilds.ErrInvalidArgument, "%+v", p)
	}
	_, err := f.s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: uuid.New(), Status: prebuilds.JobRunning})
	require.ErrorIs(t, err, prebuilds.ErrNotFound)

	allowed := map[prebuilds.JobStatus][]prebuilds.JobStatus{
		prebuilds.JobPending:   {prebuilds.JobRunning, prebuilds.JobSucceeded, prebuilds.JobFailed, prebuilds.JobCanceling, prebuilds.JobCanceled},
		prebuilds.JobRunning:   {prebuilds.JobSucceeded, prebuilds.JobFailed, prebuilds.JobCanceling, prebuilds.JobCanceled},
		prebuilds.JobCanceling: {prebuilds.JobCanceled, prebuilds.JobFailed},
	}
	all := []prebuilds.JobStatus{prebuilds.JobPending, prebuilds.JobRunning, prebuilds.JobSucceeded, prebuilds.JobFailed, prebuilds.JobCanceling, prebuilds.JobCanceled}
	// reach puts a fresh build in status from.
	reach := func(from prebuilds.JobStatus) uuid.UUID {
		inst := f.prebuild(preset, t0, prebuilds.JobPending)
		b := f.latestBuildID(inst)
		switch from {
		case prebuilds.JobPending:
		case prebuilds.JobCanceling:
			f.job(b, prebuilds.JobRunning, t0)
			f.job(b, prebuilds.JobCanceling, t0)
		default:
			f.job(b, from, t0)
		}
		return b
	}
	for _, from := range all {
		for _, to := range all {
			ok := false
			for _, a := range allowed[from] {
				ok = ok || a == to
			}
			b := reach(from)
			_, err := f.s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: b, Status: to, Now: t0})
			if ok {
				require.NoError(t, err, "%s → %s", from, to)
			} else {
				require.ErrorIs(t, err, prebuilds.ErrInvalidTransition, "%s → %s", from, to)
			}
		}
	}
}

func TestUpdateJobEffects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	preset := f.preset(ptr(1))
	at := t0.Add(time.Minute + 999*time.Nanosecond)

	// Terminal statuses set completed_at; others do not.
	inst := f.prebuild(preset, t0, prebuilds.JobPending)
	b := f.latestBuildID(inst)
	f.job(b, prebuilds.JobRunning, at)
	builds, err := f.s.ListBuilds(ctx, inst)
	require.NoError(t, err)
	require.True(t, builds[0].CompletedAt.IsZero())
	res, err := f.s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: b, Status: prebuilds.JobFailed, FailureKind: prebuilds.FailureTransient, Now: at})
	require.NoError(t, err)
	require.Equal(t, uuid.Nil, res.ValidationFailedPreset)
	builds, err = f.s.ListBuilds(ctx, inst)
	require.NoError(t, err)
	require.Equal(t, prebuilds.Micro(at), builds[0].CompletedAt)
	require.Equal(t, prebuilds.FailureTransient, builds[0].FailureKind)

	// A succeeded delete marks the instance deleted.
	running := f.prebuild(preset, t0, prebuilds.JobSucceeded)
	del := f.build(running, f.ver, uuid.Nil, prebuilds.TransitionDelete, prebuilds.JobSucceeded, at)
	got, err := f.s.GetInstance(ctx, running)
	require.NoError(t, err)
	require.True(t, got.Deleted)
	_ = del

	// A validation failure of a prebuild's start build: healthy →
	// validation_failed once.
	v1 := f.prebuild(preset, t0, prebuilds.JobPending)
	res, err = f.s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: f.latestBuildID(v1), Status: prebuilds.JobFailed, FailureKind: prebuilds.FailureValidation, Now: at})
	require.NoError(t, err)
	require.Equal(t, preset, res.ValidationFailedPreset)
	p, err := f.s.GetPreset(ctx, preset)
	require.NoError(t, err)
	require.Equal(t, prebuilds.PresetValidationFailed, p.Status)
	v2 := f.prebuild(preset, t0, prebuilds.JobPending)
	res, err = f.s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: f.latestBuildID(v2), Status: prebuilds.JobFailed, FailureKind: prebuilds.FailureValidation, Now: at})
	require.NoError(t, err)
	require.Equal(t, uuid.Nil, res.ValidationFailedPreset, "already validation_failed")

	// Not for a user's instance.
	other := f.preset(ptr(1))
	user := prebuilds.CreateInstanceParams{InstanceID: uuid.New(), OwnerID: f.user, TemplateID: f.tmpl, BuildID: uuid.New(),
		TemplateVersionID: f.ver, PresetID: other, Transition: prebuilds.TransitionStart, Now: t0}
	require.NoError(t, f.s.CreateInstance(ctx, user))
	res, err = f.s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: user.BuildID, Status: prebuilds.JobFailed, FailureKind: prebuilds.FailureValidation, Now: at})
	require.NoError(t, err)
	require.Equal(t, uuid.Nil, res.ValidationFailedPreset)
	p, err = f.s.GetPreset(ctx, other)
	require.NoError(t, err)
	require.Equal(t, prebuilds.PresetHealthy, p.Status)
}

func TestClaimErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	preset := f.preset(ptr(3))
	f.ready(preset, t0)

	_, err := f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: preset, Owner: uuid.Nil, Now: t0})
	require.ErrorIs(t, err, prebuilds.ErrInvalidArgument)
	_, err = f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: uuid.New(), Owner: prebuilds.SystemOwner, Now: t0})
	require.ErrorIs(t, err, prebuilds.ErrInvalidArgument)
	_, err = f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: uuid.New(), Owner: f.user, Now: t0})
	require.ErrorIs(t, err, prebuilds.ErrNotFound)

	// Inactive preset: deprecated template.
	require.NoError(t, f.s.SetTemplateDeprecated(ctx, f.tmpl, true))
	_, err = f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: preset, Owner: f.user, Now: t0})
	require.ErrorIs(t, err, prebuilds.ErrNoClaimablePrebuild)
	require.NoError(t, f.s.SetTemplateDeprecated(ctx, f.tmpl, false))

	got, err := f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: preset, Owner: f.user, Now: t0})
	require.NoError(t, err)
	require.Equal(t, f.user, got.OwnerID)
	_, err = f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: preset, Owner: f.user, Now: t0})
	require.ErrorIs(t, err, prebuilds.ErrNoClaimablePrebuild)
	require.False(t, errors.Is(err, prebuilds.ErrNotFound))
}

func TestClaimSkips(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	ttl := time.Hour
	preset := uuid.New()
	require.NoError(t, f.s.UpsertPreset(ctx, prebuilds.Preset{ID: preset, TemplateVersionID: f.ver, Name: "ttl", Desired: ptr(5), TTL: ttl}))
	now := t0.Add(2 * time.Hour)

	notReady := f.prebuild(preset, now, prebuilds.JobSucceeded)
	expired := f.ready(preset, now.Add(-ttl-time.Microsecond))
	pending := f.prebuild(preset, now, prebuilds.JobPending)
	require.NoError(t, f.s.SetReady(ctx, pending, true))
	stopping := f.ready(preset, now)
	f.build(stopping, f.ver, uuid.Nil, prebuilds.TransitionStop, prebuilds.JobPending, now)
	// Current preset moved to another preset by a later start build.
	moved := f.ready(preset, now)
	elsewhere := f.preset(ptr(1))
	f.build(moved, f.ver, elsewhere, prebuilds.TransitionStart, prebuilds.JobSucceeded, now)
	claimedAlready := f.ready(preset, now)
	_, err := f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: preset, Owner: f.user, Now: now})
	require.NoError(t, err) // takes claimedAlready, the only candidate
	got, err := f.s.GetInstance(ctx, claimedAlready)
	require.NoError(t, err)
	require.Equal(t, f.user, got.OwnerID)
	require.Equal(t, now, got.ClaimedAt)

	_, err = f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: preset, Owner: f.user, Now: now})
	require.ErrorIs(t, err, prebuilds.ErrNoClaimablePrebuild)
	for _, inst := range []uuid.UUID{notReady, expired, pending, stopping, moved} {
		got, err := f.s.GetInstance(ctx, inst)
		require.NoError(t, err)
		require.Equal(t, prebuilds.SystemOwner, got.OwnerID)
	}

	// Exactly at the TTL it is still valid (expired only when older).
	edge := f.ready(preset, now.Add(-ttl))
	got, err = f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: preset, Owner: f.user, Now: now})
	require.NoError(t, err)
	require.Equal(t, edge, got.ID)

	// Invalidation expires prebuilds created before it.
	old := f.ready(preset, now.Add(-time.Minute))
	require.NoError(t, f.s.InvalidatePreset(ctx, preset, now))
	_, err = f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: preset, Owner: f.user, Now: now})
	require.ErrorIs(t, err, prebuilds.ErrNoClaimablePrebuild)
	fresh := f.ready(preset, now)
	got, err = f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: preset, Owner: f.user, Now: now})
	require.NoError(t, err)
	require.Equal(t, fresh, got.ID)
	_ = old
}

func TestClaimOldestFirst(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	preset := f.preset(ptr(4))
	// Same created_at: ID order breaks the tie.
	c := f.prebuildID(id(3), uuid.New(), preset, t0, prebuilds.JobSucceeded)
	a := f.prebuildID(id(1), uuid.New(), preset, t0, prebuilds.JobSucceeded)
	older := f.prebuildID(id(9), uuid.New(), preset, t0.Add(-time.Microsecond), prebuilds.JobSucceeded)
	for _, inst := range []uuid.UUID{a, c, older} {
		require.NoError(t, f.s.SetReady(f.ctx, inst, true))
	}
	var order []uuid.UUID
	for range 3 {
		got, err := f.s.Claim(f.ctx, prebuilds.ClaimParams{PresetID: preset, Owner: f.user, Now: t0})
		require.NoError(t, err)
		order = append(order, got.ID)
	}
	require.Equal(t, []uuid.UUID{older, a, c}, order)
}
