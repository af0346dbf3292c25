// Package prebuilds keeps warm pools of pre-provisioned instances.
//
// For every preset (one configuration of a resource) that has a desired
// count, the Reconciler keeps that many instances provisioned ahead of
// demand, owned by SystemOwner, so that a user claims a ready one instead of
// waiting for a cold build.
//
// # Model of operation
//
// Data flows one way:
//
//	Store → GlobalSnapshot → Index → PlanPreset → actions → executor → Store
//
// Each pass of Reconciler.ReconcileAll tries the cluster-wide lock without
// blocking (another replica holding it means this pass does nothing), reads
// one consistent snapshot (docs/spec.md, "The snapshot"), persists hard-limit status
// transitions with a compare-and-set (one event per real transition across
// all replicas), plans every preset with the pure planner, and executes the
// non-empty plans concurrently with a bound. After each committed write the
// new job is handed to the user's JobSink without blocking (a full sink
// drops the hand-off); provisioners also poll ControlPlane.PendingJobs, take
// a job with UpdateJob(pending → running) — a second taker gets
// ErrInvalidTransition — and report back through Reconciler.ReportJob (or
// ControlPlane.UpdateJob).
//
// The planner (PlanPreset) is a pure function of a PresetSnapshot, an
// instant and a PlanConfig. For an inactive preset it cancels queued first
// builds and deletes every running prebuild; for an active one it deletes
// expired prebuilds, then the oldest valid ones beyond the desired count,
// then creates what is missing unless the preset is hard-limited,
// validation-failed or backing off. Every action carries a Reason, so a
// plan computed in dry-run explains itself.
//
// # Semantics the snapshot fixes
//
// The current preset of an instance is the preset of its most recent start
// build that has one; an instance without one is attributed to no preset.
// Snapshot rows (running, in-progress, pending-inactive, backoff,
// hard-limited) are reported only for presets in GlobalSnapshot.Presets, that
// is presets whose desired count is set.
//
// Counters are cumulative and monotone. An instance is "created as a
// prebuild" when it was created with owner SystemOwner (it still is, or it
// has been claimed). For a preset P, counted over instances created as
// prebuilds whose build #1 has preset P, deleted ones included: Created
// counts the instances, Failed those whose build #1 job failed, Claimed
// those that were claimed. A counters row exists iff Created > 0.
//
// Job statuses move pending → running → succeeded | failed | canceling →
// canceled; pending may also go straight to any later status, canceling
// only to canceled or failed. Terminal statuses (succeeded, failed,
// canceled) never change; an update that the current status does not allow
// returns ErrInvalidTransition. CompletedAt is set on reaching a terminal
// status. A succeeded delete build marks its instance deleted. A build can
// only be started on a not-deleted instance whose latest job is terminal.
//
// A failed start build of kind FailureValidation on an instance owned by
// SystemOwner moves the build's preset from healthy to validation_failed
// (compare-and-set; a preset in any other status is left alone). Creation
// stays blocked until ResetPreset.
//
// The hard-limit status of an active preset follows the live condition in
// both directions (healthy ⇄ hard_limited), each transition made by a
// compare-and-set so exactly one replica emits its event. An inactive preset
// keeps the status it had: its builds no longer count toward the condition,
// and a version change is not a recovery.
//
// Time never comes from a store's own clock: every decision takes `now` as a
// parameter, and every timestamp is kept at microsecond precision in UTC
// (see Micro).
package prebuilds
