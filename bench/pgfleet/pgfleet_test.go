package pgfleet_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/prebuildkit/prebuildkit/bench"
	"github.com/prebuildkit/prebuildkit/bench/pgfleet"
	"github.com/prebuildkit/prebuildkit/internal/pgtest"
	"github.com/prebuildkit/prebuildkit/pgstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// mixedFleet exercises every feature of the generator on a small fleet.
func mixedFleet() *bench.Fleet {
	return bench.MustFleet(bench.FleetParams{
		Presets: 40, Templates: 7, VersionsPerTemplate: 3, RunningPerPreset: 3, HistoryDepth: 4,
		FailingShare: 0.3, ScheduleShare: 0.3, TTLShare: 0.3, Seed: 42,
	})
}

// flaggedFleet has a deprecated and a deleted template.
func flaggedFleet() *bench.Fleet {
	f := bench.MustFleet(bench.FleetParams{Presets: 20, Templates: 4, VersionsPerTemplate: 2, RunningPerPreset: 2, FailingShare: 0.5, Seed: 5})
	f.Templates[0].Deprecated = true
	f.Templates[1].Deleted = true
	return f
}

// snapshot reads a pgstore's snapshot under its lock, in canonical order.
func snapshot(t testing.TB, s *pgstore.Store, p prebuilds.SnapshotParams) *prebuilds.GlobalSnapshot {
	t.Helper()
	var snap *prebuilds.GlobalSnapshot
	acquired, err := s.WithReconciliationLock(context.Background(), func(ctx context.Context, r prebuilds.SnapshotReader) error {
		var err error
		snap, err = r.Snapshot(ctx, p)
		return err
	})
	if err != nil || !acquired {
		t.Fatalf("snapshot: acquired=%v err=%v", acquired, err)
	}
	prebuilds.SortSnapshot(snap)
	return snap
}

func TestCopyFleetMatchesControlPlaneSeed(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]*bench.Fleet{"mixed": mixedFleet(), "flagged templates": flaggedFleet()} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testCopyFleet(t, f)
		})
	}
}

func testCopyFleet(t *testing.T, f *bench.Fleet) {
	ctx := context.Background()

	seeded := pgtest.NewPool(t, pgfleet.Migrator{})
	if err := bench.Seed(ctx, pgstore.New(seeded), f); err != nil {
		t.Fatal(err)
	}
	copied := pgtest.NewPool(t, pgfleet.Migrator{Fleet: f})

	for _, p := range []prebuilds.SnapshotParams{
		f.SnapshotParams(),
		{Now: f.Now.Add(25 * time.Hour), Lookback: f.Now.Add(24 * time.Hour), HardLimit: 1},
	} {
		want := f.Snapshot(p)
		viaSeed := snapshot(t, pgstore.New(seeded), p)
		viaCopy := snapshot(t, pgstore.New(copied), p)
		if diff := cmp.Diff(viaSeed, viaCopy); diff != "" {
			t.Fatalf("at %s: COPY path differs from control-plane path (-seed +copy):\n%s", p.Now, diff)
		}
		if diff := cmp.Diff(want, viaCopy); diff != "" {
			t.Fatalf("at %s: pgstore snapshot differs from Fleet.Snapshot (-fleet +pgstore):\n%s", p.Now, diff)
		}
	}

	a, err := pgfleet.ScanTables(ctx, seeded)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pgfleet.ScanTables(ctx, copied)
	if err != nil {
		t.Fatal(err)
	}
	want := [6]int{len(f.Templates), len(f.Versions), len(f.Presets), 0, len(f.Instances), f.Builds()}
	for _, pr := range f.Presets {
		want[3] += len(pr.Schedules)
	}
	if a.Counts() != want || b.Counts() != want {
		t.Fatalf("row counts: control plane %v, COPY %v, want %v", a.Counts(), b.Counts(), want)
	}
}

// TestMigratorHash: equal fleets share a template database, a fleet edited
// after generation gets its own, and the empty migrator is pgstore's schema.
func TestMigratorHash(t *testing.T) {
	t.Parallel()
	hash := func(f *bench.Fleet) string {
		t.Helper()
		h, err := pgfleet.Migrator{Fleet: f}.Hash()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	a, b, edited := mixedFleet(), mixedFleet(), mixedFleet()
	edited.Templates[0].Deprecated = true
	if hash(a) != hash(b) {
		t.Error("equal fleets hash differently: every benchmark would load its own template database")
	}
	if hash(a) == hash(edited) {
		t.Error("an edited fleet hashes like the original: it would get the original's database")
	}
	if hash(nil) == hash(a) {
		t.Error("the empty migrator hashes like a fleet")
	}
}
