package model

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func TestCurrentPresetIgnoresPresetlessStarts(t *testing.T) {
	t.Parallel()
	w := fixture(t, 1)
	d := 1
	must(t, w.UpsertPreset(prebuilds.Preset{ID: id("p2"), TemplateVersionID: id("v1"), Name: "p2", Desired: &d}))

	// i1: p1, then a preset-less restart: still p1's.
	prebuild(t, w, "i1", "p1", 1, prebuilds.JobSucceeded)
	startBuild(t, w, "i1", "i1/b2", "", prebuilds.TransitionStop, 2)
	setJob(t, w, "i1/b2", prebuilds.JobSucceeded, 2)
	startBuild(t, w, "i1", "i1/b3", "", prebuilds.TransitionStart, 3)
	setJob(t, w, "i1/b3", prebuilds.JobSucceeded, 3)
	// i2: p1, then restarted with p2: now p2's; a pending stop stays p2's.
	prebuild(t, w, "i2", "p1", 4, prebuilds.JobSucceeded)
	startBuild(t, w, "i2", "i2/b2", "p2", prebuilds.TransitionStart, 5)
	setJob(t, w, "i2/b2", prebuilds.JobSucceeded, 5)
	startBuild(t, w, "i2", "i2/b3", "", prebuilds.TransitionStop, 6)

	s := w.Snapshot(params(at(10), 3))
	wantRunning := []prebuilds.RunningPrebuild{{InstanceID: id("i1"), PresetID: id("p1"), CreatedAt: at(1)}}
	if diff := cmp.Diff(wantRunning, s.Running); diff != "" {
		t.Errorf("running (-want +got):\n%s", diff)
	}
	wantIP := []prebuilds.InProgressCount{{PresetID: id("p2"), Transition: prebuilds.TransitionStop, Count: 1}}
	if diff := cmp.Diff(wantIP, s.InProgress); diff != "" {
		t.Errorf("in progress (-want +got):\n%s", diff)
	}
}

func TestBackoffRow(t *testing.T) {
	t.Parallel()
	ok, fail := prebuilds.JobSucceeded, prebuilds.JobFailed
	type b struct {
		key    string
		s      int
		status prebuilds.JobStatus
	}
	tests := []struct {
		name    string
		desired int
		builds  []b
		now     int // seconds
		resetAt int // seconds, 0 = none
		want    *prebuilds.BackoffRow
	}{
		{name: "failure outranked", desired: 2, builds: []b{{"a", 10, fail}, {"b", 20, ok}, {"c", 30, ok}}, now: 40},
		{name: "failure within rank", desired: 2, builds: []b{{"a", 10, fail}, {"b", 20, ok}}, now: 40,
			want: &prebuilds.BackoffRow{NumFailed: 1, LastBuildAt: at(10)}},
		{
			name: "num_failed counts beyond rank, last only within", desired: 1,
			builds: []b{{"a", 10, fail}, {"b", 20, ok}, {"c", 30, fail}}, now: 40,
			want: &prebuilds.BackoffRow{NumFailed: 2, LastBuildAt: at(30)},
		},
		{name: "desired 0 never backs off", desired: 0, builds: []b{{"a", 10, fail}}, now: 40},
		{name: "lookback boundary counts", desired: 1, builds: []b{{"a", 10, fail}}, now: 3610,
			want: &prebuilds.BackoffRow{NumFailed: 1, LastBuildAt: at(10)}},
		{name: "older than lookback forgotten", desired: 1, builds: []b{{"a", 10, fail}}, now: 3611},
		{name: "reset forgets earlier", desired: 1, builds: []b{{"a", 10, fail}}, now: 40, resetAt: 11},
		{name: "reset keeps same instant", desired: 1, builds: []b{{"a", 10, fail}}, now: 40, resetAt: 10,
			want: &prebuilds.BackoffRow{NumFailed: 1, LastBuildAt: at(10)}},
		{name: "pending start outranks", desired: 1, builds: []b{{"a", 10, fail}, {"b", 20, prebuilds.JobPending}}, now: 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := fixture(t, tt.desired)
			for _, x := range tt.builds {
				prebuild(t, w, x.key, "p1", x.s, x.status)
			}
			if tt.resetAt != 0 {
				must(t, w.ResetPreset(id("p1"), at(tt.resetAt)))
			}
			s := w.Snapshot(params(at(tt.now), 0))
			var want []prebuilds.BackoffRow
			if tt.want != nil {
				row := *tt.want
				row.PresetID = id("p1")
				want = append(want, row)
			}
			if diff := cmp.Diff(want, s.Backoffs, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("backoffs (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBackoffTieBreak: builds created at the same instant rank by build ID
// descending (UUID byte order).
func TestBackoffTieBreak(t *testing.T) {
	t.Parallel()
	for _, failHigh := range []bool{true, false} {
		w := fixture(t, 1)
		prebuild(t, w, "a", "p1", 10, prebuilds.JobPending)
		prebuild(t, w, "b", "p1", 10, prebuilds.JobPending)
		hi, lo := "a/b1", "b/b1"
		if compareUUID(id(hi), id(lo)) < 0 {
			hi, lo = lo, hi
		}
		failed, succeeded := hi, lo
		if !failHigh {
			failed, succeeded = lo, hi
		}
		setJob(t, w, failed, prebuilds.JobFailed, 11)
		setJob(t, w, succeeded, prebuilds.JobSucceeded, 11)
		got := len(w.Snapshot(params(at(20), 0)).Backoffs) == 1
		if got != failHigh {
			t.Errorf("failed build has the higher ID = %v: backoff row = %v, want %v", failHigh, got, failHigh)
		}
	}
}

func TestHardLimitK(t *testing.T) {
	t.Parallel()
	for h, want := range map[prebuilds.HardLimit]int{0: 3, prebuilds.NoHardLimit: 0, -5: 0, 1: 1, 4: 4} {
		if got := hardLimitK(h); got != want {
			t.Errorf("hardLimitK(%d) = %d, want %d", h, got, want)
		}
	}
}

func TestClaimMissesCounted(t *testing.T) {
	t.Parallel()
	w := fixture(t, 1)
	for range 2 {
		if _, err := w.Claim(prebuilds.ClaimParams{PresetID: id("p1"), Owner: id("u"), Now: at(5)}); err == nil {
			t.Fatal("claim from an empty pool succeeded")
		}
	}
	s := w.Snapshot(params(at(10), 3))
	if len(s.Counters) != 1 || s.Counters[0].ClaimsMissed != 2 || s.Counters[0].Created != 0 {
		t.Errorf("counters %+v, want one row with 2 claims missed and nothing created", s.Counters)
	}
}

func TestHardLimited(t *testing.T) {
	t.Parallel()
	ok, fail := prebuilds.JobSucceeded, prebuilds.JobFailed
	tests := []struct {
		name     string
		k        int
		statuses []prebuilds.JobStatus // oldest first
		removeB  bool                  // admin removes the newest
		want     bool
	}{
		{"two newest failed", 2, []prebuilds.JobStatus{ok, fail, fail}, false, true},
		{"newest succeeded", 2, []prebuilds.JobStatus{fail, fail, ok}, false, false},
		{"fewer than K", 3, []prebuilds.JobStatus{fail, fail}, false, false},
		{"K off", 0, []prebuilds.JobStatus{fail}, false, false},
		{"removal recovers", 1, []prebuilds.JobStatus{ok, fail}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			w := fixture(t, 1)
			keys := []string{}
			for i, st := range tt.statuses {
				key := string(rune('a' + i))
				keys = append(keys, key)
				prebuild(t, w, key, "p1", 10+i, st)
			}
			if tt.removeB {
				must(t, w.RemoveInstance(id(keys[len(keys)-1])))
			}
			got := len(w.Snapshot(params(at(100), tt.k)).HardLimited) == 1
			if got != tt.want {
				t.Errorf("hard limited = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("inactive version has no candidates", func(t *testing.T) {
		t.Parallel()
		w := fixture(t, 1)
		prebuild(t, w, "a", "p1", 10, fail)
		must(t, w.CreateTemplateVersion(prebuilds.TemplateVersion{ID: id("v2"), TemplateID: id("t1"), Name: "v2"}))
		must(t, w.SetActiveVersion(id("t1"), id("v2")))
		if s := w.Snapshot(params(at(100), 1)); len(s.HardLimited) != 0 || len(s.Backoffs) != 0 {
			t.Errorf("hard limited %v, backoffs %v; want none", s.HardLimited, s.Backoffs)
		}
	})
}

func TestCountersAndPending(t *testing.T) {
	t.Parallel()
	w := fixture(t, 3)
	prebuild(t, w, "a", "p1", 1, prebuilds.JobSucceeded)
	prebuild(t, w, "b", "p1", 2, prebuilds.JobFailed)
	prebuild(t, w, "c", "p1", 3, prebuilds.JobSucceeded)
	prebuild(t, w, "d", "p1", 4, prebuilds.JobPending)
	must(t, w.SetReady(id("a"), true))
	if _, err := w.Claim(prebuilds.ClaimParams{PresetID: id("p1"), Owner: id("user"), Now: at(5)}); err != nil {
		t.Fatal(err)
	}
	must(t, w.RemoveInstance(id("b")))
	// A user's own instance with the preset is not a prebuild.
	must(t, w.CreateInstance(prebuilds.CreateInstanceParams{
		InstanceID: id("u"), OwnerID: id("user"), TemplateID: id("t1"), BuildID: id("u/b1"),
		TemplateVersionID: id("v1"), PresetID: id("p1"), Transition: prebuilds.TransitionStart, Now: at(6),
	}))
	s := w.Snapshot(params(at(10), 3))
	want := []prebuilds.PresetCounters{{PresetID: id("p1"), Created: 4, Failed: 1, Claimed: 1}}
	if diff := cmp.Diff(want, s.Counters); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
	if len(s.PendingInactive) != 0 {
		t.Errorf("pending inactive on an active preset: %v", s.PendingInactive)
	}
	must(t, w.SetTemplateDeprecated(id("t1"), true))
	s = w.Snapshot(params(at(10), 3))
	wantPI := []prebuilds.PendingInactiveCount{{PresetID: id("p1"), Count: 1}}
	if diff := cmp.Diff(wantPI, s.PendingInactive); diff != "" {
		t.Errorf("pending inactive (-want +got):\n%s", diff)
	}
	ids, err := w.CancelPending(prebuilds.CancelPendingParams{PresetID: id("p1"), Now: at(11)})
	must(t, err)
	if diff := cmp.Diff([]uuid.UUID{id("d")}, ids); diff != "" {
		t.Errorf("canceled (-want +got):\n%s", diff)
	}
	if s := w.Snapshot(params(at(12), 3)); len(s.PendingInactive) != 0 || len(s.InProgress) != 0 {
		t.Errorf("after cancel: pending %v, in progress %v", s.PendingInactive, s.InProgress)
	}
}

func TestSnapshotOnlyConfiguredPresets(t *testing.T) {
	t.Parallel()
	w := fixture(t, 1)
	must(t, w.UpsertPreset(prebuilds.Preset{ID: id("p0"), TemplateVersionID: id("v1"), Name: "p0"}))
	prebuild(t, w, "a", "p0", 1, prebuilds.JobSucceeded)
	s := w.Snapshot(params(at(10), 3))
	if len(s.Presets) != 1 || s.Presets[0].ID != id("p1") || len(s.Running) != 0 || len(s.Counters) != 0 {
		t.Errorf("snapshot mentions an unconfigured preset: %+v", s)
	}
	if got := s.Presets[0]; got.TemplateName != "t1" || got.OrganizationName != "org" || got.ActiveVersionID != id("v1") || !got.Active() {
		t.Errorf("preset row = %+v", got)
	}
	if p := w.Plan(id("p0"), at(10), prebuilds.PlanConfig{}, params(at(10), 3)); !p.Empty() || p.PresetID != id("p0") {
		t.Errorf("plan of unconfigured preset = %+v", p)
	}
}
