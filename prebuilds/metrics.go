package prebuilds

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

const metricsNamespace = "prebuilds"

var presetLabels = []string{"organization", "template", "preset"}

// metrics holds the Reconciler's Prometheus metrics. Per-preset values are
// computed from the last pass this replica ran under the lock and exported
// at scrape time by a custom collector; the created, failed, claimed and
// claims-missed counters come from the store, so they do not depend on which
// replica created or claimed. Only the replica that held the lock in its
// last pass exports per-preset series (the others clear theirs), so summing
// across replicas counts each preset once; when the lock moves, the series
// move with it. The exact rules are in docs/spec.md, "Metrics".
type metrics struct {
	jobsDropped  prometheus.Counter
	conflicts    prometheus.Counter
	errors       prometheus.Counter
	clamped      prometheus.Counter
	timedOut     prometheus.Counter
	targeted     prometheus.Counter
	duration     prometheus.Histogram
	paused       prometheus.Gauge
	lastSuccess  prometheus.Gauge
	replacements *prometheus.CounterVec

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
		timedOut: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "stuck_builds_failed_total",
			Help: "Prebuild start builds failed by the Reconciler after Config.BuildTimeout (failure kind timeout).",
		}),
		targeted: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "targeted_passes_total",
			Help: "Targeted passes (over the presets a change feed named) that held the lock.",
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
		replacements: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace, Name: "resource_replacements_total",
			Help: "Claimed prebuilds whose resources had to be replaced, as reported to this replica (sum across replicas for the total).",
		}, presetLabels),
	}
	m.presets = newPresetCollector(m.replacements)
	if reg != nil {
		reg.MustRegister(m.jobsDropped, m.conflicts, m.errors, m.clamped, m.timedOut, m.targeted, m.duration, m.paused, m.lastSuccess, m.replacements, m.presets)
	}
	return m
}

// presetValues are the per-preset figures of one pass, for one label set.
type presetValues struct {
	labels [3]string
	// gauges is true when the label set has an active preset: only then
	// are the gauges exported, and only from active presets.
	gauges                              bool
	desired, running, eligible, expired int
	hardLimited, validationFailed       bool
	created, failed, claimed, missed    int
}

type presetCollector struct {
	mu sync.Mutex
	// rows are the rows of the last pass of each shard this replica holds
	// (shard 0 when unsharded).
	rows map[int][]presetValues
	// replacements is the resource-replacement counter, whose series of
	// deleted templates' presets are removed with the collector's rows.
	replacements *prometheus.CounterVec

	desired, running, eligible, expired, hardLimited, validationFailed *prometheus.Desc
	created, failed, claimed, missed                                   *prometheus.Desc
}

func newPresetCollector(replacements *prometheus.CounterVec) *presetCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(metricsNamespace, "", name), help, presetLabels, nil)
	}
	return &presetCollector{
		replacements:     replacements,
		desired:          d("desired", "Prebuilds the active preset wants now (schedule applied)."),
		running:          d("running", "Running prebuilds of the active preset, valid or expired."),
		eligible:         d("eligible", "Prebuilds of the active preset that Claim would hand out now: running, ready, not expired."),
		expired:          d("expired", "Running prebuilds of the active preset that expired (TTL or invalidation)."),
		hardLimited:      d("hard_limited", "1 when the active preset is hard-limited."),
		validationFailed: d("validation_failed", "1 when the active preset's builds failed validation."),
		created:          d("created_total", "Prebuilds created for the presets of the label set (from the store)."),
		failed:           d("failed_total", "Prebuild first builds of the presets of the label set that failed (from the store)."),
		claimed:          d("claimed_total", "Prebuilds of the presets of the label set claimed by users (from the store)."),
		missed:           d("claims_missed_total", "Claims for the presets of the label set that found nothing claimable (from the store)."),
	}
}

func (c *presetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.desired, c.running, c.eligible, c.expired, c.hardLimited, c.validationFailed, c.created, c.failed, c.claimed, c.missed} {
		ch <- d
	}
}

func (c *presetCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	rows := mergeRows(c.rows)
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
		if r.gauges {
			emit(c.desired, prometheus.GaugeValue, float64(r.desired), l)
			emit(c.running, prometheus.GaugeValue, float64(r.running), l)
			emit(c.eligible, prometheus.GaugeValue, float64(r.eligible), l)
			emit(c.expired, prometheus.GaugeValue, float64(r.expired), l)
			emit(c.hardLimited, prometheus.GaugeValue, b(r.hardLimited), l)
			emit(c.validationFailed, prometheus.GaugeValue, b(r.validationFailed), l)
		}
		emit(c.created, prometheus.CounterValue, float64(r.created), l)
		emit(c.failed, prometheus.CounterValue, float64(r.failed), l)
		emit(c.claimed, prometheus.CounterValue, float64(r.claimed), l)
		emit(c.missed, prometheus.CounterValue, float64(r.missed), l)
	}
}

// mergeRows joins the rows of every shard by label set. Shards split
// presets by template, so a label set is in one shard unless two templates
// of an organisation share a name; then its figures add up.
func mergeRows(shards map[int][]presetValues) []presetValues {
	if len(shards) == 1 {
		for _, rows := range shards {
			return rows
		}
	}
	keys := make([]int, 0, len(shards))
	for k := range shards {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	index := map[[3]string]int{}
	var out []presetValues
	for _, k := range keys {
		for _, r := range shards[k] {
			j, ok := index[r.labels]
			if !ok {
				index[r.labels] = len(out)
				out = append(out, r)
				continue
			}
			m := &out[j]
			m.gauges = m.gauges || r.gauges
			m.desired += r.desired
			m.running += r.running
			m.eligible += r.eligible
			m.expired += r.expired
			m.hardLimited = m.hardLimited || r.hardLimited
			m.validationFailed = m.validationFailed || r.validationFailed
			m.created += r.created
			m.failed += r.failed
			m.claimed += r.claimed
			m.missed += r.missed
		}
	}
	return out
}

// clear drops the per-preset rows of a shard: a replica that did not hold
// its lock this pass stops exporting them, so only the replica that last
// reconciled a shard exports its series and a sum across replicas counts
// each preset once.
func (c *presetCollector) clear(shard int) {
	c.mu.Lock()
	delete(c.rows, shard)
	c.mu.Unlock()
}

// update replaces the per-preset rows with those of a pass. A label set
// (organization, template, preset name) may name several presets: the same
// name in several versions of a template. Presets of deleted templates are
// not exported at all. Gauges come from the active preset of the label set
// only (a label set without one exports no gauges); counters are summed
// over every preset of the label set, so they stay monotone across a
// version switch.
func (c *presetCollector) update(shard int, pp PassPlan) {
	index := make(map[[3]string]int, len(pp.Views))
	rows := make([]presetValues, 0, len(pp.Views))
	deleted := map[[3]string]bool{}
	for i, v := range pp.Views {
		key := [3]string{v.Preset.OrganizationName, v.Preset.TemplateName, v.Preset.Name}
		if v.Preset.Deleted {
			deleted[key] = true
			continue
		}
		j, ok := index[key]
		if !ok {
			j = len(rows)
			index[key] = j
			rows = append(rows, presetValues{labels: key})
		}
		r := &rows[j]
		r.created += v.Counters.Created
		r.failed += v.Counters.Failed
		r.claimed += v.Counters.Claimed
		r.missed += v.Counters.ClaimsMissed
		if !v.Preset.Active() {
			continue
		}
		// Two active presets share labels only when two templates of one
		// organization share a name: their gauges add up.
		r.gauges = true
		r.desired += pp.Plans[i].Desired
		for _, p := range v.Running {
			r.running++
			if Expired(v.Preset.Preset, p.CreatedAt, pp.Now) {
				r.expired++
			} else if p.Ready {
				r.eligible++
			}
		}
		r.hardLimited = r.hardLimited || v.HardLimited
		r.validationFailed = r.validationFailed || v.Preset.Status == PresetValidationFailed
	}
	for key := range deleted {
		if _, live := index[key]; !live {
			c.replacements.DeleteLabelValues(key[:]...)
		}
	}
	c.mu.Lock()
	if c.rows == nil {
		c.rows = map[int][]presetValues{}
	}
	c.rows[shard] = rows
	c.mu.Unlock()
}
