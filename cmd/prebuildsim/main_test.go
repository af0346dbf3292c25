package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func TestRunRejectsBadFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"-nope"}, "flag provided but not defined: -nope"},
		{"malformed duration", []string{"-duration=soon"}, `invalid value "soon" for flag -duration`},
		{"negative duration", []string{"-duration=-1s"}, "-duration must be positive, got -1s"},
		{"zero interval", []string{"-interval=0"}, "-interval must be positive, got 0s"},
		{"negative tick", []string{"-tick=-5s"}, "-tick must be positive"},
		{"tick above interval", []string{"-tick=1m", "-interval=30s"}, "-tick (1m0s) must not exceed -interval (30s)"},
		{"zero poll", []string{"-poll=0s"}, "-poll must be positive"},
		{"negative build time", []string{"-build-time=-1m"}, "-build-time must be positive"},
		{"zero backoff", []string{"-backoff=0"}, "-backoff must be positive"},
		{"negative operator delay", []string{"-operator-delay=-1m"}, "-operator-delay must not be negative"},
		{"too many steps", []string{"-duration=10000h", "-tick=1s"}, "simulation steps"},
		{"failure rate above 1", []string{"-failure-rate=1.5"}, "-failure-rate must be in [0,1], got 1.5"},
		{"failure rate below 0", []string{"-failure-rate=-0.1"}, "-failure-rate must be in [0,1], got -0.1"},
		{"failure rate NaN", []string{"-failure-rate=NaN"}, "-failure-rate must be in [0,1], got NaN"},
		{"negative claim rate", []string{"-claim-rate=-1"}, "-claim-rate must be in [0,10000]"},
		{"hard limit below off", []string{"-hard-limit=-2"}, "-hard-limit must be a limit ≥ 1, 0 (the default, 3) or -1 (off), got -2"},
		{"zero presets", []string{"-presets=0"}, "-presets must be in [1,100], got 0"},
		{"sink buffer below auto", []string{"-sink-buffer=-2"}, "-sink-buffer must be -1 (sized to the fleet) or in [0,1000000], got -2"},
		{"unknown policy", []string{"-policy=aggressive"}, `-policy must be coder or adaptive, got "aggressive"`},
		{"empty policy", []string{"-policy="}, `-policy must be coder or adaptive, got ""`},
		{"policy with compare", []string{"-compare", "-policy=adaptive"}, "-policy cannot be combined with -compare"},
		{"zero backoff max", []string{"-backoff-max=0"}, "-backoff-max must be positive, got 0s"},
		{"zero trigger delay", []string{"-trigger-delay=0"}, "-trigger-delay must be positive, got 0s (-targeted=false turns targeted passes off)"},
		{"negative trigger delay", []string{"-trigger-delay=-5ms"}, "-trigger-delay must be positive, got -5ms"},
		{"malformed targeted", []string{"-targeted=sometimes"}, `invalid boolean value "sometimes" for -targeted`},
		{"negative max creates", []string{"-max-creates=-3"}, "-max-creates must not be negative (0: unlimited), got -3"},
		{"malformed canary", []string{"-canary=maybe"}, `invalid boolean value "maybe" for -canary`},
		{"chart without extension", []string{"-chart=out"}, `-chart "out": the file name must end in .png or .svg`},
		{"chart as jpeg", []string{"-chart=out.jpg"}, `-chart "out.jpg": the file name must end in .png or .svg`},
		{"bad start", []string{"-start=yesterday"}, `-start "yesterday": not an RFC 3339 instant`},
		{"negative seed", []string{"-seed=-1"}, `invalid value "-1" for flag -seed`},
		{"positional argument", []string{"extra"}, `unexpected argument "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			require.Equal(t, exitUsage, code, "stderr: %s", stderr.String())
			require.Contains(t, stderr.String(), tc.want)
			require.Empty(t, stdout.String(), "nothing is simulated on bad flags")
		})
	}
}

func TestRunHelpListsEveryFlag(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	require.Equal(t, exitOK, run([]string{"-h"}, &stdout, &stderr))
	help := stderr.String()
	require.Contains(t, help, "prebuildsim runs the prebuilds Reconciler")
	var o options
	var start, policy string
	n := 0
	newFlagSet(&o, &start, &policy, io.Discard).VisitAll(func(f *flag.Flag) {
		n++
		require.Regexp(t, `(?m)^  -`+regexp.QuoteMeta(f.Name)+`(\s|$)`, help, "help lists -%s", f.Name)
		require.NotEmpty(t, f.Usage, "-%s is documented", f.Name)
	})
	require.GreaterOrEqual(t, n, 25)
	for _, name := range []string{"duration", "interval", "tick", "build-time", "failure-rate", "claim-rate",
		"hard-limit", "backoff", "seed", "presets", "v", "quiet",
		"policy", "canary", "backoff-max", "build-timeout", "max-creates", "compare", "chart", "targeted", "trigger-delay"} {
		require.Regexp(t, `(?m)^  -`+regexp.QuoteMeta(name)+`(\s|$)`, help)
	}
}

// simulateArgs parses args like the command and runs the simulation,
// returning it for inspection. Simulations seed the uuid package's global
// generator, so callers must not run in parallel with each other.
func simulateArgs(t *testing.T, args ...string) *sim {
	t.Helper()
	opts, err := parseFlags(args, io.Discard)
	require.NoError(t, err)
	var out bytes.Buffer
	s := newSim(opts, &out, io.Discard)
	require.NoError(t, s.run(context.Background()))
	require.NoError(t, s.summary(context.Background()))
	return s
}

func groupByName(t *testing.T, s *sim, name string) *group {
	t.Helper()
	for _, g := range s.groups {
		if g.spec.name == name {
			return g
		}
	}
	t.Fatalf("no group %q", name)
	return nil
}

func poolsByName(t *testing.T, s *sim) map[string]*poolState {
	t.Helper()
	pools, err := s.pools(context.Background())
	require.NoError(t, err)
	byName := map[string]*poolState{}
	for g, p := range pools {
		byName[g.spec.name] = p
	}
	return byName
}

func TestSimulationShortRun(t *testing.T) {
	// No claims and no random failures: healthy pools must be exactly full.
	s := simulateArgs(t, "-duration=10m", "-seed=42", "-claim-rate=0", "-failure-rate=0", "-operator-delay=0", "-quiet")
	pools := poolsByName(t, s)

	for name, desired := range map[string]int{"web": 10, "ci-runner": 20, "gpu": 3} {
		p := pools[name]
		require.Equal(t, desired, p.desired, "%s desired", name)
		require.Equal(t, desired, p.running, "%s pool filled", name)
		require.Equal(t, desired, p.eligible, "%s prebuilds ready", name)
		require.Equal(t, "healthy", p.status(), name)
		require.Zero(t, groupByName(t, s, name).failed, name)
	}

	broken := groupByName(t, s, "broken")
	require.Equal(t, 1, broken.events[prebuilds.EventHardLimited], "exactly one hard_limited event")
	require.Zero(t, broken.events[prebuilds.EventRecovered])
	require.Equal(t, "hard_limited", pools["broken"].status())
	require.Zero(t, pools["broken"].running)
	require.Positive(t, broken.backoffTime, "broken backs off before the hard limit")
	require.Positive(t, broken.blockedTime)
	require.GreaterOrEqual(t, broken.failed, 3, "the hard limit needs K=3 failures")
	// Backoff comes first, then the hard limit.
	var firstBackoff, hardLimited time.Time
	for _, e := range s.timeline {
		if e.who != "broken" {
			continue
		}
		if strings.HasPrefix(e.text, "backoff") && firstBackoff.IsZero() {
			firstBackoff = e.at
		}
		if e.text == "event "+string(prebuilds.EventHardLimited) {
			hardLimited = e.at
		}
	}
	require.False(t, firstBackoff.IsZero(), "broken backed off")
	require.True(t, firstBackoff.Before(hardLimited), "backoff at %s before hard limit at %s", firstBackoff, hardLimited)

	mis := groupByName(t, s, "misconfigured")
	require.Equal(t, 1, mis.events[prebuilds.EventValidationFailed])
	require.Equal(t, "validation_failed", pools["misconfigured"].status())
	require.Equal(t, 2, mis.failed, "no creates after validation failed")
}

func TestSimulationDeterministic(t *testing.T) {
	args := []string{"-duration=10m", "-seed=7"}
	runOnce := func(args []string) string {
		var stdout, stderr bytes.Buffer
		require.Equal(t, exitOK, run(args, &stdout, &stderr), "stderr: %s", stderr.String())
		require.Empty(t, stderr.String())
		return stdout.String()
	}
	first := runOnce(args)
	require.Contains(t, first, "t=+10m00s running=")
	require.Contains(t, first, "summary after 10m00s (seed 7, policy coder, targeted passes 25ms after a change, full passes every 30s)")
	require.Equal(t, first, runOnce(args), "same seed, same output")
	require.NotEqual(t, first, runOnce([]string{"-duration=10m", "-seed=8"}), "the seed matters")
}

func TestSimulationOperatorRecoversHardLimitedPresets(t *testing.T) {
	for _, policy := range []string{"coder", "adaptive"} {
		t.Run(policy, func(t *testing.T) {
			s := simulateArgs(t, "-duration=30m", "-seed=3", "-operator-delay=5m", "-quiet", "-policy="+policy)
			broken := groupByName(t, s, "broken")
			require.GreaterOrEqual(t, broken.operatorResets, 1, "the operator reset the hard-limited preset")
			require.GreaterOrEqual(t, broken.events[prebuilds.EventHardLimited], 2, "broken fails again after the reset")
			// Limits and resets alternate, so the counts differ by at most one.
			require.LessOrEqual(t, broken.events[prebuilds.EventHardLimited]-broken.operatorResets, 1)
			require.Positive(t, broken.operatorRemovals)

			flaky := groupByName(t, s, "flaky")
			require.Positive(t, flaky.failed)
			require.Positive(t, flaky.succeeded, "flaky builds succeed too")
			require.Positive(t, flaky.backoffTime, "flaky backs off after failures")
			require.Positive(t, flaky.served, "flaky prebuilds are claimed once they recover")
		})
	}
}

func TestSimulationFullDefaultRun(t *testing.T) {
	if testing.Short() {
		t.Skip("full hour simulation")
	}
	s := simulateArgs(t, "-quiet")
	pools := poolsByName(t, s)

	web := groupByName(t, s, "web")
	require.Equal(t, 2, web.version, "web got a new version mid-run")
	require.Len(t, web.presets, 2)
	require.Positive(t, s.prov.deletes, "outdated prebuilds were deleted")
	require.Equal(t, 10, pools["web"].desired)
	require.Equal(t, 40, pools["ci-runner"].desired, "business-hours schedule raised ci-runner")
	require.Positive(t, web.served)

	require.Positive(t, groupByName(t, s, "broken").events[prebuilds.EventHardLimited])
	require.Positive(t, groupByName(t, s, "broken").operatorResets, "the operator resets broken in the default run")
	require.Equal(t, 1, groupByName(t, s, "misconfigured").events[prebuilds.EventValidationFailed])
	require.Zero(t, s.jobsDropped, "the default JobSink holds every hand-off of a pass")
	require.Zero(t, s.prov.polled)
	require.Zero(t, s.prov.lost, "the only provisioner never loses a job it polled")
	require.Zero(t, s.presetErrors)
	require.Zero(t, s.clamped)

	// The provisioner's tallies agree with the store's cumulative counters.
	var created, failedCounter, failed, claimed int
	for _, g := range s.groups {
		created += pools[g.spec.name].created
		failedCounter += pools[g.spec.name].failedCounter
		failed += g.failed
		claimed += g.served
	}
	require.Equal(t, s.prov.builds+s.canceled, created, "every created prebuild was built or canceled while queued")
	require.Equal(t, failed, failedCounter)
	require.Positive(t, claimed)
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSimulationWithoutJobSinkPollsEveryJob(t *testing.T) {
	s := simulateArgs(t, "-duration=10m", "-sink-buffer=0", "-claim-rate=0", "-failure-rate=0", "-quiet")
	require.Zero(t, s.prov.handedOff)
	require.Positive(t, s.prov.builds)
	require.Equal(t, s.prov.builds+s.prov.deletes, s.prov.polled, "every job taken was found by polling")
	require.Equal(t, s.jobsDropped, s.prov.polled+s.canceled, "every job was polled or canceled while queued")
	require.Zero(t, s.prov.lost)
	pending, err := s.store.PendingJobs(context.Background(), prebuilds.PendingJobsParams{Limit: prebuilds.MaxPendingJobsLimit})
	require.NoError(t, err)
	require.Empty(t, pending, "the last poll took every pending job")
	pools := poolsByName(t, s)
	require.Equal(t, 10, pools["web"].running)
}

func TestSimulationScalesPresets(t *testing.T) {
	s := simulateArgs(t, "-duration=5m", "-presets=3", "-claim-rate=0", "-failure-rate=0", "-quiet")
	pools := poolsByName(t, s)
	require.Len(t, groupByName(t, s, "ci-runner").active, 3)
	require.Equal(t, 60, pools["ci-runner"].desired)
	require.Equal(t, 60, pools["ci-runner"].running)
	require.Positive(t, pools["broken"].hardLimited, "status per preset is aggregated")
}

func TestSimClock(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 2, 13, 40, 0, 0, time.UTC)
	c := newSimClock(start)
	require.Equal(t, start, c.Now())
	require.Equal(t, start.Add(time.Minute), c.Advance(time.Minute))
	require.Equal(t, time.Minute, c.Since(start))
	require.Equal(t, -time.Minute, c.Until(start))
	c.Advance(-time.Hour)
	require.Equal(t, start.Add(time.Minute), c.Now(), "time never goes back")
	called := false
	w := c.TickerFunc(context.Background(), time.Second, func() error { called = true; return nil })
	require.ErrorIs(t, w.Wait(), errClockUnsupported)
	require.False(t, called)
}

func TestOffset(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 2, 13, 40, 0, 0, time.UTC)
	for d, want := range map[time.Duration]string{
		0:                             "+00m00s",
		5*time.Minute + time.Second:   "+05m01s",
		time.Hour + 2*time.Minute:     "+1h02m00s",
		-30 * time.Second:             "-00m30s",
		1500 * time.Millisecond:       "+00m01s",
		25*time.Hour + 59*time.Second: "+25h00m59s",
	} {
		require.Equal(t, want, offset(start.Add(d), start), "%s", d)
	}
}

func TestSimulationStopsOnCanceledContext(t *testing.T) {
	opts, err := parseFlags([]string{"-quiet"}, io.Discard)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = newSim(opts, io.Discard, io.Discard).run(ctx)
	require.ErrorIs(t, err, context.Canceled)
}
