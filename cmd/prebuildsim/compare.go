package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// runResult is what one simulation run measured, per group in fleet order.
type runResult struct {
	label  string
	opts   options
	groups []groupResult
}

// groupResult is one group's figures. Times are per preset.
type groupResult struct {
	spec                           groupSpec
	fill                           float64
	served, missed                 int
	builds, failed, timedOut, hung int
	hardLimits                     int
	// limitCycles are the presets' cycles (between resets and recoveries)
	// that hit the hard limit, the run's open ones included.
	limitCycles            []limitCycle
	backoff, blocked, held time.Duration
	refill                 refillStats
	series                 groupSeries
}

// failedPerHardLimit is what a hard limit cost: over the cycles that hit
// it, the failed builds per hard limit on average, and in the worst cycle;
// false when the group was never hard-limited. Failures of a cycle that
// has not hit the hard limit yet (the run ended first) do not count.
func (g groupResult) failedPerHardLimit() (mean, worst float64, ok bool) {
	failed, limits := 0, 0
	for _, c := range g.limitCycles {
		failed += c.failed
		limits += c.limits
		worst = max(worst, float64(c.failed)/float64(c.limits))
	}
	if limits == 0 {
		return 0, 0, false
	}
	return float64(failed) / float64(limits), worst, true
}

// result collects the figures of a finished run.
func (s *sim) result(label string) runResult {
	r := runResult{label: label, opts: s.opts}
	for _, g := range s.groups {
		cycles := slices.Clone(g.limitCycles)
		for _, id := range g.presets {
			if c := s.presets[id].cycle; c.limits > 0 {
				cycles = append(cycles, c)
			}
		}
		r.groups = append(r.groups, groupResult{
			spec: g.spec, fill: g.fill(), served: g.served, missed: g.missed,
			builds: g.builds, failed: g.failed, timedOut: g.timedOut, hung: g.hung,
			hardLimits: g.events[prebuilds.EventHardLimited], limitCycles: cycles,
			backoff: s.perPreset(g.backoffTime), blocked: s.perPreset(g.blockedTime), held: s.perPreset(g.heldTime),
			refill: s.refillOf(g), series: g.series,
		})
	}
	return r
}

// runOnce runs one simulation and writes its report (progress lines unless
// opts.quiet, then the summary) to out.
func runOnce(ctx context.Context, label string, opts options, out, stderr io.Writer) (runResult, error) {
	s := newSim(opts, out, stderr)
	if err := s.run(ctx); err != nil {
		return runResult{}, err
	}
	if err := s.summary(ctx); err != nil {
		return runResult{}, err
	}
	return s.result(label), nil
}

// simulate runs one simulation, writes its report to out and draws its
// chart when -chart is set.
func simulate(ctx context.Context, opts options, out, stderr io.Writer) error {
	r, err := runOnce(ctx, string(opts.policy), opts, out, stderr)
	if err != nil {
		return err
	}
	if opts.chart != "" {
		return writeChart(opts.chart, chartTitle(opts, false), nil, []runResult{r})
	}
	return nil
}

// Labels of the runs of -compare.
const (
	labelCeiling  = "ceiling"
	labelCoder    = string(prebuilds.PolicyCoder)
	labelAdaptive = string(prebuilds.PolicyAdaptive)
)

// modeName names a run's mode: "targeted" or "interval-only".
func modeName(targeted bool) string {
	if targeted {
		return "targeted"
	}
	return "interval-only"
}

// compareRun is one run of -compare.
type compareRun struct {
	label string
	opts  options
}

// compareRuns are the runs of -compare, in order: the failure-free
// ceiling, then each policy on the flags as given, then each policy in the
// other mode (targeted passes off when -targeted, on when not), for the
// comparison of the modes. The ceiling runs PolicyCoder: with no failures
// it never holds a healthy pool back, while PolicyAdaptive's canary would
// delay the cold start, so it is the higher ceiling.
func compareRuns(opts options) []compareRun {
	ceiling, coder, adaptive := opts, opts, opts
	ceiling.failureRate, ceiling.policy = 0, prebuilds.PolicyCoder
	coder.policy = prebuilds.PolicyCoder
	adaptive.policy = prebuilds.PolicyAdaptive
	coderOther, adaptiveOther := coder, adaptive
	coderOther.targeted, adaptiveOther.targeted = !opts.targeted, !opts.targeted
	return []compareRun{
		{labelCeiling, ceiling}, {labelCoder, coder}, {labelAdaptive, adaptive},
		{labelCoder + " " + modeName(coderOther.targeted), coderOther},
		{labelAdaptive + " " + modeName(adaptiveOther.targeted), adaptiveOther},
	}
}

// compare runs the seed five times and prints the policies side by side,
// then the modes. Progress lines are never printed; each run's summary is,
// unless -quiet.
func compare(ctx context.Context, opts options, out, stderr io.Writer) error {
	var runs []runResult
	for _, c := range compareRuns(opts) {
		c.opts.quiet = true
		runOut := io.Discard
		if !opts.quiet {
			runOut = out
			fmt.Fprintf(out, "\n=== run %s: policy %s, -failure-rate %g, %s\n", c.label, c.opts.policy, c.opts.failureRate, modeText(c.opts))
		}
		r, err := runOnce(ctx, c.label, c.opts, runOut, stderr)
		if err != nil {
			return fmt.Errorf("run %s: %w", c.label, err)
		}
		runs = append(runs, r)
	}
	if err := printComparison(out, opts, runs[0], runs[1], runs[2]); err != nil {
		return err
	}
	if err := printModes(out, opts, runs[1:]); err != nil {
		return err
	}
	if opts.chart != "" {
		return writeChart(opts.chart, chartTitle(opts, true), &runs[0], runs[1:3])
	}
	return nil
}

// describe says in a few words what a group is.
func describe(g groupSpec, opts options) string {
	parts := []string{fmt.Sprintf("desired %d", g.desired)}
	for _, sc := range g.schedules {
		parts[0] += fmt.Sprintf(", %d by schedule %q %s", sc.Instances, sc.Cron, g.timezone)
	}
	if g.ttl > 0 {
		parts = append(parts, "TTL "+shortDuration(g.ttl))
	}
	if g.newVersionMidRun {
		parts = append(parts, "new version at "+offset(opts.start.Add(opts.duration/2), opts.start))
	}
	switch g.failure {
	case failAlways:
		parts = append(parts, "every build fails, in the ceiling too")
	case failHalf:
		parts = append(parts, "half the builds fail, in the ceiling too")
	case failValidation:
		parts = append(parts, "builds fail validation, in the ceiling too")
	default:
		parts = append(parts, fmt.Sprintf("%g %% of builds fail (0 in the ceiling)", opts.failureRate*100))
	}
	if g.hangRate > 0 {
		parts = append(parts, fmt.Sprintf("%g %% hang, in the ceiling too", g.hangRate*100))
	}
	return strings.Join(parts, "; ")
}

// verdict compares one figure of the policies: which one is ahead.
type verdict int

const (
	level verdict = iota
	adaptiveAhead
	coderAhead
)

func (v verdict) String() string {
	switch v {
	case adaptiveAhead:
		return "adaptive ahead"
	case coderAhead:
		return "coder ahead"
	}
	return "level"
}

// judge compares a figure where more is better (higherBetter) or less is.
func judge(coder, adaptive float64, higherBetter bool) verdict {
	switch {
	case coder == adaptive:
		return level
	case (adaptive > coder) == higherBetter:
		return adaptiveAhead
	}
	return coderAhead
}

// round3 rounds to the three decimals the tables print, so that a verdict
// never rests on a difference nobody can see.
func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// behind is a figure on which PolicyAdaptive is behind PolicyCoder.
type behind struct {
	group, figure    string
	coder, adaptive  string
	difference, note string
}

// figureWidth pads figure names, so that they read left-aligned in the
// right-aligned table.
const figureWidth = len("failed per hard limit (worst)")

// printComparison writes one table per group and the targets.
func printComparison(out io.Writer, opts options, ceiling, coder, adaptive runResult) error {
	fmt.Fprintf(out, "\ncomparison after %s (seed %d): the ceiling is -failure-rate 0 under policy coder; coder and adaptive run -failure-rate %g.\n",
		shortDuration(opts.duration), opts.seed, opts.failureRate)
	fmt.Fprintf(out, "Troubled groups (broken, broken-big, flaky, misconfigured; hanging's hangs) stay troubled in the ceiling.\n")
	fmt.Fprintf(out, "Both policies: hard limit K = %s, build timeout %s, create budget %s. coder backs off failed × %s from the newest\n",
		hardLimitText(opts.hardLimit), durationOrOff(opts.buildTimeout), budgetText(opts.maxCreates), opts.backoff)
	fmt.Fprintf(out, "failed build's creation; adaptive %s × 2^(n-1) from the last failure (n the streak, less one once proven), up to %s,\nthen one probe at a time; canary %s.\n",
		opts.backoff, opts.backoffMax, onOff(opts.canary))
	fmt.Fprintf(out, "All three runs: %s.\n", modeText(opts))
	fmt.Fprintf(out, "Times are per preset; fill is the time average of min(eligible, desired) ÷ desired; refill is the\n")
	fmt.Fprintf(out, "simulated time from a served claim to the commit of its replacement's create.\n")

	var behinds []behind
	for i := range ceiling.groups {
		c, k, a := ceiling.groups[i], coder.groups[i], adaptive.groups[i]
		fmt.Fprintf(out, "\n%s (%s)\n", k.spec.name, describe(k.spec, opts))
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "  %-*s\t%s\t%s\t%s\t  \n", figureWidth, "figure", labelCeiling, labelCoder, labelAdaptive)
		row := func(name string, c, k, a string, v verdict, judged bool) {
			note := ""
			if judged {
				note = v.String()
			}
			fmt.Fprintf(tw, "  %-*s\t%s\t%s\t%s\t  %s\n", figureWidth, name, c, k, a, note)
		}
		fillV := judge(round3(k.fill), round3(a.fill), true)
		row("fill ratio", f3(c.fill), f3(k.fill), f3(a.fill), fillV, true)
		row("claims served", itoa(c.served), itoa(k.served), itoa(a.served), 0, false)
		missedV := judge(float64(k.missed), float64(a.missed), false)
		row("claims missed", itoa(c.missed), itoa(k.missed), itoa(a.missed), missedV, true)
		row("start builds", itoa(c.builds), itoa(k.builds), itoa(a.builds), 0, false)
		failedV := judge(float64(k.failed), float64(a.failed), false)
		row("failed builds", itoa(c.failed), itoa(k.failed), itoa(a.failed), failedV, true)
		if k.timedOut+a.timedOut+c.timedOut > 0 || k.hung+a.hung+c.hung > 0 {
			row("  of which timed out", itoa(c.timedOut), itoa(k.timedOut), itoa(a.timedOut), 0, false)
			row("builds hung", itoa(c.hung), itoa(k.hung), itoa(a.hung), 0, false)
		}
		row("hard limits", itoa(c.hardLimits), itoa(k.hardLimits), itoa(a.hardLimits), 0, false)
		perLimitV := level
		kp, _, kok := k.failedPerHardLimit()
		ap, _, aok := a.failedPerHardLimit()
		if kok && aok {
			perLimitV = judge(round1(kp), round1(ap), false)
		}
		row("failed per hard limit (worst)", perLimit(c), perLimit(k), perLimit(a), perLimitV, kok && aok)
		backoffV := judge(k.backoff.Seconds(), a.backoff.Seconds(), false)
		row("backoff", shortDuration(c.backoff), shortDuration(k.backoff), shortDuration(a.backoff), backoffV, true)
		row("blocked", shortDuration(c.blocked), shortDuration(k.blocked), shortDuration(a.blocked), 0, false)
		row("held (probe, canary, budget)", shortDuration(c.held), shortDuration(k.held), shortDuration(a.held), 0, false)
		for _, q := range refillQuantiles {
			row("refill "+q.name, c.refill.latencyText(q.q), k.refill.latencyText(q.q), a.refill.latencyText(q.q), 0, false)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write comparison: %w", err)
		}

		name := k.spec.name
		if fillV == coderAhead {
			behinds = append(behinds, behind{name, "fill ratio", f3(k.fill), f3(a.fill), fmt.Sprintf("%+.3f", round3(a.fill)-round3(k.fill)), ""})
		}
		if missedV == coderAhead {
			behinds = append(behinds, behind{name, "claims missed", itoa(k.missed), itoa(a.missed), fmt.Sprintf("%+d", a.missed-k.missed), ""})
		}
		if failedV == coderAhead {
			note := ""
			if a.builds > k.builds {
				note = fmt.Sprintf("adaptive made %d more start builds; failed per build %.3f vs %.3f", a.builds-k.builds, ratio(a.failed, a.builds), ratio(k.failed, k.builds))
			}
			behinds = append(behinds, behind{name, "failed builds", itoa(k.failed), itoa(a.failed), fmt.Sprintf("%+d", a.failed-k.failed), note})
		}
		if backoffV == coderAhead {
			behinds = append(behinds, behind{name, "backoff", shortDuration(k.backoff), shortDuration(a.backoff), "+" + shortDuration(a.backoff-k.backoff), ""})
		}
	}
	return printTargets(out, opts, ceiling, coder, adaptive, behinds)
}

// refillQuantiles are the claim-to-refill quantiles the tables print.
var refillQuantiles = []struct {
	name string
	q    float64
}{{"p50", 0.5}, {"p99", 0.99}, {"max", 1}}

// printModes writes the comparison of the modes: for each policy, its run
// with targeted passes and its run with full passes every -interval only,
// per group and over the fleet — claim-to-refill latency, fill ratio and
// claims missed. runs are coder and adaptive in the mode of the flags, then
// in the other mode.
func printModes(out io.Writer, opts options, runs []runResult) error {
	targetedOpts := opts
	targetedOpts.targeted = true
	fmt.Fprintf(out, "\nclaim → refill by mode after %s (seed %d): %s, vs interval-only (full passes every %s).\n",
		shortDuration(opts.duration), opts.seed, modeText(targetedOpts), opts.interval)
	fmt.Fprintf(out, "refilled: served claims whose replacement was created; p50, p99, max: of their latency.\n")
	byMode := func(targeted bool, policy string) runResult {
		for _, r := range runs {
			if r.opts.targeted == targeted && string(r.opts.policy) == policy {
				return r
			}
		}
		return runResult{}
	}
	type line struct {
		policy, mode string
		r            runResult
	}
	var lines []line
	for _, policy := range []string{labelCoder, labelAdaptive} {
		for _, targeted := range []bool{true, false} {
			lines = append(lines, line{policy, modeName(targeted), byMode(targeted, policy)})
		}
	}
	nameWidth := len("all groups")
	for _, g := range fleet {
		nameWidth = max(nameWidth, len(g.name))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "  %-*s\t%-8s\t%-13s\trefilled\tp50\tp99\tmax\tfill\tmissed\t\n", nameWidth, "group", "policy", "mode")
	write := func(name string, l line, refill refillStats, fill string, missed int) {
		fmt.Fprintf(tw, "  %-*s\t%-8s\t%-13s\t%d\t%s\t%s\t%s\t%s\t%d\t\n", nameWidth, name, l.policy, l.mode,
			len(refill.latencies), refill.latencyText(0.5), refill.latencyText(0.99), refill.latencyText(1), fill, missed)
	}
	for gi, g := range fleet {
		for _, l := range lines {
			if len(l.r.groups) <= gi {
				return fmt.Errorf("comparison of modes: no %s %s run", l.policy, l.mode)
			}
			gr := l.r.groups[gi]
			write(g.name, l, gr.refill, f3(gr.fill), gr.missed)
		}
	}
	for _, l := range lines {
		var all refillStats
		missed := 0
		for _, gr := range l.r.groups {
			all.merge(gr.refill)
			missed += gr.missed
		}
		write("all groups", l, all, "", missed)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write comparison of modes: %w", err)
	}
	return nil
}

// Target figures.
const (
	targetFillShare    = 0.95 // fill at -failure-rate ÷ fill in the ceiling, ci-runner, adaptive
	targetBackoffShare = 0.2  // adaptive's backoff ÷ coder's, ci-runner
)

// printTargets writes the headline figures next to their targets and the
// figures on which adaptive is behind.
func printTargets(out io.Writer, opts options, ceiling, coder, adaptive runResult, behinds []behind) error {
	find := func(r runResult, name string) (groupResult, bool) {
		for _, g := range r.groups {
			if g.spec.name == name {
				return g, true
			}
		}
		return groupResult{}, false
	}
	fmt.Fprintln(out, "\ntargets:")
	if c, ok := find(ceiling, "ci-runner"); ok {
		k, _ := find(coder, "ci-runner")
		a, _ := find(adaptive, "ci-runner")
		ks, as := share(k.fill, c.fill), share(a.fill, c.fill)
		fmt.Fprintf(out, "  ci-runner fill ÷ ceiling fill: coder %.3f, adaptive %.3f (target ≥ %.2f under adaptive: %s)\n",
			ks, as, targetFillShare, metText(as >= targetFillShare))
		bs := share(a.backoff.Seconds(), k.backoff.Seconds())
		fmt.Fprintf(out, "  ci-runner backoff adaptive ÷ coder: %.3f (%s vs %s per preset; target ≤ %.2f: %s)\n",
			bs, shortDuration(a.backoff), shortDuration(k.backoff), targetBackoffShare, metText(k.backoff > 0 && bs <= targetBackoffShare || a.backoff == 0))
	}
	if k, ok := find(coder, "broken-big"); ok {
		a, _ := find(adaptive, "broken-big")
		K := prebuilds.HardLimit(opts.hardLimit).K()
		_, worst, aok := a.failedPerHardLimit()
		fmt.Fprintf(out, "  broken-big (desired %d) failed builds per hard limit, mean (worst): coder %s, adaptive %s (target ≤ K = %d under adaptive: %s)\n",
			k.spec.desired, perLimit(k), perLimit(a), K, metText(K > 0 && aok && worst <= float64(K)))
	}
	if len(behinds) == 0 {
		fmt.Fprintln(out, "  adaptive ahead or level on fill, claims missed, failed builds and backoff for every group: yes")
		return nil
	}
	fmt.Fprintln(out, "  adaptive ahead or level on fill, claims missed, failed builds and backoff for every group: no; behind on")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "    group\tfigure\tcoder\tadaptive\tdifference\t")
	for _, b := range behinds {
		fmt.Fprintf(tw, "    %s\t%s\t%s\t%s\t%s\t%s\n", b.group, b.figure, b.coder, b.adaptive, b.difference, b.note)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write targets: %w", err)
	}
	return nil
}

func f3(f float64) string { return fmt.Sprintf("%.3f", f) }
func itoa(n int) string   { return fmt.Sprintf("%d", n) }

func perLimit(g groupResult) string {
	if mean, worst, ok := g.failedPerHardLimit(); ok {
		return fmt.Sprintf("%.1f (%.0f)", mean, worst)
	}
	return "—"
}

func round1(f float64) float64 { return math.Round(f*10) / 10 }

// share is a ÷ b, 0 when b is 0.
func share(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func ratio(a, b int) float64 { return share(float64(a), float64(b)) }

func metText(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func durationOrOff(d time.Duration) string {
	switch {
	case d == 0:
		return fmt.Sprintf("the library default (off under coder, %s under adaptive)", prebuilds.DefaultAdaptiveBuildTimeout)
	case d < 0:
		return "off"
	}
	return d.String()
}

func hardLimitText(h int) string {
	if k := prebuilds.HardLimit(h).K(); k > 0 {
		return fmt.Sprintf("%d", k)
	}
	return "off"
}

func budgetText(n int) string {
	if n == 0 {
		return "unlimited"
	}
	return fmt.Sprintf("%d creates per pass", n)
}
