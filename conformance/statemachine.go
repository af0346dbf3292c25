package conformance

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"pgregory.net/rapid"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
	"github.com/prebuildkit/prebuildkit/model"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// stateMachineGroup: StateMachine/Reconcile and StateMachine/Snapshot.
func (s *suite) stateMachineGroup(t *testing.T) {
	s.run(t, "Reconcile", s.stateMachine)
	s.run(t, "Snapshot", s.randomWorlds)
}

// machine drives a store and the model with the same random operations.
// Every operation is made on both, through the same call (the model through
// modelStore), and their error classes must agree. Every operation is
// recorded in the run's log, in the vocabulary of keys, so that a failure
// shows the shrunk sequence that led to it.
type machine struct {
	ctx   context.Context
	clock *quartz.Mock
	store Store
	world *model.World
	mod   *modelStore
	cfg   scenario.Config

	// keys of what was created (successfully or not), for drawing.
	templates, versions, presets []string
	// seq numbers fresh keys, per prefix (so that dropping an operation
	// while shrinking renames as little as possible).
	seq map[string]int
	// labels names the IDs made from the machine's keys.
	labels labeler
	log    *runLog
}

// runLog is one run of a state machine: its operations and, when it
// failed, the verdict.
type runLog struct {
	steps   []logStep
	failure *verdict
}

// logStep is one operation of a run.
type logStep struct {
	what string
	// inert: the operation changed nothing (refused alike by the store and
	// the model, or read-only); a report leaves it out.
	inert bool
}

func (s *suite) newMachine(t *testing.T, rt *rapid.T, log *runLog) *machine {
	st, err := s.newStore(t)
	if err != nil {
		rt.Fatalf("%v", err)
	}
	w := &model.World{}
	m := &machine{ctx: t.Context(), clock: newClock(t, epoch), store: st, world: w, mod: &modelStore{w: w},
		labels: newLabeler(), log: log, seq: map[string]int{}}
	m.cfg = scenario.Config{
		BackoffInterval:  rapid.SampledFrom([]time.Duration{5 * time.Second, time.Minute}).Draw(rt, "backoff_interval"),
		BackoffLookback:  rapid.SampledFrom([]time.Duration{10 * time.Minute, time.Hour}).Draw(rt, "backoff_lookback"),
		FailureHardLimit: prebuilds.HardLimit(rapid.IntRange(-1, 3).Draw(rt, "hard_limit")),
		FailurePolicy:    rapid.SampledFrom([]prebuilds.FailurePolicy{prebuilds.PolicyCoder, prebuilds.PolicyAdaptive}).Draw(rt, "policy"),
		BackoffMax:       rapid.SampledFrom([]time.Duration{time.Minute, 10 * time.Minute}).Draw(rt, "backoff_max"),
		DisableCanary:    rapid.IntRange(0, 3).Draw(rt, "no_canary") == 0,
		BuildTimeout:     rapid.SampledFrom([]time.Duration{prebuilds.NoBuildTimeout, 0, 10 * time.Minute, time.Hour}).Draw(rt, "build_timeout"),
	}
	if rapid.IntRange(0, 3).Draw(rt, "budgeted") == 0 {
		m.cfg.MaxCreatesPerPass = rapid.IntRange(1, 4).Draw(rt, "max_creates")
	}
	m.step("Config: policy %s, BackoffInterval %s, BackoffMax %s, canary %v, BackoffLookback %s, hard limit K = %d, build timeout %s, MaxCreatesPerPass %d",
		m.cfg.FailurePolicy, m.cfg.BackoffInterval, m.cfg.BackoffMax, !m.cfg.DisableCanary, m.cfg.BackoffLookback, m.cfg.FailureHardLimit.K(),
		m.cfg.BuildTimeout, m.cfg.MaxCreatesPerPass)
	return m
}

func (m *machine) now() time.Time { return m.clock.Now() }

// fresh returns a new key with the prefix and names its ID.
func (m *machine) fresh(prefix string) string {
	m.seq[prefix]++
	k := prefix + strconv.Itoa(m.seq[prefix])
	m.labels.add(k)
	return k
}

// step records the operation about to be made.
func (m *machine) step(format string, args ...any) {
	m.log.steps = append(m.log.steps, logStep{what: fmt.Sprintf(format, args...)})
}

// readOnly marks the last step as one that changes nothing.
func (m *machine) readOnly() { m.log.steps[len(m.log.steps)-1].inert = true }

// names returns the labels of everything known: the machine's keys and
// the model's objects.
func (m *machine) names() labeler {
	l := newLabeler().addWorld(m.world)
	for k, v := range m.labels {
		l[k] = v
	}
	return l
}

// key names id by its key.
func (m *machine) key(id uuid.UUID) string { return m.names().key(id) }

// fail reports the verdict as the failure of this run.
func (m *machine) fail(t *rapid.T, v *verdict) {
	t.Helper()
	v.names = m.names
	m.log.failure = v
	t.Fatalf("%s", v.text())
}

// call makes call on the store and on the model and requires the same
// error class. It returns the store's error.
func (m *machine) call(t *rapid.T, what string, call func(Store) error) error {
	t.Helper()
	merr := call(m.mod)
	serr := call(m.store)
	v := newVerdict(ruleSameError, scenario.Here(0))
	if !sameError(v, what, serr, merr) {
		m.fail(t, v)
	}
	return serr
}

// both records the operation as a step and makes it with call. A step both
// refuse alike changed nothing.
func (m *machine) both(t *rapid.T, what string, call func(Store) error) error {
	t.Helper()
	m.step("%s", what)
	err := m.call(t, what, call)
	if err != nil {
		m.readOnly()
	}
	return err
}

// pickKey draws one of keys, or, with probability 1/12, a key nobody
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

func (m *machine) params() prebuilds.SnapshotParams { return m.cfg.SnapshotParams(m.now()) }

// at renders the clock as an offset from the epoch.
func (m *machine) at() string { return offset(epoch, m.now()) }

// check is the invariant: the store's snapshot equals the model's.
func (m *machine) check(t *rapid.T) {
	t.Helper()
	m.checkParams(t, m.params(), "after step "+strconv.Itoa(len(m.log.steps)))
}

// checkParams compares the snapshots at p.
func (m *machine) checkParams(t *rapid.T, p prebuilds.SnapshotParams, when string) {
	t.Helper()
	m.checkParamsVia(t, p, when, false)
}

// checkParamsVia compares the snapshots at p, reading the store's under the
// lock or without it.
func (m *machine) checkParamsVia(t *rapid.T, p prebuilds.SnapshotParams, when string, lockFree bool) {
	t.Helper()
	diff, objects, _, err := snapshotCompareVia(m.ctx, m.store, m.world, p, m.names(), lockFree)
	v := newVerdict(ruleSnapshot, scenario.Here(0))
	v.objects = objects
	switch {
	case err != nil:
		v.addf("%s: %v", when, err)
	case diff != "":
		v.note(fmt.Sprintf("%s: %s", when, describeParams(p, m.names(), lockFree)))
		v.diff("-model +store", diff)
	}
	if v.failed() {
		m.fail(t, v)
	}
}

// checkRandomParams compares snapshots at random parameters: either
// policy, a stuck-build cut-off, and, often, filtered to random presets or
// a random shard, read under the lock or without it.
func (m *machine) checkRandomParams(t *rapid.T) {
	t.Helper()
	now := m.now().Add(rapid.SampledFrom([]time.Duration{0, time.Microsecond, time.Minute, time.Hour}).Draw(t, "snapshot_later"))
	p := prebuilds.SnapshotParams{
		Now:       prebuilds.Micro(now),
		Lookback:  prebuilds.Micro(now.Add(-rapid.SampledFrom([]time.Duration{0, time.Second, 10 * time.Minute, time.Hour, 24 * time.Hour}).Draw(t, "lookback"))),
		HardLimit: prebuilds.HardLimit(rapid.IntRange(-1, 4).Draw(t, "k")),
		Policy:    rapid.SampledFrom([]prebuilds.FailurePolicy{"", prebuilds.PolicyCoder, prebuilds.PolicyAdaptive}).Draw(t, "policy"),
	}
	if timeout := rapid.SampledFrom([]time.Duration{0, time.Second, 10 * time.Minute, time.Hour}).Draw(t, "stuck_timeout"); timeout > 0 {
		p.StuckBefore = prebuilds.Micro(now.Add(-timeout))
	}
	switch rapid.IntRange(0, 3).Draw(t, "filter") {
	case 1: // a random subset of the presets, with an unknown one
		p.Presets = []uuid.UUID{id("missing-preset")}
		for _, pr := range m.world.Presets {
			if rapid.Bool().Draw(t, "in_subset") {
				p.Presets = append(p.Presets, pr.ID)
			}
		}
	case 2: // a random shard
		n := rapid.IntRange(2, 4).Draw(t, "shards")
		p.Shard = prebuilds.Shard{Index: rapid.IntRange(0, n-1).Draw(t, "shard"), Count: n}
	}
	m.checkParamsVia(t, p, "after step "+strconv.Itoa(len(m.log.steps)), rapid.Bool().Draw(t, "lock_free"))
}

// describeParams renders snapshot inputs for a failure.
func describeParams(p prebuilds.SnapshotParams, l labeler, lockFree bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Snapshot(now %s, lookback %s, K = %d", offset(epoch, p.Now), offset(epoch, p.Lookback), p.HardLimit.K())
	if p.Policy != "" {
		fmt.Fprintf(&b, ", policy %s", p.Policy)
	}
	if !p.StuckBefore.IsZero() {
		fmt.Fprintf(&b, ", stuck before %s", offset(epoch, p.StuckBefore))
	}
	if p.Presets != nil {
		keys := make([]string, len(p.Presets))
		for i, pid := range p.Presets {
			keys[i] = l.key(pid)
		}
		fmt.Fprintf(&b, ", presets %v", keys)
	}
	if p.Shard.Count > 1 {
		fmt.Fprintf(&b, ", shard %d of %d", p.Shard.Index, p.Shard.Count)
	}
	b.WriteString(")")
	if lockFree {
		b.WriteString(" read with Store.Snapshot, without the lock")
	}
	return b.String()
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
		"ReadyPrebuilds": m.readyPrebuilds,
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
		"DirectFailStuck": m.directFailStuck,
	}
	if withReconcile {
		a["Reconcile"] = m.reconcile
		a["Reconcile2"] = m.reconcile
		a["Reconcile3"] = m.reconcile
	}
	return a
}

func (m *machine) addTemplate(t *rapid.T) {
	var key string
	if len(m.templates) > 0 && rapid.IntRange(0, 7).Draw(t, "duplicate_template") == 0 {
		key = rapid.SampledFrom(m.templates).Draw(t, "template")
	} else {
		key = m.fresh("t")
	}
	op := scenario.AddTemplate{Key: key}
	if m.both(t, "CreateTemplate "+key, func(s Store) error { return op.ApplyStore(m.ctx, s, m.now()) }) == nil {
		m.templates = append(m.templates, key)
	}
}

func (m *machine) addVersion(t *rapid.T) {
	tmpl := pickKey(t, m.templates, "template")
	key := m.fresh("v")
	op := scenario.AddVersion{Key: key, Template: tmpl}
	if m.both(t, "CreateTemplateVersion "+key+" of "+tmpl, func(s Store) error { return op.ApplyStore(m.ctx, s, m.now()) }) == nil {
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
	m.step("Setup template %s with active version %s", tmpl, version)
	for _, op := range []scenario.Op{scenario.AddTemplate{Key: tmpl}, scenario.AddVersion{Key: version, Template: tmpl}, scenario.Activate{Template: tmpl, Version: version}} {
		if err := m.call(t, describeOp(op), func(s Store) error { return op.ApplyStore(m.ctx, s, m.now()) }); err != nil {
			t.Fatalf("conformance: set-up %s failed on the store and the model: %v (a bug in the suite)", describeOp(op), err)
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
	p := prebuilds.Preset{ID: id(key), TemplateVersionID: id(version), Name: key}
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
	err := m.both(t, "UpsertPreset "+describePreset(p, m.names()), func(s Store) error { return s.UpsertPreset(m.ctx, p) })
	if err == nil && !contains(m.presets, key) {
		m.presets = append(m.presets, key)
	}
}

// describePreset renders a preset by keys: "p3 of v2: desired 2, ttl 10m".
func describePreset(p prebuilds.Preset, l labeler) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s of %s", l.key(p.ID), l.key(p.TemplateVersionID))
	if p.Name != l.key(p.ID) {
		fmt.Fprintf(&b, " named %q", p.Name)
	}
	if p.Desired == nil {
		b.WriteString(": desired unset")
	} else {
		fmt.Fprintf(&b, ": desired %d", *p.Desired)
	}
	if p.TTL > 0 {
		fmt.Fprintf(&b, ", ttl %s", p.TTL)
	}
	if p.Timezone != "" {
		fmt.Fprintf(&b, ", timezone %s", p.Timezone)
	}
	for _, s := range p.Schedules {
		fmt.Fprintf(&b, ", schedule %q → %d", s.Cron, s.Instances)
	}
	for k, v := range p.Parameters {
		fmt.Fprintf(&b, ", %s=%s", k, v)
	}
	return b.String()
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
		if v.TemplateID == id(tmpl) {
			own = append(own, v.Name)
		}
	}
	versions := m.versions
	if len(own) > 0 && rapid.IntRange(0, 5).Draw(t, "foreign_version") > 0 {
		versions = own
	}
	version := pickKey(t, versions, "version")
	op := scenario.Activate{Template: tmpl, Version: version}
	m.both(t, "SetActiveVersion "+tmpl+" "+version, func(s Store) error { return op.ApplyStore(m.ctx, s, m.now()) })
}

func (m *machine) deprecate(t *rapid.T) {
	tmpl := pickKey(t, m.templates, "template")
	undo := rapid.Bool().Draw(t, "undeprecate")
	op := scenario.Deprecate{Template: tmpl, Undo: undo}
	m.both(t, fmt.Sprintf("SetTemplateDeprecated %s %v", tmpl, !undo), func(s Store) error { return op.ApplyStore(m.ctx, s, m.now()) })
}

func (m *machine) deleteTemplate(t *rapid.T) {
	tmpl := pickKey(t, m.templates, "template")
	op := scenario.DeleteTemplate{Template: tmpl}
	m.both(t, "DeleteTemplate "+tmpl, func(s Store) error { return op.ApplyStore(m.ctx, s, m.now()) })
}

func (m *machine) invalidate(t *rapid.T) {
	p := pickKey(t, m.presets, "preset")
	op := scenario.Invalidate{Preset: p}
	m.both(t, "InvalidatePreset "+p+" at "+m.at(), func(s Store) error { return op.ApplyStore(m.ctx, s, m.now()) })
}

func (m *machine) reset(t *rapid.T) {
	p := pickKey(t, m.presets, "preset")
	op := scenario.Reset{Preset: p}
	m.both(t, "ResetPreset "+p+" at "+m.at(), func(s Store) error { return op.ApplyStore(m.ctx, s, m.now()) })
}

func (m *machine) pause(t *rapid.T) {
	paused := rapid.IntRange(0, 3).Draw(t, "paused") == 0
	m.both(t, fmt.Sprintf("SetPaused %v", paused), func(s Store) error { return s.SetPaused(m.ctx, paused) })
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
		InstanceID: id(key), OwnerID: prebuilds.SystemOwner, TemplateID: tmpl, Name: key,
		BuildID: buildID(key, 1), TemplateVersionID: pr.TemplateVersionID, PresetID: pr.ID,
		Transition: prebuilds.TransitionStart, Parameters: pr.Parameters, Now: m.now(),
	}
	if rapid.IntRange(0, 3).Draw(t, "user_owned") == 0 {
		p.OwnerID = id(rapid.SampledFrom([]string{"alice", "bob"}).Draw(t, "owner"))
	}
	if rapid.IntRange(0, 7).Draw(t, "no_preset") == 0 {
		p.PresetID = uuid.Nil
	}
	l := m.names()
	what := fmt.Sprintf("CreateInstance %s of %s on %s, owner %s", key, l.key(p.PresetID), l.key(pr.TemplateVersionID), l.key(p.OwnerID))
	if p.PresetID == uuid.Nil {
		what = fmt.Sprintf("CreateInstance %s without preset on %s, owner %s", key, l.key(pr.TemplateVersionID), l.key(p.OwnerID))
	}
	m.both(t, what, func(s Store) error { return s.CreateInstance(m.ctx, p) })
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
		p.FailureKind = rapid.SampledFrom([]prebuilds.FailureKind{prebuilds.FailureNone, prebuilds.FailureTransient, prebuilds.FailureTransient, prebuilds.FailureValidation, prebuilds.FailureTimeout}).Draw(t, "failure_kind")
	}
	var got, want prebuilds.UpdateJobResult
	what := strings.TrimSpace(fmt.Sprintf("UpdateJob %s (%s) %s → %s %s", m.key(b.ID), b.Transition, b.JobStatus, p.Status, p.FailureKind))
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
		v := newVerdict("UpdateJob must report the preset status transition a validation failure causes, exactly as the model (docs/spec.md).", defined())
		v.diff(what+": result (-model +store)", m.names().diff(want, got))
		m.fail(t, v)
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
	ready := b.Transition == prebuilds.TransitionStart && rapid.IntRange(0, 3).Draw(t, "not_ready") > 0
	what := fmt.Sprintf("Provision %s (%s) → succeeded", m.key(b.ID), b.Transition)
	if ready {
		what += ", then SetReady " + m.key(b.InstanceID)
	}
	m.both(t, what, func(s Store) error { _, err := s.UpdateJob(m.ctx, p); return err })
	if ready {
		m.call(t, "SetReady "+m.key(b.InstanceID), func(s Store) error { return s.SetReady(m.ctx, b.InstanceID, true) })
	}
}

// readyPrebuilds makes one to three prebuilds of a preset claimable at
// once (created, build #1 succeeded, ready), so that claims often choose
// among several.
func (m *machine) readyPrebuilds(t *rapid.T) {
	pr := m.pickPreset(t)
	tmpl := uuid.Nil
	for _, v := range m.world.Versions {
		if v.ID == pr.TemplateVersionID {
			tmpl = v.TemplateID
		}
	}
	var keys []string
	for range rapid.IntRange(1, 3).Draw(t, "ready_prebuilds") {
		keys = append(keys, m.fresh("i"))
	}
	l := m.names()
	m.step("ReadyPrebuilds %s of %s (created, build #1 succeeded, ready)", strings.Join(keys, ", "), l.key(pr.ID))
	for _, key := range keys {
		p := prebuilds.CreateInstanceParams{
			InstanceID: id(key), OwnerID: prebuilds.SystemOwner, TemplateID: tmpl, Name: key,
			BuildID: buildID(key, 1), TemplateVersionID: pr.TemplateVersionID, PresetID: pr.ID,
			Transition: prebuilds.TransitionStart, Parameters: pr.Parameters, Now: m.now(),
		}
		if m.call(t, "CreateInstance "+key, func(s Store) error { return s.CreateInstance(m.ctx, p) }) != nil {
			continue
		}
		done := prebuilds.UpdateJobParams{BuildID: p.BuildID, Status: prebuilds.JobSucceeded, Now: m.now()}
		m.call(t, "UpdateJob "+key+"/b1 → succeeded", func(s Store) error { _, err := s.UpdateJob(m.ctx, done); return err })
		m.call(t, "SetReady "+key, func(s Store) error { return s.SetReady(m.ctx, p.InstanceID, true) })
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
	var iid uuid.UUID
	if len(running) > 0 && rapid.IntRange(0, 3).Draw(t, "any_instance") > 0 {
		iid = running[rapid.IntRange(0, len(running)-1).Draw(t, "running_index")]
	} else {
		iid = m.pickInstance(t)
	}
	ready := rapid.IntRange(0, 4).Draw(t, "ready") > 0
	m.both(t, fmt.Sprintf("SetReady %s %v", m.key(iid), ready), func(s Store) error { return s.SetReady(m.ctx, iid, ready) })
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
	claimant := rapid.SampledFrom([]string{"alice", "bob"}).Draw(t, "claimant")
	p := prebuilds.ClaimParams{PresetID: pr.ID, Owner: id(claimant), Now: m.now()}
	var got, want prebuilds.Instance
	what := "Claim " + pr.Name + " for " + claimant
	err := m.both(t, what, func(s Store) error {
		inst, err := s.Claim(m.ctx, p)
		if s == Store(m.mod) {
			want = inst
		} else {
			got = inst
		}
		return err
	})
	if err != nil {
		return
	}
	l := m.names()
	if d := l.diff(want, got); d != "" {
		v := newVerdict(ruleClaimOldest, defined())
		if got.ID != want.ID {
			v.object("preset %s", l.of(pr.ID))
			v.object("wanted %s", l.of(want.ID))
			v.object("store took %s", l.of(got.ID))
		}
		v.diff(what+": claimed instance (-model +store)", d)
		m.fail(t, v)
	}
}

// startBuild is a build started by someone else: a stop, a delete or a
// (re)start, on the latest build's version or another one.
func (m *machine) startBuild(t *rapid.T) {
	iid := m.pickInstance(t)
	builds, err := m.world.ListBuilds(iid)
	if err != nil || len(builds) == 0 {
		t.Skip("instance without builds")
	}
	latest := builds[len(builds)-1]
	bkey := scenario.BuildKey(m.key(iid), latest.Number+1)
	m.labels.add(bkey)
	p := prebuilds.StartBuildParams{
		InstanceID: iid, BuildID: id(bkey), TemplateVersionID: latest.TemplateVersionID,
		Transition: rapid.SampledFrom([]prebuilds.Transition{prebuilds.TransitionStop, prebuilds.TransitionDelete, prebuilds.TransitionStart}).Draw(t, "transition"),
		Now:        m.now(),
	}
	if len(m.versions) > 0 && rapid.IntRange(0, 3).Draw(t, "other_version") == 0 {
		p.TemplateVersionID = id(rapid.SampledFrom(m.versions).Draw(t, "version"))
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
	l := m.names()
	what := fmt.Sprintf("StartBuild %s %s on %s", bkey, p.Transition, l.key(p.TemplateVersionID))
	if p.PresetID != uuid.Nil {
		what += " with preset " + l.key(p.PresetID)
	}
	m.both(t, what, func(s Store) error { return s.StartBuild(m.ctx, p) })
}

func (m *machine) removeInstance(t *rapid.T) {
	iid := m.pickInstance(t)
	m.both(t, "RemoveInstance "+m.key(iid), func(s Store) error { return s.RemoveInstance(m.ctx, iid) })
}

func (m *machine) advance(t *rapid.T) {
	d := rapid.SampledFrom([]time.Duration{
		time.Microsecond, 500 * time.Nanosecond, time.Second, 17 * time.Second,
		m.cfg.BackoffInterval, m.cfg.BackoffInterval + time.Microsecond,
		time.Minute, 5 * time.Minute, 10 * time.Minute, time.Hour, 3 * time.Hour,
	}).Draw(t, "advance")
	m.clock.Advance(d)
	m.step("Advance %s to %s", d, m.at())
}

// inspect compares single-row reads.
func (m *machine) inspect(t *rapid.T) {
	const rule = "GetPreset, GetInstance and ListBuilds must return exactly what the model returns."
	l := m.names()
	v := newVerdict(rule, defined())
	if len(m.world.Presets) > 0 {
		pid := m.world.Presets[rapid.IntRange(0, len(m.world.Presets)-1).Draw(t, "preset_index")].ID
		m.step("GetPreset %s", l.key(pid))
		m.readOnly()
		want, _ := m.world.GetPreset(pid)
		got, err := m.store.GetPreset(m.ctx, pid)
		if err != nil {
			v.addf("GetPreset %s: %v", l.key(pid), err)
			m.fail(t, v)
		}
		v.diff("GetPreset "+l.key(pid)+" (-model +store)", l.diff(want, got))
	}
	if len(m.world.Instances) > 0 {
		iid := m.pickInstance(t)
		m.step("GetInstance %s, ListBuilds %s", l.key(iid), l.key(iid))
		m.readOnly()
		want, _ := m.world.GetInstance(iid)
		got, err := m.store.GetInstance(m.ctx, iid)
		if err != nil {
			v.addf("GetInstance %s: %v", l.key(iid), err)
			m.fail(t, v)
		}
		v.diff("GetInstance "+l.key(iid)+" (-model +store)", l.diff(want, got))
		wantB, _ := m.world.ListBuilds(iid)
		gotB, err := m.store.ListBuilds(m.ctx, iid)
		if err != nil {
			v.addf("ListBuilds %s: %v", l.key(iid), err)
			m.fail(t, v)
		}
		v.diff("ListBuilds "+l.key(iid)+" (-model +store)", l.diff(wantB, gotB))
	}
	if v.failed() {
		m.fail(t, v)
	}
}

// pendingJobs is a provisioner polling: the store must list exactly the
// model's pending jobs (or fail alike on a bad limit); then, sometimes, it
// takes one of them with UpdateJob(running), as a provisioner would.
func (m *machine) pendingJobs(t *rapid.T) {
	limit := rapid.SampledFrom([]int{1, 2, 3, 5, prebuilds.MaxPendingJobsLimit, 0, prebuilds.MaxPendingJobsLimit + 1}).Draw(t, "pending_limit")
	p := prebuilds.PendingJobsParams{Limit: limit}
	var got, want []prebuilds.Job
	what := fmt.Sprintf("PendingJobs limit %d", limit)
	err := m.both(t, what, func(s Store) error {
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
	m.readOnly()
	if d := m.names().diff(want, got); d != "" {
		v := newVerdict("PendingJobs must list exactly the model's pending jobs, oldest first (build created_at, then build ID).", defined())
		v.diff(what+": jobs (-model +store)", d)
		m.fail(t, v)
	}
	if len(want) == 0 || !rapid.Bool().Draw(t, "take_job") {
		return
	}
	job := want[rapid.IntRange(0, len(want)-1).Draw(t, "job_index")]
	take := prebuilds.UpdateJobParams{BuildID: job.BuildID, Status: prebuilds.JobRunning, Now: m.now()}
	m.both(t, "UpdateJob "+m.key(job.BuildID)+" → running (take the polled job)", func(s Store) error { _, err := s.UpdateJob(m.ctx, take); return err })
}

func (m *machine) pickPreset(t *rapid.T) prebuilds.Preset {
	if len(m.world.Presets) == 0 {
		t.Skip("no preset yet")
	}
	return m.world.Presets[rapid.IntRange(0, len(m.world.Presets)-1).Draw(t, "preset_index")]
}

// directResult compares the result of a direct write with the model's.
func (m *machine) directResult(t *rapid.T, what string, want, got any) {
	if d := m.names().diff(want, got); d != "" {
		v := newVerdict("A direct store write must return exactly what the model returns (docs/spec.md).", scenario.Here(0))
		v.diff(what+" (-model +store)", d)
		m.fail(t, v)
	}
}

func (m *machine) directCreate(t *rapid.T) {
	pr := m.pickPreset(t)
	p := prebuilds.CreatePrebuildsParams{PresetID: pr.ID, TemplateVersionID: pr.TemplateVersionID, Now: m.now()}
	if len(m.versions) > 0 && rapid.IntRange(0, 3).Draw(t, "other_version") == 0 {
		p.TemplateVersionID = id(rapid.SampledFrom(m.versions).Draw(t, "version"))
	}
	var keys []string
	for range rapid.IntRange(0, 2).Draw(t, "count") {
		key := m.fresh("d")
		keys = append(keys, key)
		p.Instances = append(p.Instances, prebuilds.NewPrebuild{InstanceID: id(key), BuildID: buildID(key, 1), Name: key})
	}
	if len(p.Instances) > 0 && len(m.world.Instances) > 0 && rapid.IntRange(0, 5).Draw(t, "existing_id") == 0 {
		p.Instances[0].InstanceID = m.pickInstance(t)
		keys[0] = m.key(p.Instances[0].InstanceID) + " (existing)"
	}
	var got, want []prebuilds.Job
	l := m.names()
	what := fmt.Sprintf("CreatePrebuilds %s on %s: %s", l.key(pr.ID), l.key(p.TemplateVersionID), strings.Join(keys, ", "))
	m.both(t, what, func(s Store) error {
		jobs, err := s.CreatePrebuilds(m.ctx, p)
		if s == Store(m.mod) {
			want = jobs
		} else {
			got = jobs
		}
		return err
	})
	m.directResult(t, what+": jobs", want, got)
}

func (m *machine) directDelete(t *rapid.T) {
	iid := m.pickInstance(t)
	builds, _ := m.world.ListBuilds(iid)
	bkey := scenario.BuildKey(m.key(iid), len(builds)+1)
	m.labels.add(bkey)
	p := prebuilds.DeletePrebuildParams{InstanceID: iid, BuildID: id(bkey), Now: m.now()}
	var got, want prebuilds.Job
	what := "DeletePrebuild " + m.key(iid) + " (build " + bkey + ")"
	m.both(t, what, func(s Store) error {
		job, err := s.DeletePrebuild(m.ctx, p)
		if s == Store(m.mod) {
			want = job
		} else {
			got = job
		}
		return err
	})
	m.directResult(t, what+": job", want, got)
}

func (m *machine) directCancel(t *rapid.T) {
	p := prebuilds.CancelPendingParams{PresetID: m.pickPreset(t).ID, Now: m.now()}
	var got, want []uuid.UUID
	what := "CancelPending " + m.key(p.PresetID)
	m.both(t, what, func(s Store) error {
		ids, err := s.CancelPending(m.ctx, p)
		if s == Store(m.mod) {
			want = ids
		} else {
			got = ids
		}
		return err
	})
	m.directResult(t, what+": canceled", want, got)
}

var statuses = []prebuilds.PresetStatus{prebuilds.PresetHealthy, prebuilds.PresetHardLimited, prebuilds.PresetValidationFailed}

func (m *machine) directSetStatus(t *rapid.T) {
	pid := m.pickPreset(t).ID
	from, to := rapid.SampledFrom(statuses).Draw(t, "from"), rapid.SampledFrom(statuses).Draw(t, "to")
	var got, want bool
	what := fmt.Sprintf("SetPresetStatus %s %s→%s", m.key(pid), from, to)
	m.both(t, what, func(s Store) error {
		changed, err := s.SetPresetStatus(m.ctx, pid, from, to)
		if s == Store(m.mod) {
			want = changed
		} else {
			got = changed
		}
		return err
	})
	m.directResult(t, what+": changed", want, got)
}

// directFailStuck fails a build as stuck, as a replica whose snapshot went
// stale would: any build, a cut-off around its creation.
func (m *machine) directFailStuck(t *rapid.T) {
	if len(m.world.Builds) == 0 {
		t.Skip("no build")
	}
	b := m.world.Builds[rapid.IntRange(0, len(m.world.Builds)-1).Draw(t, "build_index")]
	p := prebuilds.FailStuckBuildParams{
		BuildID:     b.ID,
		StuckBefore: b.CreatedAt.Add(rapid.SampledFrom([]time.Duration{-time.Microsecond, 0, time.Microsecond, time.Hour}).Draw(t, "cutoff")),
		Now:         m.now(),
	}
	if rapid.IntRange(0, 11).Draw(t, "missing_build") == 0 {
		p.BuildID = id("missing-build")
	}
	m.both(t, fmt.Sprintf("FailStuckBuild %s (%s %s), stuck before %s", m.key(p.BuildID), b.Transition, b.JobStatus, offset(epoch, p.StuckBefore)),
		func(s Store) error { return s.FailStuckBuild(m.ctx, p) })
}

// reconcile runs the real Reconciler on the store; its writes must be the
// model's plan at this instant, and are applied to the model.
func (m *machine) reconcile(t *rapid.T) {
	now := prebuilds.Micro(m.now())
	params := m.params()
	want := m.world.PlanAll(now, m.cfg.PlanConfig(), params)
	m.step("Reconcile at %s", m.at())
	v := newVerdict("A reconciliation pass must write exactly the model's plan, and every write must return what the model returns.", defined())
	reconcilePass(m.ctx, v, m.clock, m.store, m.world, m.cfg, want, passOptions{
		maxConcurrency: 1,
		newID:          func() uuid.UUID { return id(m.fresh("r")) },
		labels:         m.labels,
	})
	if v.failed() {
		m.fail(t, v)
	}
}

// stateMachine: random operations, including passes of the real
// Reconciler, on the store and the model; after every step the snapshots
// must be equal.
func (s *suite) stateMachine(t *testing.T) {
	s.rapidCheck(t, func(rt *rapid.T, log *runLog) {
		m := s.newMachine(t, rt, log)
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
	s.rapidCheck(t, func(rt *rapid.T, log *runLog) {
		m := s.newMachine(t, rt, log)
		for range rapid.IntRange(1, 3).Draw(rt, "initial_presets") {
			m.setup(rt)
		}
		a := m.actions(false)
		a[""] = m.checkRandomParams
		rt.Repeat(a)
	})
}

// rapidChecks resolves the number of randomised checks: an explicit
// -rapid.checks wins, then Harness.StateMachineChecks, then the flag's
// default.
func (s *suite) rapidChecks() (n int, explicit bool) {
	f := flag.Lookup("rapid.checks")
	def := 100
	if f != nil {
		if v, err := strconv.Atoi(f.Value.String()); err == nil {
			def = v
		}
		flag.Visit(func(g *flag.Flag) {
			if g.Name == "rapid.checks" {
				explicit = true
			}
		})
	}
	if explicit || s.h.StateMachineChecks <= 0 {
		return def, true
	}
	return s.h.StateMachineChecks, false
}

// rapidCheck runs prop with rapid.Check, honouring
// Harness.StateMachineChecks unless -rapid.checks was given: rapid runs its
// flag's number of checks per call, so the suite makes as many calls as
// needed and turns the checks beyond the quota of a call into no-ops (until
// a failure is seen, so that shrinking and fail-file replay run prop for
// real). A failure is reported by machineReport, from the log of the last
// run: rapid's last run is the shrunk failing one.
func (s *suite) rapidCheck(t *testing.T, prop func(*rapid.T, *runLog)) {
	var last *runLog
	run := func(rt *rapid.T) {
		last = &runLog{}
		prop(rt, last)
	}
	rtb := &rapidTB{T: t}
	n, useFlag := s.rapidChecks()
	if useFlag {
		rapid.Check(rtb, run)
	} else {
		per := 100
		if f := flag.Lookup("rapid.checks"); f != nil {
			if v, err := strconv.Atoi(f.Value.String()); err == nil && v > 0 {
				per = v
			}
		}
		if testing.Short() {
			per = max(per/5, 1)
		}
		if testing.Verbose() {
			t.Logf("conformance: %d randomised checks (Harness.StateMachineChecks), run as up to %d per rapid.Check; rapid counts the rest as passed no-ops", n, per)
		}
		for done := 0; done < n && !rtb.failed; {
			quota := min(per, n-done)
			started, failing := 0, false
			rapid.Check(rtb, func(rt *rapid.T) {
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
				run(rt)
				finished = true
			})
			done += quota
		}
	}
	if rtb.failed {
		l := newLabeler()
		if last != nil && last.failure != nil && last.failure.names != nil {
			l = last.failure.names()
		}
		t.Fatalf("%s", l.text(machineReport(last, rtb.messages, s.fixedFailed)))
	}
}

// machineReport renders the failure of a state machine: the verdict of the
// shrunk run, its operations in the vocabulary of keys, and rapid's hint
// on how to rerun it. brief leaves out the operations and the details: the
// fixed cases have failed already, and a random sequence that fails too is
// most likely the same misbehaviour again.
func machineReport(last *runLog, rapidMessages []string, brief bool) string {
	var b strings.Builder
	v := last.failure
	if v == nil {
		// A panic or a failure outside the machine's checks: rapid's own
		// message is all there is.
		v = newVerdict("Every store operation must return (no panic) and the random sequence must run to the end.", defined())
		for _, msg := range rapidMessages {
			v.addf("%s", strings.TrimSuffix(msg, "\nFailed test output:"))
		}
	}
	b.WriteString(v.rule)
	b.WriteString("\ncase: ")
	b.WriteString(string(v.pos))
	if len(v.objects) > 0 {
		b.WriteString("\nobjects: " + strings.Join(v.objects, ", "))
	}
	if last != nil && brief {
		fmt.Fprintf(&b, "\nshrunk to %d operations, not shown: cases above already fail; rerun this one alone to see them", len(last.steps))
	} else if last != nil {
		inert := 0
		for _, s := range last.steps {
			if s.inert {
				inert++
			}
		}
		fmt.Fprintf(&b, "\nshrunk operation sequence (%d operations; the last one failed", len(last.steps))
		if inert > 0 {
			fmt.Fprintf(&b, "; %d that changed nothing, refused alike or read-only, are left out", inert)
		}
		b.WriteString("):")
		for i, s := range last.steps {
			if !s.inert || i == len(last.steps)-1 {
				fmt.Fprintf(&b, "\n  %2d. %s", i+1, s.what)
			}
		}
	}
	if !brief {
		for _, l := range slices.Concat(v.notes, v.lines) {
			b.WriteString("\n" + l)
		}
	}
	for _, msg := range rapidMessages {
		if i := strings.Index(msg, "To reproduce, specify "); i >= 0 {
			line := msg[i+len("To reproduce, specify "):]
			if j := strings.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			b.WriteString("\nrerun with: go test " + line)
			break
		}
	}
	return b.String()
}

// rapidTB stands between rapid and the subtest. rapid logs every value it
// draws in the shrunk run, then its own summary; the suite keeps these to
// itself and reports once, in its own words (machineReport).
type rapidTB struct {
	*testing.T
	failed   bool
	messages []string
}

var _ rapid.TB = (*rapidTB)(nil)

func (r *rapidTB) Helper()                           {}
func (r *rapidTB) Log(...any)                        {}
func (r *rapidTB) Logf(string, ...any)               {}
func (r *rapidTB) Error(args ...any)                 { r.record(fmt.Sprint(args...)) }
func (r *rapidTB) Errorf(format string, args ...any) { r.record(fmt.Sprintf(format, args...)) }
func (r *rapidTB) Fail()                             { r.failed = true }
func (r *rapidTB) FailNow()                          { r.failed = true }
func (r *rapidTB) Failed() bool                      { return r.failed || r.T.Failed() }

func (r *rapidTB) record(msg string) {
	r.failed = true
	r.messages = append(r.messages, msg)
}
