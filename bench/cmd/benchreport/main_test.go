package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "results", "raw.txt")
	machine := filepath.Join(dir, "results", "machine.txt")
	chart := filepath.Join(dir, "results", "pass.png")
	out := filepath.Join(dir, "REPORT.md")
	if err := os.MkdirAll(filepath.Dir(raw), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(path, body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(raw, `cpu: Test CPU
BenchmarkReconcileSteady/store=mem/presets=100-2	 100	 100000 ns/op
BenchmarkReconcileSteady/store=mem/presets=1000-2	 100	 900000 ns/op
BenchmarkSnapshot/store=pg/presets=10000-2	 2	 400000000 ns/op
BenchmarkSnapshot/store=pgscan/presets=10000-2	 2	 200000000 ns/op
`)
	write(machine, "date: 2026-01-05 12:00 UTC\ncores: 2\npostgres: PostgreSQL 15.1\n")

	err := run([]string{"-out", out, "-chart", chart, "-machine", machine, "-notes", filepath.Join(dir, "missing.md"), "-cmd", "scripts/bench.sh", raw})
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
		"](results/pass.png)",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("report lacks %q:\n%s", want, body)
		}
	}
	if _, err := os.Stat(chart); err != nil {
		t.Errorf("no chart: %v", err)
	}

	if err := run([]string{"-out", out, filepath.Join(dir, "missing.txt")}); err == nil {
		t.Error("a missing input succeeded")
	}
	write(raw, "PASS\n")
	if err := run([]string{"-out", out, raw}); err == nil {
		t.Error("an input without results succeeded")
	}
}
