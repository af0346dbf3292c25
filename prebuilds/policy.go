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
	// streak backs off exponentially (BackoffInterval × 2^(n−1), at most
	// BackoffMax, where n is the streak, or the streak − 1 for a proven
	// preset, whose first failure is answered by a probe at once) and then
	// retries one probe build at a time; a preset with no successful build
	// yet (a new version, a reset) builds one canary before filling its
	// pool; the hard limit trips after a streak of K failures. The next
	// success cancels a streak.
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

// adaptiveUntil is when the backoff for n failures of a streak ends
// (n from backoffSteps): lastFailedAt + min(interval × 2^(n−1), max),
// without overflow.
func adaptiveUntil(lastFailedAt time.Time, n int, interval, maxWait time.Duration) time.Time {
	wait := maxWait
	switch {
	case interval <= 0:
		wait = min(0, maxWait) // 0 doubled is 0
	case n >= 1 && n-1 < 63 && interval <= maxWait>>(n-1):
		wait = min(interval<<(n-1), maxWait)
	}
	return lastFailedAt.Add(wait)
}

// backoffSteps is n, the failures of a streak that PolicyAdaptive backs off
// for: the whole streak of a preset not proven yet, one fewer for a proven
// preset. A pool that has built successfully answers a single failure with
// one probe at once rather than a pause: the failure may be chance, and
// the probe settles it at the cost of at most one more failed build.
func backoffSteps(streak int, proven bool) int {
	if proven {
		return streak - 1
	}
	return streak
}
