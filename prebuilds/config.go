package prebuilds

import (
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
	// BackoffInterval is multiplied by the number of recent failures to get
	// the backoff window. Default 1m.
	BackoffInterval time.Duration
	// BackoffLookback is how far back failures count toward backoff.
	// Default 1h.
	BackoffLookback time.Duration
	// FailureHardLimit is K: a preset whose K newest builds all failed stops
	// creating until the condition clears. Default 3 (the zero value);
	// NoHardLimit turns it off. See HardLimit.
	FailureHardLimit HardLimit
	// MaxConcurrency bounds the presets whose plans execute at once.
	// Default 8.
	MaxConcurrency int
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
)

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
	if c.MaxConcurrency <= 0 {
		c.MaxConcurrency = DefaultMaxConcurrency
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
	return SnapshotParams{Now: now, Lookback: now.Add(-c.BackoffLookback), HardLimit: c.FailureHardLimit}
}

// PlanConfig is the one mapping from a Config to the planner's inputs
// (defaults applied).
func (c Config) PlanConfig() PlanConfig {
	c = c.withDefaults()
	return PlanConfig{BackoffInterval: c.BackoffInterval}
}
