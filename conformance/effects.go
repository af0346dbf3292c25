package conformance

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// effectsGroup: Effects/<operation>/<case>: a call that succeeds returns
// what the model returns and writes what the model writes: afterwards every
// preset, instance and build reads back as the model has it (times in UTC)
// and the snapshots are equal.
func (s *suite) effectsGroup(t *testing.T) {
	for _, tc := range effectCases() {
		s.run(t, tc.op+"/"+tc.name, func(t *testing.T) { s.effectCase(t, tc) })
	}
}

type effectCase struct {
	// op is the operation under test, name the case.
	op, name string
	// rule is the rule in one plain sentence.
	rule string
	pos  scenario.Pos
	// setup runs after the claim fixture (t1, v1 active, p1 desired 1) at
	// epoch+10s.
	setup []op
	// calls are made in order at epoch+1m, on the model and on the store.
	calls []effectCall
}

type effectCall struct {
	// what names the call in failures, e.g. "the second RemoveInstance(i1)".
	what string
	do   func(ctx context.Context, st Store, now time.Time) (any, error)
	// check, when set, is a rule on the result the model's must meet too;
	// it returns what is wrong ("" when nothing).
	check func(res any) string
}

// fx builds an effect case, recording where it is defined.
func fx(opName, name, rule string, setup []op, calls ...effectCall) effectCase {
	return effectCase{op: opName, name: name, rule: rule, pos: scenario.Here(0), setup: setup, calls: calls}
}

// returns wraps a call that returns only an error.
func returns(what string, f func(ctx context.Context, st Store, now time.Time) error) effectCall {
	return effectCall{what: what, do: func(ctx context.Context, st Store, now time.Time) (any, error) { return nil, f(ctx, st, now) }}
}

// result wraps a call with a result.
func result[R any](what string, f func(ctx context.Context, st Store, now time.Time) (R, error)) effectCall {
	return effectCall{what: what, do: func(ctx context.Context, st Store, now time.Time) (any, error) { return f(ctx, st, now) }}
}

func getPreset(key string) effectCall {
	return result("GetPreset("+key+")", func(ctx context.Context, st Store, _ time.Time) (prebuilds.Preset, error) {
		return st.GetPreset(ctx, id(key))
	})
}

func setStatus(from, to prebuilds.PresetStatus) effectCall {
	return result(fmt.Sprintf("SetPresetStatus(p1, %s → %s)", from, to), func(ctx context.Context, st Store, _ time.Time) (bool, error) {
		return st.SetPresetStatus(ctx, id("p1"), from, to)
	})
}

func upsert(what string, p prebuilds.Preset) effectCall {
	return returns(what, func(ctx context.Context, st Store, _ time.Time) error { return st.UpsertPreset(ctx, p) })
}

func effectCases() []effectCase {
	type (
		addV = scenario.AddVersion
		job  = scenario.UpdateJob
	)
	failed := func(k string, n int, kind prebuilds.FailureKind) job {
		return job{Instance: k, Number: n, Status: prebuilds.JobFailed, FailureKind: kind}
	}
	build := func(k string, n int, v, preset string, tr prebuilds.Transition) scenario.StartBuild {
		return scenario.StartBuild{Instance: k, Number: n, Version: v, Preset: preset, Transition: tr}
	}
	succeeded := func(k string, n int) job { return job{Instance: k, Number: n, Status: prebuilds.JobSucceeded} }
	inv := epoch.Add(1500 * time.Nanosecond)

	cases := []effectCase{
		fx("DeleteTemplate", "Idempotent", "DeleteTemplate of a deleted template succeeds and changes nothing.", nil,
			returns("DeleteTemplate(t1)", func(ctx context.Context, st Store, _ time.Time) error { return st.DeleteTemplate(ctx, id("t1")) }),
			returns("the second DeleteTemplate(t1)", func(ctx context.Context, st Store, _ time.Time) error { return st.DeleteTemplate(ctx, id("t1")) })),

		fx("UpsertPreset", "NameTakenOnOtherVersion", "UpsertPreset accepts a name another version's preset has: names are unique per version.",
			[]op{addV{Key: "v2", Template: "t1"}},
			upsert("UpsertPreset(p2 named p1 on v2)", prebuilds.Preset{ID: id("p2"), TemplateVersionID: id("v2"), Name: "p1", Desired: count(1)}),
			getPreset("p2")),
		fx("UpsertPreset", "DesiredUnsetThenSet", "An update may leave desired unset while it is unset, and set it later.",
			[]op{scenario.UpsertPreset{Key: "p2", Version: "v1"}},
			upsert("UpsertPreset(p2 renamed, desired unset)", prebuilds.Preset{ID: id("p2"), TemplateVersionID: id("v1"), Name: "renamed"}),
			getPreset("p2"),
			upsert("UpsertPreset(p2, desired 0)", prebuilds.Preset{ID: id("p2"), TemplateVersionID: id("v1"), Name: "renamed", Desired: count(0)}),
			getPreset("p2")),
		fx("UpsertPreset", "UpdateKeepsStatusAndTimes",
			"UpsertPreset stores the times to the microsecond and an empty status as healthy; an update replaces name, desired, TTL, timezone, schedules and parameters and keeps status, invalidated_at and reset_at; InvalidatePreset and ResetPreset set them.",
			nil,
			upsert("UpsertPreset(p2, invalidated and reset at +1.5µs)", prebuilds.Preset{ID: id("p2"), TemplateVersionID: id("v1"), Name: "p2", Desired: count(2),
				TTL: time.Hour, InvalidatedAt: inv, ResetAt: inv, Parameters: map[string]string{"a": "1"}}),
			getPreset("p2"),
			result("SetPresetStatus(p2, healthy → hard_limited)", func(ctx context.Context, st Store, _ time.Time) (bool, error) {
				return st.SetPresetStatus(ctx, id("p2"), prebuilds.PresetHealthy, prebuilds.PresetHardLimited)
			}),
			upsert("UpsertPreset(p2 updated, status validation_failed, other times)", prebuilds.Preset{ID: id("p2"), TemplateVersionID: id("v1"), Name: "renamed",
				Desired: count(3), TTL: time.Minute, Timezone: "Europe/Paris", Schedules: []prebuilds.Schedule{{Cron: "* 9-17 * * 1-5", Instances: 5}},
				Parameters: map[string]string{"b": "2"}, Status: prebuilds.PresetValidationFailed, InvalidatedAt: epoch.Add(time.Hour), ResetAt: epoch.Add(time.Hour)}),
			getPreset("p2"),
			returns("InvalidatePreset(p2)", func(ctx context.Context, st Store, _ time.Time) error {
				return st.InvalidatePreset(ctx, id("p2"), epoch)
			}),
			returns("ResetPreset(p2)", func(ctx context.Context, st Store, _ time.Time) error {
				return st.ResetPreset(ctx, id("p2"), epoch.Add(time.Second))
			}),
			getPreset("p2")),
		fx("UpsertPreset", "InsertKeepsEveryField", "UpsertPreset of a new preset stores every field as given (a status too, schedules in order), times to the microsecond.", nil,
			upsert("UpsertPreset(p2, hard_limited, two schedules)", prebuilds.Preset{ID: id("p2"), TemplateVersionID: id("v1"), Name: "ws", Desired: count(2),
				TTL: 90 * time.Minute, InvalidatedAt: epoch.Add(123 * time.Nanosecond), Timezone: "America/Los_Angeles",
				Schedules:  []prebuilds.Schedule{{Cron: "* 2-4 * * 1", Instances: 3}, {Cron: "* 6-8 * * 1", Instances: 0}},
				Parameters: map[string]string{"a": "1", "b": "2"}, Status: prebuilds.PresetHardLimited, ResetAt: epoch.Add(time.Second)}),
			getPreset("p2")),

		fx("RemoveInstance", "Idempotent", "RemoveInstance of a removed instance succeeds and writes nothing (no build).", readyOps("i1"),
			returns("RemoveInstance(i1)", func(ctx context.Context, st Store, _ time.Time) error { return st.RemoveInstance(ctx, id("i1")) }),
			returns("the second RemoveInstance(i1)", func(ctx context.Context, st Store, _ time.Time) error { return st.RemoveInstance(ctx, id("i1")) })),

		fx("CreatePrebuilds", "EmptyIsNoop", "CreatePrebuilds of no instances succeeds before any check, even with nil IDs, and writes nothing.", nil,
			result("CreatePrebuilds(no instances, nil preset and version)", func(ctx context.Context, st Store, now time.Time) ([]prebuilds.Job, error) {
				return st.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{Now: now})
			})),

		fx("DeletePrebuild", "OnLatestVersion/PresetlessRestart",
			"DeletePrebuild starts the delete build on the version of the instance's latest build (here a preset-less start on another version), numbered next, pending, created at Now to the microsecond; the instance counts as deleting for its current preset.",
			seq(runningOps("i1"), []op{addV{Key: "v2", Template: "t1"}, build("i1", 2, "v1", "", prebuilds.TransitionStop), succeeded("i1", 2),
				build("i1", 3, "v2", "", prebuilds.TransitionStart), succeeded("i1", 3)}),
			deleteCall("i1", time.Nanosecond), listBuilds("i1")),
		fx("DeletePrebuild", "OnLatestVersion/MovedPreset",
			"DeletePrebuild starts the delete build on the version of the instance's latest build (here a start with a preset of another version), not its first preset's.",
			seq(runningOps("i1"), []op{addV{Key: "v2", Template: "t1"}, scenario.UpsertPreset{Key: "p2", Version: "v2"},
				build("i1", 2, "v2", "p2", prebuilds.TransitionStart), succeeded("i1", 2)}),
			deleteCall("i1", 5*time.Nanosecond), listBuilds("i1")),

		fx("CancelPending", "ActivePresetUntouched", "CancelPending of an active preset cancels nothing and returns an empty, non-nil list.",
			[]op{prebuildOp("i1")}, cancelCall("CancelPending(p1)")),

		fx("SetPresetStatus", "CompareAndSet",
			"SetPresetStatus changes the status only from the given one, and reports whether it did (the same status again counts as a change).", nil,
			setStatus(prebuilds.PresetHardLimited, prebuilds.PresetHealthy), getPreset("p1"),
			setStatus(prebuilds.PresetHealthy, prebuilds.PresetHardLimited), getPreset("p1"),
			setStatus(prebuilds.PresetHealthy, prebuilds.PresetHardLimited), getPreset("p1"),
			setStatus(prebuilds.PresetHardLimited, prebuilds.PresetHardLimited), getPreset("p1"),
			setStatus(prebuilds.PresetHardLimited, prebuilds.PresetHealthy), getPreset("p1")),

		fx("Claim", "PresetlessRestartKeepsPreset",
			"Claim hands out a prebuild restarted without a preset: a start build without a preset keeps the current preset.",
			seq(runningOps("i1"), []op{build("i1", 2, "v1", "", prebuilds.TransitionStop), succeeded("i1", 2),
				build("i1", 3, "v1", "", prebuilds.TransitionStart), succeeded("i1", 3), scenario.SetReady{Instance: "i1"}}),
			claimCall()),
	}

	// CancelPending of an inactive preset cancels exactly the prebuilds of
	// the preset whose only build is a pending start.
	victims := []op{prebuildOp("c1"), prebuildOp("c2"), prebuildOp("c3"), prebuildOp("c4")}
	spared := []op{
		prebuildOp("running"), jobOp("running", prebuilds.JobRunning),
		prebuildOp("done"), jobOp("done", prebuilds.JobSucceeded),
		scenario.CreateInstance{Key: "user", Template: "t1", Version: "v1", Preset: "p1", Owner: "someone"},
		scenario.UpsertPreset{Key: "p2", Version: "v1", Desired: count(1)},
		scenario.CreateInstance{Key: "other", Template: "t1", Version: "v1", Preset: "p2"},
		scenario.CreateInstance{Key: "stop", Template: "t1", Version: "v1", Preset: "p1", Transition: prebuilds.TransitionStop},
		prebuildOp("retry"), failed("retry", 1, prebuilds.FailureTransient), build("retry", 2, "v1", "p1", prebuilds.TransitionStart),
	}
	for _, d := range []struct {
		name string
		ops  []op
	}{
		{"NewVersion", []op{addV{Key: "v2", Template: "t1"}, scenario.Activate{Template: "t1", Version: "v2"}}},
		{"Deprecated", []op{scenario.Deprecate{Template: "t1"}}},
		{"DeletedTemplate", []op{scenario.DeleteTemplate{Template: "t1"}}},
	} {
		c := fx("CancelPending", "Inactive/"+d.name,
			"CancelPending of an inactive preset cancels (job canceled at Now, instance deleted) exactly its prebuilds whose only build is a pending start, returns their IDs in UUID order, and nothing the second time.",
			seq(victims, spared, d.ops), cancelCall("CancelPending(p1)"), cancelCall("the second CancelPending(p1)"))
		cases = append(cases, c)
	}

	// Every allowed job transition succeeds (the refused ones are
	// Errors/UpdateJob/<From>To<To>).
	for _, tr := range jobTransitions() {
		if !tr.allowed {
			continue
		}
		c := fx("UpdateJob", "Transition/"+tr.name(), fmt.Sprintf("UpdateJob must move a %s job to %s.", tr.from, tr.to), tr.reach(),
			result("UpdateJob(i1 #1, "+string(tr.to)+")", func(ctx context.Context, st Store, now time.Time) (prebuilds.UpdateJobResult, error) {
				return st.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: buildID("i1", 1), Status: tr.to, Now: now})
			}))
		cases = append(cases, c)
	}

	// A validation failure marks the preset validation_failed only for a
	// prebuild's start build naming a healthy preset.
	validationKind := func(name, rule string, setup []op, n int, kind prebuilds.FailureKind, pre ...effectCall) effectCase {
		c := fx("UpdateJob", "ValidationFailure/"+name, rule, setup)
		c.calls = append(pre, result(fmt.Sprintf("UpdateJob(i1 #%d, failed: %s)", n, kind), func(ctx context.Context, st Store, now time.Time) (prebuilds.UpdateJobResult, error) {
			return st.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: buildID("i1", n), Status: prebuilds.JobFailed, FailureKind: kind, Now: now})
		}), getPreset("p1"))
		c.pos = scenario.Here(0)
		return c
	}
	validation := func(name, rule string, setup []op, n int, pre ...effectCall) effectCase {
		c := validationKind(name, rule, setup, n, prebuilds.FailureValidation, pre...)
		c.pos = scenario.Here(0)
		return c
	}
	ignored := "A validation failure must leave the preset's status alone (and name no preset) unless it is of a prebuild's start build naming a healthy preset: "
	cases = append(cases,
		validation("MarksPreset", "A validation failure of a prebuild's start build naming a healthy preset must mark it validation_failed and name it in the result.",
			[]op{prebuildOp("i1"), jobOp("i1", prebuilds.JobRunning)}, 1),
		validationKind("Transient", "A failure of another kind than validation (here transient) must leave the preset's status alone and name no preset.",
			[]op{prebuildOp("i1")}, 1, prebuilds.FailureTransient),
		validation("AlreadyMarked", ignored+"the preset is validation_failed already.",
			[]op{prebuildOp("i0"), failed("i0", 1, prebuilds.FailureValidation), prebuildOp("i1")}, 1),
		validation("HardLimitedKept", ignored+"the preset is hard_limited.",
			[]op{prebuildOp("i1")}, 1, setStatus(prebuilds.PresetHealthy, prebuilds.PresetHardLimited)),
		validation("UserOwned", ignored+"the instance is a user's.",
			[]op{scenario.CreateInstance{Key: "i1", Template: "t1", Version: "v1", Preset: "p1", Owner: "someone"}}, 1),
		validation("StopBuild", ignored+"the build is a stop.",
			seq(runningOps("i1"), []op{build("i1", 2, "v1", "p1", prebuilds.TransitionStop)}), 2),
		validation("NoPreset", ignored+"the build names no preset.",
			[]op{scenario.CreateInstance{Key: "i1", Template: "t1", Version: "v1"}}, 1),
	)
	return cases
}

func deleteCall(key string, after time.Duration) effectCall {
	return result("DeletePrebuild("+key+")", func(ctx context.Context, st Store, now time.Time) (prebuilds.Job, error) {
		return st.DeletePrebuild(ctx, prebuilds.DeletePrebuildParams{InstanceID: id(key), BuildID: id(key + "/delete"), Now: now.Add(after)})
	})
}

func listBuilds(key string) effectCall {
	return result("ListBuilds("+key+")", func(ctx context.Context, st Store, _ time.Time) ([]prebuilds.Build, error) {
		return st.ListBuilds(ctx, id(key))
	})
}

func claimCall() effectCall {
	return result("Claim(p1)", func(ctx context.Context, st Store, now time.Time) (prebuilds.Instance, error) {
		return st.Claim(ctx, prebuilds.ClaimParams{PresetID: id("p1"), Owner: id("claimant"), Now: now})
	})
}

// cancelCall cancels p1's pending prebuilds 3ns after the minute; the list
// must be non-nil and in UUID order.
func cancelCall(what string) effectCall {
	c := result(what, func(ctx context.Context, st Store, now time.Time) ([]uuid.UUID, error) {
		return st.CancelPending(ctx, prebuilds.CancelPendingParams{PresetID: id("p1"), Now: now.Add(3 * time.Nanosecond)})
	})
	c.check = func(res any) string {
		ids, _ := res.([]uuid.UUID)
		switch {
		case ids == nil:
			return "returned a nil list, want a non-nil (maybe empty) one"
		case !slices.IsSortedFunc(ids, prebuilds.CompareUUID):
			return "returned IDs out of UUID order"
		}
		return ""
	}
	return c
}

// jobTransition is one (from, to) pair of job statuses.
type jobTransition struct {
	from, to prebuilds.JobStatus
	allowed  bool
}

// name is e.g. "PendingToRunning".
func (tr jobTransition) name() string { return statusName(tr.from) + "To" + statusName(tr.to) }

func statusName(s prebuilds.JobStatus) string {
	if s == "" {
		return "Empty"
	}
	return string(s[0]-'a'+'A') + string(s[1:])
}

// reach creates prebuild i1 of p1 whose build #1's job is in status from.
func (tr jobTransition) reach() []op {
	ops := []op{prebuildOp("i1")}
	switch tr.from {
	case prebuilds.JobPending:
	case prebuilds.JobCanceling:
		ops = append(ops, jobOp("i1", prebuilds.JobRunning), jobOp("i1", prebuilds.JobCanceling))
	case prebuilds.JobFailed:
		ops = append(ops, scenario.UpdateJob{Instance: "i1", Number: 1, Status: prebuilds.JobFailed, FailureKind: prebuilds.FailureTransient})
	default:
		ops = append(ops, jobOp("i1", tr.from))
	}
	return ops
}

// jobTransitions lists every pair of job statuses, allowed or not
// (docs/spec.md: pending → any other; running → any finished or canceling;
// canceling → canceled or failed; nothing out of a finished status).
func jobTransitions() []jobTransition {
	all := []prebuilds.JobStatus{prebuilds.JobPending, prebuilds.JobRunning, prebuilds.JobSucceeded,
		prebuilds.JobFailed, prebuilds.JobCanceling, prebuilds.JobCanceled}
	allowed := map[prebuilds.JobStatus][]prebuilds.JobStatus{
		prebuilds.JobPending:   {prebuilds.JobRunning, prebuilds.JobSucceeded, prebuilds.JobFailed, prebuilds.JobCanceling, prebuilds.JobCanceled},
		prebuilds.JobRunning:   {prebuilds.JobSucceeded, prebuilds.JobFailed, prebuilds.JobCanceling, prebuilds.JobCanceled},
		prebuilds.JobCanceling: {prebuilds.JobCanceled, prebuilds.JobFailed},
	}
	var out []jobTransition
	for _, from := range all {
		for _, to := range all {
			out = append(out, jobTransition{from: from, to: to, allowed: slices.Contains(allowed[from], to)})
		}
	}
	return out
}

// effectCase: every call returns what the model's returns (and meets the
// case's check); afterwards the store reads back as the model.
func (s *suite) effectCase(t *testing.T, tc effectCase) {
	e := s.claimFixture(t, tc.rule, tc.pos)
	setup := epoch.Add(10 * time.Second)
	e.clock.Set(setup)
	e.applyAll(setup, tc.setup...)
	now := epoch.Add(time.Minute)
	e.clock.Set(now)

	m := &modelStore{w: e.world}
	v := e.verdict()
	for _, c := range tc.calls {
		mres, merr := c.do(e.ctx, m, now)
		if merr != nil {
			t.Fatalf("conformance: the model fails %s: %v (a bug in the suite)", c.what, merr)
		}
		if c.check != nil {
			if bad := c.check(mres); bad != "" {
				t.Fatalf("conformance: the model's %s %s (a bug in the suite)", c.what, bad)
			}
		}
		res, err := c.do(e.ctx, e.store, now)
		if err != nil {
			v.addf("%s returned %s: %v", c.what, errClass(err), err)
			continue
		}
		if c.check != nil {
			if bad := c.check(res); bad != "" {
				v.addf("%s %s", c.what, bad)
			}
		}
		v.diff(c.what+" (-model +store)", e.labels().diff(mres, res))
	}
	e.checkWorld(v, "after the calls")
	e.checkSnapshot(v, defaultParams(now), "after the calls")
	v.report(t)
}

// checkWorld records in v every preset, instance and build the store reads
// back otherwise than the model has it, and every time not in UTC.
func (e *env) checkWorld(v *verdict, when string) {
	e.t.Helper()
	l := e.labels()
	m := &modelStore{w: e.world}
	utc := func(what string, ts ...time.Time) {
		for _, ts := range ts {
			if !ts.IsZero() && ts.Location() != time.UTC {
				v.addf("%s: %s reads back a time in %s, want UTC", when, what, ts.Location())
				return
			}
		}
	}
	for _, p := range e.world.Presets {
		want, _ := m.GetPreset(e.ctx, p.ID)
		got, err := e.store.GetPreset(e.ctx, p.ID)
		if err != nil {
			v.addf("%s: GetPreset(%s): %v", when, l.of(p.ID), err)
			continue
		}
		utc("GetPreset("+l.key(p.ID)+")", got.InvalidatedAt, got.ResetAt)
		v.diff(fmt.Sprintf("%s: GetPreset(%s) (-model +store)", when, l.key(p.ID)), l.diff(want, got))
	}
	for _, i := range e.world.Instances {
		want, _ := m.GetInstance(e.ctx, i.ID)
		got, err := e.store.GetInstance(e.ctx, i.ID)
		if err != nil {
			v.addf("%s: GetInstance(%s): %v", when, l.of(i.ID), err)
			continue
		}
		utc("GetInstance("+l.key(i.ID)+")", got.CreatedAt)
		v.diff(fmt.Sprintf("%s: GetInstance(%s) (-model +store)", when, l.key(i.ID)), l.diff(want, got))
		wantBuilds, _ := m.ListBuilds(e.ctx, i.ID)
		builds, err := e.store.ListBuilds(e.ctx, i.ID)
		if err != nil {
			v.addf("%s: ListBuilds(%s): %v", when, l.of(i.ID), err)
			continue
		}
		for _, b := range builds {
			utc("ListBuilds("+l.key(i.ID)+")", b.CreatedAt, b.CompletedAt)
		}
		v.diff(fmt.Sprintf("%s: ListBuilds(%s) (-model +store)", when, l.key(i.ID)), l.diff(wantBuilds, builds))
	}
}
