package report

import (
	"regexp"
	"strconv"
	"strings"
)

// SuiteRow is one result of bench.Run, named by store, group and parameter.
type SuiteRow struct {
	// Store labels the store: the package, and the variant when the
	// benchmark function is not BenchmarkStore (pgstore's
	// BenchmarkStoreRTT500us is "pgstore RTT500us").
	Store string
	// Group is "Snapshot", "Pass/idle", "Pass/churn", "Pass/targeted",
	// "ColdFill", "Claim", "CreatePrebuilds", "Refill" or "Shards".
	Group string
	// Param is the last element ("presets=1000", "concurrency=8",
	// "impl=tx", "mode=batched"; "presets=50000/replicas=2" for Shards),
	// "" for a plain Claim; N the number of the last element when it has
	// one.
	Param string
	N     int
	*Result
}

// suiteName matches the names bench.Run gives its sub-benchmarks, after
// the benchmark function (and any sub-benchmarks the caller wrapped it in).
var suiteName = regexp.MustCompile(`^(Benchmark[^/]*(?:/[^/]+)*?)/` +
	`(Snapshot|Pass/idle|Pass/churn|Pass/targeted|ColdFill|Claim|CreatePrebuilds|Refill|Shards/presets=[0-9]+)` +
	`(?:/((?:presets|concurrency|impl|mode|replicas)=[^/]+))?$`)

// suiteParams are the parameters each group takes ("" for none).
var suiteParams = map[string]string{
	"Snapshot": "presets", "Pass/idle": "presets", "Pass/churn": "presets", "Pass/targeted": "presets",
	"ColdFill": "concurrency", "Claim": "impl", "CreatePrebuilds": "mode", "Refill": "presets",
	"Shards": "replicas",
}

// Suite returns the results of bench.Run in rs, in the order first seen.
func Suite(rs *Results) []SuiteRow {
	var rows []SuiteRow
	for _, id := range rs.Names() {
		if row, ok := suiteRow(rs.Get(id)); ok {
			rows = append(rows, row)
		}
	}
	return rows
}

func suiteRow(r *Result) (SuiteRow, bool) {
	m := suiteName.FindStringSubmatch(r.Name)
	if m == nil {
		return SuiteRow{}, false
	}
	fn, group, param := m[1], m[2], m[3]
	fleet := "" // Shards/presets=N: the fleet of every replica count
	if rest, ok := strings.CutPrefix(group, "Shards/"); ok {
		group, fleet = "Shards", rest
	}
	key, value, _ := strings.Cut(param, "=")
	switch {
	case param == "" && group != "Claim":
		return SuiteRow{}, false
	case param != "" && key != suiteParams[group]:
		return SuiteRow{}, false
	}
	row := SuiteRow{Store: storeLabel(r.Pkg, fn), Group: group, Param: param, Result: r}
	if fleet != "" {
		row.Param = fleet + "/" + param
	}
	if n, err := strconv.Atoi(value); err == nil {
		row.N = n
	}
	return row, true
}

// storeLabel names the store of the results of benchmark function fn (with
// the sub-benchmarks above bench.Run's) in package pkg.
func storeLabel(pkg, fn string) string {
	top, rest, _ := strings.Cut(fn, "/")
	variant := strings.TrimPrefix(strings.TrimPrefix(top, "Benchmark"), "Store")
	if rest != "" {
		variant = strings.TrimSpace(variant + " " + rest)
	}
	if pkg == "" {
		pkg = "store"
	}
	if variant == "" {
		return pkg
	}
	return pkg + " " + variant
}

// Stores returns the store labels of rows in the order first seen.
func Stores(rows []SuiteRow) []string {
	var out []string
	seen := map[string]bool{}
	for _, r := range rows {
		if !seen[r.Store] {
			seen[r.Store] = true
			out = append(out, r.Store)
		}
	}
	return out
}
