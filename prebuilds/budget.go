package prebuilds

import (
	"slices"
	"sort"
)

// CreateAsk is one preset's creates in a pass: Want prebuilds missing out
// of Desired (its desired count at the pass instant, ≥ Want).
type CreateAsk struct {
	Want, Desired int
}

// ShareCreates shares a budget of creates among asks, max-min fairly, and
// returns the grant of each ask (same order). Grants are handed out one at
// a time, round-robin, over the asks ordered by missing fraction
// (Want ÷ Desired, largest first; equal fractions in the order of asks)
// until the budget is spent or every ask is met. So no ask gets more than
// it wants, the grants add up to min(budget, Σ Want), and an ask that got
// less than it wants got at least as many as any other ask, less one
// (the one it lost to a larger missing fraction, or an earlier ask). A
// budget ≤ 0 grants nothing; an ask with Want ≤ 0 gets nothing.
func ShareCreates(asks []CreateAsk, budget int) []int {
	grants := make([]int, len(asks))
	total := 0
	for _, a := range asks {
		total += max(a.Want, 0)
	}
	if budget <= 0 {
		return grants
	}
	if total <= budget {
		for i, a := range asks {
			grants[i] = max(a.Want, 0)
		}
		return grants
	}
	// The level L such that Σ min(want, L) ≤ budget < Σ min(want, L+1):
	// every ask gets min(want, L), and the rest of the budget goes one
	// each to the first asks, in priority order, that want more than L.
	want := func(i int) int { return max(asks[i].Want, 0) }
	granted := func(level int) int {
		n := 0
		for i := range asks {
			n += min(want(i), level)
		}
		return n
	}
	hi := 0
	for i := range asks {
		hi = max(hi, want(i))
	}
	level := sort.Search(hi+1, func(l int) bool { return granted(l) > budget }) - 1
	left := budget - granted(level)
	for i := range asks {
		grants[i] = min(want(i), level)
	}
	order := make([]int, len(asks))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return compareMissing(asks[b], asks[a]) })
	for _, i := range order {
		if left == 0 {
			break
		}
		if want(i) > level {
			grants[i]++
			left--
		}
	}
	return grants
}

// compareMissing orders asks by missing fraction Want ÷ Desired, exactly
// (cross-multiplied, no floating point). Desired ≤ 0 counts as a fraction
// of 1 (everything missing).
func compareMissing(a, b CreateAsk) int {
	aw, ad := max(a.Want, 0), a.Desired
	bw, bd := max(b.Want, 0), b.Desired
	if ad <= 0 {
		aw, ad = 1, 1
	}
	if bd <= 0 {
		bw, bd = 1, 1
	}
	l, r := int64(aw)*int64(bd), int64(bw)*int64(ad)
	switch {
	case l < r:
		return -1
	case l > r:
		return 1
	}
	return 0
}

// applyBudget limits the creates of plans to budget with ShareCreates: a
// create cut short keeps its granted count and is followed by
// Blocked(budget) for the rest; one granted nothing becomes Blocked(budget).
func applyBudget(plans []Plan, budget int) {
	asks := make([]CreateAsk, len(plans))
	for i, p := range plans {
		asks[i] = CreateAsk{Want: p.Creates(), Desired: p.Desired}
	}
	grants := ShareCreates(asks, budget)
	for i := range plans {
		cut := asks[i].Want - grants[i]
		if cut <= 0 {
			continue
		}
		var out []Action
		for _, a := range plans[i].Actions {
			if a.Kind != ActionCreate {
				out = append(out, a)
				continue
			}
			g := min(a.Count, grants[i])
			grants[i] -= g
			if g > 0 {
				out = append(out, Action{Kind: ActionCreate, Reason: a.Reason, Count: g})
			}
			if g < a.Count {
				out = append(out, Action{Kind: ActionBlocked, Reason: ReasonBudget, Count: a.Count - g})
			}
		}
		plans[i].Actions = out
	}
}
