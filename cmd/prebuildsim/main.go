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

	policy       prebuilds.FailurePolicy
	canary       bool
	backoffMax   time.Duration
	buildTimeout time.Duration
	maxCreates   int

	// targeted turns the targeted passes on: the changed presets are
	// reconciled triggerDelay after a change (Config.TriggerDelay, read
	// from memstore's change feed) besides the pass every interval.
	targeted     bool
	triggerDelay time.Duration

	compare bool
	chart   string
}

// autoSink is the -sink-buffer value that sizes the JobSink to the fleet.
const autoSink = -1

// sinkCapacity is the JobSink's capacity: -sink-buffer, or with autoSink
// twice the fleet's peak desired count, since one pass hands off at most
// one job per create and per delete, and neither exceeds a pool's size (a
// version change deletes a whole pool and creates a new one).
func (o options) sinkCapacity() int {
	if o.sinkBuffer != autoSink {
		return o.sinkBuffer
	}
	n := 0
	for _, g := range fleet {
		n += g.peakDesired()
	}
	return 2 * n * o.presets
}

// reconcilerConfig maps the flags to the Reconciler's Config (without the
// clock, logger, notifier and sink the simulation wires in).
func (o options) reconcilerConfig() prebuilds.Config {
	return prebuilds.Config{
		Interval:          o.interval,
		BackoffInterval:   o.backoff,
		FailureHardLimit:  prebuilds.HardLimit(o.hardLimit),
		FailurePolicy:     o.policy,
		BackoffMax:        o.backoffMax,
		DisableCanary:     !o.canary,
		BuildTimeout:      o.buildTimeout,
		MaxCreatesPerPass: o.maxCreates,
		TriggerDelay:      o.triggerDelay,
		DisableChangeFeed: !o.targeted,
	}
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
	if opts.compare {
		err = compare(context.Background(), opts, stdout, stderr)
	} else {
		err = simulate(context.Background(), opts, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "prebuildsim: %v\n", err)
		return exitError
	}
	return exitOK
}

const intro = `prebuildsim runs the prebuilds Reconciler on an in-memory store over a
simulated fleet (web, ci-runner, gpu, broken, broken-big, flaky,
misconfigured, hanging), a simulated provisioner and simulated users, on a
simulated clock. It reconciles as Reconciler.Run does with a change feed: a
full pass every -interval, and a targeted pass over the presets the store's
feed names (a claim, a finished build, a preset written) -trigger-delay
after their change; -targeted=false runs the full passes only. It prints one
progress line per full pass — the pools as the pass found them, then what it
did — a timeline and a summary per preset group, with the claim-to-refill
latency (claim → commit of the replacement's create). -compare runs the same
seed five times (a failure-free ceiling, PolicyCoder and PolicyAdaptive, then
both policies in the other mode) and prints the policies side by side, then
the modes; -chart draws the run(s). The same flags (including -seed) always
give the same output.

Usage:
  prebuildsim [flags]
  prebuildsim -compare -duration 8h -quiet -chart compare.png
  prebuildsim -targeted=false

Flags:
`

// newFlagSet defines every flag of the command on a new FlagSet that
// writes to stderr and stores into o, start and policy.
func newFlagSet(o *options, start, policy *string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("prebuildsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), intro)
		fs.PrintDefaults()
	}
	fs.DurationVar(&o.duration, "duration", time.Hour, "simulated `time` to run")
	fs.DurationVar(&o.interval, "interval", 30*time.Second, "reconcile interval: one full pass (ReconcileAll) and one progress line per interval")
	fs.DurationVar(&o.tick, "tick", 5*time.Second, "simulation step; builds, claims, polls and fill-ratio samples are resolved at this granularity (at most -interval)")
	fs.DurationVar(&o.poll, "poll", time.Minute, "how often the provisioner polls the store for jobs whose hand-off it missed")
	fs.DurationVar(&o.buildTime, "build-time", 90*time.Second, "median duration of a start build (lognormal); delete builds take a third of it")
	fs.StringVar(policy, "policy", string(prebuilds.DefaultFailurePolicy), "Reconciler FailurePolicy: coder (backoff of failed × -backoff from the newest failed build's creation) or adaptive (failure streaks in completion order, exponential backoff, probes, canary); not with -compare, which runs both")
	fs.DurationVar(&o.backoff, "backoff", prebuilds.DefaultBackoffInterval, "Reconciler BackoffInterval: coder backs off failed builds × this; adaptive this × 2^(n-1), n the failure streak (less its first failure once the preset is proven)")
	fs.DurationVar(&o.backoffMax, "backoff-max", prebuilds.DefaultBackoffMax, "Reconciler BackoffMax: the cap of adaptive's exponential backoff")
	fs.BoolVar(&o.canary, "canary", true, "adaptive: build one canary before filling a preset with no successful build yet (a new version, a cold start, a reset); -canary=false sets Reconciler DisableCanary")
	fs.DurationVar(&o.buildTimeout, "build-timeout", 0, "Reconciler BuildTimeout: fail start builds still pending or running this long (0: the library default, off under coder and 30m under adaptive; negative: off); the hanging group needs it")
	fs.IntVar(&o.maxCreates, "max-creates", 0, "Reconciler MaxCreatesPerPass: prebuilds one pass may create, shared by missing fraction (0: unlimited)")
	fs.BoolVar(&o.targeted, "targeted", true, "targeted passes, as Reconciler.Run makes them with a store's change feed: the presets named by memstore's feed (claims, terminal job reports, preset and template writes) are reconciled -trigger-delay after their change (ReconcilePresets), besides the ReconcileAll every -interval; -targeted=false reconciles every -interval only (Reconciler DisableChangeFeed)")
	fs.DurationVar(&o.triggerDelay, "trigger-delay", prebuilds.DefaultTriggerDelay, "Reconciler TriggerDelay: how long changes are gathered before one targeted pass over the changed presets (with -targeted)")
	fs.DurationVar(&o.operatorDelay, "operator-delay", 15*time.Minute, "the operator resets a hard-limited preset and removes its failed prebuilds this long after the hard_limited event (0: no operator)")
	fs.Float64Var(&o.failureRate, "failure-rate", 0.05, "probability in [0,1] that a start build of a healthy preset fails (broken, broken-big: 1, flaky: 0.5)")
	fs.Float64Var(&o.claimRate, "claim-rate", 6, "user claims per simulated minute over the fleet (Poisson), multiplied by -presets; groups get claims in proportion to their static desired counts")
	fs.IntVar(&o.hardLimit, "hard-limit", 0, "Reconciler FailureHardLimit K: coder stops creating when a preset's K newest builds failed, adaptive after a streak of K failures (0: the library default, 3; -1: off)")
	fs.IntVar(&o.presets, "presets", 1, fmt.Sprintf("scale factor: presets per group, each with the group's desired count and its share of claims (1-%d)", maxPresets))
	fs.IntVar(&o.sinkBuffer, "sink-buffer", autoSink, "capacity of the JobSink channel (-1: twice the fleet's peak desired count, so no pass overflows it; 0: every hand-off is dropped); dropped hand-offs are found by polling")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of every random draw")
	fs.StringVar(start, "start", defaultStart, "simulated start instant (RFC 3339); the default is a Monday 08:40 in New York")
	fs.BoolVar(&o.compare, "compare", false, "run the seed five times — failure-free ceiling (-failure-rate 0; troubled groups stay troubled), coder, adaptive, then coder and adaptive in the other mode (-targeted negated) — and print the policies side by side per group, then claim-to-refill latency by mode")
	fs.StringVar(&o.chart, "chart", "", "write a chart to this `file` (.png or .svg): per group, desired and eligible prebuilds over time, missed claims, backoff, blocked and held spans; with -compare the coder panel above the adaptive one")
	fs.BoolVar(&o.verbose, "v", false, "verbose: Reconciler and simulation logs (slog, simulated time) to stderr")
	fs.BoolVar(&o.quiet, "quiet", false, "print only the final summary, not the per-interval progress lines (with -compare: only the comparison)")

	return fs
}

// parseFlags parses and validates args. Errors are reported on stderr; the
// returned error is flag.ErrHelp for -h, non-nil for any other problem.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	var start, policy string
	fs := newFlagSet(&o, &start, &policy, stderr)
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.policy = prebuilds.FailurePolicy(policy)
	policySet := false
	fs.Visit(func(f *flag.Flag) { policySet = policySet || f.Name == "policy" })
	var err error
	o.start, err = time.Parse(time.RFC3339, start)
	switch {
	case err != nil:
		err = fmt.Errorf("-start %q: not an RFC 3339 instant", start)
	case o.policy != prebuilds.PolicyCoder && o.policy != prebuilds.PolicyAdaptive:
		err = fmt.Errorf("-policy must be %s or %s, got %q", prebuilds.PolicyCoder, prebuilds.PolicyAdaptive, policy)
	case policySet && o.compare:
		err = errors.New("-policy cannot be combined with -compare, which runs both policies")
	default:
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
	if o.triggerDelay <= 0 {
		return fmt.Errorf("-trigger-delay must be positive, got %s (-targeted=false turns targeted passes off)", o.triggerDelay)
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
	if o.sinkBuffer < autoSink || o.sinkBuffer > maxSinkBuffer {
		return fmt.Errorf("-sink-buffer must be -1 (sized to the fleet) or in [0,%d], got %d", maxSinkBuffer, o.sinkBuffer)
	}
	if o.backoffMax <= 0 {
		return fmt.Errorf("-backoff-max must be positive, got %s", o.backoffMax)
	}
	if o.maxCreates < 0 {
		return fmt.Errorf("-max-creates must not be negative (0: unlimited), got %d", o.maxCreates)
	}
	if o.chart != "" {
		if _, err := chartFormat(o.chart); err != nil {
			return err
		}
	}
	// The library's own check, so that the simulation never runs a
	// Reconciler that refuses to plan.
	if err := o.reconcilerConfig().Validate(); err != nil {
		return fmt.Errorf("reconciler configuration: %w", err)
	}
	return nil
}
