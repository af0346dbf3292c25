package prebuilds

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const metricsNamespace = "prebuilds"

var presetLabels = []string{"organization", "template", "preset"}

// metrics holds the Reconciler's Prometheus metrics. Per-preset values are
// computed from the last snapshot this replica read and exported at scrape
// time by a custom collector, so a preset that disappears stops being
// exported; the created/failed/claimed counters come from the store, so
// they do not depend on which replica created or claimed. Only the replica
// that held the lock in its last pass exports per-preset series (the others
// clear theirs), so summing across replicas counts each preset once; when
// the lock moves, the series move with it.
type metrics struct {
	jobsDropped prometheus.Counter
	conflicts   prometheus.Counter
	errors      prometheus.Counter
	clamped     prometheus.Counter
	duration    prometheus.Histogram
	paused      prometheus.Gauge
	lastSuccess prometheus.Gauge

	presets *presetCollector
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		jobsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "jobs_dropped_total",
			Help: "Jobs not handed to the JobSink because it was full.",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "conflicts_total",
			Help: "Conditional writes that lost a race (e.g. a prebuild claimed before its delete).",
		}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "preset_errors_total",
			Help: "Presets whose plan failed to execute in a pass.",
		}),
		clamped: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "clamped_total",
			Help: "Create actions clamped to the desired count before execution.",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace, Name: "reconciliation_duration_seconds",
			Help:    "Duration of reconciliation passes that acquired the lock.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}),
		paused: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "paused",
			Help: "1 when reconciliation is paused, as of the last pass.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace, Name: "last_successful_reconciliation_timestamp_seconds",
			Help: "Unix time of the last pass that held the lock and completed without a pass-level error (lock or snapshot); per-preset failures are counted in prebuilds_preset_errors_total instead.",
		}),
		presets: newPresetCollector(),
	}
	if reg != nil {
		reg.MustRegister(m.jobsDropped, m.conflicts, m.errors, m.clamped, m.duration, m.paused, m.lastSuccess, m.presets)
	}
	return m
}

// presetValues are the per-preset figures of one pass.
type presetValues struct {
	labels                              [3]string
	desired, running, eligible, expired int
	hardLimited, validationFailed       bool
	created, failed, claimed            int
}

type presetCollector struct {
	mu   sync.Mutex
	rows []presetValues

	desired, running, eligible, expired, hardLimited, validationFailed *prometheus.Desc
	created, failed, claimed                                           *prometheus.Desc
}

func newPresetCollector() *presetCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, "", name), help, presetLabels, nil)
	}
	return &presetCollector{
		desired:          d("desired", "Prebuilds the preset wants now (schedule applied)."),
		running:          d("running", "Running prebuilds of the preset, valid or expired."),
		eligible:         d("eligible", "Running prebuilds that are ready and not expired: claimable."),
		expired:          d("expired", "Running prebuilds that expired (TTL or invalidation)."),
		hardLimited:      d("hard_limited", "1 when the preset is hard-limited."),
		validationFailed: d("validation_failed", "1 when the preset's builds failed validation."),
		created:          d("created_total", "Prebuilds created for the preset (from the store)."),
		failed:           d("failed_total", "Prebuild first builds that failed (from the store)."),
		claimed:          d("claimed_total", "Prebuilds claimed by users (from the store)."),
	}
}

func (c *presetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.desired, c.running, c.eligible, c.expired, c.hardLimited, c.validationFailed, c.created, c.failed, c.claimed} {
		ch <- d
	}
}

func (c *presetCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	rows := c.rows
	c.mu.Unlock()
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	// NewConstMetric, not MustNewConstMetric: a label value that is not
	// valid UTF-8 (a name from a store that does not validate) must become
	// one invalid metric in the scrape, never a panic in the registry.
	emit := func(d *prometheus.Desc, t prometheus.ValueType, v float64, l []string) {
		m, err := prometheus.NewConstMetric(d, t, v, l...)
		if err != nil {
			m = prometheus.NewInvalidMetric(d, err)
		}
		ch <- m
	}
	for _, r := range rows {
		l := r.labels[:]
		emit(c.desired, prometheus.GaugeValue, float64(r.desired), l)
		emit(c.running, prometheus.GaugeValue, float64(r.running), l)
		emit(c.eligible, prometheus.GaugeValue, float64(r.eligible), l)
		emit(c.expired, prometheus.GaugeValue, float64(r.expired), l)
		emit(c.hardLimited, prometheus.GaugeValue, b(r.hardLimited), l)
		emit(c.validationFailed, prometheus.GaugeValue, b(r.validationFailed), l)
		emit(c.created, prometheus.CounterValue, float64(r.created), l)
		emit(c.failed, prometheus.CounterValue, float64(r.failed), l)
		emit(c.claimed, prometheus.CounterValue, float64(r.claimed), l)
	}
}

// clear drops every per-preset row: a replica that did not hold the lock
// this pass stops exporting them, so only the replica that last reconciled
// exports per-preset series and a sum across replicas counts each preset
// once.
func (c *presetCollector) clear() {
	c.mu.Lock()
	c.rows = nil
	c.mu.Unlock()
}

// update replaces the per-preset rows with those of the last pass. Presets
// sharing labels (same names in several versions) are summed so that the
// exported series stay unique.
func (c *presetCollector) update(views []PresetSnapshot, plans []Plan, now time.Time) {
	index := make(map[[3]string]int, len(views))
	rows := make([]presetValues, 0, len(views))
	for i, v := range views {
		key := [3]string{v.Preset.OrganizationName, v.Preset.TemplateName, v.Preset.Name}
		j, ok := index[key]
		if !ok {
			j = len(rows)
			index[key] = j
			rows = append(rows, presetValues{labels: key})
		}
		r := &rows[j]
		// Only the active preset's target is desired; inactive presets want 0.
		if v.Preset.Active() {
			r.desired += plans[i].Desired
		}
		for _, p := range v.Running {
			r.running++
			if Expired(v.Preset.Preset, p.CreatedAt, now) {
				r.expired++
			} else if p.Ready {
				r.eligible++
			}
		}
		r.hardLimited = r.hardLimited || v.HardLimited
		r.validationFailed = r.validationFailed || v.Preset.Status == PresetValidationFailed
		r.created += v.Counters.Created
		r.failed += v.Counters.Failed
		r.claimed += v.Counters.Claimed
	}
	c.mu.Lock()
	c.rows = rows
	c.mu.Unlock()
}
