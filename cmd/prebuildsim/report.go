package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// poolState is the state of some presets' pools at one instant.
type poolState struct {
	desired, running, eligible, expired int
	starting, deleting                  int
	created, failedCounter              int
	hardLimited, validationFailed       int
	statuses                            map[prebuilds.PresetStatus]int
}

func (p *poolState) add(v prebuilds.PresetSnapshot, now time.Time) {
	if p.statuses == nil {
		p.statuses = map[prebuilds.PresetStatus]int{}
	}
	active := v.Preset.Active()
	if active {
		d, _ := prebuilds.DesiredAt(v.Preset.Preset, now)
		p.desired += d
		p.statuses[v.Preset.Status]++
	}
	p.running += len(v.Running)
	for _, r := range v.Running {
		switch {
		case prebuilds.Expired(v.Preset.Preset, r.CreatedAt, now):
			p.expired++
		case active && r.Ready:
			p.eligible++
		}
	}
	p.starting += v.Starting
	p.deleting += v.Deleting
	p.created += v.Counters.Created
	p.failedCounter += v.Counters.Failed
	switch v.Preset.Status {
	case prebuilds.PresetHardLimited:
		p.hardLimited++
	case prebuilds.PresetValidationFailed:
		p.validationFailed++
	}
}

// moveStatus counts one preset's status transition (a set_status action
// of the pass) in the status tallies.
func (p *poolState) moveStatus(from, to prebuilds.PresetStatus) {
	for st, d := range map[prebuilds.PresetStatus]int{from: -1, to: +1} {
		switch st {
		case prebuilds.PresetHardLimited:
			p.hardLimited += d
		case prebuilds.PresetValidationFailed:
			p.validationFailed += d
		}
	}
}

// fleetState sums the pools of every preset.
func (s *sim) fleetState(views []prebuilds.PresetSnapshot, now time.Time) poolState {
	var f poolState
	for _, v := range views {
		f.add(v, now)
	}
	return f
}

// status summarises the statuses of a group's active presets: the status
// when they agree, else counts per status.
func (p poolState) status() string {
	if len(p.statuses) == 1 {
		for st := range p.statuses {
			return string(st)
		}
	}
	keys := make([]string, 0, len(p.statuses))
	for st, n := range p.statuses {
		keys = append(keys, fmt.Sprintf("%d×%s", n, st))
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

// pools reads the state of every group's pools now.
func (s *sim) pools(ctx context.Context) (map[*group]*poolState, error) {
	now := s.clock.Now()
	views, err := s.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	pools := map[*group]*poolState{}
	for _, g := range s.groups {
		pools[g] = &poolState{}
	}
	for _, v := range views {
		pools[s.presets[v.Preset.ID].group].add(v, now)
	}
	return pools, nil
}

// summary prints the final table per group and the timeline.
func (s *sim) summary(ctx context.Context) error {
	pools, err := s.pools(ctx)
	if err != nil {
		return err
	}

	fmt.Fprintf(s.out, "\nsummary after %s (seed %d, policy %s, %s): %d full passes, %d targeted passes (over %d presets named by the change feed), %d start builds, %d delete builds, %d hand-offs dropped of a JobSink of %d (%d jobs found by polling), %d queued builds canceled, %d stuck builds failed (%d hung, %d late reports refused), %d plan errors, %d clamped creates\n",
		shortDuration(s.opts.duration), s.opts.seed, s.opts.policy, modeText(s.opts), s.passes, s.targetedPasses, s.dirtied, s.prov.builds, s.prov.deletes,
		s.jobsDropped, s.opts.sinkCapacity(), s.prov.polled, s.canceled, s.timedOut, s.prov.hung, s.prov.lateReports, s.presetErrors, s.clamped)
	tw := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	nameWidth := len("group")
	for _, g := range s.groups {
		nameWidth = max(nameWidth, len(g.spec.name))
	}
	fmt.Fprintf(tw, "%-*s\t", nameWidth, "group")
	fmt.Fprintln(tw, "desired\trunning\teligible\tcreated\tfailed\ttimed_out\texpired\tserved\tmissed\tfill\tbackoff\tblocked\theld\thard_limited\trecovered\tresets\tvalidation_failed\t  status")
	var total poolState
	var served, missed, failed, timedOut, expired int
	for _, g := range s.groups {
		p := pools[g]
		fmt.Fprintf(tw, "%-*s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.3f\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t  %s\n",
			nameWidth, g.spec.name, p.desired, p.running, p.eligible, p.created, g.failed, g.timedOut, g.expired, g.served, g.missed,
			g.fill(), shortDuration(s.perPreset(g.backoffTime)), shortDuration(s.perPreset(g.blockedTime)), shortDuration(s.perPreset(g.heldTime)),
			g.events[prebuilds.EventHardLimited], g.events[prebuilds.EventRecovered], g.operatorResets, g.events[prebuilds.EventValidationFailed],
			p.status())
		total.desired += p.desired
		total.running += p.running
		total.eligible += p.eligible
		total.created += p.created
		served += g.served
		missed += g.missed
		failed += g.failed
		timedOut += g.timedOut
		expired += g.expired
	}
	fmt.Fprintf(tw, "%-*s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n",
		nameWidth, "total", total.desired, total.running, total.eligible, total.created, failed, timedOut, expired, served, missed)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}

	if err := s.refillSummary(nameWidth); err != nil {
		return err
	}

	fmt.Fprint(s.out, "\n"+legend)
	fmt.Fprintln(s.out, "\ntimeline:")
	for i, e := range s.timeline {
		if i == maxTimeline {
			fmt.Fprintf(s.out, "  … %d more entries (-v logs every one)\n", len(s.timeline)-maxTimeline)
			break
		}
		fmt.Fprintf(s.out, "  t=%-9s %-15s %s\n", offset(e.at, s.opts.start), e.who, e.text)
	}
	return nil
}

// refillSummary prints the claim-to-refill latency per group and overall.
func (s *sim) refillSummary(nameWidth int) error {
	fmt.Fprintf(s.out, "\nclaim → refill (%s): simulated time from a served claim to the commit of its replacement's create\n", modeText(s.opts))
	tw := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\trefilled\tp50\tp99\tmax\tunneeded\tobviated\twaiting\t\n", nameWidth, "group")
	var total refillStats
	row := func(name string, r refillStats) {
		fmt.Fprintf(tw, "%-*s\t%d\t%s\t%s\t%s\t%d\t%d\t%d\t\n", nameWidth, name, len(r.latencies),
			r.latencyText(0.5), r.latencyText(0.99), r.latencyText(1), r.unneeded, r.obviated, r.waiting)
	}
	for _, g := range s.groups {
		r := s.refillOf(g)
		row(g.spec.name, r)
		total.merge(r)
	}
	row("total", total)
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write refill summary: %w", err)
	}
	return nil
}

// modeText says how the run reconciles: targeted passes (and their
// trigger delay) or the interval only.
func modeText(o options) string {
	if o.targeted {
		return fmt.Sprintf("targeted passes %s after a change, full passes every %s", latencyString(o.triggerDelay), o.interval)
	}
	return fmt.Sprintf("interval-only: full passes every %s", o.interval)
}

// perPreset turns a group time summed over its presets into the average
// per preset: each group has -presets active presets at any time.
func (s *sim) perPreset(d time.Duration) time.Duration {
	return d / time.Duration(s.opts.presets)
}

// fill is the group's fill ratio: the time average of min(claimable,
// desired) ÷ desired over its active presets (0 when nothing was sampled).
func (g *group) fill() float64 {
	if g.fillTime == 0 {
		return 0
	}
	return g.fillArea / g.fillTime
}

// maxTimeline bounds the timeline printed in the summary.
const maxTimeline = 100

const legend = `columns: desired, running, eligible (ready, valid, active) now; created: prebuilds ever
created; failed: failed start builds, timed_out (failed by -build-timeout) included; expired:
prebuilds deleted because they outlived the TTL; served/missed: claims; fill: time average of
min(eligible, desired) ÷ desired; backoff / blocked / held: time creation was held back by
backoff / blocked by the hard limit or validation_failed / held to one probe or canary at a time
or by -max-creates, per preset (the average over the group's presets); hard_limited, recovered,
validation_failed: events; resets: the operator's; status: of the active presets now.
claim → refill: refilled claims and the quantiles of their latency; unneeded: served claims that
took a surplus prebuild (no replacement due); obviated: claims whose replacement stopped being
due (desired lowered, version replaced); waiting: claims still waiting at the end.
Progress lines: the pools as the pass found them (running/desired, eligible, expired, creating,
deleting), then what it did (created, deleted, timed_out) and how many presets it held back.
`

// shortDuration prints whole minutes and seconds: 0s, 45s, 12m30s, 1h05m.
func shortDuration(d time.Duration) string {
	d = d.Truncate(time.Second)
	switch {
	case d == 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	default:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
}
