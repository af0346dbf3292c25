package prebuilds

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC) // a Monday

func ids(n int) []uuid.UUID {
	out := make([]uuid.UUID, n)
	for i := range out {
		out[i] = uuid.NewSHA1(uuid.NameSpaceOID, []byte{byte(i)})
	}
	return out
}

func intp(n int) *int { return &n }

// view builds an active preset view with `running` prebuilds created one
// minute apart, oldest first, ending one hour before t0.
func view(desired, running int) PresetSnapshot {
	v := PresetSnapshot{Preset: PresetRow{Preset: Preset{ID: uuid.NameSpaceDNS, TemplateVersionID: uuid.NameSpaceURL, Name: "p", Desired: intp(desired), Status: PresetHealthy}, ActiveVersionID: uuid.NameSpaceURL}}
	for i, id := range ids(running) {
		v.Running = append(v.Running, RunningPrebuild{InstanceID: id, PresetID: v.Preset.ID, CreatedAt: t0.Add(-time.Hour + time.Duration(i)*time.Minute)})
	}
	return v
}

func TestPlanPreset(t *testing.T) {
	t.Parallel()
	cfg := PlanConfig{BackoffInterval: 5 * time.Second}
	i := ids(6)
	tests := []struct {
		name string
		v    func() PresetSnapshot
		now  time.Time
		want []Action
		d    int
	}{
		{name: "nothing", v: func() PresetSnapshot { return view(0, 0) }},
		{name: "net new", v: func() PresetSnapshot { return view(1, 0) }, d: 1,
			want: []Action{{Kind: ActionCreate, Reason: ReasonMissing, Count: 1}}},
		{name: "starting counts", v: func() PresetSnapshot { v := view(3, 1); v.Starting = 2; return v }, d: 3},
		{name: "starting not extraneous", v: func() PresetSnapshot { v := view(2, 2); v.Starting = 1; return v }, d: 2},
		{name: "stopping not supply", v: func() PresetSnapshot { v := view(3, 2); v.Stopping = 1; v.Deleting = 1; return v }, d: 3,
			want: []Action{{Kind: ActionCreate, Reason: ReasonMissing, Count: 1}}},
		{name: "extraneous oldest first", v: func() PresetSnapshot { return view(3, 5) }, d: 3,
			want: []Action{{Kind: ActionDelete, Reason: ReasonExtraneous, InstanceIDs: i[:2]}}},
		{name: "inactive", v: func() PresetSnapshot {
			v := view(2, 2)
			v.Preset.ActiveVersionID = uuid.NameSpaceX500
			v.PendingInactive = 3
			return v
		}, d: 2, want: []Action{
			{Kind: ActionCancelPending, Reason: ReasonInactive, Count: 3},
			{Kind: ActionDelete, Reason: ReasonInactive, InstanceIDs: i[:2]},
		}},
		{name: "deprecated", v: func() PresetSnapshot { v := view(1, 1); v.Preset.Deprecated = true; return v }, d: 1,
			want: []Action{{Kind: ActionDelete, Reason: ReasonInactive, InstanceIDs: i[:1]}}},
		{name: "deleted template never creates", v: func() PresetSnapshot { v := view(3, 1); v.Preset.Deleted = true; return v }, d: 3,
			want: []Action{{Kind: ActionDelete, Reason: ReasonInactive, InstanceIDs: i[:1]}}},
		{name: "ttl expiry and surplus", v: func() PresetSnapshot {
			v := view(2, 4)
			v.Preset.TTL = time.Hour - 30*time.Second // only the first is older than the ttl
			return v
		}, d: 2, want: []Action{
			{Kind: ActionDelete, Reason: ReasonExpired, InstanceIDs: i[:1]},
			{Kind: ActionDelete, Reason: ReasonExtraneous, InstanceIDs: i[1:2]},
		}},
		{name: "ttl boundary is not expired", v: func() PresetSnapshot { v := view(1, 1); v.Preset.TTL = time.Hour; return v }, d: 1},
		{name: "invalidation", v: func() PresetSnapshot {
			v := view(2, 2)
			v.Preset.InvalidatedAt = v.Running[1].CreatedAt // the second is not before it
			return v
		}, d: 2, want: []Action{
			{Kind: ActionDelete, Reason: ReasonExpired, InstanceIDs: i[:1]},
			{Kind: ActionCreate, Reason: ReasonMissing, Count: 1},
		}},
		{name: "hard limited before validation and backoff", v: func() PresetSnapshot {
			v := view(2, 0)
			v.HardLimited = true
			v.Preset.Status = PresetValidationFailed
			v.Backoff = &BackoffRow{NumFailed: 1, LastBuildAt: t0}
			return v
		}, d: 2, want: []Action{{Kind: ActionBlocked, Reason: ReasonHardLimited, Count: 2}}},
		{name: "validation failed before backoff", v: func() PresetSnapshot {
			v := view(2, 0)
			v.Preset.Status = PresetValidationFailed
			v.Backoff = &BackoffRow{NumFailed: 1, LastBuildAt: t0}
			return v
		}, d: 2, want: []Action{{Kind: ActionBlocked, Reason: ReasonValidationFailed, Count: 2}}},
		{name: "backoff at boundary", v: func() PresetSnapshot {
			v := view(1, 0)
			v.Backoff = &BackoffRow{NumFailed: 2, LastBuildAt: t0.Add(-10 * time.Second)}
			return v
		}, d: 1, want: []Action{{Kind: ActionBackoff, Reason: ReasonBackoff, Count: 1, Until: t0}}},
		{name: "backoff over one microsecond later", now: t0.Add(time.Microsecond), v: func() PresetSnapshot {
			v := view(1, 0)
			v.Backoff = &BackoffRow{NumFailed: 2, LastBuildAt: t0.Add(-10 * time.Second)}
			return v
		}, d: 1, want: []Action{{Kind: ActionCreate, Reason: ReasonMissing, Count: 1}}},
		{name: "backoff spares deletes", v: func() PresetSnapshot {
			v := view(1, 2)
			v.Backoff = &BackoffRow{NumFailed: 1, LastBuildAt: t0}
			return v
		}, d: 1, want: []Action{{Kind: ActionDelete, Reason: ReasonExtraneous, InstanceIDs: i[:1]}}},
		{name: "negative stored desired wants nothing", v: func() PresetSnapshot { return view(-1, 1) }, d: 0,
			want: []Action{{Kind: ActionDelete, Reason: ReasonExtraneous, InstanceIDs: i[:1]}}},
		{name: "paused", v: func() PresetSnapshot { v := view(1, 3); v.Paused = true; return v }, d: 1},
		{name: "hard limit reached moves the status first", v: func() PresetSnapshot {
			v := view(2, 3)
			v.HardLimited = true
			return v
		}, d: 2, want: []Action{
			{Kind: ActionSetStatus, Reason: ReasonHardLimited, From: PresetHealthy, To: PresetHardLimited},
			{Kind: ActionDelete, Reason: ReasonExtraneous, InstanceIDs: i[:1]},
		}},
		{name: "hard limit cleared recovers", v: func() PresetSnapshot {
			v := view(1, 0)
			v.Preset.Status = PresetHardLimited
			return v
		}, d: 1, want: []Action{
			{Kind: ActionSetStatus, Reason: ReasonRecovered, From: PresetHardLimited, To: PresetHealthy},
			{Kind: ActionCreate, Reason: ReasonMissing, Count: 1},
		}},
		{name: "hard-limited status kept while the condition holds", v: func() PresetSnapshot {
			v := view(1, 0)
			v.Preset.Status = PresetHardLimited
			v.HardLimited = true
			return v
		}, d: 1, want: []Action{{Kind: ActionBlocked, Reason: ReasonHardLimited, Count: 1}}},
		{name: "validation_failed is not moved by the hard limit", v: func() PresetSnapshot {
			v := view(1, 1)
			v.Preset.Status = PresetValidationFailed
			v.HardLimited = true
			return v
		}, d: 1},
		{name: "inactive preset keeps its hard-limited status", v: func() PresetSnapshot {
			v := view(1, 0)
			v.Preset.Status = PresetHardLimited
			v.Preset.ActiveVersionID = uuid.NameSpaceX500
			return v
		}, d: 1},
		{name: "paused makes no status transition", v: func() PresetSnapshot {
			v := view(1, 0)
			v.HardLimited = true
			v.Paused = true
			return v
		}, d: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now := tt.now
			if now.IsZero() {
				now = t0
			}
			v := tt.v()
			got := PlanPreset(v, now, cfg)
			want := Plan{PresetID: v.Preset.ID, Desired: tt.d, Actions: tt.want}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("plan mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanAccessors(t *testing.T) {
	t.Parallel()
	i := ids(3)
	p := Plan{Actions: []Action{
		{Kind: ActionDelete, InstanceIDs: i[:1]},
		{Kind: ActionCreate, Count: 2},
		{Kind: ActionDelete, InstanceIDs: i[1:3]},
		{Kind: ActionBackoff, Count: 7},
	}}
	if got := p.Creates(); got != 2 {
		t.Errorf("Creates() = %d, want 2", got)
	}
	if diff := cmp.Diff(i, p.Deletes()); diff != "" {
		t.Errorf("Deletes() (-want +got):\n%s", diff)
	}
	if p.Empty() || !(Plan{}).Empty() {
		t.Error("Empty() wrong")
	}
}

func TestIndexOnePass(t *testing.T) {
	t.Parallel()
	a, b, c := uuid.MustParse("00000000-0000-0000-0000-00000000000a"), uuid.MustParse("00000000-0000-0000-0000-00000000000b"), uuid.MustParse("00000000-0000-0000-0000-00000000000c")
	i := ids(3)
	s := &GlobalSnapshot{
		Paused:  true,
		Presets: []PresetRow{{Preset: Preset{ID: b}}, {Preset: Preset{ID: a}}},
		Running: []RunningPrebuild{
			{InstanceID: i[0], PresetID: a, CreatedAt: t0.Add(time.Second)},
			{InstanceID: i[1], PresetID: a, CreatedAt: t0},
			{InstanceID: i[2], PresetID: c, CreatedAt: t0}, // unknown preset: ignored
		},
		InProgress: []InProgressCount{
			{PresetID: a, Transition: TransitionStart, Count: 2},
			{PresetID: a, Transition: TransitionStop, Count: 3},
			{PresetID: b, Transition: TransitionDelete, Count: 4},
		},
		PendingInactive: []PendingInactiveCount{{PresetID: b, Count: 5}},
		Backoffs:        []BackoffRow{{PresetID: b, NumFailed: 2, LastBuildAt: t0}},
		HardLimited:     []uuid.UUID{a, c},
		Counters:        []PresetCounters{{PresetID: a, Created: 9, Failed: 1, Claimed: 2}},
	}
	got := s.Index()
	want := []PresetSnapshot{
		{Preset: PresetRow{Preset: Preset{ID: a}}, Paused: true, Starting: 2, Stopping: 3, HardLimited: true,
			Running:  []RunningPrebuild{s.Running[1], s.Running[0]},
			Counters: PresetCounters{PresetID: a, Created: 9, Failed: 1, Claimed: 2}},
		{Preset: PresetRow{Preset: Preset{ID: b}}, Paused: true, Deleting: 4, PendingInactive: 5,
			Backoff: &BackoffRow{PresetID: b, NumFailed: 2, LastBuildAt: t0}, Counters: PresetCounters{PresetID: b}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Index() (-want +got):\n%s", diff)
	}
}

func TestExpired(t *testing.T) {
	t.Parallel()
	created := t0
	tests := []struct {
		name string
		p    Preset
		now  time.Time
		want bool
	}{
		{"no ttl", Preset{}, t0.Add(1000 * time.Hour), false},
		{"ttl not reached", Preset{TTL: time.Hour}, t0.Add(time.Hour), false},
		{"ttl passed", Preset{TTL: time.Hour}, t0.Add(time.Hour + time.Microsecond), true},
		{"invalidated after creation", Preset{InvalidatedAt: t0.Add(time.Microsecond)}, t0, true},
		{"invalidated at creation", Preset{InvalidatedAt: t0}, t0, false},
	}
	for _, tt := range tests {
		if got := Expired(tt.p, created, tt.now); got != tt.want {
			t.Errorf("%s: Expired = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestJobStatusCanBecome pins the job status graph against the table in
// docs/spec.md ("Job status graph"), all 36 pairs.
func TestJobStatusCanBecome(t *testing.T) {
	t.Parallel()
	all := []JobStatus{JobPending, JobRunning, JobSucceeded, JobFailed, JobCanceling, JobCanceled}
	allowed := map[JobStatus][]JobStatus{
		JobPending:   {JobRunning, JobSucceeded, JobFailed, JobCanceling, JobCanceled},
		JobRunning:   {JobSucceeded, JobFailed, JobCanceling, JobCanceled},
		JobCanceling: {JobCanceled, JobFailed},
	}
	for _, from := range all {
		for _, to := range all {
			want := false
			for _, a := range allowed[from] {
				want = want || a == to
			}
			if got := from.CanBecome(to); got != want {
				t.Errorf("%s.CanBecome(%s) = %v, want %v", from, to, got, want)
			}
		}
	}
}

func TestPlanPresetAdaptive(t *testing.T) {
	t.Parallel()
	cfg := PlanConfig{BackoffInterval: 10 * time.Second, Policy: PolicyAdaptive, BackoffMax: time.Minute, Canary: true}
	proven := func(desired, running int) PresetSnapshot {
		v := view(desired, running)
		v.Proven = true
		return v
	}
	streak := func(n int, ago time.Duration) func() PresetSnapshot {
		return func() PresetSnapshot {
			v := proven(4, 1)
			v.Streak, v.LastFailedAt = n, t0.Add(-ago)
			return v
		}
	}
	unprovenStreak := func(n int, ago time.Duration) func() PresetSnapshot {
		return func() PresetSnapshot {
			v := streak(n, ago)()
			v.Proven = false
			return v
		}
	}
	tests := []struct {
		name string
		v    func() PresetSnapshot
		cfg  func(PlanConfig) PlanConfig
		want []Action
	}{
		{name: "proven and healthy creates all", v: func() PresetSnapshot { return proven(4, 1) },
			want: []Action{{Kind: ActionCreate, Reason: ReasonMissing, Count: 3}}},
		{name: "unproven streak 1 backs off one interval, until inclusive", v: unprovenStreak(1, 10*time.Second),
			want: []Action{{Kind: ActionBackoff, Reason: ReasonBackoff, Count: 3, Until: t0}}},
		{name: "unproven streak 1 after its interval probes once", v: unprovenStreak(1, 10*time.Second+time.Microsecond),
			want: []Action{{Kind: ActionCreate, Reason: ReasonProbe, Count: 1}, {Kind: ActionBlocked, Reason: ReasonProbe, Count: 2}}},
		{name: "unproven streak 3 doubles twice", v: unprovenStreak(3, 39*time.Second),
			want: []Action{{Kind: ActionBackoff, Reason: ReasonBackoff, Count: 3, Until: t0.Add(time.Second)}}},
		{name: "proven streak 1 probes at once", v: streak(1, 0),
			want: []Action{{Kind: ActionCreate, Reason: ReasonProbe, Count: 1}, {Kind: ActionBlocked, Reason: ReasonProbe, Count: 2}}},
		{name: "proven streak 2 backs off one interval, until inclusive", v: streak(2, 10*time.Second),
			want: []Action{{Kind: ActionBackoff, Reason: ReasonBackoff, Count: 3, Until: t0}}},
		{name: "proven streak 2 after its interval probes once", v: streak(2, 10*time.Second+time.Microsecond),
			want: []Action{{Kind: ActionCreate, Reason: ReasonProbe, Count: 1}, {Kind: ActionBlocked, Reason: ReasonProbe, Count: 2}}},
		{name: "proven streak 3 doubles once", v: streak(3, 19*time.Second),
			want: []Action{{Kind: ActionBackoff, Reason: ReasonBackoff, Count: 3, Until: t0.Add(time.Second)}}},
		{name: "streak 5 is capped at BackoffMax", v: streak(5, 59*time.Second),
			want: []Action{{Kind: ActionBackoff, Reason: ReasonBackoff, Count: 3, Until: t0.Add(time.Second)}}},
		{name: "streak 64 does not overflow", v: streak(MaxStreak, 61*time.Second),
			want: []Action{{Kind: ActionCreate, Reason: ReasonProbe, Count: 1}, {Kind: ActionBlocked, Reason: ReasonProbe, Count: 2}}},
		{name: "one probe at a time", v: func() PresetSnapshot { v := streak(1, time.Hour)(); v.Starting = 1; return v },
			want: []Action{{Kind: ActionBlocked, Reason: ReasonProbe, Count: 2}}},
		{name: "a single missing prebuild probes without a blocked remainder", v: func() PresetSnapshot { v := streak(1, time.Hour)(); v.Starting = 0; *v.Preset.Desired = 2; return v },
			want: []Action{{Kind: ActionCreate, Reason: ReasonProbe, Count: 1}}},
		{name: "unproven builds a canary", v: func() PresetSnapshot { return view(3, 0) },
			want: []Action{{Kind: ActionCreate, Reason: ReasonCanary, Count: 1}, {Kind: ActionBlocked, Reason: ReasonCanary, Count: 2}}},
		{name: "canary in flight holds the rest", v: func() PresetSnapshot { v := view(3, 0); v.Starting = 1; return v },
			want: []Action{{Kind: ActionBlocked, Reason: ReasonCanary, Count: 2}}},
		{name: "canary off fills at once", v: func() PresetSnapshot { return view(3, 0) },
			cfg:  func(c PlanConfig) PlanConfig { c.Canary = false; return c },
			want: []Action{{Kind: ActionCreate, Reason: ReasonMissing, Count: 3}}},
		{name: "hard limit before the streak", v: func() PresetSnapshot {
			v := streak(3, time.Hour)()
			v.HardLimited = true
			v.Preset.Status = PresetHardLimited
			return v
		},
			want: []Action{{Kind: ActionBlocked, Reason: ReasonHardLimited, Count: 3}}},
		{name: "a backoff row is ignored under the adaptive policy", v: func() PresetSnapshot {
			v := proven(2, 0)
			v.Backoff = &BackoffRow{NumFailed: 5, LastBuildAt: t0}
			return v
		}, want: []Action{{Kind: ActionCreate, Reason: ReasonMissing, Count: 2}}},
		{name: "stuck builds fail first and are not supply", v: func() PresetSnapshot {
			v := proven(3, 1)
			v.Starting = 2
			v.Stuck = []StuckBuild{{PresetID: v.Preset.ID, InstanceID: ids(1)[0], BuildID: uuid.NameSpaceX500}}
			return v
		}, want: []Action{
			{Kind: ActionFailStuck, Reason: ReasonDeadline, BuildIDs: []uuid.UUID{uuid.NameSpaceX500}, InstanceIDs: ids(1)},
			{Kind: ActionCreate, Reason: ReasonMissing, Count: 1},
		}},
		{name: "stuck builds of an inactive preset fail too", v: func() PresetSnapshot {
			v := proven(1, 0)
			v.Preset.Deprecated = true
			v.Stuck = []StuckBuild{{PresetID: v.Preset.ID, InstanceID: ids(1)[0], BuildID: uuid.NameSpaceX500}}
			return v
		}, want: []Action{{Kind: ActionFailStuck, Reason: ReasonDeadline, BuildIDs: []uuid.UUID{uuid.NameSpaceX500}, InstanceIDs: ids(1)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := cfg
			if tt.cfg != nil {
				c = tt.cfg(c)
			}
			v := tt.v()
			got := PlanPreset(v, t0, c)
			if diff := cmp.Diff(tt.want, got.Actions, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("actions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAdaptiveUntil(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		streak        int
		interval, max time.Duration
		want          time.Duration
	}{
		{1, time.Second, time.Hour, time.Second},
		{2, time.Second, time.Hour, 2 * time.Second},
		{11, time.Second, time.Hour, 1024 * time.Second},
		{13, time.Second, time.Hour, time.Hour},
		{MaxStreak, time.Hour, 1<<63 - 1, 1<<63 - 1},
		{40, 1 << 40, 1 << 62, 1 << 62},
		{3, 0, time.Minute, 0},
		{MaxStreak, 0, time.Minute, 0},
	} {
		if got := adaptiveUntil(t0, tt.streak, tt.interval, tt.max).Sub(t0); got != tt.want {
			t.Errorf("streak %d, interval %s, max %s: wait %s, want %s", tt.streak, tt.interval, tt.max, got, tt.want)
		}
	}
}

// TestAdaptiveUntilDoubles checks adaptiveUntil against doubling, one step
// at a time, for every n a streak can give.
func TestAdaptiveUntilDoubles(t *testing.T) {
	t.Parallel()
	for _, interval := range []time.Duration{0, time.Microsecond, time.Second, time.Minute, time.Hour} {
		for _, maxWait := range []time.Duration{0, time.Second, 10 * time.Minute, 1<<63 - 1} {
			want := interval
			for n := 1; n <= MaxStreak; n++ {
				if n > 1 {
					if want > maxWait/2 {
						want = maxWait
					} else {
						want *= 2
					}
				}
				if got := adaptiveUntil(t0, n, interval, maxWait).Sub(t0); got != min(want, maxWait) {
					t.Fatalf("n %d, interval %s, max %s: wait %s, want %s", n, interval, maxWait, got, min(want, maxWait))
				}
			}
		}
	}
}
