package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// pollBatch is the page size of the provisioner's PendingJobs polls.
const pollBatch = 100

// outcome is how a build ends.
type outcome int

const (
	succeed outcome = iota
	failTransient
	failValidationKind
	// hang never reports: the provisioner is stuck on the build.
	hang
)

// work is a job the provisioner is running.
type work struct {
	job    prebuilds.Job
	preset *presetState
	due    time.Time
	seq    uint64
	result outcome
}

// provisioner is the simulated provisioner's state.
type provisioner struct {
	seen     map[uuid.UUID]bool // build IDs taken
	inflight []*work
	seq      uint64
	nextPoll time.Time
	// instancePreset attributes instances to presets for delete jobs, which
	// carry no preset.
	instancePreset map[uuid.UUID]uuid.UUID

	handedOff, polled int
	// lost counts jobs that were no longer pending when the provisioner
	// tried to take them (UpdateJob(running) returned
	// ErrInvalidTransition): canceled, or taken by another provisioner.
	lost            int
	builds, deletes int
	// hung counts start builds the provisioner hung on; lateReports the
	// reports of builds the Reconciler had failed as stuck meanwhile.
	hung, lateReports int
}

// takeHandOffs takes every job waiting in the JobSink.
func (s *sim) takeHandOffs(ctx context.Context, now time.Time) error {
	for {
		select {
		case job := <-s.sink:
			s.prov.handedOff++
			if err := s.accept(ctx, job, now); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// pollStore takes, every -poll, the pending jobs listed by
// ControlPlane.PendingJobs, oldest first: the hand-offs the full JobSink
// dropped. Taking a job moves it out of the list, so the next page holds
// the next jobs; polling stops at a short page.
func (s *sim) pollStore(ctx context.Context, now time.Time) error {
	if now.Before(s.prov.nextPoll) {
		return nil
	}
	s.prov.nextPoll = now.Add(s.opts.poll)
	for {
		jobs, err := s.store.PendingJobs(ctx, prebuilds.PendingJobsParams{Limit: pollBatch})
		if err != nil {
			return fmt.Errorf("provisioner: poll pending jobs: %w", err)
		}
		fresh := 0
		for _, job := range jobs {
			if s.prov.seen[job.BuildID] {
				continue // taken, yet listed: the take did not stick
			}
			fresh++
			s.prov.polled++
			if err := s.accept(ctx, job, now); err != nil {
				return err
			}
		}
		if len(jobs) < pollBatch || fresh == 0 {
			return nil
		}
	}
}

// accept takes a job with UpdateJob(pending → running), the at-most-once
// hand-out, and decides its duration and outcome. A job that is no longer
// pending (canceled while queued, or taken by someone else) is skipped.
func (s *sim) accept(ctx context.Context, job prebuilds.Job, now time.Time) error {
	if s.prov.seen[job.BuildID] {
		return nil
	}
	s.prov.seen[job.BuildID] = true
	_, err := s.rec.ReportJob(ctx, s.store, prebuilds.UpdateJobParams{BuildID: job.BuildID, Status: prebuilds.JobRunning, Now: now})
	if errors.Is(err, prebuilds.ErrInvalidTransition) {
		s.prov.lost++
		s.log.DebugContext(ctx, "sim: job no longer pending when taken", slog.String("build_id", job.BuildID.String()))
		return nil
	}
	if err != nil {
		return fmt.Errorf("provisioner: start job %s: %w", job.BuildID, err)
	}
	presetID := job.PresetID
	if job.Transition == prebuilds.TransitionStart {
		s.prov.instancePreset[job.InstanceID] = presetID
	} else {
		presetID = s.prov.instancePreset[job.InstanceID]
	}
	ps := s.presets[presetID]
	if ps == nil {
		return fmt.Errorf("provisioner: job %s: instance %s has no known preset", job.BuildID, job.InstanceID)
	}
	median := s.opts.buildTime
	w := &work{job: job, preset: ps, seq: s.prov.seq}
	s.prov.seq++
	if job.Transition == prebuilds.TransitionStart {
		s.prov.builds++
		ps.group.builds++
		w.result = s.drawOutcome(ps.group.spec)
	} else {
		s.prov.deletes++
		median /= 3
	}
	w.due = now.Add(s.drawDuration(median))
	if w.result == hang {
		// The build never reports; only -build-timeout ends it.
		s.prov.hung++
		ps.group.hung++
		return nil
	}
	s.prov.inflight = append(s.prov.inflight, w)
	return nil
}

// drawOutcome decides whether a start build of a group fails or hangs.
func (s *sim) drawOutcome(spec groupSpec) outcome {
	u := s.provRand.Float64() // drawn for every build so streams stay aligned
	if spec.hangRate > 0 && s.provRand.Float64() < spec.hangRate {
		return hang
	}
	switch spec.failure {
	case failAlways:
		return failTransient
	case failValidation:
		return failValidationKind
	case failHalf:
		if u < 0.5 {
			return failTransient
		}
	default:
		if u < s.opts.failureRate {
			return failTransient
		}
	}
	return succeed
}

// buildSpread is the σ of the lognormal build-time distribution: about two
// thirds of builds take between 0.7× and 1.4× the median.
const buildSpread = 0.35

// drawDuration draws a lognormal duration with the given median, at least
// one second, at microsecond precision.
func (s *sim) drawDuration(median time.Duration) time.Duration {
	f := math.Exp(buildSpread * s.provRand.NormFloat64())
	d := time.Duration(float64(median) * f).Truncate(time.Microsecond)
	return max(d, time.Second)
}

// completeDue finishes every running job due by now, in due order.
func (s *sim) completeDue(ctx context.Context, now time.Time) error {
	slices.SortFunc(s.prov.inflight, func(a, b *work) int {
		if c := a.due.Compare(b.due); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	n := 0
	for _, w := range s.prov.inflight {
		if w.due.After(now) {
			break
		}
		n++
		if err := s.complete(ctx, w, now); err != nil {
			return err
		}
	}
	s.prov.inflight = slices.Delete(s.prov.inflight, 0, n)
	return nil
}

func (s *sim) complete(ctx context.Context, w *work, now time.Time) error {
	p := prebuilds.UpdateJobParams{BuildID: w.job.BuildID, Status: prebuilds.JobSucceeded, Now: now}
	switch w.result {
	case failTransient:
		p.Status, p.FailureKind = prebuilds.JobFailed, prebuilds.FailureTransient
	case failValidationKind:
		p.Status, p.FailureKind = prebuilds.JobFailed, prebuilds.FailureValidation
	}
	_, err := s.rec.ReportJob(ctx, s.store, p)
	if errors.Is(err, prebuilds.ErrInvalidTransition) && w.job.Transition == prebuilds.TransitionStart {
		// The Reconciler failed the build as stuck (-build-timeout) before
		// it finished: the late report is refused, the result discarded.
		s.prov.lateReports++
		s.log.DebugContext(ctx, "sim: late report of a timed-out build refused", slog.String("preset_name", w.preset.name),
			slog.String("build_id", w.job.BuildID.String()))
		return nil
	}
	if err != nil {
		return fmt.Errorf("provisioner: report job %s %s: %w", w.job.BuildID, p.Status, err)
	}
	s.log.DebugContext(ctx, "sim: job finished", slog.String("preset_name", w.preset.name),
		slog.String("transition", string(w.job.Transition)), slog.String("status", string(p.Status)),
		slog.String("failure_kind", string(p.FailureKind)), slog.String("instance_id", w.job.InstanceID.String()))
	if w.job.Transition != prebuilds.TransitionStart {
		return nil
	}
	g := w.preset.group
	if p.Status == prebuilds.JobFailed {
		g.failed++
		w.preset.cycle.failed++
		w.preset.failedInstances = append(w.preset.failedInstances, w.job.InstanceID)
		return nil
	}
	g.succeeded++
	if err := s.store.SetReady(ctx, w.job.InstanceID, true); err != nil {
		return fmt.Errorf("provisioner: mark instance %s ready: %w", w.job.InstanceID, err)
	}
	return nil
}
