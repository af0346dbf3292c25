package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/memstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// sim is one simulation run. Everything happens on the goroutine that calls
// simulate, apart from the Reconciler's plan executions, which it runs one
// at a time (MaxConcurrency 1) while simulate waits for ReconcileAll.
type sim struct {
	opts  options
	out   io.Writer
	clock *simClock
	log   *slog.Logger
	store *memstore.Store
	rec   *prebuilds.Reconciler
	sink  chan prebuilds.Job

	groups  []*group
	presets map[uuid.UUID]*presetState

	provRand  *rand.Rand
	claimRand *rand.Rand
	prov      provisioner
	nextClaim time.Time

	// mu guards what the Notifier writes: the timeline, event tallies and
	// presetState.hardLimitedAt. The simulation goroutine reads them
	// without it only between Reconciler calls.
	mu       sync.Mutex
	timeline []timelineEntry

	passes       int
	jobsDropped  int
	canceled     int // queued builds the Reconciler canceled
	presetErrors int
	clamped      int
}

// timelineEntry is one notable moment of the run.
type timelineEntry struct {
	at   time.Time
	who  string // preset or group name
	text string
}

// Seed-stream selectors, so each actor draws from its own generator.
const (
	streamUUID uint64 = iota + 1
	streamProvisioner
	streamClaims
)

func newRand(seed, stream uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, stream)) }

// chachaSeed derives a ChaCha8 seed for a stream.
func chachaSeed(seed, stream uint64) [32]byte {
	var b [32]byte
	r := newRand(seed, stream)
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// simulate runs one simulation and writes its report to out.
func simulate(ctx context.Context, opts options, out, stderr io.Writer) error {
	s := newSim(opts, out, stderr)
	if err := s.run(ctx); err != nil {
		return err
	}
	return s.summary(ctx)
}

// newSim wires a simulation: clock, store, Reconciler.
func newSim(opts options, out, stderr io.Writer) *sim {
	start := prebuilds.Micro(opts.start)
	opts.start = start
	s := &sim{
		opts:      opts,
		out:       out,
		clock:     newSimClock(start),
		store:     memstore.New(),
		sink:      make(chan prebuilds.Job, opts.sinkBuffer),
		presets:   map[uuid.UUID]*presetState{},
		provRand:  newRand(opts.seed, streamProvisioner),
		claimRand: newRand(opts.seed, streamClaims),
		prov: provisioner{
			seen: map[uuid.UUID]bool{}, instancePreset: map[uuid.UUID]uuid.UUID{},
		},
	}
	s.log = newLogger(stderr, opts.verbose, s.clock, start)
	s.rec = prebuilds.NewReconciler(s.store, prebuilds.Config{
		Interval:         opts.interval,
		BackoffInterval:  opts.backoff,
		FailureHardLimit: prebuilds.HardLimit(opts.hardLimit),
		MaxConcurrency:   1, // one plan at a time: uuid.New calls come in a fixed order
		Clock:            s.clock,
		Logger:           s.log,
		Notifier:         prebuilds.NotifierFunc(s.notify),
		JobSink:          s.sink,
	})
	return s
}

// run sets up the fleet and simulates -duration. It is not safe to run two
// simulations at once in one process: it seeds the uuid package's global
// generator for its duration.
func (s *sim) run(ctx context.Context) error {
	// The Reconciler names instances with uuid.New; seeding the package's
	// generator makes IDs, and so every tie broken by ID, repeatable.
	uuid.SetRand(rand.NewChaCha8(chachaSeed(s.opts.seed, streamUUID)))
	defer uuid.SetRand(nil)
	if err := s.setUpFleet(ctx); err != nil {
		return fmt.Errorf("set up fleet: %w", err)
	}
	s.scheduleClaim(s.opts.start)
	s.prov.nextPoll = s.opts.start.Add(s.opts.poll)
	return s.loop(ctx, s.opts.start)
}

// loop advances simulated time tick by tick from start to start+duration.
// At each instant: builds due complete, users claim, and, on interval
// boundaries, the operator acts and the Reconciler runs one pass; then the
// provisioner takes the jobs handed off and polls the store.
func (s *sim) loop(ctx context.Context, start time.Time) error {
	end := start.Add(s.opts.duration)
	activateAt := start.Add(s.opts.duration / 2)
	activated := false
	nextPass := start
	for now := start; ; now = s.clock.Advance(s.opts.tick) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("simulation interrupted at %s: %w", offset(now, start), err)
		}
		if err := s.completeDue(ctx, now); err != nil {
			return err
		}
		if err := s.claims(ctx, now); err != nil {
			return err
		}
		if !activated && !now.Before(activateAt) {
			activated = true
			if err := s.activateNewVersions(ctx, now); err != nil {
				return err
			}
		}
		if !now.Before(nextPass) {
			nextPass = nextPass.Add(s.opts.interval)
			if err := s.operator(ctx, now); err != nil {
				return err
			}
			if err := s.pass(ctx, now); err != nil {
				return err
			}
		}
		if err := s.takeHandOffs(ctx, now); err != nil {
			return err
		}
		if err := s.pollStore(ctx, now); err != nil {
			return err
		}
		if !now.Before(end) {
			return nil
		}
	}
}

// activateNewVersions activates a new version of every group configured to
// get one mid-run.
func (s *sim) activateNewVersions(ctx context.Context, now time.Time) error {
	for _, g := range s.groups {
		if !g.spec.newVersionMidRun {
			continue
		}
		if err := s.newVersion(ctx, g); err != nil {
			return err
		}
		s.note(now, g.spec.name, fmt.Sprintf("template version v%d activated: v%d prebuilds are outdated", g.version, g.version-1))
	}
	return nil
}

// pass runs one reconciliation pass and prints its progress line. Before
// the pass it asks the Reconciler for its dry run (Plan) to learn, per
// preset, what the aggregate Stats do not say (backoff, blocked, schedule
// changes).
func (s *sim) pass(ctx context.Context, now time.Time) error {
	pp, err := s.rec.Plan(ctx)
	if err != nil {
		return err
	}
	for i, v := range pp.Views {
		s.observe(v, pp.Plans[i], now)
	}
	stats, err := s.rec.ReconcileAll(ctx)
	if err != nil {
		return fmt.Errorf("reconcile at %s: %w", offset(now, s.opts.start), err)
	}
	if !stats.Acquired {
		return errors.New("reconcile: lock held elsewhere, but the simulation is the only reconciler")
	}
	s.passes++
	s.jobsDropped += stats.JobsDropped
	s.canceled += stats.Canceled
	s.presetErrors += stats.PresetErrors
	s.clamped += stats.Clamped
	if s.opts.quiet {
		return nil
	}
	after, err := s.snapshot(ctx)
	if err != nil {
		return err
	}
	f := s.fleetState(after, now)
	fmt.Fprintf(s.out, "t=%s running=%d/%d eligible=%d creating=%d deleting=%d backoff=%d hard_limited=%d val_failed=%d claims=%d/%d dropped=%d\n",
		offset(now, s.opts.start), f.running, f.desired, f.eligible, f.starting, f.deleting,
		stats.Backoff, f.hardLimited, f.validationFailed, s.served(), s.served()+s.missed(), s.jobsDropped)
	return nil
}

// observe records what the plan of one preset says before the pass.
func (s *sim) observe(v prebuilds.PresetSnapshot, plan prebuilds.Plan, now time.Time) {
	ps := s.presets[v.Preset.ID]
	g := ps.group
	backoff := false
	for _, a := range plan.Actions {
		switch a.Kind {
		case prebuilds.ActionBackoff:
			backoff = true
			g.backoffTime += s.opts.interval
			if !ps.inBackoff && v.Backoff != nil {
				s.note(now, ps.name, fmt.Sprintf("backoff until %s (num_failed=%d)", offset(a.Until, s.opts.start), v.Backoff.NumFailed))
			}
		case prebuilds.ActionBlocked:
			g.blockedTime += s.opts.interval
		}
	}
	ps.inBackoff = backoff
	if !v.Preset.Active() {
		return
	}
	if ps.seenDesired && plan.Desired != ps.lastDesired {
		s.note(now, ps.name, fmt.Sprintf("desired %d → %d (schedule)", ps.lastDesired, plan.Desired))
	}
	ps.seenDesired, ps.lastDesired = true, plan.Desired
}

// snapshot reads the pools at the clock's instant through the Reconciler's
// dry run (no lock taken).
func (s *sim) snapshot(ctx context.Context) ([]prebuilds.PresetSnapshot, error) {
	pp, err := s.rec.Plan(ctx)
	if err != nil {
		return nil, err
	}
	return pp.Views, nil
}

// operator removes the failed prebuilds of presets hard-limited for at
// least -operator-delay, the admin action that clears the hard limit.
func (s *sim) operator(ctx context.Context, now time.Time) error {
	if s.opts.operatorDelay == 0 {
		return nil
	}
	for _, g := range s.groups {
		for _, id := range g.presets {
			ps := s.presets[id]
			if ps.hardLimitedAt.IsZero() || now.Sub(ps.hardLimitedAt) < s.opts.operatorDelay {
				continue
			}
			for _, inst := range ps.failedInstances {
				if err := s.store.RemoveInstance(ctx, inst); err != nil {
					return fmt.Errorf("operator: remove failed prebuild %s of %s: %w", inst, ps.name, err)
				}
			}
			s.note(now, ps.name, fmt.Sprintf("operator removed %d failed prebuilds", len(ps.failedInstances)))
			g.operatorRemovals += len(ps.failedInstances)
			ps.failedInstances = nil
			ps.hardLimitedAt = time.Time{}
		}
	}
	return nil
}

// scheduleClaim draws the next claim arrival after t (exponential gaps).
func (s *sim) scheduleClaim(t time.Time) {
	if s.opts.claimRate == 0 {
		s.nextClaim = time.Time{}
		return
	}
	gap := time.Duration(s.claimRand.ExpFloat64() / s.opts.claimRate * float64(time.Minute))
	s.nextClaim = t.Add(gap)
}

// claims makes every claim that arrived by now. Each picks a group in
// proportion to its static desired count, then one of its active presets.
func (s *sim) claims(ctx context.Context, now time.Time) error {
	if s.nextClaim.IsZero() {
		return nil
	}
	total := 0
	for _, g := range s.groups {
		total += g.spec.desired
	}
	for !s.nextClaim.After(now) {
		arrival := s.nextClaim
		s.scheduleClaim(arrival)
		k := s.claimRand.IntN(total)
		var g *group
		for _, g = range s.groups {
			if k < g.spec.desired {
				break
			}
			k -= g.spec.desired
		}
		presetID := g.active[s.claimRand.IntN(len(g.active))]
		_, err := s.store.Claim(ctx, prebuilds.ClaimParams{PresetID: presetID, Owner: uuid.New(), Now: now})
		switch {
		case errors.Is(err, prebuilds.ErrNoClaimablePrebuild):
			g.missed++
			s.log.DebugContext(ctx, "sim: claim missed", slog.String("preset_name", s.presets[presetID].name))
		case err != nil:
			return fmt.Errorf("claim from %s: %w", s.presets[presetID].name, err)
		default:
			g.served++
			s.log.DebugContext(ctx, "sim: claim served", slog.String("preset_name", s.presets[presetID].name))
		}
	}
	return nil
}

// notify is the Reconciler's Notifier: it tallies events per group and
// records them on the timeline. The Reconciler calls it on the goroutine of
// ReconcileAll or ReportJob, both the simulation's own, but nothing in the
// Notifier contract promises that, so it takes s.mu.
func (s *sim) notify(_ context.Context, e prebuilds.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.presets[e.PresetID]
	if ps == nil {
		return
	}
	ps.group.events[e.Kind]++
	switch e.Kind {
	case prebuilds.EventHardLimited:
		ps.hardLimitedAt = e.At
	case prebuilds.EventRecovered:
		ps.hardLimitedAt = time.Time{}
	}
	s.noteLocked(e.At, ps.name, "event "+string(e.Kind))
}

// note records a timeline entry and logs it.
func (s *sim) note(at time.Time, who, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noteLocked(at, who, text)
}

func (s *sim) noteLocked(at time.Time, who, text string) {
	s.log.Info("sim: "+text, slog.String("preset_name", who))
	s.timeline = append(s.timeline, timelineEntry{at: at, who: who, text: text})
}

func (s *sim) served() int {
	n := 0
	for _, g := range s.groups {
		n += g.served
	}
	return n
}

func (s *sim) missed() int {
	n := 0
	for _, g := range s.groups {
		n += g.missed
	}
	return n
}

// offset formats t as a signed offset from the start, e.g. +05m00s or
// +1h02m30s.
func offset(t, start time.Time) string {
	d := t.Sub(start)
	sign := "+"
	if d < 0 {
		sign, d = "-", -d
	}
	d = d.Truncate(time.Second)
	h, m, sec := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	if h > 0 {
		return fmt.Sprintf("%s%dh%02dm%02ds", sign, h, m, sec)
	}
	return fmt.Sprintf("%s%02dm%02ds", sign, m, sec)
}

// newLogger returns the slog logger for the run: debug and up with -v,
// errors only otherwise, stamped with simulated time instead of wall time.
func newLogger(w io.Writer, verbose bool, clock *simClock, start time.Time) *slog.Logger {
	level := slog.LevelError
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.String("sim_time", offset(clock.Now(), start))
			}
			return a
		},
	}))
}
