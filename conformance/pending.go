package conformance

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// pendingJobs: ControlPlane.PendingJobs lists pending jobs on instances that
// are not deleted, oldest first, at most Limit, and UpdateJob(running) hands
// each job to exactly one taker.
func (s *suite) pendingJobs(t *testing.T) {
	t.Run("Order", func(t *testing.T) { s.parallel(t); s.pendingOrder(t) })
	t.Run("Limit", func(t *testing.T) { s.parallel(t); s.pendingLimit(t) })
	t.Run("Excludes", func(t *testing.T) { s.parallel(t); s.pendingExcludes(t) })
	t.Run("BadLimit", func(t *testing.T) { s.parallel(t); s.pendingBadLimit(t) })
	t.Run("TakeOnce", func(t *testing.T) { s.parallel(t); s.pendingTakeOnce(t) })
}

// pendingFixture builds, on the claim fixture, pending jobs of every kind
// at distinct and equal instants, and returns their build IDs in the order
// PendingJobs must list them:
//
//	+1s a      start, preset p1 (prebuild)
//	+2s b, c   start, preset p1, same microsecond: build ID decides
//	+3s d, e   CreatePrebuilds of p2 (parameters region=eu), same microsecond
//	+4s u      a user's start build without a preset
//	+5s f/b2   a delete build (no preset) after f's start succeeded at +0s
func (s *suite) pendingFixture(t *testing.T) (*env, []uuid.UUID) {
	e := s.claimFixture(t)
	at := func(sec int) time.Time { return Epoch.Add(time.Duration(sec) * time.Second) }
	e.applyAll(at(0), UpsertPreset{Key: "p2", Version: "v1", Desired: count(2), Parameters: map[string]string{"region": "eu"}},
		prebuildOp("f"), UpdateJob{"f", 1, prebuilds.JobSucceeded, ""})
	e.applyAll(at(1), prebuildOp("a"))
	e.applyAll(at(2), prebuildOp("b"), prebuildOp("c"))
	e.both(t, "CreatePrebuilds(p2: d, e)", func(st Store) error {
		_, err := st.CreatePrebuilds(e.ctx, prebuilds.CreatePrebuildsParams{
			PresetID: ID("p2"), TemplateVersionID: ID("v1"), Now: at(3),
			Instances: []prebuilds.NewPrebuild{
				{InstanceID: ID("d"), BuildID: ID(BuildKey("d", 1)), Name: "d"},
				{InstanceID: ID("e"), BuildID: ID(BuildKey("e", 1)), Name: "e"},
			},
		})
		return err
	}, nil)
	e.applyAll(at(4), CreateInstance{Key: "u", Template: "t1", Version: "v1", Owner: "alice"})
	e.applyAll(at(5), StartBuild{Instance: "f", Number: 2, Version: "v1", Transition: prebuilds.TransitionDelete})
	e.clock.Set(at(6))

	byID := func(x, y string) []uuid.UUID {
		bx, by := ID(BuildKey(x, 1)), ID(BuildKey(y, 1))
		if prebuilds.CompareUUID(bx, by) > 0 {
			bx, by = by, bx
		}
		return []uuid.UUID{bx, by}
	}
	want := []uuid.UUID{ID(BuildKey("a", 1))}
	want = append(want, byID("b", "c")...)
	want = append(want, byID("d", "e")...)
	want = append(want, ID(BuildKey("u", 1)), ID(BuildKey("f", 2)))
	return e, want
}

// both makes call on the model and on the store and requires the same
// error class; a non-nil want is the class both must return.
func (e *env) both(t *testing.T, what string, call func(Store) error, want error) {
	t.Helper()
	merr := call(&modelStore{w: e.world})
	serr := call(e.store)
	if want == nil && merr != nil {
		t.Fatalf("%s: the model failed: %v (suite bug)", what, merr)
	}
	if want != nil && !errors.Is(merr, want) {
		t.Fatalf("%s: the model returned %v, want %v (suite bug)", what, merr, want)
	}
	sameError(t, what, serr, merr)
}

// comparePending calls PendingJobs on the store and the model, requires the
// same error class and, on success, the same jobs; it returns the store's.
func (e *env) comparePending(t *testing.T, limit int) ([]prebuilds.Job, error) {
	t.Helper()
	p := prebuilds.PendingJobsParams{Limit: limit}
	want, merr := e.world.PendingJobs(p)
	got, err := e.store.PendingJobs(e.ctx, p)
	sameError(t, fmt.Sprintf("PendingJobs(limit %d)", limit), err, merr)
	if err == nil {
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("PendingJobs(limit %d): jobs differ from the model (-model +store):\n%s\nmodel: %s\nstore: %s",
				limit, diff, e.describeJobs(want), e.describeJobs(got))
		}
	}
	return got, err
}

// describeJobs names jobs "instance:transition" for failure messages.
func (e *env) describeJobs(jobs []prebuilds.Job) string {
	l := labelsFromWorld(e.world)
	names := make([]string, len(jobs))
	for i, j := range jobs {
		names[i] = l.of(j.InstanceID) + ":" + string(j.Transition)
	}
	return "[" + strings.Join(names, " ") + "]"
}

func buildIDs(jobs []prebuilds.Job) []uuid.UUID {
	ids := make([]uuid.UUID, len(jobs))
	for i, j := range jobs {
		ids[i] = j.BuildID
	}
	return ids
}

// pendingOrder: every pending job, oldest first, ties by build ID, with the
// build's preset, version, transition and parameters.
func (s *suite) pendingOrder(t *testing.T) {
	e, want := s.pendingFixture(t)
	got, err := e.comparePending(t, prebuilds.MaxPendingJobsLimit)
	if err != nil {
		t.Fatalf("PendingJobs: %v", err)
	}
	if diff := cmp.Diff(want, buildIDs(got)); diff != "" {
		t.Fatalf("PendingJobs order (-want +got build IDs):\n%s\ngot: %s", diff, e.describeJobs(got))
	}
	eu := map[string]string{"region": "eu"}
	wantJobs := map[uuid.UUID]prebuilds.Job{
		ID(BuildKey("d", 1)): {BuildID: ID(BuildKey("d", 1)), InstanceID: ID("d"), PresetID: ID("p2"), TemplateVersionID: ID("v1"),
			Transition: prebuilds.TransitionStart, Parameters: eu},
		ID(BuildKey("u", 1)): {BuildID: ID(BuildKey("u", 1)), InstanceID: ID("u"), TemplateVersionID: ID("v1"),
			Transition: prebuilds.TransitionStart},
		ID(BuildKey("f", 2)): {BuildID: ID(BuildKey("f", 2)), InstanceID: ID("f"), TemplateVersionID: ID("v1"),
			Transition: prebuilds.TransitionDelete},
	}
	for _, j := range got {
		if w, ok := wantJobs[j.BuildID]; ok {
			if diff := cmp.Diff(w, j, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("job of %s (-want +got):\n%s", e.describeJobs([]prebuilds.Job{j}), diff)
			}
		}
	}
	// Nothing returned aliases the store: mutating a returned parameter map
	// changes nothing stored.
	for _, j := range got {
		if j.Parameters != nil {
			j.Parameters["region"] = "mutated"
			e.comparePending(t, prebuilds.MaxPendingJobsLimit)
			break
		}
	}
}

// pendingLimit: Limit n returns the n oldest.
func (s *suite) pendingLimit(t *testing.T) {
	e, want := s.pendingFixture(t)
	for n := 1; n <= len(want)+1; n++ {
		got, err := e.comparePending(t, n)
		if err != nil {
			t.Fatalf("PendingJobs(limit %d): %v", n, err)
		}
		if diff := cmp.Diff(want[:min(n, len(want))], buildIDs(got)); diff != "" {
			t.Fatalf("PendingJobs(limit %d) (-want +got build IDs):\n%s", n, diff)
		}
	}
}

// pendingExcludes: jobs that are running, canceling or terminal, and
// pending jobs of deleted instances (admin removal, CancelPending) are not
// listed; a pending job of an instance whose template was deleted is.
func (s *suite) pendingExcludes(t *testing.T) {
	e := s.claimFixture(t)
	at := Epoch.Add(time.Second)
	e.clock.Set(at)
	e.applyAll(at,
		prebuildOp("queued"),
		prebuildOp("running"), UpdateJob{"running", 1, prebuilds.JobRunning, ""},
		prebuildOp("succeeded"), UpdateJob{"succeeded", 1, prebuilds.JobSucceeded, ""},
		prebuildOp("failed"), UpdateJob{"failed", 1, prebuilds.JobFailed, prebuilds.FailureTransient},
		prebuildOp("canceling"), UpdateJob{"canceling", 1, prebuilds.JobCanceling, ""},
		prebuildOp("canceled"), UpdateJob{"canceled", 1, prebuilds.JobCanceled, ""},
		prebuildOp("removed"), RemoveInstance{"removed"},
		// A deleted prebuild: its delete build succeeded.
		prebuildOp("deleted"), UpdateJob{"deleted", 1, prebuilds.JobSucceeded, ""},
		StartBuild{Instance: "deleted", Number: 2, Version: "v1", Transition: prebuilds.TransitionDelete},
		UpdateJob{"deleted", 2, prebuilds.JobSucceeded, ""},
		// p3 of an inactive version: CancelPending cancels its queued build
		// and deletes the instance.
		AddVersion{"v0", "t1"}, UpsertPreset{Key: "p3", Version: "v0", Desired: count(1)},
		CreateInstance{Key: "inactive", Template: "t1", Version: "v0", Preset: "p3"},
		// t2 is deleted with a pending build: the instance is not.
		AddTemplate{"t2"}, AddVersion{"v2", "t2"}, CreateInstance{Key: "orphan", Template: "t2", Version: "v2", Owner: "alice"},
		DeleteTemplate{"t2"},
	)
	e.both(t, "CancelPending(p3)", func(st Store) error {
		_, err := st.CancelPending(e.ctx, prebuilds.CancelPendingParams{PresetID: ID("p3"), Now: at})
		return err
	}, nil)
	got, err := e.comparePending(t, 100)
	if err != nil {
		t.Fatalf("PendingJobs: %v", err)
	}
	want := []uuid.UUID{ID(BuildKey("queued", 1)), ID(BuildKey("orphan", 1))}
	if prebuilds.CompareUUID(want[0], want[1]) > 0 {
		want[0], want[1] = want[1], want[0]
	}
	if diff := cmp.Diff(want, buildIDs(got)); diff != "" {
		t.Fatalf("PendingJobs (-want +got build IDs):\n%s\ngot: %s", diff, e.describeJobs(got))
	}
}

// pendingBadLimit: a limit outside 1..MaxPendingJobsLimit is
// ErrInvalidArgument; the bounds themselves are accepted.
func (s *suite) pendingBadLimit(t *testing.T) {
	e, want := s.pendingFixture(t)
	for _, limit := range []int{0, -1, prebuilds.MaxPendingJobsLimit + 1, -prebuilds.MaxPendingJobsLimit} {
		_, err := e.comparePending(t, limit)
		if !errors.Is(err, prebuilds.ErrInvalidArgument) {
			t.Fatalf("PendingJobs(limit %d) = %v (%s), want ErrInvalidArgument", limit, err, errClass(err))
		}
	}
	for _, limit := range []int{1, prebuilds.MaxPendingJobsLimit} {
		got, err := e.comparePending(t, limit)
		if err != nil || len(got) != min(limit, len(want)) {
			t.Fatalf("PendingJobs(limit %d) = %d jobs, %v; want %d jobs", limit, len(got), err, min(limit, len(want)))
		}
	}
}

// pendingTakeOnce: several provisioners poll the same pending jobs, then
// all race to take every one with UpdateJob(pending → running): each job
// is taken exactly once, every other attempt gets ErrInvalidTransition, and
// taken jobs are no longer listed.
func (s *suite) pendingTakeOnce(t *testing.T) {
	const takers, rounds = 6, 10
	e := s.claimFixture(t)
	for round := range rounds {
		at := Epoch.Add(time.Duration(round+1) * time.Second)
		e.clock.Set(at)
		keys := []string{fmt.Sprintf("r%d-a", round), fmt.Sprintf("r%d-b", round)}
		for _, k := range keys {
			e.apply(prebuildOp(k), at)
		}
		polled := make([][]prebuilds.Job, takers)
		var pollWG, takeWG sync.WaitGroup
		start := make(chan struct{})
		wins := make([]map[uuid.UUID]bool, takers)
		errs := make([][]error, takers)
		for i := range takers {
			pollWG.Add(1)
			takeWG.Add(1)
			go func() {
				defer takeWG.Done()
				jobs, err := e.store.PendingJobs(e.ctx, prebuilds.PendingJobsParams{Limit: 10})
				polled[i] = jobs
				if err != nil {
					errs[i] = append(errs[i], fmt.Errorf("PendingJobs: %w", err))
				}
				pollWG.Done()
				<-start
				wins[i] = map[uuid.UUID]bool{}
				for _, j := range jobs {
					_, err := e.store.UpdateJob(e.ctx, prebuilds.UpdateJobParams{BuildID: j.BuildID, Status: prebuilds.JobRunning, Now: at})
					switch {
					case err == nil:
						wins[i][j.BuildID] = true
					case errors.Is(err, prebuilds.ErrInvalidTransition):
					default:
						errs[i] = append(errs[i], fmt.Errorf("take %s: %w", j.BuildID, err))
					}
				}
			}()
		}
		pollWG.Wait() // every taker has seen the jobs before anyone takes one
		close(start)
		takeWG.Wait()

		for i := range takers {
			for _, err := range errs[i] {
				t.Errorf("round %d, taker %d: %v, want nil or ErrInvalidTransition", round, i, err)
			}
			if len(polled[i]) != len(keys) {
				t.Fatalf("round %d, taker %d polled %s, want the %d new jobs", round, i, e.describeJobs(polled[i]), len(keys))
			}
		}
		for _, k := range keys {
			id := ID(BuildKey(k, 1))
			n := 0
			for i := range takers {
				if wins[i][id] {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("round %d: job %s taken %d times by %d racing takers, want exactly once", round, k, n, takers)
			}
			if _, err := e.world.UpdateJob(prebuilds.UpdateJobParams{BuildID: id, Status: prebuilds.JobRunning, Now: at}); err != nil {
				t.Fatalf("model: take %s: %v (suite bug)", k, err)
			}
		}
		if got, err := e.comparePending(t, 10); err != nil || len(got) != 0 {
			t.Fatalf("round %d: after the race PendingJobs = %s, %v; want none", round, e.describeJobs(got), err)
		}
	}
}
