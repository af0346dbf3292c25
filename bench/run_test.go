package bench_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
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
// output and whether it passed.
func runThirdStore(t *testing.T, mode string) (string, bool) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkThirdStore$",
		"-test.benchtime=1x", "-test.benchmem", "-test.timeout=5m", "-bench.presets=20,40")
	cmd.Env = append(os.Environ(), thirdStoreEnv+"="+mode)
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("running the child benchmark: %v", err)
	}
	return string(out), err == nil
}

// results maps each benchmark result line of out (name without the
// GOMAXPROCS suffix) to its units.
func results(out string) map[string][]string {
	res := map[string][]string{}
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
		for i := 3; i < len(f); i += 2 {
			res[name] = append(res[name], f[i])
		}
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
	got := results(out)
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
	got := results(out)
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
	if _, ok := results(out)["BenchmarkThirdStore/Pass/idle/presets=20"]; !ok {
		t.Fatalf("Pass/idle, which never deletes, did not run before the failure:\n%s", out)
	}
}
