package conformance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

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
	// subtest's t), possibly from parallel subtests. clock is the mock clock
	// of the subtest; stores must not need it (every operation takes now as
	// a parameter) but may use it, e.g. for their own bookkeeping. Register
	// clean-up with t.Cleanup.
	NewStore func(t *testing.T, clock *quartz.Mock) Store

	// StateMachineChecks is the number of random operation sequences the
	// randomised tests (StateMachine, Snapshot/RandomWorlds) try. Default:
	// rapid's -rapid.checks flag (100 unless given). A -rapid.checks flag
	// given on the command line always wins.
	StateMachineChecks int

	// Serial disables t.Parallel in the subtests, for stores that cannot
	// give out several isolated instances at once.
	Serial bool
}

// Run runs the whole conformance suite against the stores of h. Subtest
// names are stable; run one group or case with go test -run, e.g.
// -run 'TestConformance/Backoff/NumFailed' or -run 'TestConformance/Claim/'.
//
// Groups:
//   - <scenario name>/{Snapshot,Reconcile,Sequence}: every Scenarios() row
//     replayed into the store and the model. Snapshot compares the store's
//     snapshot with the model's at every check, and the plan of the store's
//     snapshot with the expected plan; Reconcile runs the real Reconciler
//     on a fresh replay at every check and compares its writes and events
//     with the expected plan; Sequence reconciles at every check on one
//     store and compares with the model, applying the same writes to it.
//   - Snapshot/RandomWorlds: random worlds compared with the model at
//     random snapshot parameters; Snapshot/RankTieBreak: backoff ranking of
//     builds created in the same microsecond.
//   - Claim/...: exclusivity, claim versus delete, never-claimable states,
//     oldest first.
//   - Lock/...: one holder at a time, non-blocking; racing Reconcilers make
//     one status change and one event.
//   - Pause/WritesNothing: a paused pass writes nothing at all.
//   - Errors/...: invalid presets and spot checks of the error semantics of
//     docs/store-semantics.md.
//   - PendingJobs/...: order (created_at, then build ID), limit, what is
//     excluded (jobs no longer pending, deleted instances), bad limits, and
//     racing takers: UpdateJob(running) hands each job out once.
//   - StateMachine: a rapid state machine applying random operations to the
//     store and the model, reconciling with the real Reconciler.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.NewStore == nil {
		t.Fatal("conformance: Harness.NewStore is nil")
	}
	s := &suite{h: h}
	for _, sc := range Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			s.parallel(t)
			t.Run("Snapshot", func(t *testing.T) { s.parallel(t); s.scenarioSnapshot(t, sc) })
			t.Run("Reconcile", func(t *testing.T) { s.parallel(t); s.scenarioReconcile(t, sc) })
			t.Run("Sequence", func(t *testing.T) { s.parallel(t); s.scenarioSequence(t, sc) })
		})
	}
	t.Run("Snapshot/RandomWorlds", func(t *testing.T) { s.parallel(t); s.randomWorlds(t) })
	s.ties(t)
	t.Run("Claim", func(t *testing.T) { s.parallel(t); s.claims(t) })
	t.Run("Lock", func(t *testing.T) { s.parallel(t); s.lock(t) })
	t.Run("Pause/WritesNothing", func(t *testing.T) { s.parallel(t); s.pause(t) })
	t.Run("Errors", func(t *testing.T) { s.parallel(t); s.errorSemantics(t) })
	t.Run("PendingJobs", func(t *testing.T) { s.parallel(t); s.pendingJobs(t) })
	t.Run("StateMachine", func(t *testing.T) { s.parallel(t); s.stateMachine(t) })
}

type suite struct {
	h Harness
}

func (s *suite) parallel(t *testing.T) {
	if !s.h.Serial {
		t.Parallel()
	}
}

// env is one subtest's store, clock and model.
type env struct {
	t     tb
	ctx   context.Context
	clock *quartz.Mock
	store Store
	world *model.World
}

// newEnv returns a fresh store and an empty model, with the mock clock at
// start.
func (s *suite) newEnv(t *testing.T, start time.Time) *env {
	t.Helper()
	clock := quartz.NewMock(t).WithLogger(quartz.NoOpLogger)
	clock.Set(start)
	st := s.h.NewStore(t, clock)
	if st == nil {
		t.Fatal("conformance: Harness.NewStore returned nil")
	}
	return &env{t: t, ctx: t.Context(), clock: clock, store: st, world: &model.World{}}
}

// now is the mock clock's instant at store precision.
func (e *env) now() time.Time { return prebuilds.Micro(e.clock.Now()) }

// apply applies op to the store and the model at now; both must succeed.
func (e *env) apply(op Op, now time.Time) {
	e.t.Helper()
	if err := op.ApplyModel(e.world, now); err != nil {
		e.t.Fatalf("model rejected set-up op %T %+v: %v (a bug in the suite)", op, op, err)
	}
	if err := op.ApplyStore(e.ctx, e.store, now); err != nil {
		e.t.Fatalf("store rejected set-up op %T %+v at %s: %v", op, op, now.Format(time.RFC3339Nano), err)
	}
}

// applyAll applies ops in order at now.
func (e *env) applyAll(now time.Time, ops ...Op) {
	e.t.Helper()
	for _, op := range ops {
		e.apply(op, now)
	}
}

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
// canonical order, and returns a -model +store diff ("" when equal).
func snapshotDiff(ctx context.Context, st prebuilds.Store, w *model.World, p prebuilds.SnapshotParams) (string, error) {
	got, err := storeSnapshot(ctx, st, p)
	if err != nil {
		return "", err
	}
	want := w.Snapshot(p)
	prebuilds.SortSnapshot(got)
	prebuilds.SortSnapshot(want)
	return cmp.Diff(want, got, cmpopts.EquateEmpty()), nil
}

// requireSnapshot fails t when the store's snapshot differs from the model's.
func (e *env) requireSnapshot(p prebuilds.SnapshotParams, what string) {
	e.t.Helper()
	diff, err := snapshotDiff(e.ctx, e.store, e.world, p)
	if err != nil {
		e.t.Fatalf("%s: %v", what, err)
	}
	if diff != "" {
		e.t.Fatalf("%s: store snapshot differs from the model (-model +store):\n%s", what, diff)
	}
}

// sentinels are the error classes stores and the model must agree on.
var sentinels = []struct {
	name string
	err  error
}{
	{"ErrNotFound", prebuilds.ErrNotFound},
	{"ErrConflict", prebuilds.ErrConflict},
	{"ErrNoClaimablePrebuild", prebuilds.ErrNoClaimablePrebuild},
	{"ErrInvalidPreset", prebuilds.ErrInvalidPreset},
	{"ErrInvalidArgument", prebuilds.ErrInvalidArgument},
	{"ErrInvalidTransition", prebuilds.ErrInvalidTransition},
}

// errClass names the sentinel err matches ("nil" for nil), with the field
// of a *prebuilds.ValidationError.
func errClass(err error) string {
	if err == nil {
		return "nil"
	}
	var names []string
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			names = append(names, s.name)
		}
	}
	if len(names) == 0 {
		return "unclassified error: " + err.Error()
	}
	class := strings.Join(names, "+")
	var ve *prebuilds.ValidationError
	if errors.As(err, &ve) {
		class += "(field " + strconv.Quote(ve.Field) + ")"
	}
	return class
}

// sameError fails t unless the store's error and the model's are of the
// same class.
func sameError(t tb, what string, storeErr, modelErr error) {
	t.Helper()
	if sc, mc := errClass(storeErr), errClass(modelErr); sc != mc {
		t.Fatalf("%s: store returned %s, the model %s\n store error: %v\n model error: %v", what, sc, mc, storeErr, modelErr)
	}
}

// label names an ID for diffs: "name(12345678)" when a name is known.
type labeler map[uuid.UUID]string

func (l labeler) of(id uuid.UUID) string {
	short := id.String()[:8]
	if n, ok := l[id]; ok && n != "" {
		return n + "(" + short + ")"
	}
	return short
}

// labelsFromWorld names presets and instances of w.
func labelsFromWorld(w *model.World) labeler {
	l := labeler{}
	for _, p := range w.Presets {
		l[p.ID] = p.Name
	}
	for _, i := range w.Instances {
		l[i.ID] = i.Name
	}
	for _, t := range w.Templates {
		l[t.ID] = t.Name
	}
	return l
}

// rapidChecks resolves the number of randomised checks: an explicit
// -rapid.checks wins, then Harness.StateMachineChecks, then the flag's
// default.
func (s *suite) rapidChecks() (n int, explicit bool) {
	f := flag.Lookup("rapid.checks")
	def := 100
	if f != nil {
		if v, err := strconv.Atoi(f.Value.String()); err == nil {
			def = v
		}
		flag.Visit(func(g *flag.Flag) {
			if g.Name == "rapid.checks" {
				explicit = true
			}
		})
	}
	if explicit || s.h.StateMachineChecks <= 0 {
		return def, true
	}
	return s.h.StateMachineChecks, false
}
