package bench

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/prebuildkit/prebuildkit/memstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// mixedParams exercises every feature of the generator on a small fleet.
var mixedParams = FleetParams{
	Presets: 40, Templates: 7, VersionsPerTemplate: 3, RunningPerPreset: 3, HistoryDepth: 4,
	FailingShare: 0.3, ScheduleShare: 0.3, TTLShare: 0.3, Seed: 42,
}

func TestNewFleetIsDeterministic(t *testing.T) {
	t.Parallel()
	a, b := MustFleet(mixedParams), MustFleet(mixedParams)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatalf("same params gave different fleets (-first +second):\n%s", diff)
	}
	other := mixedParams
	other.Seed++
	if c := MustFleet(other); c.Instances[0].ID == a.Instances[0].ID {
		t.Fatalf("seeds %d and %d gave the same first instance ID", mixedParams.Seed, other.Seed)
	}
}

func TestNewFleetShape(t *testing.T) {
	t.Parallel()
	f := MustFleet(mixedParams)
	p := mixedParams
	if got, want := len(f.Templates), p.Templates; got != want {
		t.Errorf("templates = %d, want %d", got, want)
	}
	if got, want := len(f.Versions), p.Templates*p.VersionsPerTemplate; got != want {
		t.Errorf("versions = %d, want %d", got, want)
	}
	if got, want := len(f.Presets), p.Presets*p.VersionsPerTemplate; got != want {
		t.Errorf("presets = %d, want %d (configured + unconfigured copies)", got, want)
	}
	var failing, schedules, ttl int
	for _, pr := range f.ConfiguredPresets() {
		if pr.Desired == nil || *pr.Desired != p.RunningPerPreset {
			t.Fatalf("preset %s desired = %v, want %d", pr.ID, pr.Desired, p.RunningPerPreset)
		}
		if len(pr.Schedules) > 0 {
			schedules++
		}
		if pr.TTL > 0 {
			ttl++
		}
	}
	for _, in := range f.Instances {
		if in.Builds[0].JobStatus == prebuilds.JobFailed {
			failing++
		}
	}
	if got, want := len(f.Instances), p.Presets*(p.HistoryDepth+p.RunningPerPreset); got != want {
		t.Errorf("instances = %d, want %d (history + running, failing ones replacing a running one)", got, want)
	}
	for name, n := range map[string]int{"failing": failing, "scheduled": schedules, "ttl": ttl} {
		if n == 0 || n == p.Presets {
			t.Errorf("%s presets = %d of %d: shares of 0.3 should give some but not all", name, n, p.Presets)
		}
	}
	if got, want := f.DesiredTotal(), p.Presets*p.RunningPerPreset; got != want {
		t.Errorf("DesiredTotal = %d, want %d", got, want)
	}
}

func TestNewFleetRejectsBadParams(t *testing.T) {
	t.Parallel()
	for name, p := range map[string]FleetParams{
		"negative presets": {Presets: -1},
		"share above one":  {Presets: 1, TTLShare: 1.5},
		"negative share":   {Presets: 1, FailingShare: -0.1},
		"desired too big":  {Presets: 1, Desired: prebuilds.MaxDesired + 1},
	} {
		if _, err := NewFleet(p); err == nil {
			t.Errorf("%s: NewFleet(%+v) succeeded, want an error", name, p)
		}
	}
}

// storeSnapshot reads a store's snapshot under its lock, in canonical order.
func storeSnapshot(t testing.TB, s prebuilds.Store, p prebuilds.SnapshotParams) *prebuilds.GlobalSnapshot {
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

func seededMemstore(t testing.TB, f *Fleet) *memstore.Store {
	t.Helper()
	s := memstore.New()
	if err := Seed(context.Background(), s, f); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFleetSnapshotMatchesMemstore(t *testing.T) {
	t.Parallel()
	f := MustFleet(mixedParams)
	want := f.Snapshot(f.SnapshotParams())
	if len(want.Backoffs) == 0 || len(want.Running) == 0 || len(want.Counters) != mixedParams.Presets {
		t.Fatalf("fleet snapshot is too plain to prove anything: %d backoffs, %d running, %d counters",
			len(want.Backoffs), len(want.Running), len(want.Counters))
	}
	got := storeSnapshot(t, seededMemstore(t, f), f.SnapshotParams())
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("memstore snapshot differs from Fleet.Snapshot (-fleet +memstore):\n%s", diff)
	}
}

func TestFleetSnapshotMatchesMemstoreAfterTTL(t *testing.T) {
	t.Parallel()
	f := MustFleet(mixedParams)
	p := f.SnapshotParams()
	p.Now = p.Now.Add(25 * time.Hour) // backoff windows closed, TTLs passed
	p.Lookback = p.Now.Add(-time.Hour)
	got := storeSnapshot(t, seededMemstore(t, f), p)
	if diff := cmp.Diff(f.Snapshot(p), got); diff != "" {
		t.Fatalf("memstore snapshot differs from Fleet.Snapshot a day later (-fleet +memstore):\n%s", diff)
	}
}

func TestNaivePlanAllMatchesPlanAll(t *testing.T) {
	t.Parallel()
	cfg := prebuilds.PlanConfig{BackoffInterval: prebuilds.DefaultBackoffInterval}
	cold := FleetParams{Presets: 30, RunningPerPreset: 0, Desired: 4, TTLShare: 0.5, Seed: 7}
	for name, tc := range map[string]struct {
		params FleetParams
		later  time.Duration
	}{
		"balanced":     {params: mixedParams},
		"a day later":  {params: mixedParams, later: 25 * time.Hour},
		"cold":         {params: cold},
		"surplus":      {params: FleetParams{Presets: 25, RunningPerPreset: 5, Desired: 2, Seed: 3}},
		"empty fleet":  {params: FleetParams{Seed: 1}},
		"no instances": {params: FleetParams{Presets: 10, Seed: 1}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := MustFleet(tc.params)
			p := f.SnapshotParams()
			p.Now = p.Now.Add(tc.later)
			p.Lookback = p.Now.Add(-time.Hour)
			snap := f.Snapshot(p)
			indexed := prebuilds.PlanAll(snap, cfg).Plans
			naive := NaivePlanAll(snap, cfg)
			if diff := cmp.Diff(indexed, naive); diff != "" {
				t.Fatalf("naive plans differ from PlanAll (-indexed +naive):\n%s", diff)
			}
			if len(indexed) != tc.params.Presets {
				t.Fatalf("%d plans for %d presets", len(indexed), tc.params.Presets)
			}
		})
	}
}

// TestPlanKinds pins what the benchmark fleets make the planner do, so that
// a benchmark named "steady" really has nothing to write.
func TestPlanKinds(t *testing.T) {
	t.Parallel()
	cfg := prebuilds.PlanConfig{BackoffInterval: prebuilds.DefaultBackoffInterval}
	count := func(pp prebuilds.PassPlan) (creates, deletes, backoffs int) {
		for _, pl := range pp.Plans {
			creates += pl.Creates()
			deletes += len(pl.Deletes())
			for _, a := range pl.Actions {
				if a.Kind == prebuilds.ActionBackoff {
					backoffs++
				}
			}
		}
		return
	}
	f := MustFleet(SteadyFleet(200))
	if c, d, b := count(prebuilds.PlanAll(f.Snapshot(f.SnapshotParams()), cfg)); c+d+b != 0 {
		t.Errorf("steady fleet plans %d creates, %d deletes, %d backoffs; want nothing", c, d, b)
	}
	f = MustFleet(planParams(200))
	if c, d, b := count(prebuilds.PlanAll(f.Snapshot(f.SnapshotParams()), cfg)); c+d != 0 || b == 0 {
		t.Errorf("planner fleet plans %d creates, %d deletes, %d backoffs; want only backoffs", c, d, b)
	}
	f = MustFleet(ColdFleet(50))
	if c, d, _ := count(prebuilds.PlanAll(f.Snapshot(f.SnapshotParams()), cfg)); c != 50*ColdDesired || d != 0 {
		t.Errorf("cold fleet plans %d creates, %d deletes; want %d creates", c, d, 50*ColdDesired)
	}
}

// flaggedFleet has a deprecated and a deleted template.
func flaggedFleet() *Fleet {
	f := MustFleet(FleetParams{Presets: 20, Templates: 4, VersionsPerTemplate: 2, RunningPerPreset: 2, FailingShare: 0.5, Seed: 5})
	f.Templates[0].Deprecated = true
	f.Templates[1].Deleted = true
	return f
}

func TestFleetSnapshotWithDeprecatedAndDeletedTemplates(t *testing.T) {
	t.Parallel()
	f := flaggedFleet()
	want := f.Snapshot(f.SnapshotParams())
	inactive := 0
	for _, p := range want.Presets {
		if !p.Active() {
			inactive++
		}
	}
	if inactive != 10 {
		t.Fatalf("%d inactive presets in the fleet snapshot, want 10 (two of four templates)", inactive)
	}
	got := storeSnapshot(t, seededMemstore(t, f), f.SnapshotParams())
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("memstore snapshot differs from Fleet.Snapshot (-fleet +memstore):\n%s", diff)
	}
}
