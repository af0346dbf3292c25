// Package prebuilds keeps warm pools of pre-provisioned instances.
//
// For every preset (one configuration of a resource) that has a desired
// count, the Reconciler keeps that many instances provisioned ahead of
// demand, owned by SystemOwner, so that a user claims a ready one instead of
// waiting for a cold build.
//
// The semantics are specified in docs/spec.md: the vocabulary (current
// preset, active preset, …), every fact of the snapshot a store returns, the
// planner's rules, what the Reconciler does with a plan, and the checks and
// effects of each store operation. This package holds the types, the pure
// planner, the Reconciler and the Store and ControlPlane interfaces.
//
// # Model of operation
//
// Data flows one way:
//
//	Store → GlobalSnapshot → Index → PlanPreset → actions → executor → Store
//
// Each pass of Reconciler.ReconcileAll tries the cluster-wide lock without
// blocking (another replica holding it means this pass does nothing), reads
// one consistent snapshot (docs/spec.md, "The snapshot"), persists
// hard-limit status transitions with a compare-and-set (one event per real
// transition across all replicas), plans every preset with the pure planner
// (docs/spec.md, "The planner"), and executes the non-empty plans
// concurrently with a bound (docs/spec.md, "The Reconciler"). After each
// committed write the new job is handed to the user's JobSink without
// blocking; provisioners also poll ControlPlane.PendingJobs, take a job
// with UpdateJob(pending → running) and report back through
// Reconciler.ReportJob.
//
// PlanPreset is a pure function of a PresetSnapshot, an instant and a
// PlanConfig. Every action carries a Reason, so a plan computed in dry-run
// explains itself.
//
// Time never comes from a store's own clock: every decision takes `now` as a
// parameter, and every timestamp is kept at microsecond precision in UTC
// (see Micro).
package prebuilds
