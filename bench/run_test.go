package bench_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prebuildkit/prebuildkit/bench"
	"github.com/prebuildkit/prebuildkit/memstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// thirdStore is a store the suite knows nothing about: memstore seen only
// through the two interfaces (no change feed, no memstore type), as the
// author of another store would hand it to bench.Run.
type thirdStore struct {
	prebuilds.Store
	prebuilds.ControlPlane
}

func newThirdStore(*testing.B) bench.Store {
	s := memstore.New()
	return thirdStore{s, s}
}

// feedStore is the third store with memstore's change feed.
type feedStore struct {
	thirdStore
	prebuilds.ChangeFeed
}

func newFeedStore(*testing.B) bench.Store {
	s := memstore.New()
	return feedStore{thirdStore{s, s}, s}
}

// shardStore is the third store with memstore's shard locks.
type shardStore struct {
	thirdStore
	prebuilds.ShardLocker
}

func newShardStore(*testing.B) bench.Store {
	s := memstore.New()
	return shardStore{thirdStore{s, s}, s}
}

// unseedable is the third store whose control plane refuses templates: a
// benchmark that seeds it fails.
type unseedable struct{ thirdStore }

func (unseedable) CreateTemplate(context.Context, prebuilds.Template) error {
	return errors.New("unseedable: CreateTemplate called")
}

// noDeletes is a broken store: every delete of a prebuild loses a race.
type noDeletes struct{ thirdStore }

func (noDeletes) DeletePrebuild(context.Context, prebuilds.DeletePrebuildParams) (prebuilds.Job, error) {
	return prebuilds.Job{}, prebuilds.ErrConflict
}

// thirdStoreEnv selects what the benchmarks below run; they skip when it is
// unset, so that go test -bench . of this package does not measure them.
const thirdStoreEnv = "PREBUILDKIT_BENCH_THIRD_STORE"

// thirdHarness is small enough for a test: every sub-benchmark once.
func thirdHarness() bench.Harness {
	return bench.Harness{
		NewStore:        newThirdStore,
		Presets:         []int{10}, // TestRunThirdStore passes -bench.presets=20,40, which wins
		ColdFillPresets: 5,
		Concurrency:     []int{1, 4},
	}
}

func BenchmarkThirdStore(b *testing.B) {
	switch os.Getenv(thirdStoreEnv) {
	case "all":
		bench.Run(b, thirdHarness())
	case "claims":
		h := thirdHarness()
		h.Groups = []string{"Claim"}
		h.Claims = []bench.ClaimVariant{
			{Name: "store", Claim: func(ctx context.Context, s bench.Store, p prebuilds.ClaimParams) (prebuilds.Instance, error) {
				return s.Claim(ctx, p)
			}},
			{Name: "again", Claim: func(ctx context.Context, s bench.Store, p prebuilds.ClaimParams) (prebuilds.Instance, error) {
				return s.Claim(ctx, p)
			}},
		}
		bench.Run(b, h)
	case "refill":
		h := thirdHarness()
		h.Groups = []string{"Refill"}
		h.NewStore = newFeedStore
		handles := 0
		h.Handle = func(b *testing.B, s bench.Store) bench.Store {
			handles++
			b.Logf("handle %d", handles)
			return s.(feedStore)
		}
		bench.Run(b, h)
	case "shards":
		h := thirdHarness()
		h.Groups = []string{"Shards"}
		h.NewStore = newShardStore
		h.Handle = func(b *testing.B, s bench.Store) bench.Store { return s.(shardStore) }
		bench.Run(b, h)
	case "shards-without-locks":
		h := thirdHarness()
		h.Groups = []string{"Shards"}
		h.NewStore = func(b *testing.B) bench.Store { return unseedable{newThirdStore(b).(thirdStore)} }
		bench.Run(b, h)
	case "refill-without-feed":
		h := thirdHarness()
		h.Groups = []string{"Refill"}
		bench.Run(b, h)
	case "no-deletes":
		h := thirdHarness()
		h.Groups = []string{"Pass"}
		h.NewStore = func(b *testing.B) bench.Store { return noDeletes{newThirdStore(b).(thirdStore)} }
		bench.Run(b, h)
	default:
		b.Skip("run by TestRunThirdStore")
	}
}

// runThirdStore runs BenchmarkThirdStore in a child process (this test
// binary) with the given mode, once per sub-benchmark, and returns its
// output and whether it passed. Flags in extra come last and win.
func runThirdStore(t *testing.T, mode string, extra ...string) (string, bool) {
	t.Helper()
	args := append([]string{"-test.run=^$", "-test.bench=^BenchmarkThirdStore$",
		"-test.benchtime=1x", "-test.benchmem", "-test.timeout=5m", "-bench.presets=20,40"}, extra...)
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Env = append(os.Environ(), thirdStoreEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("running the child benchmark: %v", err)
	}
	return string(out), err == nil
}

// results maps each benchmark result line of out (name without the
// GOMAXPROCS suffix) to its units, sorted (one parser: metrics).
func results(t *testing.T, out string) map[string][]string {
	t.Helper()
	res := map[string][]string{}
	for name, byUnit := range metrics(t, out) {
		units := slices.Collect(maps.Keys(byUnit))
		slices.Sort(units)
		res[name] = units
	}
	return res
}

// TestRunThirdStore proves that a store other than memstore and pgstore
// runs through bench.Run and produces every sub-benchmark under its stable
// name with its metric, at the sizes -bench.presets sets.
func TestRunThirdStore(t *testing.T) {
	t.Parallel()
	out, ok := runThirdStore(t, "all")
	if !ok {
		t.Fatalf("the suite failed on a correct store:\n%s", out)
	}
	got := results(t, out)
	want := map[string]string{}
	for _, n := range []int{20, 40} {
		want[fmt.Sprintf("Snapshot/presets=%d", n)] = "presets/s"
		want[fmt.Sprintf("Pass/idle/presets=%d", n)] = "presets/s"
		want[fmt.Sprintf("Pass/churn/presets=%d", n)] = "presets/s"
		want[fmt.Sprintf("Pass/targeted/presets=%d", n)] = "presets/pass"
	}
	want["ColdFill/concurrency=1"] = "creates/s"
	want["ColdFill/concurrency=4"] = "creates/s"
	want["Claim"] = "claims/s"
	want["CreatePrebuilds/mode=batched"] = "creates/s"
	want["CreatePrebuilds/mode=per-instance"] = "creates/s"
	for name, unit := range want {
		units, ok := got["BenchmarkThirdStore/"+name]
		switch {
		case !ok:
			t.Errorf("no result for %s", name)
		case !slices.Contains(units, unit) || !slices.Contains(units, "allocs/op"):
			t.Errorf("%s reports %v, want %s and allocs/op", name, units, unit)
		}
	}
	for name := range got {
		if _, ok := want[strings.TrimPrefix(name, "BenchmarkThirdStore/")]; !ok {
			t.Errorf("unexpected result %s (a renamed sub-benchmark breaks the report and benchstat comparisons)", name)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// TestRunClaimVariants: Harness.Claims measures each implementation as
// Claim/impl=<name>, and Harness.Groups keeps only the groups named.
func TestRunClaimVariants(t *testing.T) {
	t.Parallel()
	out, ok := runThirdStore(t, "claims")
	if !ok {
		t.Fatalf("the suite failed:\n%s", out)
	}
	got := results(t, out)
	names := make([]string, 0, len(got))
	for name := range got {
		names = append(names, name)
	}
	slices.Sort(names)
	want := []string{"BenchmarkThirdStore/Claim/impl=again", "BenchmarkThirdStore/Claim/impl=store"}
	if !slices.Equal(names, want) {
		t.Fatalf("results %v, want %v:\n%s", names, want, out)
	}
}

// TestRunFailsOnABrokenStore: the suite checks what a pass wrote, so a
// store whose deletes never happen fails Pass/churn instead of looking
// fast.
func TestRunFailsOnABrokenStore(t *testing.T) {
	t.Parallel()
	out, ok := runThirdStore(t, "no-deletes")
	if ok {
		t.Fatalf("the suite passed a store that never deletes:\n%s", out)
	}
	if !strings.Contains(out, "a churn pass over 20 presets wrote") || !strings.Contains(out, "want 1 creates and 1 deletes") {
		t.Fatalf("the failure does not say what the churn pass wrote and what it should have:\n%s", out)
	}
	if _, ok := results(t, out)["BenchmarkThirdStore/Pass/idle/presets=20"]; !ok {
		t.Fatalf("Pass/idle, which never deletes, did not run before the failure:\n%s", out)
	}
}

// metrics maps each benchmark result line of out (name without the
// GOMAXPROCS suffix) to its values by unit.
func metrics(t *testing.T, out string) map[string]map[string]float64 {
	t.Helper()
	res := map[string]map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i]
		}
		res[name] = map[string]float64{}
		for i := 2; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				t.Fatalf("value %q of %s in %q: %v", f[i], f[i+1], sc.Text(), err)
			}
			res[name][f[i+1]] = v
		}
	}
	return res
}

// TestRunRefill: a store with a change feed gets Refill/presets=N with the
// latency quantiles and the interval-only figures beside them; they are
// what a targeted pass can give (at least TriggerDelay after the claim,
// well under the Interval), and Harness.Handle supplies the second
// replica's and the claimer's handles.
func TestRunRefill(t *testing.T) {
	t.Parallel()
	out, ok := runThirdStore(t, "refill", "-test.benchtime=40x")
	if !ok {
		t.Fatalf("Refill failed on a store with a change feed:\n%s", out)
	}
	got := metrics(t, out)
	trigger := float64(prebuilds.DefaultTriggerDelay) / 1e6
	interval := float64(prebuilds.DefaultInterval) / 1e6
	for _, n := range []int{20, 40} {
		name := fmt.Sprintf("BenchmarkThirdStore/Refill/presets=%d", n)
		m, ok := got[name]
		if !ok {
			t.Fatalf("no result for %s:\n%s", name, out)
		}
		p50, p99 := m["p50-ms"], m["p99-ms"]
		switch {
		case p50 < trigger:
			t.Errorf("%s: p50 %.2f ms is below TriggerDelay (%.0f ms): the figure cannot be a targeted pass's", name, p50, trigger)
		case p99 < p50:
			t.Errorf("%s: p99 %.2f ms below p50 %.2f ms", name, p99, p50)
		case p99 >= interval/2:
			t.Errorf("%s: p99 %.2f ms is not a targeted pass's (the Interval is %.0f ms)", name, p99, interval)
		}
		// ns/op is the mean latency plus the loop's own microseconds; with
		// 40 claims p99 is the maximum.
		if mean := m["ns/op"] / 1e6; mean < trigger || mean > p99+1 {
			t.Errorf("%s: ns/op %.2f ms is not the mean of latencies between %.0f ms and p99 %.2f ms", name, mean, trigger, p99)
		}
		if ip50, ip99 := m["interval-p50-ms"], m["interval-p99-ms"]; ip50 < interval/2 || ip99 < 0.99*interval || ip99 < ip50 {
			t.Errorf("%s: interval-only figures %.0f / %.0f ms, want at least Interval/2 and 0.99 × Interval (%.0f ms)", name, ip50, ip99, interval)
		}
	}
	if c := strings.Count(out, "handle "); c != 2*bench.RefillReplicas {
		t.Errorf("Harness.Handle was called %d times for two fleets, want %d per fleet (the second replica's and the claimer's):\n%s",
			c, bench.RefillReplicas, out)
	}
}

// TestRunRefillSkipsWithoutFeed: a store without a change feed skips
// Refill with a message that says why.
func TestRunRefillSkipsWithoutFeed(t *testing.T) {
	t.Parallel()
	out, ok := runThirdStore(t, "refill-without-feed", "-test.v")
	if !ok {
		t.Fatalf("Refill failed on a store without a change feed instead of skipping:\n%s", out)
	}
	if len(results(t, out)) != 0 {
		t.Errorf("Refill reported results for a store without a change feed:\n%s", out)
	}
	if !strings.Contains(out, "--- SKIP: BenchmarkThirdStore/Refill/presets=20") || !strings.Contains(out, "does not implement prebuilds.ChangeFeed") {
		t.Errorf("the skip does not say that the store has no change feed:\n%s", out)
	}
}

// TestRunShards: the Shards group measures a full cycle by 1, 2 and 4
// replicas at -bench.shard-presets, each cycle covering every shard; a
// store without shard locks skips it without loading a fleet.
func TestRunShards(t *testing.T) {
	t.Parallel()
	out, ok := runThirdStore(t, "shards", "-bench.shard-presets=40")
	if !ok {
		t.Fatalf("the suite failed on a correct store:\n%s", out)
	}
	got := results(t, out)
	for _, n := range []int{1, 2, 4} {
		name := fmt.Sprintf("BenchmarkThirdStore/Shards/presets=40/replicas=%d", n)
		if units := got[name]; !slices.Contains(units, "shard-passes/cycle") || !slices.Contains(units, "presets/s") {
			t.Errorf("%s reports %v, want shard-passes/cycle and presets/s\n%s", name, units, out)
		}
	}
	if len(got) != 3 {
		t.Errorf("%d results, want 3:\n%s", len(got), out)
	}
	// A store without shard locks skips, saying why, before any fleet is
	// written to it (this one fails when seeded).
	out, ok = runThirdStore(t, "shards-without-locks", "-test.v")
	if !ok || !strings.Contains(out, "does not implement prebuilds.ShardLocker") || strings.Contains(out, "CreateTemplate called") {
		t.Errorf("a store without shard locks: passed %v, want a skip that says why, before seeding:\n%s", ok, out)
	}
}
