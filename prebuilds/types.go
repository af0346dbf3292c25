package prebuilds

import (
	"time"

	"github.com/google/uuid"
)

// SystemOwner owns every prebuild. Claiming a prebuild transfers it from
// SystemOwner to a user; an instance owned by anyone else is never touched by
// the reconciler.
var SystemOwner = uuid.MustParse("c42fdf75-3097-471c-8c33-fb52454d81c0")

// Transition is what a build does to its instance.
type Transition string

// Build transitions.
const (
	TransitionStart  Transition = "start"
	TransitionStop   Transition = "stop"
	TransitionDelete Transition = "delete"
)

// Valid reports whether t is one of the defined transitions.
func (t Transition) Valid() bool {
	switch t {
	case TransitionStart, TransitionStop, TransitionDelete:
		return true
	}
	return false
}

// JobStatus is the provisioner job state of a build.
type JobStatus string

// Job statuses.
const (
	JobPending   JobStatus = "pending"
	JobRunning   JobStatus = "running"
	JobSucceeded JobStatus = "succeeded"
	JobFailed    JobStatus = "failed"
	JobCanceling JobStatus = "canceling"
	JobCanceled  JobStatus = "canceled"
)

// Valid reports whether s is one of the defined job statuses.
func (s JobStatus) Valid() bool {
	switch s {
	case JobPending, JobRunning, JobSucceeded, JobFailed, JobCanceling, JobCanceled:
		return true
	}
	return false
}

// InProgress reports whether a worker may still act on the job (pending or
// running). Only in-progress builds count as starting/stopping/deleting.
func (s JobStatus) InProgress() bool { return s == JobPending || s == JobRunning }

// Terminal reports whether the job has finished (succeeded, failed or canceled).
func (s JobStatus) Terminal() bool {
	return s == JobSucceeded || s == JobFailed || s == JobCanceled
}

// FailureKind qualifies a failed job. A validation failure is one that
// retrying cannot fix (bad parameters, a template that does not plan); it
// puts the preset in PresetValidationFailed.
type FailureKind string

// Failure kinds.
const (
	FailureNone       FailureKind = ""
	FailureTransient  FailureKind = "transient"
	FailureValidation FailureKind = "validation"
	// FailureTimeout marks a build the Reconciler failed because it stayed
	// pending or running longer than Config.BuildTimeout.
	FailureTimeout FailureKind = "timeout"
)

// Valid reports whether k is one of the defined failure kinds (FailureNone
// included).
func (k FailureKind) Valid() bool {
	switch k {
	case FailureNone, FailureTransient, FailureValidation, FailureTimeout:
		return true
	}
	return false
}

// PresetStatus is the reconciliation health of a preset.
type PresetStatus string

// Preset statuses.
const (
	PresetHealthy          PresetStatus = "healthy"
	PresetHardLimited      PresetStatus = "hard_limited"
	PresetValidationFailed PresetStatus = "validation_failed"
)

// Valid reports whether s is one of the defined preset statuses.
func (s PresetStatus) Valid() bool {
	switch s {
	case PresetHealthy, PresetHardLimited, PresetValidationFailed:
		return true
	}
	return false
}

// Template is a family of resources.
type Template struct {
	ID               uuid.UUID
	OrganizationID   uuid.UUID
	OrganizationName string
	Name             string
	// ActiveVersionID is uuid.Nil until a version is activated.
	ActiveVersionID uuid.UUID
	Deprecated      bool
	Deleted         bool
}

// TemplateVersion is an immutable revision of a template.
type TemplateVersion struct {
	ID         uuid.UUID
	TemplateID uuid.UUID
	Name       string
	CreatedAt  time.Time
}

// Schedule overrides a preset's desired count while its cron expression
// matches. Cron is five fields in robfig/cron syntax (minute hour
// day-of-month month day-of-week), evaluated in the preset's Timezone.
type Schedule struct {
	Cron      string
	Instances int
}

// Preset is one named configuration inside a template version.
type Preset struct {
	ID                uuid.UUID
	TemplateVersionID uuid.UUID
	Name              string
	// Desired is the number of prebuilds to keep. nil means prebuilds were
	// never configured for this preset; once set it cannot be unset (set 0 to
	// drain the pool).
	Desired *int
	// TTL expires prebuilds older than it; 0 disables expiry.
	TTL time.Duration
	// InvalidatedAt, when non-zero, expires every prebuild created before it.
	InvalidatedAt time.Time
	// Timezone is an IANA zone name; required when Schedules is non-empty.
	Timezone string
	// Schedules are tried in order; the first that matches gives the desired
	// count.
	Schedules  []Schedule
	Parameters map[string]string
	// Status defaults to PresetHealthy when empty on write.
	Status PresetStatus
	// ResetAt, when non-zero, is the last admin reset: failures created before
	// it no longer count toward backoff or the hard limit.
	ResetAt time.Time
}

// Instance is one provisioned resource.
type Instance struct {
	ID         uuid.UUID
	OwnerID    uuid.UUID
	TemplateID uuid.UUID
	Name       string
	CreatedAt  time.Time
	Ready      bool
	Deleted    bool
	// ClaimedAt is set when a prebuild was claimed (ownership transferred).
	ClaimedAt time.Time
}

// IsPrebuild reports whether the instance is still owned by SystemOwner.
func (i Instance) IsPrebuild() bool { return i.OwnerID == SystemOwner }

// Build is one provisioning attempt on an instance. The build is also the
// provisioner job: its ID is the job ID handed to a JobSink.
type Build struct {
	ID                uuid.UUID
	InstanceID        uuid.UUID
	Number            int
	TemplateVersionID uuid.UUID
	// PresetID is uuid.Nil when the build has no preset.
	PresetID    uuid.UUID
	Transition  Transition
	JobStatus   JobStatus
	FailureKind FailureKind
	Parameters  map[string]string
	CreatedAt   time.Time
	// CompletedAt is zero until the job reaches a terminal status.
	CompletedAt time.Time
}

// Job is the hand-off of a newly committed build to the user's provisioner.
type Job struct {
	BuildID           uuid.UUID
	InstanceID        uuid.UUID
	PresetID          uuid.UUID
	TemplateVersionID uuid.UUID
	Transition        Transition
	Parameters        map[string]string
}

// Micro truncates t to the microsecond precision every store keeps, and
// normalises it to UTC.
func Micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// CanBecome reports whether a job may move from status s to status to:
// pending → running, succeeded, failed, canceling, canceled; running →
// succeeded, failed, canceling, canceled; canceling → canceled, failed.
// Nothing leaves a terminal status, and no status moves to itself. Stores
// answer ErrInvalidTransition to an update it forbids.
func (s JobStatus) CanBecome(to JobStatus) bool {
	switch s {
	case JobPending:
		return to == JobRunning || to == JobSucceeded || to == JobFailed || to == JobCanceling || to == JobCanceled
	case JobRunning:
		return to == JobSucceeded || to == JobFailed || to == JobCanceling || to == JobCanceled
	case JobCanceling:
		return to == JobCanceled || to == JobFailed
	}
	return false
}
