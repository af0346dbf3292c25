package pgstore_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/prebuildkit/prebuildkit/bench"
	"github.com/prebuildkit/prebuildkit/bench/pgfleet"
	"github.com/prebuildkit/prebuildkit/internal/pgtest"
	"github.com/prebuildkit/prebuildkit/pgstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// BenchmarkStore runs the capacity benchmarks every store runs (bench.Run)
// on pgstore over loopback; scripts/bench.sh turns them into
// bench/REPORT.md.
func BenchmarkStore(b *testing.B) { bench.Run(b, benchHarness(0)) }

// BenchmarkStoreRTT500us is BenchmarkStore's creates, claims and sharded
// cycles with every client write delayed 0.5 ms (at least 0.5 ms more per
// round trip), as across a network: what batching and one-statement
// operations save is round trips.
func BenchmarkStoreRTT500us(b *testing.B) {
	h := benchHarness(500 * time.Microsecond)
	h.Groups = []string{"CreatePrebuilds", "Claim", "Shards"}
	bench.Run(b, h)
}

// claimVariants are pgstore's claim (one statement) and the one it
// replaced (a transaction of several statements), measured side by side as
// Claim/impl=one-statement and Claim/impl=two-step.
var claimVariants = []bench.ClaimVariant{
	{Name: "two-step", Claim: func(ctx context.Context, s bench.Store, p prebuilds.ClaimParams) (prebuilds.Instance, error) {
		return pgstore.ClaimTwoStep(ctx, s.(*pgstore.Store), p)
	}},
	{Name: "one-statement", Claim: func(ctx context.Context, s bench.Store, p prebuilds.ClaimParams) (prebuilds.Instance, error) {
		return s.Claim(ctx, p)
	}},
}

// benchHarness loads fleets by cloning a template database filled once per
// fleet with COPY (pgfleet.Migrator), on connections that add rtt to every
// round trip. Claims are measured for both claim implementations
// (claimVariants).
func benchHarness(rtt time.Duration) bench.Harness {
	// Enough connections for ColdFill's MaxConcurrency 8 plus the lock's,
	// and for one claimer per GOMAXPROCS.
	conns := max(10, runtime.GOMAXPROCS(0)+2)
	// configs remembers each store's pool configuration, so that Handle can
	// open another pool on the same database.
	var (
		mu      sync.Mutex
		configs = map[*pgstore.Store]*pgxpool.Config{}
	)
	open := func(b *testing.B, cfg *pgxpool.Config) *pgstore.Store {
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg.Copy())
		if err != nil {
			b.Fatal(err)
		}
		s := pgstore.New(pool)
		mu.Lock()
		configs[s] = cfg
		mu.Unlock()
		b.Cleanup(func() {
			mu.Lock()
			delete(configs, s)
			mu.Unlock()
			pool.Close()
		})
		return s
	}
	return bench.Harness{
		NewStore: func(b *testing.B) bench.Store {
			return open(b, benchPoolConfig(b, pgfleet.Migrator{}, conns, rtt))
		},
		Load: func(b *testing.B, f *bench.Fleet) bench.Store {
			return open(b, benchPoolConfig(b, pgfleet.Migrator{Fleet: f}, conns, rtt))
		},
		// Each replica of Refill and Shards, and Refill's claimer, on a
		// pool of its own, as in a deployment: the change feed and the
		// locks cross connections.
		Handle: func(b *testing.B, s bench.Store) bench.Store {
			mu.Lock()
			cfg, ok := configs[s.(*pgstore.Store)]
			mu.Unlock()
			if !ok {
				b.Fatal("pgstore bench: Handle of a store the harness did not open")
			}
			return open(b, cfg)
		},
		Claims: claimVariants,
	}
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

// benchPool returns a pool of at most maxConns connections on a fresh clone
// of the database m migrates, adding rtt to every round trip.
func benchPool(tb testing.TB, m pgfleet.Migrator, maxConns int, rtt time.Duration) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.NewWithConfig(context.Background(), benchPoolConfig(tb, m, maxConns, rtt))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// benchPoolConfig is the configuration of benchPool's pool; it records the
// server's version for the report.
func benchPoolConfig(tb testing.TB, m pgfleet.Migrator, maxConns int, rtt time.Duration) *pgxpool.Config {
	tb.Helper()
	url := pgtest.NewDatabase(tb, m)
	cfg, err := pgxpool.ParseConfig(url)
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
	recordServerVersion(tb, url)
	return cfg
}

var serverVersionOnce sync.Once

// recordServerVersion appends "postgres: <version()>" to the file named by
// $PREBUILDKIT_BENCH_INFO, once per process, for the report's machine table.
func recordServerVersion(tb testing.TB, url string) {
	path := os.Getenv("PREBUILDKIT_BENCH_INFO")
	if path == "" {
		return
	}
	serverVersionOnce.Do(func() {
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			tb.Logf("reading the server version: %v", err)
			return
		}
		defer conn.Close(context.Background())
		var v string
		if err := conn.QueryRow(context.Background(), `SELECT version()`).Scan(&v); err != nil {
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

// BenchmarkSnapshotFloor reads every row of the tables a snapshot reads,
// without filtering (pgfleet.ScanTables), from the fleet of
// BenchmarkStore/Snapshot: the floor the snapshot is judged against.
func BenchmarkSnapshotFloor(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("presets=%d", n), func(b *testing.B) {
			f := bench.MustFleet(bench.SteadyFleet(n))
			pool := benchPool(b, pgfleet.Migrator{Fleet: f}, 4, 0)
			ctx := context.Background()
			b.ReportAllocs()
			var ts *pgfleet.TableScan
			for b.Loop() {
				var err error
				if ts, err = pgfleet.ScanTables(ctx, pool); err != nil {
					b.Fatal(err)
				}
			}
			if len(ts.Instances) != len(f.Instances) {
				b.Fatalf("scanned %d instances, fleet has %d", len(ts.Instances), len(f.Instances))
			}
			if s := b.Elapsed().Seconds(); s > 0 {
				b.ReportMetric(float64(n)*float64(b.N)/s, "presets/s")
			}
		})
	}
}

// BenchmarkCreatePrebuildsSchema prices the per-row work of pgstore's
// schema: the marginal cost of one more prebuild in a CreatePrebuilds call
// (ns/prebuild, from calls of 1 and of 10 prebuilds on the same database),
// on the schema as migrated and with the three foreign keys to the
// catalogue that migration 0002 dropped put back (bench/NOTES.md).
func BenchmarkCreatePrebuildsSchema(b *testing.B) {
	ctx := context.Background()
	restoreFKs := `
		ALTER TABLE instances ADD FOREIGN KEY (template_id) REFERENCES templates (id);
		ALTER TABLE builds ADD FOREIGN KEY (template_version_id) REFERENCES template_versions (id);
		ALTER TABLE builds ADD FOREIGN KEY (preset_id) REFERENCES presets (id);`
	for _, variant := range []struct{ name, ddl string }{{"migrated", ""}, {"catalogue-fks", restoreFKs}} {
		b.Run("schema="+variant.name, func(b *testing.B) {
			f := bench.MustFleet(bench.ColdFleet(1_000))
			pool := benchPool(b, pgfleet.Migrator{Fleet: f}, 1, 0)
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
