package prebuilds

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Store is what the Reconciler needs from storage. It is deliberately small;
// integrators and tests drive the rest of the state through ControlPlane.
//
// Every method must be safe for concurrent use. Errors must match the
// sentinels of this package with errors.Is.
type Store interface {
	// Snapshot reads one consistent snapshot without the reconciliation
	// lock: it neither waits for a lock holder nor keeps one from acting
	// (Reconciler.Plan, dry runs, dashboards). Under the lock, use the
	// reader handed to WithReconciliationLock's fn instead, which sees every
	// write the previous holder committed.
	SnapshotReader

	// WithReconciliationLock tries to take the cluster-wide reconciliation
	// lock without blocking. When another holder has it, it returns
	// (false, nil) at once and fn is not called. Otherwise it calls fn with a
	// reader for one consistent snapshot and releases the lock when fn
	// returns; writes fn makes through the Store happen while the lock is
	// held.
	WithReconciliationLock(ctx context.Context, fn func(ctx context.Context, r SnapshotReader) error) (acquired bool, err error)

	// CreatePrebuilds inserts, in one transaction, one SystemOwner instance
	// and its build #1 (start, pending, preset parameters) for each entry of
	// p.Instances. The preset must exist and its version must be
	// p.TemplateVersionID, else ErrNotFound/ErrConflict and nothing is
	// written. It returns the jobs to hand to the provisioner.
	CreatePrebuilds(ctx context.Context, p CreatePrebuildsParams) ([]Job, error)

	// DeletePrebuild inserts a delete build (pending, on the latest build's
	// version, no preset, no parameters) if, in the same transaction, the
	// instance is still SystemOwner-owned, not deleted, and its latest build
	// is start+succeeded. Otherwise it returns an error matching ErrConflict
	// (ErrNotFound when the instance does not exist).
	DeletePrebuild(ctx context.Context, p DeletePrebuildParams) (Job, error)

	// CancelPending re-checks, in one transaction, the pending_inactive
	// criteria for the preset (SystemOwner, not deleted, only build is #1
	// start pending, preset not active), marks those jobs canceled at p.Now
	// and the instances deleted. It returns the canceled instance IDs.
	CancelPending(ctx context.Context, p CancelPendingParams) ([]uuid.UUID, error)

	// SetPresetStatus sets the preset's status to `to` only if it is `from`
	// (compare-and-set). changed is true iff this call changed the row.
	SetPresetStatus(ctx context.Context, presetID uuid.UUID, from, to PresetStatus) (changed bool, err error)

	// FailStuckBuild fails a stuck build: if, in one transaction, the build
	// is a start build whose job is still pending or running, created
	// before p.StuckBefore, on a not-deleted instance owned by SystemOwner,
	// its job becomes failed with failure kind FailureTimeout and
	// CompletedAt p.Now. Otherwise it returns an error matching ErrConflict
	// (ErrNotFound when the build does not exist). A provisioner reporting
	// on the build later gets ErrInvalidTransition.
	FailStuckBuild(ctx context.Context, p FailStuckBuildParams) error
}

// FailStuckBuildParams are the inputs of Store.FailStuckBuild.
type FailStuckBuildParams struct {
	BuildID uuid.UUID
	// StuckBefore is the snapshot's cut-off (SnapshotParams.StuckBefore):
	// the build must have been created before it.
	StuckBefore time.Time
	Now         time.Time
}

// SnapshotReader reads the snapshot.
type SnapshotReader interface {
	// Snapshot returns the snapshot (docs/spec.md, "The snapshot") as of one
	// consistent read.
	Snapshot(ctx context.Context, p SnapshotParams) (*GlobalSnapshot, error)
}

// NewPrebuild names the identifiers of one instance to create. The
// Reconciler generates them so that a create is idempotent to inspect and
// easy to trace.
type NewPrebuild struct {
	InstanceID uuid.UUID
	BuildID    uuid.UUID
	Name       string
}

// CreatePrebuildsParams are the inputs of Store.CreatePrebuilds.
type CreatePrebuildsParams struct {
	PresetID          uuid.UUID
	TemplateVersionID uuid.UUID
	Instances         []NewPrebuild
	Now               time.Time
}

// DeletePrebuildParams are the inputs of Store.DeletePrebuild.
type DeletePrebuildParams struct {
	InstanceID uuid.UUID
	// BuildID is the ID of the delete build to insert.
	BuildID uuid.UUID
	Now     time.Time
}

// CancelPendingParams are the inputs of Store.CancelPending.
type CancelPendingParams struct {
	PresetID uuid.UUID
	Now      time.Time
}

// ControlPlane is the API integrators (and the conformance suite) use to
// change state: templates, versions, presets, builds started by others,
// provisioner reports, readiness and claims. Every store implements it next
// to Store.
type ControlPlane interface {
	// CreateTemplate inserts a template. ActiveVersionID must be uuid.Nil
	// (activate a version with SetActiveVersion).
	CreateTemplate(ctx context.Context, t Template) error
	// CreateTemplateVersion inserts a version of an existing template.
	CreateTemplateVersion(ctx context.Context, v TemplateVersion) error
	// SetActiveVersion makes versionID (a version of the template) active.
	// Presets of the new version that are validation_failed are not changed;
	// the old version's presets become inactive.
	SetActiveVersion(ctx context.Context, templateID, versionID uuid.UUID) error
	// SetTemplateDeprecated sets or clears the deprecated flag.
	SetTemplateDeprecated(ctx context.Context, templateID uuid.UUID, deprecated bool) error
	// DeleteTemplate marks the template deleted (soft delete).
	DeleteTemplate(ctx context.Context, templateID uuid.UUID) error

	// UpsertPreset validates p (ErrInvalidPreset) and inserts it, or updates
	// desired, TTL, timezone, schedules and parameters of an existing preset
	// of the same ID and version. Desired cannot go from set to nil. Status,
	// ResetAt and InvalidatedAt are not changed by an update.
	UpsertPreset(ctx context.Context, p Preset) error
	// InvalidatePreset sets invalidated_at: prebuilds created before it
	// expire.
	InvalidatePreset(ctx context.Context, presetID uuid.UUID, at time.Time) error
	// ResetPreset is the admin "try again": status → healthy, reset_at = at.
	ResetPreset(ctx context.Context, presetID uuid.UUID, at time.Time) error
	// SetPaused sets the global pause switch.
	SetPaused(ctx context.Context, paused bool) error

	// CreateInstance inserts an instance and its build #1 (any owner). Used
	// by integrators for user instances and by tests to seed state.
	CreateInstance(ctx context.Context, p CreateInstanceParams) error
	// StartBuild appends a build (number = latest + 1, job pending) to a
	// not-deleted instance whose latest job is terminal (else ErrConflict):
	// a stop, delete or start started by someone other than the reconciler.
	StartBuild(ctx context.Context, p StartBuildParams) error
	// UpdateJob records the provisioner's report on a build's job. A
	// succeeded delete marks the instance deleted. A failure of kind
	// FailureValidation on a SystemOwner instance's start build moves the
	// build's preset from healthy to validation_failed (compare-and-set); the
	// transition is reported so the caller can emit the event.
	UpdateJob(ctx context.Context, p UpdateJobParams) (UpdateJobResult, error)
	// SetReady sets the instance's ready flag.
	SetReady(ctx context.Context, instanceID uuid.UUID, ready bool) error
	// Claim atomically takes the oldest claimable prebuild of the preset
	// (active preset, SystemOwner, not deleted, latest build start+succeeded,
	// ready, not expired at p.Now) and gives it to p.Owner. None →
	// ErrNoClaimablePrebuild.
	Claim(ctx context.Context, p ClaimParams) (Instance, error)
	// RemoveInstance is the admin removal of an instance (typically a failed
	// prebuild): it is marked deleted without a build.
	RemoveInstance(ctx context.Context, instanceID uuid.UUID) error

	// PendingJobs is the polling side of the job hand-off: provisioners call
	// it to find the jobs whose JobSink hand-off they missed (the Reconciler
	// drops hand-offs when the sink is full: docs/spec.md, "Jobs: hand-off
	// and polling") and jobs of builds started through the control plane.
	// It returns the jobs of builds whose job status is pending, on
	// instances that are not deleted, oldest first (build created_at, then
	// build ID in UUID byte order, see CompareUUID), at most p.Limit of them.
	// p.Limit must be in 1..MaxPendingJobsLimit, else ErrInvalidArgument.
	//
	// Listing a job does not reserve it. A provisioner takes a job with
	// UpdateJob(pending → running): the store checks the transition
	// atomically, so of several pollers that saw the same job exactly one
	// takes it and every other gets ErrInvalidTransition and must skip the
	// job. That compare-and-set is the at-most-once hand-out; PendingJobs
	// itself is a plain read and may return a job that another provisioner
	// takes, or CancelPending cancels, a moment later. A job leaves the
	// list once its status changes, so polling again after taking a page
	// sees the next jobs; there is no cursor.
	PendingJobs(ctx context.Context, p PendingJobsParams) ([]Job, error)

	// GetPreset, GetInstance and ListBuilds read single rows back.
	GetPreset(ctx context.Context, presetID uuid.UUID) (Preset, error)
	GetInstance(ctx context.Context, instanceID uuid.UUID) (Instance, error)
	// ListBuilds returns an instance's builds by ascending number.
	ListBuilds(ctx context.Context, instanceID uuid.UUID) ([]Build, error)
}

// CreateInstanceParams are the inputs of ControlPlane.CreateInstance.
type CreateInstanceParams struct {
	InstanceID uuid.UUID
	OwnerID    uuid.UUID
	TemplateID uuid.UUID
	Name       string
	// Build is build #1; its InstanceID and Number are set by the store.
	BuildID           uuid.UUID
	TemplateVersionID uuid.UUID
	PresetID          uuid.UUID
	Transition        Transition
	Parameters        map[string]string
	Now               time.Time
}

// StartBuildParams are the inputs of ControlPlane.StartBuild.
type StartBuildParams struct {
	InstanceID        uuid.UUID
	BuildID           uuid.UUID
	TemplateVersionID uuid.UUID
	// PresetID may be uuid.Nil.
	PresetID   uuid.UUID
	Transition Transition
	Parameters map[string]string
	Now        time.Time
}

// UpdateJobParams are the inputs of ControlPlane.UpdateJob.
type UpdateJobParams struct {
	BuildID uuid.UUID
	Status  JobStatus
	// FailureKind qualifies Status == JobFailed.
	FailureKind FailureKind
	Now         time.Time
}

// UpdateJobResult reports side effects of a job update.
type UpdateJobResult struct {
	// ValidationFailedPreset is the preset whose status this update moved to
	// validation_failed, or uuid.Nil.
	ValidationFailedPreset uuid.UUID
}

// MaxPendingJobsLimit is the largest PendingJobsParams.Limit.
const MaxPendingJobsLimit = 10000

// PendingJobsParams are the inputs of ControlPlane.PendingJobs.
type PendingJobsParams struct {
	// Limit is the maximum number of jobs returned, 1..MaxPendingJobsLimit.
	Limit int
}

// ClaimParams are the inputs of ControlPlane.Claim.
type ClaimParams struct {
	PresetID uuid.UUID
	Owner    uuid.UUID
	Now      time.Time
}
