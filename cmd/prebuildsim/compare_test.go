package main

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"testing"

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
			"hard limits", "failed per hard limit (worst)", "backoff", "blocked", "held (probe, canary, budget)"} {
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
	for _, label := range []string{labelCeiling, labelCoder, labelAdaptive} {
		require.Contains(t, loud, "=== run "+label)
	}
	require.Equal(t, 3, strings.Count(loud, "summary after 10m00s"), "one summary per run without -quiet")
	require.Contains(t, loud, "policy adaptive, targeted passes")
}

func TestCompareRuns(t *testing.T) {
	t.Parallel()
	opts, err := parseFlags([]string{"-failure-rate=0.2", "-seed=9"}, io.Discard)
	require.NoError(t, err)
	runs := compareRuns(opts)
	require.Len(t, runs, 3)
	require.Equal(t, labelCeiling, runs[0].label)
	require.Zero(t, runs[0].opts.failureRate)
	require.Equal(t, prebuilds.PolicyCoder, runs[0].opts.policy)
	require.Equal(t, prebuilds.PolicyCoder, runs[1].opts.policy)
	require.Equal(t, prebuilds.PolicyAdaptive, runs[2].opts.policy)
	for _, r := range runs[1:] {
		require.InDelta(t, 0.2, r.opts.failureRate, 0)
	}
	for _, r := range runs {
		require.Equal(t, uint64(9), r.opts.seed, "every run has the same seed")
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
