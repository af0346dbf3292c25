package conformance

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Shorthands for the scenario vocabulary.
type (
	op = scenario.Op
)

var (
	epoch = scenario.Epoch
	id    = scenario.ID
)

// buildID is the ID of build n of the instance with key instance.
func buildID(instance string, n int) uuid.UUID { return id(scenario.BuildKey(instance, n)) }

// claimTTL is the TTL of the claim fixtures' preset.
const claimTTL = time.Hour

// claimFixture sets up template t1 with active version v1 and preset p1
// (desired 1, TTL claimTTL) at the epoch, for the case of rule defined at
// pos.
func (s *suite) claimFixture(t *testing.T, rule string, pos scenario.Pos) *env {
	e := s.newEnv(t, epoch, rule, pos)
	e.applyAll(epoch, scenario.AddTemplate{Key: "t1"}, scenario.AddVersion{Key: "v1", Template: "t1"},
		scenario.Activate{Template: "t1", Version: "v1"},
		scenario.UpsertPreset{Key: "p1", Version: "v1", Desired: count(1), TTL: claimTTL})
	return e
}

// prebuildOp creates prebuild key of p1 (template t1, version v1), build #1
// pending.
func prebuildOp(key string) scenario.CreateInstance {
	return scenario.CreateInstance{Key: key, Template: "t1", Version: "v1", Preset: "p1"}
}

// count returns a pointer to n, for desired counts.
func count(n int) *int { return &n }

// jobOp reports status for build #1 of key.
func jobOp(key string, status prebuilds.JobStatus) scenario.UpdateJob {
	return scenario.UpdateJob{Instance: key, Number: 1, Status: status}
}

// readyOps creates prebuild key of p1 whose build #1 succeeded and which
// reported ready.
func readyOps(key string) []op {
	return []op{prebuildOp(key), jobOp(key, prebuilds.JobSucceeded), scenario.SetReady{Instance: key}}
}

// runningOps creates prebuild key of p1 whose build #1 succeeded (not
// ready).
func runningOps(key string) []op { return []op{prebuildOp(key), jobOp(key, prebuilds.JobSucceeded)} }

func (s *suite) claimGroup(t *testing.T) {
	for _, tc := range []struct{ claimers, ready int }{{8, 5}, {5, 8}, {6, 6}} {
		s.run(t, fmt.Sprintf("Exclusivity/claimers=%d,ready=%d", tc.claimers, tc.ready), func(t *testing.T) {
			s.claimExclusivity(t, tc.claimers, tc.ready)
		})
	}
	s.run(t, "VsDelete", s.claimVsDelete)
	s.run(t, "OldestFirst", s.claimOldestFirst)
	for _, tc := range neverClaimable() {
		s.run(t, "NeverClaimable/"+tc.name, func(t *testing.T) { s.claimNever(t, tc) })
	}
	for _, tc := range claimBoundaries() {
		s.run(t, "Boundary/"+tc.name, func(t *testing.T) { s.claimBoundary(t, tc) })
	}
}

type claimOutcome struct {
	owner uuid.UUID
	inst  prebuilds.Instance
	err   error
}

// claimExclusivity: N concurrent claimers and M ready prebuilds give
// exactly min(N, M) distinct claims; the others get
// ErrNoClaimablePrebuild.
func (s *suite) claimExclusivity(t *testing.T, n, m int) {
	rule := "Concurrent claims hand out distinct prebuilds: N claimers of M ready prebuilds get exactly min(N, M) of them, the others ErrNoClaimablePrebuild."
	e := s.claimFixture(t, rule, defined())
	for i := range m {
		e.applyAll(epoch.Add(time.Duration(i+1)*time.Second), readyOps(fmt.Sprintf("i%d", i+1))...)
	}
	now := epoch.Add(time.Minute)
	start := make(chan struct{})
	out := make([]claimOutcome, n)
	var wg sync.WaitGroup
	l := e.labels()
	for i := range n {
		owner := fmt.Sprintf("claimer%d", i)
		l.add(owner)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			inst, err := e.store.Claim(e.ctx, prebuilds.ClaimParams{PresetID: id("p1"), Owner: id(owner), Now: now})
			out[i] = claimOutcome{id(owner), inst, err}
		}()
	}
	close(start)
	wg.Wait()

	v := e.verdict()
	v.object("%d claimers of %s, %d ready prebuilds", n, l.of(id("p1")), m)
	seen := map[uuid.UUID]uuid.UUID{}
	won := 0
	for i, o := range out {
		switch {
		case o.err == nil:
			won++
			if prev, dup := seen[o.inst.ID]; dup {
				v.addf("%s claimed twice: by %s and by %s", l.of(o.inst.ID), l.of(prev), l.of(o.owner))
			}
			seen[o.inst.ID] = o.owner
			if o.inst.OwnerID != o.owner {
				v.addf("claimer %d: returned instance %s has owner %s, want the claimer %s", i, l.of(o.inst.ID), l.of(o.inst.OwnerID), l.of(o.owner))
			}
		case errors.Is(o.err, prebuilds.ErrNoClaimablePrebuild):
		default:
			v.addf("claimer %d: %v, want nil or ErrNoClaimablePrebuild", i, o.err)
		}
	}
	if want := min(n, m); won != want {
		v.addf("%d claims succeeded, want %d", won, want)
	}
	for iid, owner := range seen {
		got, err := e.store.GetInstance(e.ctx, iid)
		if err != nil {
			v.addf("GetInstance(%s): %v", l.of(iid), err)
			continue
		}
		if got.OwnerID != owner || !got.ClaimedAt.Equal(now) {
			v.addf("%s after its claim: owner %s claimed at %s, want owner %s claimed at %s",
				l.of(iid), l.of(got.OwnerID), got.ClaimedAt.Format(time.RFC3339Nano), l.of(owner), now.Format(time.RFC3339Nano))
		}
	}
	_, err := e.store.Claim(e.ctx, prebuilds.ClaimParams{PresetID: id("p1"), Owner: id("late"), Now: now})
	if wantErr := m <= n; wantErr != errors.Is(err, prebuilds.ErrNoClaimablePrebuild) {
		v.addf("a claim after the race returned %v with %d ready prebuilds left", err, m-won)
	}
	v.report(t)
}

// claimVsDelete makes Claim and DeletePrebuild compete for the only
// claimable prebuild, many times, in both serial orders and concurrently:
// exactly one of them wins, and the loser sees ErrNoClaimablePrebuild
// (claim) or ErrConflict (delete). A claimed prebuild is never deleted.
func (s *suite) claimVsDelete(t *testing.T) {
	const (
		iterations = 40
		rule       = "A claim racing a DeletePrebuild of the same prebuild: exactly one wins, the claim loses with ErrNoClaimablePrebuild, the delete with ErrConflict; a claimed prebuild is never deleted."
	)
	e := s.claimFixture(t, rule, defined())
	claims, deletes := 0, 0
	for i := range iterations {
		key := fmt.Sprintf("cd%d", i)
		at := epoch.Add(time.Duration(i+1) * time.Second)
		e.clock.Set(at)
		e.applyAll(at, readyOps(key)...)
		owner := fmt.Sprintf("user%d", i)
		deleteBuild := buildID(key, 2)
		l := e.labels().add(owner, scenario.BuildKey(key, 2))

		var (
			wg       sync.WaitGroup
			claimed  prebuilds.Instance
			claimErr error
			delErr   error
		)
		doClaim := func() {
			claimed, claimErr = e.store.Claim(e.ctx, prebuilds.ClaimParams{PresetID: id("p1"), Owner: id(owner), Now: at})
		}
		doDelete := func() {
			_, delErr = e.store.DeletePrebuild(e.ctx, prebuilds.DeletePrebuildParams{InstanceID: id(key), BuildID: deleteBuild, Now: at})
		}
		order := "claim, then delete"
		switch i % 4 {
		case 0: // the two serial orders first: claim, then delete ...
			doClaim()
			doDelete()
		case 1: // ... and delete, then claim
			order = "delete, then claim"
			doDelete()
			doClaim()
		default: // then truly concurrent, launched in alternating order
			order = "concurrently"
			first, second := doClaim, doDelete
			if i%4 == 3 {
				first, second = second, first
			}
			start := make(chan struct{})
			wg.Add(2)
			for _, f := range []func(){first, second} {
				go func() {
					defer wg.Done()
					<-start
					f()
				}()
			}
			close(start)
			wg.Wait()
		}

		v := e.verdict()
		v.object("prebuild %s", l.of(id(key)))
		v.object("claimant %s", l.of(id(owner)))
		v.note(fmt.Sprintf("iteration %d: claim and delete %s", i, order))
		inst, err := e.store.GetInstance(e.ctx, id(key))
		if err != nil {
			v.fatalf(t, "GetInstance: %v", err)
		}
		builds, err := e.store.ListBuilds(e.ctx, id(key))
		if err != nil || len(builds) == 0 {
			v.fatalf(t, "ListBuilds: %d builds, %v", len(builds), err)
		}
		latest := builds[len(builds)-1]
		switch {
		case claimErr == nil && delErr == nil:
			v.addf("both the claim and the delete succeeded: a claimed prebuild was deleted")
		case claimErr == nil:
			claims++
			if !errors.Is(delErr, prebuilds.ErrConflict) {
				v.addf("the claim won, the delete returned %v, want ErrConflict", delErr)
			}
			if claimed.ID != id(key) || inst.OwnerID != id(owner) || len(builds) != 1 {
				v.addf("the claim won but handed out %s, the owner is %s, %d builds (want %s, owner %s, 1 build)",
					l.of(claimed.ID), l.of(inst.OwnerID), len(builds), key, owner)
			}
		case delErr == nil:
			deletes++
			if !errors.Is(claimErr, prebuilds.ErrNoClaimablePrebuild) {
				v.addf("the delete won, the claim returned %v, want ErrNoClaimablePrebuild", claimErr)
			}
			if inst.OwnerID != prebuilds.SystemOwner || latest.ID != deleteBuild || latest.Transition != prebuilds.TransitionDelete {
				v.addf("the delete won but the owner is %s, the latest build %s %s (want system, the delete build %s)",
					l.of(inst.OwnerID), l.of(latest.ID), latest.Transition, l.of(deleteBuild))
			}
		default:
			v.addf("neither won: claim %v, delete %v", claimErr, delErr)
		}
		v.report(t)
	}
	t.Logf("claim won %d times, delete won %d times", claims, deletes)
}

// claimOldestFirst: sequential claims take the oldest claimable prebuild,
// created_at then instance ID (UUID byte order).
func (s *suite) claimOldestFirst(t *testing.T) {
	e := s.claimFixture(t, ruleClaimOldest, defined())
	created := map[string]time.Duration{"a": 10 * time.Second, "b": 5 * time.Second, "c": 20 * time.Second, "d": 20 * time.Second, "x": 2 * time.Second}
	for _, k := range []string{"b", "a", "c", "d"} {
		e.clock.Set(epoch.Add(created[k]))
		e.applyAll(epoch.Add(created[k]), readyOps(k)...)
	}
	// x is older than all but not ready.
	e.applyAll(epoch.Add(created["x"]), runningOps("x")...)

	want := []string{"b", "a", "c", "d"}
	if prebuilds.CompareUUID(id("d"), id("c")) < 0 {
		want[2], want[3] = "d", "c"
	}
	now := epoch.Add(time.Minute)
	l := e.labels()
	for i, k := range want {
		owner := fmt.Sprintf("user%d", i)
		l.add(owner)
		v := e.verdict()
		var left []string
		for _, c := range want[i:] {
			left = append(left, fmt.Sprintf("%s +%s", c, created[c]))
		}
		v.note("claimable then, oldest first: " + strings.Join(left, ", ") + " (x +2s is not ready)")
		p := prebuilds.ClaimParams{PresetID: id("p1"), Owner: id(owner), Now: now}
		got, err := e.store.Claim(e.ctx, p)
		if err != nil {
			v.object("claim %d of %s", i+1, l.of(id("p1")))
			v.object("wanted %s", l.of(id(k)))
			v.fatalf(t, "the claim failed: %v", err)
		}
		modelGot, err := e.world.Claim(p)
		if err != nil {
			t.Fatalf("conformance: the model's claim %d: %v (a bug in the suite)", i+1, err)
		}
		if got.ID != id(k) {
			v.object("claim %d of %s", i+1, l.of(id("p1")))
			v.object("wanted %s", l.of(id(k)))
			v.object("store took %s", l.of(got.ID))
		}
		v.diff("claimed instance (-model +store)", l.diff(modelGot, got))
		v.report(t)
	}
	v := e.verdict()
	if _, err := e.store.Claim(e.ctx, prebuilds.ClaimParams{PresetID: id("p1"), Owner: id("late"), Now: now}); !errors.Is(err, prebuilds.ErrNoClaimablePrebuild) {
		v.rule = "Claim must refuse with ErrNoClaimablePrebuild when no ready prebuild is left."
		v.object("not ready: %s", l.of(id("x")))
		v.fatalf(t, "a claim with only a not-ready prebuild left returned %v", err)
	}
	// The missed claim is counted (ClaimsMissed) by the store and the model.
	if _, err := e.world.Claim(prebuilds.ClaimParams{PresetID: id("p1"), Owner: id("late"), Now: now}); !errors.Is(err, prebuilds.ErrNoClaimablePrebuild) {
		t.Fatalf("the model's claim with only a not-ready prebuild left returned %v (a bug in the suite)", err)
	}
	e.requireSnapshot(defaultParams(now), "after the claims")
}

type claimCase struct {
	name string
	// state says, for the rule, what makes the prebuild unclaimable.
	state string
	pos   scenario.Pos
	// ops run at epoch+10s, after the fixture; then the claim of p1 at
	// epoch+at.
	ops []op
	// after runs at epoch+20s.
	after []op
	at    time.Duration
}

// never builds a NeverClaimable case, recording where it is defined.
func never(name, state string, ops []op, after []op, at time.Duration) claimCase {
	return claimCase{name: name, state: state, pos: scenario.Here(0), ops: ops, after: after, at: at}
}

func seq(ops ...[]op) []op { return slices.Concat(ops...) }

func neverClaimable() []claimCase {
	const at = time.Minute
	buildOp := func(tr prebuilds.Transition) scenario.StartBuild {
		return scenario.StartBuild{Instance: "i1", Number: 2, Version: "v1", Transition: tr}
	}
	ready := scenario.SetReady{Instance: "i1"}
	p2 := scenario.UpsertPreset{Key: "p2", Version: "v1", Desired: count(1)}
	return []claimCase{
		never("NotReady", "not ready", runningOps("i1"), nil, at),
		never("NotReadyAnyMore", "no longer ready", seq(readyOps("i1"), []op{scenario.SetReady{Instance: "i1", Undo: true}}), nil, at),
		never("Starting", "still starting (build #1 pending)", []op{prebuildOp("i1"), ready}, nil, at),
		never("StartRunning", "still starting (build #1 running)", []op{prebuildOp("i1"), jobOp("i1", prebuilds.JobRunning), ready}, nil, at),
		never("Failed", "failed (build #1 failed)", []op{prebuildOp("i1"), scenario.UpdateJob{Instance: "i1", Number: 1, Status: prebuilds.JobFailed, FailureKind: prebuilds.FailureTransient}, ready}, nil, at),
		never("CanceledStart", "canceled (build #1 canceled)", []op{prebuildOp("i1"), jobOp("i1", prebuilds.JobCanceled), ready}, nil, at),
		never("Stopping", "stopping", seq(readyOps("i1"), []op{buildOp(prebuilds.TransitionStop)}), nil, at),
		never("Stopped", "stopped", seq(readyOps("i1"), []op{buildOp(prebuilds.TransitionStop),
			scenario.UpdateJob{Instance: "i1", Number: 2, Status: prebuilds.JobSucceeded}}), nil, at),
		never("Deleting", "being deleted", seq(readyOps("i1"), []op{buildOp(prebuilds.TransitionDelete)}), nil, at),
		never("RemovedByAdmin", "removed by an admin", seq(readyOps("i1"), []op{scenario.RemoveInstance{Instance: "i1"}}), nil, at),
		never("InactiveOldVersion", "of a preset whose version is no longer active",
			seq(readyOps("i1"), []op{scenario.AddVersion{Key: "v2", Template: "t1"}, scenario.Activate{Template: "t1", Version: "v2"}}), nil, at),
		never("InactiveDeprecated", "of a deprecated template", seq(readyOps("i1"), []op{scenario.Deprecate{Template: "t1"}}), nil, at),
		never("InactiveDeletedTemplate", "of a deleted template", seq(readyOps("i1"), []op{scenario.DeleteTemplate{Template: "t1"}}), nil, at),
		never("AlreadyClaimed", "already claimed", seq(readyOps("i1"), []op{scenario.Claim{Preset: "p1", Want: "i1"}}), nil, at),
		never("UserOwned", "owned by a user", []op{scenario.CreateInstance{Key: "i1", Template: "t1", Version: "v1", Preset: "p1", Owner: "someone"},
			jobOp("i1", prebuilds.JobSucceeded), ready}, nil, at),
		never("MovedToOtherPreset", "moved to another preset (a later start build named it)", []op{p2, prebuildOp("i1"), jobOp("i1", prebuilds.JobSucceeded),
			scenario.StartBuild{Instance: "i1", Number: 2, Version: "v1", Preset: "p2", Transition: prebuilds.TransitionStart},
			scenario.UpdateJob{Instance: "i1", Number: 2, Status: prebuilds.JobSucceeded}, ready}, nil, at),
		never("OtherPreset", "of another preset", []op{p2, scenario.CreateInstance{Key: "i1", Template: "t1", Version: "v1", Preset: "p2"},
			jobOp("i1", prebuilds.JobSucceeded), ready}, nil, at),
	}
}

// claimNever: a prebuild in the case's state is never handed out.
func (s *suite) claimNever(t *testing.T, tc claimCase) {
	e := s.claimFixture(t, "Claim must never hand out a prebuild that is "+tc.state+".", tc.pos)
	setup := epoch.Add(10 * time.Second)
	e.clock.Set(setup)
	e.applyAll(setup, tc.ops...)
	e.clock.Set(epoch.Add(20 * time.Second))
	e.applyAll(epoch.Add(20*time.Second), tc.after...)
	now := epoch.Add(tc.at)
	e.clock.Set(now)
	p := prebuilds.ClaimParams{PresetID: id("p1"), Owner: id("claimant"), Now: now}
	if _, err := e.world.Claim(p); !errors.Is(err, prebuilds.ErrNoClaimablePrebuild) {
		t.Fatalf("conformance: the model claims in state %s (%v): a bug in the suite", tc.name, err)
	}
	l := e.labels()
	v := e.verdict()
	v.object("prebuild %s", l.of(id("i1")))
	inst, err := e.store.Claim(e.ctx, p)
	switch {
	case err == nil:
		v.object("store handed out %s", l.of(inst.ID))
		v.fatalf(t, "the claim at +%s succeeded, want ErrNoClaimablePrebuild", tc.at)
	case !errors.Is(err, prebuilds.ErrNoClaimablePrebuild):
		v.fatalf(t, "the claim returned %s (%v), want ErrNoClaimablePrebuild", errClass(err), err)
	}
	e.requireSnapshot(defaultParams(now), "after the refused claim")
}

// claimBoundary is a claim at the edge of expiry: prebuilds are made ready
// at offsets from the epoch, the preset maybe invalidated, then claims at
// one instant must hand out exactly the listed prebuilds, in order, and
// then refuse.
type claimBoundary struct {
	name, rule string
	pos        scenario.Pos
	// ready lists the prebuilds made ready, by key, with their creation
	// offsets.
	ready map[string]time.Duration
	// invalidate, when set, invalidates p1 at that offset.
	invalidate time.Duration
	at         time.Duration
	// claims lists the prebuilds the claims at `at` take, in order; the
	// next claim must be refused.
	claims []string
}

// claimEdge builds a claim boundary case, recording where it is defined.
func claimEdge(c claimBoundary) claimBoundary {
	c.pos = scenario.Here(0)
	return c
}

// claimBoundaries: claim eligibility on each side of the TTL (expired when
// now − created_at > ttl) and invalidation (expired when created_at <
// invalidated_at) edges. p1's TTL is claimTTL (1h).
func claimBoundaries() []claimBoundary {
	const (
		us      = time.Microsecond
		created = 10 * time.Second
	)
	return []claimBoundary{
		claimEdge(claimBoundary{
			name:  "TTL/Inside",
			rule:  "Claim must hand out a ready prebuild aged exactly its preset's TTL (expired only when now − created_at > ttl), skipping one aged TTL + 1µs.",
			ready: map[string]time.Duration{"expired": created - us, "probe": created},
			at:    created + claimTTL, claims: []string{"probe"},
		}),
		claimEdge(claimBoundary{
			name:  "TTL/Outside",
			rule:  "Claim must refuse a ready prebuild aged its preset's TTL + 1µs.",
			ready: map[string]time.Duration{"probe": created - us},
			at:    created + claimTTL,
		}),
		claimEdge(claimBoundary{
			name:       "Invalidation/Inside",
			rule:       "Claim must hand out a ready prebuild created exactly at its preset's invalidated_at (expired only when created_at < invalidated_at), skipping one created 1µs before.",
			ready:      map[string]time.Duration{"expired": 20*time.Second - us, "probe": 20 * time.Second},
			invalidate: 20 * time.Second, at: time.Minute, claims: []string{"probe"},
		}),
		claimEdge(claimBoundary{
			name:       "Invalidation/Outside",
			rule:       "Claim must refuse a ready prebuild created 1µs before its preset's invalidated_at.",
			ready:      map[string]time.Duration{"probe": 20*time.Second - us},
			invalidate: 20 * time.Second, at: time.Minute,
		}),
	}
}

func (s *suite) claimBoundary(t *testing.T, tc claimBoundary) {
	e := s.claimFixture(t, tc.rule, tc.pos)
	type event struct {
		at  time.Duration
		ops []op
	}
	var events []event
	for k, at := range tc.ready {
		events = append(events, event{at, readyOps(k)})
	}
	if tc.invalidate > 0 {
		events = append(events, event{tc.invalidate, []op{scenario.Invalidate{Preset: "p1"}}})
	}
	slices.SortStableFunc(events, func(a, b event) int { return int(a.at - b.at) })
	for _, ev := range events {
		e.clock.Set(epoch.Add(ev.at))
		e.applyAll(epoch.Add(ev.at), ev.ops...)
	}
	now := epoch.Add(tc.at)
	e.clock.Set(now)
	l := e.labels()
	v := e.verdict()
	var ages []string
	for k, at := range tc.ready {
		ages = append(ages, fmt.Sprintf("%s created +%s", l.of(id(k)), at))
	}
	slices.Sort(ages)
	v.object("%s", strings.Join(ages, ", "))
	v.note(fmt.Sprintf("claims at +%s, TTL %s", tc.at, claimTTL))
	for i := 0; i <= len(tc.claims); i++ {
		p := prebuilds.ClaimParams{PresetID: id("p1"), Owner: id("claimant"), Now: now}
		want, merr := e.world.Claim(p)
		got, err := e.store.Claim(e.ctx, p)
		if i == len(tc.claims) {
			if !errors.Is(merr, prebuilds.ErrNoClaimablePrebuild) {
				t.Fatalf("conformance: the model's claim %d: %v, want ErrNoClaimablePrebuild (a bug in the suite)", i+1, merr)
			}
			if !errors.Is(err, prebuilds.ErrNoClaimablePrebuild) {
				if err == nil {
					v.object("store handed out %s", l.of(got.ID))
				}
				v.fatalf(t, "claim %d returned %s, want ErrNoClaimablePrebuild", i+1, errClass(err))
			}
			break
		}
		if merr != nil || want.ID != id(tc.claims[i]) {
			t.Fatalf("conformance: the model's claim %d: %v, %s (a bug in the suite)", i+1, merr, l.of(want.ID))
		}
		if err != nil {
			v.object("wanted %s", l.of(want.ID))
			v.fatalf(t, "claim %d returned %s (%v), want %s", i+1, errClass(err), err, tc.claims[i])
		}
		if got.ID != want.ID {
			v.object("wanted %s", l.of(want.ID))
			v.object("store took %s", l.of(got.ID))
		}
		v.diff(fmt.Sprintf("claim %d: claimed instance (-model +store)", i+1), l.diff(want, got))
		v.report(t)
	}
	e.requireSnapshot(defaultParams(now), "after the claims")
}
