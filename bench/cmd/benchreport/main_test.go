package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prebuildkit/prebuildkit/bench/internal/report"
)

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// suiteRaw is bench.Run output of one store at four sizes, three runs each.
func suiteRaw() string {
	var b strings.Builder
	b.WriteString("cpu: Test CPU\npkg: example.com/mystore\n")
	for _, kind := range []string{"idle", "churn"} {
		for _, n := range []int{100, 1000, 5000, 10000} {
			for _, e := range []float64{0.9, 1, 1.1} {
				fmt.Fprintf(&b, "BenchmarkStore/Pass/%s/presets=%d-2\t10\t%.0f ns/op\n", kind, n, 1e5*float64(n)*e)
			}
		}
	}
	b.WriteString("BenchmarkStore/ColdFill/concurrency=8-2\t1\t1 ns/op\t30000 creates/s\n")
	return b.String()
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "results", "raw.txt")
	machine := filepath.Join(dir, "results", "machine.txt")
	chart := filepath.Join(dir, "results", "pass.png")
	notes := filepath.Join(dir, "NOTES.md")
	doc := filepath.Join(dir, "doc.go")
	out := filepath.Join(dir, "REPORT.md")
	write(t, raw, suiteRaw()+`pkg: github.com/prebuildkit/prebuildkit/pgstore
BenchmarkStore/Snapshot/presets=10000-2	 2	 400000000 ns/op
BenchmarkSnapshotFloor/presets=10000-2	 2	 200000000 ns/op
`)
	write(t, machine, "date: 2026-01-05 12:00 UTC\ncores: 2\npostgres: PostgreSQL 15.1\n")
	write(t, notes, "<!-- notes for: results/raw-old.txt -->\nThe pass reads history.\n")
	write(t, doc, "// Package x.\n//\n"+report.DocMarker+"\n//\n//\tstale\n//\n// More.\npackage x\n")

	err := run([]string{"-out", out, "-chart", chart, "-machine", machine, "-notes", notes, "-doc", doc, "-cmd", "scripts/bench.sh", raw})
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| CPU | Test CPU |", "| PostgreSQL | PostgreSQL 15.1 |", "Raw output: `results/raw.txt`.",
		"| pgstore snapshot ÷ plain table scan at 10,000 presets | 2.0× | ≤ 3× | met |",
		"| mystore | churn | 1.00 ± 0.03 |", "| **mystore** | **both** | | | | **more than 40,000** | **30,000 (",
		"](results/pass.png)",
		"> Written by hand for the run `results/raw-old.txt`", "The pass reads history.",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(string(body), "notes for:") {
		t.Error("the notes' marker line was copied into the report")
	}
	if _, err := os.Stat(chart); err != nil {
		t.Errorf("no chart: %v", err)
	}
	src, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	if block := report.DocBlock(string(src)); !strings.HasPrefix(block, "store ") || !strings.Contains(block, "\nmystore ") || strings.Contains(string(src), "stale") {
		t.Errorf("doc block not rewritten:\n%s", src)
	}
	if t.Failed() {
		t.Logf("report:\n%s", body)
	}

	// A run without passes has no chart, and says it is partial.
	write(t, raw, "pkg: github.com/prebuildkit/prebuildkit/bench\nBenchmarkDesiredAt/zone=UTC-2\t1\t90 ns/op\n")
	chart2 := filepath.Join(dir, "results", "none.png")
	if err := run([]string{"-out", out, "-chart", chart2, "-partial", "BENCH_FILTER='DesiredAt'", raw}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(chart2); err == nil {
		t.Error("a chart without passes was drawn")
	}
	if body, _ := os.ReadFile(out); !strings.Contains(string(body), "**Partial run** (BENCH_FILTER='DesiredAt')") || strings.Contains(string(body), "none.png") {
		t.Errorf("partial report:\n%s", body)
	}

	if err := run([]string{"-out", out, filepath.Join(dir, "missing.txt")}); err == nil {
		t.Error("a missing input succeeded")
	}
	write(t, raw, "PASS\n")
	if err := run([]string{"-out", out, raw}); err == nil {
		t.Error("an input without results succeeded")
	}
	write(t, doc, "// Package x.\npackage x\n")
	write(t, raw, suiteRaw())
	if err := run([]string{"-out", out, "-doc", doc, raw}); err == nil {
		t.Error("a doc file without the sizing marker was accepted")
	}
}
