package report

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
)

// Target is one capacity target of the project: a ratio of two benchmarks' medians.
type Target struct {
	Title string
	// Num and Den are benchmark names; the ratio is Num's median over
	// Den's median of Unit.
	Num, Den string
	Unit     string
	// Min and Max bound the ratio (0 = unbounded).
	Min, Max float64
}

// Ratio computes the target's ratio from rs; ok is false when a benchmark
// is missing.
func (t Target) Ratio(rs *Results) (ratio float64, ok bool) {
	n, ok1 := rs.Median(t.Num, t.Unit)
	d, ok2 := rs.Median(t.Den, t.Unit)
	if !ok1 || !ok2 || d == 0 {
		return 0, false
	}
	return n / d, true
}

// Met reports whether ratio satisfies the bounds.
func (t Target) Met(ratio float64) bool {
	return (t.Min == 0 || ratio >= t.Min) && (t.Max == 0 || ratio <= t.Max)
}

func (t Target) bound() string {
	switch {
	case t.Min > 0 && t.Max > 0:
		return fmt.Sprintf("%g–%g×", t.Min, t.Max)
	case t.Min > 0:
		return fmt.Sprintf("≥ %g×", t.Min)
	case t.Max > 0:
		return fmt.Sprintf("≤ %g×", t.Max)
	}
	return "—"
}

// Targets are the capacity targets the report checks.
var Targets = []Target{
	{
		Title: "Planner: naive ÷ indexed time at 10,000 presets (10% scheduled)",
		Num:   "BenchmarkPlan/impl=naive/presets=10000", Den: "BenchmarkPlan/impl=indexed/presets=10000",
		Unit: "ns/op", Min: 100,
	},
	{
		Title: "Planner: naive ÷ indexed time at 10,000 presets, no schedules",
		Num:   "BenchmarkPlanUnscheduled/impl=naive/presets=10000", Den: "BenchmarkPlanUnscheduled/impl=indexed/presets=10000",
		Unit: "ns/op", Min: 100,
	},
	{
		Title: "pgstore snapshot ÷ plain table scan at 10,000 presets",
		Num:   "BenchmarkSnapshot/store=pg/presets=10000", Den: "BenchmarkSnapshot/store=pgscan/presets=10000",
		Unit: "ns/op", Max: 3,
	},
	{
		Title: "pgstore creates: per-instance ÷ batched time (10 prebuilds)",
		Num:   "BenchmarkCreatePrebuilds/store=pg/mode=per-instance", Den: "BenchmarkCreatePrebuilds/store=pg/mode=batched",
		Unit: "ns/op", Min: 5,
	},
	{
		Title: "pgstore creates with ≥ 0.5 ms added per round trip: per-instance ÷ batched time",
		Num:   "BenchmarkCreatePrebuilds/store=pg-rtt500us/mode=per-instance", Den: "BenchmarkCreatePrebuilds/store=pg-rtt500us/mode=batched",
		Unit: "ns/op", Min: 5,
	},
	{
		Title: "pgstore cold fill: creates/s at MaxConcurrency 8 ÷ 1",
		Num:   "BenchmarkReconcileCold/store=pg/concurrency=8", Den: "BenchmarkReconcileCold/store=pg/concurrency=1",
		Unit: "creates/s",
	},
}

// Section is one table of the report: every benchmark whose name starts
// with Prefix + "/".
type Section struct {
	Title, Prefix, About string
}

// Sections are the report's tables, in order.
var Sections = []Section{
	{"Planner", "BenchmarkPlan", "PlanAll (index + plan) against the naive per-preset scan, same snapshot; 5 running prebuilds per preset, 10% of presets scheduled, 5% backing off."},
	{"Planner without schedules", "BenchmarkPlanUnscheduled", "The same without schedules: indexing and planning alone."},
	{"Schedule evaluation", "BenchmarkDesiredAt", "One scheduled preset's desired count (two cron schedules), paid per scheduled preset per pass."},
	{"Snapshot", "BenchmarkSnapshot", "One snapshot under the reconciliation lock; pgscan is the floor: every row of the same tables read into memory."},
	{"Steady-state pass", "BenchmarkReconcileSteady", "ReconcileAll with nothing to do (lock, snapshot, plan): the latency every replica pays each Interval. allocs/op is per pass."},
	{"Cold fill", "BenchmarkReconcileCold", "One ReconcileAll filling 1,000 empty pools of 10 (10,000 creates), by executor MaxConcurrency."},
	{"Batched creates", "BenchmarkCreatePrebuilds", "10 prebuilds of one preset per op: one CreatePrebuilds call (one statement) or ten. pg-rtt500us is the same server with every client write delayed 0.5 ms (≥ 0.5 ms more per round trip), as across a network."},
	{"Per-row cost of creates", "BenchmarkCreatePrebuildsSchema", "Marginal cost of one more prebuild in a pgstore CreatePrebuilds call (ns/prebuild, from alternating calls of 1 and 10 prebuilds) and the cost of a 1-prebuild call (ns/call): on the migrated schema, and with the three foreign keys to the catalogue that migration 0002 dropped put back."},
	{"Claims", "BenchmarkClaim", "Concurrent claims (b.RunParallel, GOMAXPROCS goroutines) from pools of 10."},
	{"memstore footprint", "BenchmarkMemstoreFootprint", "Live heap of a seeded memstore per instance (its builds, indexes and the presets' share included)."},
}

// Machine describes where the numbers were taken.
type Machine struct {
	Date, CPU, Cores, RAM, GoVersion, Postgres, Load string
}

// Options are the rest of the report's inputs.
type Options struct {
	Machine Machine
	// Command reproduces the run.
	Command string
	// Raw names the raw output files, for reference.
	Raw []string
	// Chart is the chart's path relative to the report, "" for none.
	Chart string
	// Notes is appended verbatim under "Analysis" when not empty.
	Notes string
}

// Write renders the report as Markdown.
func Write(w io.Writer, rs *Results, o Options) error {
	var b strings.Builder
	b.WriteString("# prebuildkit capacity report\n\n")
	b.WriteString("Generated by `bench/cmd/benchreport` from `go test -bench` output; medians over the `-count` runs, ")
	b.WriteString("± is the largest deviation of a run from the median. Compare runs with `benchstat`.\n\n")

	b.WriteString("## Machine\n\n| | |\n|---|---|\n")
	m := o.Machine
	for _, kv := range [][2]string{
		{"date", m.Date}, {"CPU", m.CPU}, {"cores", m.Cores}, {"RAM", m.RAM},
		{"Go", m.GoVersion}, {"PostgreSQL", m.Postgres}, {"load average at start", m.Load},
	} {
		if kv[1] != "" {
			fmt.Fprintf(&b, "| %s | %s |\n", kv[0], escape(kv[1]))
		}
	}
	if o.Command != "" {
		fmt.Fprintf(&b, "\nReproduce:\n\n```sh\n%s\n```\n", o.Command)
	}
	if len(o.Raw) > 0 {
		fmt.Fprintf(&b, "\nRaw output: %s.\n", "`"+strings.Join(o.Raw, "`, `")+"`")
	}

	b.WriteString("\n## Targets\n\n| target | ratio | bound | verdict |\n|---|---:|---:|---|\n")
	for _, t := range Targets {
		ratio, ok := t.Ratio(rs)
		switch {
		case !ok:
			fmt.Fprintf(&b, "| %s | n/a | %s | not measured |\n", t.Title, t.bound())
		case t.Min == 0 && t.Max == 0:
			fmt.Fprintf(&b, "| %s | %.2f× | %s | (scaling, no target) |\n", t.Title, ratio, t.bound())
		default:
			verdict := "met"
			if !t.Met(ratio) {
				verdict = "**missed**"
			}
			fmt.Fprintf(&b, "| %s | %.1f× | %s | %s |\n", t.Title, ratio, t.bound(), verdict)
		}
	}

	if o.Chart != "" {
		fmt.Fprintf(&b, "\n## Pass latency\n\n![steady-state pass latency by preset count](%s)\n", o.Chart)
	}

	for _, s := range Sections {
		names := matching(rs, s.Prefix)
		if len(names) == 0 {
			continue
		}
		fmt.Fprintf(&b, "\n## %s\n\n%s\n\n", s.Title, s.About)
		units := extraUnits(rs, names)
		b.WriteString("| benchmark | time/op | ± |")
		for _, u := range units {
			fmt.Fprintf(&b, " %s |", u)
		}
		b.WriteString(" B/op | allocs/op |\n|---|---:|---:|")
		for range units {
			b.WriteString("---:|")
		}
		b.WriteString("---:|---:|\n")
		for _, name := range names {
			r := rs.Get(name)
			ns, _ := r.Median("ns/op")
			fmt.Fprintf(&b, "| %s | %s | %.0f%% |", strings.TrimPrefix(name, s.Prefix+"/"), Duration(ns), r.Spread("ns/op"))
			for _, u := range units {
				if v, ok := r.Median(u); ok {
					fmt.Fprintf(&b, " %s |", Number(v))
				} else {
					b.WriteString(" |")
				}
			}
			for _, u := range []string{"B/op", "allocs/op"} {
				if v, ok := r.Median(u); ok {
					fmt.Fprintf(&b, " %s |", Number(v))
				} else {
					b.WriteString(" |")
				}
			}
			b.WriteString("\n")
		}
	}

	if strings.TrimSpace(o.Notes) != "" {
		fmt.Fprintf(&b, "\n## Analysis\n\n%s\n", strings.TrimSpace(o.Notes))
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("report: write: %w", err)
	}
	return nil
}

// matching returns the names under prefix (exactly prefix + "/..."), in the
// order first seen.
func matching(rs *Results, prefix string) []string {
	var out []string
	for _, n := range rs.Names() {
		if strings.HasPrefix(n, prefix+"/") {
			out = append(out, n)
		}
	}
	return out
}

// extraUnits lists the units other than the standard three, sorted.
func extraUnits(rs *Results, names []string) []string {
	seen := map[string]bool{}
	for _, n := range names {
		for u := range rs.Get(n).Samples {
			switch u {
			case "ns/op", "B/op", "allocs/op":
			default:
				seen[u] = true
			}
		}
	}
	units := make([]string, 0, len(seen))
	for u := range seen {
		units = append(units, u)
	}
	sort.Strings(units)
	return units
}

// Duration formats nanoseconds with a unit that keeps 3 significant digits.
func Duration(ns float64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%.3g s", ns/1e9)
	case ns >= 1e6:
		return fmt.Sprintf("%.3g ms", ns/1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.3g µs", ns/1e3)
	}
	return fmt.Sprintf("%.3g ns", ns)
}

// Number formats a metric with 3 significant digits and a k/M suffix.
func Number(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return fmt.Sprintf("%.3gM", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.3gk", v/1e3)
	case a >= 100 || a == math.Trunc(a):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

func escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
