package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/coder/quartz"
	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Run measures the store h describes: what a snapshot, a reconciliation
// pass, a cold fill, a claim and a batch of creates cost, at the fleet
// sizes h (or -bench.presets) sets. Call it from one benchmark function:
//
//	func BenchmarkStore(b *testing.B) {
//		bench.Run(b, bench.Harness{
//			NewStore: func(b *testing.B) bench.Store { return mystore.New(newTestDatabase(b)) },
//		})
//	}
//
// and go test -run '^$' -bench . ./mystore prints one line per
// sub-benchmark; scripts/bench.sh's report (bench/cmd/benchreport) turns the
// output of several runs into the sizing table of the package
// documentation. Sub-benchmark names are stable, N being each preset count:
//
//   - Snapshot/presets=N: one snapshot under the reconciliation lock of a
//     balanced fleet (Harness.Fleet, default SteadyFleet). presets/s.
//   - Pass/idle/presets=N: one ReconcileAll over the balanced fleet, which
//     has nothing to do: the cost every replica pays each Interval.
//   - Pass/churn/presets=N: one ReconcileAll where 5% of the presets miss
//     one prebuild (a user claimed it) and another 5% have one too many (a
//     prebuild was added): 5% of N creates and as many deletes per pass.
//     Between passes, with the timer stopped, the claims and surplus
//     prebuilds are made again and the pass's jobs reported done, all
//     through the control plane, so any store restores its fleet the same
//     way.
//   - Pass/targeted/presets=N: ReconcilePresets of the one preset a user
//     has just claimed from (the refill after a claim), with the timer
//     stopped around the claim. presets/pass is the size of the snapshot
//     the pass read: 1 for a store that filters by SnapshotParams.Presets.
//   - ColdFill/concurrency=C: one ReconcileAll filling
//     Harness.ColdFillPresets empty pools of ColdDesired with the
//     executor's MaxConcurrency at C. creates/s. The prebuilds of a pass
//     are removed (ControlPlane.RemoveInstance) before the next, with the
//     timer stopped.
//   - Claim, or Claim/impl=<name> per Harness.Claims: claims from
//     GOMAXPROCS goroutines at once (b.RunParallel), each finding a ready
//     prebuild in a pool of 10. claims/s.
//   - CreatePrebuilds/mode=batched and mode=per-instance: 10 prebuilds of
//     one preset in one Store.CreatePrebuilds call, or in ten. creates/s.
//   - Refill/presets=N: claim → replacement create committed, on the real
//     clock, for a store that implements prebuilds.ChangeFeed (others skip
//     it, saying so). RefillReplicas Reconcilers run Run over the balanced
//     fleet, each on its own handle (Harness.Handle), and follow the feed;
//     once both have made their first full pass, each iteration claims a
//     ready prebuild through a third handle and waits for the replacement's
//     job to be handed off (the JobSink hand-off follows the create's
//     commit). ns/op is the mean latency; p50-ms and p99-ms its quantiles
//     over the iterations, TriggerDelay included (pass -benchtime=300x or
//     more for a p99 that is not the maximum of a few dozen). Claims go
//     round-robin over the presets and refills stay pending, so no job
//     report triggers passes of its own; the fleet gives 5 claims per
//     preset. Beside it, the interval-only figure: interval-p50-ms and
//     interval-p99-ms are Interval/2 and 0.99 × Interval — the wait for the
//     next tick of a claim that comes at random — plus the slowest of
//     three timed claim → create by a full pass (ReconcileAll).
//   - Shards/presets=N/replicas=R: one full cycle of a sharded deployment
//     over a balanced fleet of Harness.ShardPresets presets in
//     Harness.Shards shards (Config.Shards), for a store that implements
//     prebuilds.ShardLocker (others skip it, saying so): R Reconcilers,
//     each on its own handle (Harness.Handle), run ReconcileAll at once;
//     the cycle ends when all have returned, every shard having been passed
//     by one of them. ns/op is the cycle time, shard-passes/cycle how many
//     shard passes held their lock and ran (at least Shards; with a
//     prebuilds.ShardPassLog replicas skip a shard another passed during
//     the cycle, so Shards when their passes begin together),
//     shards-fresh/cycle how many shards were skipped that way. R is 1, 2
//     and 4.
//
// Every sub-benchmark checks what the store did (a balanced pass writes
// nothing, a churn pass makes exactly its creates and deletes, no claim
// fails, a claim is refilled once) and fails with the difference. Fleets are built with NewFleet and
// written with Seed through the control plane unless Harness.Load is set;
// loading is never timed. History grows with the iterations of the churn,
// targeted and cold-fill benchmarks (claimed and deleted instances, and
// removed ones), as it does in a deployment: a store whose snapshot reads
// history slows down within a run, which the numbers then show.
func Run(b *testing.B, h Harness) {
	b.Helper()
	h, err := h.resolved()
	if err != nil {
		b.Fatal(err)
	}
	r := &runner{h: h}
	for _, g := range h.Groups {
		switch g {
		case "Snapshot":
			b.Run("Snapshot", func(b *testing.B) {
				for _, n := range h.Presets {
					b.Run(fmt.Sprintf("presets=%d", n), func(b *testing.B) { r.snapshot(b, n) })
				}
			})
		case "Pass":
			b.Run("Pass", func(b *testing.B) {
				for _, kind := range []struct {
					name string
					run  func(*testing.B, int)
				}{{"idle", r.idle}, {"churn", r.churn}, {"targeted", r.targeted}} {
					b.Run(kind.name, func(b *testing.B) {
						for _, n := range h.Presets {
							b.Run(fmt.Sprintf("presets=%d", n), func(b *testing.B) { kind.run(b, n) })
						}
					})
				}
			})
		case "ColdFill":
			b.Run("ColdFill", func(b *testing.B) {
				for _, c := range h.Concurrency {
					b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) { r.coldFill(b, c) })
				}
			})
		case "Claim":
			if len(h.Claims) == 0 {
				b.Run("Claim", func(b *testing.B) { r.claim(b, nil) })
				continue
			}
			b.Run("Claim", func(b *testing.B) {
				for _, v := range h.Claims {
					b.Run("impl="+v.Name, func(b *testing.B) { r.claim(b, v.Claim) })
				}
			})
		case "CreatePrebuilds":
			b.Run("CreatePrebuilds", func(b *testing.B) {
				for _, mode := range []string{"batched", "per-instance"} {
					b.Run("mode="+mode, func(b *testing.B) { r.createPrebuilds(b, mode == "batched") })
				}
			})
		case "Shards":
			b.Run("Shards", func(b *testing.B) {
				b.Run(fmt.Sprintf("presets=%d", h.ShardPresets), func(b *testing.B) { r.shards(b) })
			})
		case "Refill":
			b.Run("Refill", func(b *testing.B) {
				for _, n := range h.Presets {
					b.Run(fmt.Sprintf("presets=%d", n), func(b *testing.B) { r.refill(b, n) })
				}
			})
		}
	}
}

// runner is one Run's resolved harness.
type runner struct{ h Harness }

// fleets caches generated fleets per process; they are read-only, and
// reusing one *Fleet lets a Load hook cache per fleet (pgfleet digests).
var fleets sync.Map // FleetParams → *Fleet

func cachedFleet(b *testing.B, p FleetParams) *Fleet {
	b.Helper()
	if f, ok := fleets.Load(p); ok {
		return f.(*Fleet)
	}
	f, err := NewFleet(p)
	if err != nil {
		b.Fatal(err)
	}
	actual, _ := fleets.LoadOrStore(p, f)
	return actual.(*Fleet)
}

// load returns a fresh store holding f.
func (r *runner) load(b *testing.B, f *Fleet) Store {
	b.Helper()
	if r.h.Load != nil {
		s := r.h.Load(b, f)
		if s == nil {
			b.Fatal("bench: Harness.Load returned nil")
		}
		return s
	}
	s := r.h.NewStore(b)
	if s == nil {
		b.Fatal("bench: Harness.NewStore returned nil")
	}
	if err := Seed(b.Context(), s, f); err != nil {
		b.Fatal(err)
	}
	return s
}

// reconciler returns a Reconciler over s with Harness.Config, a mock clock
// at f.Now, no logs and no metrics, handing jobs to sink (nil: none).
// concurrency > 0 sets MaxConcurrency.
func (r *runner) reconciler(b *testing.B, s Store, f *Fleet, sink chan<- prebuilds.Job, concurrency int) *prebuilds.Reconciler {
	b.Helper()
	cfg := r.h.Config
	clock := quartz.NewMock(b).WithLogger(quartz.NoOpLogger)
	clock.Set(f.Now)
	cfg.Clock, cfg.Logger, cfg.Registerer, cfg.Notifier, cfg.JobSink = clock, slog.New(slog.DiscardHandler), nil, nil, sink
	if concurrency > 0 {
		cfg.MaxConcurrency = concurrency
	}
	return prebuilds.NewReconciler(s, cfg)
}

// creates bounds n creates by Config.MaxCreatesPerPass.
func (r *runner) creates(n int) int {
	if m := r.h.Config.MaxCreatesPerPass; m > 0 {
		return min(n, m)
	}
	return n
}

// perSecond reports n things per loop iteration as a rate.
func perSecond(b *testing.B, n int, unit string) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(n)*float64(b.N)/s, unit)
	}
}

func (r *runner) snapshot(b *testing.B, n int) {
	f := cachedFleet(b, r.h.Fleet(n))
	s := r.load(b, f)
	params := r.h.Config.SnapshotParams(f.Now)
	want := f.Snapshot(params)
	ctx := b.Context()
	var snap *prebuilds.GlobalSnapshot
	b.ReportAllocs()
	for b.Loop() {
		acquired, err := s.WithReconciliationLock(ctx, func(ctx context.Context, sr prebuilds.SnapshotReader) error {
			var err error
			snap, err = sr.Snapshot(ctx, params)
			return err
		})
		if err != nil || !acquired {
			b.Fatalf("snapshot: acquired %v, err %v", acquired, err)
		}
	}
	if snap == nil || len(snap.Presets) != len(want.Presets) || len(snap.Running) != len(want.Running) {
		b.Fatalf("the snapshot does not describe the fleet it was loaded with: %s presets and running prebuilds, want %d and %d",
			snapshotSize(snap), len(want.Presets), len(want.Running))
	}
	perSecond(b, n, "presets/s")
}

func snapshotSize(s *prebuilds.GlobalSnapshot) string {
	if s == nil {
		return "no snapshot"
	}
	return fmt.Sprintf("%d and %d", len(s.Presets), len(s.Running))
}

// writes counts what a pass wrote.
func writes(st prebuilds.Stats) int {
	return st.Created + st.Deleted + st.Canceled + st.StatusChanges + st.TimedOut
}

func (r *runner) idle(b *testing.B, n int) {
	f := cachedFleet(b, r.h.Fleet(n))
	rec := r.reconciler(b, r.load(b, f), f, nil, 0)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		st, err := rec.ReconcileAll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if !st.Acquired || st.Presets != f.Params.Presets || writes(st) != 0 || st.PresetErrors != 0 {
			b.Fatalf("a pass over a balanced fleet of %d presets did something: %+v", f.Params.Presets, st)
		}
	}
	perSecond(b, n, "presets/s")
}

// fixture is a loaded fleet with the means to disturb and restore it
// through the control plane.
type fixture struct {
	f        *Fleet
	s        Store
	template map[uuid.UUID]uuid.UUID // version → template
	// healthy are the configured presets with a running prebuild and no
	// failed build: a claim leaves them one short, which the next pass
	// refills.
	healthy []prebuilds.Preset
	// ready counts each preset's running, ready prebuilds.
	ready map[uuid.UUID]int
	users []uuid.UUID
}

func (r *runner) fixture(b *testing.B, n int) *fixture {
	b.Helper()
	f := cachedFleet(b, r.h.Fleet(n))
	return r.fixtureOf(f, r.load(b, f))
}

// fixtureOf returns the fixture of fleet f loaded into s.
func (r *runner) fixtureOf(f *Fleet, s Store) *fixture {
	fx := &fixture{f: f, s: s, template: make(map[uuid.UUID]uuid.UUID, len(f.Versions))}
	for _, v := range f.Versions {
		fx.template[v.ID] = v.TemplateID
	}
	running := map[uuid.UUID]int{}
	failed := map[uuid.UUID]bool{}
	for _, in := range f.Instances {
		pid := in.Builds[0].PresetID
		if in.Builds[0].JobStatus == prebuilds.JobFailed {
			failed[pid] = true
		}
		last := in.Builds[len(in.Builds)-1]
		if in.OwnerID == prebuilds.SystemOwner && !in.Deleted && in.Ready &&
			last.Transition == prebuilds.TransitionStart && last.JobStatus == prebuilds.JobSucceeded {
			running[pid]++
		}
	}
	for _, p := range f.ConfiguredPresets() {
		if running[p.ID] > 0 && !failed[p.ID] && *p.Desired > 0 {
			fx.healthy = append(fx.healthy, p)
		}
	}
	fx.ready = running
	fx.users = make([]uuid.UUID, 64)
	for i := range fx.users {
		fx.users[i] = uuid.New()
	}
	return fx
}

// forEach runs fn for each item, up to 8 calls at once.
func forEach[T any](ctx context.Context, items []T, fn func(context.Context, T) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, it := range items {
		g.Go(func() error { return fn(ctx, it) })
	}
	return g.Wait()
}

// claim gives the oldest ready prebuild of p to a user.
func (fx *fixture) claim(ctx context.Context, p prebuilds.Preset) error {
	if _, err := fx.s.Claim(ctx, prebuilds.ClaimParams{PresetID: p.ID, Owner: fx.users[0], Now: fx.f.Now}); err != nil {
		return fmt.Errorf("bench: claim from preset %s: %w", p.Name, err)
	}
	return nil
}

// addSurplus adds one more running, ready prebuild to p: the next pass
// deletes one.
func (fx *fixture) addSurplus(ctx context.Context, p prebuilds.Preset) error {
	id, build := uuid.New(), uuid.New()
	if err := fx.s.CreateInstance(ctx, prebuilds.CreateInstanceParams{
		InstanceID: id, OwnerID: prebuilds.SystemOwner, TemplateID: fx.template[p.TemplateVersionID],
		Name: "bench-surplus-" + id.String()[:8], BuildID: build, TemplateVersionID: p.TemplateVersionID,
		PresetID: p.ID, Transition: prebuilds.TransitionStart, Parameters: p.Parameters, Now: fx.f.Now,
	}); err != nil {
		return fmt.Errorf("bench: surplus prebuild of preset %s: %w", p.Name, err)
	}
	if _, err := fx.s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: build, Status: prebuilds.JobSucceeded, Now: fx.f.Now}); err != nil {
		return fmt.Errorf("bench: surplus prebuild of preset %s: %w", p.Name, err)
	}
	if err := fx.s.SetReady(ctx, id, true); err != nil {
		return fmt.Errorf("bench: surplus prebuild of preset %s: %w", p.Name, err)
	}
	return nil
}

// complete reports a pass's jobs done: a created prebuild succeeds and
// becomes ready, a delete succeeds (the instance is deleted).
func (fx *fixture) complete(ctx context.Context, job prebuilds.Job) error {
	if _, err := fx.s.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: job.BuildID, Status: prebuilds.JobSucceeded, Now: fx.f.Now}); err != nil {
		return fmt.Errorf("bench: complete %s job of instance %s: %w", job.Transition, job.InstanceID, err)
	}
	if job.Transition != prebuilds.TransitionStart {
		return nil
	}
	if err := fx.s.SetReady(ctx, job.InstanceID, true); err != nil {
		return fmt.Errorf("bench: ready instance %s: %w", job.InstanceID, err)
	}
	return nil
}

// drain takes the n jobs a pass handed to sink.
func drain(b *testing.B, sink chan prebuilds.Job, n int) []prebuilds.Job {
	b.Helper()
	if len(sink) != n {
		b.Fatalf("the pass handed off %d jobs, want %d", len(sink), n)
	}
	jobs := make([]prebuilds.Job, n)
	for i := range jobs {
		jobs[i] = <-sink
	}
	return jobs
}

// ChurnShare is the share of presets that need one create, and the share
// that need one delete, in each Pass/churn pass.
const ChurnShare = 0.05

func (r *runner) churn(b *testing.B, n int) {
	fx := r.fixture(b, n)
	k := max(1, int(math.Round(ChurnShare*float64(n))))
	if len(fx.healthy) < 2*k {
		b.Fatalf("the fleet has %d presets with a running prebuild and no failure; churn needs %d", len(fx.healthy), 2*k)
	}
	// Spread both sets over the fleet: preset i*step gets a claim, the one
	// half a step later a surplus prebuild.
	step := len(fx.healthy) / (2 * k)
	var short, surplus []prebuilds.Preset
	for i := range k {
		short = append(short, fx.healthy[2*i*step])
		surplus = append(surplus, fx.healthy[(2*i+1)*step])
	}
	if r.creates(k) < k {
		// The pools would get shorter with every iteration.
		b.Fatalf("Harness.Config.MaxCreatesPerPass (%d) is below the churn's %d creates per pass", r.h.Config.MaxCreatesPerPass, k)
	}
	sink := make(chan prebuilds.Job, 2*k)
	rec := r.reconciler(b, fx.s, fx.f, sink, 0)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if err := forEach(ctx, short, fx.claim); err != nil {
			b.Fatal(err)
		}
		if err := forEach(ctx, surplus, fx.addSurplus); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := rec.ReconcileAll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if !st.Acquired || st.Created != k || st.Deleted != k || st.Canceled+st.StatusChanges+st.TimedOut+st.PresetErrors != 0 {
			b.Fatalf("a churn pass over %d presets wrote %+v; want %d creates and %d deletes, nothing else", n, st, k, k)
		}
		if err := forEach(ctx, drain(b, sink, st.Created+st.Deleted), fx.complete); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	perSecond(b, n, "presets/s")
}

func (r *runner) targeted(b *testing.B, n int) {
	fx := r.fixture(b, n)
	if len(fx.healthy) == 0 {
		b.Fatalf("the fleet has no preset with a running prebuild and no failure")
	}
	sink := make(chan prebuilds.Job, 1)
	rec := r.reconciler(b, fx.s, fx.f, sink, 0)
	ctx := b.Context()
	snapshotted, i := 0, 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		p := fx.healthy[i%len(fx.healthy)]
		i++
		if err := fx.claim(ctx, p); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := rec.ReconcilePresets(ctx, []uuid.UUID{p.ID})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if !st.Acquired || st.Created != 1 || writes(st) != 1 || st.PresetErrors != 0 {
			b.Fatalf("a targeted pass after a claim from preset %s wrote %+v; want exactly one create", p.Name, st)
		}
		snapshotted = st.Presets
		if err := fx.complete(ctx, drain(b, sink, 1)[0]); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(snapshotted), "presets/pass")
}

func (r *runner) coldFill(b *testing.B, concurrency int) {
	f := cachedFleet(b, ColdFleet(r.h.ColdFillPresets))
	s := r.load(b, f)
	want := r.creates(f.DesiredTotal())
	sink := make(chan prebuilds.Job, want)
	rec := r.reconciler(b, s, f, sink, concurrency)
	ctx := b.Context()
	var created []prebuilds.Job
	remove := func(ctx context.Context, job prebuilds.Job) error {
		if err := s.RemoveInstance(ctx, job.InstanceID); err != nil {
			return fmt.Errorf("bench: remove instance %s: %w", job.InstanceID, err)
		}
		return nil
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if err := forEach(ctx, created, remove); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := rec.ReconcileAll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if !st.Acquired || st.Created != want || st.PresetErrors != 0 {
			b.Fatalf("a cold pass created %d prebuilds (want %d) with %d preset errors", st.Created, want, st.PresetErrors)
		}
		created = drain(b, sink, want)
		b.StartTimer()
	}
	perSecond(b, want, "creates/s")
}

// claimPoolSize is the number of ready prebuilds per preset in Claim:
// realistic pools are small, and a claim's cost may grow with the pool.
const claimPoolSize = 10

func (r *runner) claim(b *testing.B, impl func(context.Context, Store, prebuilds.ClaimParams) (prebuilds.Instance, error)) {
	// Room for b.N claims, rounded up to a power of two so that repeated
	// runs reuse the same few fleets (a Load hook may cache per fleet).
	size := 1 << bits.Len(uint(max(16, b.N)-1))
	f, err := NewFleet(FleetParams{Presets: (size + claimPoolSize - 1) / claimPoolSize, RunningPerPreset: claimPoolSize, Seed: 3})
	if err != nil {
		b.Fatal(err)
	}
	s := r.load(b, f)
	if impl == nil {
		impl = func(ctx context.Context, s Store, p prebuilds.ClaimParams) (prebuilds.Instance, error) {
			return s.Claim(ctx, p)
		}
	}
	presets := f.ConfiguredPresets()
	users := make([]uuid.UUID, 64)
	for i := range users {
		users[i] = uuid.New()
	}
	ctx := b.Context()
	var next, failures atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	// Claim i goes to preset i mod presets: no preset gets more than
	// ceil(b.N/presets) <= claimPoolSize claims, so none finds its pool
	// empty.
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(next.Add(1) - 1)
			p := presets[i%len(presets)]
			in, err := impl(ctx, s, prebuilds.ClaimParams{PresetID: p.ID, Owner: users[i%len(users)], Now: f.Now})
			if err == nil && in.OwnerID != users[i%len(users)] {
				err = fmt.Errorf("claimed instance %s is owned by %s", in.ID, in.OwnerID)
			}
			if err != nil && failures.Add(1) == 1 {
				b.Errorf("claim %d from preset %s: %v", i, p.Name, err)
			}
		}
	})
	b.StopTimer()
	if n := failures.Load(); n > 0 {
		b.Fatalf("%d of %d claims failed", n, b.N)
	}
	perSecond(b, 1, "claims/s")
}

// createBatch is the number of prebuilds per CreatePrebuilds operation.
const createBatch = 10

func (r *runner) createPrebuilds(b *testing.B, batched bool) {
	f := cachedFleet(b, ColdFleet(r.h.ColdFillPresets))
	s := r.load(b, f)
	presets := slices.Clone(f.ConfiguredPresets())
	if len(presets) == 0 {
		b.Fatal("bench: CreatePrebuilds needs Harness.ColdFillPresets > 0")
	}
	ctx := b.Context()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		pr := presets[i%len(presets)]
		i++
		news := make([]prebuilds.NewPrebuild, createBatch)
		for k := range news {
			news[k] = prebuilds.NewPrebuild{InstanceID: uuid.New(), BuildID: uuid.New(), Name: "bench"}
		}
		params := prebuilds.CreatePrebuildsParams{PresetID: pr.ID, TemplateVersionID: pr.TemplateVersionID, Now: f.Now}
		if batched {
			params.Instances = news
			if jobs, err := s.CreatePrebuilds(ctx, params); err != nil || len(jobs) != createBatch {
				b.Fatalf("CreatePrebuilds of %d: %d jobs, err %v", createBatch, len(jobs), err)
			}
			continue
		}
		for _, n := range news {
			params.Instances = []prebuilds.NewPrebuild{n}
			if jobs, err := s.CreatePrebuilds(ctx, params); err != nil || len(jobs) != 1 {
				b.Fatalf("CreatePrebuilds of 1: %d jobs, err %v", len(jobs), err)
			}
		}
	}
	perSecond(b, createBatch, "creates/s")
}

// shards measures a full sharded cycle by 1, 2 and 4 replicas.
func (r *runner) shards(b *testing.B) {
	// A store without shard locks is skipped before a fleet is generated
	// and written to it (when Harness.Load writes it, after).
	var (
		f *Fleet
		s Store
	)
	if r.h.Load != nil {
		f = cachedFleet(b, r.h.Fleet(r.h.ShardPresets))
		s = r.h.Load(b, f)
	} else {
		s = r.h.NewStore(b)
	}
	if s == nil {
		b.Fatal("bench: Harness.Load or NewStore returned nil")
	}
	if _, ok := s.(prebuilds.ShardLocker); !ok {
		b.Skipf("bench: %T does not implement prebuilds.ShardLocker: no sharded reconciliation to measure", s)
	}
	if f == nil {
		f = cachedFleet(b, r.h.Fleet(r.h.ShardPresets))
		if err := Seed(b.Context(), s, f); err != nil {
			b.Fatal(err)
		}
	}
	sharded := *r
	sharded.h.Config.Shards = r.h.Shards
	for _, n := range ShardReplicas {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			recs := make([]*prebuilds.Reconciler, n)
			for i := range recs {
				h := s
				if i > 0 {
					h = r.handle(b, s)
				}
				recs[i] = sharded.reconciler(b, h, f, nil, 0)
			}
			ctx := b.Context()
			cycle := func() (passes, fresh int) {
				stats := make([]prebuilds.Stats, n)
				g, ctx := errgroup.WithContext(ctx)
				for i, rec := range recs {
					g.Go(func() error {
						st, err := rec.ReconcileAll(ctx)
						stats[i] = st
						return err
					})
				}
				if err := g.Wait(); err != nil {
					b.Fatal(err)
				}
				presets := 0
				for _, st := range stats {
					if writes(st) != 0 || st.PresetErrors != 0 {
						b.Fatalf("a sharded pass over a balanced fleet of %d presets did something: %+v", f.Params.Presets, st)
					}
					passes += st.ShardPasses
					fresh += st.ShardsFresh
					presets += st.Presets
				}
				// A replica skips a shard only while another passes it or
				// after another passed it during the cycle, so the cycle
				// covers every shard, and so every preset.
				if passes < r.h.Shards || presets < f.Params.Presets {
					b.Fatalf("a cycle of %d replicas made %d shard passes over %d presets, want at least %d over %d",
						n, passes, presets, r.h.Shards, f.Params.Presets)
				}
				return passes, fresh
			}
			cycle() // every handle's connections opened, untimed
			total, skipped := 0, 0
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				p, f := cycle()
				total += p
				skipped += f
			}
			b.ReportMetric(float64(total)/float64(b.N), "shard-passes/cycle")
			b.ReportMetric(float64(skipped)/float64(b.N), "shards-fresh/cycle")
			perSecond(b, f.Params.Presets, "presets/s")
		})
	}
}
