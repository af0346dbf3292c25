package prebuilds

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
)

// fakeStore serves a fixed snapshot and records the writes it is asked for.
type fakeStore struct {
	mu        sync.Mutex
	snap      GlobalSnapshot
	lockHeld  bool
	creates   []CreatePrebuildsParams
	deletes   []uuid.UUID
	cancels   []uuid.UUID
	statuses  map[uuid.UUID]PresetStatus
	failed    []FailStuckBuildParams
	failErr   map[uuid.UUID]error
	deleteErr map[uuid.UUID]error
	createErr map[uuid.UUID]error
	snapErr   error
	// params records the inputs of every Snapshot call.
	params []SnapshotParams
	// passDone, when set, receives the snapshot inputs of every pass that
	// held the lock, once it released it.
	passDone chan SnapshotParams
	// refused, when set, receives a value for every lock attempt that found
	// the lock held.
	refused chan struct{}
	// createCalls counts CreatePrebuilds calls of wrappers that bypass
	// fakeStore.CreatePrebuilds.
	createCalls int
}

func (f *fakeStore) WithReconciliationLock(ctx context.Context, fn func(context.Context, SnapshotReader) error) (bool, error) {
	f.mu.Lock()
	if f.lockHeld {
		refused := f.refused
		f.mu.Unlock()
		if refused != nil {
			refused <- struct{}{}
		}
		return false, nil
	}
	f.lockHeld = true
	calls := len(f.params)
	f.mu.Unlock()
	err := fn(ctx, f)
	f.mu.Lock()
	f.lockHeld = false
	var p SnapshotParams
	if len(f.params) > calls {
		p = f.params[len(f.params)-1]
	}
	done := f.passDone
	f.mu.Unlock()
	if done != nil {
		done <- p
	}
	return true, err
}

func (f *fakeStore) Snapshot(_ context.Context, p SnapshotParams) (*GlobalSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.params = append(f.params, p)
	if f.snapErr != nil {
		return nil, f.snapErr
	}
	s := f.snap
	s.Now = p.Now
	s.Presets = append([]PresetRow(nil), f.snap.Presets...)
	for i := range s.Presets {
		if st, ok := f.statuses[s.Presets[i].ID]; ok {
			s.Presets[i].Status = st
		}
	}
	return &s, nil
}

func (f *fakeStore) CreatePrebuilds(_ context.Context, p CreatePrebuildsParams) ([]Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.createErr[p.PresetID]; err != nil {
		return nil, err
	}
	f.creates = append(f.creates, p)
	jobs := make([]Job, len(p.Instances))
	for i, n := range p.Instances {
		jobs[i] = Job{BuildID: n.BuildID, InstanceID: n.InstanceID, PresetID: p.PresetID, Transition: TransitionStart}
	}
	return jobs, nil
}

func (f *fakeStore) DeletePrebuild(_ context.Context, p DeletePrebuildParams) (Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.deleteErr[p.InstanceID]; err != nil {
		return Job{}, err
	}
	f.deletes = append(f.deletes, p.InstanceID)
	return Job{BuildID: p.BuildID, InstanceID: p.InstanceID, Transition: TransitionDelete}, nil
}

func (f *fakeStore) CancelPending(_ context.Context, p CancelPendingParams) ([]uuid.UUID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels = append(f.cancels, p.PresetID)
	return []uuid.UUID{uuid.New(), uuid.New()}, nil
}

func (f *fakeStore) SetPresetStatus(_ context.Context, id uuid.UUID, from, to PresetStatus) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := f.statuses[id]
	if cur == "" {
		for _, p := range f.snap.Presets {
			if p.ID == id {
				cur = p.Status
			}
		}
	}
	if cur != from {
		return false, nil
	}
	if f.statuses == nil {
		f.statuses = map[uuid.UUID]PresetStatus{}
	}
	f.statuses[id] = to
	return true, nil
}

func (f *fakeStore) FailStuckBuild(_ context.Context, p FailStuckBuildParams) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failErr[p.BuildID]; err != nil {
		return err
	}
	f.failed = append(f.failed, p)
	return nil
}

func presetRow(key string, desired int) PresetRow {
	v := uuid.NewSHA1(uuid.NameSpaceURL, []byte("v"+key))
	return PresetRow{
		Preset:       Preset{ID: uuid.NewSHA1(uuid.NameSpaceURL, []byte(key)), TemplateVersionID: v, Name: key, Desired: intp(desired), Status: PresetHealthy},
		TemplateName: "tmpl", OrganizationName: "org", ActiveVersionID: v,
	}
}

type recorder struct {
	mu     sync.Mutex
	events []Event
}

func (r *recorder) Notify(_ context.Context, e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func newTestReconciler(t *testing.T, store Store, cfg Config) (*Reconciler, *quartz.Mock, *bytes.Buffer) {
	t.Helper()
	clk := quartz.NewMock(t).WithLogger(quartz.NoOpLogger)
	clk.Set(t0)
	var buf bytes.Buffer
	cfg.Clock = clk
	cfg.Logger = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return NewReconciler(store, cfg), clk, &buf
}

func TestReconcileAllExecutesPlans(t *testing.T) {
	t.Parallel()
	create, extra, inactive := presetRow("create", 3), presetRow("extra", 1), presetRow("inactive", 1)
	inactive.ActiveVersionID = uuid.New()
	old, newer, gone := uuid.New(), uuid.New(), uuid.New()
	fs := &fakeStore{snap: GlobalSnapshot{
		Presets: []PresetRow{create, extra, inactive},
		Running: []RunningPrebuild{
			{InstanceID: old, PresetID: extra.ID, CreatedAt: t0.Add(-time.Hour)},
			{InstanceID: newer, PresetID: extra.ID, CreatedAt: t0.Add(-time.Minute)},
			{InstanceID: gone, PresetID: inactive.ID, CreatedAt: t0},
		},
		PendingInactive: []PendingInactiveCount{{PresetID: inactive.ID, Count: 2}},
	}}
	sink := make(chan Job, 16)
	r, _, _ := newTestReconciler(t, fs, Config{JobSink: sink})
	stats, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	require.True(t, stats.Acquired)
	require.Equal(t, 3, stats.Created)
	require.Equal(t, 2, stats.Deleted)
	require.Equal(t, 2, stats.Canceled)
	require.Len(t, fs.creates, 1)
	require.Equal(t, create.ID, fs.creates[0].PresetID)
	require.Equal(t, create.TemplateVersionID, fs.creates[0].TemplateVersionID)
	require.Equal(t, t0, fs.creates[0].Now)
	require.Len(t, fs.creates[0].Instances, 3)
	for _, n := range fs.creates[0].Instances {
		require.NotEqual(t, uuid.Nil, n.InstanceID)
		require.True(t, strings.HasPrefix(n.Name, "prebuild-create-"), n.Name)
	}
	require.ElementsMatch(t, []uuid.UUID{old, gone}, fs.deletes)
	require.Equal(t, []uuid.UUID{inactive.ID}, fs.cancels)
	require.Len(t, sink, 5, "3 create jobs and 2 delete jobs handed off")
}

func TestReconcileAllLockHeldDoesNothing(t *testing.T) {
	t.Parallel()
	fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{presetRow("p", 2)}}, lockHeld: true}
	reg := prometheus.NewPedanticRegistry()
	r, _, _ := newTestReconciler(t, fs, Config{Registerer: reg})
	stats, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	require.False(t, stats.Acquired)
	require.Empty(t, fs.creates)
	require.Equal(t, 0.0, testutil.ToFloat64(r.metrics.lastSuccess), "a skipped pass is not a success")
	require.Equal(t, uint64(0), histogramCount(t, r.metrics.duration), "a skipped pass is not timed")
}

func histogramCount(t *testing.T, h interface{ Write(*dto.Metric) error }) uint64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, h.Write(&m))
	return m.GetHistogram().GetSampleCount()
}

func TestReconcileAllReportsInvalidStoredSchedule(t *testing.T) {
	t.Parallel()
	p := presetRow("p", 1)
	p.Timezone = "Mars/Olympus" // cannot be written through a store, but may be met in stored data
	p.Schedules = []Schedule{{Cron: "* * * * *", Instances: 4}}
	fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{p}}}
	r, _, logs := newTestReconciler(t, fs, Config{})
	stats, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, stats.Created, "falls back to the static desired count")
	require.Contains(t, logs.String(), `"level":"WARN","msg":"stored preset schedule cannot be evaluated`)
}

func TestReconcileAllCountsBackoff(t *testing.T) {
	t.Parallel()
	p := presetRow("p", 2)
	fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{p}, Backoffs: []BackoffRow{{PresetID: p.ID, NumFailed: 1, LastBuildAt: t0}}}}
	r, _, _ := newTestReconciler(t, fs, Config{})
	stats, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	require.Equal(t, Stats{Acquired: true, ShardPasses: 1, Presets: 1, Backoff: 1}, stats)
	require.Empty(t, fs.creates)
}

func TestReconcileAllPausedWritesNothing(t *testing.T) {
	t.Parallel()
	p := presetRow("p", 0)
	fs := &fakeStore{snap: GlobalSnapshot{
		Paused:      true,
		Presets:     []PresetRow{p, presetRow("q", 2)},
		Running:     []RunningPrebuild{{InstanceID: uuid.New(), PresetID: p.ID, CreatedAt: t0}},
		HardLimited: []uuid.UUID{p.ID},
	}}
	reg := prometheus.NewPedanticRegistry()
	r, _, _ := newTestReconciler(t, fs, Config{Registerer: reg})
	stats, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	require.True(t, stats.Paused)
	require.Empty(t, fs.creates)
	require.Empty(t, fs.deletes)
	require.Empty(t, fs.statuses, "no status change while paused")
	require.Equal(t, 1.0, testutil.ToFloat64(r.metrics.paused))
}

func TestReconcileAllIsolatesPresetErrorsAndCountsConflicts(t *testing.T) {
	t.Parallel()
	bad, good, ext := presetRow("bad", 1), presetRow("good", 1), presetRow("ext", 0)
	claimed, broken := uuid.New(), uuid.New()
	fs := &fakeStore{
		snap: GlobalSnapshot{Presets: []PresetRow{bad, good, ext}, Running: []RunningPrebuild{
			{InstanceID: claimed, PresetID: ext.ID, CreatedAt: t0},
			{InstanceID: broken, PresetID: ext.ID, CreatedAt: t0.Add(time.Second)},
		}},
		createErr: map[uuid.UUID]error{bad.ID: errors.New("disk on fire")},
		deleteErr: map[uuid.UUID]error{claimed: ErrConflict, broken: errors.New("connection reset")},
	}
	reg := prometheus.NewPedanticRegistry()
	r, _, logs := newTestReconciler(t, fs, Config{Registerer: reg})
	stats, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, stats.Created, "the good preset is created despite the bad one")
	require.Equal(t, 1, stats.Conflicts)
	require.Equal(t, 2, stats.PresetErrors)
	require.Equal(t, 1.0, testutil.ToFloat64(r.metrics.conflicts))
	require.Equal(t, 2.0, testutil.ToFloat64(r.metrics.errors))
	require.Contains(t, logs.String(), "disk on fire")
	require.Contains(t, logs.String(), `"preset_name":"bad"`)
}

func TestReconcileAllSnapshotError(t *testing.T) {
	t.Parallel()
	fs := &fakeStore{snapErr: errors.New("boom")}
	reg := prometheus.NewPedanticRegistry()
	r, _, _ := newTestReconciler(t, fs, Config{Registerer: reg})
	_, err := r.ReconcileAll(context.Background())
	require.ErrorContains(t, err, "boom")
	require.Equal(t, 0.0, testutil.ToFloat64(r.metrics.lastSuccess))
}

func TestHardLimitStatusTransitionsEmitOnce(t *testing.T) {
	t.Parallel()
	p := presetRow("p", 1)
	fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{p}, HardLimited: []uuid.UUID{p.ID}}}
	rec := &recorder{}
	r, _, _ := newTestReconciler(t, fs, Config{Notifier: rec})
	for range 3 {
		stats, err := r.ReconcileAll(context.Background())
		require.NoError(t, err)
		require.Equal(t, 1, stats.Blocked)
		require.Zero(t, stats.Created)
	}
	require.Len(t, rec.events, 1)
	require.Equal(t, EventHardLimited, rec.events[0].Kind)
	require.Equal(t, "p", rec.events[0].PresetName)
	require.Equal(t, "tmpl", rec.events[0].TemplateName)
	require.Equal(t, PresetHardLimited, fs.statuses[p.ID])

	fs.mu.Lock()
	fs.snap.HardLimited = nil
	fs.mu.Unlock()
	stats, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, stats.StatusChanges)
	require.Equal(t, 1, stats.Created, "creation resumes once recovered")
	require.Len(t, rec.events, 2)
	require.Equal(t, EventRecovered, rec.events[1].Kind)
	require.Equal(t, PresetHealthy, fs.statuses[p.ID])
}

func TestClampLogsAndCaps(t *testing.T) {
	t.Parallel()
	p := presetRow("p", 2)
	fs := &fakeStore{}
	r, _, logs := newTestReconciler(t, fs, Config{})
	var stats Stats
	plan := Plan{PresetID: p.ID, Desired: 2, Actions: []Action{{Kind: ActionCreate, Reason: ReasonMissing, Count: 5}}}
	require.NoError(t, r.executePlan(context.Background(), PresetSnapshot{Preset: p}, plan, t0, time.Time{}, &stats))
	require.Equal(t, 1, stats.Clamped)
	require.Len(t, fs.creates, 1)
	require.Len(t, fs.creates[0].Instances, 2, "clamped to the plan's desired count")
	require.Contains(t, logs.String(), "CRITICAL")
	require.Contains(t, logs.String(), `"level":"ERROR"`)
}

func TestJobSinkFullDrops(t *testing.T) {
	t.Parallel()
	fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{presetRow("p", 3)}}}
	sink := make(chan Job, 1)
	reg := prometheus.NewPedanticRegistry()
	r, _, _ := newTestReconciler(t, fs, Config{JobSink: sink, Registerer: reg})
	stats, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	require.Equal(t, 3, stats.Created)
	require.Equal(t, 2, stats.JobsDropped)
	require.Len(t, sink, 1)
	require.Equal(t, 2.0, testutil.ToFloat64(r.metrics.jobsDropped))
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := Config{}.withDefaults()
	require.Equal(t, time.Minute, c.Interval)
	require.Equal(t, time.Minute, c.BackoffInterval)
	require.Equal(t, time.Hour, c.BackoffLookback)
	require.Equal(t, 3, c.FailureHardLimit.K())
	require.Equal(t, 8, c.MaxConcurrency)
	require.NotNil(t, c.Clock)
	require.NotNil(t, c.Logger)
	sp := Config{BackoffLookback: 10 * time.Minute, FailureHardLimit: 2}.SnapshotParams(t0.Add(123 * time.Nanosecond))
	require.Equal(t, SnapshotParams{Now: t0, Lookback: t0.Add(-10 * time.Minute), HardLimit: 2, Policy: PolicyCoder}, sp)
	require.Equal(t, time.Hour, Config{}.SnapshotParams(t0).Now.Sub(Config{}.SnapshotParams(t0).Lookback))
	require.Equal(t, t0.Add(-5*time.Minute), Config{BuildTimeout: 5 * time.Minute}.SnapshotParams(t0).StuckBefore)
	require.True(t, Config{}.SnapshotParams(t0).StuckBefore.IsZero(), "no build timeout under PolicyCoder by default")
	require.Equal(t, t0.Add(-DefaultAdaptiveBuildTimeout), Config{FailurePolicy: PolicyAdaptive}.SnapshotParams(t0).StuckBefore,
		"a hung probe must not hold an adaptive preset forever")
	require.True(t, Config{FailurePolicy: PolicyAdaptive, BuildTimeout: NoBuildTimeout}.SnapshotParams(t0).StuckBefore.IsZero())
	require.Equal(t, PolicyAdaptive, Config{FailurePolicy: PolicyAdaptive}.SnapshotParams(t0).Policy)
	require.Equal(t, PlanConfig{BackoffInterval: time.Minute, Policy: PolicyCoder, BackoffMax: 10 * time.Minute, Canary: true}, Config{}.PlanConfig())
	require.Equal(t, PlanConfig{BackoffInterval: time.Second, Policy: PolicyAdaptive, BackoffMax: time.Hour, MaxCreatesPerPass: 7},
		Config{BackoffInterval: time.Second, FailurePolicy: PolicyAdaptive, BackoffMax: time.Hour, DisableCanary: true, MaxCreatesPerPass: 7}.PlanConfig())
}

func TestInvalidConfigRefused(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]Config{
		"UnknownPolicy":  {FailurePolicy: "lenient"},
		"NegativeBudget": {MaxCreatesPerPass: -1},
		"TooManyShards":  {Shards: MaxShards + 1},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			require.ErrorIs(t, cfg.Validate(), ErrInvalidArgument)
			fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{presetRow("p", 1)}}}
			r, _, _ := newTestReconciler(t, fs, cfg)
			_, err := r.ReconcileAll(context.Background())
			require.ErrorIs(t, err, ErrInvalidArgument)
			_, err = r.Plan(context.Background())
			require.ErrorIs(t, err, ErrInvalidArgument)
			require.ErrorIs(t, r.Run(context.Background()), ErrInvalidArgument)
			require.Empty(t, fs.creates, "an invalid configuration writes nothing")
		})
	}
	require.NoError(t, Config{FailurePolicy: PolicyAdaptive, BuildTimeout: time.Minute, MaxCreatesPerPass: 3, Shards: MaxShards}.Validate())
}

func TestFailStuckExecuted(t *testing.T) {
	t.Parallel()
	p := presetRow("p", 1)
	done, gone, broken := uuid.New(), uuid.New(), uuid.New()
	fs := &fakeStore{
		snap: GlobalSnapshot{Presets: []PresetRow{p},
			InProgress: []InProgressCount{{PresetID: p.ID, Transition: TransitionStart, Count: 3}},
			Stuck: []StuckBuild{
				{PresetID: p.ID, InstanceID: uuid.New(), BuildID: done},
				{PresetID: p.ID, InstanceID: uuid.New(), BuildID: gone},
				{PresetID: p.ID, InstanceID: uuid.New(), BuildID: broken},
			}},
		failErr: map[uuid.UUID]error{gone: ErrConflict, broken: errors.New("connection reset")},
	}
	reg := prometheus.NewPedanticRegistry()
	r, _, logs := newTestReconciler(t, fs, Config{BuildTimeout: 10 * time.Minute, Registerer: reg})
	stats, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, stats.TimedOut)
	require.Equal(t, 1, stats.Conflicts, "a build that finished meanwhile is a conflict")
	require.Equal(t, 1, stats.PresetErrors)
	require.Len(t, fs.failed, 1)
	require.Equal(t, FailStuckBuildParams{BuildID: done, StuckBefore: t0.Add(-10 * time.Minute), Now: t0}, fs.failed[0])
	require.Equal(t, 1, stats.Created, "stuck builds are not supply: the pool of 1 gets a replacement")
	require.Equal(t, 1.0, testutil.ToFloat64(r.metrics.timedOut))
	require.Contains(t, logs.String(), "failed a build stuck past the build timeout")
}

func TestHardLimitEncoding(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		h    HardLimit
		want int
	}{{0, DefaultFailureHardLimit}, {NoHardLimit, 0}, {-7, 0}, {1, 1}, {5, 5}} {
		require.Equal(t, tc.want, tc.h.K(), "HardLimit(%d).K()", tc.h)
	}
}

func TestMetrics(t *testing.T) {
	t.Parallel()
	p := presetRow("p", 3)
	p.TTL = time.Hour
	p.OrganizationName = "acme"
	fs := &fakeStore{snap: GlobalSnapshot{
		Presets: []PresetRow{p},
		Running: []RunningPrebuild{
			{InstanceID: uuid.New(), PresetID: p.ID, CreatedAt: t0.Add(-2 * time.Hour), Ready: true}, // expired
			{InstanceID: uuid.New(), PresetID: p.ID, CreatedAt: t0, Ready: true},                     // eligible
			{InstanceID: uuid.New(), PresetID: p.ID, CreatedAt: t0, Ready: false},                    // running, not ready
		},
		Counters: []PresetCounters{{PresetID: p.ID, Created: 7, Failed: 2, Claimed: 3, ClaimsMissed: 4}},
	}}
	reg := prometheus.NewPedanticRegistry()
	r, _, _ := newTestReconciler(t, fs, Config{Registerer: reg})
	_, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	const want = `
# HELP prebuilds_claimed_total Prebuilds of the presets of the label set claimed by users (from the store).
# TYPE prebuilds_claimed_total counter
prebuilds_claimed_total{organization="acme",preset="p",template="tmpl"} 3
# HELP prebuilds_claims_missed_total Claims for the presets of the label set that found nothing claimable (from the store).
# TYPE prebuilds_claims_missed_total counter
prebuilds_claims_missed_total{organization="acme",preset="p",template="tmpl"} 4
# HELP prebuilds_created_total Prebuilds created for the presets of the label set (from the store).
# TYPE prebuilds_created_total counter
prebuilds_created_total{organization="acme",preset="p",template="tmpl"} 7
# HELP prebuilds_desired Prebuilds the active preset wants now (schedule applied).
# TYPE prebuilds_desired gauge
prebuilds_desired{organization="acme",preset="p",template="tmpl"} 3
# HELP prebuilds_eligible Prebuilds of the active preset that Claim would hand out now: running, ready, not expired.
# TYPE prebuilds_eligible gauge
prebuilds_eligible{organization="acme",preset="p",template="tmpl"} 1
# HELP prebuilds_expired Running prebuilds of the active preset that expired (TTL or invalidation).
# TYPE prebuilds_expired gauge
prebuilds_expired{organization="acme",preset="p",template="tmpl"} 1
# HELP prebuilds_failed_total Prebuild first builds of the presets of the label set that failed (from the store).
# TYPE prebuilds_failed_total counter
prebuilds_failed_total{organization="acme",preset="p",template="tmpl"} 2
# HELP prebuilds_hard_limited 1 when the active preset is hard-limited.
# TYPE prebuilds_hard_limited gauge
prebuilds_hard_limited{organization="acme",preset="p",template="tmpl"} 0
# HELP prebuilds_running Running prebuilds of the active preset, valid or expired.
# TYPE prebuilds_running gauge
prebuilds_running{organization="acme",preset="p",template="tmpl"} 3
# HELP prebuilds_validation_failed 1 when the active preset's builds failed validation.
# TYPE prebuilds_validation_failed gauge
prebuilds_validation_failed{organization="acme",preset="p",template="tmpl"} 0
# HELP prebuilds_paused 1 when reconciliation is paused, as of the last pass.
# TYPE prebuilds_paused gauge
prebuilds_paused 0
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want),
		"prebuilds_claimed_total", "prebuilds_claims_missed_total", "prebuilds_created_total", "prebuilds_desired", "prebuilds_eligible",
		"prebuilds_expired", "prebuilds_failed_total", "prebuilds_hard_limited", "prebuilds_running",
		"prebuilds_validation_failed", "prebuilds_paused"))
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
	lint, err := testutil.CollectAndLint(r.metrics.presets)
	require.NoError(t, err)
	require.Empty(t, lint)
	require.Equal(t, float64(t0.Unix()), testutil.ToFloat64(r.metrics.lastSuccess))
	require.Equal(t, 1, testutil.CollectAndCount(r.metrics.duration))
}

func TestRunAndStop(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{presetRow("p", 1)}}}
	r, clk, _ := newTestReconciler(t, fs, Config{Interval: 30 * time.Second})
	trap := clk.Trap().TickerFunc("prebuilds", "reconciler")
	defer trap.Close()
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	call := trap.MustWait(ctx) // the immediate pass has completed
	call.MustRelease(ctx)
	fs.mu.Lock()
	require.Len(t, fs.creates, 1, "reconciled once at start")
	fs.mu.Unlock()
	clk.Advance(30 * time.Second).MustWait(ctx)
	fs.mu.Lock()
	require.Len(t, fs.creates, 2, "reconciled on the tick")
	fs.mu.Unlock()

	require.NoError(t, r.Stop(ctx, nil))
	require.ErrorIs(t, <-errc, ErrReconcilerStopped)
	require.NoError(t, r.Stop(ctx, nil), "Stop is idempotent")
	require.ErrorIs(t, r.Run(ctx), ErrReconcilerStopped, "a stopped reconciler does not run again")
}

func TestStopBeforeRun(t *testing.T) {
	t.Parallel()
	r := NewReconciler(&fakeStore{}, Config{})
	require.NoError(t, r.Stop(context.Background(), nil))
	require.ErrorIs(t, r.Run(context.Background()), ErrReconcilerStopped, "a reconciler stopped before running never starts")
}

// jobControlPlane answers UpdateJob with a scripted result; every other
// ControlPlane method is unused (nil).
type jobControlPlane struct {
	ControlPlane
	res UpdateJobResult
	err error
}

func (c *jobControlPlane) UpdateJob(context.Context, UpdateJobParams) (UpdateJobResult, error) {
	return c.res, c.err
}

func TestReportJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	now := time.Date(2026, 3, 2, 10, 0, 0, 1500, time.UTC) // sub-microsecond: the event time is Micro(now)
	p := presetRow("p", 1)
	p.TemplateID = uuid.New()

	t.Run("PresetSeenByLastPass", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		r, _, logs := newTestReconciler(t, &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{p}}}, Config{Notifier: rec})
		_, err := r.ReconcileAll(ctx)
		require.NoError(t, err)
		cp := &jobControlPlane{res: UpdateJobResult{ValidationFailedPreset: p.ID}}
		res, err := r.ReportJob(ctx, cp, UpdateJobParams{BuildID: uuid.New(), Status: JobFailed, FailureKind: FailureValidation, Now: now})
		require.NoError(t, err)
		require.Equal(t, p.ID, res.ValidationFailedPreset)
		require.Len(t, rec.events, 1)
		require.Equal(t, presetEvent(EventValidationFailed, p, Micro(now)), rec.events[0])
		require.Equal(t, "tmpl", rec.events[0].TemplateName)
		require.Contains(t, logs.String(), "preset failed validation")
	})
	t.Run("PresetLookedUpBeforeAnyPass", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{p}}, lockHeld: true} // another replica reconciles
		r, _, _ := newTestReconciler(t, fs, Config{Notifier: rec})
		cp := &jobControlPlane{res: UpdateJobResult{ValidationFailedPreset: p.ID}}
		_, err := r.ReportJob(ctx, cp, UpdateJobParams{BuildID: uuid.New(), Status: JobFailed, FailureKind: FailureValidation, Now: now})
		require.NoError(t, err)
		require.Len(t, rec.events, 1)
		require.Equal(t, presetEvent(EventValidationFailed, p, Micro(now)), rec.events[0], "labelled from a lock-free snapshot")
	})
	t.Run("PresetUnknown", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		r, _, _ := newTestReconciler(t, &fakeStore{}, Config{Notifier: rec})
		cp := &jobControlPlane{res: UpdateJobResult{ValidationFailedPreset: p.ID}}
		_, err := r.ReportJob(ctx, cp, UpdateJobParams{BuildID: uuid.New(), Status: JobFailed, FailureKind: FailureValidation, Now: now})
		require.NoError(t, err)
		require.Len(t, rec.events, 1)
		require.Equal(t, p.ID, rec.events[0].PresetID)
		require.Empty(t, rec.events[0].PresetName, "only the ID is known")
	})
	t.Run("NoEventWithoutTransition", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		r, _, _ := newTestReconciler(t, &fakeStore{}, Config{Notifier: rec})
		_, err := r.ReportJob(ctx, &jobControlPlane{}, UpdateJobParams{BuildID: uuid.New(), Status: JobFailed, FailureKind: FailureValidation, Now: now})
		require.NoError(t, err)
		require.Empty(t, rec.events, "the store did not move the preset: no event")
	})
	t.Run("UpdateJobError", func(t *testing.T) {
		t.Parallel()
		rec := &recorder{}
		r, _, _ := newTestReconciler(t, &fakeStore{}, Config{Notifier: rec})
		cp := &jobControlPlane{res: UpdateJobResult{ValidationFailedPreset: p.ID}, err: ErrInvalidTransition}
		_, err := r.ReportJob(ctx, cp, UpdateJobParams{BuildID: uuid.New(), Status: JobFailed, Now: now})
		require.ErrorIs(t, err, ErrInvalidTransition)
		require.Empty(t, rec.events)
	})
}

func TestTrackResourceReplacement(t *testing.T) {
	t.Parallel()
	p := presetRow("p", 0)
	p.TemplateID = uuid.New()
	fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{p}}}
	rec := &recorder{}
	r, _, _ := newTestReconciler(t, fs, Config{Notifier: rec})
	_, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	inst, user := uuid.New(), uuid.New()
	r.TrackResourceReplacement(context.Background(), ReplacementReport{InstanceID: inst, PresetID: p.ID, Claimant: user, Resources: []string{"vm.main"}})
	require.Len(t, rec.events, 1)
	e := rec.events[0]
	require.Equal(t, EventResourcesReplaced, e.Kind)
	require.Equal(t, p.TemplateID, e.TemplateID)
	require.Equal(t, "tmpl", e.TemplateName)
	require.Equal(t, p.TemplateVersionID, e.TemplateVersionID)
	require.Equal(t, user, e.Claimant)
	require.Equal(t, inst, e.InstanceID)
	require.Equal(t, []string{"vm.main"}, e.Resources)
}

func TestMetricsOnlyFromLockHolder(t *testing.T) {
	t.Parallel()
	fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{presetRow("p", 1)}}}
	reg := prometheus.NewPedanticRegistry()
	r, _, _ := newTestReconciler(t, fs, Config{Registerer: reg})
	_, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	require.Equal(t, 10, testutil.CollectAndCount(r.metrics.presets), "ten series for one active preset")
	fs.mu.Lock()
	fs.lockHeld = true // another replica holds the lock now
	fs.mu.Unlock()
	stats, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	require.False(t, stats.Acquired)
	require.Equal(t, 0, testutil.CollectAndCount(r.metrics.presets), "a replica without the lock exports no per-preset series")
}

func TestMetricsInvalidLabelDoesNotPanic(t *testing.T) {
	t.Parallel()
	p := presetRow("bad\xff", 0)
	fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{p}}}
	reg := prometheus.NewPedanticRegistry()
	r, _, _ := newTestReconciler(t, fs, Config{Registerer: reg})
	_, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	_, err = reg.Gather()
	require.ErrorContains(t, err, "UTF-8")
}

func TestInactivePresetKeepsHardLimitStatus(t *testing.T) {
	t.Parallel()
	p := presetRow("p", 1)
	p.Status = PresetHardLimited
	p.ActiveVersionID = uuid.New() // a new version replaced it: C(P) is empty
	fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{p}}}
	rec := &recorder{}
	r, _, _ := newTestReconciler(t, fs, Config{Notifier: rec})
	stats, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	require.Zero(t, stats.StatusChanges)
	require.Empty(t, rec.events, "a version change is not a recovery")
}

func TestStatusCASErrorCounted(t *testing.T) {
	t.Parallel()
	p := presetRow("p", 1)
	fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{p}, HardLimited: []uuid.UUID{p.ID}}}
	r, _, _ := newTestReconciler(t, &casFailStore{fs}, Config{})
	stats, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, stats.PresetErrors)
	require.Equal(t, 1, stats.Blocked, "the plan still follows the live condition")
}

type casFailStore struct{ *fakeStore }

func (c *casFailStore) SetPresetStatus(context.Context, uuid.UUID, PresetStatus, PresetStatus) (bool, error) {
	return false, errors.New("connection reset")
}

func TestCanceledPassIsNotAPresetFailure(t *testing.T) {
	t.Parallel()
	fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{presetRow("a", 1), presetRow("b", 1)}}}
	r, _, _ := newTestReconciler(t, &cancelingStore{fakeStore: fs}, Config{MaxConcurrency: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stats, err := r.ReconcileAll(context.WithValue(ctx, cancelKey{}, cancel))
	require.NoError(t, err)
	require.Zero(t, stats.PresetErrors, "stopping mid-pass is not a failure")
	require.Equal(t, 1, fs.createCalls, "the pass stops after the create that saw the cancellation")
}

type cancelKey struct{}

// cancelingStore cancels the pass's context on its first create, then
// fails it the way a store does on a canceled context.
type cancelingStore struct{ *fakeStore }

func (c *cancelingStore) CreatePrebuilds(ctx context.Context, p CreatePrebuildsParams) ([]Job, error) {
	c.mu.Lock()
	c.createCalls++
	c.mu.Unlock()
	ctx.Value(cancelKey{}).(context.CancelFunc)()
	return nil, ctx.Err()
}
