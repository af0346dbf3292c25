package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/prebuildkit/prebuildkit/internal/pgtest"
	"github.com/prebuildkit/prebuildkit/memstore"
	"github.com/prebuildkit/prebuildkit/pgstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Fleet shapes of the benchmarks. Every benchmark fleet has 5 running
// prebuilds per preset (50,000 at 10,000 presets) plus history the
// snapshot must skip.

// steadyParams is a balanced fleet: a pass has nothing to do.
func steadyParams(presets int) FleetParams {
	return FleetParams{
		Presets: presets, VersionsPerTemplate: 2, RunningPerPreset: 5, HistoryDepth: 2,
		ScheduleShare: 0.1, TTLShare: 0.2, Seed: 1,
	}
}

// planParams is steadyParams with 5% of presets backing off, so that the
// planner explains something.
func planParams(presets int) FleetParams {
	p := steadyParams(presets)
	p.FailingShare = 0.05
	return p
}

// coldDesired is the pool size of the cold-fill fleets.
const coldDesired = 10

// coldParams is a fleet of empty pools that each want coldDesired.
func coldParams(presets int) FleetParams {
	return FleetParams{Presets: presets, RunningPerPreset: 0, Desired: coldDesired, Seed: 2}
}

var (
	planSizes     = []int{1_000, 10_000}
	snapshotSizes = []int{1_000, 10_000}
	sweepSizes    = []int{100, 1_000, 5_000, 10_000}
	coldPresets   = 1_000
)

// fleets caches generated fleets per process; they are read-only.
var fleets sync.Map // FleetParams → *Fleet

func fleet(tb testing.TB, p FleetParams) *Fleet {
	tb.Helper()
	if f, ok := fleets.Load(p); ok {
		return f.(*Fleet)
	}
	f, err := NewFleet(p)
	if err != nil {
		tb.Fatal(err)
	}
	actual, _ := fleets.LoadOrStore(p, f)
	return actual.(*Fleet)
}

// memstores caches seeded memstores for benchmarks that do not write.
var memstores sync.Map // FleetParams → *memstore.Store

func readOnlyMemstore(tb testing.TB, p FleetParams) *memstore.Store {
	tb.Helper()
	if s, ok := memstores.Load(p); ok {
		return s.(*memstore.Store)
	}
	s := seededMemstore(tb, fleet(tb, p))
	actual, _ := memstores.LoadOrStore(p, s)
	return actual.(*memstore.Store)
}

// pgPool returns a pool on a fresh clone of a database migrated by m, with
// room for maxConns connections (the reconciliation lock holds one).
func pgPool(tb testing.TB, m FleetMigrator, maxConns int) *pgxpool.Pool {
	tb.Helper()
	return pgPoolWithLatency(tb, m, maxConns, 0)
}

// latencyConn delays every write by d: each request the client sends, and
// so each round trip, takes d longer, as if the server were across a
// network.
type latencyConn struct {
	net.Conn
	d time.Duration
}

func (c latencyConn) Write(p []byte) (int, error) {
	time.Sleep(c.d) // simulated network latency, not a wait for behaviour
	return c.Conn.Write(p)
}

// pgPoolWithLatency is pgPool whose connections add rtt to every round trip.
func pgPoolWithLatency(tb testing.TB, m FleetMigrator, maxConns int, rtt time.Duration) *pgxpool.Pool {
	tb.Helper()
	dsn := pgtest.NewDatabase(tb, m)
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.MaxConns = int32(maxConns)
	if rtt > 0 {
		dialer := &net.Dialer{}
		cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return latencyConn{Conn: c, d: rtt}, nil
		}
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	recordServerVersion(tb, pool)
	return pool
}

var serverVersionOnce sync.Once

// recordServerVersion appends "postgres: <version()>" to the file named by
// $PREBUILDKIT_BENCH_INFO, once per process, for the report's machine table.
func recordServerVersion(tb testing.TB, pool *pgxpool.Pool) {
	path := os.Getenv("PREBUILDKIT_BENCH_INFO")
	if path == "" {
		return
	}
	serverVersionOnce.Do(func() {
		var v string
		if err := pool.QueryRow(context.Background(), `SELECT version()`).Scan(&v); err != nil {
			tb.Logf("reading the server version: %v", err)
			return
		}
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			tb.Logf("recording the server version: %v", err)
			return
		}
		defer f.Close()
		fmt.Fprintf(f, "postgres: %s\n", v)
	})
}

func reconciler(tb testing.TB, s prebuilds.Store, f *Fleet, concurrency int) *prebuilds.Reconciler {
	tb.Helper()
	clock := quartz.NewMock(tb).WithLogger(quartz.NoOpLogger)
	clock.Set(f.Now)
	return prebuilds.NewReconciler(s, prebuilds.Config{
		Clock:          clock,
		Logger:         slog.New(slog.DiscardHandler),
		MaxConcurrency: concurrency,
	})
}

// perSecond reports n things per loop iteration as a rate.
func perSecond(b *testing.B, n int, unit string) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(n)*float64(b.N)/s, unit)
	}
}

var planSink []prebuilds.Plan

// BenchmarkPlan compares prebuilds.PlanAll (one indexing pass, then one
// planning pass) with NaivePlanAll (a scan of every row per preset) on the
// same snapshot of the planner fleet (10% of presets scheduled).
func BenchmarkPlan(b *testing.B) { benchPlan(b, planParams) }

// BenchmarkPlanUnscheduled is BenchmarkPlan on a fleet without schedules: it
// separates the cost of indexing from the cost of evaluating schedules
// (BenchmarkDesiredAt).
func BenchmarkPlanUnscheduled(b *testing.B) {
	benchPlan(b, func(n int) FleetParams {
		p := planParams(n)
		p.ScheduleShare = 0
		return p
	})
}

func benchPlan(b *testing.B, params func(int) FleetParams) {
	cfg := prebuilds.PlanConfig{BackoffInterval: prebuilds.DefaultBackoffInterval}
	impls := []struct {
		name string
		plan func(*prebuilds.GlobalSnapshot, prebuilds.PlanConfig) []prebuilds.Plan
	}{
		{"indexed", func(s *prebuilds.GlobalSnapshot, c prebuilds.PlanConfig) []prebuilds.Plan {
			return prebuilds.PlanAll(s, c).Plans
		}},
		{"naive", NaivePlanAll},
	}
	for _, impl := range impls {
		for _, n := range planSizes {
			b.Run(fmt.Sprintf("impl=%s/presets=%d", impl.name, n), func(b *testing.B) {
				f := fleet(b, params(n))
				snap := f.Snapshot(f.SnapshotParams())
				b.ReportAllocs()
				for b.Loop() {
					planSink = impl.plan(snap, cfg)
				}
				if len(planSink) != n {
					b.Fatalf("%d plans for %d presets", len(planSink), n)
				}
				perSecond(b, n, "presets/s")
			})
		}
	}
}

var desiredSink int

// BenchmarkDesiredAt is the cost of evaluating one scheduled preset's
// desired count, which the planner pays per scheduled preset per pass.
func BenchmarkDesiredAt(b *testing.B) {
	for _, zone := range []string{"UTC", "Europe/Berlin"} {
		b.Run("zone="+zone, func(b *testing.B) {
			d := 3
			p := prebuilds.Preset{Desired: &d, Timezone: zone, Schedules: []prebuilds.Schedule{
				{Cron: "* 9-17 * * 1-5", Instances: 5},
				{Cron: "* 0-6 * * 0,6", Instances: 1},
			}}
			now := FleetNow.Add(-10 * time.Hour) // matches neither schedule
			b.ReportAllocs()
			for b.Loop() {
				n, err := prebuilds.DesiredAt(p, now)
				if err != nil {
					b.Fatal(err)
				}
				desiredSink = n
			}
			if desiredSink != d {
				b.Fatalf("DesiredAt = %d, want %d", desiredSink, d)
			}
		})
	}
}

// BenchmarkSnapshot reads the snapshot of a balanced fleet from memstore and
// pgstore, next to a plain scan of pgstore's tables (the floor).
func BenchmarkSnapshot(b *testing.B) {
	ctx := context.Background()
	for _, n := range snapshotSizes {
		p := steadyParams(n)
		b.Run(fmt.Sprintf("store=mem/presets=%d", n), func(b *testing.B) {
			f := fleet(b, p)
			benchSnapshot(b, readOnlyMemstore(b, p), f)
		})
		b.Run(fmt.Sprintf("store=pg/presets=%d", n), func(b *testing.B) {
			f := fleet(b, p)
			benchSnapshot(b, pgstore.New(pgPool(b, FleetMigrator{Fleet: f}, 4)), f)
		})
		b.Run(fmt.Sprintf("store=pgscan/presets=%d", n), func(b *testing.B) {
			f := fleet(b, p)
			pool := pgPool(b, FleetMigrator{Fleet: f}, 4)
			b.ReportAllocs()
			var ts *TableScan
			for b.Loop() {
				var err error
				if ts, err = ScanTables(ctx, pool); err != nil {
					b.Fatal(err)
				}
			}
			if len(ts.Instances) != len(f.Instances) {
				b.Fatalf("scanned %d instances, fleet has %d", len(ts.Instances), len(f.Instances))
			}
			perSecond(b, n, "presets/s")
		})
	}
}

func benchSnapshot(b *testing.B, s prebuilds.Store, f *Fleet) {
	ctx := context.Background()
	params := f.SnapshotParams()
	var snap *prebuilds.GlobalSnapshot
	b.ReportAllocs()
	for b.Loop() {
		_, err := s.WithReconciliationLock(ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
			var err error
			snap, err = r.Snapshot(ctx, params)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if snap == nil || len(snap.Presets) != f.Params.Presets || len(snap.Running) != f.Params.Presets*f.Params.RunningPerPreset {
		b.Fatalf("snapshot does not describe the fleet")
	}
	perSecond(b, f.Params.Presets, "presets/s")
}

// BenchmarkReconcileSteady is a full pass (lock, snapshot, plan, nothing to
// execute) over a balanced fleet: the latency every replica pays each
// Interval. The sweep over preset counts feeds the pass-latency chart.
func BenchmarkReconcileSteady(b *testing.B) {
	for _, store := range []string{"mem", "pg"} {
		for _, n := range sweepSizes {
			b.Run(fmt.Sprintf("store=%s/presets=%d", store, n), func(b *testing.B) {
				p := steadyParams(n)
				f := fleet(b, p)
				var s prebuilds.Store
				if store == "mem" {
					s = readOnlyMemstore(b, p)
				} else {
					s = pgstore.New(pgPool(b, FleetMigrator{Fleet: f}, 4))
				}
				r := reconciler(b, s, f, prebuilds.DefaultMaxConcurrency)
				ctx := context.Background()
				b.ReportAllocs()
				for b.Loop() {
					st, err := r.ReconcileAll(ctx)
					if err != nil {
						b.Fatal(err)
					}
					if !st.Acquired || st.Presets != n || st.Created+st.Deleted+st.Canceled+st.PresetErrors != 0 {
						b.Fatalf("steady pass did something: %+v", st)
					}
				}
				perSecond(b, n, "presets/s")
			})
		}
	}
}

// BenchmarkReconcileCold is one pass that fills coldPresets empty pools of
// coldDesired each (10,000 creates, one batched transaction per preset),
// with the executor's MaxConcurrency varied on pgstore.
func BenchmarkReconcileCold(b *testing.B) {
	ctx := context.Background()
	p := coldParams(coldPresets)
	want := coldPresets * coldDesired
	run := func(b *testing.B, r *prebuilds.Reconciler, reset func()) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			reset()
			b.StartTimer()
			st, err := r.ReconcileAll(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if st.Created != want || st.PresetErrors != 0 {
				b.Fatalf("cold pass created %d (want %d), %d preset errors", st.Created, want, st.PresetErrors)
			}
		}
		perSecond(b, want, "creates/s")
	}
	b.Run(fmt.Sprintf("store=mem/concurrency=%d", prebuilds.DefaultMaxConcurrency), func(b *testing.B) {
		f := fleet(b, p)
		store := &swappableStore{}
		r := reconciler(b, store, f, prebuilds.DefaultMaxConcurrency)
		run(b, r, func() { store.Store = seededMemstore(b, f) })
	})
	for _, c := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("store=pg/concurrency=%d", c), func(b *testing.B) {
			f := fleet(b, p)
			pool := pgPool(b, FleetMigrator{Fleet: f}, c+2)
			r := reconciler(b, pgstore.New(pool), f, c)
			run(b, r, func() {
				if _, err := pool.Exec(ctx, `TRUNCATE builds, instances`); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// swappableStore lets a benchmark give one Reconciler a fresh memstore per
// iteration.
type swappableStore struct{ prebuilds.Store }

// BenchmarkCreatePrebuilds creates 10 prebuilds of one preset per
// operation, either in one CreatePrebuilds call (one transaction) or in 10
// calls of one instance each.
func BenchmarkCreatePrebuilds(b *testing.B) {
	const batch = 10
	ctx := context.Background()
	p := coldParams(coldPresets)
	stores := []struct {
		name string
		open func(b *testing.B, f *Fleet) prebuilds.Store
	}{
		{"mem", func(b *testing.B, f *Fleet) prebuilds.Store { return seededMemstore(b, f) }},
		{"pg", func(b *testing.B, f *Fleet) prebuilds.Store {
			return pgstore.New(pgPool(b, FleetMigrator{Fleet: f}, 4))
		}},
		// The same server with every client write delayed 0.5 ms (at least
		// 0.5 ms more per round trip), as across a network: what batching
		// saves is round trips.
		{"pg-rtt500us", func(b *testing.B, f *Fleet) prebuilds.Store {
			return pgstore.New(pgPoolWithLatency(b, FleetMigrator{Fleet: f}, 4, 500*time.Microsecond))
		}},
	}
	for _, st := range stores {
		for _, mode := range []string{"batched", "per-instance"} {
			b.Run(fmt.Sprintf("store=%s/mode=%s", st.name, mode), func(b *testing.B) {
				f := fleet(b, p)
				s := st.open(b, f)
				presets := f.ConfiguredPresets()
				i := 0
				b.ReportAllocs()
				for b.Loop() {
					pr := presets[i%len(presets)]
					i++
					news := make([]prebuilds.NewPrebuild, batch)
					for k := range news {
						news[k] = prebuilds.NewPrebuild{InstanceID: uuid.New(), BuildID: uuid.New(), Name: "bench"}
					}
					params := prebuilds.CreatePrebuildsParams{PresetID: pr.ID, TemplateVersionID: pr.TemplateVersionID, Now: f.Now}
					if mode == "batched" {
						params.Instances = news
						if _, err := s.CreatePrebuilds(ctx, params); err != nil {
							b.Fatal(err)
						}
						continue
					}
					for _, n := range news {
						params.Instances = []prebuilds.NewPrebuild{n}
						if _, err := s.CreatePrebuilds(ctx, params); err != nil {
							b.Fatal(err)
						}
					}
				}
				perSecond(b, batch, "creates/s")
			})
		}
	}
}

// BenchmarkCreatePrebuildsSchema prices the per-row work of pgstore's
// schema: the marginal cost of one more prebuild in a CreatePrebuilds call
// (ns/prebuild, from calls of 1 and of 10 prebuilds on the same database),
// on the schema as migrated and with the three foreign keys to the
// catalogue that migration 0002 dropped put back (bench/NOTES.md).
func BenchmarkCreatePrebuildsSchema(b *testing.B) {
	ctx := context.Background()
	p := coldParams(coldPresets)
	restoreFKs := `
		ALTER TABLE instances ADD FOREIGN KEY (template_id) REFERENCES templates (id);
		ALTER TABLE builds ADD FOREIGN KEY (template_version_id) REFERENCES template_versions (id);
		ALTER TABLE builds ADD FOREIGN KEY (preset_id) REFERENCES presets (id);`
	for _, variant := range []struct{ name, ddl string }{{"migrated", ""}, {"catalogue-fks", restoreFKs}} {
		b.Run("schema="+variant.name, func(b *testing.B) {
			f := fleet(b, p)
			pool := pgPool(b, FleetMigrator{Fleet: f}, 1)
			if variant.ddl != "" {
				if _, err := pool.Exec(ctx, variant.ddl); err != nil {
					b.Fatal(err)
				}
			}
			s := pgstore.New(pool)
			presets := f.ConfiguredPresets()
			create := func(i, n int) time.Duration {
				pr := presets[i%len(presets)]
				news := make([]prebuilds.NewPrebuild, n)
				for k := range news {
					news[k] = prebuilds.NewPrebuild{InstanceID: uuid.New(), BuildID: uuid.New(), Name: "bench"}
				}
				start := time.Now()
				if _, err := s.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{
					PresetID: pr.ID, TemplateVersionID: pr.TemplateVersionID, Now: f.Now, Instances: news,
				}); err != nil {
					b.Fatal(err)
				}
				return time.Since(start)
			}
			// Warm up: the first executions prepare the statement and plan
			// it per call; PostgreSQL settles on a generic plan after five.
			i := 0
			for ; i < 16; i += 2 {
				create(i, 1)
				create(i+1, 10)
			}
			// Alternate the two sizes so that both see the same table
			// sizes and the same machine noise.
			var one, ten time.Duration
			for b.Loop() {
				one += create(i, 1)
				ten += create(i+1, 10)
				i += 2
			}
			if b.N > 0 {
				b.ReportMetric(float64((ten-one).Nanoseconds())/9/float64(b.N), "ns/prebuild")
				b.ReportMetric(float64(one.Nanoseconds())/float64(b.N), "ns/call")
			}
		})
	}
}

// claimPoolSize is the number of claimable prebuilds per preset in
// BenchmarkClaim: realistic pools are small, and Claim's cost may grow with
// the pool.
const claimPoolSize = 10

// BenchmarkClaim claims prebuilds from GOMAXPROCS goroutines at once. Each
// run seeds exactly b.N ready prebuilds over b.N/claimPoolSize presets and
// claims each preset exactly as often as it has prebuilds, so no claim
// finds an empty pool.
func BenchmarkClaim(b *testing.B) {
	ctx := context.Background()
	for _, store := range []string{"mem", "pg"} {
		b.Run("store="+store, func(b *testing.B) {
			f, s := claimFleet(b, store, b.N)
			presets := f.ConfiguredPresets()
			users := make([]uuid.UUID, 64)
			for i := range users {
				users[i] = uuid.New()
			}
			var next atomic.Int64
			var failures atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1) - 1)
					_, err := s.Claim(ctx, prebuilds.ClaimParams{
						PresetID: presets[i%len(presets)].ID, Owner: users[i%len(users)], Now: f.Now,
					})
					if err != nil && failures.Add(1) == 1 {
						b.Errorf("claim %d: %v", i, err)
					}
				}
			})
			b.StopTimer()
			if n := failures.Load(); n > 0 {
				b.Fatalf("%d of %d claims failed", n, b.N)
			}
			perSecond(b, 1, "claims/s")
		})
	}
}

// claimFleet returns a store holding exactly n claimable prebuilds, spread
// so that claim i, which goes to preset i mod presets, always finds one.
func claimFleet(b *testing.B, store string, n int) (*Fleet, prebuilds.ControlPlane) {
	b.Helper()
	presets := max(1, (n+claimPoolSize-1)/claimPoolSize)
	f, err := NewFleet(FleetParams{Presets: presets, RunningPerPreset: claimPoolSize, Seed: 3})
	if err != nil {
		b.Fatal(err)
	}
	// Preset j gets one claim for each i < n with i mod presets = j: keep
	// that many of its prebuilds (at most claimPoolSize).
	left := make(map[uuid.UUID]int, presets)
	for j, p := range f.ConfiguredPresets() {
		left[p.ID] = n / presets
		if j < n%presets {
			left[p.ID]++
		}
	}
	kept := f.Instances[:0]
	for _, in := range f.Instances {
		if pid := in.Builds[0].PresetID; left[pid] > 0 {
			left[pid]--
			kept = append(kept, in)
		}
	}
	f.Instances = kept
	if len(kept) != n {
		b.Fatalf("claim fleet has %d prebuilds, want %d", len(kept), n)
	}
	if store == "mem" {
		return f, seededMemstore(b, f)
	}
	pool := pgPool(b, FleetMigrator{}, runtime.GOMAXPROCS(0)+2)
	conn, err := pool.Acquire(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	if err := CopyFleet(context.Background(), conn.Conn(), f); err != nil {
		b.Fatal(err)
	}
	return f, pgstore.New(pool)
}

// BenchmarkMemstoreFootprint seeds a balanced fleet into a fresh memstore
// per iteration and reports the live heap it holds per instance (builds,
// indexes and the presets' share included).
func BenchmarkMemstoreFootprint(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("presets=%d", n), func(b *testing.B) {
			f := fleet(b, steadyParams(n))
			var perInstance float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				s := seededMemstore(b, f)
				runtime.GC()
				runtime.ReadMemStats(&after)
				runtime.KeepAlive(s)
				perInstance = float64(after.HeapAlloc-before.HeapAlloc) / float64(len(f.Instances))
			}
			b.ReportMetric(perInstance, "B/instance")
			b.ReportMetric(float64(len(f.Instances)), "instances")
		})
	}
}
