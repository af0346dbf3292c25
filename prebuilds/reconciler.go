package prebuilds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"
)

// ErrReconcilerStopped is returned by Run after Stop, or when Run is called
// on a Reconciler that already ran.
var ErrReconcilerStopped = errors.New("prebuilds: reconciler stopped")

// Stats describes one ReconcileAll pass.
type Stats struct {
	// Acquired is false when another replica held the lock: nothing was done.
	Acquired bool
	// Paused is true when the pause switch was on: nothing was written.
	Paused bool
	// Presets is the number of presets in the snapshot.
	Presets int
	// Created, Deleted and Canceled count committed writes.
	Created, Deleted, Canceled int
	// Conflicts counts deletes that lost a race (claimed, rebuilt, …).
	Conflicts int
	// Backoff and Blocked count presets whose creation was held back.
	Backoff, Blocked int
	// Clamped counts create actions reduced to the desired count.
	Clamped int
	// StatusChanges counts preset status transitions this pass made.
	StatusChanges int
	// JobsDropped counts hand-offs dropped because the JobSink was full.
	JobsDropped int
	// PresetErrors counts presets whose plan failed to execute.
	PresetErrors int
	Duration     time.Duration
}

// Reconciler keeps every preset's pool at its desired size. It is safe for
// concurrent use; run one per process (replica): the store's lock makes sure
// one pass at a time acts across all of them.
type Reconciler struct {
	store   Store
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	// lastPresets caches the preset rows of the last snapshot for event
	// labels (TrackResourceReplacement).
	mu          sync.Mutex
	lastPresets map[uuid.UUID]PresetRow
	cancel      context.CancelCauseFunc
	done        chan struct{}
	started     bool
	stopped     bool
}

// NewReconciler returns a Reconciler over store. cfg's zero value works.
func NewReconciler(store Store, cfg Config) *Reconciler {
	cfg = cfg.withDefaults()
	return &Reconciler{
		store:   store,
		cfg:     cfg,
		log:     cfg.Logger.With(slog.String("component", "prebuilds.reconciler")),
		metrics: newMetrics(cfg.Registerer),
	}
}

// Config returns the effective configuration (defaults applied).
func (r *Reconciler) Config() Config { return r.cfg }

// PlanConfig returns the planner configuration derived from the Config.
func (r *Reconciler) PlanConfig() PlanConfig {
	return PlanConfig{BackoffInterval: r.cfg.BackoffInterval}
}

// SnapshotParams returns the snapshot inputs for instant now.
func (r *Reconciler) SnapshotParams(now time.Time) SnapshotParams {
	now = Micro(now)
	return SnapshotParams{Now: now, Lookback: now.Add(-r.cfg.BackoffLookback), HardLimit: r.cfg.FailureHardLimit}
}

// Run reconciles once immediately, then on every Interval tick, until ctx
// is done or Stop is called. It returns the cause of the stop.
func (r *Reconciler) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started || r.stopped {
		r.mu.Unlock()
		return ErrReconcilerStopped
	}
	r.started = true
	ctx, cancel := context.WithCancelCause(ctx)
	r.cancel = cancel
	r.done = make(chan struct{})
	done := r.done
	r.mu.Unlock()
	defer close(done)
	defer cancel(nil)

	r.log.InfoContext(ctx, "reconciler starting", slog.Duration("interval", r.cfg.Interval))
	r.tick(ctx)
	w := r.cfg.Clock.TickerFunc(ctx, r.cfg.Interval, func() error {
		r.tick(ctx)
		return nil
	}, "prebuilds", "reconciler")
	_ = w.Wait()
	cause := context.Cause(ctx)
	r.log.InfoContext(context.WithoutCancel(ctx), "reconciler stopped", slog.Any("cause", cause))
	return cause
}

func (r *Reconciler) tick(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	if _, err := r.ReconcileAll(ctx); err != nil && ctx.Err() == nil {
		r.log.ErrorContext(ctx, "reconciliation pass failed", slog.Any("error", err))
	}
}

// Stop cancels Run with cause and waits for it to return, or for ctx. It is
// idempotent and safe to call when Run never started.
func (r *Reconciler) Stop(ctx context.Context, cause error) error {
	if cause == nil {
		cause = ErrReconcilerStopped
	}
	r.mu.Lock()
	r.stopped = true
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel(cause)
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("prebuilds: waiting for reconciler to stop: %w", ctx.Err())
	}
}

// ReconcileAll runs one pass: lock, snapshot, status transitions, plan,
// execute. It returns at once with Stats.Acquired false when another holder
// has the lock. A preset whose plan fails is logged and counted in
// Stats.PresetErrors; it never aborts the others. The error is for
// pass-level failures (lock, snapshot).
func (r *Reconciler) ReconcileAll(ctx context.Context) (Stats, error) {
	start := r.cfg.Clock.Now()
	var stats Stats
	acquired, err := r.store.WithReconciliationLock(ctx, func(ctx context.Context, sr SnapshotReader) error {
		stats.Acquired = true
		now := Micro(r.cfg.Clock.Now())
		snap, err := sr.Snapshot(ctx, r.SnapshotParams(now))
		if err != nil {
			return fmt.Errorf("snapshot: %w", err)
		}
		r.pass(ctx, snap, &stats)
		return nil
	})
	stats.Acquired = acquired
	if !acquired && err == nil {
		r.metrics.presets.clear()
		r.log.DebugContext(ctx, "reconciliation lock held elsewhere, skipping pass")
		return stats, nil
	}
	stats.Duration = r.cfg.Clock.Since(start)
	r.metrics.duration.Observe(stats.Duration.Seconds())
	if err != nil {
		return stats, fmt.Errorf("prebuilds: reconcile: %w", err)
	}
	r.metrics.lastSuccess.Set(float64(r.cfg.Clock.Now().UnixMicro()) / 1e6)
	return stats, nil
}

// pass does everything between the snapshot and the release of the lock.
func (r *Reconciler) pass(ctx context.Context, snap *GlobalSnapshot, stats *Stats) {
	now := snap.Now
	views := snap.Index()
	stats.Presets = len(views)
	stats.Paused = snap.Paused

	cache := make(map[uuid.UUID]PresetRow, len(views))
	for _, v := range views {
		cache[v.Preset.ID] = v.Preset
	}
	r.mu.Lock()
	r.lastPresets = cache
	r.mu.Unlock()

	if snap.Paused {
		r.metrics.paused.Set(1)
		plans := make([]Plan, len(views))
		for i, v := range views {
			plans[i] = PlanPreset(v, now, r.PlanConfig())
		}
		r.metrics.presets.update(views, plans, now)
		r.log.InfoContext(ctx, "reconciliation paused, writing nothing", slog.Int("presets", len(views)))
		return
	}
	r.metrics.paused.Set(0)

	for i := range views {
		changed, err := r.syncHardLimitStatus(ctx, &views[i], now)
		if changed {
			stats.StatusChanges++
		}
		if err != nil {
			stats.PresetErrors++
			r.metrics.errors.Inc()
		}
	}

	plans := make([]Plan, len(views))
	for i, v := range views {
		plans[i] = PlanPreset(v, now, r.PlanConfig())
		if plans[i].ScheduleInvalid {
			r.log.WarnContext(ctx, "stored preset schedule cannot be evaluated, using static desired count",
				presetAttrs(v.Preset)...)
		}
	}
	r.metrics.presets.update(views, plans, now)

	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(r.cfg.MaxConcurrency)
	for i := range views {
		if plans[i].Empty() {
			continue
		}
		if ctx.Err() != nil {
			// Stopping: leave the remaining presets to the next pass (of
			// this replica or another); they are not failures.
			break
		}
		v, plan := views[i], plans[i]
		g.Go(func() error {
			// Go may have waited for a slot while the pass was being
			// stopped: check again before touching the store.
			if ctx.Err() != nil {
				return nil
			}
			var ps Stats
			err := r.execute(ctx, v, plan, now, &ps)
			if err != nil && ctx.Err() != nil {
				err = nil // canceled mid-plan: not a preset failure
			}
			mu.Lock()
			stats.add(ps)
			if err != nil {
				stats.PresetErrors++
			}
			mu.Unlock()
			if err != nil {
				r.metrics.errors.Inc()
				r.log.ErrorContext(ctx, "executing preset plan failed",
					append(presetAttrs(v.Preset), slog.Any("error", err))...)
			}
			return nil // one preset's failure never aborts the others
		})
	}
	_ = g.Wait()
}

func (s *Stats) add(o Stats) {
	s.Created += o.Created
	s.Deleted += o.Deleted
	s.Canceled += o.Canceled
	s.Conflicts += o.Conflicts
	s.Backoff += o.Backoff
	s.Blocked += o.Blocked
	s.Clamped += o.Clamped
	s.JobsDropped += o.JobsDropped
}

// syncHardLimitStatus makes the stored status of an active preset follow
// the live hard-limit condition, healthy ⇄ hard_limited, by compare-and-set.
// Only the replica whose CAS changed the row emits the event. It reports
// whether it changed the status.
//
// An inactive preset keeps its status: its builds no longer count toward the
// condition (C(P) needs an active version), so following it would announce
// a "recovery" that is only a version change. If the preset becomes active
// again, the condition is followed from there.
func (r *Reconciler) syncHardLimitStatus(ctx context.Context, v *PresetSnapshot, now time.Time) (bool, error) {
	if !v.Preset.Active() {
		return false, nil
	}
	var from, to PresetStatus
	var kind EventKind
	switch {
	case v.HardLimited && v.Preset.Status == PresetHealthy:
		from, to, kind = PresetHealthy, PresetHardLimited, EventHardLimited
	case !v.HardLimited && v.Preset.Status == PresetHardLimited:
		from, to, kind = PresetHardLimited, PresetHealthy, EventRecovered
	default:
		return false, nil
	}
	changed, err := r.store.SetPresetStatus(ctx, v.Preset.ID, from, to)
	if err != nil {
		r.log.ErrorContext(ctx, "setting preset status failed",
			append(presetAttrs(v.Preset), slog.String("from", string(from)), slog.String("to", string(to)), slog.Any("error", err))...)
		return false, err
	}
	if !changed {
		return false, nil
	}
	v.Preset.Status = to
	if kind == EventHardLimited {
		r.log.WarnContext(ctx, "preset hit the failure hard limit, creation stopped",
			append(presetAttrs(v.Preset), slog.Int("hard_limit", r.cfg.FailureHardLimit))...)
	} else {
		r.log.InfoContext(ctx, "preset recovered from the failure hard limit", presetAttrs(v.Preset)...)
	}
	r.notify(ctx, presetEvent(kind, v.Preset, now))
	return true, nil
}

// execute carries out one preset's plan: cancel queued first builds,
// delete (one conditional transaction each), then create in one batch.
func (r *Reconciler) execute(ctx context.Context, v PresetSnapshot, plan Plan, now time.Time, stats *Stats) error {
	var errs []error
	for _, a := range plan.Actions {
		switch a.Kind {
		case ActionCancelPending:
			ids, err := r.store.CancelPending(ctx, CancelPendingParams{PresetID: v.Preset.ID, Now: now})
			if err != nil {
				errs = append(errs, fmt.Errorf("cancel pending: %w", err))
				continue
			}
			stats.Canceled += len(ids)
			if len(ids) > 0 {
				r.log.InfoContext(ctx, "canceled queued prebuilds of inactive preset",
					append(presetAttrs(v.Preset), slog.Int("count", len(ids)))...)
			}
		case ActionDelete:
			for _, id := range a.InstanceIDs {
				job, err := r.store.DeletePrebuild(ctx, DeletePrebuildParams{InstanceID: id, BuildID: uuid.New(), Now: now})
				switch {
				case errors.Is(err, ErrConflict):
					stats.Conflicts++
					r.metrics.conflicts.Inc()
					r.log.InfoContext(ctx, "prebuild changed before its delete, skipped",
						append(presetAttrs(v.Preset), slog.String("instance_id", id.String()), slog.String("reason", string(a.Reason)))...)
				case err != nil:
					errs = append(errs, fmt.Errorf("delete prebuild %s: %w", id, err))
				default:
					stats.Deleted++
					r.handOff(ctx, job, stats)
				}
			}
			r.log.InfoContext(ctx, "deleting prebuilds",
				append(presetAttrs(v.Preset), slog.String("reason", string(a.Reason)), slog.Int("count", len(a.InstanceIDs)))...)
		case ActionCreate:
			n := r.clamp(ctx, v, a.Count, stats)
			if n <= 0 {
				continue
			}
			news := make([]NewPrebuild, n)
			for i := range news {
				id := uuid.New()
				news[i] = NewPrebuild{InstanceID: id, BuildID: uuid.New(), Name: prebuildName(v.Preset.Name, id)}
			}
			jobs, err := r.store.CreatePrebuilds(ctx, CreatePrebuildsParams{
				PresetID: v.Preset.ID, TemplateVersionID: v.Preset.TemplateVersionID, Instances: news, Now: now,
			})
			if err != nil {
				errs = append(errs, fmt.Errorf("create %d prebuilds: %w", n, err))
				continue
			}
			stats.Created += len(jobs)
			r.log.InfoContext(ctx, "creating prebuilds", append(presetAttrs(v.Preset), slog.Int("count", len(jobs)))...)
			for _, j := range jobs {
				r.handOff(ctx, j, stats)
			}
		case ActionBackoff:
			stats.Backoff++
			r.log.InfoContext(ctx, "preset backing off after failures",
				append(presetAttrs(v.Preset), slog.Time("until", a.Until), slog.Int("missing", a.Count))...)
		case ActionBlocked:
			stats.Blocked++
			r.log.DebugContext(ctx, "preset creation blocked",
				append(presetAttrs(v.Preset), slog.String("reason", string(a.Reason)), slog.Int("missing", a.Count))...)
		}
	}
	return errors.Join(errs...)
}

// clamp bounds a create count by desired_at(P) evaluated again right before
// executing (on the clock, not the snapshot instant: a long pass may cross a
// schedule boundary), the most a preset can ever want. A larger count is
// logged at error level: it means a planner or executor bug, or a schedule
// that just turned down.
func (r *Reconciler) clamp(ctx context.Context, v PresetSnapshot, n int, stats *Stats) int {
	d, _ := DesiredAt(v.Preset.Preset, r.cfg.Clock.Now())
	d = max(d, 0)
	if n <= d {
		return n
	}
	stats.Clamped++
	r.metrics.clamped.Inc()
	r.log.ErrorContext(ctx, "CRITICAL: create count exceeds desired, clamping",
		append(presetAttrs(v.Preset), slog.Int("requested", n), slog.Int("desired", d))...)
	return d
}

// handOff gives a committed job to the JobSink without blocking.
func (r *Reconciler) handOff(ctx context.Context, j Job, stats *Stats) {
	if r.cfg.JobSink == nil {
		return
	}
	select {
	case r.cfg.JobSink <- j:
	default:
		stats.JobsDropped++
		r.metrics.jobsDropped.Inc()
		r.log.WarnContext(ctx, "job sink full, hand-off dropped (the provisioner will find the job in the store)",
			slog.String("build_id", j.BuildID.String()), slog.String("instance_id", j.InstanceID.String()))
	}
}

func (r *Reconciler) notify(ctx context.Context, e Event) {
	if r.cfg.Notifier != nil {
		r.cfg.Notifier.Notify(ctx, e)
	}
}

// ReplacementReport is an integrator's report that a claimed prebuild's
// resources had to be replaced when the claimant took it over.
type ReplacementReport struct {
	InstanceID uuid.UUID
	PresetID   uuid.UUID
	Claimant   uuid.UUID
	// Resources names the replaced resources (e.g. "docker_container.main").
	Resources []string
}

// TrackResourceReplacement emits EventResourcesReplaced for the report,
// labelled with the preset, template and version known from the last
// snapshot this replica read (IDs only when the preset is unknown).
func (r *Reconciler) TrackResourceReplacement(ctx context.Context, rep ReplacementReport) {
	r.mu.Lock()
	row, ok := r.lastPresets[rep.PresetID]
	r.mu.Unlock()
	if !ok {
		row = PresetRow{Preset: Preset{ID: rep.PresetID}}
	}
	e := presetEvent(EventResourcesReplaced, row, Micro(r.cfg.Clock.Now()))
	e.InstanceID = rep.InstanceID
	e.Claimant = rep.Claimant
	e.Resources = append([]string(nil), rep.Resources...)
	r.log.WarnContext(ctx, "claimed prebuild had resources replaced",
		append(presetAttrs(row), slog.String("instance_id", rep.InstanceID.String()), slog.Any("resources", rep.Resources))...)
	r.notify(ctx, e)
}

// ReportJob forwards a provisioner's job report to the control plane and
// emits EventValidationFailed when the report moved the preset to
// validation_failed. Integrators call it instead of cp.UpdateJob so the event
// is not missed; the store's compare-and-set makes it exactly once.
func (r *Reconciler) ReportJob(ctx context.Context, cp ControlPlane, p UpdateJobParams) (UpdateJobResult, error) {
	res, err := cp.UpdateJob(ctx, p)
	if err != nil {
		return res, err
	}
	if res.ValidationFailedPreset != uuid.Nil {
		r.mu.Lock()
		row, ok := r.lastPresets[res.ValidationFailedPreset]
		r.mu.Unlock()
		if !ok {
			row = PresetRow{Preset: Preset{ID: res.ValidationFailedPreset}}
			if pr, err := cp.GetPreset(ctx, res.ValidationFailedPreset); err == nil {
				row.Preset = pr
			}
		}
		r.log.WarnContext(ctx, "preset failed validation, creation stopped until reset", presetAttrs(row)...)
		r.notify(ctx, presetEvent(EventValidationFailed, row, Micro(p.Now)))
	}
	return res, nil
}

func presetEvent(kind EventKind, p PresetRow, at time.Time) Event {
	return Event{
		Kind: kind, At: at,
		PresetID: p.ID, PresetName: p.Name,
		TemplateID: p.TemplateID, TemplateName: p.TemplateName,
		TemplateVersionID: p.TemplateVersionID, OrganizationName: p.OrganizationName,
	}
}

func presetAttrs(p PresetRow) []any {
	return []any{
		slog.String("preset_id", p.ID.String()),
		slog.String("preset_name", p.Name),
		slog.String("template_name", p.TemplateName),
		slog.String("organization_name", p.OrganizationName),
	}
}

func prebuildName(preset string, id uuid.UUID) string {
	const maxPrefix = 40
	if r := []rune(preset); len(r) > maxPrefix {
		preset = string(r[:maxPrefix])
	}
	return fmt.Sprintf("prebuild-%s-%s", preset, id.String()[:8])
}
