package prebuilds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
)

// ErrReconcilerStopped is returned by Run after Stop, or when Run is called
// on a Reconciler that already ran.
var ErrReconcilerStopped = errors.New("prebuilds: reconciler stopped")

// Stats describes one ReconcileAll pass.
type Stats struct {
	// Acquired is false when another replica held the lock: nothing was
	// done. (Sharded: no shard pass held its lock and ran, because other
	// replicas held the locks or, with a ShardPassLog, had just passed the
	// shards.)
	Acquired bool
	// Targeted is true for a pass over some presets only (ReconcilePresets).
	Targeted bool
	// ShardPasses counts the shard passes that held their lock and ran (1
	// for an unsharded pass that did).
	ShardPasses int
	// ShardsFresh counts the shards a sharded full pass skipped because
	// another replica passed them after this pass began (the store's
	// ShardPassLog says so).
	ShardsFresh int
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
	// TimedOut counts stuck builds this pass failed (Config.BuildTimeout).
	TimedOut int
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
	// wakes are the backoff ends Run's change-feed follower waits for.
	wakes *backoffWakes

	// lastPresets caches the preset rows of the last snapshot for event
	// labels (TrackResourceReplacement).
	mu          sync.Mutex
	lastPresets map[uuid.UUID]PresetRow
	cancel      context.CancelCauseFunc
	// nextShard is the shard the next full sharded pass starts with.
	nextShard int
	done      chan struct{}
	started   bool
	stopped   bool
}

// NewReconciler returns a Reconciler over store. cfg's zero value works.
func NewReconciler(store Store, cfg Config) *Reconciler {
	cfg = cfg.withDefaults()
	return &Reconciler{
		store:   store,
		cfg:     cfg,
		log:     cfg.Logger.With(slog.String("component", "prebuilds.reconciler")),
		metrics: newMetrics(cfg.Registerer),
		wakes:   newBackoffWakes(),
	}
}

// Config returns the effective configuration (defaults applied).
func (r *Reconciler) Config() Config { return r.cfg }

// Run reconciles once immediately, then on every Interval tick, until ctx
// is done or Stop is called. It returns the cause of the stop. When the
// store implements ChangeFeed (and Config.DisableChangeFeed is false), Run
// also follows the feed: the presets it names are reconciled by targeted
// passes (ReconcilePresets) Config.TriggerDelay after their change, a
// resync triggers a full pass, and a preset whose backoff ends is
// reconciled Config.TriggerDelay after the end.
func (r *Reconciler) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.started || r.stopped {
		r.mu.Unlock()
		return ErrReconcilerStopped
	}
	if err := r.check(); err != nil {
		r.mu.Unlock()
		return err
	}
	r.started = true
	ctx, cancel := context.WithCancelCause(ctx)
	r.cancel = cancel
	r.done = make(chan struct{})
	done := r.done
	r.mu.Unlock()
	defer close(done)
	defer cancel(nil)

	feed, ok := r.store.(ChangeFeed)
	ok = ok && !r.cfg.DisableChangeFeed
	r.log.InfoContext(ctx, "reconciler starting", slog.Duration("interval", r.cfg.Interval), slog.Bool("change_feed", ok))
	if ok {
		followed := make(chan struct{})
		r.wakes.follow(true) // before the first pass, whose backoffs count too
		defer func() {
			cancel(nil) // the follower ends with ctx
			<-followed
		}()
		go func() {
			defer close(followed)
			defer r.wakes.follow(false) // nobody waits for a wake-up any more
			r.follow(ctx, feed)
		}()
	}
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

// Plan returns the whole plan of a pass at the clock's current instant
// without executing it: a dry run. It reads a consistent snapshot without
// the reconciliation lock (Store.Snapshot), so it never waits for a pass in
// progress and never makes another replica skip one; what it returns is what
// a pass would do if it started now. It writes nothing and changes no
// metric.
func (r *Reconciler) Plan(ctx context.Context) (PassPlan, error) {
	if err := r.check(); err != nil {
		return PassPlan{}, err
	}
	params := r.cfg.SnapshotParams(r.cfg.Clock.Now())
	snap, err := r.store.Snapshot(ctx, params)
	if err != nil {
		return PassPlan{}, fmt.Errorf("prebuilds: plan: snapshot: %w", err)
	}
	pp := planAll(snap, r.cfg.PlanConfig(), params.StuckBefore)
	r.remember(pp)
	return pp, nil
}

// ReconcileAll runs one pass, in a straight line: lock, snapshot, plan every
// preset (status transitions are plan actions), execute, unlock. It returns
// at once with Stats.Acquired false when another holder has the lock. A
// preset whose plan fails is logged and counted in Stats.PresetErrors; it
// never aborts the others. The error is for pass-level failures (lock,
// snapshot).
func (r *Reconciler) ReconcileAll(ctx context.Context) (Stats, error) {
	return r.reconcile(ctx, nil, nil)
}

// reconcile is a pass over every preset (presets nil) or over the given
// ones (a targeted pass). A full sharded pass reads the store's shard pass
// log first, unless pl is given: a retry of a full pass reuses the log read
// of its first attempt, so shards passed since that attempt began stay
// skipped.
func (r *Reconciler) reconcile(ctx context.Context, presets []uuid.UUID, pl *passLog) (Stats, error) {
	if err := r.check(); err != nil {
		return Stats{}, err
	}
	targeted := presets != nil
	start := r.cfg.Clock.Now()
	var stats Stats
	var errs []error
	if !targeted && pl == nil {
		pl = r.passLog(ctx)
	}
	for _, w := range r.work(ctx, presets) {
		if ctx.Err() != nil {
			break
		}
		acquired, err := r.shardPass(ctx, w, targeted, pl, &stats)
		stats.Acquired = stats.Acquired || acquired
		if err != nil {
			errs = append(errs, err)
		}
	}
	err := errors.Join(errs...)
	if !stats.Acquired && err == nil {
		return stats, nil
	}
	stats.Duration = r.cfg.Clock.Since(start)
	if targeted {
		if err != nil {
			return stats, fmt.Errorf("prebuilds: reconcile presets: %w", err)
		}
		return stats, nil
	}
	r.metrics.duration.Observe(stats.Duration.Seconds())
	if err != nil {
		return stats, fmt.Errorf("prebuilds: reconcile: %w", err)
	}
	r.metrics.lastSuccess.Set(float64(r.cfg.Clock.Now().UnixMicro()) / 1e6)
	return stats, nil
}

// remember caches the preset rows of pp for event and metric labels
// (ReportJob, TrackResourceReplacement).
func (r *Reconciler) remember(pp PassPlan) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lastPresets == nil {
		r.lastPresets = make(map[uuid.UUID]PresetRow, len(pp.Views))
	}
	for _, v := range pp.Views {
		r.lastPresets[v.Preset.ID] = v.Preset
	}
}

// presetRow returns the labels of a preset as of the last snapshot this
// replica read; a preset it has not seen (a replica that never held the
// lock, a preset created since) is looked up in a fresh lock-free snapshot.
// A preset without a desired count is in no snapshot: only its ID is known.
func (r *Reconciler) presetRow(ctx context.Context, id uuid.UUID) PresetRow {
	r.mu.Lock()
	row, ok := r.lastPresets[id]
	r.mu.Unlock()
	if ok {
		return row
	}
	params := r.cfg.SnapshotParams(r.cfg.Clock.Now())
	params.Presets = []uuid.UUID{id} // that preset's rows only
	if snap, err := r.store.Snapshot(ctx, params); err == nil {
		for _, p := range snap.Presets {
			if p.ID == id {
				return p
			}
		}
	}
	return PresetRow{Preset: Preset{ID: id}}
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

// TrackResourceReplacement counts the report in
// prebuilds_resource_replacements_total and emits EventResourcesReplaced,
// labelled with the preset, template and version known from the last
// snapshot this replica read (or a fresh one; IDs only when the preset has
// no desired count).
func (r *Reconciler) TrackResourceReplacement(ctx context.Context, rep ReplacementReport) {
	row := r.presetRow(ctx, rep.PresetID)
	r.metrics.replacements.WithLabelValues(row.OrganizationName, row.TemplateName, row.Name).Inc()
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
		row := r.presetRow(ctx, res.ValidationFailedPreset)
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
