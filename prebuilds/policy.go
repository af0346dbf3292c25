package prebuilds

import "time"

// FailurePolicy decides how failed builds hold a preset's creation back
// (docs/spec.md, "Failure policies").
type FailurePolicy string

// Failure policies.
const (
	// PolicyCoder is the policy of Coder's reconciler: a backoff window
	// opens while any of the newest desired candidate builds failed
	// recently, as long as the number of recent failures times
	// BackoffInterval; the hard limit trips when the K newest candidate
	// builds all failed.
	PolicyCoder FailurePolicy = "coder"
	// PolicyAdaptive looks at outcomes in completion order: a failure
	// streak backs off exponentially (BackoffInterval × 2^(streak−1), at
	// most BackoffMax) and then retries one probe build at a time; a preset
	// with no successful build yet (a new version, a reset) builds one
	// canary before filling its pool; the hard limit trips after a streak of
	// K failures. The next success cancels a streak.
	PolicyAdaptive FailurePolicy = "adaptive"
)

// DefaultFailurePolicy is the policy of a zero Config.
const DefaultFailurePolicy = PolicyCoder

// Valid reports whether p is a defined policy or empty (the default).
func (p FailurePolicy) Valid() bool {
	return p == "" || p == PolicyCoder || p == PolicyAdaptive
}

// Resolved returns p, or DefaultFailurePolicy when p is empty.
func (p FailurePolicy) Resolved() FailurePolicy {
	if p == "" {
		return DefaultFailurePolicy
	}
	return p
}

// MaxStreak caps streak(P): a failure streak longer than 64 counts as 64.
const MaxStreak = 64

// adaptiveUntil is when the backoff after a failure streak ends:
// lastFailedAt + min(interval × 2^(streak−1), max), without overflow.
func adaptiveUntil(lastFailedAt time.Time, streak int, interval, maxWait time.Duration) time.Time {
	wait := maxWait
	if streak >= 1 && streak-1 < 63 && interval <= maxWait>>(streak-1) {
		wait = min(interval<<(streak-1), maxWait)
	}
	return lastFailedAt.Add(wait)
}
