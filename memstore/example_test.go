package memstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/memstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// ExampleStore sets up a template with one preset that keeps two prebuilds,
// plays the reconciler and the provisioner by hand, and claims a prebuild.
func ExampleStore() {
	ctx := context.Background()
	s := memstore.New()
	now := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

	templateID := uuid.MustParse("00000000-0000-0000-0000-0000000000a1")
	versionID := uuid.MustParse("00000000-0000-0000-0000-0000000000b1")
	presetID := uuid.MustParse("00000000-0000-0000-0000-0000000000c1")
	desired := 2
	must(s.CreateTemplate(ctx, prebuilds.Template{ID: templateID, Name: "dev-vm", OrganizationName: "acme"}))
	must(s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: versionID, TemplateID: templateID, Name: "v1", CreatedAt: now}))
	must(s.SetActiveVersion(ctx, templateID, versionID))
	must(s.UpsertPreset(ctx, prebuilds.Preset{
		ID: presetID, TemplateVersionID: versionID, Name: "large", Desired: &desired,
		Parameters: map[string]string{"cpu": "8"},
	}))

	// What the reconciler does for a preset that is missing prebuilds.
	jobs, err := s.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{
		PresetID: presetID, TemplateVersionID: versionID, Now: now,
		Instances: []prebuilds.NewPrebuild{
			{InstanceID: uuid.MustParse("00000000-0000-0000-0000-000000000001"), BuildID: uuid.New(), Name: "large-1"},
			{InstanceID: uuid.MustParse("00000000-0000-0000-0000-000000000002"), BuildID: uuid.New(), Name: "large-2"},
		},
	})
	must(err)

	// What the provisioner reports back, one minute apart.
	for _, job := range jobs {
		now = now.Add(time.Minute)
		_, err := s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: job.BuildID, Status: prebuilds.JobSucceeded, Now: now})
		must(err)
		must(s.SetReady(ctx, job.InstanceID, true))
		fmt.Printf("provisioned %s with cpu=%s\n", job.InstanceID, job.Parameters["cpu"])
	}

	// A user claims one: the oldest ready prebuild.
	user := uuid.MustParse("00000000-0000-0000-0000-0000000000d1")
	got, err := s.Claim(ctx, prebuilds.ClaimParams{PresetID: presetID, Owner: user, Now: now})
	must(err)
	fmt.Printf("claimed %s (%s), now owned by %s\n", got.ID, got.Name, got.OwnerID)

	// The next snapshot (read without the reconciliation lock) shows one
	// prebuild left and one claim counted.
	snap, err := s.Snapshot(ctx, prebuilds.Config{}.SnapshotParams(now))
	must(err)
	fmt.Printf("running %d, counters %+v\n", len(snap.Running), snap.Counters[0])
	// Output:
	// provisioned 00000000-0000-0000-0000-000000000001 with cpu=8
	// provisioned 00000000-0000-0000-0000-000000000002 with cpu=8
	// claimed 00000000-0000-0000-0000-000000000001 (large-1), now owned by 00000000-0000-0000-0000-0000000000d1
	// running 1, counters {PresetID:00000000-0000-0000-0000-0000000000c1 Created:2 Failed:0 Claimed:1 ClaimsMissed:0}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
