package main

import (
	"bytes"
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// TestDrainFeedSeesEveryCommittedChange: after drainFeed, every preset a
// committed write named is dirty, whatever memstore's feed goroutine was
// doing, and the pass is due -trigger-delay after the drain. Without the
// barrier a drain would miss changes still on their way (and differ from
// one run to the next).
func TestDrainFeedSeesEveryCommittedChange(t *testing.T) {
	opts, err := parseFlags([]string{"-trigger-delay=40ms", "-presets=5"}, io.Discard)
	require.NoError(t, err)
	s := newSim(opts, io.Discard, io.Discard)
	ctx := context.Background()
	require.NoError(t, s.setUpFleet(ctx))
	require.NoError(t, s.setUpBarrier(ctx))
	stop, err := s.subscribe(ctx)
	require.NoError(t, err)
	defer stop()

	var all []uuid.UUID
	for _, g := range s.groups {
		all = append(all, g.active...)
	}
	now := s.clock.Now()
	for round := range 200 {
		// A different subset each round: round-robin over the presets.
		var want []uuid.UUID
		for i, id := range all {
			if (i+round)%3 == 0 {
				require.NoError(t, s.store.ResetPreset(ctx, id, now))
				want = append(want, id)
			}
		}
		now = s.clock.Advance(time.Second)
		require.NoError(t, s.drainFeed(ctx, now))
		var got []uuid.UUID
		for id := range s.trigger.dirty {
			got = append(got, id)
		}
		slices.SortFunc(got, prebuilds.CompareUUID)
		slices.SortFunc(want, prebuilds.CompareUUID)
		require.Equal(t, want, got, "round %d: the presets written before the drain", round)
		require.Equal(t, now.Add(40*time.Millisecond), s.trigger.at, "round %d: the pass is due -trigger-delay after the first change", round)
		clear(s.trigger.dirty)
		s.trigger.at = time.Time{}
	}

	// A drain with nothing written leaves nothing pending.
	require.NoError(t, s.drainFeed(ctx, now))
	require.Empty(t, s.trigger.dirty)
	require.False(t, s.trigger.pending())
}

// refillOfGroups returns the refill figures of the named groups.
func refillOfGroups(t *testing.T, s *sim, names ...string) map[string]refillStats {
	t.Helper()
	out := map[string]refillStats{}
	for _, name := range names {
		out[name] = s.refillOf(groupByName(t, s, name))
	}
	return out
}

// healthy are the groups whose pools nothing holds back at -failure-rate 0
// under PolicyCoder (hanging's hung builds count as supply).
var healthy = []string{"web", "ci-runner", "gpu", "hanging"}

// Targeted passes refill a claimed pool -trigger-delay after the claim,
// long before the next full pass; interval-only passes wait for it.
func TestSimulationTargetedPassesRefillBeforeTheNextInterval(t *testing.T) {
	args := []string{"-duration=1h", "-failure-rate=0", "-operator-delay=0", "-quiet"}

	targeted := simulateArgs(t, args...)
	require.Positive(t, targeted.targetedPasses)
	require.Positive(t, targeted.dirtied)
	for name, r := range refillOfGroups(t, targeted, healthy...) {
		require.NotEmpty(t, r.latencies, "%s: claims were refilled", name)
		atPass := 0
		for _, d := range r.latencies {
			// A claim made at a full pass's instant is refilled by that
			// pass; every other one by the targeted pass after it.
			require.Contains(t, []time.Duration{0, prebuilds.DefaultTriggerDelay}, d, "%s: refill latency", name)
			if d == 0 {
				atPass++
			}
		}
		require.Less(t, atPass, len(r.latencies)/2+1, "%s: most refills come from targeted passes", name)
		p50, _ := r.quantile(0.5)
		require.Equal(t, prebuilds.DefaultTriggerDelay, p50, name)
		require.Zero(t, r.waiting, "%s: no claim waits at the end", name)
	}

	slow := simulateArgs(t, append(args, "-trigger-delay=2s")...)
	for name, r := range refillOfGroups(t, slow, healthy...) {
		p50, ok := r.quantile(0.5)
		require.True(t, ok, name)
		require.Equal(t, 2*time.Second, p50, "%s: -trigger-delay sets the refill time", name)
	}

	interval := simulateArgs(t, append(args, "-targeted=false")...)
	require.Zero(t, interval.targetedPasses)
	require.Zero(t, interval.dirtied)
	for name, r := range refillOfGroups(t, interval, healthy...) {
		require.NotEmpty(t, r.latencies, name)
		for _, d := range r.latencies {
			require.Less(t, d, interval.opts.interval, "%s: the next full pass refills the pool", name)
			require.Zero(t, d%interval.opts.tick, "%s: claims and passes happen at simulation steps", name)
		}
		p50, _ := r.quantile(0.5)
		require.Greater(t, p50, prebuilds.DefaultTriggerDelay, "%s: interval-only refills wait for the next pass", name)
		mx, _ := r.quantile(1)
		require.Greater(t, mx, 10*time.Second, name)
	}

	// Every served claim is accounted for once.
	for _, s := range []*sim{targeted, slow, interval} {
		for _, g := range s.groups {
			r := s.refillOf(g)
			require.Equal(t, g.served, len(r.latencies)+r.unneeded+r.obviated+r.waiting, "%s: served claims", g.spec.name)
		}
	}
}

// Claims the pool does not need replaced: after business hours ci-runner's
// desired count drops from 40 to 20, and claims from the surplus are not
// waited for, nor are claims whose replacement the lower count made moot.
func TestSimulationRefillSkipsSurplusClaims(t *testing.T) {
	// 08:40 + 9h20m: 18:00 in New York, when the schedule ends.
	s := simulateArgs(t, "-duration=10h", "-failure-rate=0", "-operator-delay=0", "-quiet", "-claim-rate=3")
	ci := s.refillOf(groupByName(t, s, "ci-runner"))
	require.Positive(t, ci.unneeded, "claims from the surplus after the schedule ended need no replacement")
	for _, d := range ci.latencies {
		require.LessOrEqual(t, d, prebuilds.DefaultTriggerDelay)
	}
}

func TestRefillQuantiles(t *testing.T) {
	t.Parallel()
	var r refillStats
	_, ok := r.quantile(0.5)
	require.False(t, ok)
	require.Equal(t, "—", r.latencyText(0.99))
	for i := 100; i >= 1; i-- {
		r.latencies = append(r.latencies, time.Duration(i)*time.Second)
	}
	for q, want := range map[float64]time.Duration{0.5: 50 * time.Second, 0.99: 99 * time.Second, 1: 100 * time.Second, 0: time.Second} {
		got, ok := r.quantile(q)
		require.True(t, ok)
		require.Equal(t, want, got, "q=%v", q)
	}
	require.Equal(t, time.Duration(100)*time.Second, r.latencies[0], "quantile leaves the latencies in refill order")
	for d, want := range map[time.Duration]string{
		0: "0s", 25 * time.Millisecond: "25ms", 12500 * time.Millisecond: "12.5s",
		4*time.Minute + 20025*time.Millisecond: "4m20s", time.Hour + 5*time.Second: "1h0m5s",
	} {
		require.Equal(t, want, latencyString(d))
	}
}

// The same flags give the same output, in either mode, also with several
// presets per group (more changes per drain) and when the process runs on
// one thread or many.
func TestSimulationDeterministicInBothModes(t *testing.T) {
	for _, mode := range []string{"-targeted=true", "-targeted=false"} {
		args := []string{"-duration=30m", "-seed=11", "-presets=4", mode}
		var first string
		for i := range 4 {
			var stdout, stderr bytes.Buffer
			require.Equal(t, exitOK, run(args, &stdout, &stderr), "stderr: %s", stderr.String())
			if i == 0 {
				first = stdout.String()
				require.Contains(t, first, "claim → refill (")
				continue
			}
			require.Equal(t, first, stdout.String(), "%s: run %d differs from run 0", mode, i)
		}
	}
}

// TestWakeAtBackoffEnd: with targeted passes, the end of a planned backoff
// makes its preset dirty a microsecond after the end and sets the pass
// -trigger-delay later, as Run does; a plan without backoff forgets it;
// interval-only runs never wake.
func TestWakeAtBackoffEnd(t *testing.T) {
	opts, err := parseFlags([]string{"-trigger-delay=40ms"}, io.Discard)
	require.NoError(t, err)
	s := newSim(opts, io.Discard, io.Discard)
	s.feed = make(chan prebuilds.Change)
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	a, b := uuid.New(), uuid.New()
	s.noteWakes(prebuilds.PassPlan{Plans: []prebuilds.Plan{
		{PresetID: a, Actions: []prebuilds.Action{{Kind: prebuilds.ActionBackoff, Until: t0.Add(2 * time.Minute)}}},
		{PresetID: b, Actions: []prebuilds.Action{{Kind: prebuilds.ActionBackoff, Until: t0.Add(time.Minute)}}},
	}})
	wake, ok := s.nextWake()
	require.True(t, ok)
	require.Equal(t, t0.Add(time.Minute+time.Microsecond), wake, "the earliest end, a microsecond on")

	s.wakeUp(t0.Add(time.Minute)) // at the end itself: creation has not resumed
	require.False(t, s.trigger.pending())
	s.wakeUp(wake)
	require.Equal(t, map[uuid.UUID]struct{}{b: {}}, s.trigger.dirty)
	require.Equal(t, wake.Add(40*time.Millisecond), s.trigger.at)

	// a's backoff is lifted by a later pass: nothing wakes for it.
	s.noteWakes(prebuilds.PassPlan{Plans: []prebuilds.Plan{{PresetID: a}}})
	_, ok = s.nextWake()
	require.False(t, ok)

	s.feed = nil // interval-only
	s.noteWakes(prebuilds.PassPlan{Plans: []prebuilds.Plan{
		{PresetID: a, Actions: []prebuilds.Action{{Kind: prebuilds.ActionBackoff, Until: t0}}},
	}})
	_, ok = s.nextWake()
	require.False(t, ok, "interval-only runs do not wake")
}
