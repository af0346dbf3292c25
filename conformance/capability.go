package conformance

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// lockFreeSnapshot: Store.Snapshot reads without the reconciliation lock:
// while another holder is inside its pass it returns at once the snapshot
// the model gives, and it does not keep the holder or the next acquirer
// from the lock.
func (s *suite) lockFreeSnapshot(t *testing.T) {
	e := s.claimFixture(t, "Store.Snapshot reads one consistent snapshot without the reconciliation lock: it neither waits for a lock holder nor keeps anyone from the lock.", defined())
	at := epoch.Add(10 * time.Second)
	e.clock.Set(at)
	e.applyAll(at, readyOps("i1")...)
	v := e.verdict()
	ctx, cancel := context.WithTimeout(e.ctx, lockWait)
	defer cancel()
	inside, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		_, err := e.store.WithReconciliationLock(ctx, func(context.Context, prebuilds.SnapshotReader) error {
			close(inside)
			select {
			case <-release:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		done <- err
	}()
	select {
	case <-inside:
	case <-ctx.Done():
		t.Fatalf("WithReconciliationLock never called fn")
	}
	// The lock is held: a lock-free snapshot still answers, exactly.
	diff, objects, _, err := snapshotCompareVia(ctx, e.store, e.world, defaultParams(at), e.labels(), true)
	switch {
	case err != nil:
		v.addf("Store.Snapshot while the lock is held: %v", err)
	case diff != "":
		v.objects = objects
		v.diff("Store.Snapshot while the lock is held (-model +store)", diff)
	}
	close(release)
	if err := <-done; err != nil {
		v.addf("the lock holder: %v", err)
	}
	// And the lock is free for the next acquirer.
	acquired, err := e.store.WithReconciliationLock(ctx, func(context.Context, prebuilds.SnapshotReader) error { return nil })
	if !acquired || err != nil {
		v.addf("WithReconciliationLock after a lock-free snapshot = (%v, %v), want (true, nil)", acquired, err)
	}
	v.report(t)
}

// shardLocks: a store that implements prebuilds.ShardLocker has one lock per
// shard: a held shard refuses another holder at once, other shards and the
// cluster-wide lock stay free, and every shard's lock is released when fn
// returns. Stores without the capability skip it (it is optional; a
// Reconciler with Config.Shards > 1 refuses such a store).
func (s *suite) shardLocks(t *testing.T) {
	e := s.newEnv(t, epoch, "WithShardLock: one holder per shard, never blocking; shards' locks are independent of each other and of the cluster-wide lock.", defined())
	sl, ok := e.store.(prebuilds.ShardLocker)
	if !ok {
		t.Skip("the store does not implement prebuilds.ShardLocker (optional)")
	}
	v := e.verdict()
	ctx, cancel := context.WithTimeout(e.ctx, lockWait)
	defer cancel()
	held := prebuilds.Shard{Index: 1, Count: 3}
	acquired, err := sl.WithShardLock(ctx, held, func(ctx context.Context, _ prebuilds.SnapshotReader) error {
		if ok, err := sl.WithShardLock(ctx, held, func(context.Context, prebuilds.SnapshotReader) error { return nil }); ok || err != nil {
			v.addf("WithShardLock(%+v) while it is held = (%v, %v), want (false, nil)", held, ok, err)
		}
		for _, other := range []prebuilds.Shard{{Index: 0, Count: 3}, {Index: 2, Count: 3}} {
			if ok, err := sl.WithShardLock(ctx, other, func(context.Context, prebuilds.SnapshotReader) error { return nil }); !ok || err != nil {
				v.addf("WithShardLock(%+v) while shard %+v is held = (%v, %v), want (true, nil)", other, held, ok, err)
			}
		}
		if ok, err := e.store.WithReconciliationLock(ctx, func(context.Context, prebuilds.SnapshotReader) error { return nil }); !ok || err != nil {
			v.addf("WithReconciliationLock while shard %+v is held = (%v, %v), want (true, nil)", held, ok, err)
		}
		return nil
	})
	if !acquired || err != nil {
		v.addf("WithShardLock(%+v) = (%v, %v), want (true, nil)", held, acquired, err)
	}
	if ok, err := sl.WithShardLock(ctx, held, func(context.Context, prebuilds.SnapshotReader) error { return nil }); !ok || err != nil {
		v.addf("WithShardLock(%+v) after its holder returned = (%v, %v): not released", held, ok, err)
	}
	if ok, err := sl.WithShardLock(ctx, prebuilds.Shard{Index: 3, Count: 3}, func(context.Context, prebuilds.SnapshotReader) error { return nil }); ok || !errors.Is(err, prebuilds.ErrInvalidArgument) {
		v.addf("WithShardLock of shard 3 of 3 = (%v, %v), want (false, ErrInvalidArgument)", ok, err)
	}
	v.report(t)
}

// shardPassLog: a store that implements prebuilds.ShardPassLog numbers each
// shard's passes from 1 as they begin, keeps the newest completed number
// (never decreasing), keeps shards and shard counts apart, and refuses bad
// input (a shard count outside 2..MaxShards, a pass number not begun) with
// ErrInvalidArgument without changing anything. Stores without
// the capability skip it (it is optional).
func (s *suite) shardPassLog(t *testing.T) {
	e := s.newEnv(t, epoch, "ShardPassLog numbers a shard's passes from 1 as they begin and keeps the newest completed number, per shard and shard count; bad input is ErrInvalidArgument and changes nothing.", defined())
	pl, ok := e.store.(prebuilds.ShardPassLog)
	if !ok {
		t.Skip("the store does not implement prebuilds.ShardPassLog (optional)")
	}
	v := e.verdict()
	ctx := e.ctx
	one := prebuilds.Shard{Index: 1, Count: 3}
	begun := func(count int, want ...int64) {
		got, err := pl.ShardPassesBegun(ctx, count)
		if err != nil || !slices.Equal(got, want) {
			v.addf("ShardPassesBegun(%d) = (%v, %v), want (%v, nil)", count, got, err, want)
		}
	}
	begin := func(shard prebuilds.Shard, number, completed int64) {
		n, c, err := pl.BeginShardPass(ctx, shard)
		if err != nil || n != number || c != completed {
			v.addf("BeginShardPass(%+v) = (%d, %d, %v), want (%d, %d, nil)", shard, n, c, err, number, completed)
		}
	}
	complete := func(shard prebuilds.Shard, number int64) {
		if err := pl.CompleteShardPass(ctx, shard, number); err != nil {
			v.addf("CompleteShardPass(%+v, %d) = %v, want nil", shard, number, err)
		}
	}
	invalid := func(what string, err error) {
		if !errors.Is(err, prebuilds.ErrInvalidArgument) {
			v.addf("%s = %v, want ErrInvalidArgument", what, err)
		}
	}

	begun(3, 0, 0, 0)
	begin(one, 1, 0)
	begin(one, 2, 0)
	complete(one, 2)
	begin(one, 3, 2)
	complete(one, 1) // an older pass completing late: the newest stays 2
	begin(one, 4, 2)
	begun(3, 0, 4, 0)
	begun(2, 0, 0) // another shard count is another set of shards
	begin(prebuilds.Shard{Index: 1, Count: 2}, 1, 0)

	for _, bad := range []prebuilds.Shard{{}, {Index: 0, Count: 1}, {Index: 3, Count: 3}, {Index: -1, Count: 3},
		{Index: 0, Count: prebuilds.MaxShards + 1}} {
		_, _, err := pl.BeginShardPass(ctx, bad)
		invalid(fmt.Sprintf("BeginShardPass(%+v)", bad), err)
		invalid(fmt.Sprintf("CompleteShardPass(%+v, 1)", bad), pl.CompleteShardPass(ctx, bad, 1))
	}
	for _, count := range []int{-1, 0, 1, prebuilds.MaxShards + 1} {
		_, err := pl.ShardPassesBegun(ctx, count)
		invalid(fmt.Sprintf("ShardPassesBegun(%d)", count), err)
	}
	invalid("CompleteShardPass of a pass that has not begun (5 of 4)", pl.CompleteShardPass(ctx, one, 5))
	invalid("CompleteShardPass of pass 0", pl.CompleteShardPass(ctx, one, 0))
	invalid("CompleteShardPass of pass -1", pl.CompleteShardPass(ctx, one, -1))
	invalid("CompleteShardPass of pass MaxInt64", pl.CompleteShardPass(ctx, one, math.MaxInt64))
	invalid("CompleteShardPass of a shard never passed", pl.CompleteShardPass(ctx, prebuilds.Shard{Index: 0, Count: 3}, 1))
	// Nothing above changed the log.
	begun(3, 0, 4, 0)
	begin(one, 5, 2)
	v.report(t)
}

// changeFeed: a store that implements prebuilds.ChangeFeed delivers, after
// the write committed, a change naming the preset of every claim, terminal
// job update and preset write, in commit order; failed writes and the
// Reconciler's own writes deliver nothing. Stores without the capability
// skip it (it is optional).
func (s *suite) changeFeed(t *testing.T) {
	e := s.newEnv(t, epoch, "Changes delivers, after each commit, the preset of every claim, terminal job update and preset write; failed writes and the Reconciler's own writes are not changes.", defined())
	feed, ok := e.store.(prebuilds.ChangeFeed)
	if !ok {
		t.Skip("the store does not implement prebuilds.ChangeFeed (optional)")
	}
	at := epoch.Add(10 * time.Second)
	e.clock.Set(at)
	e.applyAll(at, scenario.AddTemplate{Key: "t1"}, scenario.AddVersion{Key: "v1", Template: "t1"},
		scenario.Activate{Template: "t1", Version: "v1"}, scenario.UpsertPreset{Key: "p1", Version: "v1", Desired: count(1)},
		scenario.UpsertPreset{Key: "p2", Version: "v1", Desired: count(1)})
	ctx, cancel := context.WithTimeout(e.ctx, lockWait)
	defer cancel()
	changes, err := feed.Changes(ctx)
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	l := e.labels()
	v := e.verdict()
	next := func(what string, want prebuilds.Change) {
		select {
		case c, ok := <-changes:
			switch {
			case !ok:
				v.fatalf(t, "%s: the feed closed", what)
			case c != want:
				v.addf("%s: got change {%s %s}, want {%s %s}", what, l.of(c.PresetID), c.Kind, l.of(want.PresetID), want.Kind)
			}
		case <-ctx.Done():
			v.fatalf(t, "%s: no change within %s", what, lockWait)
		}
	}
	// The Reconciler's write and a failed write deliver nothing: the next
	// change is the claim's, of p2.
	if _, err := e.store.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{PresetID: id("p1"), TemplateVersionID: id("v1"),
		Instances: []prebuilds.NewPrebuild{{InstanceID: id("r1"), BuildID: buildID("r1", 1), Name: "r1"}}, Now: at}); err != nil {
		t.Fatalf("CreatePrebuilds: %v", err)
	}
	if err := e.store.InvalidatePreset(ctx, id("p9"), at); !errors.Is(err, prebuilds.ErrNotFound) {
		t.Fatalf("InvalidatePreset of a missing preset: %v", err)
	}
	if _, err := e.store.Claim(ctx, prebuilds.ClaimParams{PresetID: id("p2"), Owner: id("alice"), Now: at}); !errors.Is(err, prebuilds.ErrNoClaimablePrebuild) {
		t.Fatalf("Claim from an empty pool: %v", err)
	}
	next("a missed claim of p2", prebuilds.Change{PresetID: id("p2"), Kind: prebuilds.ChangeClaimed})
	if _, err := e.store.UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: buildID("r1", 1), Status: prebuilds.JobSucceeded, Now: at}); err != nil {
		t.Fatalf("UpdateJob: %v", err)
	}
	next("build #1 of r1 (p1) succeeded", prebuilds.Change{PresetID: id("p1"), Kind: prebuilds.ChangeJobCompleted})
	if err := e.store.ResetPreset(ctx, id("p2"), at); err != nil {
		t.Fatalf("ResetPreset: %v", err)
	}
	next("p2 reset", prebuilds.Change{PresetID: id("p2"), Kind: prebuilds.ChangePresetWritten})
	cancel()
	for range changes { // the feed closes with its context
	}
	v.report(t)
}
