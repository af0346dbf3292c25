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

// execute carries out a pass plan under the lock: the non-empty plans of
// every preset run concurrently, at most Config.MaxConcurrency at once. One
// preset's failure is logged and counted, never aborts the others.
func (r *Reconciler) execute(ctx context.Context, pp PassPlan, stats *Stats) {
	stats.Presets = len(pp.Views)
	stats.Paused = pp.Paused
	if pp.Paused {
		r.metrics.paused.Set(1)
		r.log.InfoContext(ctx, "reconciliation paused, writing nothing", slog.Int("presets", len(pp.Views)))
		return
	}
	r.metrics.paused.Set(0)
	for i, plan := range pp.Plans {
		if plan.ScheduleInvalid {
			r.log.WarnContext(ctx, "stored preset schedule cannot be evaluated, using static desired count",
				presetAttrs(pp.Views[i].Preset)...)
		}
	}

	var mu sync.Mutex
	var g errgroup.Group
	g.SetLimit(r.cfg.MaxConcurrency)
	for i := range pp.Views {
		if pp.Plans[i].Empty() {
			continue
		}
		if ctx.Err() != nil {
			// Stopping: leave the remaining presets to the next pass (of
			// this replica or another); they are not failures.
			break
		}
		v, plan := pp.Views[i], pp.Plans[i]
		g.Go(func() error {
			// Go may have waited for a slot while the pass was being
			// stopped: check again before touching the store.
			if ctx.Err() != nil {
				return nil
			}
			var ps Stats
			err := r.executePlan(ctx, v, plan, pp.Now, pp.StuckBefore, &ps)
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
	s.StatusChanges += o.StatusChanges
	s.TimedOut += o.TimedOut
	s.JobsDropped += o.JobsDropped
	s.PresetErrors += o.PresetErrors
}

// executePlan carries out one preset's plan in the plan's order: status
// transition, cancel queued first builds, delete (one conditional
// transaction each), then create in one batch. A failed action does not
// stop the ones after it; their errors are joined.
func (r *Reconciler) executePlan(ctx context.Context, v PresetSnapshot, plan Plan, now, stuckBefore time.Time, stats *Stats) error {
	var errs []error
	for _, a := range plan.Actions {
		switch a.Kind {
		case ActionFailStuck:
			for i, id := range a.BuildIDs {
				err := r.store.FailStuckBuild(ctx, FailStuckBuildParams{BuildID: id, StuckBefore: stuckBefore, Now: now})
				switch {
				case errors.Is(err, ErrConflict):
					stats.Conflicts++
					r.metrics.conflicts.Inc()
					r.log.InfoContext(ctx, "stuck build changed before it was failed, skipped",
						append(presetAttrs(v.Preset), slog.String("build_id", id.String()))...)
				case err != nil:
					errs = append(errs, fmt.Errorf("fail stuck build %s: %w", id, err))
				default:
					stats.TimedOut++
					r.metrics.timedOut.Inc()
					r.log.WarnContext(ctx, "failed a build stuck past the build timeout",
						append(presetAttrs(v.Preset), slog.String("build_id", id.String()),
							slog.String("instance_id", a.InstanceIDs[i].String()), slog.Duration("build_timeout", r.cfg.BuildTimeout))...)
				}
			}
		case ActionSetStatus:
			if err := r.setStatus(ctx, v.Preset, a, now, stats); err != nil {
				errs = append(errs, err)
			}
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
			n := r.clamp(ctx, v.Preset, a.Count, plan.Desired, stats)
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

// setStatus carries out an ActionSetStatus by compare-and-set. Only the
// replica whose compare-and-set changed the row logs the transition and
// emits its event, so each transition is announced once across replicas.
func (r *Reconciler) setStatus(ctx context.Context, p PresetRow, a Action, now time.Time, stats *Stats) error {
	changed, err := r.store.SetPresetStatus(ctx, p.ID, a.From, a.To)
	if err != nil {
		return fmt.Errorf("set status %s → %s: %w", a.From, a.To, err)
	}
	if !changed {
		return nil
	}
	stats.StatusChanges++
	p.Status = a.To
	kind := EventRecovered
	if a.To == PresetHardLimited {
		kind = EventHardLimited
		r.log.WarnContext(ctx, "preset hit the failure hard limit, creation stopped",
			append(presetAttrs(p), slog.Int("hard_limit", r.cfg.FailureHardLimit.K()))...)
	} else {
		r.log.InfoContext(ctx, "preset recovered from the failure hard limit", presetAttrs(p)...)
	}
	r.notify(ctx, presetEvent(kind, p, now))
	return nil
}

// clamp bounds a create count by the plan's own desired count, the most a
// preset can ever want at the plan's instant. A larger count is logged at
// error level: it means a planner or executor bug.
func (r *Reconciler) clamp(ctx context.Context, p PresetRow, n, desired int, stats *Stats) int {
	if n <= desired {
		return n
	}
	stats.Clamped++
	r.metrics.clamped.Inc()
	r.log.ErrorContext(ctx, "CRITICAL: create count exceeds desired, clamping",
		append(presetAttrs(p), slog.Int("requested", n), slog.Int("desired", desired))...)
	return desired
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
