package main

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// failureMode says how a group's start builds fail.
type failureMode int

const (
	// failRate fails with -failure-rate.
	failRate failureMode = iota
	// failAlways fails every build (transient kind).
	failAlways
	// failHalf fails half of the builds (transient kind).
	failHalf
	// failValidation fails every build with a validation failure.
	failValidation
)

// troubled reports whether the mode keeps failing whatever -failure-rate
// says: the failure-free baseline of -compare leaves such groups as they
// are.
func (m failureMode) troubled() bool { return m != failRate }

// groupSpec describes one preset group: one template whose versions each
// have -presets presets configured alike.
type groupSpec struct {
	name      string
	desired   int
	ttl       time.Duration
	timezone  string
	schedules []prebuilds.Schedule
	failure   failureMode
	// newVersionMidRun activates a second template version half-way
	// through the run.
	newVersionMidRun bool
	// hangRate is the probability that a start build never reports: the
	// provisioner hangs on it. Only Config.BuildTimeout (-build-timeout)
	// fails such a build; until then it counts as starting supply.
	hangRate float64
}

// fleet is the simulated fleet, in report order.
var fleet = []groupSpec{
	{name: "web", desired: 10, newVersionMidRun: true},
	{
		name: "ci-runner", desired: 20, timezone: "America/New_York",
		schedules: []prebuilds.Schedule{{Cron: "* 9-17 * * 1-5", Instances: 40}},
	},
	{name: "gpu", desired: 3, ttl: 20 * time.Minute},
	{name: "broken", desired: 2, failure: failAlways},
	{name: "broken-big", desired: 40, failure: failAlways},
	{name: "flaky", desired: 4, failure: failHalf},
	{name: "misconfigured", desired: 2, failure: failValidation},
	{name: "hanging", desired: 5, hangRate: 0.1},
}

// peakDesired is the largest count a group's preset can want: its static
// desired count or a scheduled one.
func (g groupSpec) peakDesired() int {
	n := g.desired
	for _, sc := range g.schedules {
		n = max(n, sc.Instances)
	}
	return n
}

// group is a preset group with its tallies.
type group struct {
	spec       groupSpec
	templateID uuid.UUID
	version    int
	// presets are all presets ever created for the group; active are those
	// of the active version, in creation order.
	presets []uuid.UUID
	active  []uuid.UUID

	served, missed int
	// builds counts start builds the provisioner took; succeeded and failed
	// their results, timed-out builds (failed by the Reconciler after
	// -build-timeout) included in failed and counted in timedOut too.
	builds, succeeded, failed, timedOut int
	// hung counts start builds the provisioner hung on (never reported).
	hung int
	// expired counts prebuilds the Reconciler deleted because they expired.
	expired int
	// backoffTime, blockedTime and heldTime are summed over the group's
	// presets: time creation was held back by backoff; blocked by the hard
	// limit or validation_failed; held by PolicyAdaptive's one probe or
	// canary at a time, or by the create budget — from the pass whose plan
	// held it back to the next pass that planned the preset. Report them
	// per preset (perPreset).
	backoffTime, blockedTime, heldTime time.Duration
	events                             map[prebuilds.EventKind]int
	// refill are the group's claim-to-refill figures (refill.go).
	refill refillStats
	// limitCycles are the group's closed cycles that hit the hard limit.
	limitCycles      []limitCycle
	operatorResets   int
	operatorRemovals int

	// fillArea is Σ fill ratio × seconds over the samples, fillTime the
	// sampled seconds: fill = fillArea / fillTime.
	fillArea, fillTime float64
	series             groupSeries
}

// groupSeries is what -chart draws of a group: samples of desired and
// claimable prebuilds whenever they change, creation-holding spans, and the
// instants of missed claims.
type groupSeries struct {
	points   []seriesPoint
	backoff  []span
	blocked  []span
	held     []span
	missedAt []time.Duration
}

// seriesPoint is a group's desired count and claimable prebuilds from at
// (an offset from the start) until the next point.
type seriesPoint struct {
	at                 time.Duration
	desired, claimable int
}

// span is a time range [from, to) as offsets from the start.
type span struct{ from, to time.Duration }

// extend adds [from, to) to spans, merging it with the last span when they
// touch.
func extend(spans []span, from, to time.Duration) []span {
	if n := len(spans); n > 0 && spans[n-1].to == from {
		spans[n-1].to = to
		return spans
	}
	return append(spans, span{from, to})
}

// presetState is what the simulation tracks about one preset.
type presetState struct {
	group *group
	name  string
	// hardLimitedAt is the time of the last hard_limited event, zero when
	// the preset is not hard-limited (or the operator already acted).
	hardLimitedAt time.Time
	// failedInstances are prebuilds whose start build failed and that the
	// operator has not removed yet.
	failedInstances []uuid.UUID
	inBackoff       bool
	lastDesired     int
	seenDesired     bool
	// hold is how the last pass that planned the preset held its creation
	// back, since holdSince: it holds until the next pass that plans it
	// (full or targeted), when its time is added to the group's.
	hold      holding
	holdSince time.Time
	holdKnown bool
	// awaiting are the instants of served claims waiting for a
	// replacement, oldest first (see refill.go).
	awaiting []time.Time
	// cycle tallies the failed builds and hard limits since the preset's
	// last reset or recovery.
	cycle limitCycle
}

// limitCycle is one stretch of a preset's life between resets or
// recoveries (the run's start, an operator reset, a recovered event): the
// start builds that failed in it and the hard limits it hit.
type limitCycle struct{ failed, limits int }

// closeCycle ends the preset's current cycle, keeping it in the group when
// it hit the hard limit.
func (ps *presetState) closeCycle() {
	if ps.cycle.limits > 0 {
		ps.group.limitCycles = append(ps.group.limitCycles, ps.cycle)
	}
	ps.cycle = limitCycle{}
}

// organization labels every template of the fleet.
var organization = struct {
	id   uuid.UUID
	name string
}{uuid.MustParse("6a1f3c52-0d6e-4f7e-9d55-6f1f2b9b7a01"), "acme"}

// setUpFleet creates one template per group, with version 1 active.
func (s *sim) setUpFleet(ctx context.Context) error {
	for _, spec := range fleet {
		g := &group{spec: spec, templateID: uuid.New(), events: map[prebuilds.EventKind]int{}}
		err := s.store.CreateTemplate(ctx, prebuilds.Template{
			ID: g.templateID, OrganizationID: organization.id, OrganizationName: organization.name, Name: spec.name,
		})
		if err != nil {
			return fmt.Errorf("create template %s: %w", spec.name, err)
		}
		if err := s.newVersion(ctx, g); err != nil {
			return err
		}
		s.groups = append(s.groups, g)
	}
	return nil
}

// newVersion creates the group's next template version with its presets
// and activates it. The previous version's presets become inactive.
func (s *sim) newVersion(ctx context.Context, g *group) error {
	g.version++
	versionID := uuid.New()
	err := s.store.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{
		ID: versionID, TemplateID: g.templateID, Name: fmt.Sprintf("v%d", g.version), CreatedAt: s.clock.Now(),
	})
	if err != nil {
		return fmt.Errorf("create version v%d of %s: %w", g.version, g.spec.name, err)
	}
	active := make([]uuid.UUID, 0, s.opts.presets)
	for i := range s.opts.presets {
		name := g.spec.name
		if s.opts.presets > 1 {
			name = fmt.Sprintf("%s-%d", g.spec.name, i+1)
		}
		desired := g.spec.desired
		p := prebuilds.Preset{
			ID: uuid.New(), TemplateVersionID: versionID, Name: name, Desired: &desired,
			TTL: g.spec.ttl, Timezone: g.spec.timezone, Schedules: g.spec.schedules,
			Parameters: map[string]string{"group": g.spec.name, "version": fmt.Sprintf("v%d", g.version)},
		}
		if err := s.store.UpsertPreset(ctx, p); err != nil {
			return fmt.Errorf("create preset %s of %s v%d: %w", name, g.spec.name, g.version, err)
		}
		s.presets[p.ID] = &presetState{group: g, name: name}
		active = append(active, p.ID)
	}
	if err := s.store.SetActiveVersion(ctx, g.templateID, versionID); err != nil {
		return fmt.Errorf("activate v%d of %s: %w", g.version, g.spec.name, err)
	}
	g.presets = append(g.presets, active...)
	g.active = active
	return nil
}
