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
// at a time (MaxConcurrency 1) while simulate waits for ReconcileAll or
// ReconcilePresets, and memstore's change-feed goroutine, which the
// simulation drains synchronously (feed.go).
type sim struct {
	opts  options
	out   io.Writer
	clock *simClock
	log   *slog.Logger
	store *memstore.Store
	rec   *prebuilds.Reconciler
	sink  chan prebuilds.Job
	// feed is memstore's change feed (nil without -targeted); trigger the
	// pending targeted pass (feed.go).
	feed    <-chan prebuilds.Change
	trigger trigger
	// wakes are the ends of the backoffs the last passes planned, per
	// preset: with targeted passes, Run reconciles a preset when its
	// backoff ends (feed.go).
	wakes map[uuid.UUID]time.Time

	groups  []*group
	presets map[uuid.UUID]*presetState

	provRand  *rand.Rand
	claimRand *rand.Rand
	prov      provisioner
	nextClaim time.Time

	// mu guards what the Notifier and the create hook write: the timeline,
	// event tallies, presetState.hardLimitedAt and the refill queues. The
	// simulation goroutine reads them without it only between Reconciler
	// calls.
	mu       sync.Mutex
	timeline []timelineEntry

	passes         int // full passes (one per -interval)
	targetedPasses int
	dirtied        int // presets the feed named for a targeted pass
	timedOut       int // stuck builds the Reconciler failed
	jobsDropped    int
	canceled       int // queued builds the Reconciler canceled
	presetErrors   int
	clamped        int
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

// newSim wires a simulation: clock, store, Reconciler.
func newSim(opts options, out, stderr io.Writer) *sim {
	start := prebuilds.Micro(opts.start)
	opts.start = start
	s := &sim{
		opts:      opts,
		out:       out,
		clock:     newSimClock(start),
		store:     memstore.New(),
		sink:      make(chan prebuilds.Job, opts.sinkCapacity()),
		presets:   map[uuid.UUID]*presetState{},
		trigger:   trigger{dirty: map[uuid.UUID]struct{}{}},
		provRand:  newRand(opts.seed, streamProvisioner),
		claimRand: newRand(opts.seed, streamClaims),
		prov: provisioner{
			seen: map[uuid.UUID]bool{}, instancePreset: map[uuid.UUID]uuid.UUID{},
		},
	}
	s.log = newLogger(stderr, opts.verbose, s.clock, start)
	cfg := opts.reconcilerConfig()
	cfg.MaxConcurrency = 1 // one plan at a time: uuid.New calls come in a fixed order
	cfg.Clock = s.clock
	cfg.Logger = s.log
	cfg.Notifier = prebuilds.NotifierFunc(s.notify)
	cfg.JobSink = s.sink
	s.rec = prebuilds.NewReconciler(simStore{Store: s.store, created: s.recordCreate}, cfg)
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
	if s.opts.targeted {
		if err := s.setUpBarrier(ctx); err != nil {
			return err
		}
		stop, err := s.subscribe(ctx)
		if err != nil {
			return err
		}
		defer stop()
	}
	s.scheduleClaim(s.opts.start)
	s.prov.nextPoll = s.opts.start.Add(s.opts.poll)
	return s.loop(ctx, s.opts.start)
}

// loop advances simulated time tick by tick from start to start+duration.
// At each instant: builds due complete, users claim, and, on interval
// boundaries, the operator acts and the Reconciler runs one full pass; with
// -targeted the changes these made are drained from the feed and a
// targeted pass due by now runs; then the provisioner takes the jobs handed
// off and polls the store. A targeted pass due between two instants runs at
// its own instant, and the provisioner takes its jobs there.
func (s *sim) loop(ctx context.Context, start time.Time) error {
	end := start.Add(s.opts.duration)
	activateAt := start.Add(s.opts.duration / 2)
	activated := false
	nextPass := start
	for now := start; ; {
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
		if err := s.drainFeed(ctx, now); err != nil {
			return err
		}
		s.wakeUp(now)
		if s.trigger.pending() && !s.trigger.at.After(now) {
			if err := s.targetedPass(ctx, now); err != nil {
				return err
			}
		}
		if err := s.takeHandOffs(ctx, now); err != nil {
			return err
		}
		if err := s.pollStore(ctx, now); err != nil {
			return err
		}
		if err := s.sample(ctx, now, now.Before(end)); err != nil {
			return err
		}
		if !now.Before(end) {
			s.closeHolds(end)
			return nil
		}
		next := now.Add(s.opts.tick)
		for {
			wake, waking := s.nextWake()
			switch {
			case s.trigger.pending() && s.trigger.at.Before(next) && (!waking || !wake.Before(s.trigger.at)):
				at := s.clock.AdvanceTo(s.trigger.at)
				if err := s.targetedPass(ctx, at); err != nil {
					return err
				}
				if err := s.takeHandOffs(ctx, at); err != nil {
					return err
				}
				if err := s.drainFeed(ctx, at); err != nil {
					return err
				}
				continue
			case waking && wake.Before(next):
				s.wakeUp(s.clock.AdvanceTo(wake))
				continue
			}
			break
		}
		now = s.clock.AdvanceTo(next)
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
// the pass it asks the Reconciler for its dry run (Plan): the pools as the
// pass finds them, and, per preset, what the aggregate Stats do not say
// (backoff, blocked, expiries, schedule changes). The progress line shows
// the pools as found, because the pass deletes expired prebuilds at once:
// read after it, no expired prebuild would ever be seen.
func (s *sim) pass(ctx context.Context, now time.Time) error {
	pp, err := s.rec.Plan(ctx)
	if err != nil {
		return fmt.Errorf("plan at %s: %w", offset(now, s.opts.start), err)
	}
	var holding passHolding
	for i, v := range pp.Views {
		holding.add(s.observe(v, pp.Plans[i], now))
	}
	s.noteWakes(pp)
	stats, err := s.rec.ReconcileAll(ctx)
	if err != nil {
		return fmt.Errorf("reconcile at %s: %w", offset(now, s.opts.start), err)
	}
	if !stats.Acquired {
		return errors.New("reconcile: lock held elsewhere, but the simulation is the only reconciler")
	}
	s.passes++
	s.tally(stats)
	if s.opts.quiet {
		return nil
	}
	f := s.fleetState(pp.Views, now)
	for _, plan := range pp.Plans {
		if a, ok := plan.StatusChange(); ok {
			f.moveStatus(a.From, a.To)
		}
	}
	fmt.Fprintf(s.out, "t=%s running=%d/%d eligible=%d expired=%d creating=%d deleting=%d → created=%d deleted=%d timed_out=%d backoff=%d blocked=%d held=%d hard_limited=%d val_failed=%d claims=%d/%d dropped=%d\n",
		offset(now, s.opts.start), f.running, f.desired, f.eligible, f.expired, f.starting, f.deleting,
		stats.Created, stats.Deleted, stats.TimedOut, holding.backoff, holding.blocked, holding.held,
		f.hardLimited, f.validationFailed, s.served(), s.served()+s.missed(), s.jobsDropped)
	return nil
}

// tally adds what a pass (full or targeted) did to the run's totals.
func (s *sim) tally(stats prebuilds.Stats) {
	s.jobsDropped += stats.JobsDropped
	s.canceled += stats.Canceled
	s.presetErrors += stats.PresetErrors
	s.clamped += stats.Clamped
	s.timedOut += stats.TimedOut
}

// holding says how a preset's plan holds creation back.
type holding struct{ backoff, blocked, held bool }

// passHolding counts the presets of a pass by holding.
type passHolding struct{ backoff, blocked, held int }

func (p *passHolding) add(h holding) {
	if h.backoff {
		p.backoff++
	}
	if h.blocked {
		p.blocked++
	}
	if h.held {
		p.held++
	}
}

// classify says how a plan holds creation back: backoff; blocked by the
// hard limit or validation_failed; held by PolicyAdaptive's one probe or
// canary at a time or by the create budget.
func classify(plan prebuilds.Plan) holding {
	var h holding
	for _, a := range plan.Actions {
		switch {
		case a.Kind == prebuilds.ActionBackoff:
			h.backoff = true
		case a.Kind != prebuilds.ActionBlocked:
		case a.Reason == prebuilds.ReasonHardLimited, a.Reason == prebuilds.ReasonValidationFailed:
			h.blocked = true
		default: // probe, canary, budget
			h.held = true
		}
	}
	return h
}

// observe records what the plan of one preset says before a pass, full or
// targeted: the time its creation is held back (until the next pass that
// plans it), the expired prebuilds and stuck builds it removes, backoff and
// schedule changes for the timeline, and how short the pool is for the
// claims awaiting a refill. It returns the plan's holding.
func (s *sim) observe(v prebuilds.PresetSnapshot, plan prebuilds.Plan, now time.Time) holding {
	ps := s.presets[v.Preset.ID]
	g := ps.group
	h := classify(plan)
	s.hold(ps, h, now)
	s.trimAwaiting(ps, shortOf(v, now))
	for _, a := range plan.Actions {
		switch {
		case a.Kind == prebuilds.ActionBackoff && !ps.inBackoff:
			s.note(now, ps.name, s.backoffNote(v, a, now))
		case a.Kind == prebuilds.ActionDelete && a.Reason == prebuilds.ReasonExpired:
			g.expired += len(a.InstanceIDs)
		case a.Kind == prebuilds.ActionFailStuck:
			g.timedOut += len(a.BuildIDs)
			g.failed += len(a.BuildIDs)
			ps.cycle.failed += len(a.BuildIDs)
			ps.failedInstances = append(ps.failedInstances, a.InstanceIDs...)
			s.note(now, ps.name, fmt.Sprintf("%d stuck builds failed (deadline: older than -build-timeout %s)", len(a.BuildIDs), s.opts.buildTimeout))
		}
	}
	ps.inBackoff = h.backoff
	if !v.Preset.Active() {
		return h
	}
	if ps.seenDesired && plan.Desired != ps.lastDesired {
		s.note(now, ps.name, fmt.Sprintf("desired %d → %d (schedule)", ps.lastDesired, plan.Desired))
	}
	ps.seenDesired, ps.lastDesired = true, plan.Desired
	return h
}

// hold adds the time since the preset's previous pass to the group's time
// in the holding that pass found, and starts h at now.
func (s *sim) hold(ps *presetState, h holding, now time.Time) {
	if ps.holdKnown {
		s.addHeld(ps.group, ps.hold, ps.holdSince, now)
	}
	ps.hold, ps.holdSince, ps.holdKnown = h, now, true
}

// closeHolds ends every preset's holding at the end of the run.
func (s *sim) closeHolds(end time.Time) {
	for _, g := range s.groups {
		for _, id := range g.presets {
			ps := s.presets[id]
			if ps.holdKnown {
				s.addHeld(g, ps.hold, ps.holdSince, end)
				ps.holdSince = end
			}
		}
	}
}

// addHeld adds [from, to) to the group's times and chart spans of h.
func (s *sim) addHeld(g *group, h holding, from, to time.Time) {
	d := to.Sub(from)
	if d <= 0 {
		return
	}
	f, t := from.Sub(s.opts.start), to.Sub(s.opts.start)
	if h.backoff {
		g.backoffTime += d
		g.series.backoff = extend(g.series.backoff, f, t)
	}
	if h.blocked {
		g.blockedTime += d
		g.series.blocked = extend(g.series.blocked, f, t)
	}
	if h.held {
		g.heldTime += d
		g.series.held = extend(g.series.held, f, t)
	}
}

// backoffNote explains a backoff that starts at this pass. The window is
// inclusive (creation resumes strictly after until), so a backoff "until"
// the pass instant holds this one pass. Under PolicyCoder the window is
// counted from the newest failed build's creation, not from its failure:
// a build that outlasts num_failed × -backoff has used up its window by the
// time it fails, and only the pass at until, if any, waits.
func (s *sim) backoffNote(v prebuilds.PresetSnapshot, a prebuilds.Action, now time.Time) string {
	until := offset(a.Until, s.opts.start)
	var why string
	switch {
	case v.Backoff != nil:
		why = fmt.Sprintf("coder: newest failed build created at %s + %d failed × %s",
			offset(v.Backoff.LastBuildAt, s.opts.start), v.Backoff.NumFailed, s.opts.backoff)
	case v.Streak > 0:
		proven := ""
		if v.Proven {
			proven = ", proven: the first probed at once"
		}
		why = fmt.Sprintf("adaptive: streak of %d failures%s, the last at %s + %s",
			v.Streak, proven, offset(v.LastFailedAt, s.opts.start), a.Until.Sub(v.LastFailedAt))
	}
	if a.Until.Equal(now) {
		return fmt.Sprintf("backoff until %s, this pass only (%s)", until, why)
	}
	return fmt.Sprintf("backoff until %s inclusive (%s)", until, why)
}

// sample reads the pools at the end of a simulation step: the fill ratio
// of every group (weighted by the step when weigh is set; the last instant
// of the run is not) and the chart's desired and claimable series. The
// fill ratio of a group is Σ min(claimable, desired) ÷ Σ desired over its
// active presets, claimable meaning running, ready and not expired.
func (s *sim) sample(ctx context.Context, now time.Time, weigh bool) error {
	snap, err := s.store.Snapshot(ctx, s.rec.Config().SnapshotParams(now))
	if err != nil {
		return fmt.Errorf("sample at %s: %w", offset(now, s.opts.start), err)
	}
	type tally struct{ desired, claimable, filled int }
	tallies := make(map[*group]*tally, len(s.groups))
	for _, g := range s.groups {
		tallies[g] = &tally{}
	}
	for _, v := range snap.Index() {
		if !v.Preset.Active() {
			continue
		}
		d, _ := prebuilds.DesiredAt(v.Preset.Preset, now)
		d = max(d, 0)
		n := 0
		for _, r := range v.Running {
			if r.Ready && !prebuilds.Expired(v.Preset.Preset, r.CreatedAt, now) {
				n++
			}
		}
		t := tallies[s.presets[v.Preset.ID].group]
		t.desired += d
		t.claimable += n
		t.filled += min(n, d)
	}
	at := now.Sub(s.opts.start)
	for _, g := range s.groups {
		t := tallies[g]
		if weigh && t.desired > 0 {
			g.fillArea += float64(t.filled) / float64(t.desired) * s.opts.tick.Seconds()
			g.fillTime += s.opts.tick.Seconds()
		}
		pts := g.series.points
		if n := len(pts); n == 0 || pts[n-1].desired != t.desired || pts[n-1].claimable != t.claimable || !weigh {
			g.series.points = append(pts, seriesPoint{at: at, desired: t.desired, claimable: t.claimable})
		}
	}
	return nil
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

// operator acts on presets hard-limited for at least -operator-delay: it
// resets the preset (ResetPreset, the admin "try again"), which clears the
// condition under both policies — failures before the reset no longer count
// — and removes its failed prebuilds. Removal alone would not do: under
// PolicyAdaptive a failure stays evidence after its instance is gone.
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
			if err := s.store.ResetPreset(ctx, id, now); err != nil {
				return fmt.Errorf("operator: reset %s: %w", ps.name, err)
			}
			for _, inst := range ps.failedInstances {
				if err := s.store.RemoveInstance(ctx, inst); err != nil {
					return fmt.Errorf("operator: remove failed prebuild %s of %s: %w", inst, ps.name, err)
				}
			}
			s.note(now, ps.name, fmt.Sprintf("operator reset the preset and removed %d failed prebuilds", len(ps.failedInstances)))
			g.operatorResets++
			ps.closeCycle()
			g.operatorRemovals += len(ps.failedInstances)
			ps.failedInstances = nil
			ps.hardLimitedAt = time.Time{}
		}
	}
	return nil
}

// scheduleClaim draws the next claim arrival after t (exponential gaps).
func (s *sim) scheduleClaim(t time.Time) {
	rate := s.opts.claimRate * float64(s.opts.presets) // claims scale with the fleet
	if rate == 0 {
		s.nextClaim = time.Time{}
		return
	}
	gap := time.Duration(s.claimRand.ExpFloat64() / rate * float64(time.Minute))
	s.nextClaim = t.Add(gap)
}

// claims makes every claim that arrived by now, -claim-rate × -presets per
// minute. Each picks a group in proportion to its static desired count,
// then one of its active presets, so every preset sees the same load
// whatever -presets is.
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
			g.series.missedAt = append(g.series.missedAt, now.Sub(s.opts.start))
			s.log.DebugContext(ctx, "sim: claim missed", slog.String("preset_name", s.presets[presetID].name))
		case err != nil:
			return fmt.Errorf("claim from %s: %w", s.presets[presetID].name, err)
		default:
			g.served++
			s.log.DebugContext(ctx, "sim: claim served", slog.String("preset_name", s.presets[presetID].name))
			if err := s.claimServed(ctx, presetID, now); err != nil {
				return err
			}
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
		ps.cycle.limits++
	case prebuilds.EventRecovered:
		ps.hardLimitedAt = time.Time{}
		ps.closeCycle()
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
