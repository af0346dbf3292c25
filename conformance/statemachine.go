package conformance

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"pgregory.net/rapid"

	"github.com/prebuildkit/prebuildkit/model"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// machine drives a store and the model with the same random operations.
// Every operation is made on both, through the same call (the model through
// modelStore), and their error classes must agree.
type machine struct {
	ctx   context.Context
	clock *quartz.Mock
	store Store
	world *model.World
	mod   *modelStore
	cfg   Config

	// keys of what was created (successfully or not), for drawing.
	templates, versions, presets []string
	// seq numbers fresh keys.
	seq int
}

func (s *suite) newMachine(t *testing.T, rt *rapid.T) *machine {
	clock := quartz.NewMock(t).WithLogger(quartz.NoOpLogger)
	clock.Set(Epoch)
	st := s.h.NewStore(t, clock)
	if st == nil {
		rt.Fatalf("conformance: Harness.NewStore returned nil")
	}
	w := &model.World{}
	m := &machine{ctx: t.Context(), clock: clock, store: st, world: w, mod: &modelStore{w: w}}
	m.cfg = Config{
		BackoffInterval: rapid.SampledFrom([]time.Duration{5 * time.Second, time.Minute}).Draw(rt, "backoff_interval"),
		BackoffLookback: rapid.SampledFrom([]time.Duration{10 * time.Minute, time.Hour}).Draw(rt, "backoff_lookback"),
		HardLimit:       rapid.IntRange(0, 3).Draw(rt, "hard_limit"),
	}
	return m
}

func (m *machine) now() time.Time { return m.clock.Now() }

func (m *machine) fresh(prefix string) string {
	m.seq++
	return prefix + strconv.Itoa(m.seq)
}

// both makes call on the store and on the model and requires the same
// error class. It returns the store's error.
func (m *machine) both(t *rapid.T, what string, call func(Store) error) error {
	t.Helper()
	merr := call(m.mod)
	serr := call(m.store)
	sameError(t, what, serr, merr)
	return serr
}

// pickKey draws one of keys, or, with probability 1/8, a key nobody
// created (to exercise ErrNotFound).
func pickKey(t *rapid.T, keys []string, label string) string {
	if len(keys) == 0 || rapid.IntRange(0, 11).Draw(t, label+"_missing") == 0 {
		return "missing-" + label
	}
	return rapid.SampledFrom(keys).Draw(t, label)
}

// instanceIDs lists the instances of the model in insertion order.
func (m *machine) instanceIDs() []uuid.UUID {
	ids := make([]uuid.UUID, len(m.world.Instances))
	for i, in := range m.world.Instances {
		ids[i] = in.ID
	}
	return ids
}

func (m *machine) pickInstance(t *rapid.T) uuid.UUID {
	ids := m.instanceIDs()
	if len(ids) == 0 {
		t.Skip("no instance yet")
	}
	return ids[rapid.IntRange(0, len(ids)-1).Draw(t, "instance")]
}

func (m *machine) params() prebuilds.SnapshotParams { return passConfig{m.cfg}.params(m.now()) }

// check is the invariant: the store's snapshot equals the model's.
func (m *machine) check(t *rapid.T) {
	t.Helper()
	diff, err := snapshotDiff(m.ctx, m.store, m.world, m.params())
	if err != nil {
		t.Fatalf("%v", err)
	}
	if diff != "" {
		t.Fatalf("at %s: store snapshot differs from the model (-model +store):\n%s", m.now().Format(time.RFC3339Nano), diff)
	}
}

// checkRandomParams compares snapshots at random parameters.
func (m *machine) checkRandomParams(t *rapid.T) {
	t.Helper()
	now := m.now().Add(rapid.SampledFrom([]time.Duration{0, time.Microsecond, time.Minute, time.Hour}).Draw(t, "snapshot_later"))
	p := prebuilds.SnapshotParams{
		Now:       prebuilds.Micro(now),
		Lookback:  prebuilds.Micro(now.Add(-rapid.SampledFrom([]time.Duration{0, time.Second, 10 * time.Minute, time.Hour, 24 * time.Hour}).Draw(t, "lookback"))),
		HardLimit: prebuilds.HardLimit(rapid.IntRange(-1, 4).Draw(t, "k")),
	}
	diff, err := snapshotDiff(m.ctx, m.store, m.world, p)
	if err != nil {
		t.Fatalf("%v", err)
	}
	if diff != "" {
		t.Fatalf("snapshot at %+v differs from the model (-model +store):\n%s", p, diff)
	}
}

// actions returns the state machine's operations. Some appear under
// several names so that rapid (which picks names uniformly) draws them
// more often.
func (m *machine) actions(withReconcile bool) map[string]func(*rapid.T) {
	a := map[string]func(*rapid.T){
		"AddTemplate":    m.addTemplate,
		"Setup":          m.setup,
		"AddVersion":     m.addVersion,
		"UpsertPreset":   m.upsertPreset,
		"UpsertPreset2":  m.upsertPreset,
		"Activate":       m.activate,
		"Deprecate":      m.deprecate,
		"DeleteTemplate": m.deleteTemplate,
		"Invalidate":     m.invalidate,
		"Reset":          m.reset,
		"Pause":          m.pause,
		"CreateInstance": m.createInstance,
		"UpdateJob":      m.updateJob,
		"UpdateJob2":     m.updateJob,
		"UpdateJob3":     m.updateJob,
		"Provision":      m.provision,
		"Provision2":     m.provision,
		"SetReady":       m.setReady,
		"SetReady2":      m.setReady,
		"Claim":          m.claim,
		"Claim2":         m.claim,
		"StartBuild":     m.startBuild,
		"RemoveInstance": m.removeInstance,
		"Advance":        m.advance,
		"Advance2":       m.advance,
		"Inspect":        m.inspect,
		"PendingJobs":    m.pendingJobs,
		// Store writes made directly, as a racing replica would after its
		// snapshot went stale: the stores' re-checks must match the model.
		"DirectCreate":    m.directCreate,
		"DirectDelete":    m.directDelete,
		"DirectCancel":    m.directCancel,
		"DirectSetStatus": m.directSetStatus,
	}
	if withReconcile {
		a["Reconcile"] = m.reconcile
		a["Reconcile2"] = m.reconcile
		a["Reconcile3"] = m.reconcile
	}
	return a
}

func (m *machine) addTemplate(t *rapid.T) {
	key := m.fresh("t")
	if len(m.templates) > 0 && rapid.IntRange(0, 7).Draw(t, "duplicate_template") == 0 {
		key = rapid.SampledFrom(m.templates).Draw(t, "template")
	}
	err := m.both(t, "CreateTemplate "+key, func(s Store) error { return AddTemplate{key}.ApplyStore(m.ctx, s, m.now()) })
	if err == nil {
		m.templates = append(m.templates, key)
	}
}

func (m *machine) addVersion(t *rapid.T) {
	tmpl := pickKey(t, m.templates, "template")
	key := m.fresh("v")
	err := m.both(t, "CreateTemplateVersion "+key, func(s Store) error { return AddVersion{key, tmpl}.ApplyStore(m.ctx, s, m.now()) })
	if err == nil {
		m.versions = append(m.versions, key)
	}
}

var (
	crons     = []string{"* * * * *", "*/2 * * * *", "0-29 * * * *", "* 2-4 * * *", "* 9-16 * * 1-5"}
	timezones = []string{"UTC", "America/Los_Angeles", "Asia/Kolkata"}
)

func (m *machine) upsertPreset(t *rapid.T) {
	versions := m.versions
	if active := m.activeVersions(); len(active) > 0 && rapid.IntRange(0, 3).Draw(t, "inactive_version") > 0 {
		versions = active
	}
	version := pickKey(t, versions, "version")
	m.writePreset(t, version)
}

// activeVersions lists the keys of the active versions of templates that
// are not deleted.
func (m *machine) activeVersions() []string {
	var out []string
	for _, tm := range m.world.Templates {
		if tm.Deleted || tm.ActiveVersionID == uuid.Nil {
			continue
		}
		for _, v := range m.world.Versions {
			if v.ID == tm.ActiveVersionID {
				out = append(out, v.Name)
			}
		}
	}
	return out
}

// setup adds a template with an active version and a preset of it in one
// step, so that random worlds quickly have something to reconcile.
func (m *machine) setup(t *rapid.T) {
	tmpl, version := m.fresh("t"), m.fresh("v")
	for _, op := range []Op{AddTemplate{tmpl}, AddVersion{version, tmpl}, Activate{tmpl, version}} {
		if err := m.both(t, fmt.Sprintf("%T", op), func(s Store) error { return op.ApplyStore(m.ctx, s, m.now()) }); err != nil {
			t.Fatalf("set-up %T: %v", op, err)
		}
	}
	m.templates = append(m.templates, tmpl)
	m.versions = append(m.versions, version)
	m.writePreset(t, version)
}

// writePreset upserts a new or existing preset of version, with random
// (sometimes invalid) fields.
func (m *machine) writePreset(t *rapid.T, version string) {
	key := m.fresh("p")
	if len(m.presets) > 0 && rapid.Bool().Draw(t, "update_existing") {
		key = rapid.SampledFrom(m.presets).Draw(t, "preset")
	}
	p := prebuilds.Preset{ID: ID(key), TemplateVersionID: ID(version), Name: key}
	if rapid.IntRange(0, 5).Draw(t, "desired_nil") > 0 {
		p.Desired = count(rapid.IntRange(0, 3).Draw(t, "desired"))
	}
	p.TTL = rapid.SampledFrom([]time.Duration{0, 0, 10 * time.Minute, time.Hour}).Draw(t, "ttl")
	if p.Desired != nil && rapid.IntRange(0, 3).Draw(t, "scheduled") == 0 {
		p.Timezone = rapid.SampledFrom(timezones).Draw(t, "timezone")
		p.Schedules = []prebuilds.Schedule{{
			Cron:      rapid.SampledFrom(crons).Draw(t, "cron"),
			Instances: rapid.IntRange(0, 3).Draw(t, "scheduled_instances"),
		}}
	}
	if rapid.Bool().Draw(t, "with_parameters") {
		p.Parameters = map[string]string{"region": rapid.SampledFrom([]string{"eu", "us"}).Draw(t, "region")}
	}
	switch rapid.IntRange(0, 19).Draw(t, "invalid") {
	case 0:
		p.Desired = count(-1)
	case 1:
		p.Timezone, p.Schedules = "UTC", []prebuilds.Schedule{{Cron: "61 * * * *", Instances: 1}}
	case 2:
		p.Timezone = "Nowhere/Special"
	case 3:
		// Another preset's name within the same version.
		for _, q := range m.world.Presets {
			if q.TemplateVersionID == p.TemplateVersionID && q.ID != p.ID {
				p.Name = q.Name
				break
			}
		}
	}
	err := m.both(t, "UpsertPreset "+key, func(s Store) error { return s.UpsertPreset(m.ctx, p) })
	if err == nil && !contains(m.presets, key) {
		m.presets = append(m.presets, key)
	}
}

func contains(keys []string, k string) bool {
	for _, x := range keys {
		if x == k {
			return true
		}
	}
	return false
}

func (m *machine) activate(t *rapid.T) {
	tmpl := pickKey(t, m.templates, "template")
	var own []string
	for _, v := range m.world.Versions {
		if v.TemplateID == ID(tmpl) {
			own = append(own, v.Name)
		}
	}
	versions := m.versions
	if len(own) > 0 && rapid.IntRange(0, 5).Draw(t, "foreign_version") > 0 {
		versions = own
	}
	version := pickKey(t, versions, "version")
	m.both(t, "SetActiveVersion", func(s Store) error { return Activate{tmpl, version}.ApplyStore(m.ctx, s, m.now()) })
}

func (m *machine) deprecate(t *rapid.T) {
	tmpl := pickKey(t, m.templates, "template")
	undo := rapid.Bool().Draw(t, "undeprecate")
	m.both(t, "SetTemplateDeprecated", func(s Store) error { return Deprecate{tmpl, undo}.ApplyStore(m.ctx, s, m.now()) })
}

func (m *machine) deleteTemplate(t *rapid.T) {
	tmpl := pickKey(t, m.templates, "template")
	m.both(t, "DeleteTemplate", func(s Store) error { return DeleteTemplate{tmpl}.ApplyStore(m.ctx, s, m.now()) })
}

func (m *machine) invalidate(t *rapid.T) {
	p := pickKey(t, m.presets, "preset")
	m.both(t, "InvalidatePreset", func(s Store) error { return Invalidate{p}.ApplyStore(m.ctx, s, m.now()) })
}

func (m *machine) reset(t *rapid.T) {
	p := pickKey(t, m.presets, "preset")
	m.both(t, "ResetPreset", func(s Store) error { return Reset{p}.ApplyStore(m.ctx, s, m.now()) })
}

func (m *machine) pause(t *rapid.T) {
	paused := rapid.IntRange(0, 3).Draw(t, "paused") == 0
	m.both(t, "SetPaused", func(s Store) error { return s.SetPaused(m.ctx, paused) })
}

// createInstance seeds an instance of a preset (a prebuild, or a user's
// instance), build #1 pending.
func (m *machine) createInstance(t *rapid.T) {
	if len(m.world.Presets) == 0 {
		t.Skip("no preset yet")
	}
	pr := m.world.Presets[rapid.IntRange(0, len(m.world.Presets)-1).Draw(t, "preset_index")]
	tmpl := uuid.Nil
	for _, v := range m.world.Versions {
		if v.ID == pr.TemplateVersionID {
			tmpl = v.TemplateID
		}
	}
	key := m.fresh("i")
	p := prebuilds.CreateInstanceParams{
		InstanceID: ID(key), OwnerID: prebuilds.SystemOwner, TemplateID: tmpl, Name: key,
		BuildID: ID(BuildKey(key, 1)), TemplateVersionID: pr.TemplateVersionID, PresetID: pr.ID,
		Transition: prebuilds.TransitionStart, Parameters: pr.Parameters, Now: m.now(),
	}
	if rapid.IntRange(0, 3).Draw(t, "user_owned") == 0 {
		p.OwnerID = ID(rapid.SampledFrom([]string{"alice", "bob"}).Draw(t, "owner"))
	}
	if rapid.IntRange(0, 7).Draw(t, "no_preset") == 0 {
		p.PresetID = uuid.Nil
	}
	m.both(t, "CreateInstance "+key, func(s Store) error { return s.CreateInstance(m.ctx, p) })
}

var jobStatuses = []prebuilds.JobStatus{
	prebuilds.JobRunning, prebuilds.JobSucceeded, prebuilds.JobSucceeded, prebuilds.JobSucceeded,
	prebuilds.JobFailed, prebuilds.JobFailed, prebuilds.JobCanceling, prebuilds.JobCanceled,
}

// updateJob is the provisioner reporting: usually on an unfinished job,
// sometimes on any (invalid transitions).
func (m *machine) updateJob(t *rapid.T) {
	var builds []prebuilds.Build
	anyBuild := rapid.IntRange(0, 7).Draw(t, "any_build") == 0
	for _, b := range m.world.Builds {
		if anyBuild || !b.JobStatus.Terminal() {
			builds = append(builds, b)
		}
	}
	if len(builds) == 0 {
		t.Skip("no build to update")
	}
	b := builds[rapid.IntRange(0, len(builds)-1).Draw(t, "build_index")]
	p := prebuilds.UpdateJobParams{BuildID: b.ID, Status: rapid.SampledFrom(jobStatuses).Draw(t, "status"), Now: m.now()}
	if p.Status == prebuilds.JobFailed {
		p.FailureKind = rapid.SampledFrom([]prebuilds.FailureKind{prebuilds.FailureNone, prebuilds.FailureTransient, prebuilds.FailureTransient, prebuilds.FailureValidation}).Draw(t, "failure_kind")
	}
	var got, want prebuilds.UpdateJobResult
	what := fmt.Sprintf("UpdateJob(build #%d %s, %s → %s %s)", b.Number, b.Transition, b.JobStatus, p.Status, p.FailureKind)
	m.both(t, what, func(s Store) error {
		res, err := s.UpdateJob(m.ctx, p)
		if s == Store(m.mod) {
			want = res
		} else {
			got = res
		}
		return err
	})
	if got != want {
		t.Fatalf("%s: store result %+v, model result %+v", what, got, want)
	}
}

// provision is a provisioner finishing a job successfully and, for a
// start, the agent reporting ready.
func (m *machine) provision(t *rapid.T) {
	var builds []prebuilds.Build
	for _, b := range m.world.Builds {
		if !b.JobStatus.Terminal() {
			builds = append(builds, b)
		}
	}
	if len(builds) == 0 {
		t.Skip("no unfinished job")
	}
	b := builds[rapid.IntRange(0, len(builds)-1).Draw(t, "build_index")]
	p := prebuilds.UpdateJobParams{BuildID: b.ID, Status: prebuilds.JobSucceeded, Now: m.now()}
	m.both(t, "UpdateJob(succeeded)", func(s Store) error { _, err := s.UpdateJob(m.ctx, p); return err })
	if b.Transition == prebuilds.TransitionStart && rapid.IntRange(0, 3).Draw(t, "not_ready") > 0 {
		m.both(t, "SetReady", func(s Store) error { return s.SetReady(m.ctx, b.InstanceID, true) })
	}
}

func (m *machine) setReady(t *rapid.T) {
	var running []uuid.UUID
	for _, in := range m.world.Instances {
		if b, err := m.world.ListBuilds(in.ID); err == nil && len(b) > 0 && !in.Ready &&
			b[len(b)-1].Transition == prebuilds.TransitionStart && b[len(b)-1].JobStatus == prebuilds.JobSucceeded {
			running = append(running, in.ID)
		}
	}
	var id uuid.UUID
	if len(running) > 0 && rapid.IntRange(0, 3).Draw(t, "any_instance") > 0 {
		id = running[rapid.IntRange(0, len(running)-1).Draw(t, "running_index")]
	} else {
		id = m.pickInstance(t)
	}
	ready := rapid.IntRange(0, 4).Draw(t, "ready") > 0
	m.both(t, "SetReady", func(s Store) error { return s.SetReady(m.ctx, id, ready) })
}

func (m *machine) claim(t *rapid.T) {
	if len(m.world.Presets) == 0 {
		t.Skip("no preset yet")
	}
	pr := m.world.Presets[rapid.IntRange(0, len(m.world.Presets)-1).Draw(t, "preset_index")]
	var ready []uuid.UUID
	for _, r := range m.world.Snapshot(m.params()).Running {
		if r.Ready {
			ready = append(ready, r.PresetID)
		}
	}
	if len(ready) > 0 && rapid.IntRange(0, 3).Draw(t, "any_preset") > 0 {
		pr, _ = m.world.GetPreset(ready[rapid.IntRange(0, len(ready)-1).Draw(t, "ready_index")])
	}
	p := prebuilds.ClaimParams{PresetID: pr.ID, Owner: ID(rapid.SampledFrom([]string{"alice", "bob"}).Draw(t, "claimant")), Now: m.now()}
	var got, want prebuilds.Instance
	err := m.both(t, "Claim("+pr.Name+")", func(s Store) error {
		inst, err := s.Claim(m.ctx, p)
		if s == Store(m.mod) {
			want = inst
		} else {
			got = inst
		}
		return err
	})
	if err == nil {
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("Claim(%s): claimed instance (-model +store):\n%s", pr.Name, diff)
		}
	}
}

// startBuild is a build started by someone else: a stop, a delete or a
// (re)start, on the latest build's version or another one.
func (m *machine) startBuild(t *rapid.T) {
	id := m.pickInstance(t)
	builds, err := m.world.ListBuilds(id)
	if err != nil || len(builds) == 0 {
		t.Skip("instance without builds")
	}
	latest := builds[len(builds)-1]
	p := prebuilds.StartBuildParams{
		InstanceID: id, BuildID: ID(m.fresh("b")), TemplateVersionID: latest.TemplateVersionID,
		Transition: rapid.SampledFrom([]prebuilds.Transition{prebuilds.TransitionStop, prebuilds.TransitionDelete, prebuilds.TransitionStart}).Draw(t, "transition"),
		Now:        m.now(),
	}
	if len(m.versions) > 0 && rapid.IntRange(0, 3).Draw(t, "other_version") == 0 {
		p.TemplateVersionID = ID(rapid.SampledFrom(m.versions).Draw(t, "version"))
	}
	if p.Transition == prebuilds.TransitionStart && len(m.world.Presets) > 0 && rapid.Bool().Draw(t, "start_with_preset") {
		// Mostly a preset of the build's version (a valid restart that may
		// move the instance to another preset); sometimes any preset, which
		// both must reject alike.
		var onVersion []uuid.UUID
		for _, q := range m.world.Presets {
			if q.TemplateVersionID == p.TemplateVersionID {
				onVersion = append(onVersion, q.ID)
			}
		}
		if len(onVersion) > 0 && rapid.IntRange(0, 3).Draw(t, "any_preset") > 0 {
			p.PresetID = rapid.SampledFrom(onVersion).Draw(t, "version_preset")
		} else {
			p.PresetID = m.world.Presets[rapid.IntRange(0, len(m.world.Presets)-1).Draw(t, "preset_index")].ID
		}
	}
	m.both(t, fmt.Sprintf("StartBuild(%s)", p.Transition), func(s Store) error { return s.StartBuild(m.ctx, p) })
}

func (m *machine) removeInstance(t *rapid.T) {
	id := m.pickInstance(t)
	m.both(t, "RemoveInstance", func(s Store) error { return s.RemoveInstance(m.ctx, id) })
}

func (m *machine) advance(t *rapid.T) {
	d := rapid.SampledFrom([]time.Duration{
		time.Microsecond, 500 * time.Nanosecond, time.Second, 17 * time.Second,
		m.cfg.BackoffInterval, m.cfg.BackoffInterval + time.Microsecond,
		time.Minute, 5 * time.Minute, 10 * time.Minute, time.Hour, 3 * time.Hour,
	}).Draw(t, "advance")
	m.clock.Advance(d)
}

// inspect compares single-row reads.
func (m *machine) inspect(t *rapid.T) {
	if len(m.world.Presets) > 0 {
		id := m.world.Presets[rapid.IntRange(0, len(m.world.Presets)-1).Draw(t, "preset_index")].ID
		want, _ := m.world.GetPreset(id)
		got, err := m.store.GetPreset(m.ctx, id)
		if err != nil {
			t.Fatalf("GetPreset(%s): %v", want.Name, err)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("GetPreset(%s) (-model +store):\n%s", want.Name, diff)
		}
	}
	if len(m.world.Instances) > 0 {
		id := m.pickInstance(t)
		want, _ := m.world.GetInstance(id)
		got, err := m.store.GetInstance(m.ctx, id)
		if err != nil {
			t.Fatalf("GetInstance(%s): %v", want.Name, err)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("GetInstance(%s) (-model +store):\n%s", want.Name, diff)
		}
		wantB, _ := m.world.ListBuilds(id)
		gotB, err := m.store.ListBuilds(m.ctx, id)
		if err != nil {
			t.Fatalf("ListBuilds(%s): %v", want.Name, err)
		}
		if diff := cmp.Diff(wantB, gotB, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("ListBuilds(%s) (-model +store):\n%s", want.Name, diff)
		}
	}
}

// pendingJobs is a provisioner polling: the store must list exactly the
// model's pending jobs (or fail alike on a bad limit); then, sometimes, it
// takes one of them with UpdateJob(running), as a provisioner would.
func (m *machine) pendingJobs(t *rapid.T) {
	limit := rapid.SampledFrom([]int{1, 2, 3, 5, prebuilds.MaxPendingJobsLimit, 0, prebuilds.MaxPendingJobsLimit + 1}).Draw(t, "pending_limit")
	p := prebuilds.PendingJobsParams{Limit: limit}
	var got, want []prebuilds.Job
	err := m.both(t, fmt.Sprintf("PendingJobs(limit %d)", limit), func(s Store) error {
		jobs, err := s.PendingJobs(m.ctx, p)
		if s == Store(m.mod) {
			want = jobs
		} else {
			got = jobs
		}
		return err
	})
	if err != nil {
		return
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("PendingJobs(limit %d): jobs (-model +store):\n%s", limit, diff)
	}
	if len(want) == 0 || !rapid.Bool().Draw(t, "take_job") {
		return
	}
	job := want[rapid.IntRange(0, len(want)-1).Draw(t, "job_index")]
	take := prebuilds.UpdateJobParams{BuildID: job.BuildID, Status: prebuilds.JobRunning, Now: m.now()}
	m.both(t, "UpdateJob(take polled job)", func(s Store) error { _, err := s.UpdateJob(m.ctx, take); return err })
}

func (m *machine) pickPreset(t *rapid.T) prebuilds.Preset {
	if len(m.world.Presets) == 0 {
		t.Skip("no preset yet")
	}
	return m.world.Presets[rapid.IntRange(0, len(m.world.Presets)-1).Draw(t, "preset_index")]
}

func (m *machine) directCreate(t *rapid.T) {
	pr := m.pickPreset(t)
	p := prebuilds.CreatePrebuildsParams{PresetID: pr.ID, TemplateVersionID: pr.TemplateVersionID, Now: m.now()}
	if len(m.versions) > 0 && rapid.IntRange(0, 3).Draw(t, "other_version") == 0 {
		p.TemplateVersionID = ID(rapid.SampledFrom(m.versions).Draw(t, "version"))
	}
	for range rapid.IntRange(0, 2).Draw(t, "count") {
		key := m.fresh("d")
		p.Instances = append(p.Instances, prebuilds.NewPrebuild{InstanceID: ID(key), BuildID: ID(BuildKey(key, 1)), Name: key})
	}
	if len(p.Instances) > 0 && len(m.world.Instances) > 0 && rapid.IntRange(0, 5).Draw(t, "existing_id") == 0 {
		p.Instances[0].InstanceID = m.pickInstance(t)
	}
	var got, want []prebuilds.Job
	m.both(t, "CreatePrebuilds", func(s Store) error {
		jobs, err := s.CreatePrebuilds(m.ctx, p)
		if s == Store(m.mod) {
			want = jobs
		} else {
			got = jobs
		}
		return err
	})
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("CreatePrebuilds: jobs (-model +store):\n%s", diff)
	}
}

func (m *machine) directDelete(t *rapid.T) {
	p := prebuilds.DeletePrebuildParams{InstanceID: m.pickInstance(t), BuildID: ID(m.fresh("x")), Now: m.now()}
	var got, want prebuilds.Job
	m.both(t, "DeletePrebuild", func(s Store) error {
		job, err := s.DeletePrebuild(m.ctx, p)
		if s == Store(m.mod) {
			want = job
		} else {
			got = job
		}
		return err
	})
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("DeletePrebuild: job (-model +store):\n%s", diff)
	}
}

func (m *machine) directCancel(t *rapid.T) {
	p := prebuilds.CancelPendingParams{PresetID: m.pickPreset(t).ID, Now: m.now()}
	var got, want []uuid.UUID
	m.both(t, "CancelPending", func(s Store) error {
		ids, err := s.CancelPending(m.ctx, p)
		if s == Store(m.mod) {
			want = ids
		} else {
			got = ids
		}
		return err
	})
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("CancelPending: canceled (-model +store):\n%s", diff)
	}
}

var statuses = []prebuilds.PresetStatus{prebuilds.PresetHealthy, prebuilds.PresetHardLimited, prebuilds.PresetValidationFailed}

func (m *machine) directSetStatus(t *rapid.T) {
	id := m.pickPreset(t).ID
	from, to := rapid.SampledFrom(statuses).Draw(t, "from"), rapid.SampledFrom(statuses).Draw(t, "to")
	var got, want bool
	m.both(t, "SetPresetStatus", func(s Store) error {
		changed, err := s.SetPresetStatus(m.ctx, id, from, to)
		if s == Store(m.mod) {
			want = changed
		} else {
			got = changed
		}
		return err
	})
	if got != want {
		t.Fatalf("SetPresetStatus(%s→%s): store changed=%v, model changed=%v", from, to, got, want)
	}
}

// reconcile runs the real Reconciler on the store; its writes must be the
// model's plan at this instant, and are applied to the model.
func (m *machine) reconcile(t *rapid.T) {
	now := prebuilds.Micro(m.now())
	params := m.params()
	want := m.world.PlanAll(now, m.cfg.PlanConfig(), params)
	reconcileWith(m.ctx, t, m.clock, m.store, m.world, m.cfg, want, passOptions{
		maxConcurrency: 1,
		newID:          func() uuid.UUID { return ID(m.fresh("reconciler/")) },
	})
}

// stateMachine is the rapid state machine run against the model.
func (s *suite) stateMachine(t *testing.T) {
	s.rapidCheck(t, func(rt *rapid.T) {
		m := s.newMachine(t, rt)
		for range rapid.IntRange(1, 3).Draw(rt, "initial_presets") {
			m.setup(rt)
		}
		a := m.actions(true)
		a[""] = m.check
		rt.Repeat(a)
	})
}

// randomWorlds compares snapshots of random worlds (no reconciler) at
// random snapshot parameters.
func (s *suite) randomWorlds(t *testing.T) {
	s.rapidCheck(t, func(rt *rapid.T) {
		m := s.newMachine(t, rt)
		for range rapid.IntRange(1, 3).Draw(rt, "initial_presets") {
			m.setup(rt)
		}
		a := m.actions(false)
		a[""] = m.checkRandomParams
		rt.Repeat(a)
	})
}

// rapidCheck runs prop with rapid.Check, honouring
// Harness.StateMachineChecks unless -rapid.checks was given: rapid runs its
// flag's number of checks per call, so the suite makes as many calls as
// needed and turns the checks beyond the quota of a call into no-ops (until
// a failure is seen, so that shrinking and fail-file replay run prop for
// real).
func (s *suite) rapidCheck(t *testing.T, prop func(*rapid.T)) {
	n, useFlag := s.rapidChecks()
	if useFlag {
		rapid.Check(t, prop)
		return
	}
	per := 100
	if f := flag.Lookup("rapid.checks"); f != nil {
		if v, err := strconv.Atoi(f.Value.String()); err == nil && v > 0 {
			per = v
		}
	}
	if testing.Short() {
		per = max(per/5, 1)
	}
	t.Logf("conformance: %d randomised checks (Harness.StateMachineChecks), run as up to %d per rapid.Check; rapid counts the rest as passed no-ops", n, per)
	for done := 0; done < n && !t.Failed(); {
		quota := min(per, n-done)
		started, failing := 0, false
		rapid.Check(t, func(rt *rapid.T) {
			if !failing && started >= quota {
				return
			}
			started++
			finished := false
			defer func() {
				if !finished || rt.Failed() {
					failing = true
				}
			}()
			prop(rt)
			finished = true
		})
		done += quota
	}
}
