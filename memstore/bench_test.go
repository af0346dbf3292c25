package memstore_test

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/prebuildkit/prebuildkit/bench"
	"github.com/prebuildkit/prebuildkit/memstore"
)

// BenchmarkStore runs the capacity benchmarks every store runs (bench.Run)
// on memstore; scripts/bench.sh turns them into bench/REPORT.md.
func BenchmarkStore(b *testing.B) {
	bench.Run(b, bench.Harness{
		NewStore: func(*testing.B) bench.Store { return memstore.New() },
	})
}

// BenchmarkFootprint seeds a balanced fleet (bench.SteadyFleet) into a
// fresh memstore per iteration and reports the live heap it holds per
// instance (builds, indexes and the presets' share included).
func BenchmarkFootprint(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("presets=%d", n), func(b *testing.B) {
			f := bench.MustFleet(bench.SteadyFleet(n))
			var perInstance float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				s := memstore.New()
				if err := bench.Seed(context.Background(), s, f); err != nil {
					b.Fatal(err)
				}
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
