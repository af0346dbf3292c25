package prebuilds

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every Store returns errors that match these with errors.Is.
var (
	// ErrNotFound: the referenced template, version, preset, instance or build
	// does not exist.
	ErrNotFound = errors.New("prebuilds: not found")
	// ErrConflict: a conditional write lost a race (the instance changed
	// owner, was deleted, or its latest build is no longer start+succeeded),
	// or a write would break an invariant (duplicate ID, build number).
	ErrConflict = errors.New("prebuilds: conflict")
	// ErrNoClaimablePrebuild: Claim found no ready, valid prebuild.
	ErrNoClaimablePrebuild = errors.New("prebuilds: no claimable prebuild")
	// ErrInvalidPreset: a preset failed validation. The error is a
	// *ValidationError naming the field.
	ErrInvalidPreset = errors.New("prebuilds: invalid preset")
	// ErrInvalidArgument: an argument other than a preset is malformed
	// (unknown transition or job status, negative count, nil ID).
	ErrInvalidArgument = errors.New("prebuilds: invalid argument")
	// ErrInvalidTransition: a job status update that the job's current status
	// does not allow (for example succeeded → running).
	ErrInvalidTransition = errors.New("prebuilds: invalid job status transition")
)

// ValidationError reports which field of a preset is invalid and why. It
// matches ErrInvalidPreset with errors.Is.
type ValidationError struct {
	// Field is the offending field, e.g. "desired", "schedules[1].cron".
	Field string
	// Reason says what is wrong with it.
	Reason string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("prebuilds: invalid preset: %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidPreset) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidPreset }
