package memstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/memstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// fleet fills a store with presets spread over templates of ten presets
// each; every preset has perPreset live prebuilds: the newest failed, one
// still starting, the rest running. A claimed and a removed instance per
// preset add history that the snapshot must not pay for.
func fleet(tb testing.TB, presets, perPreset int) *memstore.Store {
	tb.Helper()
	ctx := context.Background()
	s := memstore.New()
	now := t0
	desired := perPreset
	var templateID, versionID uuid.UUID
	for i := range presets {
		if i%10 == 0 {
			templateID, versionID = uuid.New(), uuid.New()
			mustTB(tb, s.CreateTemplate(ctx, prebuilds.Template{ID: templateID, Name: fmt.Sprintf("t%d", i), OrganizationName: "org"}))
			mustTB(tb, s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: versionID, TemplateID: templateID, CreatedAt: now}))
			mustTB(tb, s.SetActiveVersion(ctx, templateID, versionID))
		}
		presetID := uuid.New()
		mustTB(tb, s.UpsertPreset(ctx, prebuilds.Preset{
			ID: presetID, TemplateVersionID: versionID, Name: fmt.Sprintf("p%d", i), Desired: &desired, TTL: 24 * time.Hour,
		}))
		// perPreset+1 instances at now: one still starting, the others
		// succeeded; one of those is removed and one claimed.
		entries := make([]prebuilds.NewPrebuild, perPreset+1)
		for j := range entries {
			entries[j] = prebuilds.NewPrebuild{InstanceID: uuid.New(), BuildID: uuid.New()}
		}
		jobs, err := s.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{PresetID: presetID, TemplateVersionID: versionID, Instances: entries, Now: now})
		mustTB(tb, err)
		for _, job := range jobs[1:] {
			_, err := s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: job.BuildID, Status: prebuilds.JobSucceeded, Now: now})
			mustTB(tb, err)
			mustTB(tb, s.SetReady(ctx, job.InstanceID, true))
		}
		mustTB(tb, s.RemoveInstance(ctx, jobs[1].InstanceID))
		_, err = s.Claim(ctx, prebuilds.ClaimParams{PresetID: presetID, Owner: uuid.New(), Now: now})
		mustTB(tb, err)
		// The newest build failed: every preset has a backoff row.
		failed, err := s.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{
			PresetID: presetID, TemplateVersionID: versionID, Now: now.Add(time.Second),
			Instances: []prebuilds.NewPrebuild{{InstanceID: uuid.New(), BuildID: uuid.New()}},
		})
		mustTB(tb, err)
		_, err = s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: failed[0].BuildID, Status: prebuilds.JobFailed, Now: now.Add(time.Second)})
		mustTB(tb, err)
	}
	return s
}

func mustTB(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkSnapshot shows that a snapshot costs O(presets + instances): the
// ns/preset metric stays flat from 1,000 to 10,000 presets.
func BenchmarkSnapshot(b *testing.B) {
	for _, presets := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("presets=%d", presets), func(b *testing.B) {
			s := fleet(b, presets, 5)
			ctx := context.Background()
			params := prebuilds.SnapshotParams{Now: t0.Add(time.Minute), Lookback: t0.Add(-time.Hour), HardLimit: 3}
			var snap *prebuilds.GlobalSnapshot
			b.ReportAllocs()
			for b.Loop() {
				_, err := s.WithReconciliationLock(ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
					var err error
					snap, err = r.Snapshot(ctx, params)
					return err
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(presets), "ns/preset")
			if len(snap.Presets) != presets || len(snap.Running) != presets*3 || len(snap.Backoffs) != presets {
				b.Fatalf("unexpected snapshot: %d presets, %d running, %d backoffs", len(snap.Presets), len(snap.Running), len(snap.Backoffs))
			}
		})
	}
}
