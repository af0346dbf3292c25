package model

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func TestErrorsAndCheckOrder(t *testing.T) {
	t.Parallel()
	d := 1
	tests := []struct {
		name string
		op   func(w *World) error
		want error
	}{
		{"template nil id before conflict", func(w *World) error {
			return w.CreateTemplate(prebuilds.Template{Name: "x"})
		}, prebuilds.ErrInvalidArgument},
		{"template duplicate", func(w *World) error {
			return w.CreateTemplate(prebuilds.Template{ID: id("t1"), Name: "x"})
		}, prebuilds.ErrConflict},
		{"activate other template's version", func(w *World) error {
			must(t, w.CreateTemplate(prebuilds.Template{ID: id("t2"), Name: "t2"}))
			return w.SetActiveVersion(id("t2"), id("v1"))
		}, prebuilds.ErrNotFound},
		{"activate on deleted template", func(w *World) error {
			must(t, w.DeleteTemplate(id("t1")))
			return w.SetActiveVersion(id("t1"), id("v1"))
		}, prebuilds.ErrConflict},
		{"preset validation before version lookup", func(w *World) error {
			return w.UpsertPreset(prebuilds.Preset{ID: id("p9"), TemplateVersionID: id("nope")})
		}, prebuilds.ErrInvalidPreset},
		{"preset unknown version", func(w *World) error {
			return w.UpsertPreset(prebuilds.Preset{ID: id("p9"), TemplateVersionID: id("nope"), Name: "p9"})
		}, prebuilds.ErrNotFound},
		{"preset same name", func(w *World) error {
			return w.UpsertPreset(prebuilds.Preset{ID: id("p9"), TemplateVersionID: id("v1"), Name: "p1"})
		}, prebuilds.ErrConflict},
		{"preset desired unset", func(w *World) error {
			return w.UpsertPreset(prebuilds.Preset{ID: id("p1"), TemplateVersionID: id("v1"), Name: "p1"})
		}, prebuilds.ErrInvalidPreset},
		{"instance nil owner before missing template", func(w *World) error {
			return w.CreateInstance(prebuilds.CreateInstanceParams{InstanceID: id("i"), BuildID: id("b"),
				TemplateID: id("nope"), TemplateVersionID: id("v1"), Transition: prebuilds.TransitionStart})
		}, prebuilds.ErrInvalidArgument},
		{"instance preset of another version", func(w *World) error {
			must(t, w.CreateTemplateVersion(prebuilds.TemplateVersion{ID: id("v2"), TemplateID: id("t1")}))
			return w.CreateInstance(prebuilds.CreateInstanceParams{InstanceID: id("i"), BuildID: id("b"), OwnerID: id("u"),
				TemplateID: id("t1"), TemplateVersionID: id("v2"), PresetID: id("p1"), Transition: prebuilds.TransitionStart})
		}, prebuilds.ErrInvalidArgument},
		{"start build while latest pending", func(w *World) error {
			prebuild(t, w, "i", "p1", 1, prebuilds.JobPending)
			return w.StartBuild(prebuilds.StartBuildParams{InstanceID: id("i"), BuildID: id("i/b2"),
				TemplateVersionID: id("nope"), Transition: prebuilds.TransitionStop})
		}, prebuilds.ErrConflict},
		{"start build on version of another template", func(w *World) error {
			prebuild(t, w, "i", "p1", 1, prebuilds.JobSucceeded)
			must(t, w.CreateTemplate(prebuilds.Template{ID: id("t2"), Name: "t2"}))
			must(t, w.CreateTemplateVersion(prebuilds.TemplateVersion{ID: id("v2"), TemplateID: id("t2")}))
			return w.StartBuild(prebuilds.StartBuildParams{InstanceID: id("i"), BuildID: id("i/b2"),
				TemplateVersionID: id("v2"), PresetID: id("p9"), Transition: prebuilds.TransitionStart})
		}, prebuilds.ErrInvalidArgument},
		{"start build missing preset", func(w *World) error {
			prebuild(t, w, "i", "p1", 1, prebuilds.JobSucceeded)
			return w.StartBuild(prebuilds.StartBuildParams{InstanceID: id("i"), BuildID: id("i/b1"),
				TemplateVersionID: id("v1"), PresetID: id("p9"), Transition: prebuilds.TransitionStart})
		}, prebuilds.ErrNotFound},
		{"start build preset of another version", func(w *World) error {
			prebuild(t, w, "i", "p1", 1, prebuilds.JobSucceeded)
			must(t, w.CreateTemplateVersion(prebuilds.TemplateVersion{ID: id("v2"), TemplateID: id("t1")}))
			return w.StartBuild(prebuilds.StartBuildParams{InstanceID: id("i"), BuildID: id("i/b1"),
				TemplateVersionID: id("v2"), PresetID: id("p1"), Transition: prebuilds.TransitionStart})
		}, prebuilds.ErrInvalidArgument},
		{"job kind without failure", func(w *World) error {
			_, err := w.UpdateJob(prebuilds.UpdateJobParams{BuildID: id("nope"), Status: prebuilds.JobSucceeded,
				FailureKind: prebuilds.FailureTransient})
			return err
		}, prebuilds.ErrInvalidArgument},
		{"job terminal is final", func(w *World) error {
			prebuild(t, w, "i", "p1", 1, prebuilds.JobSucceeded)
			_, err := w.UpdateJob(prebuilds.UpdateJobParams{BuildID: id("i/b1"), Status: prebuilds.JobRunning})
			return err
		}, prebuilds.ErrInvalidTransition},
		{"claim by system owner", func(w *World) error {
			_, err := w.Claim(prebuilds.ClaimParams{PresetID: id("nope"), Owner: prebuilds.SystemOwner})
			return err
		}, prebuilds.ErrInvalidArgument},
		{"claim none ready", func(w *World) error {
			prebuild(t, w, "i", "p1", 1, prebuilds.JobSucceeded)
			_, err := w.Claim(prebuilds.ClaimParams{PresetID: id("p1"), Owner: id("u")})
			return err
		}, prebuilds.ErrNoClaimablePrebuild},
		{"create prebuilds repeated id", func(w *World) error {
			_, err := w.CreatePrebuilds(prebuilds.CreatePrebuildsParams{PresetID: id("p1"), TemplateVersionID: id("v1"),
				Instances: []prebuilds.NewPrebuild{{InstanceID: id("x"), BuildID: id("x1")}, {InstanceID: id("x"), BuildID: id("x2")}}})
			if len(w.Instances) != 0 {
				t.Errorf("failed CreatePrebuilds wrote %d instances", len(w.Instances))
			}
			return err
		}, prebuilds.ErrConflict},
		{"create prebuilds wrong version", func(w *World) error {
			_, err := w.CreatePrebuilds(prebuilds.CreatePrebuildsParams{PresetID: id("p1"), TemplateVersionID: id("v9"),
				Instances: []prebuilds.NewPrebuild{{InstanceID: id("x"), BuildID: id("x1")}}})
			return err
		}, prebuilds.ErrConflict},
		{"delete prebuild not running", func(w *World) error {
			prebuild(t, w, "i", "p1", 1, prebuilds.JobFailed)
			_, err := w.DeletePrebuild(prebuilds.DeletePrebuildParams{InstanceID: id("i"), BuildID: id("i/b2")})
			return err
		}, prebuilds.ErrConflict},
		{"set status invalid", func(w *World) error {
			_, err := w.SetPresetStatus(id("nope"), "bogus", prebuilds.PresetHealthy)
			return err
		}, prebuilds.ErrInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := fixture(t, d)
			if err := tt.op(w); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestUpdateJobValidationFailure(t *testing.T) {
	t.Parallel()
	w := fixture(t, 1)
	prebuild(t, w, "i", "p1", 1, prebuilds.JobPending)
	prebuild(t, w, "j", "p1", 2, prebuilds.JobPending)
	res, err := w.UpdateJob(prebuilds.UpdateJobParams{BuildID: id("i/b1"), Status: prebuilds.JobFailed,
		FailureKind: prebuilds.FailureValidation, Now: at(3)})
	must(t, err)
	if res.ValidationFailedPreset != id("p1") {
		t.Fatalf("result = %+v, want preset p1", res)
	}
	// A second validation failure does not transition again.
	res, err = w.UpdateJob(prebuilds.UpdateJobParams{BuildID: id("j/b1"), Status: prebuilds.JobFailed,
		FailureKind: prebuilds.FailureValidation, Now: at(4)})
	must(t, err)
	if res.ValidationFailedPreset != uuid.Nil {
		t.Fatalf("second result = %+v, want none", res)
	}
	p, err := w.GetPreset(id("p1"))
	must(t, err)
	if p.Status != prebuilds.PresetValidationFailed {
		t.Fatalf("status = %s", p.Status)
	}
	builds, err := w.ListBuilds(id("i"))
	must(t, err)
	if len(builds) != 1 || !builds[0].CompletedAt.Equal(at(3)) || builds[0].FailureKind != prebuilds.FailureValidation {
		t.Fatalf("builds = %+v", builds)
	}
}

func TestReconcilerWrites(t *testing.T) {
	t.Parallel()
	w := fixture(t, 1)
	must(t, w.UpsertPreset(prebuilds.Preset{ID: id("p1"), TemplateVersionID: id("v1"), Name: "p1", Desired: new(int),
		Parameters: map[string]string{"k": "v"}}))
	jobs, err := w.CreatePrebuilds(prebuilds.CreatePrebuildsParams{PresetID: id("p1"), TemplateVersionID: id("v1"),
		Instances: []prebuilds.NewPrebuild{{InstanceID: id("x"), BuildID: id("x/b1"), Name: "x"}}, Now: at(1)})
	must(t, err)
	want := []prebuilds.Job{{BuildID: id("x/b1"), InstanceID: id("x"), PresetID: id("p1"), TemplateVersionID: id("v1"),
		Transition: prebuilds.TransitionStart, Parameters: map[string]string{"k": "v"}}}
	if diff := cmp.Diff(want, jobs); diff != "" {
		t.Fatalf("jobs (-want +got):\n%s", diff)
	}
	setJob(t, w, "x/b1", prebuilds.JobSucceeded, 2)
	job, err := w.DeletePrebuild(prebuilds.DeletePrebuildParams{InstanceID: id("x"), BuildID: id("x/b2"), Now: at(3)})
	must(t, err)
	if job.Transition != prebuilds.TransitionDelete || job.TemplateVersionID != id("v1") || job.PresetID != uuid.Nil {
		t.Fatalf("delete job = %+v", job)
	}
	setJob(t, w, "x/b2", prebuilds.JobSucceeded, 4)
	inst, err := w.GetInstance(id("x"))
	must(t, err)
	if !inst.Deleted || inst.OwnerID != prebuilds.SystemOwner {
		t.Fatalf("instance = %+v", inst)
	}
	changed, err := w.SetPresetStatus(id("p1"), prebuilds.PresetHealthy, prebuilds.PresetHardLimited)
	must(t, err)
	again, err := w.SetPresetStatus(id("p1"), prebuilds.PresetHealthy, prebuilds.PresetHardLimited)
	must(t, err)
	if !changed || again {
		t.Fatalf("CAS changed = %v then %v, want true then false", changed, again)
	}
}

func TestCloneIsDeep(t *testing.T) {
	t.Parallel()
	w := fixture(t, 2)
	must(t, w.UpsertPreset(prebuilds.Preset{ID: id("p1"), TemplateVersionID: id("v1"), Name: "p1", Desired: new(int),
		Parameters: map[string]string{"k": "v"}}))
	prebuild(t, w, "i", "p1", 1, prebuilds.JobPending)
	c := w.Clone()
	*c.Presets[0].Desired = 7
	c.Presets[0].Parameters["k"] = "changed"
	_, err := c.UpdateJob(prebuilds.UpdateJobParams{BuildID: id("i/b1"), Status: prebuilds.JobSucceeded})
	must(t, err)
	if *w.Presets[0].Desired != 0 || w.Presets[0].Parameters["k"] != "v" || w.Builds[0].JobStatus != prebuilds.JobPending {
		t.Fatalf("clone shares state with the original: %+v %+v", w.Presets[0], w.Builds[0])
	}
}

func TestPlanScheduleInvalidFallsBack(t *testing.T) {
	t.Parallel()
	cfg := prebuilds.PlanConfig{BackoffInterval: time.Minute}
	for _, tc := range []struct{ tz, cron string }{
		{"Mars/Olympus_Mons", "* * * * *"},
		{"", "* * * * *"},
		{"Local", "* * * * *"},
		{"UTC", "61 * * * *"},
		{"UTC", "TZ=UTC * * * * *"},
		{"UTC", "@hourly"},
		{"UTC", "* * * * * *"},
	} {
		w := fixture(t, 2)
		w.Presets[0].Timezone = tc.tz // stored data that bypassed validation
		w.Presets[0].Schedules = []prebuilds.Schedule{{Cron: tc.cron, Instances: 5}}
		got := w.Plan(id("p1"), at(30), cfg, params(at(30), 3))
		if got.Desired != 2 || !got.ScheduleInvalid || got.Creates() != 2 {
			t.Errorf("tz %q cron %q: plan = %+v, want desired 2, invalid, create 2", tc.tz, tc.cron, got)
		}
	}
}

func TestScheduleOn(t *testing.T) {
	t.Parallel()
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	must(t, err)
	tests := []struct {
		cron string
		loc  *time.Location
		now  time.Time
		want bool
	}{
		{"* 9 * * *", kolkata, time.Date(2025, 6, 2, 3, 30, 0, 0, time.UTC), true},           // 09:00 IST
		{"* 9 * * *", kolkata, time.Date(2025, 6, 2, 3, 29, 59, 999999000, time.UTC), false}, // 08:59:59.999999 IST
		{"30 9 * * *", kolkata, time.Date(2025, 6, 2, 4, 0, 59, 0, time.UTC), true},          // 09:30:59 IST
		{"0 0 1 * 1", time.UTC, time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC), true},           // Monday, not the 1st: dom OR dow
		{"0 0 1 * 1", time.UTC, time.Date(2025, 6, 3, 0, 0, 0, 0, time.UTC), false},          // Tuesday the 3rd
		{"0 0 * * 1", time.UTC, time.Date(2025, 6, 3, 0, 0, 0, 0, time.UTC), false},          // dom star: AND
		{"*/15 * * * *", time.UTC, time.Date(2025, 6, 3, 0, 45, 30, 0, time.UTC), true},      // minute 45
		{"*/15 * * * *", time.UTC, time.Date(2025, 6, 3, 0, 46, 0, 0, time.UTC), false},      // minute 46
		{"* * 31 12 *", time.UTC, time.Date(2025, 12, 31, 23, 59, 59, 0, time.UTC), true},    // year end
		{"* * 29 2 *", time.UTC, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), false},         // no Feb 29 in 2025
	}
	for _, tt := range tests {
		got, err := scheduleOn(tt.cron, tt.loc, tt.now)
		must(t, err)
		if got != tt.want {
			t.Errorf("scheduleOn(%q, %s, %s) = %v, want %v", tt.cron, tt.loc, tt.now, got, tt.want)
		}
	}
}

func TestPendingJobs(t *testing.T) {
	t.Parallel()
	w := fixture(t, 3)
	// Same created_at for c and d: ordered by build ID.
	prebuild(t, w, "a", "p1", 3, prebuilds.JobPending)
	prebuild(t, w, "b", "p1", 1, prebuilds.JobRunning)
	prebuild(t, w, "c", "p1", 2, prebuilds.JobPending)
	prebuild(t, w, "d", "p1", 2, prebuilds.JobPending)
	prebuild(t, w, "gone", "p1", 0, prebuilds.JobPending)
	must(t, w.RemoveInstance(id("gone")))
	prebuild(t, w, "e", "p1", 0, prebuilds.JobSucceeded)
	startBuild(t, w, "e", "e/b2", "", prebuilds.TransitionDelete, 4)

	first, second := "c", "d"
	if compareUUID(id("c/b1"), id("d/b1")) > 0 {
		first, second = second, first
	}
	want := []uuid.UUID{id(first + "/b1"), id(second + "/b1"), id("a/b1"), id("e/b2")}
	jobs, err := w.PendingJobs(prebuilds.PendingJobsParams{Limit: 10})
	must(t, err)
	var got []uuid.UUID
	for _, j := range jobs {
		got = append(got, j.BuildID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("pending build IDs (-want +got):\n%s", diff)
	}
	wantDelete := prebuilds.Job{BuildID: id("e/b2"), InstanceID: id("e"), TemplateVersionID: id("v1"), Transition: prebuilds.TransitionDelete}
	if diff := cmp.Diff(wantDelete, jobs[3]); diff != "" {
		t.Fatalf("delete job (-want +got):\n%s", diff)
	}
	if jobs[0].PresetID != id("p1") || jobs[0].Transition != prebuilds.TransitionStart {
		t.Fatalf("start job %+v: want preset p1, transition start", jobs[0])
	}

	jobs, err = w.PendingJobs(prebuilds.PendingJobsParams{Limit: 2})
	must(t, err)
	if len(jobs) != 2 || jobs[1].BuildID != want[1] {
		t.Fatalf("limit 2: got %+v, want the two oldest", jobs)
	}
	for _, limit := range []int{0, -1, prebuilds.MaxPendingJobsLimit + 1} {
		if _, err := w.PendingJobs(prebuilds.PendingJobsParams{Limit: limit}); !errors.Is(err, prebuilds.ErrInvalidArgument) {
			t.Fatalf("limit %d: %v, want ErrInvalidArgument", limit, err)
		}
	}

	// Taking a job is UpdateJob(pending → running); a second taker loses.
	_, err = w.UpdateJob(prebuilds.UpdateJobParams{BuildID: want[0], Status: prebuilds.JobRunning, Now: at(5)})
	must(t, err)
	if _, err := w.UpdateJob(prebuilds.UpdateJobParams{BuildID: want[0], Status: prebuilds.JobRunning, Now: at(5)}); !errors.Is(err, prebuilds.ErrInvalidTransition) {
		t.Fatalf("second take: %v, want ErrInvalidTransition", err)
	}
	jobs, err = w.PendingJobs(prebuilds.PendingJobsParams{Limit: prebuilds.MaxPendingJobsLimit})
	must(t, err)
	if len(jobs) != 3 || jobs[0].BuildID != want[1] {
		t.Fatalf("after taking the oldest: got %+v", jobs)
	}
}
