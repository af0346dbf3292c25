package prebuilds_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/memstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// ExampleReconciler runs reconciliation passes on memstore: the first fills
// the pool, a provisioner (played inline) reports the builds, a user claims
// one, and the next pass replaces it. Reconciler.Plan is the dry run.
func ExampleReconciler() {
	ctx := context.Background()
	store := memstore.New()
	tmpl, ver, preset := uuid.New(), uuid.New(), uuid.New()
	desired := 3
	now := time.Now()
	check(store.CreateTemplate(ctx, prebuilds.Template{ID: tmpl, Name: "ci-runner", OrganizationName: "acme"}))
	check(store.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: ver, TemplateID: tmpl, Name: "v1", CreatedAt: now}))
	check(store.SetActiveVersion(ctx, tmpl, ver))
	check(store.UpsertPreset(ctx, prebuilds.Preset{ID: preset, TemplateVersionID: ver, Name: "linux-amd64", Desired: &desired}))

	jobs := make(chan prebuilds.Job, 16)
	r := prebuilds.NewReconciler(store, prebuilds.Config{
		JobSink: jobs,
		Logger:  slog.New(slog.DiscardHandler),
	})
	stats, err := r.ReconcileAll(ctx)
	check(err)
	fmt.Printf("pass 1: created %d\n", stats.Created)

	// The provisioner: take each job, build, report success, mark ready.
	for len(jobs) > 0 {
		j := <-jobs
		_, err := r.ReportJob(ctx, store, prebuilds.UpdateJobParams{BuildID: j.BuildID, Status: prebuilds.JobSucceeded, Now: time.Now()})
		check(err)
		check(store.SetReady(ctx, j.InstanceID, true))
	}

	user := uuid.New()
	inst, err := store.Claim(ctx, prebuilds.ClaimParams{PresetID: preset, Owner: user, Now: time.Now()})
	check(err)
	fmt.Printf("claimed a prebuild: owner is the user: %v\n", inst.OwnerID == user)

	// Dry run: what would the next pass do, and why? It takes no lock.
	pp, err := r.Plan(ctx)
	check(err)
	for _, plan := range pp.Plans {
		for _, a := range plan.Actions {
			fmt.Printf("plan: %s %d (%s)\n", a.Kind, a.Count, a.Reason)
		}
	}

	stats, err = r.ReconcileAll(ctx)
	check(err)
	fmt.Printf("pass 2: created %d\n", stats.Created)
	// Output:
	// pass 1: created 3
	// claimed a prebuild: owner is the user: true
	// plan: create 1 (missing)
	// pass 2: created 1
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}
