package main

import (
	"bytes"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func runCompare(t *testing.T, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	require.Equal(t, exitOK, run(append([]string{"-compare"}, args...), &stdout, &stderr), "stderr: %s", stderr.String())
	require.Empty(t, stderr.String())
	return stdout.String()
}

// compareTable returns the rows of one group's table: figure → the values
// of ceiling, coder and adaptive, then the verdict if any.
func compareTable(t *testing.T, out, group string) map[string][]string {
	t.Helper()
	start := strings.Index(out, "\n"+group+" (")
	require.GreaterOrEqual(t, start, 0, "table of %s", group)
	lines := strings.Split(out[start+1:], "\n")
	require.Regexp(t, `^\s+figure\s+ceiling\s+coder\s+adaptive\s*$`, lines[1], "%s: header", group)
	rows := map[string][]string{}
	cell := regexp.MustCompile(`^\S+(?: \(\d+\))?$`)
	gap := regexp.MustCompile(`\s{2,}`)
	for _, line := range lines[2:] {
		if strings.TrimSpace(line) == "" {
			break
		}
		// Figure names are right-aligned and may contain spaces: the
		// values are the last three cells before the verdict.
		fields := gap.Split(strings.TrimSpace(line), -1)
		require.GreaterOrEqual(t, len(fields), 4, "%s: row %q", group, line)
		for _, v := range fields[1:4] {
			require.Regexp(t, cell, v)
		}
		rows[fields[0]] = fields[1:]
	}
	return rows
}

func TestCompareOutputShape(t *testing.T) {
	out := runCompare(t, "-duration=40m", "-quiet", "-seed=2")
	require.NotContains(t, out, "t=+", "no progress lines")
	require.NotContains(t, out, "summary after", "-quiet prints only the comparison")
	require.Contains(t, out, "comparison after 40m00s (seed 2)")
	for _, g := range fleet {
		rows := compareTable(t, out, g.name)
		for _, figure := range []string{"fill ratio", "claims served", "claims missed", "start builds", "failed builds",
			"hard limits", "failed per hard limit (worst)", "backoff", "blocked", "held (probe, canary, budget)",
			"refill p50", "refill p99", "refill max"} {
			require.Contains(t, rows, figure, "%s: row %q", g.name, figure)
		}
		for _, judged := range []string{"fill ratio", "claims missed", "failed builds", "backoff"} {
			require.Len(t, rows[judged], 4, "%s: %s has a verdict", g.name, judged)
			require.Regexp(t, `^(adaptive ahead|coder ahead|level)$`, rows[judged][3])
		}
		if !g.failure.troubled() && g.hangRate == 0 {
			require.Equal(t, "0", rows["failed builds"][0], "%s: the ceiling has no failures", g.name)
		}
		if g.failure == failAlways {
			require.NotEqual(t, "0", rows["failed builds"][0], "%s stays broken in the ceiling", g.name)
		}
	}
	require.Regexp(t, `(?m)^  ci-runner fill ÷ ceiling fill: coder \d\.\d{3}, adaptive \d\.\d{3} \(target ≥ 0\.95 under adaptive: (met|MISSED)\)$`, out)
	require.Regexp(t, `(?m)^  ci-runner backoff adaptive ÷ coder: \d+\.\d{3} \(`, out)
	require.Regexp(t, `(?m)^  broken-big \(desired 40\) failed builds per hard limit, mean \(worst\): coder `, out)
	require.Regexp(t, `(?m)^  adaptive ahead or level on fill, claims missed, failed builds and backoff for every group: (yes|no; behind on)$`, out)

	require.Equal(t, out, runCompare(t, "-duration=40m", "-quiet", "-seed=2"), "same seed, same comparison")

	loud := runCompare(t, "-duration=10m", "-seed=2")
	for _, label := range []string{labelCeiling, labelCoder, labelAdaptive, "coder interval-only", "adaptive interval-only"} {
		require.Contains(t, loud, "=== run "+label+":")
	}
	require.Equal(t, 5, strings.Count(loud, "summary after 10m00s"), "one summary per run without -quiet")
	require.Contains(t, loud, "policy adaptive, targeted passes")
	require.Contains(t, loud, "policy adaptive, interval-only")
}

func TestCompareRuns(t *testing.T) {
	t.Parallel()
	for _, targeted := range []bool{true, false} {
		opts, err := parseFlags([]string{"-failure-rate=0.2", "-seed=9", "-targeted=" + strconv.FormatBool(targeted)}, io.Discard)
		require.NoError(t, err)
		runs := compareRuns(opts)
		require.Len(t, runs, 5)
		require.Equal(t, labelCeiling, runs[0].label)
		require.Zero(t, runs[0].opts.failureRate)
		for i, policy := range []prebuilds.FailurePolicy{prebuilds.PolicyCoder, prebuilds.PolicyCoder, prebuilds.PolicyAdaptive, prebuilds.PolicyCoder, prebuilds.PolicyAdaptive} {
			require.Equal(t, policy, runs[i].opts.policy, "run %d", i)
		}
		for _, r := range runs[1:] {
			require.InDelta(t, 0.2, r.opts.failureRate, 0)
		}
		for _, r := range runs[:3] {
			require.Equal(t, targeted, r.opts.targeted, "%s: the policies are compared in the mode of the flags", r.label)
		}
		for _, r := range runs[3:] {
			require.Equal(t, !targeted, r.opts.targeted, "%s: the other mode", r.label)
			require.Equal(t, string(r.opts.policy)+" "+modeName(!targeted), r.label)
		}
		for _, r := range runs {
			require.Equal(t, uint64(9), r.opts.seed, "every run has the same seed")
		}
	}
}

// modeRows parses the comparison of the modes: "group policy mode" → the
// refilled count, p50, p99, max, fill and missed cells.
func modeRows(t *testing.T, out string) map[string][]string {
	t.Helper()
	start := strings.Index(out, "\nclaim → refill by mode after ")
	require.GreaterOrEqual(t, start, 0, "comparison of the modes")
	lines := strings.Split(out[start+1:], "\n")
	require.Regexp(t, `^\s+group\s+policy\s+mode\s+refilled\s+p50\s+p99\s+max\s+fill\s+missed\s*$`, lines[2])
	rows := map[string][]string{}
	for _, line := range lines[3:] {
		if strings.TrimSpace(line) == "" {
			break
		}
		f := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
		require.GreaterOrEqual(t, len(f), 8, "row %q", line)
		rows[f[0]+" "+f[1]+" "+f[2]] = f[3:]
	}
	return rows
}

// -compare shows claim-to-refill latency for both modes: targeted passes
// refill healthy pools -trigger-delay after the claim, interval-only ones
// at the next full pass.
func TestCompareModes(t *testing.T) {
	for _, flags := range [][]string{nil, {"-targeted=false"}} {
		out := runCompare(t, append([]string{"-duration=1h", "-quiet", "-failure-rate=0"}, flags...)...)
		rows := modeRows(t, out)
		for _, g := range fleet {
			for _, policy := range []string{labelCoder, labelAdaptive} {
				for _, mode := range []string{"targeted", "interval-only"} {
					require.Contains(t, rows, g.name+" "+policy+" "+mode)
				}
			}
		}
		for _, policy := range []string{labelCoder, labelAdaptive} {
			require.Contains(t, rows, "all groups "+policy+" targeted")
		}
		for _, name := range []string{"web", "ci-runner", "gpu"} {
			targeted, interval := rows[name+" coder targeted"], rows[name+" coder interval-only"]
			require.NotEqual(t, "0", targeted[0], "%s: claims were refilled", name)
			require.Equal(t, []string{"25ms", "25ms", "25ms"}, targeted[1:4], "%s: targeted passes refill 25ms after the claim", name)
			p50, err := time.ParseDuration(interval[1])
			require.NoError(t, err)
			require.Greater(t, p50, time.Second, "%s: interval-only waits for the next full pass", name)
			mx, err := time.ParseDuration(interval[3])
			require.NoError(t, err)
			require.Less(t, mx, 30*time.Second, "%s: the next full pass comes within -interval", name)
		}
		table := compareTable(t, out, "web")
		if len(flags) == 0 {
			require.Equal(t, "25ms", table["refill p50"][1], "the policy tables are of the targeted runs")
		} else {
			require.NotEqual(t, "25ms", table["refill p50"][1], "the policy tables are of the interval-only runs")
		}
	}
}

func TestCompareFailedBuildsPerHardLimit(t *testing.T) {
	out := runCompare(t, "-duration=1h", "-quiet")
	rows := compareTable(t, out, "broken-big")
	perLimit := rows["failed per hard limit (worst)"]
	require.Equal(t, "40.0 (40)", perLimit[1], "coder builds the whole pool of 40 before its hard limit")
	require.Equal(t, "3.0 (3)", perLimit[2], "adaptive stops after K = 3 failures")
	require.Equal(t, "adaptive ahead", perLimit[3])
	require.Contains(t, out, "(target ≤ K = 3 under adaptive: met)")
}
