package report

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sample is the output of two packages' benchmarks, one of them with the
// names package bench used before bench.Run.
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
BenchmarkReconcileSteady/store=pg/presets=100-2	 100	 10000000 ns/op
PASS
ok  	github.com/prebuildkit/prebuildkit/bench	12.3s
pkg: github.com/prebuildkit/prebuildkit/pgstore
BenchmarkStore/Pass/idle/presets=1000-2	 100	 50000000 ns/op
BenchmarkStore/CreatePrebuilds/mode=per-instance-2	 100	 20000000 ns/op	 500 creates/s
BenchmarkStore/CreatePrebuilds/mode=batched-2	 400	  2500000 ns/op	 4000 creates/s
BenchmarkStoreRTT500us/Claim/impl=tx-2	 400	  2500000 ns/op	 400 claims/s
ok  	github.com/prebuildkit/prebuildkit/pgstore	12.3s
pkg: github.com/prebuildkit/prebuildkit/memstore
BenchmarkStore/Pass/idle/presets=1000-2	 1000	 1000000 ns/op
BenchmarkStore/Claim-2	 1000	 1000 ns/op	 1000000 claims/s
BenchmarkStore/Pass/idle-2	 1000	 1000 ns/op
BenchmarkStore/Pass/chaos/presets=10-2	 1000	 1000 ns/op
BenchmarkStore/Claim/mode=x-2	 1000	 1000 ns/op
BenchmarkStore/Refill/presets=1000-2	 300	 26000000 ns/op	 30030 interval-p50-ms	 59430 interval-p99-ms	 25.8 p50-ms	 37.8 p99-ms	 9486 B/op	 82 allocs/op
BenchmarkStore/Shards/presets=50000/replicas=2-2	 3	 900000000 ns/op	 55000 presets/s	 5.0 shard-passes/cycle
BenchmarkStore/Shards/replicas=2-2	 3	 900000000 ns/op
BenchmarkFootprint/presets=1000-2	 1	 1000 ns/op	 1080 B/instance
`

func parseSample(t *testing.T) *Results {
	t.Helper()
	rs, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestParse(t *testing.T) {
	rs := parseSample(t)
	if got := rs.Config["cpu"]; got != "AMD EPYC 7B13" {
		t.Errorf("cpu = %q", got)
	}
	if got, ok := rs.Median("bench:BenchmarkPlan/impl=indexed/presets=10000", "ns/op"); !ok || got != 12e6 {
		t.Errorf("median of three = %v, %v; want 1.2e7", got, ok)
	}
	if got, ok := rs.Get("bench:BenchmarkPlan/impl=indexed/presets=10000").Spread("ns/op"); !ok || got < 149 || got > 151 {
		t.Errorf("spread of three = %v%% (%v), want 150%%", got, ok)
	}
	if got, ok := rs.Get("bench:BenchmarkPlan/impl=naive/presets=10000").Spread("ns/op"); ok {
		t.Errorf("one run has a spread (%v%%): it would read as ± 0%%", got)
	}
	// The same name in two packages is two benchmarks.
	mem, okm := rs.Median("memstore:BenchmarkStore/Pass/idle/presets=1000", "ns/op")
	pg, okp := rs.Median("pgstore:BenchmarkStore/Pass/idle/presets=1000", "ns/op")
	if !okm || !okp || mem != 1e6 || pg != 5e7 {
		t.Errorf("per-package results: memstore %v (%v), pgstore %v (%v)", mem, okm, pg, okp)
	}
	// Names from before bench.Run are read under today's IDs.
	for id, want := range map[string]float64{
		"pgstore:BenchmarkStore/Snapshot/presets=10000": 9e8,
		"pgstore:BenchmarkSnapshotFloor/presets=10000":  2e8,
		"pgstore:BenchmarkStore/Pass/idle/presets=100":  1e7,
	} {
		if got, ok := rs.Median(id, "ns/op"); !ok || got != want {
			t.Errorf("%s = %v (%v), want %v", id, got, ok, want)
		}
	}
	if got, ok := rs.Median("pgstore:BenchmarkStore/CreatePrebuilds/mode=per-instance", "creates/s"); !ok || got != 500 {
		t.Errorf("hyphenated name: %v, %v", got, ok)
	}
	if n := len(rs.Names()); n != 18 {
		t.Errorf("%d benchmarks, want 18: %v", n, rs.Names())
	}
	if _, err := Parse(strings.NewReader("BenchmarkX-2 1 abc ns/op\n")); err == nil {
		t.Error("a malformed value parsed")
	}
}

func TestLegacyID(t *testing.T) {
	for _, tc := range []struct{ pkg, name, want string }{
		{"bench", "BenchmarkReconcileSteady/store=mem/presets=5000", "memstore:BenchmarkStore/Pass/idle/presets=5000"},
		{"", "BenchmarkReconcileCold/store=pg/concurrency=8", "pgstore:BenchmarkStore/ColdFill/concurrency=8"},
		{"bench", "BenchmarkCreatePrebuilds/store=pg-rtt500us/mode=batched", "pgstore:BenchmarkStoreRTT500us/CreatePrebuilds/mode=batched"},
		{"bench", "BenchmarkClaim/store=mem", "memstore:BenchmarkStore/Claim"},
		{"bench", "BenchmarkMemstoreFootprint/presets=1000", "memstore:BenchmarkFootprint/presets=1000"},
		{"bench", "BenchmarkCreatePrebuildsSchema/schema=catalogue-fks", "pgstore:BenchmarkCreatePrebuildsSchema/schema=catalogue-fks"},
		{"bench", "BenchmarkPlan/impl=naive/presets=1000", ""},
		{"memstore", "BenchmarkClaim/store=mem", ""}, // only package bench had these names
	} {
		pkg, name, ok := LegacyID(tc.pkg, tc.name)
		got := ""
		if ok {
			got = pkg + ":" + name
		}
		if got != tc.want {
			t.Errorf("LegacyID(%q, %q) = %q, want %q", tc.pkg, tc.name, got, tc.want)
		}
	}
}

func TestSuite(t *testing.T) {
	rows := Suite(parseSample(t))
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%s|%s|%s|%d", r.Store, r.Group, r.Param, r.N))
	}
	want := []string{
		"pgstore|Snapshot|presets=10000|10000",
		"pgstore|Pass/idle|presets=100|100",
		"pgstore|Pass/idle|presets=1000|1000",
		"pgstore|CreatePrebuilds|mode=per-instance|0",
		"pgstore|CreatePrebuilds|mode=batched|0",
		"pgstore RTT500us|Claim|impl=tx|0",
		"memstore|Pass/idle|presets=1000|1000",
		"memstore|Claim||0",
		"memstore|Refill|presets=1000|1000",
		"memstore|Shards|presets=50000/replicas=2|2",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("suite rows (the floor, the footprint and names bench.Run does not make are not rows):\n%s\nwant:\n%s",
			strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if s := Stores(rows); strings.Join(s, ",") != "pgstore,pgstore RTT500us,memstore" {
		t.Errorf("stores in order first seen: %v", s)
	}
	for fn, want := range map[string]string{
		"BenchmarkStore": "x", "BenchmarkStoreRTT500us": "x RTT500us", "BenchmarkMyStore": "x MyStore",
		"BenchmarkStore/shards=4": "x shards=4", "BenchmarkOther": "x Other",
	} {
		if got := storeLabel("x", fn); got != want {
			t.Errorf("storeLabel(x, %s) = %q, want %q", fn, got, want)
		}
	}
}

// powerLaw returns samples of t = c·N^k at ns, each run multiplied by one
// of noise in turn.
func powerLaw(c, k float64, ns []float64, noise []float64) (xs, ts []float64) {
	for _, n := range ns {
		for _, e := range noise {
			xs = append(xs, n)
			ts = append(ts, c*math.Pow(n, k)*e)
		}
	}
	return xs, ts
}

var sizes = []float64{100, 1_000, 5_000, 10_000}

func TestFitPowerLaw(t *testing.T) {
	// An exact power law: the fit recovers it with no scatter.
	xs, ts := powerLaw(2e4, 1.2, sizes, []float64{1})
	f, err := FitPowerLaw(xs, ts)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(f.K-1.2) > 1e-9 || math.Abs(math.Exp(f.A)-2e4)/2e4 > 1e-9 || f.RSE > 1e-9 || f.Points != 4 || f.Sizes != 4 {
		t.Fatalf("fit = %+v, want K 1.2, e^A 2e4, no residual", f)
	}
	if got := f.Predict(3_000); math.Abs(got-2e4*math.Pow(3000, 1.2))/got > 1e-9 {
		t.Errorf("Predict(3000) = %v", got)
	}

	// ±10% around a linear law, six runs per size.
	xs, ts = powerLaw(1e5, 1, sizes, []float64{0.9, 1.1, 1, 0.95, 1.05, 1})
	f, err = FitPowerLaw(xs, ts)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(f.K-1) > 0.01 || f.RSE < 0.03 || f.RSE > 0.1 || f.SEK <= 0 {
		t.Fatalf("noisy fit = %+v, want K ≈ 1 with a residual of a few percent", f)
	}
	lo, hi := f.Band(3_000)
	if p := f.Predict(3_000); !(lo < p && p < hi) || hi/lo > 1.6 || hi/lo < 1.1 {
		t.Errorf("band at 3,000 = %v–%v around %v: want it to hold the prediction and be about ±20%%", lo, hi, p)
	}

	for name, tc := range map[string]struct{ xs, ts []float64 }{
		"two sizes":      {[]float64{100, 100, 1000}, []float64{1, 2, 3}},
		"zero time":      {[]float64{100, 1000, 10000}, []float64{1, 0, 3}},
		"length differs": {[]float64{100, 1000, 10000}, []float64{1, 2}},
	} {
		if _, err := FitPowerLaw(tc.xs, tc.ts); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestWithin(t *testing.T) {
	// 1e5 ns per preset: 10 ms at 100, 1 s at 10,000.
	xs, ts := powerLaw(1e5, 1, sizes, []float64{0.9, 1.1, 1, 0.95, 1.05, 1})
	f, err := FitPowerLaw(xs, ts)
	if err != nil {
		t.Fatal(err)
	}
	sec := float64(time.Second)
	a := f.Within(3*sec, 4) // 30,000 presets: inside the trusted 40,000
	if math.Abs(a.N-30_000)/30_000 > 0.03 || !(a.Lo < a.N && a.N < a.Hi) || a.Above() || a.Below() {
		t.Errorf("3 s: %+v, want N ≈ 30,000 inside its band", a)
	}
	if a := f.Within(6*sec, 4); !a.Above() || a.Limit != 40_000 {
		t.Errorf("6 s: %+v, want no number beyond 4× the largest measured (60,000 > 40,000)", a)
	}
	if a := f.Within(6*sec, 10); a.Above() || math.Abs(a.N-60_000)/60_000 > 0.03 {
		t.Errorf("6 s trusting 10×: %+v, want ≈ 60,000", a)
	}
	if a := f.Within(float64(time.Millisecond), 4); !a.Below() {
		t.Errorf("1 ms: %+v, want below the smallest measured (0.1 ms per preset)", a)
	}

	// Both: the smaller answer wins at every bound; a missing pass wins.
	x := Answer{N: 10, Lo: 5, Hi: 20, Min: 1, Limit: 100}
	y := Answer{N: 8, Lo: 6, Hi: 30, Min: 1, Limit: 100}
	if got := Both(x, y); got.N != 8 || got.Lo != 5 || got.Hi != 20 {
		t.Errorf("Both = %+v", got)
	}
	if got := Both(x, Answer{Missing: "churn pass not measured"}); got.Missing == "" {
		t.Errorf("Both with a missing pass = %+v, want missing", got)
	}
}

func TestTQuantile(t *testing.T) {
	for df, want := range map[int]float64{1: 12.706, 2: 4.303, 22: 2.074, 30: 2.042, 60: 2.000, 120: 1.980} {
		if got := tQuantile975(df); math.Abs(got-want) > 0.003 {
			t.Errorf("t(%d) = %v, want %v", df, got, want)
		}
	}
	if !math.IsInf(tQuantile975(0), 1) {
		t.Error("no degrees of freedom must give no band")
	}
}

// sizingSample is a full run's idle and churn passes for two stores: mem
// grows linearly at 5 µs per preset (never near a budget), slow at 1e5 ns
// per preset (1 s at 10,000 presets).
func sizingSample() string {
	var b strings.Builder
	for _, st := range []struct {
		pkg string
		per float64
	}{{"mem", 5e3}, {"slow", 1e5}} {
		fmt.Fprintf(&b, "pkg: example.com/%s\n", st.pkg)
		for _, kind := range []string{"idle", "churn"} {
			for _, n := range sizes {
				for _, e := range []float64{0.9, 1.1, 1, 0.95, 1.05, 1} {
					if kind == "churn" {
						e *= 1.2
					}
					fmt.Fprintf(&b, "BenchmarkStore/Pass/%s/presets=%.0f-2\t10\t%.0f ns/op\n", kind, n, st.per*n*e)
				}
			}
		}
		fmt.Fprintf(&b, "BenchmarkStore/ColdFill/concurrency=1-2\t1\t1 ns/op\t10000 creates/s\n")
		fmt.Fprintf(&b, "BenchmarkStore/ColdFill/concurrency=8-2\t1\t1 ns/op\t30000 creates/s\n")
	}
	return b.String()
}

func TestWriteAndChart(t *testing.T) {
	rs, err := Parse(strings.NewReader(sample + sizingSample()))
	if err != nil {
		t.Fatal(err)
	}
	series := PassSeries(Suite(rs))
	var names []string
	for _, s := range series {
		names = append(names, fmt.Sprintf("%s %s %d", s.Store, s.Kind, len(s.Points)))
	}
	if got := strings.Join(names, ","); got != "pgstore idle 2,memstore idle 1,mem idle 4,mem churn 4,slow idle 4,slow churn 4" {
		t.Fatalf("series = %s", got)
	}
	if p := series[0].Points; p[0].X != 100 || p[1].Y != 50 {
		t.Fatalf("pgstore points (ms by presets, ascending) = %v", p)
	}
	png := filepath.Join(t.TempDir(), "chart.png")
	if err := SaveChart(png, "test", series); err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(png)
	if err != nil || len(body) < 1000 || string(body[1:4]) != "PNG" {
		t.Fatalf("chart is not a PNG (%d bytes, err %v)", len(body), err)
	}
	if err := SaveChart(png, "test", nil); err == nil {
		t.Error("a chart without data succeeded")
	}

	var b strings.Builder
	err = Write(&b, rs, Options{
		Machine: Machine{CPU: "cpu | x", Cores: "2"}, Command: "scripts/bench.sh", Chart: "results/chart.png",
		Notes: "EXPLAIN says", NotesFor: "results/raw-old.txt", Raw: []string{"results/raw-new.txt"},
		Partial: "BENCH_FILTER='Pass'",
	})
	if err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"**Partial run** (BENCH_FILTER='Pass')",
		"| CPU | cpu \\| x |",
		"| Planner: naive ÷ indexed time at 10,000 presets (10% scheduled) | 125.0× | ≥ 100× | met |",
		"| pgstore snapshot ÷ plain table scan at 10,000 presets | 4.5× | ≤ 3× | **missed** |",
		"| pgstore creates: per-instance ÷ batched time (10 prebuilds) | 8.0× | ≥ 5× | met |",
		"| impl=indexed/presets=10000 | 12 ms | 150% | 3 | 833k |",
		"| impl=naive/presets=10000 | 1.5 s | — | 1 | 6666 |",
		"| 1m: ≤ 6 s | 30s: ≤ 3 s | 10s: ≤ 1 s |",
		// mem never reaches a budget within 4× of 10,000.
		"| **mem** | **both** | | | | **more than 40,000** | **more than 40,000** | **more than 40,000** |",
		// slow: 1e5 ns per preset idle, 1.2e5 churn: 3 s at 25,000 for churn.
		"| slow | idle | 1.00 ± 0.02 | ×1.07 | 100–10,000 (24 runs) | more than 40,000 | 30,000 (",
		"| **slow** | **both** | | | | **more than 40,000** | **25,000 (",
		"| pgstore | idle | | | measured at fewer than 3 preset counts |",
		"| **pgstore** | **both** | | | | **— (idle pass measured at fewer than 3 preset counts)** |",
		"](results/chart.png)",
		"## Worked example: 3,000 presets",
		"| slow | 299 ms (", "| 30k creates/s (concurrency=8) | 50 ms |",
		"| memstore | 1 µs | — | 1 | 1M |",
		"| pgstore RTT500us impl=tx |",
		"## Claim → refill",
		"| benchmark | time/op | ± | runs | interval-p50-ms | interval-p99-ms | p50-ms | p99-ms | B/op | allocs/op |",
		"| memstore presets=1000 | 26 ms | — | 1 | 30k | 59.4k | 25.8 | 37.8 | 9486 | 82 |",
		"> Written by hand for the run `results/raw-old.txt`",
		"## Analysis\n\n> Written", "EXPLAIN says",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", out)
	}

	b.Reset()
	if err := Write(&b, rs, Options{Notes: "EXPLAIN says", NotesFor: "results/raw-new.txt", Raw: []string{"results/raw-new.txt"}}); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); strings.Contains(out, "Written by hand for the run") || strings.Contains(out, "Partial run") {
		t.Errorf("a full run with its own notes carries a warning:\n%s", out)
	}
}

func TestSizingText(t *testing.T) {
	rs, err := Parse(strings.NewReader(sizingSample()))
	if err != nil {
		t.Fatal(err)
	}
	got := SizingText(rs, Options{})
	lines := strings.Split(got, "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "store  Interval 1m (pass ≤ 6 s)") ||
		!strings.HasPrefix(lines[1], "mem  ") || !strings.Contains(lines[1], "> 40,000") ||
		!strings.HasPrefix(lines[2], "slow ") || !strings.Contains(lines[2], "25,000 (") {
		t.Fatalf("sizing text:\n%s", got)
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Duration(1234), "1.23 µs"}, {Duration(2.5e9), "2.5 s"}, {Duration(999), "999 ns"},
		{Number(123456), "123k"}, {Number(2.5e6), "2.5M"}, {Number(42), "42"}, {Number(0.5), "0.5"}, {Number(8881.7), "8882"}, {Number(12.34), "12.3"},
		{Count(7_449), "7,400"}, {Count(123_456), "120,000"}, {Count(40_000), "40,000"}, {Count(100), "100"}, {Count(7.4), "7"}, {Count(1_999_999), "2,000,000"},
		{Percent(0.0042), "0.42%"}, {Percent(0.125), "12%"}, {Percent(0.05), "5%"},
		{budgetName(Budget(time.Minute)), "6 s"}, {budgetName(Budget(10 * time.Second)), "1 s"},
		{intervalName(time.Minute), "1m"}, {intervalName(30 * time.Second), "30s"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestSplitNotes(t *testing.T) {
	body, raw := SplitNotes("<!-- notes for: results/raw-1.txt -->\nThe pass is slow.\n")
	if raw != "results/raw-1.txt" || body != "The pass is slow.\n" {
		t.Errorf("SplitNotes = %q, %q", body, raw)
	}
	if body, raw := SplitNotes("The pass is slow.\n"); raw != "" || body != "The pass is slow.\n" {
		t.Errorf("notes without a marker: %q, %q", body, raw)
	}
}

func TestReplaceDocBlock(t *testing.T) {
	src := "// Package x.\n//\n" + DocMarker + "\n//\n//\told line 1\n//\told line 2\n//\n// More.\npackage x\n"
	out, err := ReplaceDocBlock(src, "store  1m\nmem    > 40,000")
	if err != nil {
		t.Fatal(err)
	}
	want := "// Package x.\n//\n" + DocMarker + "\n//\n//\tstore  1m\n//\tmem    > 40,000\n//\n// More.\npackage x\n"
	if out != want {
		t.Fatalf("ReplaceDocBlock:\n%s\nwant:\n%s", out, want)
	}
	if got := DocBlock(out); got != "store  1m\nmem    > 40,000" {
		t.Errorf("DocBlock = %q", got)
	}
	if _, err := ReplaceDocBlock("// Package x.\npackage x\n", "t"); err == nil {
		t.Error("a file without the marker was rewritten")
	}
}

// TestOnePassMeasured: a run with only the idle pass (the runs before
// bench.Run) answers from it, and says so; one with neither answers nothing.
func TestOnePassMeasured(t *testing.T) {
	var b strings.Builder
	b.WriteString("pkg: example.com/old\n")
	for _, n := range sizes {
		fmt.Fprintf(&b, "BenchmarkStore/Pass/idle/presets=%.0f-2\t10\t%.0f ns/op\n", n, 1e5*n)
		fmt.Fprintf(&b, "BenchmarkStore/Pass/idle/presets=%.0f-2\t10\t%.0f ns/op\n", n, 1.1e5*n)
	}
	rs, err := Parse(strings.NewReader(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	s := Sizings(Suite(rs))
	if len(s) != 1 {
		t.Fatalf("sizings = %+v", s)
	}
	a := s[0].Answer("", float64(time.Second), DefaultMaxExtrapolation)
	if a.Missing != "" || a.Only != "idle pass only: the churn pass was not measured" || math.Abs(a.N-9_500)/9_500 > 0.05 {
		t.Fatalf("answer = %+v, want ≈ 9,500 from the idle pass alone, marked", a)
	}
	if got := AnswerText(a); !strings.HasSuffix(got, "(idle pass only: the churn pass was not measured)") {
		t.Errorf("AnswerText = %q", got)
	}
	text := SizingText(rs, Options{})
	if !strings.Contains(text, "*") || !strings.HasSuffix(text, "* idle pass only: the churn pass was not measured.") {
		t.Errorf("SizingText does not mark the one-pass answers:\n%s", text)
	}
	if a := (Sizing{Errs: map[string]string{"idle": "not measured", "churn": "not measured"}}).Answer("", 1, 4); a.Missing == "" {
		t.Errorf("no pass measured: %+v", a)
	}
}

// TestTargets: a ratio target and an absolute one, each met and missed, and
// one not measured, as the report's Targets table shows them.
func TestTargets(t *testing.T) {
	const out = `pkg: github.com/prebuildkit/prebuildkit/pgstore
BenchmarkStore/Claim/impl=two-step-2	 100	 3000000 ns/op
BenchmarkStore/Claim/impl=one-statement-2	 100	 1000000 ns/op
BenchmarkStoreRTT500us/Claim/impl=two-step-2	 100	 3000000 ns/op
BenchmarkStoreRTT500us/Claim/impl=one-statement-2	 100	 2000000 ns/op
BenchmarkStore/Refill/presets=10000-2	 300	 30000000 ns/op	 59000 interval-p99-ms	 40.5 p99-ms
pkg: github.com/prebuildkit/prebuildkit/memstore
BenchmarkStore/Refill/presets=10000-2	 300	 30000000 ns/op	 59000 interval-p99-ms	 120 p99-ms
`
	rs, err := Parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := Write(&b, rs, Options{}); err != nil {
		t.Fatal(err)
	}
	report := b.String()
	for _, want := range []string{
		"| pgstore claims/s: one-statement claim ÷ the two-step claim it replaced (their times per claim inverted) | 3.0× | ≥ 2× | met |",
		"| pgstore claims/s with ≥ 0.5 ms added per round trip: one-statement ÷ two-step | 1.5× | ≥ 2× | **missed** |",
		"| pgstore claim → refill p99 at 10,000 presets | 40.5 p99-ms | ≤ 250 p99-ms | met |",
		"| memstore claim → refill p99 at 10,000 presets | 120 p99-ms | ≤ 100 p99-ms | **missed** |",
		"| pgstore claim → refill p99 at 10,000 presets, interval-only (next tick of a 1m Interval) | 59k interval-p99-ms | — | (for comparison) |",
		"| pgstore creates: per-instance ÷ batched time (10 prebuilds) | n/a | ≥ 5× | not measured |",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		i := strings.Index(report, "## Targets")
		t.Logf("targets:\n%s", report[i:min(len(report), i+3000)])
	}
}
