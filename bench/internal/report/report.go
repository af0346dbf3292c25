package report

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
)

// Target is one capacity target of the project: a ratio of two benchmarks'
// medians, or, without Den, one benchmark's median.
type Target struct {
	Title string
	// Num and Den are benchmark IDs (Result.ID); the ratio is Num's median
	// over Den's median of Unit. With Den empty the figure is Num's median
	// itself, in Unit.
	Num, Den string
	Unit     string
	// Min and Max bound the figure (0 = unbounded).
	Min, Max float64
}

// Ratio computes the target's figure from rs; ok is false when a benchmark
// is missing.
func (t Target) Ratio(rs *Results) (ratio float64, ok bool) {
	n, ok1 := rs.Median(t.Num, t.Unit)
	if t.Den == "" {
		return n, ok1
	}
	d, ok2 := rs.Median(t.Den, t.Unit)
	if !ok1 || !ok2 || d == 0 {
		return 0, false
	}
	return n / d, true
}

// format shows a figure of the target: a ratio, or a value in Unit.
func (t Target) format(v float64, ratioDigits int) string {
	if t.Den == "" {
		return Number(v) + " " + t.Unit
	}
	return fmt.Sprintf("%.*f×", ratioDigits, v)
}

// Met reports whether ratio satisfies the bounds.
func (t Target) Met(ratio float64) bool {
	return (t.Min == 0 || ratio >= t.Min) && (t.Max == 0 || ratio <= t.Max)
}

func (t Target) bound() string {
	unit := "×"
	if t.Den == "" {
		unit = " " + t.Unit
	}
	switch {
	case t.Min > 0 && t.Max > 0:
		return fmt.Sprintf("%g–%g%s", t.Min, t.Max, unit)
	case t.Min > 0:
		return fmt.Sprintf("≥ %g%s", t.Min, unit)
	case t.Max > 0:
		return fmt.Sprintf("≤ %g%s", t.Max, unit)
	}
	return "—"
}

// Targets are the capacity targets the report checks.
var Targets = []Target{
	{
		Title: "Planner: naive ÷ indexed time at 10,000 presets (10% scheduled)",
		Num:   "bench:BenchmarkPlan/impl=naive/presets=10000", Den: "bench:BenchmarkPlan/impl=indexed/presets=10000",
		Unit: "ns/op", Min: 100,
	},
	{
		Title: "Planner: naive ÷ indexed time at 10,000 presets, no schedules",
		Num:   "bench:BenchmarkPlanUnscheduled/impl=naive/presets=10000", Den: "bench:BenchmarkPlanUnscheduled/impl=indexed/presets=10000",
		Unit: "ns/op", Min: 100,
	},
	{
		Title: "pgstore snapshot ÷ plain table scan at 10,000 presets",
		Num:   "pgstore:BenchmarkStore/Snapshot/presets=10000", Den: "pgstore:BenchmarkSnapshotFloor/presets=10000",
		Unit: "ns/op", Max: 3,
	},
	{
		Title: "pgstore creates: per-instance ÷ batched time (10 prebuilds)",
		Num:   "pgstore:BenchmarkStore/CreatePrebuilds/mode=per-instance", Den: "pgstore:BenchmarkStore/CreatePrebuilds/mode=batched",
		Unit: "ns/op", Min: 5,
	},
	{
		Title: "pgstore creates with ≥ 0.5 ms added per round trip: per-instance ÷ batched time",
		Num:   "pgstore:BenchmarkStoreRTT500us/CreatePrebuilds/mode=per-instance", Den: "pgstore:BenchmarkStoreRTT500us/CreatePrebuilds/mode=batched",
		Unit: "ns/op", Min: 5,
	},
	{
		Title: "pgstore claims/s: one-statement claim ÷ the two-step claim it replaced (their times per claim inverted)",
		Num:   "pgstore:BenchmarkStore/Claim/impl=two-step", Den: "pgstore:BenchmarkStore/Claim/impl=one-statement",
		Unit: "ns/op", Min: 2,
	},
	{
		Title: "pgstore claims/s with ≥ 0.5 ms added per round trip: one-statement ÷ two-step",
		Num:   "pgstore:BenchmarkStoreRTT500us/Claim/impl=two-step", Den: "pgstore:BenchmarkStoreRTT500us/Claim/impl=one-statement",
		Unit: "ns/op", Min: 2,
	},
	{
		Title: "memstore claim → refill p99 at 10,000 presets",
		Num:   "memstore:BenchmarkStore/Refill/presets=10000", Unit: "p99-ms", Max: 100,
	},
	{
		Title: "pgstore claim → refill p99 at 10,000 presets",
		Num:   "pgstore:BenchmarkStore/Refill/presets=10000", Unit: "p99-ms", Max: 250,
	},
	{
		Title: "pgstore claim → refill p99 at 10,000 presets, interval-only (next tick of a 1m Interval)",
		Num:   "pgstore:BenchmarkStore/Refill/presets=10000", Unit: "interval-p99-ms",
	},
	{
		Title: "pgstore sharded cycle at 50,000 presets: 1 replica ÷ 2 replicas (time)",
		Num:   "pgstore:BenchmarkStore/Shards/presets=50000/replicas=1", Den: "pgstore:BenchmarkStore/Shards/presets=50000/replicas=2",
		Unit: "ns/op",
	},
	{
		Title: "pgstore cold fill: creates/s at MaxConcurrency 8 ÷ 1",
		Num:   "pgstore:BenchmarkStore/ColdFill/concurrency=8", Den: "pgstore:BenchmarkStore/ColdFill/concurrency=1",
		Unit: "creates/s",
	},
}

// Section is one table of the report: the results of one group of
// bench.Run for every store (Group), or every benchmark whose ID starts
// with Prefix + "/".
type Section struct {
	Title, About  string
	Group, Prefix string
}

// Sections are the report's tables, in order.
var Sections = []Section{
	{Title: "Snapshot", Group: "Snapshot", About: "One snapshot under the reconciliation lock of a balanced fleet (bench.SteadyFleet: 5 running prebuilds per preset, history to skip)."},
	{Title: "Idle pass", Group: "Pass/idle", About: "ReconcileAll with nothing to do (lock, snapshot, plan): the cost every replica pays each Interval. allocs/op is per pass."},
	{Title: "Churn pass", Group: "Pass/churn", About: "ReconcileAll where 5% of the presets need one create and another 5% one delete."},
	{Title: "Targeted pass", Group: "Pass/targeted", About: "ReconcilePresets of the one preset a user has just claimed from: the refill after a claim. presets/pass is the size of the snapshot it read (1 when the store filters by SnapshotParams.Presets)."},
	{Title: "Cold fill", Group: "ColdFill", About: "One ReconcileAll filling 1,000 empty pools of 10 (10,000 creates), by executor MaxConcurrency."},
	{Title: "Claims", Group: "Claim", About: "Concurrent claims (b.RunParallel, GOMAXPROCS goroutines) from pools of 10."},
	{Title: "Claim → refill", Group: "Refill", About: "Claim → replacement create committed, on the real clock, with two Reconcilers (Run) following the store's change feed: time/op is the mean, p50-ms and p99-ms its quantiles, TriggerDelay (25 ms) included; each claim is made once both replicas are quiet. Stores without a change feed skip it. interval-p50-ms and interval-p99-ms are the interval-only figures beside it: Interval/2 and 0.99 × Interval (the wait for the next tick of a claim that comes at random) plus a timed full pass."},
	{Title: "Sharded cycle", Group: "Shards", About: "One full cycle of a sharded deployment (Config.Shards = Harness.Shards, 4 by default) over a balanced fleet (Harness.ShardPresets, 50,000 by default; the count is in each row): 1, 2 or 4 replicas, each on its own handle, run ReconcileAll at once; time/op is the time until all have returned, every shard passed. shard-passes/cycle above the shard count is work done twice: a replica that reaches a shard just after another released it passes it again. The replicas and the database share the machine's cores."},
	{Title: "Batched creates", Group: "CreatePrebuilds", About: "10 prebuilds of one preset per op: one CreatePrebuilds call or ten. pgstore RTT500us is the same server with every client write delayed 0.5 ms (≥ 0.5 ms more per round trip), as across a network."},
	{Title: "Planner", Prefix: "bench:BenchmarkPlan", About: "PlanAll (index + plan) against the naive per-preset scan, same snapshot; 5 running prebuilds per preset, 10% of presets scheduled, 5% backing off."},
	{Title: "Planner without schedules", Prefix: "bench:BenchmarkPlanUnscheduled", About: "The same without schedules: indexing and planning alone."},
	{Title: "Schedule evaluation", Prefix: "bench:BenchmarkDesiredAt", About: "One scheduled preset's desired count (two cron schedules), paid per scheduled preset per pass."},
	{Title: "pgstore snapshot floor", Prefix: "pgstore:BenchmarkSnapshotFloor", About: "Every row of the tables a snapshot reads, read into memory without filtering (pgfleet.ScanTables): the floor of pgstore's Snapshot."},
	{Title: "Per-row cost of creates", Prefix: "pgstore:BenchmarkCreatePrebuildsSchema", About: "Marginal cost of one more prebuild in a pgstore CreatePrebuilds call (ns/prebuild, from alternating calls of 1 and 10 prebuilds) and the cost of a 1-prebuild call (ns/call): on the migrated schema, and with the three foreign keys to the catalogue that migration 0002 dropped put back."},
	{Title: "memstore footprint", Prefix: "memstore:BenchmarkFootprint", About: "Live heap of a seeded memstore per instance (its builds, indexes and the presets' share included)."},
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
	// Notes is appended verbatim under "Analysis" when not empty. NotesFor
	// is the raw output the notes were written for ("" when they do not
	// say); when it is not one of Raw the report says so above them.
	Notes, NotesFor string
	// Partial, when not empty, says why this is not a full run (a filter,
	// fewer runs): the report then carries a warning at the top.
	Partial string
	// ExamplePresets and ExampleTemplatePrebuilds describe the worked
	// example's fleet and its largest template. Default 3,000 and 1,500.
	ExamplePresets, ExampleTemplatePrebuilds int
	// MaxExtrapolation bounds how far above the largest measured preset
	// count the sizing table answers. Default DefaultMaxExtrapolation.
	MaxExtrapolation float64
}

func (o Options) withDefaults() Options {
	if o.ExamplePresets <= 0 {
		o.ExamplePresets = 3_000
	}
	if o.ExampleTemplatePrebuilds <= 0 {
		o.ExampleTemplatePrebuilds = 1_500
	}
	if o.MaxExtrapolation <= 1 {
		o.MaxExtrapolation = DefaultMaxExtrapolation
	}
	return o
}

// Write renders the report as Markdown.
func Write(w io.Writer, rs *Results, o Options) error {
	o = o.withDefaults()
	rows := Suite(rs)
	var b strings.Builder
	b.WriteString("# prebuildkit capacity report\n\n")
	if o.Partial != "" {
		fmt.Fprintf(&b, "> **Partial run** (%s): a scratch report, not the project's. Figures from a filtered or short run are not comparable with a full one.\n\n", o.Partial)
	}
	fmt.Fprintf(&b, "Generated by `bench/cmd/benchreport` from `go test -bench` output; medians over the `-count` runs, "+
		"± is the largest deviation of a run from the median, shown only with at least %d runs. Compare runs with `benchstat`.\n\n", MinSpreadRuns)

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

	sizings := Sizings(rows)
	writeSizing(&b, sizings, o)
	if o.Chart != "" {
		fmt.Fprintf(&b, "\n![idle and churn pass time by preset count, with the pass budgets of 1m, 30s and 10s intervals](%s)\n", o.Chart)
	}
	writeExample(&b, rows, sizings, o)

	b.WriteString("\n## Targets\n\n| target | measured | bound | verdict |\n|---|---:|---:|---|\n")
	for _, t := range Targets {
		ratio, ok := t.Ratio(rs)
		switch {
		case !ok:
			fmt.Fprintf(&b, "| %s | n/a | %s | not measured |\n", t.Title, t.bound())
		case t.Min == 0 && t.Max == 0 && t.Den == "":
			fmt.Fprintf(&b, "| %s | %s | %s | (for comparison) |\n", t.Title, t.format(ratio, 2), t.bound())
		case t.Min == 0 && t.Max == 0:
			fmt.Fprintf(&b, "| %s | %s | %s | (scaling, no target) |\n", t.Title, t.format(ratio, 2), t.bound())
		default:
			verdict := "met"
			if !t.Met(ratio) {
				verdict = "**missed**"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.Title, t.format(ratio, 1), t.bound(), verdict)
		}
	}

	for _, s := range Sections {
		writeSection(&b, rs, rows, s)
	}

	if strings.TrimSpace(o.Notes) != "" {
		b.WriteString("\n## Analysis\n\n")
		if o.NotesFor != "" && !slices.Contains(o.Raw, o.NotesFor) {
			fmt.Fprintf(&b, "> Written by hand for the run `%s`, not for the figures above: where the two differ, the figures above are the ones measured.\n\n", o.NotesFor)
		}
		fmt.Fprintf(&b, "%s\n", strings.TrimSpace(o.Notes))
	}
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("report: write: %w", err)
	}
	return nil
}

// writeSizing writes the sizing table.
func writeSizing(b *strings.Builder, sizings []Sizing, o Options) {
	b.WriteString("\n## Sizing: presets per replica\n\n")
	if len(sizings) == 0 {
		b.WriteString("No idle or churn pass was measured in this run.\n")
		return
	}
	fmt.Fprintf(b, "Every pass holds the reconciliation lock, and a replica that needs longer than `Config.Interval` "+
		"falls behind; keep a pass under %.0f%% of the interval, which leaves room for targeted passes after claims, "+
		"a roll-out and a bad day. The table gives, per store, the largest preset count whose pass stays under "+
		"%s, %s and %s: %.0f%% of a %s, %s and %s interval. ",
		Headroom*100, budgetName(Budget(Intervals[0])), budgetName(Budget(Intervals[1])), budgetName(Budget(Intervals[2])),
		Headroom*100, intervalName(Intervals[0]), intervalName(Intervals[1]), intervalName(Intervals[2]))
	fmt.Fprintf(b, "*idle* is a pass with nothing to do, *churn* one where 5%% of the presets need a create and 5%% a delete; "+
		"both must fit, so the answer is the smaller of the two. Each figure comes from a least-squares fit of "+
		"ln(time) on ln(presets) over every run of the pass (time ∝ presets^k; k ± its 95%% confidence interval; "+
		"*scatter* is e^(residual standard error): a single pass is typically within that factor of the line). "+
		"In parentheses, the 95%% prediction band: where the upper and the lower bound of a single pass's "+
		"expected time reach the budget; the first is the cautious figure. The fit is trusted from the smallest "+
		"measured count up to %g× the largest: beyond that the table says \"more than\" and gives no number "+
		"(measure larger fleets with `-bench.presets`). Fleets have 5 running prebuilds per preset "+
		"(`bench.SteadyFleet`); scale by your ratio.\n\n", o.MaxExtrapolation)
	b.WriteString("| store | pass | k | scatter | measured |")
	for _, d := range Intervals {
		fmt.Fprintf(b, " %s: ≤ %s |", intervalName(d), budgetName(Budget(d)))
	}
	b.WriteString("\n|---|---|---:|---:|---|")
	for range Intervals {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, s := range sizings {
		for _, kind := range SizingKinds {
			f, ok := s.Fits[kind]
			if !ok {
				fmt.Fprintf(b, "| %s | %s | | | %s |", s.Store, kind, s.Errs[kind])
				for range Intervals {
					b.WriteString(" — |")
				}
				b.WriteString("\n")
				continue
			}
			fmt.Fprintf(b, "| %s | %s | %.2f ± %.2f | ×%.2f | %s–%s (%d runs) |", s.Store, kind, f.K,
				tQuantile975(f.Points-2)*f.SEK, math.Exp(f.RSE), Count(f.MinN), Count(f.MaxN), f.Points)
			for _, d := range Intervals {
				fmt.Fprintf(b, " %s |", AnswerText(f.Within(float64(Budget(d).Nanoseconds()), o.MaxExtrapolation)))
			}
			b.WriteString("\n")
		}
		fmt.Fprintf(b, "| **%s** | **both** | | | |", s.Store)
		for _, d := range Intervals {
			fmt.Fprintf(b, " **%s** |", AnswerText(s.Answer("", float64(Budget(d).Nanoseconds()), o.MaxExtrapolation)))
		}
		b.WriteString("\n")
	}
}

// writeExample writes the worked example: a fleet of ExamplePresets.
func writeExample(b *strings.Builder, rows []SuiteRow, sizings []Sizing, o Options) {
	if len(sizings) == 0 {
		return
	}
	n := float64(o.ExamplePresets)
	fmt.Fprintf(b, "\n## Worked example: %s presets\n\n", Count(n))
	fmt.Fprintf(b, "A fleet of %s presets of 5 prebuilds each, whose largest template has %s prebuilds. "+
		"Pass times are the fits above at %s presets (95%% prediction band in parentheses), with the share of "+
		"each interval the slower of the two takes; the roll-out of the largest template (a new active version recreates "+
		"every one of its prebuilds) is its prebuilds at the store's best measured cold-fill rate: the store's "+
		"side of it only, the provisioner's build time comes on top.\n\n",
		Count(n), Count(float64(o.ExampleTemplatePrebuilds)), Count(n))
	b.WriteString("| store | idle pass | churn pass |")
	for _, d := range Intervals {
		fmt.Fprintf(b, " of %s |", intervalName(d))
	}
	b.WriteString(" cold fill | roll-out |\n|---|---:|---:|")
	for range Intervals {
		b.WriteString("---:|")
	}
	b.WriteString("---:|---:|\n")
	for _, s := range sizings {
		fmt.Fprintf(b, "| %s | %s | %s |", s.Store, predictText(s, "idle", n, o), predictText(s, "churn", n, o))
		slower := 0.0
		for _, f := range s.Fits {
			if n >= f.MinN && n <= f.MaxN*o.MaxExtrapolation {
				slower = max(slower, f.Predict(n))
			}
		}
		for _, d := range Intervals {
			if slower > 0 {
				fmt.Fprintf(b, " %s |", Percent(slower/float64(d.Nanoseconds())))
			} else {
				b.WriteString(" — |")
			}
		}
		rate, conc := bestColdFill(rows, s.Store)
		if rate > 0 {
			secs := float64(o.ExampleTemplatePrebuilds) / rate
			fmt.Fprintf(b, " %s creates/s (%s) | %s |\n", Number(rate), conc, Duration(secs*1e9))
		} else {
			b.WriteString(" not measured | — |\n")
		}
	}
}

// predictText is the fitted pass time of kind at n presets with its band.
func predictText(s Sizing, kind string, n float64, o Options) string {
	f, ok := s.Fits[kind]
	switch {
	case !ok:
		return s.Errs[kind]
	case n < f.MinN || n > f.MaxN*o.MaxExtrapolation:
		return "outside the measured range"
	}
	lo, hi := f.Band(n)
	return fmt.Sprintf("%s (%s–%s)", Duration(f.Predict(n)), Duration(lo), Duration(hi))
}

// bestColdFill is the store's highest median cold-fill rate and the
// concurrency it was measured at.
func bestColdFill(rows []SuiteRow, store string) (float64, string) {
	best, at := 0.0, ""
	for _, r := range rows {
		if r.Store != store || r.Group != "ColdFill" {
			continue
		}
		if v, ok := r.Median("creates/s"); ok && v > best {
			best, at = v, r.Param
		}
	}
	return best, at
}

// AnswerText renders an answer for a table cell.
func AnswerText(a Answer) string {
	only := ""
	if a.Only != "" {
		only = " (" + a.Only + ")"
	}
	switch {
	case a.Missing != "":
		return "— (" + a.Missing + ")"
	case a.Above():
		return fmt.Sprintf("more than %s%s", Count(a.Limit), only)
	case a.Below():
		return fmt.Sprintf("less than %s%s", Count(a.Min), only)
	}
	bound := func(v float64) string {
		switch {
		case v >= a.Limit:
			return "> " + Count(a.Limit)
		case v <= a.Min:
			return "< " + Count(a.Min)
		}
		return Count(v)
	}
	return fmt.Sprintf("%s (%s to %s)%s", Count(a.N), bound(a.Lo), bound(a.Hi), only)
}

// SizingText is the sizing answer as an aligned plain-text table, for the
// package documentation of bench: per store, the largest preset count of
// each interval (idle and churn pass both within the budget, cautious
// bound in parentheses).
func SizingText(rs *Results, o Options) string {
	o = o.withDefaults()
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "store")
	for _, d := range Intervals {
		fmt.Fprintf(tw, "\tInterval %s (pass ≤ %s)", intervalName(d), budgetName(Budget(d)))
	}
	fmt.Fprintln(tw)
	note := ""
	for _, s := range Sizings(Suite(rs)) {
		fmt.Fprint(tw, s.Store)
		for _, d := range Intervals {
			a := s.Answer("", float64(Budget(d).Nanoseconds()), o.MaxExtrapolation)
			cell := ""
			switch {
			case a.Missing != "":
				cell = "— (" + a.Missing + ")"
			case a.Above():
				cell = "> " + Count(a.Limit)
			case a.Below():
				cell = "< " + Count(a.Min)
			case a.Lo <= a.Min:
				cell = fmt.Sprintf("%s (< %s)", Count(a.N), Count(a.Min))
			default:
				cell = fmt.Sprintf("%s (%s)", Count(a.N), Count(a.Lo))
			}
			if a.Only != "" {
				cell += "*"
				note = a.Only
			}
			fmt.Fprintf(tw, "\t%s", cell)
		}
		fmt.Fprintln(tw)
	}
	if note != "" {
		fmt.Fprintf(tw, "* %s.\n", note)
	}
	_ = tw.Flush() // a strings.Builder does not fail
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// writeSection writes one table.
func writeSection(b *strings.Builder, rs *Results, rows []SuiteRow, s Section) {
	type line struct {
		label string
		r     *Result
	}
	var lines []line
	if s.Group != "" {
		// By store (in the order first seen), then by parameter value.
		order := map[string]int{}
		for i, st := range Stores(rows) {
			order[st] = i
		}
		var group []SuiteRow
		for _, row := range rows {
			if row.Group == s.Group {
				group = append(group, row)
			}
		}
		sort.SliceStable(group, func(i, j int) bool {
			if a, b := order[group[i].Store], order[group[j].Store]; a != b {
				return a < b
			}
			return group[i].N < group[j].N
		})
		for _, row := range group {
			label := row.Store
			if row.Param != "" {
				label += " " + row.Param
			}
			lines = append(lines, line{label, row.Result})
		}
	} else {
		for _, id := range rs.Names() {
			if strings.HasPrefix(id, s.Prefix+"/") {
				lines = append(lines, line{strings.TrimPrefix(id, s.Prefix+"/"), rs.Get(id)})
			}
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(b, "\n## %s\n\n%s\n\n", s.Title, s.About)
	seen := map[string]bool{}
	for _, l := range lines {
		for u := range l.r.Samples {
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
	b.WriteString("| benchmark | time/op | ± | runs |")
	for _, u := range units {
		fmt.Fprintf(b, " %s |", u)
	}
	b.WriteString(" B/op | allocs/op |\n|---|---:|---:|---:|")
	for range units {
		b.WriteString("---:|")
	}
	b.WriteString("---:|---:|\n")
	for _, l := range lines {
		ns, _ := l.r.Median("ns/op")
		spread := "—"
		if v, ok := l.r.Spread("ns/op"); ok {
			spread = fmt.Sprintf("%.0f%%", v)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %d |", l.label, Duration(ns), spread, l.r.Runs("ns/op"))
		for _, u := range append(units, "B/op", "allocs/op") {
			if v, ok := l.r.Median(u); ok {
				fmt.Fprintf(b, " %s |", Number(v))
			} else {
				b.WriteString(" |")
			}
		}
		b.WriteString("\n")
	}
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

// Count formats a preset count with 2 significant digits (the precision a
// fitted answer has) and thousands separators: 7,400; 120,000; 40.
func Count(v float64) string {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprintf("%g", v)
	}
	mag := math.Pow(10, math.Floor(math.Log10(v))-1)
	n := int64(math.Round(v/mag) * mag)
	if v < 10 {
		n = int64(math.Round(v))
	}
	s := fmt.Sprintf("%d", n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// Percent formats a share with 2 significant digits: 0.4%, 12%.
func Percent(share float64) string {
	p := share * 100
	if p >= 10 {
		return fmt.Sprintf("%.0f%%", p)
	}
	return fmt.Sprintf("%.2g%%", p)
}

func escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// notesMarker starts the first line of a notes file that names the raw
// output the notes were written for: "<!-- notes for: results/raw-X.txt -->".
const notesMarker = "<!-- notes for:"

// SplitNotes separates the first line naming the run the notes were
// written for from the notes; for is "" when there is none.
func SplitNotes(notes string) (body, forRaw string) {
	first, rest, _ := strings.Cut(notes, "\n")
	if v, ok := strings.CutPrefix(strings.TrimSpace(first), notesMarker); ok {
		if v, ok := strings.CutSuffix(v, "-->"); ok {
			return rest, strings.TrimSpace(v)
		}
	}
	return notes, ""
}

// DocMarker is the comment line of bench/doc.go after which benchreport
// -doc writes the sizing table (SizingText), as an indented block after one
// empty comment line.
const DocMarker = "// The answer of the last full run (bench/REPORT.md; scripts/bench.sh rewrites the table, do not edit it):"

// ReplaceDocBlock returns src with the indented comment block after
// DocMarker replaced by table.
func ReplaceDocBlock(src, table string) (string, error) {
	lines := strings.Split(src, "\n")
	at := -1
	for i, l := range lines {
		if l == DocMarker {
			at = i
			break
		}
	}
	if at < 0 || at+1 >= len(lines) || lines[at+1] != "//" {
		return "", fmt.Errorf("report: no line %q followed by an empty comment line", DocMarker)
	}
	end := at + 2
	for end < len(lines) && strings.HasPrefix(lines[end], "//\t") {
		end++
	}
	block := make([]string, 0, 8)
	for l := range strings.SplitSeq(table, "\n") {
		block = append(block, "//\t"+strings.TrimRight(l, " "))
	}
	out := append(slices.Clone(lines[:at+2]), block...)
	return strings.Join(append(out, lines[end:]...), "\n"), nil
}

// DocBlock returns the table ReplaceDocBlock wrote into src, "" when there
// is none.
func DocBlock(src string) string {
	_, after, ok := strings.Cut(src, DocMarker+"\n//\n")
	if !ok {
		return ""
	}
	var out []string
	for l := range strings.SplitSeq(after, "\n") {
		v, ok := strings.CutPrefix(l, "//\t")
		if !ok {
			break
		}
		out = append(out, v)
	}
	return strings.Join(out, "\n")
}
