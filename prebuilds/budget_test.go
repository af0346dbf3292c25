package prebuilds

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"pgregory.net/rapid"
)

// TestShareCreatesProperties: for random asks and budgets, the grants never
// exceed an ask, add up to min(budget, Σ want), are max-min fair (an ask
// that got less than it wanted got at least any other grant less one), and
// when two unmet asks differ by one, the one with the larger missing
// fraction (then the earlier) got more.
func TestShareCreatesProperties(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(0, 12).Draw(t, "n")
		asks := make([]CreateAsk, n)
		total := 0
		for i := range asks {
			d := rapid.IntRange(0, 20).Draw(t, "desired")
			asks[i] = CreateAsk{Want: rapid.IntRange(0, max(d, 1)).Draw(t, "want"), Desired: d}
			total += asks[i].Want
		}
		budget := rapid.IntRange(-1, total+3).Draw(t, "budget")
		grants := ShareCreates(asks, budget)
		if len(grants) != n {
			t.Fatalf("%d grants for %d asks", len(grants), n)
		}
		sum := 0
		for i, g := range grants {
			if g < 0 || g > asks[i].Want {
				t.Fatalf("ask %d %+v granted %d", i, asks[i], g)
			}
			sum += g
		}
		if want := min(max(budget, 0), total); sum != want {
			t.Fatalf("granted %d in all, want min(budget %d, total %d) = %d", sum, budget, total, want)
		}
		for i, gi := range grants {
			if gi == asks[i].Want {
				continue
			}
			for j, gj := range grants {
				if gj > gi+1 {
					t.Fatalf("unmet ask %d (%+v) got %d while ask %d (%+v) got %d: not max-min fair", i, asks[i], gi, j, asks[j], gj)
				}
				if gj == gi+1 && gj <= asks[j].Want && j != i {
					// j won the tie-break: a larger missing fraction, or
					// an equal one and an earlier position.
					if c := compareMissing(asks[j], asks[i]); c < 0 || (c == 0 && j > i) {
						t.Fatalf("ask %d (%+v) got %d before ask %d (%+v) with %d", j, asks[j], gj, i, asks[i], gi)
					}
				}
			}
		}
	})
}

func TestShareCreatesExamples(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		asks   []CreateAsk
		budget int
		want   []int
	}{
		{"under budget", []CreateAsk{{2, 4}, {1, 1}}, 5, []int{2, 1}},
		{"round robin", []CreateAsk{{10, 10}, {10, 10}, {1, 10}}, 7, []int{3, 3, 1}},
		{"remainder to the emptiest pool", []CreateAsk{{2, 10}, {2, 2}}, 3, []int{1, 2}},
		{"equal fractions: earlier first", []CreateAsk{{3, 6}, {2, 4}}, 3, []int{2, 1}},
		{"no budget", []CreateAsk{{3, 3}}, 0, []int{0}},
		{"negative wants get nothing", []CreateAsk{{-2, 3}, {2, 2}}, 1, []int{0, 1}},
	} {
		if got := ShareCreates(tt.asks, tt.budget); !cmp.Equal(tt.want, got) {
			t.Errorf("%s: ShareCreates(%v, %d) = %v, want %v", tt.name, tt.asks, tt.budget, got, tt.want)
		}
	}
}

func TestPlanAllAppliesBudget(t *testing.T) {
	t.Parallel()
	a, b := presetRow("a", 4), presetRow("b", 4)
	snap := &GlobalSnapshot{Now: t0, Presets: []PresetRow{a, b}}
	pp := PlanAll(snap, PlanConfig{MaxCreatesPerPass: 3})
	got := map[uuid.UUID][]Action{}
	for _, p := range pp.Plans {
		got[p.PresetID] = p.Actions
	}
	// Both pools are empty (missing fraction 1): a is first in ID order?
	first, second := a, b
	if CompareUUID(b.ID, a.ID) < 0 {
		first, second = b, a
	}
	want := map[uuid.UUID][]Action{}
	want[first.ID] = []Action{{Kind: ActionCreate, Reason: ReasonMissing, Count: 2}, {Kind: ActionBlocked, Reason: ReasonBudget, Count: *first.Desired - 2}}
	want[second.ID] = []Action{{Kind: ActionCreate, Reason: ReasonMissing, Count: 1}, {Kind: ActionBlocked, Reason: ReasonBudget, Count: *second.Desired - 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("budgeted plans (-want +got):\n%s", diff)
	}
}
