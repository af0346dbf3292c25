package conformance

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// claimTTL is the TTL of the claim fixtures' preset.
const claimTTL = time.Hour

// claimFixture sets up template t1 with active version v1 and preset p1
// (desired 1, TTL claimTTL) at Epoch.
func (s *suite) claimFixture(t *testing.T) *env {
	e := s.newEnv(t, Epoch)
	p := UpsertPreset{Key: "p1", Version: "v1", Desired: count(1), TTL: claimTTL}
	e.applyAll(Epoch, AddTemplate{"t1"}, AddVersion{"v1", "t1"}, Activate{"t1", "v1"}, p)
	return e
}

// prebuildOp creates prebuild key of p1 (template t1, version v1), build #1
// pending.
func prebuildOp(key string) CreateInstance {
	return CreateInstance{Key: key, Template: "t1", Version: "v1", Preset: "p1"}
}

// count returns a pointer to n, for desired counts.
func count(n int) *int { return &n }

// readyOps creates prebuild key of p1 whose build #1 succeeded and which
// reported ready.
func readyOps(key string) []Op {
	return []Op{prebuildOp(key), UpdateJob{key, 1, prebuilds.JobSucceeded, ""}, SetReady{Instance: key}}
}

func (s *suite) claims(t *testing.T) {
	for _, tc := range []struct{ claimers, ready int }{{8, 5}, {5, 8}, {6, 6}} {
		t.Run(fmt.Sprintf("Exclusivity/claimers=%d,ready=%d", tc.claimers, tc.ready), func(t *testing.T) {
			s.parallel(t)
			s.claimExclusivity(t, tc.claimers, tc.ready)
		})
	}
	t.Run("VsDelete", func(t *testing.T) { s.parallel(t); s.claimVsDelete(t) })
	t.Run("OldestFirst", func(t *testing.T) { s.parallel(t); s.claimOldestFirst(t) })
	for _, tc := range neverClaimable() {
		t.Run("NeverClaimable/"+tc.name, func(t *testing.T) {
			s.parallel(t)
			s.claimNever(t, tc)
		})
	}
	t.Run("Claimable", func(t *testing.T) { s.parallel(t); s.claimable(t) })
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
	e := s.claimFixture(t)
	for i := range m {
		e.applyAll(Epoch.Add(time.Duration(i+1)*time.Second), readyOps(fmt.Sprintf("i%d", i+1))...)
	}
	now := Epoch.Add(time.Minute)
	start := make(chan struct{})
	out := make([]claimOutcome, n)
	var wg sync.WaitGroup
	for i := range n {
		owner := ID(fmt.Sprintf("claimer%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			inst, err := e.store.Claim(e.ctx, prebuilds.ClaimParams{PresetID: ID("p1"), Owner: owner, Now: now})
			out[i] = claimOutcome{owner, inst, err}
		}()
	}
	close(start)
	wg.Wait()

	seen := map[uuid.UUID]uuid.UUID{}
	won := 0
	for i, o := range out {
		switch {
		case o.err == nil:
			won++
			if prev, dup := seen[o.inst.ID]; dup {
				t.Errorf("instance %s claimed twice: by %s and by %s", o.inst.ID, prev, o.owner)
			}
			seen[o.inst.ID] = o.owner
			if o.inst.OwnerID != o.owner {
				t.Errorf("claimer %d: returned instance has owner %s, want the claimer %s", i, o.inst.OwnerID, o.owner)
			}
		case errors.Is(o.err, prebuilds.ErrNoClaimablePrebuild):
		default:
			t.Errorf("claimer %d: %v, want nil or ErrNoClaimablePrebuild", i, o.err)
		}
	}
	if want := min(n, m); won != want {
		t.Fatalf("%d claimers, %d ready prebuilds: %d claims succeeded, want %d", n, m, won, want)
	}
	for id, owner := range seen {
		got, err := e.store.GetInstance(e.ctx, id)
		if err != nil {
			t.Fatalf("GetInstance(%s): %v", id, err)
		}
		if got.OwnerID != owner || !got.ClaimedAt.Equal(now) {
			t.Errorf("instance %s after claim: owner %s claimed at %s, want owner %s claimed at %s", id, got.OwnerID, got.ClaimedAt, owner, now)
		}
	}
	_, err := e.store.Claim(e.ctx, prebuilds.ClaimParams{PresetID: ID("p1"), Owner: ID("late"), Now: now})
	if wantErr := m <= n; wantErr != errors.Is(err, prebuilds.ErrNoClaimablePrebuild) {
		t.Fatalf("claim after the race: %v (ready prebuilds left: %d)", err, m-won)
	}
}

// claimVsDelete makes Claim and DeletePrebuild compete for the only
// claimable prebuild, many times, in both serial orders and concurrently:
// exactly one of them wins, and the loser sees ErrNoClaimablePrebuild
// (claim) or ErrConflict (delete). A claimed prebuild is never deleted.
func (s *suite) claimVsDelete(t *testing.T) {
	const iterations = 40
	e := s.claimFixture(t)
	claims, deletes := 0, 0
	for i := range iterations {
		key := fmt.Sprintf("cd%d", i)
		at := Epoch.Add(time.Duration(i+1) * time.Second)
		e.clock.Set(at)
		e.applyAll(at, readyOps(key)...)
		owner := ID(fmt.Sprintf("user%d", i))
		deleteBuild := ID(BuildKey(key, 2))

		var (
			wg       sync.WaitGroup
			claimed  prebuilds.Instance
			claimErr error
			delErr   error
		)
		doClaim := func() {
			claimed, claimErr = e.store.Claim(e.ctx, prebuilds.ClaimParams{PresetID: ID("p1"), Owner: owner, Now: at})
		}
		doDelete := func() {
			_, delErr = e.store.DeletePrebuild(e.ctx, prebuilds.DeletePrebuildParams{InstanceID: ID(key), BuildID: deleteBuild, Now: at})
		}
		switch i % 4 {
		case 0: // the two serial orders first: claim, then delete ...
			doClaim()
			doDelete()
		case 1: // ... and delete, then claim
			doDelete()
			doClaim()
		default: // then truly concurrent, launched in alternating order
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

		inst, err := e.store.GetInstance(e.ctx, ID(key))
		if err != nil {
			t.Fatalf("iteration %d: GetInstance: %v", i, err)
		}
		builds, err := e.store.ListBuilds(e.ctx, ID(key))
		if err != nil {
			t.Fatalf("iteration %d: ListBuilds: %v", i, err)
		}
		latest := builds[len(builds)-1]
		switch {
		case claimErr == nil && delErr == nil:
			t.Fatalf("iteration %d: both the claim and the delete of %s succeeded: a claimed prebuild was deleted", i, key)
		case claimErr == nil:
			claims++
			if !errors.Is(delErr, prebuilds.ErrConflict) {
				t.Fatalf("iteration %d: claim won, delete returned %v, want ErrConflict", i, delErr)
			}
			if claimed.ID != ID(key) || inst.OwnerID != owner || len(builds) != 1 {
				t.Fatalf("iteration %d: claim won but claimed %s (want %s), owner %s (want %s), %d builds (want 1)",
					i, claimed.ID, ID(key), inst.OwnerID, owner, len(builds))
			}
		case delErr == nil:
			deletes++
			if !errors.Is(claimErr, prebuilds.ErrNoClaimablePrebuild) {
				t.Fatalf("iteration %d: delete won, claim returned %v, want ErrNoClaimablePrebuild", i, claimErr)
			}
			if inst.OwnerID != prebuilds.SystemOwner || latest.ID != deleteBuild || latest.Transition != prebuilds.TransitionDelete {
				t.Fatalf("iteration %d: delete won but owner is %s, latest build %s %s (want SystemOwner, delete build %s)",
					i, inst.OwnerID, latest.ID, latest.Transition, deleteBuild)
			}
		default:
			t.Fatalf("iteration %d: neither won: claim %v, delete %v", i, claimErr, delErr)
		}
	}
	t.Logf("claim won %d times, delete won %d times", claims, deletes)
}

// claimOldestFirst: sequential claims take the oldest claimable prebuild,
// created_at then instance ID (UUID byte order).
func (s *suite) claimOldestFirst(t *testing.T) {
	e := s.claimFixture(t)
	created := map[string]time.Duration{"a": 10 * time.Second, "b": 5 * time.Second, "c": 20 * time.Second, "d": 20 * time.Second, "x": 2 * time.Second}
	for _, k := range []string{"b", "a", "c", "d"} {
		e.clock.Set(Epoch.Add(created[k]))
		e.applyAll(Epoch.Add(created[k]), readyOps(k)...)
	}
	// x is older than all but not ready.
	e.apply(prebuildOp("x"), Epoch.Add(created["x"]))
	e.apply(UpdateJob{"x", 1, prebuilds.JobSucceeded, ""}, Epoch.Add(created["x"]))

	want := []string{"b", "a", "c", "d"}
	if prebuilds.CompareUUID(ID("d"), ID("c")) < 0 {
		want[2], want[3] = "d", "c"
	}
	now := Epoch.Add(time.Minute)
	for i, k := range want {
		owner := ID(fmt.Sprintf("user%d", i))
		got, err := e.store.Claim(e.ctx, prebuilds.ClaimParams{PresetID: ID("p1"), Owner: owner, Now: now})
		if err != nil {
			t.Fatalf("claim %d: %v, want instance %s", i+1, err, k)
		}
		if got.ID != ID(k) {
			t.Fatalf("claim %d took %s, want the oldest claimable %s (%s); claims must take created_at, then instance ID order",
				i+1, got.ID, k, ID(k))
		}
		modelGot, err := e.world.Claim(prebuilds.ClaimParams{PresetID: ID("p1"), Owner: owner, Now: now})
		if err != nil {
			t.Fatalf("model claim %d: %v", i+1, err)
		}
		if diff := cmp.Diff(modelGot, got); diff != "" {
			t.Fatalf("claim %d: returned instance (-model +store):\n%s", i+1, diff)
		}
	}
	if _, err := e.store.Claim(e.ctx, prebuilds.ClaimParams{PresetID: ID("p1"), Owner: ID("late"), Now: now}); !errors.Is(err, prebuilds.ErrNoClaimablePrebuild) {
		t.Fatalf("claim with only a not-ready prebuild left: %v, want ErrNoClaimablePrebuild", err)
	}
	if _, err := e.world.Claim(prebuilds.ClaimParams{PresetID: ID("p1"), Owner: ID("late"), Now: now}); !errors.Is(err, prebuilds.ErrNoClaimablePrebuild) {
		t.Fatalf("model claim with only a not-ready prebuild left: %v (a bug in the suite)", err)
	}
	e.requireSnapshot(passConfig{DefaultConfig}.params(now), "after the claims")
}

type claimCase struct {
	name string
	// ops run at Epoch+10s, after the fixture; then the claim of p1 at
	// Epoch+at.
	ops []Op
	// after runs at Epoch+20s.
	after []Op
	at    time.Duration
}

func seq(ops ...[]Op) []Op { return slices.Concat(ops...) }

func neverClaimable() []claimCase {
	const at = time.Minute
	running := func(k string) []Op { return []Op{prebuildOp(k), UpdateJob{k, 1, prebuilds.JobSucceeded, ""}} }
	p2 := UpsertPreset{Key: "p2", Version: "v1", Desired: count(1)}
	return []claimCase{
		{name: "NotReady", ops: running("i1"), at: at},
		{name: "NotReadyAnyMore", ops: seq(readyOps("i1"), []Op{SetReady{Instance: "i1", Undo: true}}), at: at},
		{name: "Starting", ops: []Op{prebuildOp("i1"), SetReady{Instance: "i1"}}, at: at},
		{name: "StartRunning", ops: []Op{prebuildOp("i1"), UpdateJob{"i1", 1, prebuilds.JobRunning, ""}, SetReady{Instance: "i1"}}, at: at},
		{name: "Failed", ops: []Op{prebuildOp("i1"), UpdateJob{"i1", 1, prebuilds.JobFailed, prebuilds.FailureTransient}, SetReady{Instance: "i1"}}, at: at},
		{name: "CanceledStart", ops: []Op{prebuildOp("i1"), UpdateJob{"i1", 1, prebuilds.JobCanceled, ""}, SetReady{Instance: "i1"}}, at: at},
		{name: "Stopping", ops: seq(readyOps("i1"), []Op{StartBuild{Instance: "i1", Number: 2, Version: "v1", Transition: prebuilds.TransitionStop}}), at: at},
		{name: "Stopped", ops: seq(readyOps("i1"), []Op{StartBuild{Instance: "i1", Number: 2, Version: "v1", Transition: prebuilds.TransitionStop},
			UpdateJob{"i1", 2, prebuilds.JobSucceeded, ""}}), at: at},
		{name: "Deleting", ops: seq(readyOps("i1"), []Op{StartBuild{Instance: "i1", Number: 2, Version: "v1", Transition: prebuilds.TransitionDelete}}), at: at},
		{name: "RemovedByAdmin", ops: seq(readyOps("i1"), []Op{RemoveInstance{"i1"}}), at: at},
		{name: "ExpiredTTL", ops: readyOps("i1"), at: 10*time.Second + claimTTL + time.Microsecond},
		{name: "Invalidated", ops: readyOps("i1"), after: []Op{Invalidate{"p1"}}, at: at},
		{name: "InactiveOldVersion", ops: seq(readyOps("i1"), []Op{AddVersion{"v2", "t1"}, Activate{"t1", "v2"}}), at: at},
		{name: "InactiveDeprecated", ops: seq(readyOps("i1"), []Op{Deprecate{Template: "t1"}}), at: at},
		{name: "InactiveDeletedTemplate", ops: seq(readyOps("i1"), []Op{DeleteTemplate{"t1"}}), at: at},
		{name: "AlreadyClaimed", ops: seq(readyOps("i1"), []Op{Claim{Preset: "p1", Want: "i1"}}), at: at},
		{name: "UserOwned", ops: []Op{CreateInstance{Key: "i1", Template: "t1", Version: "v1", Preset: "p1", Owner: "someone"},
			UpdateJob{"i1", 1, prebuilds.JobSucceeded, ""}, SetReady{Instance: "i1"}}, at: at},
		{name: "OtherPreset", ops: []Op{p2, CreateInstance{Key: "i1", Template: "t1", Version: "v1", Preset: "p2"},
			UpdateJob{"i1", 1, prebuilds.JobSucceeded, ""}, SetReady{Instance: "i1"}}, at: at},
	}
}

// claimNever: a prebuild in the case's state is never handed out.
func (s *suite) claimNever(t *testing.T, tc claimCase) {
	e := s.claimFixture(t)
	setup := Epoch.Add(10 * time.Second)
	e.clock.Set(setup)
	e.applyAll(setup, tc.ops...)
	e.clock.Set(Epoch.Add(20 * time.Second))
	e.applyAll(Epoch.Add(20*time.Second), tc.after...)
	now := Epoch.Add(tc.at)
	e.clock.Set(now)
	p := prebuilds.ClaimParams{PresetID: ID("p1"), Owner: ID("claimant"), Now: now}
	if _, err := e.world.Claim(p); !errors.Is(err, prebuilds.ErrNoClaimablePrebuild) {
		t.Fatalf("the model claims in this state (%v): a bug in the suite", err)
	}
	inst, err := e.store.Claim(e.ctx, p)
	if err == nil {
		t.Fatalf("claimed instance %s (%s): it must not be claimable in state %s", inst.ID, inst.Name, tc.name)
	}
	if !errors.Is(err, prebuilds.ErrNoClaimablePrebuild) {
		t.Fatalf("Claim: %v, want ErrNoClaimablePrebuild", err)
	}
	e.requireSnapshot(passConfig{DefaultConfig}.params(now), "after the failed claim")
}

// claimable is the positive control of NeverClaimable: a ready running
// prebuild is claimable up to and including age = TTL.
func (s *suite) claimable(t *testing.T) {
	e := s.claimFixture(t)
	setup := Epoch.Add(10 * time.Second)
	e.clock.Set(setup)
	e.applyAll(setup, readyOps("i1")...)
	now := setup.Add(claimTTL)
	e.clock.Set(now)
	p := prebuilds.ClaimParams{PresetID: ID("p1"), Owner: ID("claimant"), Now: now}
	want, err := e.world.Claim(p)
	if err != nil {
		t.Fatalf("model: %v", err)
	}
	got, err := e.store.Claim(e.ctx, p)
	if err != nil {
		t.Fatalf("Claim of a ready prebuild aged exactly the TTL: %v, want success", err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("claimed instance (-model +store):\n%s", diff)
	}
	e.requireSnapshot(passConfig{DefaultConfig}.params(now), "after the claim")
}
