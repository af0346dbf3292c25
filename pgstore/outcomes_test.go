package pgstore_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// adaptive reads a snapshot under PolicyAdaptive at now with lookback
// now − 1h and hard limit k (0 = off).
func (f *fixture) adaptive(now time.Time, k int) *prebuilds.GlobalSnapshot {
	f.t.Helper()
	return f.snapshotParams(prebuilds.SnapshotParams{
		Now: now, Lookback: now.Add(-time.Hour), HardLimit: hardLimit(k), Policy: prebuilds.PolicyAdaptive,
	})
}

// outcome creates a prebuild of preset whose build #1 (ID buildID) is
// created at created and finishes with status at completed.
func (f *fixture) outcome(preset, buildID uuid.UUID, created, completed time.Time, status prebuilds.JobStatus) uuid.UUID {
	f.t.Helper()
	inst := f.prebuildID(uuid.New(), buildID, preset, created, prebuilds.JobPending)
	f.job(buildID, status, completed)
	return inst
}

func TestSnapshotOutcomesCompletionOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(3))
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

	// Created a, b, c; completed b (failed), c (succeeded), a (failed): the
	// streak follows completion, not creation.
	a := uuid.New()
	f.prebuildID(uuid.New(), a, p, at(0), prebuilds.JobPending)
	f.outcome(p, uuid.New(), at(1), at(2), prebuilds.JobFailed)
	f.outcome(p, uuid.New(), at(3), at(4), prebuilds.JobSucceeded)
	f.job(a, prebuilds.JobFailed, at(5))

	snap := f.adaptive(at(10), 0)
	require.Equal(t, []prebuilds.StreakRow{{PresetID: p, Streak: 1, LastFailedAt: at(5)}}, snap.Streaks)
	require.Equal(t, []uuid.UUID{p}, snap.Proven)
	require.Empty(t, snap.Backoffs, "no backoff rows under PolicyAdaptive")
	require.Empty(t, snap.HardLimited)
	require.Equal(t, []uuid.UUID{p}, f.adaptive(at(10), 1).HardLimited, "hard-limited by a streak of K = 1")

	// Under PolicyCoder there are no streak or proven rows.
	coder := f.snapshot(at(10), 1)
	require.Empty(t, coder.Streaks)
	require.Empty(t, coder.Proven)

	// Outside the lookback the streak is forgotten; proven has no lookback.
	later := f.adaptive(at(5).Add(time.Hour+time.Microsecond), 1)
	require.Empty(t, later.Streaks)
	require.Empty(t, later.HardLimited)
	require.Equal(t, []uuid.UUID{p}, later.Proven)
}

func TestSnapshotOutcomesTieBreak(t *testing.T) {
	t.Parallel()
	// Completed in the same microsecond: the higher build ID is newer.
	f := newFixture(t)
	p := f.preset(ptr(2))
	f.outcome(p, id(1), t0, t0.Add(time.Second), prebuilds.JobFailed)
	f.outcome(p, id(2), t0, t0.Add(time.Second), prebuilds.JobSucceeded)
	require.Empty(t, f.adaptive(t0.Add(time.Minute), 0).Streaks, "the success (build 2) is the newest outcome")

	g := newFixture(t)
	q := g.preset(ptr(2))
	g.outcome(q, id(2), t0, t0.Add(time.Second), prebuilds.JobFailed)
	g.outcome(q, id(1), t0, t0.Add(time.Second), prebuilds.JobSucceeded)
	g.outcome(q, id(3), t0, t0.Add(time.Second), prebuilds.JobSucceeded)
	g.outcome(q, id(4), t0, t0.Add(time.Second), prebuilds.JobFailed)
	// Newest first: 4 (failed), 3 (succeeded), 2 (failed), 1.
	require.Equal(t, []prebuilds.StreakRow{{PresetID: q, Streak: 1, LastFailedAt: t0.Add(time.Second)}}, g.adaptive(t0.Add(time.Minute), 0).Streaks)
}

func TestSnapshotOutcomesWindow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	p := f.preset(ptr(2))
	done := t0.Add(time.Second)
	f.outcome(p, uuid.New(), t0, done, prebuilds.JobSucceeded)
	f.outcome(p, uuid.New(), t0, done.Add(time.Microsecond), prebuilds.JobFailed)
	failedAt := done.Add(time.Microsecond)

	window := func(lookback time.Time) []prebuilds.StreakRow {
		return f.snapshotParams(prebuilds.SnapshotParams{Now: t0.Add(time.Hour), Lookback: lookback, Policy: prebuilds.PolicyAdaptive}).Streaks
	}
	streak1 := []prebuilds.StreakRow{{PresetID: p, Streak: 1, LastFailedAt: failedAt}}
	require.Equal(t, streak1, window(failedAt), "completed_at = lookback counts")
	require.Empty(t, window(failedAt.Add(time.Nanosecond)), "a lookback 1ns later excludes it")

	// reset_at bounds the window too, and proven(P).
	require.NoError(t, f.s.ResetPreset(ctx, p, done.Add(time.Microsecond)))
	snap := f.adaptive(t0.Add(time.Minute), 0)
	require.Equal(t, streak1, snap.Streaks)
	require.Empty(t, snap.Proven, "the success completed before reset_at")
	require.NoError(t, f.s.ResetPreset(ctx, p, failedAt.Add(time.Microsecond)))
	require.Empty(t, f.adaptive(t0.Add(time.Minute), 0).Streaks)
	require.NoError(t, f.s.ResetPreset(ctx, p, done))
	snap = f.adaptive(t0.Add(time.Minute), 0)
	require.Equal(t, streak1, snap.Streaks)
	require.Equal(t, []uuid.UUID{p}, snap.Proven, "completed_at = reset_at counts")
}

func TestSnapshotOutcomesScope(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	p := f.preset(ptr(2))
	other := f.preset(ptr(2))
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

	// A user's instance with preset p is not an outcome, nor is a
	// prebuild's later build with preset p.
	user := prebuilds.CreateInstanceParams{InstanceID: uuid.New(), OwnerID: f.user, TemplateID: f.tmpl, BuildID: uuid.New(),
		TemplateVersionID: f.ver, PresetID: p, Transition: prebuilds.TransitionStart, Now: at(0)}
	require.NoError(t, f.s.CreateInstance(ctx, user))
	f.job(user.BuildID, prebuilds.JobSucceeded, at(9))
	moved := f.outcome(other, uuid.New(), at(0), at(1), prebuilds.JobSucceeded)
	f.build(moved, f.ver, p, prebuilds.TransitionStart, prebuilds.JobSucceeded, at(9))

	// Failures of removed and claimed prebuilds still count.
	removed := f.outcome(p, uuid.New(), at(0), at(2), prebuilds.JobFailed)
	require.NoError(t, f.s.RemoveInstance(ctx, removed))
	claimed := f.outcome(p, uuid.New(), at(0), at(3), prebuilds.JobSucceeded)
	require.NoError(t, f.s.SetReady(ctx, claimed, true))
	_, err := f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: p, Owner: f.user, Now: at(3)})
	require.NoError(t, err)
	f.outcome(p, uuid.New(), at(0), at(4), prebuilds.JobFailed)
	// Canceled first builds are no outcome.
	f.outcome(p, uuid.New(), at(0), at(5), prebuilds.JobCanceled)

	snap := f.adaptive(at(10), 0)
	require.Equal(t, []prebuilds.StreakRow{{PresetID: p, Streak: 1, LastFailedAt: at(4)}}, snap.Streaks)
	require.ElementsMatch(t, []uuid.UUID{p, other}, snap.Proven)

	// An inactive preset's facts are computed all the same.
	require.NoError(t, f.s.SetActiveVersion(ctx, f.tmpl, f.version()))
	require.Equal(t, snap.Streaks, f.adaptive(at(10), 0).Streaks)
}

func TestSnapshotOutcomesCap(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(1))
	ids := make([]prebuilds.NewPrebuild, prebuilds.MaxStreak+2)
	for i := range ids {
		ids[i] = prebuilds.NewPrebuild{InstanceID: uuid.New(), BuildID: uuid.New(), Name: "pb"}
	}
	_, err := f.s.CreatePrebuilds(f.ctx, prebuilds.CreatePrebuildsParams{PresetID: p, TemplateVersionID: f.ver, Instances: ids, Now: t0})
	require.NoError(t, err)
	last := t0
	for i, e := range ids {
		last = t0.Add(time.Duration(i) * time.Microsecond)
		f.job(e.BuildID, prebuilds.JobFailed, last)
	}
	snap := f.adaptive(t0.Add(time.Minute), prebuilds.MaxStreak)
	require.Equal(t, []prebuilds.StreakRow{{PresetID: p, Streak: prebuilds.MaxStreak, LastFailedAt: last}}, snap.Streaks)
	require.Equal(t, []uuid.UUID{p}, snap.HardLimited)
	require.Empty(t, f.adaptive(t0.Add(time.Minute), prebuilds.MaxStreak+1).HardLimited, "a K above the cap never trips")
}

func TestSnapshotStuck(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	p := f.preset(ptr(5))
	cutoff := t0.Add(time.Minute)

	queued := f.prebuild(p, t0, prebuilds.JobPending)
	running := f.prebuild(p, t0, prebuilds.JobRunning)
	f.prebuild(p, cutoff, prebuilds.JobPending) // created at the cut-off: not stuck
	f.prebuild(p, t0, prebuilds.JobSucceeded)
	stopping := f.prebuild(p, t0, prebuilds.JobSucceeded)
	f.build(stopping, f.ver, uuid.Nil, prebuilds.TransitionStop, prebuilds.JobPending, t0) // not a start build
	restarted := f.prebuild(p, t0, prebuilds.JobSucceeded)
	f.build(restarted, f.ver, uuid.Nil, prebuilds.TransitionStop, prebuilds.JobSucceeded, t0)
	restart := f.build(restarted, f.ver, uuid.Nil, prebuilds.TransitionStart, prebuilds.JobRunning, t0) // a preset-less start counts for p
	removed := f.prebuild(p, t0, prebuilds.JobPending)
	require.NoError(t, f.s.RemoveInstance(ctx, removed))

	stuck := func(stuckBefore time.Time, policy prebuilds.FailurePolicy) []prebuilds.StuckBuild {
		return f.snapshotParams(prebuilds.SnapshotParams{Now: cutoff.Add(time.Hour), StuckBefore: stuckBefore, Policy: policy}).Stuck
	}
	want := []prebuilds.StuckBuild{
		{PresetID: p, InstanceID: queued, BuildID: f.latestBuildID(queued)},
		{PresetID: p, InstanceID: running, BuildID: f.latestBuildID(running)},
		{PresetID: p, InstanceID: restarted, BuildID: restart},
	}
	sorted := func(s []prebuilds.StuckBuild) []prebuilds.StuckBuild {
		g := &prebuilds.GlobalSnapshot{Stuck: slices.Clone(s)}
		prebuilds.SortSnapshot(g)
		return g.Stuck
	}
	for _, policy := range []prebuilds.FailurePolicy{prebuilds.PolicyCoder, prebuilds.PolicyAdaptive} {
		require.Equal(t, sorted(want), stuck(cutoff, policy), policy)
		require.Empty(t, stuck(time.Time{}, policy), "zero StuckBefore turns stuck builds off")
	}
	require.Len(t, stuck(cutoff.Add(time.Nanosecond), prebuilds.PolicyCoder), 4, "1ns after the cut-off the build created at it is stuck")

	// An inactive preset's queued first builds are CancelPending's, not
	// stuck; its running ones are stuck.
	require.NoError(t, f.s.SetActiveVersion(ctx, f.tmpl, f.version()))
	require.Equal(t, sorted(want[1:]), stuck(cutoff, prebuilds.PolicyAdaptive))
}

func TestSnapshotUnknownPolicy(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := prebuilds.SnapshotParams{Now: t0, Policy: "cautious"}
	_, err := f.s.Snapshot(f.ctx, p)
	require.ErrorIs(t, err, prebuilds.ErrInvalidArgument)
	acquired, err := f.s.WithReconciliationLock(f.ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
		_, err := r.Snapshot(ctx, p)
		return err
	})
	require.True(t, acquired)
	require.ErrorIs(t, err, prebuilds.ErrInvalidArgument)
}

func TestFailStuckBuildErrors(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	p := f.preset(ptr(3))
	cutoff := t0.Add(time.Minute)

	pending := f.prebuild(p, t0, prebuilds.JobPending)
	late := f.prebuild(p, cutoff, prebuilds.JobRunning)
	done := f.prebuild(p, t0, prebuilds.JobSucceeded)
	stop := f.build(done, f.ver, uuid.Nil, prebuilds.TransitionStop, prebuilds.JobRunning, t0)
	finished := f.prebuild(p, t0, prebuilds.JobFailed)
	removed := f.prebuild(p, t0, prebuilds.JobRunning)
	require.NoError(t, f.s.RemoveInstance(ctx, removed))
	user := prebuilds.CreateInstanceParams{InstanceID: uuid.New(), OwnerID: f.user, TemplateID: f.tmpl, BuildID: uuid.New(),
		TemplateVersionID: f.ver, PresetID: p, Transition: prebuilds.TransitionStart, Now: t0}
	require.NoError(t, f.s.CreateInstance(ctx, user))

	cases := []struct {
		name  string
		build uuid.UUID
		want  error
	}{
		{"nil build", uuid.Nil, prebuilds.ErrInvalidArgument},
		{"missing build", uuid.New(), prebuilds.ErrNotFound},
		{"not a start build", stop, prebuilds.ErrConflict},
		{"finished", f.latestBuildID(finished), prebuilds.ErrConflict},
		{"created at the cut-off", f.latestBuildID(late), prebuilds.ErrConflict},
		{"instance removed", f.latestBuildID(removed), prebuilds.ErrConflict},
		{"not a prebuild", user.BuildID, prebuilds.ErrConflict},
	}
	for _, c := range cases {
		err := f.s.FailStuckBuild(ctx, prebuilds.FailStuckBuildParams{BuildID: c.build, StuckBefore: cutoff, Now: cutoff})
		require.ErrorIs(t, err, c.want, c.name)
	}
	// Nothing was written: the pending build is still pending, the others
	// unchanged.
	builds, err := f.s.ListBuilds(ctx, late)
	require.NoError(t, err)
	require.Equal(t, prebuilds.JobRunning, builds[0].JobStatus)
	builds, err = f.s.ListBuilds(ctx, pending)
	require.NoError(t, err)
	require.Equal(t, prebuilds.JobPending, builds[0].JobStatus)
}

func TestFailStuckBuildEffects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	p := f.preset(ptr(3))
	inst := f.prebuild(p, t0, prebuilds.JobRunning)
	b := f.latestBuildID(inst)
	now := t0.Add(time.Minute + 7*time.Nanosecond)

	require.NoError(t, f.s.FailStuckBuild(ctx, prebuilds.FailStuckBuildParams{BuildID: b, StuckBefore: t0.Add(time.Nanosecond), Now: now}))
	builds, err := f.s.ListBuilds(ctx, inst)
	require.NoError(t, err)
	require.Equal(t, prebuilds.JobFailed, builds[0].JobStatus)
	require.Equal(t, prebuilds.FailureTimeout, builds[0].FailureKind)
	require.Equal(t, prebuilds.Micro(now), builds[0].CompletedAt)

	// A late report gets ErrInvalidTransition; a second fail, ErrConflict.
	_, err = f.s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: b, Status: prebuilds.JobSucceeded, Now: now})
	require.ErrorIs(t, err, prebuilds.ErrInvalidTransition)
	err = f.s.FailStuckBuild(ctx, prebuilds.FailStuckBuildParams{BuildID: b, StuckBefore: now, Now: now})
	require.ErrorIs(t, err, prebuilds.ErrConflict)

	// Counted as a failed first build, and as an outcome.
	snap := f.adaptive(now, 0)
	require.Equal(t, []prebuilds.PresetCounters{{PresetID: p, Created: 1, Failed: 1}}, snap.Counters)
	require.Equal(t, []prebuilds.StreakRow{{PresetID: p, Streak: 1, LastFailedAt: prebuilds.Micro(now)}}, snap.Streaks)

	// A provisioner may report a timeout itself.
	other := f.prebuild(p, t0, prebuilds.JobRunning)
	_, err = f.s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: f.latestBuildID(other), Status: prebuilds.JobFailed,
		FailureKind: prebuilds.FailureTimeout, Now: now})
	require.NoError(t, err)
}
