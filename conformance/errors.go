package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// errorsGroup: Errors/<operation>/<case>: every operation fails with the
// sentinel docs/spec.md gives for the case, as the model does,
// and the failed call changes nothing.
func (s *suite) errorsGroup(t *testing.T) {
	for _, tc := range invalidPresets() {
		s.run(t, "UpsertPreset/Invalid/"+tc.name, func(t *testing.T) { s.invalidPreset(t, tc) })
	}
	for _, tc := range errorCases() {
		s.run(t, tc.op+"/"+tc.name, func(t *testing.T) { s.errorCase(t, tc) })
	}
}

type invalidPresetCase struct {
	name string
	// what the preset has that makes it invalid, for the rule.
	what string
	pos  scenario.Pos
	p    prebuilds.Preset
	// update: p replaces the existing preset p1 (desired 1) instead of
	// creating a new one.
	update bool
}

func invalidPresets() []invalidPresetCase {
	invalid := func(name, what string, mut func(*prebuilds.Preset)) invalidPresetCase {
		p := prebuilds.Preset{ID: id("bad"), TemplateVersionID: id("v1"), Name: "bad", Desired: count(1)}
		mut(&p)
		return invalidPresetCase{name: name, what: what, pos: scenario.Here(0), p: p}
	}
	sched := func(cron string, n int) []prebuilds.Schedule { return []prebuilds.Schedule{{Cron: cron, Instances: n}} }
	return []invalidPresetCase{
		invalid("NilID", "a nil ID", func(p *prebuilds.Preset) { p.ID = uuid.Nil }),
		invalid("NilVersion", "a nil version ID", func(p *prebuilds.Preset) { p.TemplateVersionID = uuid.Nil }),
		invalid("EmptyName", "an empty name", func(p *prebuilds.Preset) { p.Name = "" }),
		invalid("NegativeDesired", "a negative desired count", func(p *prebuilds.Preset) { p.Desired = count(-1) }),
		invalid("DesiredTooLarge", "a desired count above MaxDesired", func(p *prebuilds.Preset) { p.Desired = count(prebuilds.MaxDesired + 1) }),
		invalid("NegativeTTL", "a negative TTL", func(p *prebuilds.Preset) { p.TTL = -time.Second }),
		invalid("SubMicrosecondTTL", "a TTL finer than a microsecond", func(p *prebuilds.Preset) { p.TTL = time.Second + time.Nanosecond }),
		invalid("UnknownStatus", "an unknown status", func(p *prebuilds.Preset) { p.Status = "sleepy" }),
		invalid("UnknownTimezone", "an unknown timezone", func(p *prebuilds.Preset) { p.Timezone = "Mars/Olympus_Mons" }),
		invalid("SchedulesWithoutTimezone", "schedules without a timezone", func(p *prebuilds.Preset) { p.Schedules = sched("* * * * *", 1) }),
		invalid("SchedulesWithoutDesired", "schedules without a desired count", func(p *prebuilds.Preset) {
			p.Timezone, p.Desired, p.Schedules = "UTC", nil, sched("* * * * *", 1)
		}),
		invalid("CronOutOfRange", "a cron field out of range", func(p *prebuilds.Preset) { p.Timezone, p.Schedules = "UTC", sched("61 * * * *", 1) }),
		invalid("CronSixFields", "a six-field cron expression", func(p *prebuilds.Preset) { p.Timezone, p.Schedules = "UTC", sched("0 * * * * *", 1) }),
		invalid("CronGarbage", "an unparsable cron expression", func(p *prebuilds.Preset) { p.Timezone, p.Schedules = "UTC", sched("every monday", 1) }),
		invalid("NegativeScheduleInstances", "a negative schedule instance count", func(p *prebuilds.Preset) { p.Timezone, p.Schedules = "UTC", sched("* * * * *", -1) }),
		invalid("EmptyParameterName", "an empty parameter name", func(p *prebuilds.Preset) { p.Parameters = map[string]string{"": "x"} }),
		invalid("InvalidUTF8Name", "a name that is not UTF-8", func(p *prebuilds.Preset) { p.Name = "bad\xff" }),
		invalid("InvalidUTF8ParameterName", "a parameter name that is not UTF-8", func(p *prebuilds.Preset) { p.Parameters = map[string]string{"k\xc3": "x"} }),
		invalid("LocalTimezone", "the Local timezone", func(p *prebuilds.Preset) { p.Timezone = "Local" }),
		invalid("CronDescriptor", "a cron descriptor (@hourly)", func(p *prebuilds.Preset) { p.Timezone, p.Schedules = "UTC", sched("@hourly", 1) }),
		invalid("CronTimezonePrefix", "a CRON_TZ= prefix", func(p *prebuilds.Preset) { p.Timezone, p.Schedules = "UTC", sched("CRON_TZ=UTC * * * * *", 1) }),
		invalid("Order/TTLBeforeTimezone", "both a bad TTL and a bad timezone (the TTL is checked first)", func(p *prebuilds.Preset) {
			p.TTL, p.Timezone = -time.Second, "Mars/Olympus_Mons"
		}),
		invalid("InvalidWithMissingVersion", "invalid fields and a missing version (validation comes first)", func(p *prebuilds.Preset) {
			p.TemplateVersionID, p.Desired = id("nope"), count(-1)
		}),
		{name: "UnsetDesired", what: "desired unset, on an update of a preset whose desired is set", pos: defined(), update: true,
			p: prebuilds.Preset{ID: id("p1"), TemplateVersionID: id("v1"), Name: "p1"}},
	}
}

// invalidPreset: UpsertPreset rejects the preset with an error matching
// ErrInvalidPreset (a *ValidationError naming the field) and stores nothing.
func (s *suite) invalidPreset(t *testing.T, tc invalidPresetCase) {
	wantField := "desired"
	var ve *prebuilds.ValidationError
	if err := prebuilds.ValidatePreset(tc.p); errors.As(err, &ve) {
		wantField = ve.Field
	} else if !tc.update {
		t.Fatalf("conformance: prebuilds.ValidatePreset accepts the case: %v (a bug in the suite)", err)
	}
	rule := fmt.Sprintf("UpsertPreset must reject a preset with %s with ErrInvalidPreset (a *prebuilds.ValidationError of field %q) and store nothing.", tc.what, wantField)
	e := s.claimFixture(t, rule, tc.pos)
	before, err := e.store.GetPreset(e.ctx, id("p1"))
	if err != nil {
		t.Fatalf("GetPreset(p1): %v", err)
	}
	l := e.labels().add("bad")
	v := e.verdict()
	v.object("preset %s", l.of(tc.p.ID))

	err = e.store.UpsertPreset(e.ctx, tc.p)
	merr := e.world.UpsertPreset(tc.p)
	ve = nil
	switch {
	case !errors.Is(err, prebuilds.ErrInvalidPreset):
		v.addf("UpsertPreset returned %s (%v)", errClass(err), err)
	case !errors.As(err, &ve) || ve.Field != wantField:
		v.addf("UpsertPreset returned %v: want a *prebuilds.ValidationError with Field %q", err, wantField)
	default:
		// The model validates with its own code: it must blame the same field.
		var mve *prebuilds.ValidationError
		if sameError(v, "UpsertPreset", err, merr) && errors.As(merr, &mve) && mve.Field != ve.Field {
			v.addf("the store blames field %q, the model %q", ve.Field, mve.Field)
		}
	}
	if tc.update {
		after, err := e.store.GetPreset(e.ctx, id("p1"))
		if err != nil {
			v.addf("GetPreset(p1) after the rejected update: %v", err)
		} else {
			v.diff("the rejected update changed the preset (-before +after)", l.diff(before, after))
		}
	} else if _, err := e.store.GetPreset(e.ctx, tc.p.ID); !errors.Is(err, prebuilds.ErrNotFound) {
		v.addf("GetPreset of the rejected preset = %v, want ErrNotFound: nothing may be stored", err)
	}
	e.checkSnapshot(v, defaultParams(e.now()), "after the rejected upsert")
	v.report(t)
}

type errorCase struct {
	// op is the operation called, name the case.
	op, name string
	// when says when the operation fails, for the rule.
	when string
	pos  scenario.Pos
	// setup runs after the claim fixture (t1, v1 active, p1 desired 1) at
	// epoch+10s.
	setup []op
	call  func(ctx context.Context, st Store, now time.Time) error
	want  error
}

type call = func(ctx context.Context, st Store, now time.Time) error

// ec builds an error case, recording where it is defined.
func ec(opName, name string, want error, when string, setup []op, c call) errorCase {
	return errorCase{op: opName, name: name, when: when, pos: scenario.Here(0), setup: setup, call: c, want: want}
}

func errorCases() []errorCase {
	var (
		notFound   = prebuilds.ErrNotFound
		conflict   = prebuilds.ErrConflict
		transition = prebuilds.ErrInvalidTransition
		argument   = prebuilds.ErrInvalidArgument
	)
	type (
		addT = scenario.AddTemplate
		addV = scenario.AddVersion
	)
	failed := func(k string, kind prebuilds.FailureKind) scenario.UpdateJob {
		return scenario.UpdateJob{Instance: k, Number: 1, Status: prebuilds.JobFailed, FailureKind: kind}
	}
	running := runningOps
	otherTemplate := []op{addT{Key: "t2"}, addV{Key: "v2", Template: "t2"}}
	also := func(ops []op, more ...op) []op { return seq(ops, more) }
	job := func(key string, n int, st prebuilds.JobStatus, kind prebuilds.FailureKind) call {
		return func(ctx context.Context, s Store, now time.Time) error {
			_, err := s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: buildID(key, n), Status: st, FailureKind: kind, Now: now})
			return err
		}
	}
	create := func(preset, version string, ids ...string) call {
		return func(ctx context.Context, s Store, now time.Time) error {
			var news []prebuilds.NewPrebuild
			for _, k := range ids {
				news = append(news, prebuilds.NewPrebuild{InstanceID: id(k), BuildID: buildID(k, 1), Name: k})
			}
			_, err := s.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{PresetID: id(preset), TemplateVersionID: id(version), Instances: news, Now: now})
			return err
		}
	}
	createRaw := func(p prebuilds.CreatePrebuildsParams) call {
		return func(ctx context.Context, s Store, now time.Time) error {
			p.Now = now
			_, err := s.CreatePrebuilds(ctx, p)
			return err
		}
	}
	del := func(key string) call {
		return func(ctx context.Context, s Store, now time.Time) error {
			_, err := s.DeletePrebuild(ctx, prebuilds.DeletePrebuildParams{InstanceID: id(key), BuildID: id(key + "/delete"), Now: now})
			return err
		}
	}
	delRaw := func(p prebuilds.DeletePrebuildParams) call {
		return func(ctx context.Context, s Store, now time.Time) error {
			p.Now = now
			_, err := s.DeletePrebuild(ctx, p)
			return err
		}
	}
	claim := func(preset string, owner uuid.UUID) call {
		return func(ctx context.Context, s Store, now time.Time) error {
			_, err := s.Claim(ctx, prebuilds.ClaimParams{PresetID: id(preset), Owner: owner, Now: now})
			return err
		}
	}
	instance := func(mut func(*prebuilds.CreateInstanceParams)) call {
		return func(ctx context.Context, s Store, now time.Time) error {
			p := prebuilds.CreateInstanceParams{InstanceID: id("n1"), OwnerID: prebuilds.SystemOwner, TemplateID: id("t1"), Name: "n1",
				BuildID: buildID("n1", 1), TemplateVersionID: id("v1"), PresetID: id("p1"), Transition: prebuilds.TransitionStart, Now: now}
			mut(&p)
			return s.CreateInstance(ctx, p)
		}
	}
	startBuild := func(mut func(*prebuilds.StartBuildParams)) call {
		return func(ctx context.Context, s Store, now time.Time) error {
			p := prebuilds.StartBuildParams{InstanceID: id("i1"), BuildID: buildID("i1", 2), TemplateVersionID: id("v1"),
				Transition: prebuilds.TransitionStop, Now: now}
			mut(&p)
			return s.StartBuild(ctx, p)
		}
	}
	apply := func(o op) call {
		return func(ctx context.Context, s Store, now time.Time) error { return o.ApplyStore(ctx, s, now) }
	}
	stop := scenario.StartBuild{Instance: "i1", Number: 2, Version: "v1", Transition: prebuilds.TransitionStop}
	cases := []errorCase{
		ec("CreateTemplate", "Duplicate", conflict, "the template ID exists", nil, apply(addT{Key: "t1"})),
		ec("CreateTemplate", "NilID", argument, "the template ID is nil", nil, func(ctx context.Context, s Store, _ time.Time) error {
			return s.CreateTemplate(ctx, prebuilds.Template{Name: "t9"})
		}),
		ec("CreateTemplate", "EmptyName", argument, "the name is empty", nil, func(ctx context.Context, s Store, _ time.Time) error {
			return s.CreateTemplate(ctx, prebuilds.Template{ID: id("t9")})
		}),
		ec("CreateTemplate", "Order/ArgumentBeforeDuplicate", argument, "the name is empty and the ID exists (arguments are checked first)", nil,
			func(ctx context.Context, s Store, _ time.Time) error {
				return s.CreateTemplate(ctx, prebuilds.Template{ID: id("t1")})
			}),
		ec("CreateTemplate", "WithActiveVersion", argument, "the template comes with an active version", nil, func(ctx context.Context, s Store, _ time.Time) error {
			return s.CreateTemplate(ctx, prebuilds.Template{ID: id("t9"), Name: "t9", ActiveVersionID: id("v1")})
		}),

		ec("CreateTemplateVersion", "MissingTemplate", notFound, "the template does not exist", nil, apply(addV{Key: "v9", Template: "t9"})),
		ec("CreateTemplateVersion", "Duplicate", conflict, "the version ID exists", nil, apply(addV{Key: "v1", Template: "t1"})),
		ec("CreateTemplateVersion", "NilID", argument, "the version ID is nil", nil, func(ctx context.Context, s Store, now time.Time) error {
			return s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{TemplateID: id("t1"), Name: "v9", CreatedAt: now})
		}),
		ec("CreateTemplateVersion", "Order/MissingTemplateBeforeDuplicate", notFound, "the template does not exist and the version ID exists (the template is checked first)",
			nil, apply(addV{Key: "v1", Template: "t9"})),
		ec("CreateTemplateVersion", "NilTemplate", argument, "the template ID is nil", nil, func(ctx context.Context, s Store, now time.Time) error {
			return s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: id("v9"), Name: "v9", CreatedAt: now})
		}),

		ec("SetActiveVersion", "MissingTemplate", notFound, "the template does not exist", nil, apply(scenario.Activate{Template: "t9", Version: "v1"})),
		ec("SetActiveVersion", "VersionOfOtherTemplate", notFound, "the version belongs to another template", otherTemplate,
			apply(scenario.Activate{Template: "t1", Version: "v2"})),
		ec("SetActiveVersion", "MissingVersion", notFound, "the version does not exist", nil, apply(scenario.Activate{Template: "t1", Version: "v9"})),
		ec("SetActiveVersion", "Order/MissingVersionBeforeDeletedTemplate", notFound, "the template is deleted and the version does not exist (the version is checked first)",
			[]op{scenario.DeleteTemplate{Template: "t1"}}, apply(scenario.Activate{Template: "t1", Version: "v9"})),
		ec("SetActiveVersion", "DeletedTemplate", conflict, "the template is deleted", []op{addV{Key: "v2", Template: "t1"}, scenario.DeleteTemplate{Template: "t1"}},
			apply(scenario.Activate{Template: "t1", Version: "v2"})),

		ec("SetTemplateDeprecated", "MissingTemplate", notFound, "the template does not exist", nil, apply(scenario.Deprecate{Template: "t9"})),
		ec("DeleteTemplate", "MissingTemplate", notFound, "the template does not exist", nil, apply(scenario.DeleteTemplate{Template: "t9"})),

		ec("UpsertPreset", "MissingVersion", notFound, "the version does not exist", nil, apply(scenario.UpsertPreset{Key: "p9", Version: "v9", Desired: count(1)})),
		ec("UpsertPreset", "NameTakenInVersion", conflict, "another preset of the version has the name", nil, func(ctx context.Context, s Store, _ time.Time) error {
			return s.UpsertPreset(ctx, prebuilds.Preset{ID: id("p9"), TemplateVersionID: id("v1"), Name: "p1", Desired: count(1)})
		}),
		ec("UpsertPreset", "Order/NameTakenBeforeUnsetDesired", conflict, "another preset of the version has the name and the update unsets desired (the name is checked first)",
			[]op{scenario.UpsertPreset{Key: "p2", Version: "v1", Desired: count(1)}}, func(ctx context.Context, s Store, _ time.Time) error {
				return s.UpsertPreset(ctx, prebuilds.Preset{ID: id("p2"), TemplateVersionID: id("v1"), Name: "p1"})
			}),
		ec("GetPreset", "Missing", notFound, "the preset does not exist", nil, func(ctx context.Context, s Store, _ time.Time) error {
			_, err := s.GetPreset(ctx, id("p9"))
			return err
		}),
		ec("UpsertPreset", "MovedToOtherVersion", conflict, "the preset exists on another version", []op{addV{Key: "v2", Template: "t1"}},
			apply(scenario.UpsertPreset{Key: "p1", Version: "v2", Desired: count(1)})),

		ec("InvalidatePreset", "MissingPreset", notFound, "the preset does not exist", nil, apply(scenario.Invalidate{Preset: "p9"})),
		ec("ResetPreset", "MissingPreset", notFound, "the preset does not exist", nil, apply(scenario.Reset{Preset: "p9"})),

		ec("CreateInstance", "MissingPreset", notFound, "the preset does not exist", nil,
			apply(scenario.CreateInstance{Key: "i1", Template: "t1", Version: "v1", Preset: "p9"})),
		ec("CreateInstance", "MissingTemplate", notFound, "the template does not exist", nil, instance(func(p *prebuilds.CreateInstanceParams) { p.TemplateID = id("t9") })),
		ec("CreateInstance", "VersionOfOtherTemplate", notFound, "the version belongs to another template", otherTemplate,
			instance(func(p *prebuilds.CreateInstanceParams) { p.TemplateVersionID, p.PresetID = id("v2"), uuid.Nil })),
		ec("CreateInstance", "DuplicateID", conflict, "the instance ID exists", running("i1"), apply(prebuildOp("i1"))),
		ec("CreateInstance", "ExistingBuildID", conflict, "the build ID exists", running("i1"),
			instance(func(p *prebuilds.CreateInstanceParams) { p.BuildID = buildID("i1", 1) })),
		ec("CreateInstance", "NilID", argument, "the instance ID is nil", nil, instance(func(p *prebuilds.CreateInstanceParams) { p.InstanceID = uuid.Nil })),
		ec("CreateInstance", "NilBuildID", argument, "the build ID is nil", nil, instance(func(p *prebuilds.CreateInstanceParams) { p.BuildID = uuid.Nil })),
		ec("CreateInstance", "NilTemplate", argument, "the template ID is nil", nil, instance(func(p *prebuilds.CreateInstanceParams) { p.TemplateID = uuid.Nil })),
		ec("CreateInstance", "NilVersion", argument, "the version ID is nil", nil, instance(func(p *prebuilds.CreateInstanceParams) { p.TemplateVersionID = uuid.Nil })),
		ec("CreateInstance", "UnknownTransition", argument, "the transition is unknown", nil, instance(func(p *prebuilds.CreateInstanceParams) { p.Transition = "restart" })),
		ec("CreateInstance", "MissingVersion", notFound, "the version does not exist", nil, instance(func(p *prebuilds.CreateInstanceParams) { p.TemplateVersionID = id("v9") })),
		ec("CreateInstance", "Order/ArgumentBeforeMissingTemplate", argument, "the transition is unknown and the template does not exist (arguments are checked first)", nil,
			instance(func(p *prebuilds.CreateInstanceParams) { p.Transition, p.TemplateID = "restart", id("t9") })),
		ec("CreateInstance", "Order/MissingPresetBeforeDuplicateID", notFound, "the preset does not exist and the instance ID exists (the preset is checked first)",
			running("n1"), instance(func(p *prebuilds.CreateInstanceParams) { p.BuildID, p.PresetID = id("n1/other"), id("p9") })),
		ec("CreateInstance", "Order/PresetOfOtherVersionBeforeDuplicateID", argument, "the preset belongs to another version and the instance ID exists (the preset is checked first)",
			also(running("n1"), addV{Key: "v2", Template: "t1"}, scenario.UpsertPreset{Key: "p2", Version: "v2"}),
			instance(func(p *prebuilds.CreateInstanceParams) { p.BuildID, p.PresetID = id("n1/other"), id("p2") })),
		ec("CreateInstance", "NilOwner", argument, "the owner is nil", nil, instance(func(p *prebuilds.CreateInstanceParams) { p.OwnerID = uuid.Nil })),
		ec("CreateInstance", "PresetOfOtherVersion", argument, "the preset belongs to another version", []op{addV{Key: "v2", Template: "t1"}},
			instance(func(p *prebuilds.CreateInstanceParams) { p.TemplateVersionID = id("v2") })),
		ec("CreateInstance", "Order/MissingTemplateBeforeDuplicateID", notFound, "the template does not exist and the instance ID exists (the template is checked first)",
			running("n1"), instance(func(p *prebuilds.CreateInstanceParams) { p.TemplateID = id("t9") })),

		ec("StartBuild", "NilInstance", argument, "the instance ID is nil", running("i1"), startBuild(func(p *prebuilds.StartBuildParams) { p.InstanceID = uuid.Nil })),
		ec("StartBuild", "NilBuildID", argument, "the build ID is nil", running("i1"), startBuild(func(p *prebuilds.StartBuildParams) { p.BuildID = uuid.Nil })),
		ec("StartBuild", "NilVersion", argument, "the version ID is nil", running("i1"), startBuild(func(p *prebuilds.StartBuildParams) { p.TemplateVersionID = uuid.Nil })),
		ec("StartBuild", "Order/ArgumentBeforeMissingInstance", argument, "the transition is empty and the instance does not exist (arguments are checked first)", nil,
			startBuild(func(p *prebuilds.StartBuildParams) { p.Transition = "" })),
		ec("StartBuild", "WhileJobCanceling", conflict, "the latest job is canceling", []op{prebuildOp("i1"), jobOp("i1", prebuilds.JobRunning), jobOp("i1", prebuilds.JobCanceling)},
			apply(stop)),
		ec("StartBuild", "Order/JobPendingBeforeMissingVersion", conflict, "the latest job is not finished and the version does not exist (the job is checked first)",
			[]op{prebuildOp("i1")}, startBuild(func(p *prebuilds.StartBuildParams) { p.TemplateVersionID = id("v9") })),
		ec("StartBuild", "Order/JobPendingBeforeMissingPreset", conflict, "the latest job is not finished and the preset does not exist (the job is checked first)",
			[]op{prebuildOp("i1")}, startBuild(func(p *prebuilds.StartBuildParams) { p.PresetID, p.Transition = id("p9"), prebuilds.TransitionStart })),
		ec("StartBuild", "Order/MissingVersionBeforeExistingBuildID", notFound, "the version does not exist and the build ID exists (the version is checked first)",
			running("i1"), startBuild(func(p *prebuilds.StartBuildParams) { p.TemplateVersionID, p.BuildID = id("v9"), buildID("i1", 1) })),
		ec("StartBuild", "Order/MissingPresetBeforeExistingBuildID", notFound, "the preset does not exist and the build ID exists (the preset is checked first)",
			running("i1"), startBuild(func(p *prebuilds.StartBuildParams) {
				p.PresetID, p.Transition, p.BuildID = id("p9"), prebuilds.TransitionStart, buildID("i1", 1)
			})),
		ec("StartBuild", "MissingInstance", notFound, "the instance does not exist", nil,
			apply(scenario.StartBuild{Instance: "i9", Number: 2, Version: "v1", Transition: prebuilds.TransitionStop})),
		ec("StartBuild", "MissingVersion", notFound, "the version does not exist", running("i1"),
			startBuild(func(p *prebuilds.StartBuildParams) { p.TemplateVersionID = id("v9") })),
		ec("StartBuild", "MissingPreset", notFound, "the preset does not exist", running("i1"),
			startBuild(func(p *prebuilds.StartBuildParams) { p.PresetID, p.Transition = id("p9"), prebuilds.TransitionStart })),
		ec("StartBuild", "WhileJobPending", conflict, "the latest job is not finished", []op{prebuildOp("i1")}, apply(stop)),
		ec("StartBuild", "DeletedInstance", conflict, "the instance is deleted", also(running("i1"), scenario.RemoveInstance{Instance: "i1"}),
			startBuild(func(p *prebuilds.StartBuildParams) { p.Transition = prebuilds.TransitionStart })),
		ec("StartBuild", "ExistingBuildID", conflict, "the build ID exists", running("i1"),
			startBuild(func(p *prebuilds.StartBuildParams) { p.BuildID = buildID("i1", 1) })),
		ec("StartBuild", "UnknownTransition", argument, "the transition is unknown", running("i1"),
			startBuild(func(p *prebuilds.StartBuildParams) { p.Transition = "pause" })),
		ec("StartBuild", "VersionOfOtherTemplate", argument, "the version belongs to another template than the instance's", also(running("i1"), otherTemplate...),
			startBuild(func(p *prebuilds.StartBuildParams) { p.TemplateVersionID = id("v2") })),
		ec("StartBuild", "PresetOfOtherVersion", argument, "the preset belongs to another version than the build's", also(running("i1"), addV{Key: "v2", Template: "t1"}),
			startBuild(func(p *prebuilds.StartBuildParams) {
				p.TemplateVersionID, p.PresetID, p.Transition = id("v2"), id("p1"), prebuilds.TransitionStart
			})),
		// An instance of t1 must not become supply of a preset of t2.
		ec("StartBuild", "PresetOfOtherTemplate", argument, "the preset belongs to another template than the instance's",
			also(running("i1"), addT{Key: "t2"}, addV{Key: "v2", Template: "t2"}, scenario.UpsertPreset{Key: "p2", Version: "v2", Desired: count(1)}),
			startBuild(func(p *prebuilds.StartBuildParams) {
				p.TemplateVersionID, p.PresetID, p.Transition = id("v2"), id("p2"), prebuilds.TransitionStart
			})),
		ec("StartBuild", "Order/OtherTemplateBeforeMissingPreset", argument, "the version is of another template and the preset does not exist (the version is checked first)",
			also(running("i1"), otherTemplate...), startBuild(func(p *prebuilds.StartBuildParams) {
				p.TemplateVersionID, p.PresetID, p.Transition = id("v2"), id("p9"), prebuilds.TransitionStart
			})),
		ec("StartBuild", "Order/PresetOfOtherVersionBeforeExistingBuildID", argument, "the preset is of another version and the build ID exists (the preset is checked first)",
			also(running("i1"), addV{Key: "v2", Template: "t1"}), startBuild(func(p *prebuilds.StartBuildParams) {
				p.BuildID, p.TemplateVersionID, p.PresetID, p.Transition = buildID("i1", 1), id("v2"), id("p1"), prebuilds.TransitionStart
			})),
		ec("StartBuild", "Order/DeletedBeforeMissingVersion", conflict, "the instance is deleted and the version does not exist (the instance is checked first)",
			also(running("i1"), scenario.RemoveInstance{Instance: "i1"}), startBuild(func(p *prebuilds.StartBuildParams) { p.TemplateVersionID = id("v9") })),

		ec("UpdateJob", "MissingBuild", notFound, "the build does not exist", nil, job("i9", 1, prebuilds.JobSucceeded, "")),
		ec("UpdateJob", "SucceededToRunning", transition, "a succeeded job is set running", running("i1"), job("i1", 1, prebuilds.JobRunning, "")),
		ec("UpdateJob", "FailedToSucceeded", transition, "a failed job is set succeeded", []op{prebuildOp("i1"), failed("i1", "")},
			job("i1", 1, prebuilds.JobSucceeded, "")),
		ec("UpdateJob", "PendingToPending", transition, "a pending job is set pending", []op{prebuildOp("i1")}, job("i1", 1, prebuilds.JobPending, "")),
		ec("UpdateJob", "CancelingToSucceeded", transition, "a canceling job is set succeeded", []op{prebuildOp("i1"), jobOp("i1", prebuilds.JobCanceling)},
			job("i1", 1, prebuilds.JobSucceeded, "")),
		ec("UpdateJob", "CanceledToCanceled", transition, "a canceled job is set canceled", []op{prebuildOp("i1"), jobOp("i1", prebuilds.JobCanceled)},
			job("i1", 1, prebuilds.JobCanceled, "")),
		ec("UpdateJob", "FailureKindWithoutFailure", argument, "a failure kind comes with another status than failed", []op{prebuildOp("i1")},
			job("i1", 1, prebuilds.JobSucceeded, prebuilds.FailureTransient)),
		ec("UpdateJob", "UnknownJobStatus", argument, "the status is unknown", []op{prebuildOp("i1")}, job("i1", 1, "done", "")),
		ec("UpdateJob", "UnknownFailureKind", argument, "the failure kind is unknown", []op{prebuildOp("i1")}, job("i1", 1, prebuilds.JobFailed, "cosmic")),
		ec("UpdateJob", "Order/ArgumentBeforeMissingBuild", argument, "the status is unknown and the build does not exist (arguments are checked first)",
			nil, job("i9", 1, "done", "")),

		ec("SetReady", "MissingInstance", notFound, "the instance does not exist", nil, apply(scenario.SetReady{Instance: "i9"})),
		ec("RemoveInstance", "MissingInstance", notFound, "the instance does not exist", nil, apply(scenario.RemoveInstance{Instance: "i9"})),

		ec("Claim", "MissingPreset", notFound, "the preset does not exist", nil, claim("p9", id("user"))),
		ec("Claim", "ForSystemOwner", argument, "the new owner is the system owner", readyOps("i1"), claim("p1", prebuilds.SystemOwner)),
		ec("Claim", "ForNobody", argument, "the new owner is nil", readyOps("i1"), claim("p1", uuid.Nil)),
		ec("Claim", "Order/ArgumentBeforeMissingPreset", argument, "the new owner is the system owner and the preset does not exist (arguments are checked first)",
			nil, claim("p9", prebuilds.SystemOwner)),
		ec("Claim", "Order/NilOwnerBeforeMissingPreset", argument, "the new owner is nil and the preset does not exist (arguments are checked first)",
			nil, claim("p9", uuid.Nil)),

		ec("GetInstance", "Missing", notFound, "the instance does not exist", nil, func(ctx context.Context, s Store, _ time.Time) error {
			_, err := s.GetInstance(ctx, id("i9"))
			return err
		}),
		ec("ListBuilds", "Missing", notFound, "the instance does not exist", nil, func(ctx context.Context, s Store, _ time.Time) error {
			_, err := s.ListBuilds(ctx, id("i9"))
			return err
		}),

		ec("CreatePrebuilds", "MissingPreset", notFound, "the preset does not exist", nil, create("p9", "v1", "n1")),
		ec("CreatePrebuilds", "VersionMismatch", conflict, "the preset's version is not the given one", []op{addV{Key: "v2", Template: "t1"}}, create("p1", "v2", "n1")),
		ec("CreatePrebuilds", "ExistingID", conflict, "an instance ID exists", running("i1"), create("p1", "v1", "n1", "i1")),
		ec("CreatePrebuilds", "RepeatedID", conflict, "an instance ID repeats", nil, create("p1", "v1", "n1", "n2", "n1")),
		ec("CreatePrebuilds", "ExistingBuildID", conflict, "a build ID exists", running("i1"), createRaw(prebuilds.CreatePrebuildsParams{
			PresetID: id("p1"), TemplateVersionID: id("v1"), Instances: []prebuilds.NewPrebuild{{InstanceID: id("n1"), BuildID: buildID("i1", 1)}}})),
		ec("CreatePrebuilds", "RepeatedBuildID", conflict, "a build ID repeats", nil, createRaw(prebuilds.CreatePrebuildsParams{
			PresetID: id("p1"), TemplateVersionID: id("v1"), Instances: []prebuilds.NewPrebuild{{InstanceID: id("n1"), BuildID: id("b")}, {InstanceID: id("n2"), BuildID: id("b")}}})),
		ec("CreatePrebuilds", "NilPreset", argument, "the preset ID is nil", nil, createRaw(prebuilds.CreatePrebuildsParams{
			TemplateVersionID: id("v1"), Instances: []prebuilds.NewPrebuild{{InstanceID: id("n1"), BuildID: buildID("n1", 1)}}})),
		ec("CreatePrebuilds", "NilVersion", argument, "the version ID is nil", nil, createRaw(prebuilds.CreatePrebuildsParams{
			PresetID: id("p1"), Instances: []prebuilds.NewPrebuild{{InstanceID: id("n1"), BuildID: buildID("n1", 1)}}})),
		ec("CreatePrebuilds", "NilInstanceID", argument, "an instance ID is nil", nil, createRaw(prebuilds.CreatePrebuildsParams{
			PresetID: id("p1"), TemplateVersionID: id("v1"), Instances: []prebuilds.NewPrebuild{{InstanceID: id("n1"), BuildID: buildID("n1", 1)}, {BuildID: id("b")}}})),
		ec("CreatePrebuilds", "Order/ArgumentBeforeMissingPreset", argument, "a build ID is nil and the preset does not exist (arguments are checked first)", nil,
			createRaw(prebuilds.CreatePrebuildsParams{PresetID: id("p9"), TemplateVersionID: id("v1"), Instances: []prebuilds.NewPrebuild{{InstanceID: id("n1")}}})),
		ec("CreatePrebuilds", "Order/NilInstanceIDBeforeMissingPreset", argument, "an instance ID is nil and the preset does not exist (arguments are checked first)", nil,
			createRaw(prebuilds.CreatePrebuildsParams{PresetID: id("p9"), TemplateVersionID: id("v1"), Instances: []prebuilds.NewPrebuild{{BuildID: id("b")}}})),
		ec("CreatePrebuilds", "NilBuildID", argument, "a build ID is nil", nil, createRaw(prebuilds.CreatePrebuildsParams{
			PresetID: id("p1"), TemplateVersionID: id("v1"), Instances: []prebuilds.NewPrebuild{{InstanceID: id("n1")}}})),
		ec("CreatePrebuilds", "Order/MissingPresetBeforeDuplicateID", notFound, "the preset does not exist and an instance ID exists (the preset is checked first)",
			running("i1"), create("p9", "v1", "i1")),

		ec("DeletePrebuild", "MissingInstance", notFound, "the instance does not exist", nil, del("i9")),
		ec("DeletePrebuild", "Starting", conflict, "the prebuild is still starting", []op{prebuildOp("i1")}, del("i1")),
		ec("DeletePrebuild", "Failed", conflict, "the prebuild failed", []op{prebuildOp("i1"), failed("i1", prebuilds.FailureTransient)}, del("i1")),
		ec("DeletePrebuild", "Claimed", conflict, "the prebuild was claimed", also(readyOps("i1"), scenario.Claim{Preset: "p1", Want: "i1"}), del("i1")),
		ec("DeletePrebuild", "UserOwned", conflict, "the instance belongs to a user",
			[]op{scenario.CreateInstance{Key: "i1", Template: "t1", Version: "v1", Preset: "p1", Owner: "someone"}, jobOp("i1", prebuilds.JobSucceeded)}, del("i1")),
		ec("DeletePrebuild", "Removed", conflict, "an admin removed the prebuild", also(running("i1"), scenario.RemoveInstance{Instance: "i1"}), del("i1")),
		ec("DeletePrebuild", "Twice", conflict, "the prebuild is already being deleted", running("i1"), func(ctx context.Context, s Store, now time.Time) error {
			if err := del("i1")(ctx, s, now); err != nil {
				return fmt.Errorf("the first delete failed, want success: %w", err)
			}
			_, err := s.DeletePrebuild(ctx, prebuilds.DeletePrebuildParams{InstanceID: id("i1"), BuildID: id("i1/delete2"), Now: now})
			return err
		}),
		ec("DeletePrebuild", "NilInstance", argument, "the instance ID is nil", nil, delRaw(prebuilds.DeletePrebuildParams{BuildID: id("i1/delete")})),
		ec("DeletePrebuild", "Stopped", conflict, "the prebuild is stopped (its latest build is a stop that succeeded)",
			also(running("i1"), stop, scenario.UpdateJob{Instance: "i1", Number: 2, Status: prebuilds.JobSucceeded}), del("i1")),
		ec("DeletePrebuild", "Order/StartingBeforeExistingBuildID", conflict, "the prebuild is still starting and the build ID exists (the state is checked first)",
			[]op{prebuildOp("i1")}, delRaw(prebuilds.DeletePrebuildParams{InstanceID: id("i1"), BuildID: buildID("i1", 1)})),
		ec("DeletePrebuild", "Order/ClaimedBeforeExistingBuildID", conflict, "the prebuild was claimed and the build ID exists (the state is checked first)",
			also(readyOps("i1"), scenario.Claim{Preset: "p1", Want: "i1"}, prebuildOp("i2")),
			delRaw(prebuilds.DeletePrebuildParams{InstanceID: id("i1"), BuildID: buildID("i2", 1)})),
		ec("DeletePrebuild", "NilBuildID", argument, "the build ID is nil", running("i1"), delRaw(prebuilds.DeletePrebuildParams{InstanceID: id("i1")})),
		ec("DeletePrebuild", "ExistingBuildID", conflict, "the build ID exists", running("i1"),
			delRaw(prebuilds.DeletePrebuildParams{InstanceID: id("i1"), BuildID: buildID("i1", 1)})),

		ec("CancelPending", "MissingPreset", notFound, "the preset does not exist", nil, func(ctx context.Context, s Store, now time.Time) error {
			_, err := s.CancelPending(ctx, prebuilds.CancelPendingParams{PresetID: id("p9"), Now: now})
			return err
		}),

		ec("SetPresetStatus", "MissingPreset", notFound, "the preset does not exist", nil, func(ctx context.Context, s Store, _ time.Time) error {
			_, err := s.SetPresetStatus(ctx, id("p9"), prebuilds.PresetHealthy, prebuilds.PresetHardLimited)
			return err
		}),
		ec("SetPresetStatus", "UnknownStatus", argument, "a status is unknown", nil, func(ctx context.Context, s Store, _ time.Time) error {
			_, err := s.SetPresetStatus(ctx, id("p1"), prebuilds.PresetHealthy, "sleepy")
			return err
		}),
		ec("SetPresetStatus", "UnknownFromStatus", argument, "the status to change from is unknown (empty)", nil, func(ctx context.Context, s Store, _ time.Time) error {
			_, err := s.SetPresetStatus(ctx, id("p1"), "", prebuilds.PresetHardLimited)
			return err
		}),
		ec("SetPresetStatus", "Order/ArgumentBeforeMissingPreset", argument, "a status is unknown and the preset does not exist (arguments are checked first)", nil,
			func(ctx context.Context, s Store, _ time.Time) error {
				_, err := s.SetPresetStatus(ctx, id("p9"), prebuilds.PresetHealthy, "")
				return err
			}),

		ec("FailStuckBuild", "NilBuildID", argument, "the build ID is nil", nil, failStuck("", 0)),
		ec("FailStuckBuild", "MissingBuild", notFound, "the build does not exist", nil, failStuck("i9", 40*time.Second)),
		ec("FailStuckBuild", "NotStuckYet", conflict, "the build was created at StuckBefore, not before it", []op{prebuildOp("i1")}, failStuck("i1", 0)),
		ec("FailStuckBuild", "Finished", conflict, "the build's job already succeeded", running("i1"), failStuck("i1", 40*time.Second)),
		ec("FailStuckBuild", "NotAStart", conflict, "the build is a stop build", also(running("i1"),
			scenario.StartBuild{Instance: "i1", Number: 2, Version: "v1", Transition: prebuilds.TransitionStop}), failStuckN("i1", 2, 40*time.Second)),
		ec("FailStuckBuild", "RemovedInstance", conflict, "its instance was removed", also([]op{prebuildOp("i1")}, scenario.RemoveInstance{Instance: "i1"}),
			failStuck("i1", 40*time.Second)),
		ec("FailStuckBuild", "UserInstance", conflict, "its instance is not a prebuild", []op{scenario.CreateInstance{Key: "u1", Template: "t1", Version: "v1", Preset: "p1", Owner: "alice"}},
			failStuck("u1", 40*time.Second)),

		ec("Snapshot", "UnknownPolicy", argument, "SnapshotParams.Policy is unknown (Store.Snapshot and the lock's reader alike)", nil,
			snapshotWith(func(p *prebuilds.SnapshotParams) { p.Policy = "lenient" })),
		ec("Snapshot", "ShardOutOfRange", argument, "SnapshotParams.Shard's index is not below its count", nil,
			snapshotWith(func(p *prebuilds.SnapshotParams) { p.Shard = prebuilds.Shard{Index: 3, Count: 3} })),
	}
	// Every refused job transition (the allowed ones are
	// Effects/UpdateJob/Transition/<From>To<To>).
	named := map[string]bool{}
	for _, c := range cases {
		named[c.op+"/"+c.name] = true
	}
	for _, tr := range jobTransitions() {
		if tr.allowed || named["UpdateJob/"+tr.name()] {
			continue
		}
		c := ec("UpdateJob", tr.name(), transition, fmt.Sprintf("a %s job is set %s", tr.from, tr.to), tr.reach(), job("i1", 1, tr.to, ""))
		cases = append(cases, c)
	}
	return cases
}

// failStuck fails build #1 of key with a cut-off `after` the setup instant
// (epoch+10s); an empty key is a nil build ID.
func failStuck(key string, after time.Duration) call { return failStuckN(key, 1, after) }

func failStuckN(key string, n int, after time.Duration) call {
	return func(ctx context.Context, s Store, now time.Time) error {
		p := prebuilds.FailStuckBuildParams{StuckBefore: epoch.Add(10*time.Second + after), Now: now}
		if key != "" {
			p.BuildID = buildID(key, n)
		}
		return s.FailStuckBuild(ctx, p)
	}
}

// snapshotWith reads a snapshot with edited inputs, without the lock and
// through the lock's reader: both must refuse alike.
func snapshotWith(edit func(*prebuilds.SnapshotParams)) call {
	return func(ctx context.Context, s Store, now time.Time) error {
		p := defaultParams(now)
		edit(&p)
		if _, err := s.Snapshot(ctx, p); err == nil {
			return errors.New("Store.Snapshot accepted it")
		} else if !errors.Is(err, prebuilds.ErrInvalidArgument) {
			return fmt.Errorf("Store.Snapshot: %w", err)
		}
		var err error
		if _, lerr := s.WithReconciliationLock(ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
			_, err = r.Snapshot(ctx, p)
			return nil
		}); lerr != nil {
			return fmt.Errorf("WithReconciliationLock: %w", lerr)
		}
		if err == nil {
			return errors.New("the reader of WithReconciliationLock accepted it")
		}
		return err
	}
}

// sentinelName names a sentinel error, e.g. "ErrNotFound".
func sentinelName(err error) string {
	for _, s := range sentinels {
		if s.err == err {
			return s.name
		}
	}
	return err.Error()
}

// errorCase: the call fails with the sentinel, the model agrees, and the
// failed call changed nothing.
func (s *suite) errorCase(t *testing.T, tc errorCase) {
	rule := fmt.Sprintf("%s must fail with %s (and no other sentinel) when %s (docs/spec.md), and change nothing.", tc.op, sentinelName(tc.want), tc.when)
	e := s.claimFixture(t, rule, tc.pos)
	setup := epoch.Add(10 * time.Second)
	e.clock.Set(setup)
	e.applyAll(setup, tc.setup...)
	now := epoch.Add(time.Minute)
	e.clock.Set(now)

	if merr := tc.call(e.ctx, &modelStore{w: e.world}, now); !errors.Is(merr, tc.want) {
		t.Fatalf("conformance: the model returns %v, want %v (a bug in the suite)", merr, tc.want)
	}
	v := e.verdict()
	if err := tc.call(e.ctx, e.store, now); !errors.Is(err, tc.want) || errClass(err) != sentinelName(tc.want) {
		msg := "nil"
		if err != nil {
			msg = strings.TrimSpace(err.Error())
		}
		v.addf("%s returned %s: %s", tc.op, errClass(err), msg)
	}
	e.checkWorld(v, "after the failed call")
	e.checkSnapshot(v, defaultParams(now), "after the failed call")
	v.report(t)
}
