package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/memstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// TestChangeFeed: every subscriber receives, after the write, the presets
// whose plans a control-plane write may change; a burst is coalesced per
// preset; failed writes and the Reconciler's own writes publish nothing;
// the channel closes with its context.
func TestChangeFeed(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := memstore.New()
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	tmpl, ver, p1, p2 := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	require.NoError(t, s.CreateTemplate(ctx, prebuilds.Template{ID: tmpl, Name: "t"}))
	require.NoError(t, s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: ver, TemplateID: tmpl, Name: "v"}))
	require.NoError(t, s.SetActiveVersion(ctx, tmpl, ver))
	d := 1
	require.NoError(t, s.UpsertPreset(ctx, prebuilds.Preset{ID: p1, TemplateVersionID: ver, Name: "a", Desired: &d}))

	first, err := s.Changes(ctx)
	require.NoError(t, err)
	second, err := s.Changes(ctx)
	require.NoError(t, err)
	next := func(ch <-chan prebuilds.Change) prebuilds.Change {
		t.Helper()
		select {
		case c := <-ch:
			return c
		case <-ctx.Done():
			t.Fatal("no change")
			return prebuilds.Change{}
		}
	}

	require.NoError(t, s.UpsertPreset(ctx, prebuilds.Preset{ID: p2, TemplateVersionID: ver, Name: "b", Desired: &d}))
	want := prebuilds.Change{PresetID: p2, Kind: prebuilds.ChangePresetWritten}
	require.Equal(t, want, next(first))
	require.Equal(t, want, next(second), "every subscriber gets every change")

	// The Reconciler's own writes do not feed back; a claim does, missed or not.
	jobs, err := s.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{PresetID: p1, TemplateVersionID: ver,
		Instances: []prebuilds.NewPrebuild{{InstanceID: uuid.New(), BuildID: uuid.New()}}, Now: now})
	require.NoError(t, err)
	_, err = s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: jobs[0].BuildID, Status: prebuilds.JobRunning, Now: now})
	require.NoError(t, err) // not terminal: no change
	_, err = s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: jobs[0].BuildID, Status: prebuilds.JobSucceeded, Now: now})
	require.NoError(t, err)
	require.Equal(t, prebuilds.Change{PresetID: p1, Kind: prebuilds.ChangeJobCompleted}, next(first))
	require.NoError(t, s.SetReady(ctx, jobs[0].InstanceID, true))
	_, err = s.Claim(ctx, prebuilds.ClaimParams{PresetID: p1, Owner: uuid.New(), Now: now})
	require.NoError(t, err)
	require.Equal(t, prebuilds.Change{PresetID: p1, Kind: prebuilds.ChangeClaimed}, next(first))

	// A failed write publishes nothing: the next change is the invalidation.
	require.Error(t, s.InvalidatePreset(ctx, uuid.New(), now))
	require.NoError(t, s.InvalidatePreset(ctx, p2, now))
	require.Equal(t, prebuilds.Change{PresetID: p2, Kind: prebuilds.ChangePresetWritten}, next(first))

	// A template-wide write names each of its presets, in ID order.
	require.NoError(t, s.SetTemplateDeprecated(ctx, tmpl, true))
	a, b := next(first), next(first)
	require.ElementsMatch(t, []uuid.UUID{p1, p2}, []uuid.UUID{a.PresetID, b.PresetID})
	require.Negative(t, prebuilds.CompareUUID(a.PresetID, b.PresetID))

	// Resuming after a pause is a resync.
	require.NoError(t, s.SetPaused(ctx, true))
	require.NoError(t, s.SetPaused(ctx, false))
	require.Equal(t, prebuilds.Change{Kind: prebuilds.ChangeResync}, next(first))

	cancel()
	for range first { // drains what second has not read; closes with ctx
	}
	for range second {
	}
}

// TestChangeFeedCoalescesWithoutBlockingWriters: a subscriber that does not
// read holds no writer back; when it reads, a burst of claims of one
// preset is at most two changes: the feed's goroutine may have taken the
// first claim's change (and be waiting to hand it over) before the rest of
// the burst, which then coalesces into one more.
func TestChangeFeedCoalescesWithoutBlockingWriters(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := memstore.New()
	tmpl, ver, p := uuid.New(), uuid.New(), uuid.New()
	require.NoError(t, s.CreateTemplate(ctx, prebuilds.Template{ID: tmpl, Name: "t"}))
	require.NoError(t, s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: ver, TemplateID: tmpl, Name: "v"}))
	require.NoError(t, s.SetActiveVersion(ctx, tmpl, ver))
	d := 1
	require.NoError(t, s.UpsertPreset(ctx, prebuilds.Preset{ID: p, TemplateVersionID: ver, Name: "a", Desired: &d}))
	ch, err := s.Changes(ctx)
	require.NoError(t, err)
	for range 1000 { // nobody reads: none of these may block
		_, err := s.Claim(ctx, prebuilds.ClaimParams{PresetID: p, Owner: uuid.New(), Now: time.Now()})
		require.ErrorIs(t, err, prebuilds.ErrNoClaimablePrebuild)
	}
	require.Equal(t, prebuilds.Change{PresetID: p, Kind: prebuilds.ChangeClaimed}, <-ch)
	// Everything after the first taken change was coalesced into at most
	// one more (or into the next write's change, which replaces a pending
	// one of the same preset): then comes the new write's.
	require.NoError(t, s.InvalidatePreset(ctx, p, time.Now()))
	c := <-ch
	if c.Kind == prebuilds.ChangeClaimed {
		require.Equal(t, p, c.PresetID)
		c = <-ch
	}
	require.Equal(t, prebuilds.Change{PresetID: p, Kind: prebuilds.ChangePresetWritten}, c)
	cancel()
	for range ch {
	}
}
