package conformance

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/coder/quartz"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
	"github.com/prebuildkit/prebuildkit/model"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Store is what the suite drives: the Reconciler's store and the control
// plane, implemented by one value.
type Store interface {
	prebuilds.Store
	prebuilds.ControlPlane
}

// Harness tells Run how to get stores.
type Harness struct {
	// NewStore returns a fresh, empty, isolated store: no templates, not
	// paused, sharing nothing with any other store it returned. It is called
	// once per subtest, and once per check of the randomised tests (with the
	// subtest's t), possibly from parallel subtests. Register clean-up with
	// t.Cleanup. Stores never need a clock: every operation takes its
	// instant as a parameter.
	NewStore func(t *testing.T) Store

	// StateMachineChecks is the number of random operation sequences each
	// randomised test (StateMachine/...) tries. Default: rapid's
	// -rapid.checks flag (100 unless given). A -rapid.checks flag given on
	// the command line always wins.
	StateMachineChecks int

	// Serial disables t.Parallel in the subtests, for stores that cannot
	// give out several isolated instances at once.
	Serial bool
}

// Run runs the whole conformance suite against the stores of h. Subtest
// names are stable and listed in the package documentation; run one group
// or case with go test -run, e.g. -run 'TestConformance/Claim/' or
// -run 'TestConformance/Snapshot/Boundary/Lookback/Inside'.
//
// The groups run one after the other, the cases of a group in parallel
// (unless h.Serial). The randomised StateMachine group runs last.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.NewStore == nil {
		t.Fatal("conformance: Harness.NewStore is nil")
	}
	s := &suite{h: h}
	t.Run("Snapshot", s.snapshotGroup)
	t.Run("Reconcile", s.reconcileGroup)
	t.Run("Claim", s.claimGroup)
	t.Run("Lock", s.lockGroup)
	t.Run("PendingJobs", s.pendingJobsGroup)
	t.Run("ChangeFeed", func(t *testing.T) { s.run(t, "CommitsInOrder", s.changeFeed) })
	t.Run("Errors", s.errorsGroup)
	t.Run("Effects", s.effectsGroup)
	s.fixedFailed = t.Failed()
	t.Run("StateMachine", s.stateMachineGroup)
}

type suite struct {
	h Harness
	// fixedFailed: a fixed case (every group but StateMachine) failed; the
	// state machines then report their failures briefly.
	fixedFailed bool
}

func (s *suite) parallel(t *testing.T) {
	if !s.h.Serial {
		t.Parallel()
	}
}

// run runs one case of a group as a (parallel) subtest.
func (s *suite) run(t *testing.T, name string, f func(t *testing.T)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		s.parallel(t)
		f(t)
	})
}

// newStore asks the harness for a store.
func (s *suite) newStore(t *testing.T) (Store, error) {
	st := s.h.NewStore(t)
	if st == nil {
		return nil, errors.New("conformance: Harness.NewStore returned nil")
	}
	return st, nil
}

// newClock returns a mock clock at start that logs nothing, whatever the
// quartz version the module resolves.
func newClock(t *testing.T, start time.Time) *quartz.Mock {
	clock := quartz.NewMock(t).WithLogger(quartz.NoOpLogger)
	clock.Set(start)
	return clock
}

// env is one case's store, clock and model.
type env struct {
	t     *testing.T
	ctx   context.Context
	clock *quartz.Mock
	store Store
	world *model.World
	// rule and pos are those of the case, for failures of its set-up.
	rule string
	pos  scenario.Pos
}

// newEnv returns a fresh store and an empty model, with the mock clock at
// start, for the case of rule defined at pos.
func (s *suite) newEnv(t *testing.T, start time.Time, rule string, pos scenario.Pos) *env {
	t.Helper()
	st, err := s.newStore(t)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: t.Context(), clock: newClock(t, start), store: st, world: &model.World{}, rule: rule, pos: pos}
}

// now is the mock clock's instant at store precision.
func (e *env) now() time.Time { return prebuilds.Micro(e.clock.Now()) }

// labels names every object of the model world and the suite's keys.
func (e *env) labels() labeler { return newLabeler().addWorld(e.world) }

// verdict starts the verdict of the env's case.
func (e *env) verdict() *verdict { return e.named(newVerdict(e.rule, e.pos)) }

// named makes v name objects with the env's labels.
func (e *env) named(v *verdict) *verdict {
	v.names = e.labels
	return v
}

// apply applies a set-up op to the model and the store at now; both must
// succeed.
func (e *env) apply(op scenario.Op, now time.Time) {
	e.t.Helper()
	if err := op.ApplyModel(e.world, now); err != nil {
		e.t.Fatalf("conformance: the model rejected set-up op %s: %v (a bug in the suite)", describeOp(op), err)
	}
	if err := op.ApplyStore(e.ctx, e.store, now); err != nil {
		v := e.verdict()
		var mismatch *scenario.ClaimMismatchError
		if errors.As(err, &mismatch) {
			claimMismatch(v, e.labels(), mismatch)
		} else {
			v.rule = ruleSameError
			v.note("while setting up the case of the rule: " + e.rule)
			v.addf("set-up op %s at %s: the store returned %s, the model accepted it: %v", describeOp(op), now.Format(time.RFC3339Nano), errClass(err), err)
		}
		v.report(e.t)
	}
}

// applyAll applies set-up ops in order at now.
func (e *env) applyAll(now time.Time, ops ...scenario.Op) {
	e.t.Helper()
	for _, op := range ops {
		e.apply(op, now)
	}
}

// ruleClaimOldest is the rule of every claim whose result is compared.
const ruleClaimOldest = "Claim must hand out the oldest claimable prebuild of the preset (created_at, then instance ID)."

// claimMismatch records a claim of a scenario step that handed out another
// instance than the scenario wants.
func claimMismatch(v *verdict, l labeler, m *scenario.ClaimMismatchError) {
	v.rule = ruleClaimOldest
	v.object("preset %s", l.of(scenario.ID(m.Preset)))
	v.object("wanted %s", l.of(scenario.ID(m.Want)))
	v.object("store took %s", l.of(m.Got))
	v.addf("a claim of the case handed out %s instead of %s", l.key(m.Got), m.Want)
}

// ruleSnapshot is the rule of every comparison of snapshots.
const ruleSnapshot = "Snapshot must return exactly the model's snapshot (docs/spec.md, \"The snapshot\")."

// storeSnapshot reads the store's snapshot under the reconciliation lock.
func storeSnapshot(ctx context.Context, st prebuilds.Store, p prebuilds.SnapshotParams) (*prebuilds.GlobalSnapshot, error) {
	var snap *prebuilds.GlobalSnapshot
	acquired, err := st.WithReconciliationLock(ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
		var err error
		snap, err = r.Snapshot(ctx, p)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	if !acquired {
		return nil, errors.New("snapshot: reconciliation lock not acquired although nobody else holds it")
	}
	if snap == nil {
		return nil, errors.New("snapshot: nil snapshot without error")
	}
	return snap, nil
}

// snapshotDiff compares the store's snapshot at p with the model's, both in
// canonical order, and returns a -model +store diff ("" when equal) and the
// store's snapshot.
func snapshotDiff(ctx context.Context, st prebuilds.Store, w *model.World, p prebuilds.SnapshotParams, l labeler) (string, *prebuilds.GlobalSnapshot, error) {
	d, _, got, err := snapshotCompare(ctx, st, w, p, l)
	return d, got, err
}

// snapshotCompare is snapshotDiff that also names the objects whose rows
// differ.
func snapshotCompare(ctx context.Context, st prebuilds.Store, w *model.World, p prebuilds.SnapshotParams, l labeler) (string, []string, *prebuilds.GlobalSnapshot, error) {
	return snapshotCompareVia(ctx, st, w, p, l, false)
}

// snapshotCompareVia is snapshotCompare reading the store's snapshot under
// the lock, or with Store.Snapshot without it (lockFree).
func snapshotCompareVia(ctx context.Context, st prebuilds.Store, w *model.World, p prebuilds.SnapshotParams, l labeler, lockFree bool) (string, []string, *prebuilds.GlobalSnapshot, error) {
	var got *prebuilds.GlobalSnapshot
	var err error
	if lockFree {
		got, err = st.Snapshot(ctx, p)
		if err == nil && got == nil {
			err = errors.New("Store.Snapshot: nil snapshot without error")
		}
	} else {
		got, err = storeSnapshot(ctx, st, p)
	}
	if err != nil {
		return "", nil, nil, err
	}
	want := w.Snapshot(p)
	prebuilds.SortSnapshot(got)
	prebuilds.SortSnapshot(want)
	d := l.diff(want, got)
	if d == "" {
		return "", nil, got, nil
	}
	return d, snapshotObjects(want, got, l), got, nil
}

// checkSnapshot records in v how the store's snapshot differs from the
// model's; it reports whether they are equal.
func (e *env) checkSnapshot(v *verdict, p prebuilds.SnapshotParams, when string) bool {
	e.t.Helper()
	diff, objects, _, err := snapshotCompare(e.ctx, e.store, e.world, p, e.labels())
	if err != nil {
		v.addf("%s: %v", when, err)
		return false
	}
	if diff != "" {
		v.objects = append(v.objects, objects...)
		v.diff(when+": store snapshot (-model +store)", diff)
		return false
	}
	return true
}

// requireSnapshot fails the case unless the store's snapshot equals the
// model's: the operations of the case must have left the store where they
// left the model.
func (e *env) requireSnapshot(p prebuilds.SnapshotParams, when string) {
	e.t.Helper()
	v := e.named(newVerdict(ruleSnapshot, e.pos))
	if !e.checkSnapshot(v, p, when) {
		v.report(e.t)
	}
}

// params are the snapshot parameters of the default configuration at now.
func defaultParams(now time.Time) prebuilds.SnapshotParams {
	return scenario.DefaultConfig.SnapshotParams(now)
}
