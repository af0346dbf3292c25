// Command prebuildsim runs the real prebuilds.Reconciler on a memstore.Store
// over a simulated fleet, a simulated provisioner and simulated users, on a
// simulated clock, so that an hour of operation takes a second or two.
//
// Usage:
//
//	go run ./cmd/prebuildsim [flags]
//	go run ./cmd/prebuildsim -h
//
// # The fleet
//
// Six preset groups, one template each (-presets N gives every template
// version N presets of the group):
//
//	web            desired 10; a new template version is activated half-way
//	               through the run: the outdated prebuilds are deleted and
//	               replaced by prebuilds of the new version's presets
//	ci-runner      desired 20, raised to 40 by a schedule during business
//	               hours (09:00-17:59 Monday-Friday, America/New_York)
//	gpu            desired 3, TTL 20m: prebuilds expire and are replaced
//	broken         desired 2, every build fails: backoff, then the hard limit
//	flaky          desired 4, half the builds fail: backoff, and recovery
//	misconfigured  desired 2, builds fail validation: validation_failed
//
// # The actors
//
// The provisioner takes jobs from the Reconciler's JobSink (a buffered
// channel of -sink-buffer jobs; a full buffer drops the hand-off) and, every
// -poll, from ControlPlane.PendingJobs (oldest first, pages of 100) for the
// hand-offs it missed. It takes a job with UpdateJob(pending → running),
// the store's at-most-once hand-out; a job canceled while queued is no
// longer listed, or fails that take and is skipped. A build
// takes a lognormal duration around -build-time (deletes a third of it),
// start builds fail with -failure-rate (broken: always, flaky: half the
// time, misconfigured: a validation failure), and a succeeded start build
// is marked ready at once. Reports go through Reconciler.ReportJob so
// validation events fire.
//
// Users claim prebuilds as a Poisson process of -claim-rate claims per
// minute, spread over the groups in proportion to their static desired
// counts; a claim that finds no ready prebuild is a miss.
//
// An operator removes the failed prebuilds of a hard-limited preset
// -operator-delay after the hard_limited event, which clears the condition
// (a recovered event) so that creation resumes; a preset that keeps failing
// is hard-limited again.
//
// # Determinism
//
// A run is a function of its flags: every random draw comes from generators
// seeded by -seed, the simulation is one goroutine, the Reconciler executes
// one preset plan at a time (MaxConcurrency 1), and the UUID generator of
// github.com/google/uuid is seeded too (uuid.SetRand) for the duration of the
// run, because the Reconciler names instances with uuid.New and ties between
// prebuilds created in the same pass are broken by ID.
package main
