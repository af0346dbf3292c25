package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// FleetParams describe a generated fleet. Shares are fractions in [0, 1] of
// the presets; which presets get a feature is drawn from Seed, so equal
// params always give the same fleet, byte for byte.
type FleetParams struct {
	// Presets is the number of presets with a desired count, all on the
	// active version of their template.
	Presets int
	// Templates the presets are spread over, round-robin. Default
	// ceil(Presets/10).
	Templates int
	// VersionsPerTemplate is the number of versions of each template; the
	// newest is active. Older versions hold copies of the template's presets
	// that were never configured (desired nil), which the deleted part of the
	// history was built from. Default 1.
	VersionsPerTemplate int
	// RunningPerPreset is the number of running prebuilds (latest build
	// start+succeeded, ready) per preset.
	RunningPerPreset int
	// Desired is each preset's desired count. Default RunningPerPreset, which
	// makes a balanced fleet: a reconciliation pass has nothing to do. Set it
	// above RunningPerPreset (e.g. RunningPerPreset 0, Desired 10) for a cold
	// fill.
	Desired int
	// HistoryDepth is the number of past instances per preset that the
	// snapshot must skip: alternately deleted (a succeeded delete build) and
	// claimed by a user, all created two days before Now.
	HistoryDepth int
	// FailingShare of presets have one running prebuild fewer and, instead,
	// one whose first build failed 10s before Now: they back off.
	FailingShare float64
	// ScheduleShare of presets have a timezone and two schedules (weekday
	// working hours, weekend nights) that ask for the same desired count, so
	// that they cost cron evaluation without unbalancing the fleet.
	ScheduleShare float64
	// TTLShare of presets have a 24h TTL (no prebuild is expired at Now).
	TTLShare float64
	// Seed drives every random choice and every UUID.
	Seed int64
}

// FleetNow is the instant every generated fleet is built around: a Monday,
// 12:00 UTC.
var FleetNow = time.Date(2026, time.January, 5, 12, 0, 0, 0, time.UTC)

// Fleet is a generated state: plain data, in the order Seed writes it.
type Fleet struct {
	Params FleetParams
	// Now is the instant the fleet was generated for (FleetNow); reconcile
	// and snapshot at Now.
	Now time.Time
	// Templates have ActiveVersionID set to their newest version; Seed
	// creates them without one and activates it after the versions exist.
	Templates []prebuilds.Template
	Versions  []prebuilds.TemplateVersion
	// Presets holds the configured presets first (Params.Presets of them),
	// then the unconfigured copies on older versions.
	Presets []prebuilds.Preset
	// Instances are in creation order. Every one was created as a prebuild
	// (owner SystemOwner); a claimed one is owned by a user now.
	Instances []FleetInstance
}

// FleetInstance is an instance in its final state with all its builds.
type FleetInstance struct {
	// Instance is the final state: owner (a user once claimed), ready,
	// deleted, claimed at.
	prebuilds.Instance
	// Builds are by ascending number, each with its final job status.
	Builds []prebuilds.Build
}

// ConfiguredPresets returns the presets that have a desired count.
func (f *Fleet) ConfiguredPresets() []prebuilds.Preset { return f.Presets[:f.Params.Presets] }

// DesiredTotal is the sum of the desired counts of the configured presets.
func (f *Fleet) DesiredTotal() int {
	n := 0
	for _, p := range f.ConfiguredPresets() {
		n += *p.Desired
	}
	return n
}

// Builds returns the number of builds of all instances.
func (f *Fleet) Builds() int {
	n := 0
	for _, in := range f.Instances {
		n += len(in.Builds)
	}
	return n
}

var zones = []string{"UTC", "America/Los_Angeles", "Europe/Berlin", "Asia/Tokyo"}

// NewFleet generates the fleet p describes. It is deterministic in p.
func NewFleet(p FleetParams) (*Fleet, error) {
	if p.Presets < 0 || p.Templates < 0 || p.VersionsPerTemplate < 0 || p.RunningPerPreset < 0 ||
		p.Desired < 0 || p.HistoryDepth < 0 {
		return nil, fmt.Errorf("bench: new fleet %+v: counts must not be negative", p)
	}
	for _, s := range []float64{p.FailingShare, p.ScheduleShare, p.TTLShare} {
		if s < 0 || s > 1 {
			return nil, fmt.Errorf("bench: new fleet %+v: shares must be in [0, 1]", p)
		}
	}
	if p.Templates == 0 {
		p.Templates = max(1, (p.Presets+9)/10)
	}
	if p.VersionsPerTemplate == 0 {
		p.VersionsPerTemplate = 1
	}
	desired := p.Desired
	if desired == 0 {
		desired = p.RunningPerPreset
	}
	if desired > prebuilds.MaxDesired {
		return nil, fmt.Errorf("bench: new fleet: desired %d exceeds prebuilds.MaxDesired", desired)
	}

	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(p.Seed))
	src := rand.NewChaCha8(seed)
	rng := rand.New(src)
	newID := func() uuid.UUID {
		var id uuid.UUID
		_, _ = src.Read(id[:]) // ChaCha8.Read never fails
		id[6] = (id[6] & 0x0f) | 0x40
		id[8] = (id[8] & 0x3f) | 0x80
		return id
	}

	now := FleetNow
	f := &Fleet{Params: p, Now: now}
	orgs := make([]uuid.UUID, max(1, p.Templates/20))
	for i := range orgs {
		orgs[i] = newID()
	}
	versions := make([][]uuid.UUID, p.Templates) // per template, oldest first
	for t := range p.Templates {
		tpl := prebuilds.Template{
			ID:               newID(),
			OrganizationID:   orgs[t%len(orgs)],
			OrganizationName: fmt.Sprintf("org-%03d", t%len(orgs)),
			Name:             fmt.Sprintf("template-%05d", t),
		}
		for v := range p.VersionsPerTemplate {
			ver := prebuilds.TemplateVersion{
				ID:         newID(),
				TemplateID: tpl.ID,
				Name:       fmt.Sprintf("v%d", v+1),
				CreatedAt:  now.Add(-time.Duration(p.VersionsPerTemplate-v) * 24 * time.Hour),
			}
			f.Versions = append(f.Versions, ver)
			versions[t] = append(versions[t], ver.ID)
		}
		tpl.ActiveVersionID = versions[t][p.VersionsPerTemplate-1]
		f.Templates = append(f.Templates, tpl)
	}

	type presetPlan struct {
		failing bool
		copies  []prebuilds.Preset // unconfigured copies on older versions
	}
	plans := make([]presetPlan, p.Presets)
	for i := range p.Presets {
		t := i % p.Templates
		d := desired
		pr := prebuilds.Preset{
			ID:                newID(),
			TemplateVersionID: f.Templates[t].ActiveVersionID,
			Name:              fmt.Sprintf("preset-%06d", i),
			Desired:           &d,
			Parameters:        map[string]string{"region": zones[i%len(zones)], "size": fmt.Sprintf("s%d", i%3)},
		}
		if rng.Float64() < p.TTLShare {
			pr.TTL = 24 * time.Hour
		}
		if rng.Float64() < p.ScheduleShare {
			pr.Timezone = zones[rng.IntN(len(zones))]
			pr.Schedules = []prebuilds.Schedule{
				{Cron: "* 9-17 * * 1-5", Instances: desired},
				{Cron: "* 0-6 * * 0,6", Instances: desired},
			}
		}
		plans[i].failing = desired > 0 && rng.Float64() < p.FailingShare
		f.Presets = append(f.Presets, pr)
	}
	for i := range p.Presets {
		t := i % p.Templates
		for _, v := range versions[t][:p.VersionsPerTemplate-1] {
			c := f.Presets[i]
			c.ID = newID()
			c.TemplateVersionID = v
			c.Desired = nil
			c.TTL, c.Timezone, c.Schedules = 0, "", nil
			plans[i].copies = append(plans[i].copies, c)
		}
	}
	for i := range p.Presets {
		f.Presets = append(f.Presets, plans[i].copies...)
	}

	users := make([]uuid.UUID, 16)
	for i := range users {
		users[i] = newID()
	}
	instance := func(pr prebuilds.Preset, t int, created time.Time) FleetInstance {
		id := newID()
		return FleetInstance{
			Instance: prebuilds.Instance{
				ID:         id,
				OwnerID:    prebuilds.SystemOwner,
				TemplateID: f.Templates[t].ID,
				Name:       fmt.Sprintf("prebuild-%s-%s", pr.Name, id.String()[:8]),
				CreatedAt:  created,
			},
		}
	}
	build := func(in *FleetInstance, version, preset uuid.UUID, tr prebuilds.Transition, status prebuilds.JobStatus, params map[string]string, created time.Time) {
		b := prebuilds.Build{
			ID:                newID(),
			InstanceID:        in.ID,
			Number:            len(in.Builds) + 1,
			TemplateVersionID: version,
			PresetID:          preset,
			Transition:        tr,
			JobStatus:         status,
			Parameters:        params,
			CreatedAt:         created,
		}
		if status.Terminal() {
			b.CompletedAt = created.Add(5 * time.Minute)
		}
		if status == prebuilds.JobFailed {
			b.FailureKind = prebuilds.FailureTransient
		}
		in.Builds = append(in.Builds, b)
	}

	for i := range p.Presets {
		t := i % p.Templates
		pr := f.Presets[i]
		// History first: a claimed one must be the only claimable prebuild
		// of its preset when Seed claims it.
		for k := range p.HistoryDepth {
			created := now.Add(-48*time.Hour - time.Duration(k)*time.Hour - time.Duration(i%60)*time.Second)
			src := pr
			if k%2 == 0 && len(plans[i].copies) > 0 {
				src = plans[i].copies[(k/2)%len(plans[i].copies)]
			}
			in := instance(src, t, created)
			build(&in, src.TemplateVersionID, src.ID, prebuilds.TransitionStart, prebuilds.JobSucceeded, src.Parameters, created)
			if k%2 == 0 {
				build(&in, src.TemplateVersionID, uuid.Nil, prebuilds.TransitionDelete, prebuilds.JobSucceeded, nil, created.Add(time.Hour))
				in.Deleted = true
			} else {
				in.Ready = true
				in.OwnerID = users[rng.IntN(len(users))]
				in.ClaimedAt = created.Add(time.Hour)
			}
			f.Instances = append(f.Instances, in)
		}
		running := p.RunningPerPreset
		if plans[i].failing {
			running = max(0, running-1)
			created := now.Add(-10 * time.Second)
			in := instance(pr, t, created)
			build(&in, pr.TemplateVersionID, pr.ID, prebuilds.TransitionStart, prebuilds.JobFailed, pr.Parameters, created)
			f.Instances = append(f.Instances, in)
		}
		for k := range running {
			created := now.Add(-2*time.Hour - time.Duration(k)*time.Minute - time.Duration(rng.IntN(60_000_000))*time.Microsecond)
			in := instance(pr, t, created)
			in.Ready = true
			build(&in, pr.TemplateVersionID, pr.ID, prebuilds.TransitionStart, prebuilds.JobSucceeded, pr.Parameters, created)
			f.Instances = append(f.Instances, in)
		}
	}
	return f, nil
}

// MustFleet is NewFleet for parameters known to be valid; it panics on an
// error, which only a programming mistake in the caller can cause.
func MustFleet(p FleetParams) *Fleet {
	f, err := NewFleet(p)
	if err != nil {
		panic(err)
	}
	return f
}

// Seed writes f through a control plane: templates, versions, activation
// and deprecation, presets, then every instance with its builds and job
// reports in order, its ready flag and its claim, and last the template
// deletions. NewFleet deprecates and deletes nothing; callers may edit a
// Fleet before seeding it. It is the portable (slow) path; see
// CopyFleet for the bulk path into pgstore's tables.
func Seed(ctx context.Context, cp prebuilds.ControlPlane, f *Fleet) error {
	for _, t := range f.Templates {
		t.ActiveVersionID, t.Deprecated, t.Deleted = uuid.Nil, false, false
		if err := cp.CreateTemplate(ctx, t); err != nil {
			return fmt.Errorf("bench: seed template %s: %w", t.ID, err)
		}
	}
	for _, v := range f.Versions {
		if err := cp.CreateTemplateVersion(ctx, v); err != nil {
			return fmt.Errorf("bench: seed version %s: %w", v.ID, err)
		}
	}
	for _, t := range f.Templates {
		if t.ActiveVersionID != uuid.Nil {
			if err := cp.SetActiveVersion(ctx, t.ID, t.ActiveVersionID); err != nil {
				return fmt.Errorf("bench: seed active version of template %s: %w", t.ID, err)
			}
		}
		if t.Deprecated {
			if err := cp.SetTemplateDeprecated(ctx, t.ID, true); err != nil {
				return fmt.Errorf("bench: seed deprecation of template %s: %w", t.ID, err)
			}
		}
	}
	for _, p := range f.Presets {
		if err := cp.UpsertPreset(ctx, p); err != nil {
			return fmt.Errorf("bench: seed preset %s: %w", p.ID, err)
		}
	}
	for _, in := range f.Instances {
		if err := seedInstance(ctx, cp, in); err != nil {
			return fmt.Errorf("bench: seed instance %s: %w", in.ID, err)
		}
	}
	// Deleted last: a deleted template cannot get an active version, and
	// its instances were created while it was alive.
	for _, t := range f.Templates {
		if t.Deleted {
			if err := cp.DeleteTemplate(ctx, t.ID); err != nil {
				return fmt.Errorf("bench: seed deletion of template %s: %w", t.ID, err)
			}
		}
	}
	return nil
}

func seedInstance(ctx context.Context, cp prebuilds.ControlPlane, in FleetInstance) error {
	for _, b := range in.Builds {
		var err error
		if b.Number == 1 {
			err = cp.CreateInstance(ctx, prebuilds.CreateInstanceParams{
				InstanceID: in.ID, OwnerID: prebuilds.SystemOwner, TemplateID: in.TemplateID, Name: in.Name,
				BuildID: b.ID, TemplateVersionID: b.TemplateVersionID, PresetID: b.PresetID,
				Transition: b.Transition, Parameters: b.Parameters, Now: b.CreatedAt,
			})
		} else {
			err = cp.StartBuild(ctx, prebuilds.StartBuildParams{
				InstanceID: in.ID, BuildID: b.ID, TemplateVersionID: b.TemplateVersionID, PresetID: b.PresetID,
				Transition: b.Transition, Parameters: b.Parameters, Now: b.CreatedAt,
			})
		}
		if err != nil {
			return fmt.Errorf("build %d: %w", b.Number, err)
		}
		if b.JobStatus == prebuilds.JobPending {
			continue
		}
		at := b.CompletedAt
		if at.IsZero() {
			at = b.CreatedAt
		}
		if _, err := cp.UpdateJob(ctx, prebuilds.UpdateJobParams{
			BuildID: b.ID, Status: b.JobStatus, FailureKind: b.FailureKind, Now: at,
		}); err != nil {
			return fmt.Errorf("build %d job %s: %w", b.Number, b.JobStatus, err)
		}
	}
	if in.Ready {
		if err := cp.SetReady(ctx, in.ID, true); err != nil {
			return fmt.Errorf("ready: %w", err)
		}
	}
	if !in.ClaimedAt.IsZero() {
		got, err := cp.Claim(ctx, prebuilds.ClaimParams{PresetID: in.Builds[0].PresetID, Owner: in.OwnerID, Now: in.ClaimedAt})
		if err != nil {
			return fmt.Errorf("claim: %w", err)
		}
		if got.ID != in.ID {
			return fmt.Errorf("claim took instance %s, want %s: %w", got.ID, in.ID, prebuilds.ErrConflict)
		}
	}
	return nil
}
