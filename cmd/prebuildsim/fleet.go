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
	{name: "flaky", desired: 4, failure: failHalf},
	{name: "misconfigured", desired: 2, failure: failValidation},
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

	served, missed    int
	succeeded, failed int
	backoffTime       time.Duration
	blockedTime       time.Duration
	events            map[prebuilds.EventKind]int
	operatorRemovals  int
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
