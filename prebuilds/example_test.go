package prebuilds_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/memstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Example is the README's "Using it": a catalogue, a Reconciler running in
// the background, a provisioner, a claim, the pool read without the lock,
// and the refill. The lines between the README markers are the README's
// code block; TestReadmeExample keeps the two identical.
func Example() {
	ctx := context.Background()
	// README:begin
	store := memstore.New() // or pgstore.New(pool)

	// The catalogue: a template, its active version, and a preset of it
	// that keeps 3 prebuilds warm.
	tmpl, version, preset := uuid.New(), uuid.New(), uuid.New()
	desired := 3
	must(store.CreateTemplate(ctx, prebuilds.Template{ID: tmpl, Name: "ci-runner", OrganizationName: "acme"}))
	must(store.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: version, TemplateID: tmpl, Name: "v1", CreatedAt: time.Now()}))
	must(store.SetActiveVersion(ctx, tmpl, version))
	must(store.UpsertPreset(ctx, prebuilds.Preset{ID: preset, TemplateVersionID: version, Name: "linux-amd64", Desired: &desired}))

	jobs := make(chan prebuilds.Job, 64)
	r := prebuilds.NewReconciler(store, prebuilds.Config{
		JobSink: jobs,                          // new jobs, handed off without blocking
		Logger:  slog.New(slog.DiscardHandler), // slog.Default() when nil
		// Registerer: prometheus.DefaultRegisterer, Notifier: …, FailurePolicy: …
	})

	// The provisioner: takes each job (pending → running: of several takers
	// exactly one wins), builds, reports. A real one also polls
	// store.PendingJobs for hand-offs the full sink dropped.
	ready := make(chan uuid.UUID, 64)
	provisioned := make(chan struct{})
	go func() {
		defer close(provisioned)
		for job := range jobs {
			if _, err := store.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: job.BuildID, Status: prebuilds.JobRunning, Now: time.Now()}); err != nil {
				continue // another provisioner took it, or it was canceled
			}
			// … provision the instance with job.Parameters …
			_, err := r.ReportJob(ctx, store, prebuilds.UpdateJobParams{BuildID: job.BuildID, Status: prebuilds.JobSucceeded, Now: time.Now()})
			must(err)
			must(store.SetReady(ctx, job.InstanceID, true)) // its agent reported in
			ready <- job.InstanceID
		}
	}()

	// Reconcile now, then every Config.Interval (1m), until Stop.
	running := make(chan error, 1)
	go func() { running <- r.Run(ctx) }()
	for range desired {
		<-ready
	}

	// A user takes a warm instance: the oldest ready one, in milliseconds.
	user := uuid.New()
	inst, err := store.Claim(ctx, prebuilds.ClaimParams{PresetID: preset, Owner: user, Now: time.Now()})
	if errors.Is(err, prebuilds.ErrNoClaimablePrebuild) {
		fmt.Println("none ready: fall back to a cold build")
		return
	}
	must(err)
	fmt.Println("claimed:", inst.OwnerID == user)

	// The pool's state and what the next pass will do, read without the
	// reconciliation lock: a dry run that never delays or skips a pass.
	plan, err := r.Plan(ctx)
	must(err)
	view, next, _ := plan.Find(preset)
	fmt.Printf("running %d of %d, claimed %d, next pass: %s %d (%s)\n",
		len(view.Running), next.Desired, view.Counters.Claimed, next.Actions[0].Kind, next.Actions[0].Count, next.Actions[0].Reason)

	must(r.Stop(ctx, nil)) // waits for the pass in progress
	fmt.Println("stopped:", errors.Is(<-running, prebuilds.ErrReconcilerStopped))

	// One pass by hand (Run's next tick would do the same): the refill.
	stats, err := r.ReconcileAll(ctx)
	must(err)
	fmt.Println("refilled:", stats.Created)
	<-ready
	// README:end
	close(jobs)
	<-provisioned
	// Output:
	// claimed: true
	// running 2 of 3, claimed 1, next pass: create 1 (missing)
	// stopped: true
	// refilled: 1
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
