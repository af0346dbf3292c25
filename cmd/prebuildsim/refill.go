package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Claim-to-refill latency: for each served claim that leaves its pool
// short, the simulated time from the claim to the commit of the create of
// its replacement.
//
// A served claim whose pool is short afterwards (desired − valid running −
// starting > 0, the planner's own count) joins its preset's queue of
// claims awaiting a replacement, unless the queue already holds as many
// claims as the pool is short (the claim took a surplus prebuild: no
// replacement is due). Every prebuild the Reconciler creates for the
// preset, in a full or a targeted pass, refills the oldest waiting claim;
// creates beyond the queue (a cold start, a failed build replaced, an
// expired prebuild renewed) refill none. When a pass finds the pool
// shorter than its queue (the schedule lowered desired, the version was
// replaced), the newest excess claims leave the queue unrefilled: their
// replacement is no longer due.

// refillStats are a group's claim-to-refill figures.
type refillStats struct {
	// latencies of the refilled claims, in refill order.
	latencies []time.Duration
	// unneeded counts served claims that took a surplus prebuild;
	// obviated, claims whose replacement stopped being due; waiting,
	// claims still waiting when the run ended.
	unneeded, obviated, waiting int
}

// merge adds o's figures to r.
func (r *refillStats) merge(o refillStats) {
	r.latencies = append(r.latencies, o.latencies...)
	r.unneeded += o.unneeded
	r.obviated += o.obviated
	r.waiting += o.waiting
}

// quantile returns the q-quantile of the latencies by nearest rank (q = 1
// is the maximum), false when no claim was refilled.
func (r refillStats) quantile(q float64) (time.Duration, bool) {
	n := len(r.latencies)
	if n == 0 {
		return 0, false
	}
	sorted := slices.Clone(r.latencies)
	slices.Sort(sorted)
	i := int(math.Ceil(q*float64(n))) - 1
	return sorted[min(max(i, 0), n-1)], true
}

// latencyText formats a latency quantile: milliseconds below a second,
// "—" when nothing was refilled.
func (r refillStats) latencyText(q float64) string {
	d, ok := r.quantile(q)
	if !ok {
		return "—"
	}
	return latencyString(d)
}

// latencyString prints a latency to the millisecond below a minute, to
// the second above: 25ms, 12.5s, 3m5s.
func latencyString(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d < time.Minute:
		return d.Round(time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// shortOf is how many prebuilds a preset's pool lacks at now, as the
// planner counts it: desired minus valid (not expired) running prebuilds
// minus builds in progress that are not stuck. An inactive preset lacks
// none.
func shortOf(v prebuilds.PresetSnapshot, now time.Time) int {
	if !v.Preset.Active() {
		return 0
	}
	d, _ := prebuilds.DesiredAt(v.Preset.Preset, now)
	valid := 0
	for _, r := range v.Running {
		if !prebuilds.Expired(v.Preset.Preset, r.CreatedAt, now) {
			valid++
		}
	}
	return max(d-valid-max(v.Starting-len(v.Stuck), 0), 0)
}

// claimServed records a served claim from presetID at now: the claim
// waits for a replacement if its pool is short.
func (s *sim) claimServed(ctx context.Context, presetID uuid.UUID, now time.Time) error {
	params := s.rec.Config().SnapshotParams(now)
	params.Presets = []uuid.UUID{presetID}
	snap, err := s.store.Snapshot(ctx, params)
	if err != nil {
		return fmt.Errorf("pool after a claim at %s: %w", offset(now, s.opts.start), err)
	}
	short := 0
	for _, v := range snap.Index() {
		short = shortOf(v, now)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.presets[presetID]
	if short > len(ps.awaiting) {
		ps.awaiting = append(ps.awaiting, prebuilds.Micro(now))
	} else {
		ps.group.refill.unneeded++
	}
	return nil
}

// recordCreate is called for every committed create of the Reconciler
// (simStore): each new prebuild refills the oldest waiting claim of its
// preset. It runs on the Reconciler's executor goroutine, so it takes
// s.mu.
func (s *sim) recordCreate(p prebuilds.CreatePrebuildsParams, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.presets[p.PresetID]
	if ps == nil {
		return
	}
	k := min(n, len(ps.awaiting))
	for _, at := range ps.awaiting[:k] {
		ps.group.refill.latencies = append(ps.group.refill.latencies, prebuilds.Micro(p.Now).Sub(at))
	}
	ps.awaiting = slices.Delete(ps.awaiting, 0, k)
}

// trimAwaiting drops the newest waiting claims of a preset whose pool is
// now short by fewer: their replacement is no longer due.
func (s *sim) trimAwaiting(ps *presetState, short int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if excess := len(ps.awaiting) - short; excess > 0 {
		ps.group.refill.obviated += excess
		ps.awaiting = ps.awaiting[:short]
	}
}

// refillOf returns a group's refill figures, the claims still waiting
// counted.
func (s *sim) refillOf(g *group) refillStats {
	r := g.refill
	r.latencies = slices.Clone(r.latencies)
	for _, id := range g.presets {
		r.waiting += len(s.presets[id].awaiting)
	}
	return r
}
