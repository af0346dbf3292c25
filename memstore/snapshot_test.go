package memstore_test

import (
	"testing"
	"time"

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

func TestSnapshotInProgress(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(1))
	f.instance(inst{preset: p})                                                       // start pending
	f.instance(inst{preset: p, status: prebuilds.JobRunning})                         // start running
	f.instance(inst{preset: p, status: prebuilds.JobCanceling})                       // not in progress
	f.instance(inst{preset: p, owner: f.users})                                       // not a prebuild
	require.NoError(t, f.s.RemoveInstance(f.ctx, f.attempt(p, prebuilds.JobPending))) // deleted
	stopping := f.running(p)
	f.build(stopping, inst{tr: prebuilds.TransitionStop, status: prebuilds.JobRunning})
	deleting := f.running(p)
	f.build(deleting, inst{tr: prebuilds.TransitionDelete})
	deleting2 := f.running(p)
	_, err := f.s.DeletePrebuild(f.ctx, prebuilds.DeletePrebuildParams{InstanceID: deleting2, BuildID: uuid.New(), Now: f.now})
	require.NoError(t, err)
	done := f.running(p)
	f.build(done, inst{tr: prebuilds.TransitionDelete, status: prebuilds.JobSucceeded})

	snap := f.snapshot(0)
	require.Equal(t, []prebuilds.InProgressCount{
		{PresetID: p, Transition: prebuilds.TransitionDelete, Count: 2},
		{PresetID: p, Transition: prebuilds.TransitionStart, Count: 2},
		{PresetID: p, Transition: prebuilds.TransitionStop, Count: 1},
	}, snap.InProgress)
	require.Empty(t, snap.PendingInactive, "active preset")
	require.Empty(t, snap.Running)
}

func TestSnapshotPendingInactive(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(1))
	f.attempt(p, prebuilds.JobPending)
	f.attempt(p, prebuilds.JobPending)
	f.attempt(p, prebuilds.JobRunning)                        // taken by a worker
	f.instance(inst{preset: p, owner: f.users})               // not a prebuild
	f.instance(inst{preset: p, tr: prebuilds.TransitionStop}) // not a start, and no current preset
	require.NoError(t, f.s.RemoveInstance(f.ctx, f.attempt(p, prebuilds.JobPending)))
	retry := f.attempt(p, prebuilds.JobFailed)
	f.build(retry, inst{preset: p}) // pending build #2
	require.Empty(t, f.snapshot(0).PendingInactive, "active preset")

	require.NoError(t, f.s.SetTemplateDeprecated(f.ctx, f.tmpl, true))
	snap := f.snapshot(0)
	require.Equal(t, []prebuilds.PendingInactiveCount{{PresetID: p, Count: 2}}, snap.PendingInactive)
	// Still in progress as well.
	require.Equal(t, 4, view(t, snap, p).Starting)
}

func TestSnapshotBackoff(t *testing.T) {
	t.Parallel()
	const lookback = time.Hour
	type step func(f *fixture, p uuid.UUID)
	fail := func(f *fixture, p uuid.UUID) { f.attempt(p, prebuilds.JobFailed) }
	ok := func(f *fixture, p uuid.UUID) { f.attempt(p, prebuilds.JobSucceeded) }
	pending := func(f *fixture, p uuid.UUID) { f.attempt(p, prebuilds.JobPending) }
	wait := func(d time.Duration) step { return func(f *fixture, _ uuid.UUID) { f.advance(d) } }
	for _, tc := range []struct {
		name    string
		desired int
		steps   []step
		// want is nil for no row; LastBuildAt is an offset from t0.
		want *prebuilds.BackoffRow
	}{
		{"OneFailure", 1, []step{fail}, &prebuilds.BackoffRow{NumFailed: 1}},
		{"DesiredZero", 0, []step{fail}, nil},
		{"OutsideLookback", 1, []step{fail, wait(lookback + time.Microsecond)}, nil},
		{"AtLookback", 1, []step{fail, wait(lookback)}, &prebuilds.BackoffRow{NumFailed: 1}},
		{"NewestSucceeded", 1, []step{fail, wait(time.Second), ok}, nil},
		{"NewestPendingHidesOlderFailure", 1, []step{fail, wait(time.Second), pending}, nil},
		{"WindowTwoNewestSucceeded", 2, []step{fail, wait(time.Second), ok, wait(time.Second), ok}, nil},
		{"WindowSecondFailed", 2, []step{fail, wait(time.Second), ok}, &prebuilds.BackoffRow{NumFailed: 1}},
		{"NumFailedCountsBeyondWindow", 1, []step{fail, wait(time.Second), fail, wait(time.Second), fail},
			&prebuilds.BackoffRow{NumFailed: 3, LastBuildAt: t0.Add(2 * time.Second)}},
		{"NumFailedOnlyWithinLookback", 2, []step{fail, wait(lookback), fail, wait(time.Second), fail},
			&prebuilds.BackoffRow{NumFailed: 2, LastBuildAt: t0.Add(lookback + time.Second)}},
		{"LastBuildAtAmongWindowFailures", 3, []step{fail, wait(time.Second), fail, wait(time.Second), ok},
			&prebuilds.BackoffRow{NumFailed: 2, LastBuildAt: t0.Add(time.Second)}},
		{"FailureBeyondWindowDoesNotMakeRow", 1, []step{fail, wait(time.Second), ok, wait(time.Second), ok}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			p := f.preset(ptr(tc.desired))
			for _, s := range tc.steps {
				s(f, p)
			}
			snap := f.snapshotAt(prebuilds.SnapshotParams{Now: f.now, Lookback: f.now.Add(-lookback)})
			if tc.want == nil {
				require.Empty(t, snap.Backoffs)
				return
			}
			want := *tc.want
			want.PresetID = p
			if want.LastBuildAt.IsZero() {
				want.LastBuildAt = t0
			}
			require.Equal(t, []prebuilds.BackoffRow{want}, snap.Backoffs)
		})
	}
}

func TestSnapshotBackoffScope(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		do   func(f *fixture, p uuid.UUID)
		want bool
	}{
		{"Active", func(*fixture, uuid.UUID) {}, true},
		{"Deprecated", func(f *fixture, _ uuid.UUID) { require.NoError(f.t, f.s.SetTemplateDeprecated(f.ctx, f.tmpl, true)) }, true},
		{"VersionReplaced", func(f *fixture, _ uuid.UUID) { require.NoError(f.t, f.s.SetActiveVersion(f.ctx, f.tmpl, f.version())) }, false},
		{"TemplateDeleted", func(f *fixture, _ uuid.UUID) { require.NoError(f.t, f.s.DeleteTemplate(f.ctx, f.tmpl)) }, false},
		{"ResetAfter", func(f *fixture, p uuid.UUID) {
			require.NoError(f.t, f.s.ResetPreset(f.ctx, p, t0.Add(time.Microsecond)))
		}, false},
		{"ResetAtCreation", func(f *fixture, p uuid.UUID) { require.NoError(f.t, f.s.ResetPreset(f.ctx, p, t0)) }, true},
		{"LatestIsStop", func(f *fixture, _ uuid.UUID) {
			// The failed start is no longer the latest build.
			f.build(f.seeded[0], inst{tr: prebuilds.TransitionStop, status: prebuilds.JobFailed})
		}, false},
		{"Claimed", func(f *fixture, p uuid.UUID) {
			// A failed later start on a claimed instance is the user's.
			id := f.seeded[0]
			require.NoError(f.t, f.s.RemoveInstance(f.ctx, id))
			u := f.running(p)
			_, err := f.s.Claim(f.ctx, prebuilds.ClaimParams{PresetID: p, Owner: f.users, Now: f.now})
			require.NoError(f.t, err)
			f.build(u, inst{tr: prebuilds.TransitionStart, preset: p, status: prebuilds.JobFailed})
		}, false},
		{"Removed", func(f *fixture, _ uuid.UUID) { require.NoError(f.t, f.s.RemoveInstance(f.ctx, f.seeded[0])) }, false},
		{"RetrySucceeded", func(f *fixture, p uuid.UUID) {
			f.build(f.seeded[0], inst{tr: prebuilds.TransitionStart, preset: p, status: prebuilds.JobSucceeded})
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			p := f.preset(ptr(1))
			f.seeded = append(f.seeded, f.attempt(p, prebuilds.JobFailed))
			tc.do(f, p)
			snap := f.snapshot(1)
			if tc.want {
				require.Equal(t, []prebuilds.BackoffRow{{PresetID: p, NumFailed: 1, LastBuildAt: t0}}, snap.Backoffs)
				require.Equal(t, []uuid.UUID{p}, snap.HardLimited)
			} else {
				require.Empty(t, snap.Backoffs)
				require.Empty(t, snap.HardLimited)
			}
		})
	}
}

func TestSnapshotHardLimit(t *testing.T) {
	t.Parallel()
	fail, ok := prebuilds.JobFailed, prebuilds.JobSucceeded
	for _, tc := range []struct {
		name    string
		k       int
		history []prebuilds.JobStatus // oldest first, one second apart
		want    bool
	}{
		{"Off", 0, []prebuilds.JobStatus{fail, fail, fail}, false},
		{"Negative", -1, []prebuilds.JobStatus{fail}, false},
		{"Reached", 2, []prebuilds.JobStatus{fail, fail}, true},
		{"NotEnoughBuilds", 2, []prebuilds.JobStatus{fail}, false},
		{"NewestSucceeded", 2, []prebuilds.JobStatus{fail, fail, ok}, false},
		{"OlderSuccessOutsideK", 2, []prebuilds.JobStatus{ok, fail, fail}, true},
		{"PendingBreaksStreak", 2, []prebuilds.JobStatus{fail, fail, prebuilds.JobPending}, false},
		{"IgnoresLookback", 1, []prebuilds.JobStatus{fail}, true}, // history is 2h old, see below
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			p := f.preset(ptr(1))
			for _, s := range tc.history {
				f.attempt(p, s)
				f.advance(time.Second)
			}
			f.advance(2 * time.Hour)
			snap := f.snapshot(tc.k)
			require.Empty(t, snap.Backoffs, "everything is outside the one-hour lookback")
			if tc.want {
				require.Equal(t, []uuid.UUID{p}, snap.HardLimited)
			} else {
				require.Empty(t, snap.HardLimited)
			}
		})
	}
}

func TestSnapshotCounters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p, q := f.preset(ptr(1)), f.preset(ptr(1))
	unconfigured := f.preset(nil)
	none := f.preset(ptr(1))

	_, err := f.s.CreatePrebuilds(f.ctx, prebuilds.CreatePrebuildsParams{PresetID: p, TemplateVersionID: f.ver, Instances: newPrebuilds(2), Now: f.now})
	require.NoError(t, err)
	f.attempt(p, prebuilds.JobFailed)            // created, failed
	removed := f.attempt(p, prebuilds.JobFailed) // created, failed, deleted: still counted
	require.NoError(t, f.s.RemoveInstance(f.ctx, removed))
	claimed := f.running(p) // created, claimed
	_, err = f.s.Claim(f.ctx, prebuilds.ClaimParams{PresetID: p, Owner: f.users, Now: f.now})
	require.NoError(t, err)
	got, err := f.s.GetInstance(f.ctx, claimed)
	require.NoError(t, err)
	require.Equal(t, f.users, got.OwnerID)
	f.instance(inst{preset: p, owner: f.users, status: prebuilds.JobFailed}) // not created as a prebuild
	later := f.running(p)                                                    // a failed later build is not counted
	f.build(later, inst{tr: prebuilds.TransitionStop, status: prebuilds.JobSucceeded})
	f.build(later, inst{tr: prebuilds.TransitionStart, preset: p, status: prebuilds.JobFailed})
	// Build #1 on P, then moved to Q and claimed from Q: counted for P.
	moved := f.running(p)
	f.build(moved, inst{tr: prebuilds.TransitionStop, status: prebuilds.JobSucceeded})
	f.build(moved, inst{tr: prebuilds.TransitionStart, preset: q, status: prebuilds.JobSucceeded})
	require.NoError(t, f.s.SetReady(f.ctx, moved, true))
	_, err = f.s.Claim(f.ctx, prebuilds.ClaimParams{PresetID: q, Owner: f.users, Now: f.now})
	require.NoError(t, err)
	f.attempt(unconfigured, prebuilds.JobFailed) // no row: desired not set
	_ = none                                     // no row: nothing created

	snap := f.snapshot(0)
	require.Equal(t, []prebuilds.PresetCounters{{PresetID: p, Created: 7, Failed: 2, Claimed: 2}}, snap.Counters)
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

func TestSnapshotLookbackPrecision(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(1))
	f.attempt(p, prebuilds.JobFailed) // created at t0, a whole microsecond
	for _, tc := range []struct {
		lookback time.Time
		want     int
	}{
		{t0, 1},
		{t0.Add(-time.Nanosecond), 1},
		{t0.Add(500 * time.Nanosecond), 0}, // t0 < lookback even though they share a microsecond
	} {
		snap := f.snapshotAt(prebuilds.SnapshotParams{Now: t0.Add(time.Second), Lookback: tc.lookback})
		require.Len(t, snap.Backoffs, tc.want, "lookback %s", tc.lookback.Format(time.RFC3339Nano))
	}
}
