// Package conformance is the test suite every prebuilds store must pass:
// memstore, pgstore, and yours.
//
// Run drives a fresh store per subtest through its prebuilds.ControlPlane and
// compares it with the reference model (package model), exactly:
//
//   - Scenarios: every scenario of scenarios.go is replayed into the
//     store. "<name>/Snapshot" requires the store's snapshot to equal the
//     model's at every check (after prebuilds.SortSnapshot) and the planner
//     fed that snapshot to produce the hand-written plan. "<name>/Reconcile"
//     runs the real prebuilds.Reconciler (mock clock at the check's instant)
//     through a Recorder and requires exactly the planned writes: creates
//     per preset, deleted instances, pending builds canceled, hard-limit
//     status changes and their events. "<name>/Sequence" reconciles at every
//     check on one store, with the model as the oracle.
//   - Claim: N concurrent claimers of M ready prebuilds get min(N, M)
//     distinct instances; a claim racing a delete of the same prebuild: one
//     wins; prebuilds that are not ready, expired (TTL, invalidation), of an
//     inactive preset, stopping, failed, deleted or already claimed are
//     never handed out; sequential claims take the oldest.
//   - Lock: one holder at a time and never blocking; five replicas racing a
//     hard-limit transition make one status change and one event.
//   - Pause: a paused pass writes nothing, not even deletes.
//   - Errors: invalid presets are rejected with prebuilds.ErrInvalidPreset
//     and nothing is stored; spot checks of docs/store-semantics.md.
//   - PendingJobs: the polling API lists pending jobs of not-deleted
//     instances oldest first (created_at, then build ID), at most Limit
//     (1..prebuilds.MaxPendingJobsLimit, else ErrInvalidArgument), exactly
//     as the model; of several provisioners racing to take the same polled
//     jobs with UpdateJob(running), exactly one wins each job.
//   - Snapshot/RandomWorlds and StateMachine: rapid state machines apply the
//     same random operations (templates, versions, presets valid or not,
//     activation, deprecation, deletion, invalidation, reset, pause, jobs
//     succeeding, failing or canceled, readiness, claims, builds started by
//     others, admin removal, polling pending jobs and taking one, the clock
//     moving by 1µs to hours, and passes of
//     the real Reconciler) to the store and the model; after every step
//     the snapshots must be equal, every operation must fail alike (same
//     sentinel), and each pass must write exactly the model's plan.
//     Failures shrink to a minimal sequence and are saved under
//     testdata/rapid of the package running the test; rerun with the
//     -rapid.failfile flag rapid prints. -rapid.checks sets the number of
//     sequences (default Harness.StateMachineChecks, else 100).
//
// Assertions report go-cmp diffs, "-model +store" or "-want +got", with
// presets and instances named where the suite knows their names.
//
// # Running it against your store
//
// Provide a constructor that returns a fresh, empty, isolated store each
// time it is called (a new database or schema per call for SQL stores):
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{
//			NewStore: func(t *testing.T, _ *quartz.Mock) conformance.Store {
//				db := newTestDatabase(t) // your helper: one database per call, dropped in t.Cleanup
//				return mystore.New(db)
//			},
//		})
//	}
//
// then go test -race -run TestConformance ./yourpkg, or one case, e.g.
// -run 'TestConformance/Backoff/NumFailed' or -run 'TestConformance/Claim/'.
// Subtests run in parallel unless Harness.Serial is set. Add goleak to the
// package's TestMain if your store starts goroutines.
package conformance
