package model

import (
	"slices"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// The model's own reading of the enumerations, written from docs/spec.md ("Vocabulary") rather
// than by calling the methods of package prebuilds, so that a wrong method
// there is caught by the conformance suite instead of being shared.

var (
	transitions    = []prebuilds.Transition{prebuilds.TransitionStart, prebuilds.TransitionStop, prebuilds.TransitionDelete}
	jobStatuses    = []prebuilds.JobStatus{prebuilds.JobPending, prebuilds.JobRunning, prebuilds.JobSucceeded, prebuilds.JobFailed, prebuilds.JobCanceling, prebuilds.JobCanceled}
	presetStatuses = []prebuilds.PresetStatus{prebuilds.PresetHealthy, prebuilds.PresetHardLimited, prebuilds.PresetValidationFailed}
)

func knownTransition(t prebuilds.Transition) bool     { return slices.Contains(transitions, t) }
func knownJobStatus(s prebuilds.JobStatus) bool       { return slices.Contains(jobStatuses, s) }
func knownPresetStatus(s prebuilds.PresetStatus) bool { return slices.Contains(presetStatuses, s) }

// finished reports whether a job has ended: succeeded, failed or canceled
// (canceling is still in flight).
func finished(s prebuilds.JobStatus) bool {
	return s == prebuilds.JobSucceeded || s == prebuilds.JobFailed || s == prebuilds.JobCanceled
}
