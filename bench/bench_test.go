package bench

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// The planner benchmarks are about package prebuilds, not a store: they
// plan a snapshot computed without a store (Fleet.Snapshot). A store's
// benchmarks are bench.Run's (memstore/bench_test.go, pgstore/bench_test.go).

// planParams is SteadyFleet with 5% of presets backing off, so that the
// planner explains something.
func planParams(presets int) FleetParams {
	p := SteadyFleet(presets)
	p.FailingShare = 0.05
	return p
}

var planSizes = []int{1_000, 10_000}

// testFleets caches generated fleets per process; they are read-only.
var testFleets sync.Map // FleetParams → *Fleet

func fleet(tb testing.TB, p FleetParams) *Fleet {
	tb.Helper()
	if f, ok := testFleets.Load(p); ok {
		return f.(*Fleet)
	}
	f, err := NewFleet(p)
	if err != nil {
		tb.Fatal(err)
	}
	actual, _ := testFleets.LoadOrStore(p, f)
	return actual.(*Fleet)
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
