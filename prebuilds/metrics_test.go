package prebuilds

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
)

// gaugeNames and counterNames are the per-preset series of the collector.
var (
	gaugeNames   = []string{"prebuilds_desired", "prebuilds_running", "prebuilds_eligible", "prebuilds_expired", "prebuilds_hard_limited", "prebuilds_validation_failed"}
	counterNames = []string{"prebuilds_created_total", "prebuilds_failed_total", "prebuilds_claimed_total", "prebuilds_claims_missed_total"}
)

// expose renders the per-preset series of a registry in the text format,
// without HELP and TYPE lines, one sample per line, sorted by name.
func expose(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	var b strings.Builder
	for _, f := range families {
		name := f.GetName()
		if !strings.HasPrefix(name, "prebuilds_") || name == "prebuilds_paused" ||
			name == "prebuilds_last_successful_reconciliation_timestamp_seconds" || name == "prebuilds_reconciliation_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			b.WriteString(name + "{" + strings.Join(labels, ",") + "} " + strconv.FormatFloat(v, 'g', -1, 64) + "\n")
		}
	}
	return b.String()
}

// rollout is a template whose version v1 was replaced by v2, each with a
// preset named "p": the roll-out keeps the preset's name, so both presets
// share one label set.
func rollout() (old, cur PresetRow) {
	old, cur = presetRow("p", 2), presetRow("p", 3)
	cur.ID = uuid.NewSHA1(uuid.NameSpaceURL, []byte("p-v2"))
	cur.TemplateVersionID = uuid.NewSHA1(uuid.NameSpaceURL, []byte("v2"))
	cur.ActiveVersionID = cur.TemplateVersionID
	old.ActiveVersionID = cur.TemplateVersionID // v1 is no longer active
	return old, cur
}

func TestMetricsRollOutKeepingName(t *testing.T) {
	t.Parallel()
	old, cur := rollout()
	fs := &fakeStore{snap: GlobalSnapshot{
		Presets: []PresetRow{old, cur},
		Running: []RunningPrebuild{
			// Ready prebuilds of the old preset: Claim refuses them (inactive).
			{InstanceID: uuid.New(), PresetID: old.ID, CreatedAt: t0.Add(-time.Hour), Ready: true},
			{InstanceID: uuid.New(), PresetID: old.ID, CreatedAt: t0.Add(-time.Hour), Ready: true},
			{InstanceID: uuid.New(), PresetID: cur.ID, CreatedAt: t0, Ready: true},
		},
		HardLimited: []uuid.UUID{old.ID}, // the live condition of an inactive preset does not show
		Counters: []PresetCounters{
			{PresetID: old.ID, Created: 10, Failed: 1, Claimed: 6, ClaimsMissed: 2},
			{PresetID: cur.ID, Created: 1, Claimed: 0, ClaimsMissed: 1},
		},
	}}
	reg := prometheus.NewPedanticRegistry()
	r, _, _ := newTestReconciler(t, fs, Config{Registerer: reg})
	_, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	const want = `
# HELP prebuilds_desired Prebuilds the active preset wants now (schedule applied).
# TYPE prebuilds_desired gauge
prebuilds_desired{organization="org",preset="p",template="tmpl"} 3
# HELP prebuilds_eligible Prebuilds of the active preset that Claim would hand out now: running, ready, not expired.
# TYPE prebuilds_eligible gauge
prebuilds_eligible{organization="org",preset="p",template="tmpl"} 1
# HELP prebuilds_running Running prebuilds of the active preset, valid or expired.
# TYPE prebuilds_running gauge
prebuilds_running{organization="org",preset="p",template="tmpl"} 1
# HELP prebuilds_hard_limited 1 when the active preset is hard-limited.
# TYPE prebuilds_hard_limited gauge
prebuilds_hard_limited{organization="org",preset="p",template="tmpl"} 0
# HELP prebuilds_created_total Prebuilds created for the presets of the label set (from the store).
# TYPE prebuilds_created_total counter
prebuilds_created_total{organization="org",preset="p",template="tmpl"} 11
# HELP prebuilds_failed_total Prebuild first builds of the presets of the label set that failed (from the store).
# TYPE prebuilds_failed_total counter
prebuilds_failed_total{organization="org",preset="p",template="tmpl"} 1
# HELP prebuilds_claimed_total Prebuilds of the presets of the label set claimed by users (from the store).
# TYPE prebuilds_claimed_total counter
prebuilds_claimed_total{organization="org",preset="p",template="tmpl"} 6
# HELP prebuilds_claims_missed_total Claims for the presets of the label set that found nothing claimable (from the store).
# TYPE prebuilds_claims_missed_total counter
prebuilds_claims_missed_total{organization="org",preset="p",template="tmpl"} 3
`
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(want),
		"prebuilds_desired", "prebuilds_eligible", "prebuilds_running", "prebuilds_hard_limited",
		"prebuilds_created_total", "prebuilds_failed_total", "prebuilds_claimed_total", "prebuilds_claims_missed_total"))
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
}

func TestMetricsLabelSetWithoutActivePresetExportsNoGauges(t *testing.T) {
	t.Parallel()
	old, _ := rollout() // v2 has no preset named "p"
	fs := &fakeStore{snap: GlobalSnapshot{
		Presets:  []PresetRow{old},
		Running:  []RunningPrebuild{{InstanceID: uuid.New(), PresetID: old.ID, CreatedAt: t0, Ready: true}},
		Counters: []PresetCounters{{PresetID: old.ID, Created: 4}},
	}}
	reg := prometheus.NewPedanticRegistry()
	r, _, _ := newTestReconciler(t, fs, Config{Registerer: reg})
	_, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	got := expose(t, reg)
	for _, g := range gaugeNames {
		require.NotContains(t, got, g+"{", "no gauges without an active preset")
	}
	require.Contains(t, got, `prebuilds_created_total{organization=org,preset=p,template=tmpl} 4`)
}

func TestMetricsDeletedTemplateExportsNothing(t *testing.T) {
	t.Parallel()
	gone, kept := presetRow("gone", 1), presetRow("kept", 1)
	gone.TemplateName = "old-tmpl"
	fs := &fakeStore{snap: GlobalSnapshot{
		Presets:  []PresetRow{gone, kept},
		Counters: []PresetCounters{{PresetID: gone.ID, Created: 5, Claimed: 2}, {PresetID: kept.ID, Created: 1}},
	}}
	reg := prometheus.NewPedanticRegistry()
	r, _, _ := newTestReconciler(t, fs, Config{Registerer: reg})
	_, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	r.TrackResourceReplacement(context.Background(), ReplacementReport{PresetID: gone.ID, InstanceID: uuid.New(), Claimant: uuid.New()})
	require.Contains(t, expose(t, reg), `prebuilds_desired{organization=org,preset=gone,template=old-tmpl} 1`)
	require.Contains(t, expose(t, reg), `prebuilds_resource_replacements_total{organization=org,preset=gone,template=old-tmpl} 1`)

	// The template is deleted: the pass after drops every series of its presets.
	fs.mu.Lock()
	fs.snap.Presets[0].Deleted = true
	fs.mu.Unlock()
	_, err = r.ReconcileAll(context.Background())
	require.NoError(t, err)
	got := expose(t, reg)
	require.NotContains(t, got, "old-tmpl", "no series for a deleted template's presets")
	for _, n := range append(gaugeNames, counterNames...) {
		require.Contains(t, got, n+"{organization=org,preset=kept,template=tmpl}", "the other preset still exports %s", n)
	}
}

func TestMetricsValidationFailureFixedByNewVersion(t *testing.T) {
	t.Parallel()
	old, cur := rollout()
	old.Status = PresetValidationFailed // v1 failed validation; v2 fixed it
	fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{old}}}
	reg := prometheus.NewPedanticRegistry()
	r, _, _ := newTestReconciler(t, fs, Config{Registerer: reg})

	// Before the roll-out, v1 is active and failing.
	fs.mu.Lock()
	fs.snap.Presets[0].ActiveVersionID = old.TemplateVersionID
	fs.mu.Unlock()
	_, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	require.Contains(t, expose(t, reg), `prebuilds_validation_failed{organization=org,preset=p,template=tmpl} 1`)

	fs.mu.Lock()
	fs.snap.Presets = []PresetRow{old, cur}
	fs.mu.Unlock()
	_, err = r.ReconcileAll(context.Background())
	require.NoError(t, err)
	require.Contains(t, expose(t, reg), `prebuilds_validation_failed{organization=org,preset=p,template=tmpl} 0`,
		"the new version's preset is healthy: the old preset's status no longer shows")
}

func TestMetricsEligibleIsWhatClaimHandsOut(t *testing.T) {
	t.Parallel()
	p := presetRow("p", 5)
	p.TTL = time.Hour
	p.InvalidatedAt = t0.Add(-2 * time.Hour)
	fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{p}, Running: []RunningPrebuild{
		{InstanceID: uuid.New(), PresetID: p.ID, CreatedAt: t0.Add(-3 * time.Hour), Ready: true},                // invalidated
		{InstanceID: uuid.New(), PresetID: p.ID, CreatedAt: t0.Add(-time.Hour - time.Microsecond), Ready: true}, // past the TTL
		{InstanceID: uuid.New(), PresetID: p.ID, CreatedAt: t0.Add(-time.Hour), Ready: true},                    // exactly the TTL: valid
		{InstanceID: uuid.New(), PresetID: p.ID, CreatedAt: t0, Ready: false},                                   // not ready
	}}}
	reg := prometheus.NewPedanticRegistry()
	r, _, _ := newTestReconciler(t, fs, Config{Registerer: reg})
	_, err := r.ReconcileAll(context.Background())
	require.NoError(t, err)
	got := expose(t, reg)
	require.Contains(t, got, `prebuilds_eligible{organization=org,preset=p,template=tmpl} 1`)
	require.Contains(t, got, `prebuilds_expired{organization=org,preset=p,template=tmpl} 2`)
	require.Contains(t, got, `prebuilds_running{organization=org,preset=p,template=tmpl} 4`)
}

func TestPlanIsADryRun(t *testing.T) {
	t.Parallel()
	p, q := presetRow("p", 2), presetRow("q", 1)
	fs := &fakeStore{
		snap:     GlobalSnapshot{Presets: []PresetRow{p, q}, HardLimited: []uuid.UUID{q.ID}},
		lockHeld: true, // a pass of another replica is in progress
	}
	reg := prometheus.NewPedanticRegistry()
	r, clk, _ := newTestReconciler(t, fs, Config{Registerer: reg})
	clk.Set(t0.Add(1500 * time.Nanosecond))
	pp, err := r.Plan(context.Background())
	require.NoError(t, err)
	require.Equal(t, t0.Add(time.Microsecond), pp.Now, "planned at the clock's instant, at store precision")
	_, plan, ok := pp.Find(p.ID)
	require.True(t, ok)
	require.Equal(t, 2, plan.Creates())
	_, plan, ok = pp.Find(q.ID)
	require.True(t, ok)
	change, ok := plan.StatusChange()
	require.True(t, ok)
	require.Equal(t, PresetHardLimited, change.To)
	_, _, ok = pp.Find(uuid.New())
	require.False(t, ok)

	require.Empty(t, fs.creates, "a dry run writes nothing")
	require.Empty(t, fs.statuses, "a dry run makes no status transition")
	require.True(t, fs.lockHeld, "the other replica's lock is untouched")
	require.Zero(t, testutil.CollectAndCount(r.metrics.presets), "a dry run exports no per-preset series")
}

func TestTrackResourceReplacementCounts(t *testing.T) {
	t.Parallel()
	p := presetRow("p", 1)
	fs := &fakeStore{snap: GlobalSnapshot{Presets: []PresetRow{p}}, lockHeld: true}
	reg := prometheus.NewPedanticRegistry()
	r, _, _ := newTestReconciler(t, fs, Config{Registerer: reg})
	for range 2 {
		r.TrackResourceReplacement(context.Background(), ReplacementReport{PresetID: p.ID, InstanceID: uuid.New(), Claimant: uuid.New()})
	}
	require.Contains(t, expose(t, reg), `prebuilds_resource_replacements_total{organization=org,preset=p,template=tmpl} 2`,
		"a replica that never held the lock labels the counter from a lock-free snapshot")
	problems, err := testutil.GatherAndLint(reg)
	require.NoError(t, err)
	require.Empty(t, problems)
}
