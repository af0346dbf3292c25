package prebuilds_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"pgregory.net/rapid"

	"github.com/prebuildkit/prebuildkit/internal/naive"
	"github.com/prebuildkit/prebuildkit/model"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// propBases are instants near which random worlds live: a Monday, the Los
// Angeles spring-forward and fall-back changes of 2025, and the London one.
var propBases = []time.Time{
	time.Date(2025, time.June, 2, 0, 0, 0, 0, time.UTC),
	time.Date(2025, time.March, 9, 8, 0, 0, 0, time.UTC),
	time.Date(2025, time.November, 2, 7, 30, 0, 0, time.UTC),
	time.Date(2025, time.March, 30, 0, 0, 0, 0, time.UTC),
}

var propZones = []string{"UTC", "America/Los_Angeles", "Asia/Kolkata", "Europe/London", "Australia/Lord_Howe"}

var propCrons = []string{
	"* * * * *", "* 2-4 * * 1", "* 6-8 * * 1", "0-29 * * * *", "* 9-16 * * 1-5", "30 1 * * *",
	"* 1 * * *", "* 2 * * 0", "*/15 * * * *", "0 0 1 * 1", "* * 2,9 * *", "* * * 3,11 0", "59 * * * *",
	"* 0-8 * * 6,0", "1,31,59 8-10 * * *", "* * 9 * 1", "* * 1 * 0", "* * 3,30 * 6",
}

// worldGen builds a random world through model operations and remembers the
// instants worth planning at.
type worldGen struct {
	t        *rapid.T
	w        *model.World
	base     time.Time
	n        int // ID counter
	presets  []prebuilds.Preset
	versions map[uuid.UUID][]uuid.UUID // template → versions
	times    []time.Time               // interesting instants
}

func (g *worldGen) id(kind string) uuid.UUID {
	g.n++
	return uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "%s-%d", kind, g.n))
}

func (g *worldGen) must(err error, what string) {
	if err != nil {
		g.t.Fatalf("%s: %v", what, err)
	}
}

// instant draws a time on a coarse grid near base, so that ties happen,
// optionally nudged by a microsecond.
func (g *worldGen) instant(label string) time.Time {
	step := rapid.SampledFrom([]time.Duration{time.Second, 30 * time.Second, 5 * time.Minute}).Draw(g.t, label+"_step")
	n := rapid.IntRange(0, 40).Draw(g.t, label+"_n")
	nudge := rapid.SampledFrom([]time.Duration{0, 0, 0, time.Microsecond, -time.Microsecond}).Draw(g.t, label+"_nudge")
	at := g.base.Add(time.Duration(n)*step + nudge)
	g.times = append(g.times, at)
	return at
}

func (g *worldGen) preset(version uuid.UUID, name string) {
	t := g.t
	p := prebuilds.Preset{ID: g.id("preset"), TemplateVersionID: version, Name: name,
		Parameters: map[string]string{"size": name}}
	if rapid.IntRange(0, 4).Draw(t, "desired_nil") > 0 {
		d := rapid.IntRange(0, 4).Draw(t, "desired")
		p.Desired = &d
	}
	p.TTL = rapid.SampledFrom([]time.Duration{0, 0, time.Minute, 10 * time.Minute, time.Hour}).Draw(t, "ttl")
	if p.Desired != nil && rapid.Bool().Draw(t, "has_schedules") {
		p.Timezone = rapid.SampledFrom(propZones).Draw(t, "tz")
		for i := range rapid.IntRange(1, 3).Draw(t, "n_schedules") {
			p.Schedules = append(p.Schedules, prebuilds.Schedule{
				Cron:      rapid.SampledFrom(propCrons).Draw(t, fmt.Sprintf("cron%d", i)),
				Instances: rapid.IntRange(0, 5).Draw(t, fmt.Sprintf("instances%d", i)),
			})
		}
	}
	g.must(g.w.UpsertPreset(p), "upsert preset")
	g.presets = append(g.presets, p)
}

// instance creates an instance with a random build history.
func (g *worldGen) instance() {
	t := g.t
	p := rapid.SampledFrom(g.presets).Draw(t, "inst_preset")
	owner := prebuilds.SystemOwner
	if rapid.IntRange(0, 7).Draw(t, "user_owned") == 0 {
		owner = uuid.NewSHA1(uuid.NameSpaceOID, []byte("user"))
	}
	var tmpl uuid.UUID
	for _, v := range g.w.Versions {
		if v.ID == p.TemplateVersionID {
			tmpl = v.TemplateID
		}
	}
	instID := g.id("instance")
	at := g.instant("created")
	g.must(g.w.CreateInstance(prebuilds.CreateInstanceParams{
		InstanceID: instID, OwnerID: owner, TemplateID: tmpl, Name: "i", BuildID: g.id("build"),
		TemplateVersionID: p.TemplateVersionID, PresetID: p.ID, Transition: prebuilds.TransitionStart, Now: at,
	}), "create instance")
	builds := rapid.IntRange(1, 4).Draw(t, "n_builds")
	for b := 1; b <= builds; b++ {
		last := b == builds
		statuses := []prebuilds.JobStatus{prebuilds.JobSucceeded, prebuilds.JobSucceeded, prebuilds.JobFailed, prebuilds.JobCanceled}
		if last {
			statuses = append(statuses, prebuilds.JobPending, prebuilds.JobRunning, prebuilds.JobCanceling, prebuilds.JobFailed, prebuilds.JobFailed, prebuilds.JobFailed)
		}
		status := rapid.SampledFrom(statuses).Draw(t, "status")
		bs, err := g.w.ListBuilds(instID)
		g.must(err, "list builds")
		cur := bs[len(bs)-1]
		if status != prebuilds.JobPending {
			kind := prebuilds.FailureNone
			if status == prebuilds.JobFailed {
				kind = rapid.SampledFrom([]prebuilds.FailureKind{"", "", prebuilds.FailureTransient, prebuilds.FailureTransient, prebuilds.FailureTransient, prebuilds.FailureValidation}).Draw(t, "kind")
			}
			// Builds complete some time after they start, so that
			// completion order can differ from creation order.
			done := cur.CreatedAt.Add(rapid.SampledFrom([]time.Duration{0, time.Microsecond, 30 * time.Second, 5 * time.Minute, 20 * time.Minute}).Draw(t, "duration"))
			_, err := g.w.UpdateJob(prebuilds.UpdateJobParams{BuildID: cur.ID, Status: status, FailureKind: kind, Now: done})
			g.must(err, "update job")
			g.times = append(g.times, done)
		}
		if last {
			break
		}
		next := prebuilds.StartBuildParams{
			InstanceID: instID, BuildID: g.id("build"),
			TemplateVersionID: rapid.SampledFrom(g.versions[tmpl]).Draw(t, "build_version"),
			Transition:        rapid.SampledFrom([]prebuilds.Transition{prebuilds.TransitionStart, prebuilds.TransitionStart, prebuilds.TransitionStop, prebuilds.TransitionDelete}).Draw(t, "transition"),
			Now:               cur.CreatedAt.Add(rapid.SampledFrom([]time.Duration{0, time.Microsecond, 30 * time.Second, 5 * time.Minute}).Draw(t, "gap")),
		}
		if next.Transition == prebuilds.TransitionStart {
			// A build's preset must be one of the build's version
			// (docs/spec.md, "Store operations"), so a restart on a new version can
			// move the instance to another preset.
			var onVersion []prebuilds.Preset
			for _, q := range g.presets {
				if q.TemplateVersionID == next.TemplateVersionID {
					onVersion = append(onVersion, q)
				}
			}
			if len(onVersion) > 0 && rapid.IntRange(0, 2).Draw(t, "build_preset") > 0 {
				next.PresetID = rapid.SampledFrom(onVersion).Draw(t, "version_preset").ID
			}
		}
		err = g.w.StartBuild(next)
		if errors.Is(err, prebuilds.ErrConflict) { // a succeeded delete marked it deleted
			break
		}
		g.must(err, "start build")
		g.times = append(g.times, next.Now)
	}
	if rapid.Bool().Draw(t, "ready") {
		g.must(g.w.SetReady(instID, true), "set ready")
	}
}

func genWorld(t *rapid.T) *worldGen {
	g := &worldGen{t: t, w: &model.World{}, versions: map[uuid.UUID][]uuid.UUID{}}
	g.base = rapid.SampledFrom(propBases).Draw(t, "base")
	for ti := range rapid.IntRange(1, 3).Draw(t, "n_templates") {
		tmpl := g.id("template")
		g.must(g.w.CreateTemplate(prebuilds.Template{ID: tmpl, Name: fmt.Sprintf("t%d", ti), OrganizationID: g.id("org"), OrganizationName: "org"}), "create template")
		for range rapid.SampledFrom([]int{1, 1, 1, 2, 3}).Draw(t, "n_versions") {
			v := g.id("version")
			g.must(g.w.CreateTemplateVersion(prebuilds.TemplateVersion{ID: v, TemplateID: tmpl, Name: "v", CreatedAt: g.base}), "create version")
			g.versions[tmpl] = append(g.versions[tmpl], v)
			for pi := range rapid.IntRange(0, 3).Draw(t, "n_presets") {
				g.preset(v, fmt.Sprintf("p%d", pi))
			}
		}
		if rapid.IntRange(0, 7).Draw(t, "no_active") > 0 {
			g.must(g.w.SetActiveVersion(tmpl, rapid.SampledFrom(g.versions[tmpl]).Draw(t, "active")), "activate")
		}
		if rapid.IntRange(0, 7).Draw(t, "deprecate") == 0 {
			g.must(g.w.SetTemplateDeprecated(tmpl, true), "deprecate")
		}
		if rapid.IntRange(0, 7).Draw(t, "delete") == 0 {
			g.must(g.w.DeleteTemplate(tmpl), "delete template")
		}
	}
	if len(g.presets) == 0 {
		return g
	}
	for range rapid.IntRange(0, 25).Draw(t, "n_instances") {
		g.instance()
	}
	// Later events: claims, admin removals, invalidations, resets, statuses,
	// version switches.
	for range rapid.IntRange(0, 8).Draw(t, "n_events") {
		p := rapid.SampledFrom(g.presets).Draw(t, "event_preset")
		switch rapid.IntRange(0, 6).Draw(t, "event") {
		case 0:
			_, err := g.w.Claim(prebuilds.ClaimParams{PresetID: p.ID, Owner: g.id("claimant"), Now: g.instant("claim")})
			if err != nil && !errors.Is(err, prebuilds.ErrNoClaimablePrebuild) {
				t.Fatalf("claim: %v", err)
			}
		case 1:
			if len(g.w.Instances) > 0 {
				g.must(g.w.RemoveInstance(rapid.SampledFrom(g.w.Instances).Draw(t, "remove").ID), "remove")
			}
		case 2:
			g.must(g.w.InvalidatePreset(p.ID, g.instant("invalidate")), "invalidate")
		case 3:
			g.must(g.w.ResetPreset(p.ID, g.instant("reset")), "reset")
		case 4:
			to := rapid.SampledFrom([]prebuilds.PresetStatus{prebuilds.PresetHardLimited, prebuilds.PresetValidationFailed}).Draw(t, "status_to")
			_, err := g.w.SetPresetStatus(p.ID, prebuilds.PresetHealthy, to)
			g.must(err, "set status")
		case 5:
			for _, v := range g.w.Versions {
				if v.ID == p.TemplateVersionID {
					err := g.w.SetActiveVersion(v.TemplateID, v.ID)
					if err != nil && !errors.Is(err, prebuilds.ErrConflict) { // deleted template
						t.Fatalf("activate: %v", err)
					}
				}
			}
		case 6:
			// Stored data that bypassed validation.
			for i := range g.w.Presets {
				if g.w.Presets[i].ID == p.ID && len(g.w.Presets[i].Schedules) > 0 {
					if rapid.Bool().Draw(t, "bad_tz") {
						g.w.Presets[i].Timezone = "Nowhere/Atlantis"
					} else {
						g.w.Presets[i].Schedules[0].Cron = "61 * * * *"
					}
				}
			}
		}
	}
	g.must(g.w.SetPaused(rapid.IntRange(0, 9).Draw(t, "paused") == 0), "pause")
	return g
}

// drawNow picks the planning instant, often on a boundary: a backoff end,
// a TTL end, a lookback edge or a minute edge, give or take a microsecond.
func (g *worldGen) drawNow(cfg prebuilds.PlanConfig, lookback time.Duration) time.Time {
	t := g.t
	nudge := rapid.SampledFrom([]time.Duration{-time.Microsecond, 0, time.Microsecond}).Draw(t, "now_nudge")
	var anchors []time.Time
	for _, b := range g.w.Builds {
		anchors = append(anchors, b.CreatedAt)
	}
	if len(anchors) == 0 {
		anchors = append(anchors, g.base)
	}
	anchors = append(anchors, g.times...)
	var failures, completions []time.Time
	for _, b := range g.w.Builds {
		if b.JobStatus == prebuilds.JobFailed {
			failures = append(failures, b.CreatedAt)
			completions = append(completions, b.CompletedAt)
		}
	}
	a := rapid.SampledFrom(anchors).Draw(t, "now_anchor")
	switch rapid.IntRange(-2, 4).Draw(t, "now_kind") {
	case -2: // the end of an adaptive backoff: a failure's completion plus interval × 2^k or the cap
		if len(completions) == 0 {
			return prebuilds.Micro(a.Add(cfg.BackoffInterval + nudge))
		}
		wait := cfg.BackoffMax
		if k := rapid.IntRange(0, 5).Draw(t, "now_doublings"); k < 5 {
			wait = min(cfg.BackoffInterval<<k, cfg.BackoffMax)
		}
		return prebuilds.Micro(rapid.SampledFrom(completions).Draw(t, "now_completion").Add(wait + nudge))
	case -1, 0: // the end of a backoff window the model reports near a failure
		if len(failures) == 0 {
			return prebuilds.Micro(a.Add(cfg.BackoffInterval + nudge))
		}
		near := rapid.SampledFrom(failures).Draw(t, "now_failure").Add(cfg.BackoffInterval)
		rows := g.w.Snapshot(prebuilds.SnapshotParams{Now: near, Lookback: near.Add(-lookback)}).Backoffs
		if len(rows) == 0 {
			return prebuilds.Micro(near.Add(nudge))
		}
		row := rapid.SampledFrom(rows).Draw(t, "now_backoff_row")
		return prebuilds.Micro(row.LastBuildAt.Add(time.Duration(row.NumFailed)*cfg.BackoffInterval + nudge))
	case 1: // the TTL end of a running prebuild
		running := g.w.Snapshot(prebuilds.SnapshotParams{Now: a}).Running
		if len(running) == 0 {
			return prebuilds.Micro(a.Add(rapid.SampledFrom(g.presets).Draw(t, "now_ttl_preset").TTL + nudge))
		}
		r := rapid.SampledFrom(running).Draw(t, "now_ttl_running")
		p, err := g.w.GetPreset(r.PresetID)
		g.must(err, "get preset")
		return prebuilds.Micro(r.CreatedAt.Add(p.TTL + nudge))
	case 2: // lookback edge
		return prebuilds.Micro(a.Add(lookback + nudge))
	case 3: // minute edge
		return prebuilds.Micro(a.Truncate(time.Minute).Add(time.Duration(rapid.IntRange(0, 120).Draw(t, "now_minutes"))*time.Minute + nudge))
	default:
		return prebuilds.Micro(a.Add(time.Duration(rapid.IntRange(0, 7200).Draw(t, "now_seconds"))*time.Second + nudge))
	}
}

// TestPlanPresetMatchesModel: for random worlds, the pure planner fed the
// model's snapshot plans exactly what the model computes from the world.
func TestPlanPresetMatchesModel(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		g := genWorld(t)
		cfg := prebuilds.PlanConfig{
			BackoffInterval: rapid.SampledFrom([]time.Duration{0, time.Second, 30 * time.Second, time.Minute, 5 * time.Minute, time.Hour}).Draw(t, "interval"),
			Policy:          rapid.SampledFrom([]prebuilds.FailurePolicy{"", prebuilds.PolicyCoder, prebuilds.PolicyAdaptive, prebuilds.PolicyAdaptive}).Draw(t, "policy"),
			BackoffMax:      rapid.SampledFrom([]time.Duration{time.Second, 10 * time.Minute, time.Hour}).Draw(t, "backoff_max"),
			Canary:          rapid.IntRange(0, 3).Draw(t, "canary") > 0,
		}
		lookback := rapid.SampledFrom([]time.Duration{time.Minute, 10 * time.Minute, time.Hour, 6 * time.Hour}).Draw(t, "lookback")
		k := prebuilds.HardLimit(rapid.IntRange(-1, 4).Draw(t, "k"))
		timeout := rapid.SampledFrom([]time.Duration{0, 0, time.Minute, 10 * time.Minute, time.Hour}).Draw(t, "build_timeout")
		// Several instants per world: each draw favours a boundary.
		for range 12 {
			now := g.base
			if len(g.presets) > 0 {
				now = g.drawNow(cfg, lookback)
			}
			params := prebuilds.SnapshotParams{Now: now, Lookback: now.Add(-lookback), HardLimit: k, Policy: cfg.Policy}
			if timeout > 0 {
				params.StuckBefore = now.Add(-timeout)
			}
			snap := g.w.Snapshot(params)
			views := snap.Index()
			want := g.w.PlanAll(now, cfg, params)
			if len(views) != len(want) {
				t.Fatalf("index has %d views, model plans %d presets", len(views), len(want))
			}
			for i, v := range views {
				got := prebuilds.PlanPreset(v, now, cfg)
				if diff := cmp.Diff(want[i], got, cmpopts.EquateEmpty()); diff != "" {
					t.Fatalf("preset %s at %s: PlanPreset (-model +planner):\n%s\nview: %+v", v.Preset.ID, now, diff, v)
				}
			}
			// With a create budget, PlanAll shares it as the model does.
			budgeted := cfg
			budgeted.MaxCreatesPerPass = rapid.IntRange(1, 6).Draw(t, "budget")
			if diff := cmp.Diff(g.w.PlanAll(now, budgeted, params), prebuilds.PlanAll(snap, budgeted).Plans, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("at %s with budget %d: PlanAll (-model +planner):\n%s", now, budgeted.MaxCreatesPerPass, diff)
			}
		}
	})
}

// TestIndexMatchesNaiveFilter: Index agrees with a per-preset filter on
// random snapshots (rows of unknown presets, repeated counts, ties) and
// leaves the snapshot untouched.
func TestIndexMatchesNaiveFilter(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		pool := make([]uuid.UUID, 8)
		for i := range pool {
			pool[i] = uuid.NewSHA1(uuid.NameSpaceOID, []byte{byte(i)})
		}
		base := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
		at := func(label string) time.Time {
			return base.Add(time.Duration(rapid.IntRange(0, 3).Draw(t, label)) * time.Microsecond)
		}
		s := &prebuilds.GlobalSnapshot{Now: base, Paused: rapid.Bool().Draw(t, "paused")}
		presetIDs := rapid.SliceOfNDistinct(rapid.SampledFrom(pool), 0, 6, func(id uuid.UUID) uuid.UUID { return id }).Draw(t, "presets")
		for _, id := range presetIDs {
			d := rapid.IntRange(0, 3).Draw(t, "desired")
			s.Presets = append(s.Presets, prebuilds.PresetRow{Preset: prebuilds.Preset{ID: id, Name: id.String(), Desired: &d}})
		}
		for i := range rapid.IntRange(0, 12).Draw(t, "n_running") {
			s.Running = append(s.Running, prebuilds.RunningPrebuild{
				InstanceID: uuid.NewSHA1(uuid.NameSpaceURL, []byte{byte(i)}), // instances are unique
				PresetID:   rapid.SampledFrom(pool).Draw(t, "running_preset"),
				CreatedAt:  at("created"),
				Ready:      rapid.Bool().Draw(t, "ready"),
			})
		}
		for range rapid.IntRange(0, 8).Draw(t, "n_in_progress") {
			s.InProgress = append(s.InProgress, prebuilds.InProgressCount{
				PresetID:   rapid.SampledFrom(pool).Draw(t, "ip_preset"),
				Transition: rapid.SampledFrom([]prebuilds.Transition{prebuilds.TransitionStart, prebuilds.TransitionStop, prebuilds.TransitionDelete}).Draw(t, "ip_transition"),
				Count:      rapid.IntRange(1, 3).Draw(t, "ip_count"),
			})
		}
		for range rapid.IntRange(0, 4).Draw(t, "n_pending") {
			s.PendingInactive = append(s.PendingInactive, prebuilds.PendingInactiveCount{
				PresetID: rapid.SampledFrom(pool).Draw(t, "pi_preset"), Count: rapid.IntRange(1, 3).Draw(t, "pi_count"),
			})
		}
		for _, id := range rapid.SliceOfNDistinct(rapid.SampledFrom(pool), 0, 4, func(id uuid.UUID) uuid.UUID { return id }).Draw(t, "backoffs") {
			s.Backoffs = append(s.Backoffs, prebuilds.BackoffRow{PresetID: id, NumFailed: rapid.IntRange(1, 3).Draw(t, "num_failed"), LastBuildAt: at("last")})
		}
		s.HardLimited = rapid.SliceOfN(rapid.SampledFrom(pool), 0, 4).Draw(t, "hard_limited")
		for _, id := range rapid.SliceOfNDistinct(rapid.SampledFrom(pool), 0, 4, func(id uuid.UUID) uuid.UUID { return id }).Draw(t, "counters") {
			s.Counters = append(s.Counters, prebuilds.PresetCounters{PresetID: id, Created: rapid.IntRange(1, 5).Draw(t, "created")})
		}

		before := cloneSnapshot(s)
		got := s.Index()
		if diff := cmp.Diff(naive.Index(s), got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("Index (-naive +got):\n%s", diff)
		}
		if diff := cmp.Diff(before, s); diff != "" {
			t.Fatalf("Index modified the snapshot (-before +after):\n%s", diff)
		}
	})
}

func cloneSnapshot(s *prebuilds.GlobalSnapshot) *prebuilds.GlobalSnapshot {
	c := *s
	c.Presets = slices.Clone(s.Presets)
	c.Running = slices.Clone(s.Running)
	c.InProgress = slices.Clone(s.InProgress)
	c.PendingInactive = slices.Clone(s.PendingInactive)
	c.Backoffs = slices.Clone(s.Backoffs)
	c.HardLimited = slices.Clone(s.HardLimited)
	c.Counters = slices.Clone(s.Counters)
	return &c
}
