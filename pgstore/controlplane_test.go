package pgstore_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// TestTemplateErrors: the template and version errors the conformance
// suite does not make (nil IDs, empty names, check order, idempotent
// delete), and that errors name the package.
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
		// Arguments are checked before the ID conflict.
		{"create existing without name", f.s.CreateTemplate(ctx, prebuilds.Template{ID: f.tmpl}), prebuilds.ErrInvalidArgument},
		{"version nil id", f.s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{TemplateID: f.tmpl}), prebuilds.ErrInvalidArgument},
		// Template missing is checked before the ID conflict.
		{"version template missing", f.s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: f.ver, TemplateID: uuid.New()}), prebuilds.ErrNotFound},
		{"activate version missing", f.s.SetActiveVersion(ctx, f.tmpl, uuid.New()), prebuilds.ErrNotFound},
		{"delete missing", f.s.DeleteTemplate(ctx, uuid.New()), prebuilds.ErrNotFound},
	}
	for _, c := range cases {
		require.ErrorIs(t, c.err, c.want, c.name)
		require.ErrorContains(t, c.err, "pgstore: ", c.name)
	}

	// Delete is idempotent; on a deleted template an unknown version is
	// not found before the deletion conflicts.
	other := uuid.New()
	require.NoError(t, f.s.CreateTemplate(ctx, prebuilds.Template{ID: other, Name: "other"}))
	require.NoError(t, f.s.DeleteTemplate(ctx, other))
	require.NoError(t, f.s.DeleteTemplate(ctx, other), "delete is idempotent")
	require.ErrorIs(t, f.s.SetActiveVersion(ctx, other, uuid.New()), prebuilds.ErrNotFound)
}

// TestUpsertPresetErrors: what the conformance suite does not check of
// UpsertPreset's errors: desired may go from unset to set, and GetPreset of
// an unknown preset is not found.
func TestUpsertPresetErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	unset := f.preset(nil)

	// Still nil → nil is fine, and nil → set.
	require.NoError(t, f.s.UpsertPreset(ctx, prebuilds.Preset{ID: unset, TemplateVersionID: f.ver, Name: "renamed"}))
	require.NoError(t, f.s.UpsertPreset(ctx, prebuilds.Preset{ID: unset, TemplateVersionID: f.ver, Name: "renamed", Desired: ptr(0)}))

	_, err := f.s.GetPreset(ctx, uuid.New())
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

// TestCreateInstanceErrors: the CreateInstance errors the conformance suite
// does not make: nil IDs, an unknown transition, a missing version, and the
// order of the preset checks before the ID conflict.
func TestCreateInstanceErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	preset := f.preset(ptr(1))
	otherVer := f.version()
	otherPreset := f.presetOn(otherVer, nil)

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
		{"nil template", func(p *prebuilds.CreateInstanceParams) { p.TemplateID = uuid.Nil }, prebuilds.ErrInvalidArgument},
		{"nil version", func(p *prebuilds.CreateInstanceParams) { p.TemplateVersionID = uuid.Nil }, prebuilds.ErrInvalidArgument},
		{"bad transition", func(p *prebuilds.CreateInstanceParams) { p.Transition = "restart"; p.TemplateID = uuid.New() }, prebuilds.ErrInvalidArgument},
		{"version missing", func(p *prebuilds.CreateInstanceParams) { p.TemplateVersionID = uuid.New() }, prebuilds.ErrNotFound},
		{"preset missing", func(p *prebuilds.CreateInstanceParams) { p.PresetID = uuid.New(); p.InstanceID = existing.InstanceID }, prebuilds.ErrNotFound},
		{"preset of another version", func(p *prebuilds.CreateInstanceParams) { p.PresetID = otherPreset; p.InstanceID = existing.InstanceID }, prebuilds.ErrInvalidArgument},
	}
	for _, c := range cases {
		p := good()
		c.mod(&p)
		require.ErrorIs(t, f.s.CreateInstance(ctx, p), c.want, c.name)
	}
}

// TestRemoveInstanceIdempotent: removing a removed instance succeeds and
// leaves it as it was.
func TestRemoveInstanceIdempotent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	inst := f.ready(f.preset(ptr(1)), t0)
	require.NoError(t, f.s.RemoveInstance(ctx, inst))
	require.NoError(t, f.s.RemoveInstance(ctx, inst), "idempotent")
	got, err := f.s.GetInstance(ctx, inst)
	require.NoError(t, err)
	require.True(t, got.Ready)
	require.True(t, got.Deleted)
	builds, err := f.s.ListBuilds(ctx, inst)
	require.NoError(t, err)
	require.Len(t, builds, 1, "removal writes no build")
}

// TestStartBuildErrors: the StartBuild errors the conformance suite does not
// make: nil IDs, and the order of the checks (arguments before the
// instance, a busy instance before the version, the version and the preset
// before the build ID conflict). A rejected call writes no build.
func TestStartBuildErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	preset := f.preset(ptr(1))
	running := f.prebuild(preset, t0, prebuilds.JobSucceeded)
	pending := f.prebuild(preset, t0, prebuilds.JobPending)
	existingBuild := f.latestBuildID(pending)

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
		{"latest job in progress", func(p *prebuilds.StartBuildParams) { p.InstanceID = pending; p.TemplateVersionID = uuid.New() }, prebuilds.ErrConflict},
		{"version missing", func(p *prebuilds.StartBuildParams) { p.TemplateVersionID = uuid.New(); p.BuildID = existingBuild }, prebuilds.ErrNotFound},
		{"preset missing", func(p *prebuilds.StartBuildParams) { p.PresetID = uuid.New(); p.BuildID = existingBuild }, prebuilds.ErrNotFound},
	}
	for _, c := range cases {
		p := good()
		c.mod(&p)
		require.ErrorIs(t, f.s.StartBuild(ctx, p), c.want, c.name)
	}

	builds, err := f.s.ListBuilds(ctx, running)
	require.NoError(t, err)
	require.Len(t, builds, 1, "rejected StartBuild calls wrote builds")
}

// TestUpdateJobErrors: every (from, to) pair of job statuses, allowed or
// ErrInvalidTransition.
func TestUpdateJobErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	preset := f.preset(ptr(1))

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

// TestUpdateJobEffects: a validation failure of a prebuild's start build
// turns a healthy preset validation_failed once; a second one, or one of a
// user's instance, does not.
func TestUpdateJobEffects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	preset := f.preset(ptr(1))
	at := t0.Add(time.Minute)

	v1 := f.prebuild(preset, t0, prebuilds.JobPending)
	res, err := f.s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: f.latestBuildID(v1), Status: prebuilds.JobFailed, FailureKind: prebuilds.FailureValidation, Now: at})
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

// TestClaimErrors: an invalid owner is reported before the preset is looked
// up.
func TestClaimErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	_, err := f.s.Claim(f.ctx, prebuilds.ClaimParams{PresetID: uuid.New(), Owner: prebuilds.SystemOwner, Now: t0})
	require.ErrorIs(t, err, prebuilds.ErrInvalidArgument)
}

// TestClaimSkips: the claim rules the conformance suite does not fix: a
// prebuild whose current preset moved to another preset by a later start
// build is not claimable from the first, and invalidation spares prebuilds
// created at the invalidation instant.
func TestClaimSkips(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	preset := f.preset(ptr(5))
	now := t0.Add(2 * time.Hour)

	moved := f.ready(preset, now)
	elsewhere := f.preset(ptr(1))
	f.build(moved, f.ver, elsewhere, prebuilds.TransitionStart, prebuilds.JobSucceeded, now)
	_, err := f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: preset, Owner: f.user, Now: now})
	require.ErrorIs(t, err, prebuilds.ErrNoClaimablePrebuild)
	got, err := f.s.GetInstance(ctx, moved)
	require.NoError(t, err)
	require.Equal(t, prebuilds.SystemOwner, got.OwnerID)

	old := f.ready(preset, now.Add(-time.Minute))
	require.NoError(t, f.s.InvalidatePreset(ctx, preset, now))
	fresh := f.ready(preset, now)
	got, err = f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: preset, Owner: f.user, Now: now})
	require.NoError(t, err)
	require.Equal(t, fresh, got.ID, "not %s, created before the invalidation", old)
	_, err = f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: preset, Owner: f.user, Now: now})
	require.ErrorIs(t, err, prebuilds.ErrNoClaimablePrebuild)
}
