// Package report turns `go test -bench` output into the capacity-planning
// report (bench/REPORT.md) and its pass-latency chart. It is the engine of
// bench/cmd/benchreport; it is not API.
package report

import (
	"bufio"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Result is every sample of one benchmark, by unit ("ns/op",
// "creates/s", ...), one sample per -count run.
type Result struct {
	// ID names the benchmark across packages: the last element of its
	// package's import path, a colon, and its full name without the
	// GOMAXPROCS suffix, e.g. "bench:BenchmarkPlan/impl=naive/presets=10000";
	// just the name when the output named no package.
	ID string
	// Pkg is the last element of the package's import path ("" when the
	// output named none), Name the benchmark's full name.
	Pkg, Name string
	Samples   map[string][]float64
}

// Runs is the number of samples of unit.
func (r *Result) Runs(unit string) int { return len(r.Samples[unit]) }

// Median returns the median sample of unit and whether there was one.
func (r *Result) Median(unit string) (float64, bool) {
	s := slices.Clone(r.Samples[unit])
	if len(s) == 0 {
		return 0, false
	}
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2], true
	} else {
		return (s[n/2-1] + s[n/2]) / 2, true
	}
}

// MinSpreadRuns is the number of samples a spread needs: with fewer, Spread
// reports none (one sample would read as "± 0%").
const MinSpreadRuns = 3

// Spread returns the largest relative deviation of a sample of unit from
// the median, in percent (benchstat's ± column is a confidence interval;
// this is the simpler min/max spread), and false with fewer than
// MinSpreadRuns samples.
func (r *Result) Spread(unit string) (float64, bool) {
	m, ok := r.Median(unit)
	if !ok || m == 0 || r.Runs(unit) < MinSpreadRuns {
		return 0, false
	}
	worst := 0.0
	for _, v := range r.Samples[unit] {
		d := (v - m) / m * 100
		if d < 0 {
			d = -d
		}
		worst = max(worst, d)
	}
	return worst, true
}

// Results are parsed benchmark results with the configuration lines
// ("goos: linux", "cpu: ...") of the output.
type Results struct {
	Config map[string]string
	byName map[string]*Result
	order  []string
}

// Get returns the result whose ID is id, or nil.
func (rs *Results) Get(id string) *Result { return rs.byName[id] }

// Names returns the benchmark IDs in the order first seen.
func (rs *Results) Names() []string { return slices.Clone(rs.order) }

// Median is Get(id).Median(unit), false when the benchmark is missing.
func (rs *Results) Median(id, unit string) (float64, bool) {
	r := rs.Get(id)
	if r == nil {
		return 0, false
	}
	return r.Median(unit)
}

// Parse reads `go test -bench` output, of one package or several.
// Result lines are "BenchmarkX-P  N  v1 unit1  v2 unit2 ..."; configuration
// lines are "key: value" with a lowercase key and no spaces, and "pkg: ..."
// names the package of the results that follow. Everything else (test
// logs, PASS, ok) is ignored. A malformed result line is an error. Results
// under the names package bench used before bench.Run (LegacyID) are read
// under today's IDs.
func Parse(r io.Reader) (*Results, error) {
	rs := &Results{Config: map[string]string{}, byName: map[string]*Result{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	line := 0
	pkg := ""
	for sc.Scan() {
		line++
		text := sc.Text()
		if strings.HasPrefix(text, "Benchmark") {
			fields := strings.Fields(text)
			if len(fields) < 4 || len(fields)%2 != 0 {
				continue // a name printed before its result, or a log line
			}
			if _, err := strconv.Atoi(fields[1]); err != nil {
				continue
			}
			rpkg, name := pkg, trimProcs(fields[0])
			if p, n, ok := LegacyID(pkg, name); ok {
				rpkg, name = p, n
			}
			id := name
			if rpkg != "" {
				id = rpkg + ":" + name
			}
			res := rs.byName[id]
			if res == nil {
				res = &Result{ID: id, Pkg: rpkg, Name: name, Samples: map[string][]float64{}}
				rs.byName[id] = res
				rs.order = append(rs.order, id)
			}
			for i := 2; i+1 < len(fields); i += 2 {
				v, err := strconv.ParseFloat(fields[i], 64)
				if err != nil {
					return nil, fmt.Errorf("report: line %d: value %q of %s: %w", line, fields[i], name, err)
				}
				res.Samples[fields[i+1]] = append(res.Samples[fields[i+1]], v)
			}
			continue
		}
		if key, value, ok := strings.Cut(text, ": "); ok && key != "" && !strings.ContainsAny(key, " \t") &&
			key[0] >= 'a' && key[0] <= 'z' {
			rs.Config[key] = strings.TrimSpace(value)
			if key == "pkg" {
				pkg = path.Base(strings.TrimSpace(value))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("report: read: %w", err)
	}
	return rs, nil
}

// trimProcs removes the "-N" GOMAXPROCS suffix of a benchmark name.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

// legacyNames are the names package bench gave its benchmarks before
// bench.Run (every run up to 2026-11-27), with the package and name each
// has now: the same measurement, moved next to its store.
var legacyNames = []struct {
	re        *regexp.Regexp
	pkg, name string // name is a regexp.Expand template
}{
	{regexp.MustCompile(`^BenchmarkReconcileSteady/store=mem/(presets=\d+)$`), "memstore", "BenchmarkStore/Pass/idle/$1"},
	{regexp.MustCompile(`^BenchmarkReconcileSteady/store=pg/(presets=\d+)$`), "pgstore", "BenchmarkStore/Pass/idle/$1"},
	{regexp.MustCompile(`^BenchmarkSnapshot/store=mem/(presets=\d+)$`), "memstore", "BenchmarkStore/Snapshot/$1"},
	{regexp.MustCompile(`^BenchmarkSnapshot/store=pg/(presets=\d+)$`), "pgstore", "BenchmarkStore/Snapshot/$1"},
	{regexp.MustCompile(`^BenchmarkSnapshot/store=pgscan/(presets=\d+)$`), "pgstore", "BenchmarkSnapshotFloor/$1"},
	{regexp.MustCompile(`^BenchmarkReconcileCold/store=mem/(concurrency=\d+)$`), "memstore", "BenchmarkStore/ColdFill/$1"},
	{regexp.MustCompile(`^BenchmarkReconcileCold/store=pg/(concurrency=\d+)$`), "pgstore", "BenchmarkStore/ColdFill/$1"},
	{regexp.MustCompile(`^BenchmarkCreatePrebuilds/store=mem/(mode=[a-z-]+)$`), "memstore", "BenchmarkStore/CreatePrebuilds/$1"},
	{regexp.MustCompile(`^BenchmarkCreatePrebuilds/store=pg/(mode=[a-z-]+)$`), "pgstore", "BenchmarkStore/CreatePrebuilds/$1"},
	{regexp.MustCompile(`^BenchmarkCreatePrebuilds/store=pg-rtt500us/(mode=[a-z-]+)$`), "pgstore", "BenchmarkStoreRTT500us/CreatePrebuilds/$1"},
	{regexp.MustCompile(`^BenchmarkClaim/store=mem$`), "memstore", "BenchmarkStore/Claim"},
	{regexp.MustCompile(`^BenchmarkClaim/store=pg$`), "pgstore", "BenchmarkStore/Claim"},
	{regexp.MustCompile(`^BenchmarkMemstoreFootprint/(presets=\d+)$`), "memstore", "BenchmarkFootprint/$1"},
	{regexp.MustCompile(`^BenchmarkCreatePrebuildsSchema/(schema=[a-z-]+)$`), "pgstore", "BenchmarkCreatePrebuildsSchema/$1"},
}

// LegacyID maps a result of package bench (pkg "bench", or "" for output
// without a pkg line) under a name from before bench.Run to the package
// and name it has now; ok is false for every other result.
func LegacyID(pkg, name string) (newPkg, newName string, ok bool) {
	if pkg != "bench" && pkg != "" {
		return "", "", false
	}
	for _, l := range legacyNames {
		if m := l.re.FindStringSubmatchIndex(name); m != nil {
			return l.pkg, string(l.re.ExpandString(nil, l.name, name, m)), true
		}
	}
	return "", "", false
}
