package conformance

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func (s *suite) errorSemantics(t *testing.T) {
	for _, tc := range invalidPresets() {
		t.Run("InvalidPreset/"+tc.name, func(t *testing.T) { s.parallel(t); s.invalidPreset(t, tc) })
	}
	for _, tc := range errorCases() {
		t.Run(tc.name, func(t *testing.T) { s.parallel(t); s.errorCase(t, tc) })
	}
}

type invalidPresetCase struct {
	name string
	p    prebuilds.Preset
	// update: p replaces the existing preset p1 (desired 1) instead of
	// creating a new one.
	update bool
}

func invalidPresets() []invalidPresetCase {
	valid := func(mut func(*prebuilds.Preset)) prebuilds.Preset {
		p := prebuilds.Preset{ID: ID("bad"), TemplateVersionID: ID("v1"), Name: "bad", Desired: count(1)}
		mut(&p)
		return p
	}
	sched := func(cron string, n int) []prebuilds.Schedule { return []prebuilds.Schedule{{Cron: cron, Instances: n}} }
	return []invalidPresetCase{
		{name: "NilID", p: valid(func(p *prebuilds.Preset) { p.ID = uuid.Nil })},
		{name: "NilVersion", p: valid(func(p *prebuilds.Preset) { p.TemplateVersionID = uuid.Nil })},
		{name: "EmptyName", p: valid(func(p *prebuilds.Preset) { p.Name = "" })},
		{name: "NegativeDesired", p: valid(func(p *prebuilds.Preset) { p.Desired = count(-1) })},
		{name: "DesiredTooLarge", p: valid(func(p *prebuilds.Preset) { p.Desired = count(prebuilds.MaxDesired + 1) })},
		{name: "NegativeTTL", p: valid(func(p *prebuilds.Preset) { p.TTL = -time.Second })},
		{name: "SubMicrosecondTTL", p: valid(func(p *prebuilds.Preset) { p.TTL = time.Second + time.Nanosecond })},
		{name: "UnknownStatus", p: valid(func(p *prebuilds.Preset) { p.Status = "sleepy" })},
		{name: "UnknownTimezone", p: valid(func(p *prebuilds.Preset) { p.Timezone = "Mars/Olympus_Mons" })},
		{name: "SchedulesWithoutTimezone", p: valid(func(p *prebuilds.Preset) { p.Schedules = sched("* * * * *", 1) })},
		{name: "SchedulesWithoutDesired", p: valid(func(p *prebuilds.Preset) {
			p.Timezone, p.Desired, p.Schedules = "UTC", nil, sched("* * * * *", 1)
		})},
		{name: "CronOutOfRange", p: valid(func(p *prebuilds.Preset) { p.Timezone, p.Schedules = "UTC", sched("61 * * * *", 1) })},
		{name: "CronSixFields", p: valid(func(p *prebuilds.Preset) { p.Timezone, p.Schedules = "UTC", sched("0 * * * * *", 1) })},
		{name: "CronGarbage", p: valid(func(p *prebuilds.Preset) { p.Timezone, p.Schedules = "UTC", sched("every monday", 1) })},
		{name: "NegativeScheduleInstances", p: valid(func(p *prebuilds.Preset) { p.Timezone, p.Schedules = "UTC", sched("* * * * *", -1) })},
		{name: "EmptyParameterName", p: valid(func(p *prebuilds.Preset) { p.Parameters = map[string]string{"": "x"} })},
		{name: "InvalidUTF8Name", p: valid(func(p *prebuilds.Preset) { p.Name = "bad\xff" })},
		{name: "InvalidUTF8ParameterName", p: valid(func(p *prebuilds.Preset) { p.Parameters = map[string]string{"k\xc3": "x"} })},
		{name: "LocalTimezone", p: valid(func(p *prebuilds.Preset) { p.Timezone = "Local" })},
		{name: "CronDescriptor", p: valid(func(p *prebuilds.Preset) { p.Timezone, p.Schedules = "UTC", sched("@hourly", 1) })},
		{name: "CronTimezonePrefix", p: valid(func(p *prebuilds.Preset) { p.Timezone, p.Schedules = "UTC", sched("CRON_TZ=UTC * * * * *", 1) })},
		// The first failing field decides: ttl is checked before timezone.
		{name: "Order/TTLBeforeTimezone", p: valid(func(p *prebuilds.Preset) { p.TTL, p.Timezone = -time.Second, "Mars/Olympus_Mons" })},
		// Validation comes before the version lookup.
		{name: "InvalidWithMissingVersion", p: valid(func(p *prebuilds.Preset) { p.TemplateVersionID, p.Desired = ID("nope"), count(-1) })},
		{name: "UnsetDesired", update: true, p: prebuilds.Preset{ID: ID("p1"), TemplateVersionID: ID("v1"), Name: "p1"}},
	}
}

// invalidPreset: UpsertPreset rejects the preset with an error matching
// ErrInvalidPreset (a *ValidationError naming the field) and stores nothing.
func (s *suite) invalidPreset(t *testing.T, tc invalidPresetCase) {
	e := s.claimFixture(t)
	before, err := e.store.GetPreset(e.ctx, ID("p1"))
	if err != nil {
		t.Fatalf("GetPreset(p1): %v", err)
	}
	wantField := "desired"
	var ve *prebuilds.ValidationError
	if err := prebuilds.ValidatePreset(tc.p); errors.As(err, &ve) {
		wantField = ve.Field
	} else if !tc.update {
		t.Fatalf("prebuilds.ValidatePreset accepts the case (suite bug): %v", err)
	}

	err = e.store.UpsertPreset(e.ctx, tc.p)
	if !errors.Is(err, prebuilds.ErrInvalidPreset) {
		t.Fatalf("UpsertPreset(%+v) = %v, want an error matching prebuilds.ErrInvalidPreset", tc.p, err)
	}
	ve = nil
	if !errors.As(err, &ve) || ve.Field != wantField {
		t.Fatalf("UpsertPreset error %v: want a *prebuilds.ValidationError with Field %q", err, wantField)
	}
	merr := e.world.UpsertPreset(tc.p)
	sameError(t, "UpsertPreset", err, merr)
	// The model validates with its own code: it must blame the same field.
	var mve *prebuilds.ValidationError
	if errors.As(merr, &mve) && mve.Field != ve.Field {
		t.Fatalf("UpsertPreset: store blames field %q, the model %q\n store error: %v\n model error: %v", ve.Field, mve.Field, err, merr)
	}

	if tc.update {
		after, err := e.store.GetPreset(e.ctx, ID("p1"))
		if err != nil {
			t.Fatalf("GetPreset(p1): %v", err)
		}
		if diff := cmp.Diff(before, after, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("rejected update changed the preset (-before +after):\n%s", diff)
		}
	} else if _, err := e.store.GetPreset(e.ctx, tc.p.ID); !errors.Is(err, prebuilds.ErrNotFound) {
		t.Fatalf("GetPreset of the rejected preset = %v, want ErrNotFound: nothing may be stored", err)
	}
	e.requireSnapshot(passConfig{DefaultConfig}.params(e.now()), "after the rejected upsert")
}

type errorCase struct {
	name string
	// setup runs after the claim fixture (t1, v1 active, p1 desired 1) at
	// Epoch+10s.
	setup []Op
	call  func(ctx context.Context, st Store, now time.Time) error
	want  error
}

func errorCases() []errorCase {
	running := func(k string) []Op { return []Op{prebuildOp(k), UpdateJob{k, 1, prebuilds.JobSucceeded, ""}} }
	otherTemplate := []Op{AddTemplate{"t2"}, AddVersion{"v2", "t2"}}
	job := func(key string, n int, st prebuilds.JobStatus, kind prebuilds.FailureKind) func(context.Context, Store, time.Time) error {
		return func(ctx context.Context, s Store, now time.Time) error {
			_, err := s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: ID(BuildKey(key, n)), Status: st, FailureKind: kind, Now: now})
			return err
		}
	}
	create := func(preset, version string, ids ...string) func(context.Context, Store, time.Time) error {
		return func(ctx context.Context, s Store, now time.Time) error {
			var news []prebuilds.NewPrebuild
			for _, k := range ids {
				news = append(news, prebuilds.NewPrebuild{InstanceID: ID(k), BuildID: ID(BuildKey(k, 1)), Name: k})
			}
			_, err := s.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{PresetID: ID(preset), TemplateVersionID: ID(version), Instances: news, Now: now})
			return err
		}
	}
	del := func(key string) func(context.Context, Store, time.Time) error {
		return func(ctx context.Context, s Store, now time.Time) error {
			_, err := s.DeletePrebuild(ctx, prebuilds.DeletePrebuildParams{InstanceID: ID(key), BuildID: ID(key + "/delete"), Now: now})
			return err
		}
	}
	claim := func(preset string, owner uuid.UUID) func(context.Context, Store, time.Time) error {
		return func(ctx context.Context, s Store, now time.Time) error {
			_, err := s.Claim(ctx, prebuilds.ClaimParams{PresetID: ID(preset), Owner: owner, Now: now})
			return err
		}
	}
	instance := func(mut func(*prebuilds.CreateInstanceParams)) func(context.Context, Store, time.Time) error {
		return func(ctx context.Context, s Store, now time.Time) error {
			p := prebuilds.CreateInstanceParams{InstanceID: ID("n1"), OwnerID: prebuilds.SystemOwner, TemplateID: ID("t1"), Name: "n1",
				BuildID: ID(BuildKey("n1", 1)), TemplateVersionID: ID("v1"), PresetID: ID("p1"), Transition: prebuilds.TransitionStart, Now: now}
			mut(&p)
			return s.CreateInstance(ctx, p)
		}
	}
	op := func(o Op) func(context.Context, Store, time.Time) error {
		return func(ctx context.Context, s Store, now time.Time) error { return o.ApplyStore(ctx, s, now) }
	}
	return []errorCase{
		// ErrNotFound
		{name: "NotFound/UpsertPresetMissingVersion", call: op(UpsertPreset{Key: "p9", Version: "v9", Desired: count(1)}), want: prebuilds.ErrNotFound},
		{name: "NotFound/CreateVersionMissingTemplate", call: op(AddVersion{"v9", "t9"}), want: prebuilds.ErrNotFound},
		{name: "NotFound/ActivateMissingTemplate", call: op(Activate{"t9", "v1"}), want: prebuilds.ErrNotFound},
		{name: "NotFound/ActivateVersionOfOtherTemplate", setup: otherTemplate, call: op(Activate{"t1", "v2"}), want: prebuilds.ErrNotFound},
		{name: "NotFound/DeprecateMissingTemplate", call: op(Deprecate{Template: "t9"}), want: prebuilds.ErrNotFound},
		{name: "NotFound/InvalidateMissingPreset", call: op(Invalidate{"p9"}), want: prebuilds.ErrNotFound},
		{name: "NotFound/ResetMissingPreset", call: op(Reset{"p9"}), want: prebuilds.ErrNotFound},
		{name: "NotFound/CreateInstanceMissingPreset", call: op(CreateInstance{Key: "i1", Template: "t1", Version: "v1", Preset: "p9"}), want: prebuilds.ErrNotFound},
		{name: "NotFound/StartBuildMissingInstance", call: op(StartBuild{Instance: "i9", Number: 2, Version: "v1", Transition: prebuilds.TransitionStop}), want: prebuilds.ErrNotFound},
		{name: "NotFound/UpdateJobMissingBuild", call: job("i9", 1, prebuilds.JobSucceeded, ""), want: prebuilds.ErrNotFound},
		{name: "NotFound/SetReadyMissingInstance", call: op(SetReady{Instance: "i9"}), want: prebuilds.ErrNotFound},
		{name: "NotFound/RemoveMissingInstance", call: op(RemoveInstance{"i9"}), want: prebuilds.ErrNotFound},
		{name: "NotFound/ClaimMissingPreset", call: claim("p9", ID("user")), want: prebuilds.ErrNotFound},
		{name: "NotFound/CreatePrebuildsMissingPreset", call: create("p9", "v1", "n1"), want: prebuilds.ErrNotFound},
		{name: "NotFound/DeletePrebuildMissingInstance", call: del("i9"), want: prebuilds.ErrNotFound},
		{name: "NotFound/CancelPendingMissingPreset", call: func(ctx context.Context, s Store, now time.Time) error {
			_, err := s.CancelPending(ctx, prebuilds.CancelPendingParams{PresetID: ID("p9"), Now: now})
			return err
		}, want: prebuilds.ErrNotFound},
		{name: "NotFound/SetPresetStatusMissingPreset", call: func(ctx context.Context, s Store, _ time.Time) error {
			_, err := s.SetPresetStatus(ctx, ID("p9"), prebuilds.PresetHealthy, prebuilds.PresetHardLimited)
			return err
		}, want: prebuilds.ErrNotFound},
		{name: "NotFound/GetInstance", call: func(ctx context.Context, s Store, _ time.Time) error {
			_, err := s.GetInstance(ctx, ID("i9"))
			return err
		}, want: prebuilds.ErrNotFound},
		{name: "NotFound/ListBuilds", call: func(ctx context.Context, s Store, _ time.Time) error {
			_, err := s.ListBuilds(ctx, ID("i9"))
			return err
		}, want: prebuilds.ErrNotFound},

		// ErrConflict
		{name: "Conflict/DuplicateTemplate", call: op(AddTemplate{"t1"}), want: prebuilds.ErrConflict},
		{name: "Conflict/DuplicateVersion", call: op(AddVersion{"v1", "t1"}), want: prebuilds.ErrConflict},
		{name: "Conflict/PresetNameTakenInVersion", call: func(ctx context.Context, s Store, _ time.Time) error {
			return s.UpsertPreset(ctx, prebuilds.Preset{ID: ID("p9"), TemplateVersionID: ID("v1"), Name: "p1", Desired: count(1)})
		}, want: prebuilds.ErrConflict},
		{name: "Conflict/PresetMovedToOtherVersion", setup: []Op{AddVersion{"v2", "t1"}},
			call: op(UpsertPreset{Key: "p1", Version: "v2", Desired: count(1)}), want: prebuilds.ErrConflict},
		{name: "Conflict/ActivateOnDeletedTemplate", setup: []Op{AddVersion{"v2", "t1"}, DeleteTemplate{"t1"}},
			call: op(Activate{"t1", "v2"}), want: prebuilds.ErrConflict},
		{name: "Conflict/DuplicateInstance", setup: running("i1"), call: op(prebuildOp("i1")), want: prebuilds.ErrConflict},
		{name: "Conflict/StartBuildWhileJobPending", setup: []Op{prebuildOp("i1")},
			call: op(StartBuild{Instance: "i1", Number: 2, Version: "v1", Transition: prebuilds.TransitionStop}), want: prebuilds.ErrConflict},
		{name: "Conflict/StartBuildOnDeletedInstance", setup: append(running("i1"), RemoveInstance{"i1"}),
			call: op(StartBuild{Instance: "i1", Number: 2, Version: "v1", Transition: prebuilds.TransitionStart}), want: prebuilds.ErrConflict},
		{name: "Conflict/DeletePrebuildStarting", setup: []Op{prebuildOp("i1")}, call: del("i1"), want: prebuilds.ErrConflict},
		{name: "Conflict/DeletePrebuildFailed", setup: []Op{prebuildOp("i1"), UpdateJob{"i1", 1, prebuilds.JobFailed, prebuilds.FailureTransient}},
			call: del("i1"), want: prebuilds.ErrConflict},
		{name: "Conflict/DeletePrebuildClaimed", setup: append(readyOps("i1"), Claim{Preset: "p1", Want: "i1"}), call: del("i1"), want: prebuilds.ErrConflict},
		{name: "Conflict/DeletePrebuildUserOwned", setup: []Op{CreateInstance{Key: "i1", Template: "t1", Version: "v1", Preset: "p1", Owner: "someone"},
			UpdateJob{"i1", 1, prebuilds.JobSucceeded, ""}}, call: del("i1"), want: prebuilds.ErrConflict},
		{name: "Conflict/DeletePrebuildRemoved", setup: append(running("i1"), RemoveInstance{"i1"}), call: del("i1"), want: prebuilds.ErrConflict},
		{name: "Conflict/DeletePrebuildTwice", setup: running("i1"), call: func(ctx context.Context, s Store, now time.Time) error {
			if err := del("i1")(ctx, s, now); err != nil {
				return fmt.Errorf("first delete failed, want success: %v", err)
			}
			_, err := s.DeletePrebuild(ctx, prebuilds.DeletePrebuildParams{InstanceID: ID("i1"), BuildID: ID("i1/delete2"), Now: now})
			return err
		}, want: prebuilds.ErrConflict},
		{name: "Conflict/CreatePrebuildsVersionMismatch", setup: []Op{AddVersion{"v2", "t1"}}, call: create("p1", "v2", "n1"), want: prebuilds.ErrConflict},
		{name: "Conflict/CreatePrebuildsExistingID", setup: running("i1"), call: create("p1", "v1", "n1", "i1"), want: prebuilds.ErrConflict},
		{name: "Conflict/CreatePrebuildsRepeatedID", call: create("p1", "v1", "n1", "n2", "n1"), want: prebuilds.ErrConflict},

		// ErrInvalidTransition
		{name: "InvalidTransition/SucceededToRunning", setup: running("i1"), call: job("i1", 1, prebuilds.JobRunning, ""), want: prebuilds.ErrInvalidTransition},
		{name: "InvalidTransition/FailedToSucceeded", setup: []Op{prebuildOp("i1"), UpdateJob{"i1", 1, prebuilds.JobFailed, ""}},
			call: job("i1", 1, prebuilds.JobSucceeded, ""), want: prebuilds.ErrInvalidTransition},
		{name: "InvalidTransition/PendingToPending", setup: []Op{prebuildOp("i1")}, call: job("i1", 1, prebuilds.JobPending, ""), want: prebuilds.ErrInvalidTransition},
		{name: "InvalidTransition/CancelingToSucceeded", setup: []Op{prebuildOp("i1"), UpdateJob{"i1", 1, prebuilds.JobCanceling, ""}},
			call: job("i1", 1, prebuilds.JobSucceeded, ""), want: prebuilds.ErrInvalidTransition},
		{name: "InvalidTransition/CanceledToCanceled", setup: []Op{prebuildOp("i1"), UpdateJob{"i1", 1, prebuilds.JobCanceled, ""}},
			call: job("i1", 1, prebuilds.JobCanceled, ""), want: prebuilds.ErrInvalidTransition},

		// ErrInvalidArgument
		{name: "InvalidArgument/ClaimForSystemOwner", setup: readyOps("i1"), call: claim("p1", prebuilds.SystemOwner), want: prebuilds.ErrInvalidArgument},
		{name: "InvalidArgument/ClaimForNobody", setup: readyOps("i1"), call: claim("p1", uuid.Nil), want: prebuilds.ErrInvalidArgument},
		{name: "InvalidArgument/FailureKindWithoutFailure", setup: []Op{prebuildOp("i1")},
			call: job("i1", 1, prebuilds.JobSucceeded, prebuilds.FailureTransient), want: prebuilds.ErrInvalidArgument},
		{name: "InvalidArgument/UnknownJobStatus", setup: []Op{prebuildOp("i1")}, call: job("i1", 1, "done", ""), want: prebuilds.ErrInvalidArgument},
		{name: "InvalidArgument/UnknownTransition", setup: running("i1"),
			call: op(StartBuild{Instance: "i1", Number: 2, Version: "v1", Transition: "pause"}), want: prebuilds.ErrInvalidArgument},
		{name: "InvalidArgument/TemplateWithActiveVersion", call: func(ctx context.Context, s Store, _ time.Time) error {
			return s.CreateTemplate(ctx, prebuilds.Template{ID: ID("t9"), Name: "t9", ActiveVersionID: ID("v1")})
		}, want: prebuilds.ErrInvalidArgument},
		{name: "InvalidArgument/UnknownPresetStatus", call: func(ctx context.Context, s Store, _ time.Time) error {
			_, err := s.SetPresetStatus(ctx, ID("p1"), prebuilds.PresetHealthy, "sleepy")
			return err
		}, want: prebuilds.ErrInvalidArgument},
		{name: "InvalidArgument/CreateVersionNilTemplate", call: func(ctx context.Context, s Store, now time.Time) error {
			return s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: ID("v9"), Name: "v9", CreatedAt: now})
		}, want: prebuilds.ErrInvalidArgument},
		{name: "InvalidArgument/CreateInstanceNilOwner", call: instance(func(p *prebuilds.CreateInstanceParams) { p.OwnerID = uuid.Nil }), want: prebuilds.ErrInvalidArgument},
		{name: "InvalidArgument/CreateInstancePresetOfOtherVersion", setup: []Op{AddVersion{"v2", "t1"}},
			call: instance(func(p *prebuilds.CreateInstanceParams) { p.TemplateVersionID = ID("v2") }), want: prebuilds.ErrInvalidArgument},
		{name: "NotFound/CreateInstanceMissingTemplate", call: instance(func(p *prebuilds.CreateInstanceParams) { p.TemplateID = ID("t9") }), want: prebuilds.ErrNotFound},
		{name: "NotFound/CreateInstanceVersionOfOtherTemplate", setup: otherTemplate,
			call: instance(func(p *prebuilds.CreateInstanceParams) { p.TemplateVersionID, p.PresetID = ID("v2"), uuid.Nil }), want: prebuilds.ErrNotFound},
		{name: "Conflict/CreateInstanceExistingBuildID", setup: running("i1"),
			call: instance(func(p *prebuilds.CreateInstanceParams) { p.BuildID = ID(BuildKey("i1", 1)) }), want: prebuilds.ErrConflict},
		// The first failing check decides: the template is looked up before
		// the instance ID.
		{name: "Order/CreateInstanceMissingTemplateBeforeDuplicateID", setup: running("n1"),
			call: instance(func(p *prebuilds.CreateInstanceParams) { p.TemplateID = ID("t9") }), want: prebuilds.ErrNotFound},
		{name: "NotFound/StartBuildMissingVersion", setup: running("i1"),
			call: op(StartBuild{Instance: "i1", Number: 2, Version: "v9", Transition: prebuilds.TransitionStop}), want: prebuilds.ErrNotFound},
		{name: "NotFound/StartBuildMissingPreset", setup: running("i1"),
			call: op(StartBuild{Instance: "i1", Number: 2, Version: "v1", Preset: "p9", Transition: prebuilds.TransitionStart}), want: prebuilds.ErrNotFound},
		{name: "InvalidArgument/StartBuildVersionOfOtherTemplate", setup: append(running("i1"), otherTemplate...),
			call: op(StartBuild{Instance: "i1", Number: 2, Version: "v2", Transition: prebuilds.TransitionStop}), want: prebuilds.ErrInvalidArgument},
		{name: "InvalidArgument/StartBuildPresetOfOtherVersion", setup: append(running("i1"), AddVersion{"v2", "t1"}),
			call: op(StartBuild{Instance: "i1", Number: 2, Version: "v2", Preset: "p1", Transition: prebuilds.TransitionStart}), want: prebuilds.ErrInvalidArgument},
		// An instance of t1 must not become supply of a preset of t2.
		{name: "InvalidArgument/StartBuildPresetOfOtherTemplate", setup: append(running("i1"), AddTemplate{"t2"}, AddVersion{"v2", "t2"},
			UpsertPreset{Key: "p2", Version: "v2", Desired: count(1)}),
			call: op(StartBuild{Instance: "i1", Number: 2, Version: "v2", Preset: "p2", Transition: prebuilds.TransitionStart}), want: prebuilds.ErrInvalidArgument},
		{name: "Order/StartBuildOtherTemplateBeforeMissingPreset", setup: append(running("i1"), otherTemplate...),
			call: op(StartBuild{Instance: "i1", Number: 2, Version: "v2", Preset: "p9", Transition: prebuilds.TransitionStart}), want: prebuilds.ErrInvalidArgument},
		{name: "Order/StartBuildPresetOfOtherVersionBeforeExistingBuildID", setup: append(running("i1"), AddVersion{"v2", "t1"}),
			call: func(ctx context.Context, s Store, now time.Time) error {
				return s.StartBuild(ctx, prebuilds.StartBuildParams{InstanceID: ID("i1"), BuildID: ID(BuildKey("i1", 1)),
					TemplateVersionID: ID("v2"), PresetID: ID("p1"), Transition: prebuilds.TransitionStart, Now: now})
			}, want: prebuilds.ErrInvalidArgument},
		{name: "Conflict/StartBuildExistingBuildID", setup: running("i1"), call: func(ctx context.Context, s Store, now time.Time) error {
			return s.StartBuild(ctx, prebuilds.StartBuildParams{InstanceID: ID("i1"), BuildID: ID(BuildKey("i1", 1)),
				TemplateVersionID: ID("v1"), Transition: prebuilds.TransitionStop, Now: now})
		}, want: prebuilds.ErrConflict},
		{name: "Order/StartBuildDeletedBeforeMissingVersion", setup: append(running("i1"), RemoveInstance{"i1"}),
			call: op(StartBuild{Instance: "i1", Number: 2, Version: "v9", Transition: prebuilds.TransitionStop}), want: prebuilds.ErrConflict},
		{name: "InvalidArgument/UnknownFailureKind", setup: []Op{prebuildOp("i1")}, call: job("i1", 1, prebuilds.JobFailed, "cosmic"), want: prebuilds.ErrInvalidArgument},
		{name: "Order/UpdateJobArgumentBeforeMissingBuild", call: job("i9", 1, "done", ""), want: prebuilds.ErrInvalidArgument},
		{name: "InvalidArgument/CreatePrebuildsNilPreset", call: func(ctx context.Context, s Store, now time.Time) error {
			_, err := s.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{TemplateVersionID: ID("v1"),
				Instances: []prebuilds.NewPrebuild{{InstanceID: ID("n1"), BuildID: ID(BuildKey("n1", 1))}}, Now: now})
			return err
		}, want: prebuilds.ErrInvalidArgument},
		{name: "Conflict/CreatePrebuildsExistingBuildID", setup: running("i1"), call: func(ctx context.Context, s Store, now time.Time) error {
			_, err := s.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{PresetID: ID("p1"), TemplateVersionID: ID("v1"),
				Instances: []prebuilds.NewPrebuild{{InstanceID: ID("n1"), BuildID: ID(BuildKey("i1", 1))}}, Now: now})
			return err
		}, want: prebuilds.ErrConflict},
		{name: "Conflict/CreatePrebuildsRepeatedBuildID", call: func(ctx context.Context, s Store, now time.Time) error {
			_, err := s.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{PresetID: ID("p1"), TemplateVersionID: ID("v1"),
				Instances: []prebuilds.NewPrebuild{{InstanceID: ID("n1"), BuildID: ID("b")}, {InstanceID: ID("n2"), BuildID: ID("b")}}, Now: now})
			return err
		}, want: prebuilds.ErrConflict},
		{name: "Order/CreatePrebuildsMissingPresetBeforeDuplicateID", setup: running("i1"), call: create("p9", "v1", "i1"), want: prebuilds.ErrNotFound},
		{name: "InvalidArgument/DeletePrebuildNilBuildID", setup: running("i1"), call: func(ctx context.Context, s Store, now time.Time) error {
			_, err := s.DeletePrebuild(ctx, prebuilds.DeletePrebuildParams{InstanceID: ID("i1"), Now: now})
			return err
		}, want: prebuilds.ErrInvalidArgument},
		{name: "Conflict/DeletePrebuildExistingBuildID", setup: running("i1"), call: func(ctx context.Context, s Store, now time.Time) error {
			_, err := s.DeletePrebuild(ctx, prebuilds.DeletePrebuildParams{InstanceID: ID("i1"), BuildID: ID(BuildKey("i1", 1)), Now: now})
			return err
		}, want: prebuilds.ErrConflict},
		{name: "InvalidArgument/CreatePrebuildsNilID", call: func(ctx context.Context, s Store, now time.Time) error {
			_, err := s.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{PresetID: ID("p1"), TemplateVersionID: ID("v1"),
				Instances: []prebuilds.NewPrebuild{{InstanceID: ID("n1")}}, Now: now})
			return err
		}, want: prebuilds.ErrInvalidArgument},
	}
}

// errorCase: the call fails with the sentinel, the model agrees, and the
// failed call changed nothing.
func (s *suite) errorCase(t *testing.T, tc errorCase) {
	e := s.claimFixture(t)
	setup := Epoch.Add(10 * time.Second)
	e.clock.Set(setup)
	e.applyAll(setup, tc.setup...)
	now := Epoch.Add(time.Minute)
	e.clock.Set(now)

	merr := tc.call(e.ctx, &modelStore{w: e.world}, now)
	if !errors.Is(merr, tc.want) {
		t.Fatalf("the model returns %v, want %v (suite bug)", merr, tc.want)
	}
	err := tc.call(e.ctx, e.store, now)
	if !errors.Is(err, tc.want) {
		t.Fatalf("got %v (%s), want an error matching %v (docs/store-semantics.md)", err, errClass(err), tc.want)
	}
	e.requireSnapshot(passConfig{DefaultConfig}.params(now), "after the failed call")
}
