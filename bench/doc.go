// Package bench answers the capacity question a platform team brings to
// prebuildkit — how many presets can one replica reconcile at a given
// Config.Interval? — for memstore, pgstore and any other store, and
// generates the fleets it measures on. What a snapshot, a pass, a create
// and a claim do is specified in docs/spec.md; the benchmarks measure what
// that costs.
//
// # Benchmarking a store
//
// Run is the benchmark suite every store runs, as conformance.Run is the
// test suite: one constructor, written once.
//
//	func BenchmarkStore(b *testing.B) {
//		bench.Run(b, bench.Harness{
//			NewStore: func(b *testing.B) bench.Store { return mystore.New(newTestDatabase(b)) },
//		})
//	}
//
// Then, for the table, other fleet sizes (the flag goes after the package
// list), and the report with the sizing answer and the chart:
//
//	go test -run '^$' -bench . -count 6 ./mystore | tee raw.txt
//	go test -run '^$' -bench 'Store/Pass' ./mystore -bench.presets=1000,10000,50000
//	go run github.com/prebuildkit/prebuildkit/bench/cmd/benchreport@latest -out REPORT.md -chart pass.png raw.txt
//
// The sub-benchmarks (Snapshot/presets=N, Pass/idle/presets=N,
// Pass/churn/presets=N, Pass/targeted/presets=N, ColdFill/concurrency=C,
// Claim, CreatePrebuilds/mode=batched|per-instance, Refill/presets=N) are
// listed with what they measure in Run's documentation. Refill — claim →
// replacement create committed, with Reconcilers following the store's
// change feed — runs for a store that implements prebuilds.ChangeFeed and
// skips the others; Harness.Handle gives its replicas and its claims
// handles of their own (separate connection pools) on the same data. Seeding goes through the control
// plane (Seed), so it works for any store; Harness.Load is the hook for a
// faster path (pgstore clones a template database filled with COPY,
// package pgfleet). memstore/bench_test.go and pgstore/bench_test.go are
// the two callers in this repository; pgstore adds BenchmarkStoreRTT500us,
// its creates and claims with 0.5 ms more per round trip.
//
// # Sizing a deployment
//
// Every pass holds the cluster-wide reconciliation lock. Keep a pass under
// 10% of Config.Interval: 6 s at the default 1m, 3 s at 30s, 1 s at 10s;
// the rest of the interval is room for the targeted passes that refill
// pools after claims, a roll-out and a bad day, and a pass that takes
// longer than its interval makes the next one wait. The sizing answer is,
// per store, the largest preset count whose idle pass (nothing to do) and
// churn pass (5% of the presets need a create, 5% a delete) both stay
// under that budget, from a log-log least-squares fit of pass time against
// preset count over every run of the passes (bench/REPORT.md gives the
// fit's exponent, its scatter and the 95% prediction band of each answer,
// and the chart with the three budgets drawn). The fit is not trusted
// beyond 4× the largest preset count measured: "> N" below means the
// passes stay under the budget at least that far, and that larger fleets
// must be measured (-bench.presets) to say more. Fleets have 5 running
// prebuilds per preset; scale by your ratio.
//
// The answer of the last full run (bench/REPORT.md; scripts/bench.sh rewrites the table, do not edit it):
//
//	store     Interval 1m (pass ≤ 6 s)  Interval 30s (pass ≤ 3 s)  Interval 10s (pass ≤ 1 s)
//	memstore  > 40,000                  > 40,000                   > 40,000
//	pgstore   > 40,000                  > 40,000                   12,000 (8,100)
//
// In parentheses: the cautious figure, where the upper bound of the
// prediction band reaches the budget. The report also works a fleet of
// 3,000 presets through: its pass times, their share of each interval, and
// the roll-out of its largest template (a new active version recreates
// every prebuild of the template) at the store's best measured cold-fill
// rate. Beyond passes, read in the report:
//
//   - Cold fill (ColdFill, creates/s by MaxConcurrency): how fast an empty
//     or invalidated pool is refilled; a roll-out takes the template's
//     prebuilds divided by it. Raise MaxConcurrency while creates/s still
//     grows, and size a pgx pool to MaxConcurrency + 2. Your provisioner,
//     not the store, will usually be the slower side: creates only queue
//     jobs.
//   - Claims (Claim, claims/s): the peak rate of users taking prebuilds;
//     compare with your busiest minute.
//   - Targeted pass (Pass/targeted): the delay between a claim and the
//     start of its replacement, when the store filters snapshots by
//     preset.
//   - Batched creates (CreatePrebuilds): why a store should write a
//     preset's creates in one round trip.
//   - Memory (memstore's BenchmarkFootprint, B/instance): memstore keeps
//     every instance ever created, so multiply by instances including
//     history.
//
// Point PREBUILDKIT_TEST_DATABASE_URL at a server configured like
// production to measure what production will do: the throwaway servers of
// internal/pgtest run with fsync off, which flatters every write.
//
// # Fleets
//
// NewFleet turns FleetParams (presets, templates, versions, running
// prebuilds and history per preset, and the shares of failing, scheduled
// and TTL presets) into a deterministic Fleet: plain data that Seed writes
// through any prebuilds.ControlPlane, that pgfleet.CopyFleet loads into
// pgstore's tables with COPY, and whose snapshot Fleet.Snapshot computes
// without a store. The tests prove the three paths agree with memstore and
// pgstore, so a benchmark's fleet is exactly the state it claims to be.
// SteadyFleet and ColdFleet are the fleets of Run.
//
// NaivePlanAll is the naive baseline of the planner benchmark: it builds
// each preset's view by scanning every row of the snapshot, then plans it
// with prebuilds.PlanPreset.
//
// # Running the project's set
//
//	go test -run '^$' -bench . -benchtime=1x ./bench/ ./memstore/ ./pgstore/   # smoke
//	scripts/bench.sh                                                           # the full set, half an hour or more
//	BENCH_FILTER='Store/Pass' BENCH_COUNT=3 scripts/bench.sh                   # partial
//
// A full run rewrites bench/REPORT.md, bench/results/ and the table above;
// a partial one (a filter, fewer than 6 runs, BENCH_TIME=Nx, other
// packages) writes only to a new, git-ignored bench/results/scratch-*/ and
// never touches them. Compare runs with benchstat; every raw output is
// kept.
package bench
