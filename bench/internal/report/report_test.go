package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/prebuildkit/prebuildkit/bench
cpu: AMD EPYC 7B13
BenchmarkPlan/impl=indexed/presets=10000-2   	      50	  10000000 ns/op	   1000000 presets/s	 2000 B/op	 10 allocs/op
BenchmarkPlan/impl=indexed/presets=10000-2   	      50	  12000000 ns/op	    833333 presets/s	 2000 B/op	 10 allocs/op
BenchmarkPlan/impl=indexed/presets=10000-2   	      50	  30000000 ns/op	    333333 presets/s	 2000 B/op	 10 allocs/op
BenchmarkPlan/impl=naive/presets=10000-2     	       1	1500000000 ns/op	      6666 presets/s	 2000 B/op	 10 allocs/op
BenchmarkSnapshot/store=pg/presets=10000
    bench_test.go:170: testdbconf: postgres://x
BenchmarkSnapshot/store=pg/presets=10000-2   	       2	 900000000 ns/op
--- BENCH: BenchmarkSnapshot/store=pg/presets=10000-2
BenchmarkSnapshot/store=pgscan/presets=10000-2	       2	 200000000 ns/op
BenchmarkCreatePrebuilds/store=pg/mode=per-instance-2	 100	 20000000 ns/op	 500 creates/s
BenchmarkCreatePrebuilds/store=pg/mode=batched-2	 400	  2500000 ns/op	 4000 creates/s
BenchmarkReconcileSteady/store=mem/presets=100-2	 1000	 100000 ns/op
BenchmarkReconcileSteady/store=mem/presets=1000-2	 1000	 1000000 ns/op
BenchmarkReconcileSteady/store=pg/presets=100-2	 100	 10000000 ns/op
BenchmarkReconcileSteady/store=pg/presets=1000-2	 100	 50000000 ns/op
PASS
ok  	github.com/prebuildkit/prebuildkit/bench	12.3s
`

func TestParse(t *testing.T) {
	rs, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if got := rs.Config["cpu"]; got != "AMD EPYC 7B13" {
		t.Errorf("cpu = %q", got)
	}
	if got, ok := rs.Median("BenchmarkPlan/impl=indexed/presets=10000", "ns/op"); !ok || got != 12e6 {
		t.Errorf("median of three = %v, %v; want 1.2e7", got, ok)
	}
	if got := rs.Get("BenchmarkPlan/impl=indexed/presets=10000").Spread("ns/op"); got < 149 || got > 151 {
		t.Errorf("spread = %v%%, want 150%%", got)
	}
	if got, ok := rs.Median("BenchmarkCreatePrebuilds/store=pg/mode=per-instance", "creates/s"); !ok || got != 500 {
		t.Errorf("hyphenated name: %v, %v", got, ok)
	}
	if n := len(rs.Names()); n != 10 {
		t.Errorf("%d benchmarks, want 10: %v", n, rs.Names())
	}
	if _, err := Parse(strings.NewReader("BenchmarkX-2 1 abc ns/op\n")); err == nil {
		t.Error("a malformed value parsed")
	}
}

func TestTargets(t *testing.T) {
	rs, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		ratio float64
		met   bool
	}{
		"Planner: naive ÷ indexed time at 10,000 presets (10% scheduled)": {125, true},
		"pgstore snapshot ÷ plain table scan at 10,000 presets":           {4.5, false},
		"pgstore creates: per-instance ÷ batched time (10 prebuilds)":     {8, true},
	}
	seen := 0
	for _, tg := range Targets {
		w, ok := want[tg.Title]
		ratio, measured := tg.Ratio(rs)
		if ok {
			seen++
		}
		if !ok {
			if measured {
				t.Errorf("%s: measured from a sample that lacks it", tg.Title)
			}
			continue
		}
		if !measured || ratio != w.ratio || tg.Met(ratio) != w.met {
			t.Errorf("%s: ratio %v (measured %v, met %v), want %v met %v", tg.Title, ratio, measured, tg.Met(ratio), w.ratio, w.met)
		}
	}
	if seen != len(want) {
		t.Errorf("%d of the %d expected targets exist in Targets (renamed?)", seen, len(want))
	}
}

func TestWriteAndChart(t *testing.T) {
	rs, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	series := PassLatency(rs, "BenchmarkReconcileSteady")
	if len(series) != 2 || series[0].Store != "mem" || len(series[1].Points) != 2 || series[1].Points[1].Y != 50 {
		t.Fatalf("series = %+v", series)
	}
	png := filepath.Join(t.TempDir(), "chart.png")
	if err := SaveChart(png, "test", series); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(png)
	if err != nil || len(body) < 1000 || string(body[1:4]) != "PNG" {
		t.Fatalf("chart is not a PNG (%d bytes, err %v)", len(body), err)
	}

	var b strings.Builder
	err = Write(&b, rs, Options{Machine: Machine{CPU: "cpu | x", Cores: "2"}, Command: "scripts/bench.sh", Chart: "results/chart.png", Notes: "EXPLAIN says"})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| CPU | cpu \\| x |",
		"| Planner: naive ÷ indexed time at 10,000 presets (10% scheduled) | 125.0× | ≥ 100× | met |",
		"| pgstore snapshot ÷ plain table scan at 10,000 presets | 4.5× | ≤ 3× | **missed** |",
		"| impl=indexed/presets=10000 | 12 ms | 150% | 833k |",
		"![steady-state pass latency by preset count](results/chart.png)",
		"## Analysis\n\nEXPLAIN says",
		"scripts/bench.sh",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Duration(1234), "1.23 µs"}, {Duration(2.5e9), "2.5 s"}, {Duration(999), "999 ns"},
		{Number(123456), "123k"}, {Number(2.5e6), "2.5M"}, {Number(42), "42"}, {Number(0.5), "0.5"}, {Number(8881.7), "8882"}, {Number(12.34), "12.3"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
