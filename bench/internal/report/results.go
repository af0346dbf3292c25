// Package report turns `go test -bench` output into the capacity-planning
// report (bench/REPORT.md) and its pass-latency chart. It is the engine of
// bench/cmd/benchreport; it is not API.
package report

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Result is every sample of one benchmark, by unit ("ns/op",
// "creates/s", ...), one sample per -count run.
type Result struct {
	// Name is the full benchmark name without the GOMAXPROCS suffix, e.g.
	// "BenchmarkPlan/impl=naive/presets=10000".
	Name    string
	Samples map[string][]float64
}

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

// Spread returns the largest relative deviation of a sample of unit from
// the median, in percent (benchstat's ± column is a confidence interval;
// this is the simpler min/max spread).
func (r *Result) Spread(unit string) float64 {
	m, ok := r.Median(unit)
	if !ok || m == 0 {
		return 0
	}
	worst := 0.0
	for _, v := range r.Samples[unit] {
		d := (v - m) / m * 100
		if d < 0 {
			d = -d
		}
		worst = max(worst, d)
	}
	return worst
}

// Results are parsed benchmark results with the configuration lines
// ("goos: linux", "cpu: ...") of the output.
type Results struct {
	Config map[string]string
	byName map[string]*Result
	order  []string
}

// Get returns the result named name, or nil.
func (rs *Results) Get(name string) *Result { return rs.byName[name] }

// Names returns the benchmark names in the order first seen.
func (rs *Results) Names() []string { return slices.Clone(rs.order) }

// Median is Get(name).Median(unit), false when the benchmark is missing.
func (rs *Results) Median(name, unit string) (float64, bool) {
	r := rs.Get(name)
	if r == nil {
		return 0, false
	}
	return r.Median(unit)
}

// Parse reads `go test -bench` output. Result lines are
// "BenchmarkX-P  N  v1 unit1  v2 unit2 ..."; configuration lines are
// "key: value" with a lowercase key and no spaces. Everything else (test
// logs, PASS, ok) is ignored. A malformed result line is an error.
func Parse(r io.Reader) (*Results, error) {
	rs := &Results{Config: map[string]string{}, byName: map[string]*Result{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	line := 0
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
			name := trimProcs(fields[0])
			res := rs.byName[name]
			if res == nil {
				res = &Result{Name: name, Samples: map[string][]float64{}}
				rs.byName[name] = res
				rs.order = append(rs.order, name)
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
