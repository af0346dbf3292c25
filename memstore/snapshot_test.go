package memstore_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// attempt seeds a prebuild of preset p whose build #1 ended in status.
func (f *fixture) attempt(p uuid.UUID, status prebuilds.JobStatus) uuid.UUID {
	f.t.Helper()
	id, _ := f.instance(inst{preset: p, status: status})
	return id
}

func TestSnapshotCurrentPreset(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p, q := f.preset(ptr(5)), f.preset(ptr(5))

	// Build #1 start with P; build #2 start without preset: still P.
	a := f.running(p)
	f.build(a, inst{tr: prebuilds.TransitionStop, status: prebuilds.JobSucceeded})
	f.build(a, inst{tr: prebuilds.TransitionStart, status: prebuilds.JobSucceeded})
	// Moved to Q by a later start with Q.
	b := f.running(p)
	f.build(b, inst{tr: prebuilds.TransitionStop, status: prebuilds.JobSucceeded})
	f.build(b, inst{tr: prebuilds.TransitionStart, preset: q, status: prebuilds.JobSucceeded})
	// A stop build naming Q does not move it.
	c := f.running(p)
	f.build(c, inst{tr: prebuilds.TransitionStop, preset: q, status: prebuilds.JobSucceeded})
	f.build(c, inst{tr: prebuilds.TransitionStart, status: prebuilds.JobSucceeded})
	// Never started with a preset: attributed to none.
	f.instance(inst{tr: prebuilds.TransitionStart, status: prebuilds.JobSucceeded})
	f.instance(inst{tr: prebuilds.TransitionStop, preset: p, status: prebuilds.JobRunning})

	snap := f.snapshot(0)
	runningIDs := func(id uuid.UUID) []uuid.UUID {
		var out []uuid.UUID
		for _, r := range view(t, snap, id).Running {
			out = append(out, r.InstanceID)
		}
		return out
	}
	require.ElementsMatch(t, []uuid.UUID{a, c}, runningIDs(p))
	require.Equal(t, []uuid.UUID{b}, runningIDs(q))
	require.Empty(t, snap.InProgress, "the stop build of an instance without current preset is attributed to none")
	require.Len(t, snap.Running, 3)
}

// TestNoAliasing: memstore copies what callers pass in and what it hands
// out, so that neither side can change the other's values.
func TestNoAliasing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := prebuilds.Preset{
		ID: uuid.New(), TemplateVersionID: f.ver, Name: "p", Desired: ptr(1), Timezone: "UTC",
		Schedules: []prebuilds.Schedule{{Cron: "* * * * *", Instances: 2}}, Parameters: map[string]string{"a": "1"},
	}
	require.NoError(t, f.s.UpsertPreset(f.ctx, p))
	// The caller's values are copied on write.
	*p.Desired = 9
	p.Schedules[0].Instances = 9
	p.Parameters["a"] = "9"
	id, _ := f.instance(inst{preset: p.ID, status: prebuilds.JobFailed})

	mutate := func(s *prebuilds.GlobalSnapshot) {
		*s.Presets[0].Desired = 7
		s.Presets[0].Schedules[0].Instances = 7
		s.Presets[0].Parameters["a"] = "7"
		s.Counters[0].Created = 7
		s.Backoffs[0].NumFailed = 7
	}
	first := f.snapshot(1)
	mutate(first)
	second := f.snapshot(1)
	require.Equal(t, 1, *second.Presets[0].Desired)
	require.Equal(t, 2, second.Presets[0].Schedules[0].Instances)
	require.Equal(t, "1", second.Presets[0].Parameters["a"])
	require.Equal(t, 1, second.Counters[0].Created)
	require.Equal(t, 1, second.Backoffs[0].NumFailed)

	got, err := f.s.GetPreset(f.ctx, p.ID)
	require.NoError(t, err)
	*got.Desired = 5
	got.Schedules[0].Instances = 5
	got.Parameters["a"] = "5"
	again, err := f.s.GetPreset(f.ctx, p.ID)
	require.NoError(t, err)
	require.Equal(t, 1, *again.Desired)
	require.Equal(t, 2, again.Schedules[0].Instances)
	require.Equal(t, "1", again.Parameters["a"])

	require.NoError(t, f.s.StartBuild(f.ctx, prebuilds.StartBuildParams{
		InstanceID: id, BuildID: uuid.New(), TemplateVersionID: f.ver, Transition: prebuilds.TransitionStop,
		Parameters: map[string]string{"x": "1"}, Now: f.now,
	}))
	builds, err := f.s.ListBuilds(f.ctx, id)
	require.NoError(t, err)
	builds[1].Parameters["x"] = "2"
	builds[0].JobStatus = prebuilds.JobSucceeded
	builds, err = f.s.ListBuilds(f.ctx, id)
	require.NoError(t, err)
	require.Equal(t, "1", builds[1].Parameters["x"])
	require.Equal(t, prebuilds.JobFailed, builds[0].JobStatus)

	// CreateInstance copies its parameters in; the jobs CreatePrebuilds
	// returns carry copies of the preset's parameters.
	params := map[string]string{"k": "v"}
	mine := uuid.New()
	require.NoError(t, f.s.CreateInstance(f.ctx, prebuilds.CreateInstanceParams{
		InstanceID: mine, OwnerID: f.users, TemplateID: f.tmpl, BuildID: uuid.New(),
		TemplateVersionID: f.ver, Transition: prebuilds.TransitionStart, Parameters: params, Now: f.now,
	}))
	params["k"] = "changed"
	builds, err = f.s.ListBuilds(f.ctx, mine)
	require.NoError(t, err)
	require.Equal(t, "v", builds[0].Parameters["k"])
	entries := newPrebuilds(1)
	jobs, err := f.s.CreatePrebuilds(f.ctx, prebuilds.CreatePrebuildsParams{PresetID: p.ID, TemplateVersionID: f.ver, Instances: entries, Now: f.now})
	require.NoError(t, err)
	jobs[0].Parameters["a"] = "changed"
	builds, err = f.s.ListBuilds(f.ctx, entries[0].InstanceID)
	require.NoError(t, err)
	require.Equal(t, "1", builds[0].Parameters["a"])
}
