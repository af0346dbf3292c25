package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the repository this package's tests run in (go test runs
// them in the package directory).
const repoRoot = "../../.."

// gitStatus is `git status --porcelain` of the repository, untracked files
// included (ignored ones are not: partial runs write only there).
func gitStatus(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", repoRoot, "status", "--porcelain", "--untracked-files=all").CombinedOutput()
	if err != nil {
		t.Fatalf("git status: %v\n%s", err, out)
	}
	return string(out)
}

// scratchDirs lists bench/results/scratch-*.
func scratchDirs(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(repoRoot, "bench", "results", "scratch-*"))
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

// benchScript runs scripts/bench.sh with env (and no other BENCH_*
// variable) and returns its output and whether it succeeded.
func benchScript(t *testing.T, env ...string) (string, bool) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "bash", filepath.Join(repoRoot, "scripts", "bench.sh"))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BENCH_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("running scripts/bench.sh: %v", err)
	}
	return string(out), err == nil
}

// TestBenchScriptPartialRunsLeaveTheTreeClean runs scripts/bench.sh the way
// a developer checks one benchmark: the report and results go to a scratch
// directory, and nothing the repository tracks (bench/REPORT.md,
// bench/results/, bench/doc.go) changes.
func TestBenchScriptPartialRunsLeaveTheTreeClean(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go test -bench and go run in a child process")
	}
	for _, tool := range []string{"bash", "git", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	if err := exec.Command("git", "-C", repoRoot, "rev-parse", "--git-dir").Run(); err != nil {
		t.Skip("not a git checkout")
	}
	before, dirs := gitStatus(t), scratchDirs(t)
	t.Cleanup(func() {
		for _, d := range scratchDirs(t) {
			if !slices.Contains(dirs, d) {
				os.RemoveAll(d)
			}
		}
	})

	// The command of issue 11, whose filter now matches nothing: it fails,
	// and says why.
	out, ok := benchScript(t, "BENCH_FILTER=ReconcileSteady/store=mem", "BENCH_COUNT=1", "BENCH_TIME=1x")
	if ok || !strings.Contains(out, "no benchmark matched BENCH_FILTER='ReconcileSteady/store=mem'") {
		t.Errorf("a filter that matches nothing: ok=%v, output:\n%s", ok, out)
	}
	if after := gitStatus(t); after != before {
		t.Fatalf("a partial run changed the tree:\nbefore:\n%s\nafter:\n%s\noutput:\n%s", before, after, out)
	}

	// A filter that matches: the report lands in a new scratch directory.
	out, ok = benchScript(t, "BENCH_FILTER=Store/Pass/idle", "BENCH_PACKAGES=./memstore/",
		"BENCH_PRESETS=50,100,200", "BENCH_COUNT=1", "BENCH_TIME=1x")
	if !ok {
		t.Fatalf("a small partial run failed:\n%s", out)
	}
	if after := gitStatus(t); after != before {
		t.Fatalf("a partial run changed the tree:\nbefore:\n%s\nafter:\n%s\noutput:\n%s", before, after, out)
	}
	var fresh []string
	for _, d := range scratchDirs(t) {
		if !slices.Contains(dirs, d) {
			fresh = append(fresh, d)
		}
	}
	if len(fresh) != 2 {
		t.Fatalf("scratch directories made: %v, want one per run", fresh)
	}
	var report []byte
	for _, d := range fresh {
		if body, err := os.ReadFile(filepath.Join(d, "REPORT.md")); err == nil {
			report = body
		}
	}
	for _, want := range []string{
		"**Partial run** (BENCH_FILTER='Store/Pass/idle', BENCH_COUNT=1 < 6, BENCH_TIME=1x, BENCH_PACKAGES='./memstore/')",
		"| memstore | idle |", "| memstore presets=200 |",
	} {
		if !strings.Contains(string(report), want) {
			t.Errorf("scratch report lacks %q:\n%s", want, report)
		}
	}
}
