package prebuilds

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/coder/quartz"
	"github.com/prometheus/client_golang/prometheus"
)

// HardLimit is the failure hard limit K, encoded the same way everywhere it
// appears (Config.FailureHardLimit, SnapshotParams.HardLimit, the
// simulator's -hard-limit flag): a positive value is K; 0 means the default,
// DefaultFailureHardLimit (3); NoHardLimit, or any negative value, turns the
// hard limit off. Resolve it with K.
type HardLimit int

// NoHardLimit turns the failure hard limit off.
const NoHardLimit HardLimit = -1

// K resolves h: the hard limit in force, or 0 when it is off.
func (h HardLimit) K() int {
	switch {
	case h == 0:
		return DefaultFailureHardLimit
	case h < 0:
		return 0
	}
	return int(h)
}

// Config configures a Reconciler. The zero value works: every field
// documents its default.
type Config struct {
	// Interval between reconciliation passes of Run. Default 1m.
	Interval time.Duration
	// BackoffInterval is the unit of backoff: PolicyCoder multiplies it by
	// the number of recent failures; PolicyAdaptive waits
	// BackoffInterval × 2^(n−1), at most BackoffMax (n as PolicyAdaptive
	// says). Default 1m.
	BackoffInterval time.Duration
	// BackoffLookback is how far back failures count toward backoff.
	// Default 1h.
	BackoffLookback time.Duration
	// FailurePolicy decides how failures hold creation back: PolicyCoder or
	// PolicyAdaptive. Default DefaultFailurePolicy (the empty value).
	FailurePolicy FailurePolicy
	// BackoffMax bounds the exponential backoff of PolicyAdaptive.
	// Default 10m.
	BackoffMax time.Duration
	// DisableCanary turns off PolicyAdaptive's canary: a preset with no
	// successful build yet (a new version, a cold start, an admin reset)
	// then fills its whole pool at once instead of building one prebuild
	// first. The canary costs about one build time before the pool fills; it
	// saves the failed builds a broken version would cost. Default false
	// (canary on).
	DisableCanary bool
	// BuildTimeout fails prebuild start builds still pending or running
	// this long after they were created (failure kind timeout), under both
	// policies. Default (0): off under PolicyCoder; under PolicyAdaptive
	// DefaultAdaptiveBuildTimeout, because a probe or canary build that
	// never completes would otherwise hold its preset forever.
	// NoBuildTimeout (or any negative value) turns it off.
	BuildTimeout time.Duration
	// MaxCreatesPerPass bounds the prebuilds one pass creates, shared
	// max-min fairly by missing fraction; deletes, cancels and failing
	// stuck builds are never limited. Default 0: unlimited. Negative is
	// invalid.
	MaxCreatesPerPass int
	// FailureHardLimit is K: a preset whose K newest builds all failed stops
	// creating until the condition clears. Default 3 (the zero value);
	// NoHardLimit turns it off. See HardLimit.
	FailureHardLimit HardLimit
	// MaxConcurrency bounds the presets whose plans execute at once.
	// Default 8.
	MaxConcurrency int
	// TriggerDelay is how long Run gathers the changes of a store's
	// ChangeFeed before a targeted pass over the changed presets, so that a
	// burst of claims costs one pass. Default DefaultTriggerDelay (25ms).
	TriggerDelay time.Duration
	// DisableChangeFeed makes Run reconcile on the Interval only, even when
	// the store implements ChangeFeed. Default false.
	DisableChangeFeed bool
	// Shards splits the presets into this many shards, by template (see
	// Shard), each with its own lock, so that several replicas reconcile at
	// once: a full pass visits every shard whose lock it gets. Needs a store
	// that implements ShardLocker (and skips shards other replicas just
	// passed when it also implements ShardPassLog); every replica must use
	// the same value, at most MaxShards. Default 1: one cluster-wide lock.
	Shards int
	// Clock is the only source of time. Default quartz.NewReal().
	Clock quartz.Clock
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics. Default nil: no metrics registered.
	Registerer prometheus.Registerer
	// Notifier receives status and replacement events. Default nil: events
	// are dropped.
	Notifier Notifier
	// JobSink receives each newly committed job without blocking: when it
	// is full the hand-off is dropped (counted and logged), since
	// provisioners also poll the store. Default nil: no hand-off.
	JobSink chan<- Job
}

// Defaults.
const (
	DefaultInterval         = time.Minute
	DefaultBackoffInterval  = time.Minute
	DefaultBackoffLookback  = time.Hour
	DefaultFailureHardLimit = 3
	DefaultMaxConcurrency   = 8
	DefaultBackoffMax       = 10 * time.Minute
	// DefaultAdaptiveBuildTimeout is the BuildTimeout of a PolicyAdaptive
	// Config that leaves it 0.
	DefaultAdaptiveBuildTimeout = 30 * time.Minute
	// NoBuildTimeout turns the build timeout off under either policy.
	NoBuildTimeout time.Duration = -1
)

// Validate reports a configuration the Reconciler cannot run with, as an
// error matching ErrInvalidArgument: an unknown FailurePolicy, a negative
// MaxCreatesPerPass or Shards above MaxShards. Every other out-of-range value means the field's
// default (or, for BuildTimeout, off). A Reconciler with an invalid Config refuses to plan
// or reconcile and returns this error from Plan, ReconcileAll and Run.
func (c Config) Validate() error {
	switch {
	case !c.FailurePolicy.Valid():
		return fmt.Errorf("prebuilds: config: unknown FailurePolicy %q (want %q or %q): %w", c.FailurePolicy, PolicyCoder, PolicyAdaptive, ErrInvalidArgument)
	case c.MaxCreatesPerPass < 0:
		return fmt.Errorf("prebuilds: config: negative MaxCreatesPerPass %d: %w", c.MaxCreatesPerPass, ErrInvalidArgument)
	case c.Shards > MaxShards:
		return fmt.Errorf("prebuilds: config: Shards %d is above %d: %w", c.Shards, MaxShards, ErrInvalidArgument)
	}
	return nil
}

// withDefaults returns c with every unset field at its default.
func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.BackoffInterval <= 0 {
		c.BackoffInterval = DefaultBackoffInterval
	}
	if c.BackoffLookback <= 0 {
		c.BackoffLookback = DefaultBackoffLookback
	}
	c.FailurePolicy = c.FailurePolicy.Resolved()
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.BuildTimeout == 0 && c.FailurePolicy == PolicyAdaptive {
		c.BuildTimeout = DefaultAdaptiveBuildTimeout
	}
	if c.MaxConcurrency <= 0 {
		c.MaxConcurrency = DefaultMaxConcurrency
	}
	if c.TriggerDelay <= 0 {
		c.TriggerDelay = DefaultTriggerDelay
	}
	if c.Shards < 1 {
		c.Shards = 1
	}
	if c.Clock == nil {
		c.Clock = quartz.NewReal()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// SnapshotParams is the one mapping from a Config to the inputs of a
// snapshot at instant now (defaults applied, now at store precision): the
// Reconciler, the conformance suite, the benchmarks and the simulator all
// use it.
func (c Config) SnapshotParams(now time.Time) SnapshotParams {
	c = c.withDefaults()
	now = Micro(now)
	p := SnapshotParams{Now: now, Lookback: now.Add(-c.BackoffLookback), HardLimit: c.FailureHardLimit, Policy: c.FailurePolicy}
	if c.BuildTimeout > 0 {
		p.StuckBefore = now.Add(-c.BuildTimeout)
	}
	return p
}

// PlanConfig is the one mapping from a Config to the planner's inputs
// (defaults applied).
func (c Config) PlanConfig() PlanConfig {
	c = c.withDefaults()
	return PlanConfig{
		BackoffInterval:   c.BackoffInterval,
		Policy:            c.FailurePolicy,
		BackoffMax:        c.BackoffMax,
		Canary:            !c.DisableCanary,
		MaxCreatesPerPass: max(c.MaxCreatesPerPass, 0),
	}
}
