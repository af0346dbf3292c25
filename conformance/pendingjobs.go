package conformance

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// pendingJobs: ControlPlane.PendingJobs lists pending jobs on instances that
// are not deleted, oldest first, at most Limit, and UpdateJob(running) hands
// each job to exactly one taker.
func (s *suite) pendingJobsGroup(t *testing.T) {
	s.run(t, "Order", s.pendingOrder)
	s.run(t, "Limit", s.pendingLimit)
	s.run(t, "Excludes", s.pendingExcludes)
	s.run(t, "BadLimit", s.pendingBadLimit)
	s.run(t, "TakeOnce", s.pendingTakeOnce)
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
func (s *suite) pendingFixture(t *testing.T, rule string, pos scenario.Pos) (*env, []uuid.UUID) {
	e := s.claimFixture(t, rule, pos)
	at := func(sec int) time.Time { return epoch.Add(time.Duration(sec) * time.Second) }
	e.applyAll(at(0), scenario.UpsertPreset{Key: "p2", Version: "v1", Desired: count(2), Parameters: map[string]string{"region": "eu"}},
		prebuildOp("f"), jobOp("f", prebuilds.JobSucceeded))
	e.applyAll(at(1), prebuildOp("a"))
	e.applyAll(at(2), prebuildOp("b"), prebuildOp("c"))
	e.both(t, "CreatePrebuilds(p2: d, e)", func(st Store) error {
		_, err := st.CreatePrebuilds(e.ctx, prebuilds.CreatePrebuildsParams{
			PresetID: id("p2"), TemplateVersionID: id("v1"), Now: at(3),
			Instances: []prebuilds.NewPrebuild{
				{InstanceID: id("d"), BuildID: buildID("d", 1), Name: "d"},
				{InstanceID: id("e"), BuildID: buildID("e", 1), Name: "e"},
			},
		})
		return err
	}, nil)
	e.applyAll(at(4), scenario.CreateInstance{Key: "u", Template: "t1", Version: "v1", Owner: "alice"})
	e.applyAll(at(5), scenario.StartBuild{Instance: "f", Number: 2, Version: "v1", Transition: prebuilds.TransitionDelete})
	e.clock.Set(at(6))

	byID := func(x, y string) []uuid.UUID {
		bx, by := buildID(x, 1), buildID(y, 1)
		if prebuilds.CompareUUID(bx, by) > 0 {
			bx, by = by, bx
		}
		return []uuid.UUID{bx, by}
	}
	want := []uuid.UUID{buildID("a", 1)}
	want = append(want, byID("b", "c")...)
	want = append(want, byID("d", "e")...)
	want = append(want, buildID("u", 1), buildID("f", 2))
	return e, want
}

// both makes call on the model and on the store and requires the same
// error class; a non-nil want is the class both must return.
func (e *env) both(t *testing.T, what string, call func(Store) error, want error) {
	t.Helper()
	merr := call(&modelStore{w: e.world})
	serr := call(e.store)
	if want == nil && merr != nil {
		t.Fatalf("conformance: %s: the model failed: %v (a bug in the suite)", what, merr)
	}
	if want != nil && !errors.Is(merr, want) {
		t.Fatalf("conformance: %s: the model returned %v, want %v (a bug in the suite)", what, merr, want)
	}
	v := e.named(newVerdict(ruleSameError, e.pos))
	sameError(v, what, serr, merr)
	v.report(t)
}

// comparePending calls PendingJobs on the store and the model and records
// in v a different error class or, on success, different jobs; it returns
// the store's.
func (e *env) comparePending(v *verdict, limit int) ([]prebuilds.Job, error) {
	p := prebuilds.PendingJobsParams{Limit: limit}
	want, merr := e.world.PendingJobs(p)
	got, err := e.store.PendingJobs(e.ctx, p)
	if sameError(v, fmt.Sprintf("PendingJobs(limit %d)", limit), err, merr) && err == nil {
		l := e.labels()
		if diff := l.diff(want, got); diff != "" {
			v.addf("PendingJobs(limit %d) listed %s, the model %s", limit, e.describeJobs(got), e.describeJobs(want))
			v.diff("jobs (-model +store)", diff)
		}
	}
	return got, err
}

// describeJobs names jobs by build key and transition, e.g.
// "[a/b1 start, f/b2 delete]".
func (e *env) describeJobs(jobs []prebuilds.Job) string {
	l := e.labels()
	names := make([]string, len(jobs))
	for i, j := range jobs {
		names[i] = l.key(j.BuildID) + " " + string(j.Transition)
	}
	return "[" + strings.Join(names, ", ") + "]"
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
	e, want := s.pendingFixture(t, "PendingJobs lists the pending jobs of instances that are not deleted, oldest first (build created_at, then build ID), each with its build's preset, version, transition and parameters.", defined())
	v := e.verdict()
	got, err := e.comparePending(v, prebuilds.MaxPendingJobsLimit)
	if err != nil {
		v.fatalf(t, "PendingJobs: %v", err)
	}
	l := e.labels()
	if d := l.diff(want, buildIDs(got)); d != "" {
		v.addf("PendingJobs listed %s", e.describeJobs(got))
		v.diff("build IDs in order (-want +got)", d)
	}
	eu := map[string]string{"region": "eu"}
	wantJobs := map[uuid.UUID]prebuilds.Job{
		buildID("d", 1): {BuildID: buildID("d", 1), InstanceID: id("d"), PresetID: id("p2"), TemplateVersionID: id("v1"),
			Transition: prebuilds.TransitionStart, Parameters: eu},
		buildID("u", 1): {BuildID: buildID("u", 1), InstanceID: id("u"), TemplateVersionID: id("v1"),
			Transition: prebuilds.TransitionStart},
		buildID("f", 2): {BuildID: buildID("f", 2), InstanceID: id("f"), TemplateVersionID: id("v1"),
			Transition: prebuilds.TransitionDelete},
	}
	for _, j := range got {
		if w, ok := wantJobs[j.BuildID]; ok {
			v.diff("job "+l.of(j.BuildID)+" (-want +got)", l.diff(w, j))
		}
	}
	v.report(t)
	// Nothing returned aliases the store: mutating a returned parameter map
	// changes nothing stored.
	for _, j := range got {
		if j.Parameters != nil {
			j.Parameters["region"] = "mutated"
			v := e.named(newVerdict("Nothing PendingJobs returns aliases the store: changing a returned parameter map changes nothing stored.", e.pos))
			e.comparePending(v, prebuilds.MaxPendingJobsLimit)
			v.report(t)
			break
		}
	}
}

// pendingLimit: Limit n returns the n oldest.
func (s *suite) pendingLimit(t *testing.T) {
	e, want := s.pendingFixture(t, "PendingJobs with limit n lists the n oldest pending jobs.", defined())
	l := e.labels()
	for n := 1; n <= len(want)+1; n++ {
		v := e.verdict()
		got, err := e.comparePending(v, n)
		if err != nil {
			v.fatalf(t, "PendingJobs(limit %d): %v", n, err)
		}
		v.diff(fmt.Sprintf("PendingJobs(limit %d): build IDs (-want +got)", n), l.diff(want[:min(n, len(want))], buildIDs(got)))
		v.report(t)
	}
}

// pendingExcludes: jobs that are running, canceling or terminal, and
// pending jobs of deleted instances (admin removal, CancelPending) are not
// listed; a pending job of an instance whose template was deleted is.
func (s *suite) pendingExcludes(t *testing.T) {
	e := s.claimFixture(t, "PendingJobs leaves out jobs that are no longer pending and the jobs of deleted instances (a deleted template does not delete its instances).", defined())
	at := epoch.Add(time.Second)
	e.clock.Set(at)
	job := func(k string, n int, st prebuilds.JobStatus) scenario.UpdateJob {
		return scenario.UpdateJob{Instance: k, Number: n, Status: st}
	}
	e.applyAll(at,
		prebuildOp("queued"),
		prebuildOp("running"), job("running", 1, prebuilds.JobRunning),
		prebuildOp("succeeded"), job("succeeded", 1, prebuilds.JobSucceeded),
		prebuildOp("failed"), scenario.UpdateJob{Instance: "failed", Number: 1, Status: prebuilds.JobFailed, FailureKind: prebuilds.FailureTransient},
		prebuildOp("canceling"), job("canceling", 1, prebuilds.JobCanceling),
		prebuildOp("canceled"), job("canceled", 1, prebuilds.JobCanceled),
		prebuildOp("removed"), scenario.RemoveInstance{Instance: "removed"},
		// A deleted prebuild: its delete build succeeded.
		prebuildOp("deleted"), job("deleted", 1, prebuilds.JobSucceeded),
		scenario.StartBuild{Instance: "deleted", Number: 2, Version: "v1", Transition: prebuilds.TransitionDelete},
		job("deleted", 2, prebuilds.JobSucceeded),
		// p3 of an inactive version: CancelPending cancels its queued build
		// and deletes the instance.
		scenario.AddVersion{Key: "v0", Template: "t1"}, scenario.UpsertPreset{Key: "p3", Version: "v0", Desired: count(1)},
		scenario.CreateInstance{Key: "inactive", Template: "t1", Version: "v0", Preset: "p3"},
		// t2 is deleted with a pending build: the instance is not.
		scenario.AddTemplate{Key: "t2"}, scenario.AddVersion{Key: "v2", Template: "t2"},
		scenario.CreateInstance{Key: "orphan", Template: "t2", Version: "v2", Owner: "alice"},
		scenario.DeleteTemplate{Template: "t2"},
	)
	e.both(t, "CancelPending(p3)", func(st Store) error {
		_, err := st.CancelPending(e.ctx, prebuilds.CancelPendingParams{PresetID: id("p3"), Now: at})
		return err
	}, nil)
	v := e.verdict()
	got, err := e.comparePending(v, 100)
	if err != nil {
		v.fatalf(t, "PendingJobs: %v", err)
	}
	want := []uuid.UUID{buildID("queued", 1), buildID("orphan", 1)}
	if prebuilds.CompareUUID(want[0], want[1]) > 0 {
		want[0], want[1] = want[1], want[0]
	}
	if d := e.labels().diff(want, buildIDs(got)); d != "" {
		v.addf("PendingJobs listed %s", e.describeJobs(got))
		v.diff("build IDs (-want +got)", d)
	}
	v.report(t)
}

// pendingBadLimit: a limit outside 1..MaxPendingJobsLimit is
// ErrInvalidArgument; the bounds themselves are accepted.
func (s *suite) pendingBadLimit(t *testing.T) {
	e, want := s.pendingFixture(t, "PendingJobs rejects a limit outside 1..MaxPendingJobsLimit with ErrInvalidArgument and accepts the bounds.", defined())
	v := e.verdict()
	for _, limit := range []int{0, -1, prebuilds.MaxPendingJobsLimit + 1, -prebuilds.MaxPendingJobsLimit} {
		_, err := e.comparePending(v, limit)
		if !errors.Is(err, prebuilds.ErrInvalidArgument) {
			v.addf("PendingJobs(limit %d) = %v (%s), want ErrInvalidArgument", limit, err, errClass(err))
		}
	}
	for _, limit := range []int{1, prebuilds.MaxPendingJobsLimit} {
		got, err := e.comparePending(v, limit)
		if err != nil || len(got) != min(limit, len(want)) {
			v.addf("PendingJobs(limit %d) = %d jobs, %v; want %d jobs", limit, len(got), err, min(limit, len(want)))
		}
	}
	v.report(t)
}

// pendingTakeOnce: several provisioners poll the same pending jobs, then
// all race to take every one with UpdateJob(pending → running): each job
// is taken exactly once, every other attempt gets ErrInvalidTransition, and
// taken jobs are no longer listed.
func (s *suite) pendingTakeOnce(t *testing.T) {
	const takers, rounds = 6, 10
	e := s.claimFixture(t, "Of provisioners racing to take the same polled job with UpdateJob(running), exactly one wins and the others get ErrInvalidTransition.", defined())
	for round := range rounds {
		at := epoch.Add(time.Duration(round+1) * time.Second)
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
						errs[i] = append(errs[i], fmt.Errorf("take %s: %w", e.labels().of(j.BuildID), err))
					}
				}
			}()
		}
		pollWG.Wait() // every taker has seen the jobs before anyone takes one
		close(start)
		takeWG.Wait()

		v := e.verdict()
		v.note(fmt.Sprintf("round %d of %d: %d takers, jobs %s/b1 and %s/b1", round+1, rounds, takers, keys[0], keys[1]))
		for i := range takers {
			for _, err := range errs[i] {
				v.addf("taker %d: %v, want nil or ErrInvalidTransition", i, err)
			}
			if len(polled[i]) != len(keys) {
				v.addf("taker %d polled %s, want the %d new jobs", i, e.describeJobs(polled[i]), len(keys))
			}
		}
		for _, k := range keys {
			bid := buildID(k, 1)
			n := 0
			for i := range takers {
				if wins[i][bid] {
					n++
				}
			}
			if n != 1 {
				v.addf("job %s/b1 taken %d times, want exactly once", k, n)
			}
			if _, err := e.world.UpdateJob(prebuilds.UpdateJobParams{BuildID: bid, Status: prebuilds.JobRunning, Now: at}); err != nil {
				t.Fatalf("conformance: the model: take %s: %v (a bug in the suite)", k, err)
			}
		}
		if got, err := e.comparePending(v, 10); err != nil || len(got) != 0 {
			v.addf("after the race PendingJobs = %s, %v; want none", e.describeJobs(got), err)
		}
		v.report(t)
	}
}
