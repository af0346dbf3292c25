package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// simulateOutput runs a simulation like simulateArgs and also returns what
// it printed.
func simulateOutput(t *testing.T, args ...string) (*sim, string) {
	t.Helper()
	opts, err := parseFlags(args, io.Discard)
	require.NoError(t, err)
	var out bytes.Buffer
	s := newSim(opts, &out, io.Discard)
	require.NoError(t, s.run(context.Background()))
	require.NoError(t, s.summary(context.Background()))
	return s, out.String()
}

// progressLine matches the fields of a progress line the tests read.
var progressLine = regexp.MustCompile(`^t=(\S+) running=(\d+)/(\d+) eligible=(\d+) expired=(\d+) creating=(\d+) deleting=(\d+) → created=(\d+) `)

// progress is one parsed progress line.
type progress struct {
	at                         string
	running, eligible, expired int
	created                    int
}

func progressLines(t *testing.T, out string) []progress {
	t.Helper()
	var lines []progress
	for _, line := range strings.Split(out, "\n") {
		m := progressLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		n := func(i int) int {
			v, err := strconv.Atoi(m[i])
			require.NoError(t, err)
			return v
		}
		lines = append(lines, progress{at: m[1], running: n(2), eligible: n(4), expired: n(5), created: n(8)})
	}
	return lines
}

func TestFlagsMapToConfig(t *testing.T) {
	t.Parallel()
	opts, err := parseFlags([]string{"-policy=adaptive", "-canary=false", "-backoff-max=3m", "-build-timeout=7m",
		"-max-creates=9", "-hard-limit=-1", "-backoff=20s", "-interval=15s"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, prebuilds.Config{
		Interval: 15 * time.Second, BackoffInterval: 20 * time.Second, FailureHardLimit: prebuilds.NoHardLimit,
		FailurePolicy: prebuilds.PolicyAdaptive, BackoffMax: 3 * time.Minute, DisableCanary: true,
		BuildTimeout: 7 * time.Minute, MaxCreatesPerPass: 9, TriggerDelay: prebuilds.DefaultTriggerDelay,
	}, opts.reconcilerConfig())

	opts, err = parseFlags([]string{"-targeted=false", "-trigger-delay=2s"}, io.Discard)
	require.NoError(t, err)
	cfg := opts.reconcilerConfig()
	require.True(t, cfg.DisableChangeFeed, "-targeted=false is Run without the change feed")
	require.Equal(t, 2*time.Second, cfg.TriggerDelay)

	// The defaults are the library's.
	opts, err = parseFlags(nil, io.Discard)
	require.NoError(t, err)
	cfg = opts.reconcilerConfig()
	require.Equal(t, prebuilds.DefaultFailurePolicy, cfg.FailurePolicy)
	require.False(t, cfg.DisableChangeFeed, "targeted passes are on by default")
	require.Equal(t, prebuilds.DefaultTriggerDelay, cfg.TriggerDelay)
	require.Equal(t, prebuilds.DefaultBackoffMax, cfg.BackoffMax)
	require.Equal(t, prebuilds.DefaultBackoffInterval, cfg.BackoffInterval)
	require.False(t, cfg.DisableCanary)
	require.Zero(t, cfg.BuildTimeout)
	require.Zero(t, cfg.MaxCreatesPerPass)
	require.Equal(t, prebuilds.DefaultFailureHardLimit, cfg.FailureHardLimit.K())
}

func TestSimulationRunsTheConfiguredReconciler(t *testing.T) {
	opts, err := parseFlags([]string{"-policy=adaptive", "-canary=false", "-build-timeout=7m", "-max-creates=9"}, io.Discard)
	require.NoError(t, err)
	cfg := newSim(opts, io.Discard, io.Discard).rec.Config()
	require.Equal(t, prebuilds.PolicyAdaptive, cfg.FailurePolicy)
	require.True(t, cfg.DisableCanary)
	require.Equal(t, 7*time.Minute, cfg.BuildTimeout)
	require.Equal(t, 9, cfg.MaxCreatesPerPass)
}

func TestSimulationPolicies(t *testing.T) {
	quietFleet := []string{"-duration=6m", "-failure-rate=0", "-claim-rate=0", "-operator-delay=0", "-quiet"}

	t.Run("coder fills at once and burns a broken pool", func(t *testing.T) {
		s := simulateArgs(t, append(quietFleet, "-policy=coder")...)
		for _, g := range s.groups {
			require.Zero(t, g.heldTime, "%s: coder never holds creation to one build", g.spec.name)
		}
		require.Equal(t, 40, groupByName(t, s, "broken-big").failed, "coder builds the whole broken pool")
	})

	t.Run("adaptive builds one canary first", func(t *testing.T) {
		s := simulateArgs(t, append(quietFleet, "-policy=adaptive")...)
		ci := groupByName(t, s, "ci-runner")
		require.Positive(t, ci.heldTime, "the cold start waits for a canary")
		require.Zero(t, ci.failed)
		require.LessOrEqual(t, groupByName(t, s, "broken-big").failed, prebuilds.DefaultFailureHardLimit,
			"a broken pool costs at most K failed builds")
		require.Equal(t, 20, poolsByName(t, s)["ci-runner"].running, "the pool fills once the canary succeeded")
	})

	t.Run("adaptive without canary fills at once", func(t *testing.T) {
		s, out := simulateOutput(t, "-duration=1m", "-failure-rate=0", "-claim-rate=0", "-policy=adaptive", "-canary=false")
		require.Zero(t, groupByName(t, s, "ci-runner").heldTime)
		lines := progressLines(t, out)
		require.NotEmpty(t, lines)
		require.Equal(t, 86, lines[0].created, "the first pass creates every pool's desired count")
	})

	t.Run("create budget", func(t *testing.T) {
		s, out := simulateOutput(t, "-duration=1m", "-failure-rate=0", "-claim-rate=0", "-max-creates=5")
		lines := progressLines(t, out)
		require.NotEmpty(t, lines)
		require.Equal(t, 5, lines[0].created, "-max-creates bounds the first pass")
		require.Positive(t, groupByName(t, s, "ci-runner").heldTime, "the budget holds the rest back")
	})
}

func TestSimulationBuildTimeoutFailsHungBuilds(t *testing.T) {
	args := []string{"-duration=1h", "-failure-rate=0", "-claim-rate=20", "-operator-delay=0", "-quiet"}

	s := simulateArgs(t, args...)
	hanging := groupByName(t, s, "hanging")
	require.Positive(t, hanging.hung, "the provisioner hangs on some builds")
	require.Zero(t, hanging.timedOut, "without -build-timeout nothing fails them")
	require.GreaterOrEqual(t, poolsByName(t, s)["hanging"].starting, hanging.hung, "hung builds stay in progress")

	s = simulateArgs(t, append(args, "-build-timeout=5m")...)
	hanging = groupByName(t, s, "hanging")
	require.Positive(t, hanging.timedOut, "-build-timeout fails the hung builds")
	require.LessOrEqual(t, hanging.timedOut, hanging.hung)
	require.Equal(t, hanging.timedOut, hanging.failed, "a timed-out build is the hanging group's only failure")
	sum := 0
	for _, g := range s.groups {
		sum += g.timedOut
	}
	require.Equal(t, s.timedOut, sum, "the Reconciler's tally agrees with the plans'")
	require.Equal(t, hanging.failed, poolsByName(t, s)["hanging"].failedCounter, "the store counts timeouts as failures")
	require.Less(t, poolsByName(t, s)["hanging"].starting, hanging.hung, "timed-out builds are no longer in progress")

	// A timeout shorter than the slowest builds fails some that would have
	// finished: their late reports are refused (ErrInvalidTransition).
	s = simulateArgs(t, "-duration=1h", "-failure-rate=0", "-build-timeout=2m", "-quiet")
	require.Positive(t, s.prov.lateReports)
	var timedOut, hung int
	for _, g := range s.groups {
		timedOut += g.timedOut
		hung += g.hung
	}
	require.Equal(t, s.timedOut, timedOut)
	running := 0
	for _, w := range s.prov.inflight {
		if w.job.Transition == prebuilds.TransitionStart {
			running++
		}
	}
	require.GreaterOrEqual(t, timedOut, s.prov.lateReports, "only timed-out builds are refused")
	require.LessOrEqual(t, timedOut, hung+s.prov.lateReports+running,
		"every timed-out build hung, reported late, or is still running")
}

// Issue 13, item 6: eligible equalled running on every line, expiry was
// invisible. Lines now show the pools as the pass found them.
func TestSimulationShowsExpiry(t *testing.T) {
	s, out := simulateOutput(t, "-duration=45m", "-claim-rate=0", "-failure-rate=0", "-operator-delay=0")
	gpu := groupByName(t, s, "gpu")
	require.GreaterOrEqual(t, gpu.expired, 3, "unclaimed gpu prebuilds outlive their 20m TTL")
	found := false
	for _, l := range progressLines(t, out) {
		if l.expired > 0 {
			found = true
			require.Less(t, l.eligible, l.running, "at %s an expired prebuild is running but not eligible", l.at)
		}
	}
	require.True(t, found, "some progress line shows expired prebuilds")
}

// Issue 13, item 6: a default run dropped 25 hand-offs on its first pass.
func TestSimulationDefaultSinkHoldsAPass(t *testing.T) {
	peak := 0
	for _, g := range fleet {
		peak += g.peakDesired()
	}
	s := simulateArgs(t, "-duration=40m", "-quiet")
	require.Equal(t, 2*peak, s.opts.sinkCapacity())
	require.Equal(t, 2*peak, cap(s.sink))
	require.Zero(t, s.jobsDropped)

	s, out := simulateOutput(t, "-duration=5m", "-sink-buffer=16", "-quiet")
	require.Positive(t, s.jobsDropped, "a small sink drops the first pass's hand-offs")
	require.Contains(t, out, "hand-offs dropped of a JobSink of 16 (")

	opts, err := parseFlags([]string{"-presets=3"}, io.Discard)
	require.NoError(t, err)
	require.Equal(t, 6*peak, opts.sinkCapacity(), "the sink scales with the fleet")
}

// offsetPattern is offset's format: +05m01s or +1h02m00s.
var offsetPattern = regexp.MustCompile(`^\+(?:(\d+)h)?(\d\d)m(\d\d)s$`)

func parseOffset(t *testing.T, s string) time.Duration {
	t.Helper()
	m := offsetPattern.FindStringSubmatch(s)
	require.NotNil(t, m, "offset %q", s)
	var d time.Duration
	for i, unit := range []time.Duration{time.Hour, time.Minute, time.Second} {
		if m[i+1] == "" {
			continue
		}
		n, err := strconv.Atoi(m[i+1])
		require.NoError(t, err)
		d += time.Duration(n) * unit
	}
	return d
}

// Issue 13, item 6: "t=+01m00s ci-runner backoff until +01m00s" read as
// a backoff already over. The window is inclusive, so it holds that pass;
// the note now says so and where until comes from.
func TestSimulationBackoffNotesExplainUntil(t *testing.T) {
	untilPattern := regexp.MustCompile(`^backoff until (\S+?),? `)
	for _, tc := range []struct{ policy, why string }{
		{"coder", "(coder: newest failed build created at +"},
		{"adaptive", "(adaptive: streak of "},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			s := simulateArgs(t, "-quiet", "-policy="+tc.policy)
			notes, thisPassOnly := 0, 0
			for _, e := range s.timeline {
				m := untilPattern.FindStringSubmatch(e.text)
				if m == nil {
					continue
				}
				notes++
				// Offsets print whole seconds; targeted passes run between them.
				at, until := e.at.Sub(s.opts.start).Truncate(time.Second), parseOffset(t, m[1])
				require.GreaterOrEqual(t, until, at, "%s %s: a backoff noted when it starts is never over", e.who, e.text)
				require.Contains(t, e.text, tc.why)
				if until == at {
					thisPassOnly++
					require.Contains(t, e.text, "this pass only", e.text)
				} else {
					require.Contains(t, e.text, "inclusive", e.text)
				}
			}
			require.Positive(t, notes)
			if tc.policy == "coder" {
				require.Positive(t, thisPassOnly, "coder counts from creation, so some windows end at the pass that sees them")
			}
		})
	}
}

// Issue 13, item 6: -presets N did not scale claims.
func TestSimulationClaimsScaleWithPresets(t *testing.T) {
	arrivals := func(presets string) int {
		s := simulateArgs(t, "-duration=30m", "-quiet", "-presets="+presets)
		return s.served() + s.missed()
	}
	one, three := arrivals("1"), arrivals("3")
	require.Positive(t, one)
	ratio := float64(three) / float64(one)
	require.InDelta(t, 3, ratio, 0.5, "claims at -presets 3 (%d) ≈ 3 × claims at -presets 1 (%d)", three, one)
}

// Issue 13, item 6: group times were sums over presets ("blocked 74h16m"
// in a 1h run).
func TestSimulationGroupTimesArePerPreset(t *testing.T) {
	const duration = 30 * time.Minute
	s, out := simulateOutput(t, "-duration=30m", "-presets=4", "-quiet")
	broken := groupByName(t, s, "broken")
	total := broken.backoffTime + broken.blockedTime + broken.heldTime
	require.Greater(t, total, duration, "summed over 4 presets, broken is held back longer than the run")
	perPreset := s.perPreset(total)
	require.LessOrEqual(t, perPreset, duration+s.opts.interval, "one preset is held back at most the whole run")
	require.Equal(t, total/4, perPreset)

	row := regexp.MustCompile(`(?m)^  broken\s+(?:\S+\s+){10}(\S+)\s+(\S+)\s+(\S+)\s`).FindStringSubmatch(out)
	require.NotNil(t, row, "summary row of broken")
	require.Equal(t, []string{shortDuration(s.perPreset(broken.backoffTime)), shortDuration(s.perPreset(broken.blockedTime)),
		shortDuration(s.perPreset(broken.heldTime))}, row[1:], "the summary prints per-preset times")
	for _, d := range row[1:] {
		require.NotContains(t, d, "h", "no per-preset time reaches an hour in a 30m run")
	}
}

func TestLimitCycles(t *testing.T) {
	t.Parallel()
	g := groupResult{limitCycles: []limitCycle{{failed: 40, limits: 1}, {failed: 6, limits: 2}, {failed: 3, limits: 1}}}
	mean, worst, ok := g.failedPerHardLimit()
	require.True(t, ok)
	require.InDelta(t, 49.0/4, mean, 1e-9)
	require.InDelta(t, 40, worst, 1e-9)
	_, _, ok = groupResult{}.failedPerHardLimit()
	require.False(t, ok, "never hard-limited")
}

func TestExtendMergesTouchingSpans(t *testing.T) {
	t.Parallel()
	var spans []span
	spans = extend(spans, 0, time.Minute)
	spans = extend(spans, time.Minute, 2*time.Minute)
	spans = extend(spans, 3*time.Minute, 4*time.Minute)
	require.Equal(t, []span{{0, 2 * time.Minute}, {3 * time.Minute, 4 * time.Minute}}, spans)
}

func TestJudge(t *testing.T) {
	t.Parallel()
	require.Equal(t, adaptiveAhead, judge(0.8, 0.9, true))
	require.Equal(t, coderAhead, judge(0.9, 0.8, true))
	require.Equal(t, adaptiveAhead, judge(5, 3, false))
	require.Equal(t, coderAhead, judge(3, 5, false))
	require.Equal(t, level, judge(3, 3, false))
}
