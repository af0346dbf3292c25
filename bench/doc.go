// Package bench generates fleets of thousands of presets and measures what a
// deployment of prebuildkit costs: planning, snapshots, reconciliation
// passes, creates, claims and memory, for memstore and pgstore. Its
// benchmarks are the capacity-planning tool of the project; scripts/bench.sh
// runs them and writes bench/REPORT.md. What a snapshot, a pass, a create
// and a claim do is specified in docs/spec.md; the benchmarks measure what
// that costs.
//
// # Fleets
//
// NewFleet turns FleetParams (presets, templates, versions, running
// prebuilds and history per preset, and the shares of failing, scheduled
// and TTL presets) into a deterministic Fleet: plain data that Seed writes
// through any prebuilds.ControlPlane, that CopyFleet loads into pgstore's
// tables with COPY (seconds for 10,000 presets where Seed takes minutes),
// and whose snapshot Fleet.Snapshot computes without a store. The tests
// prove the three paths agree with memstore and pgstore, so a benchmark's
// fleet is exactly the state it claims to be. FleetMigrator plugs a fleet
// into pgtestdb: the fleet is loaded once per server into a template
// database and every benchmark gets a cheap clone.
//
// NaivePlanAll is the naive baseline of the planner target: it builds each preset's
// view by scanning every row of the snapshot, then plans it with
// prebuilds.PlanPreset.
//
// # Running
//
//	go test -run '^$' -bench . -benchtime=1x ./bench/   # smoke, about a minute
//	scripts/bench.sh                                     # the capacity set, ~15 min
//	BENCH_FILTER=ReconcileSteady BENCH_COUNT=10 scripts/bench.sh
//
// PostgreSQL comes from internal/pgtest (PREBUILDKIT_TEST_DATABASE_URL,
// Docker, or local server binaries). Point PREBUILDKIT_TEST_DATABASE_URL at
// a server configured like production to measure what production will do:
// the throwaway servers pgtest starts run with fsync off, which flatters
// every write benchmark.
//
// # Sizing a deployment
//
// The figures to read, all in REPORT.md:
//
//   - Pass latency (BenchmarkReconcileSteady, the chart): the time of one
//     ReconcileAll with nothing to do, by preset count. Every pass takes the
//     cluster-wide lock, so it must stay well under Config.Interval (1m by
//     default) or passes queue behind each other; it is also the minimum
//     delay between a claim and the start of its replacement. Interpolate at
//     your preset count; the curve is close to linear in presets and running
//     prebuilds (5 per preset here — scale by your ratio).
//   - Cold fill (BenchmarkReconcileCold, creates/s by MaxConcurrency): how
//     fast an empty or invalidated fleet is refilled after a template
//     version change, which recreates every prebuild of the template. Divide
//     the prebuilds of your largest template by creates/s for the pass time
//     of such a roll-out; raise MaxConcurrency while creates/s still grows,
//     and size the pgx pool to MaxConcurrency + 2 (the lock holds one
//     connection). Your provisioner, not the store, will usually be the
//     slower side: creates only queue jobs.
//   - Claims (BenchmarkClaim, claims/s): the peak rate of users taking
//     prebuilds; compare with your busiest minute.
//   - Batched creates (BenchmarkCreatePrebuilds): why a custom Store should
//     write a preset's creates in one transaction.
//   - Memory (BenchmarkMemstoreFootprint, B/instance; allocs/op of the steady
//     pass): memstore holds every instance ever created with its builds, so
//     multiply by instances including history, not only live prebuilds.
//   - Snapshot (BenchmarkSnapshot): the part of a pass spent reading; the
//     pgscan row is the floor of reading the same tables without any
//     filtering, for judging the snapshot queries.
//
// Run the set on hardware like production's, with -count 6 or more, and
// compare runs with benchstat (scripts/bench.sh keeps every raw output in
// bench/results/).
package bench
