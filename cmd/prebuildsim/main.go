package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Bounds that keep a run finite and its numbers meaningful.
const (
	maxSteps      = 2_000_000
	maxPresets    = 100
	maxClaimRate  = 10_000
	maxSinkBuffer = 1_000_000
)

// defaultStart is a Monday 08:40 in New York: the ci-runner business-hours
// schedule switches on twenty simulated minutes into a default run.
const defaultStart = "2026-03-02T13:40:00Z"

// options are the parsed and validated flags.
type options struct {
	duration      time.Duration
	interval      time.Duration
	tick          time.Duration
	poll          time.Duration
	buildTime     time.Duration
	backoff       time.Duration
	operatorDelay time.Duration
	failureRate   float64
	claimRate     float64
	hardLimit     int
	presets       int
	sinkBuffer    int
	seed          uint64
	start         time.Time
	verbose       bool
	quiet         bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it parses args, runs the simulation,
// writes the report to stdout and diagnostics to stderr, and returns the
// exit code (0 ok, 1 simulation error, 2 bad usage).
func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		return exitUsage
	}
	if err := simulate(context.Background(), opts, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "prebuildsim: %v\n", err)
		return exitError
	}
	return exitOK
}

const intro = `prebuildsim runs the prebuilds Reconciler on an in-memory store over a
simulated fleet (web, ci-runner, gpu, broken, flaky, misconfigured presets),
a simulated provisioner and simulated users, on a simulated clock. It prints
one progress line per reconcile interval and a summary table per preset group.
The same flags (including -seed) always give the same output.

Usage:
  prebuildsim [flags]

Flags:
`

// newFlagSet defines every flag of the command on a new FlagSet that
// writes to stderr and stores into o and start.
func newFlagSet(o *options, start *string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("prebuildsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), intro)
		fs.PrintDefaults()
	}
	fs.DurationVar(&o.duration, "duration", time.Hour, "simulated `time` to run")
	fs.DurationVar(&o.interval, "interval", 30*time.Second, "reconcile interval: one ReconcileAll pass and one progress line per interval")
	fs.DurationVar(&o.tick, "tick", 5*time.Second, "simulation step; builds, claims and polls are resolved at this granularity (at most -interval)")
	fs.DurationVar(&o.poll, "poll", time.Minute, "how often the provisioner polls the store for jobs whose hand-off it missed")
	fs.DurationVar(&o.buildTime, "build-time", 90*time.Second, "median duration of a start build (lognormal); delete builds take a third of it")
	fs.DurationVar(&o.backoff, "backoff", time.Minute, "Reconciler BackoffInterval: backoff lasts (failed builds × this) after the last failure")
	fs.DurationVar(&o.operatorDelay, "operator-delay", 15*time.Minute, "the operator removes a hard-limited preset's failed prebuilds this long after the hard_limited event (0: no operator)")
	fs.Float64Var(&o.failureRate, "failure-rate", 0.05, "probability in [0,1] that a start build of a healthy preset fails (broken: 1, flaky: 0.5)")
	fs.Float64Var(&o.claimRate, "claim-rate", 4, "user claims per simulated minute over the whole fleet (Poisson)")
	fs.IntVar(&o.hardLimit, "hard-limit", 0, "Reconciler FailureHardLimit: a preset whose N newest builds failed stops creating (0: the library default, 3; -1: off)")
	fs.IntVar(&o.presets, "presets", 1, fmt.Sprintf("scale factor: presets per group, each with the group's desired count (1-%d)", maxPresets))
	fs.IntVar(&o.sinkBuffer, "sink-buffer", 16, "capacity of the JobSink channel; hand-offs beyond it are dropped and found by polling")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of every random draw")
	fs.StringVar(start, "start", defaultStart, "simulated start instant (RFC 3339); the default is a Monday 08:40 in New York")
	fs.BoolVar(&o.verbose, "v", false, "verbose: Reconciler and simulation logs (slog, simulated time) to stderr")
	fs.BoolVar(&o.quiet, "quiet", false, "print only the final summary, not the per-interval progress lines")

	return fs
}

// parseFlags parses and validates args. Errors are reported on stderr; the
// returned error is flag.ErrHelp for -h, non-nil for any other problem.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	var start string
	fs := newFlagSet(&o, &start, stderr)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	var err error
	o.start, err = time.Parse(time.RFC3339, start)
	if err != nil {
		err = fmt.Errorf("-start %q: not an RFC 3339 instant", start)
	} else {
		err = o.validate(fs.Args())
	}
	if err != nil {
		fmt.Fprintf(stderr, "prebuildsim: %v\nRun 'prebuildsim -h' for usage.\n", err)
		return o, err
	}
	return o, nil
}

// validate checks the flag values against each other and their ranges.
func (o options) validate(rest []string) error {
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q: prebuildsim takes flags only", rest[0])
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"duration", o.duration}, {"interval", o.interval}, {"tick", o.tick}, {"poll", o.poll},
		{"build-time", o.buildTime}, {"backoff", o.backoff},
	} {
		if d.v <= 0 {
			return fmt.Errorf("-%s must be positive, got %s", d.name, d.v)
		}
	}
	if o.operatorDelay < 0 {
		return fmt.Errorf("-operator-delay must not be negative, got %s", o.operatorDelay)
	}
	if o.tick > o.interval {
		return fmt.Errorf("-tick (%s) must not exceed -interval (%s)", o.tick, o.interval)
	}
	if steps := o.duration / o.tick; steps > maxSteps {
		return fmt.Errorf("-duration/-tick is %d simulation steps, at most %d allowed", steps, maxSteps)
	}
	if math.IsNaN(o.failureRate) || o.failureRate < 0 || o.failureRate > 1 {
		return fmt.Errorf("-failure-rate must be in [0,1], got %v", o.failureRate)
	}
	if math.IsNaN(o.claimRate) || o.claimRate < 0 || o.claimRate > maxClaimRate {
		return fmt.Errorf("-claim-rate must be in [0,%d] claims per minute, got %v", maxClaimRate, o.claimRate)
	}
	if o.hardLimit < int(prebuilds.NoHardLimit) {
		return fmt.Errorf("-hard-limit must be a limit ≥ 1, 0 (the default, 3) or -1 (off), got %d", o.hardLimit)
	}
	if o.presets < 1 || o.presets > maxPresets {
		return fmt.Errorf("-presets must be in [1,%d], got %d", maxPresets, o.presets)
	}
	if o.sinkBuffer < 0 || o.sinkBuffer > maxSinkBuffer {
		return fmt.Errorf("-sink-buffer must be in [0,%d], got %d", maxSinkBuffer, o.sinkBuffer)
	}
	return nil
}
