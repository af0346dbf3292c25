package memstore

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// WithReconciliationLock implements prebuilds.Store. The lock is shared by
// every caller of the same *Store (several Reconcilers on one Store behave
// like replicas on one database). It never blocks: when the lock is held it
// returns (false, nil) at once. Otherwise it calls fn and releases the lock
// when fn returns or panics; fn's error is returned with acquired = true.
//
// The reader handed to fn is valid only until fn returns.
func (s *Store) WithReconciliationLock(ctx context.Context, fn func(ctx context.Context, r prebuilds.SnapshotReader) error) (bool, error) {
	if !s.reconcile.TryLock() {
		return false, nil
	}
	r := &reader{s: s, held: true}
	defer func() {
		s.mu.Lock()
		r.held = false
		s.mu.Unlock()
		s.reconcile.Unlock()
	}()
	return true, fn(ctx, r)
}

// WithShardLock implements prebuilds.ShardLocker: the lock of one shard,
// shared by every caller of the same *Store, never blocking, independent of
// the other shards' locks and of WithReconciliationLock's (every Reconciler
// on a store must use the same Config.Shards).
func (s *Store) WithShardLock(ctx context.Context, shard prebuilds.Shard, fn func(ctx context.Context, r prebuilds.SnapshotReader) error) (bool, error) {
	if !shard.Valid() {
		return false, fmt.Errorf("memstore: shard lock %d of %d: %w", shard.Index, shard.Count, prebuilds.ErrInvalidArgument)
	}
	if shard.All() {
		return s.WithReconciliationLock(ctx, fn)
	}
	s.shardMu.Lock()
	l := s.shardLocks[shard]
	if l == nil {
		if s.shardLocks == nil {
			s.shardLocks = map[prebuilds.Shard]*sync.Mutex{}
		}
		l = &sync.Mutex{}
		s.shardLocks[shard] = l
	}
	s.shardMu.Unlock()
	if !l.TryLock() {
		return false, nil
	}
	r := &reader{s: s, held: true}
	defer func() {
		s.mu.Lock()
		r.held = false
		s.mu.Unlock()
		l.Unlock()
	}()
	return true, fn(ctx, r)
}

var _ prebuilds.ShardPassLog = (*Store)(nil)

// shardPasses are one shard's pass numbers: passes begun, and the number
// of the newest that completed.
type shardPasses struct{ begun, completed int64 }

// checkShardPassLog validates a shard for the ShardPassLog methods.
func checkShardPassLog(op string, shard prebuilds.Shard) error {
	if !shard.Valid() || shard.All() || shard.Count > prebuilds.MaxShards {
		return fmt.Errorf("memstore: %s: shard %d of %d is not one of 2..%d shards: %w", op, shard.Index, shard.Count, prebuilds.MaxShards, prebuilds.ErrInvalidArgument)
	}
	return nil
}

// ShardPassesBegun implements prebuilds.ShardPassLog.
func (s *Store) ShardPassesBegun(_ context.Context, count int) ([]int64, error) {
	if count < 2 || count > prebuilds.MaxShards {
		return nil, fmt.Errorf("memstore: shard passes begun: %d shards is not 2..%d: %w", count, prebuilds.MaxShards, prebuilds.ErrInvalidArgument)
	}
	s.shardMu.Lock()
	defer s.shardMu.Unlock()
	begun := make([]int64, count)
	for i := range begun {
		begun[i] = s.shardPasses[prebuilds.Shard{Index: i, Count: count}].begun
	}
	return begun, nil
}

// BeginShardPass implements prebuilds.ShardPassLog.
func (s *Store) BeginShardPass(_ context.Context, shard prebuilds.Shard) (number, completed int64, err error) {
	if err := checkShardPassLog("begin shard pass", shard); err != nil {
		return 0, 0, err
	}
	s.shardMu.Lock()
	defer s.shardMu.Unlock()
	if s.shardPasses == nil {
		s.shardPasses = map[prebuilds.Shard]shardPasses{}
	}
	p := s.shardPasses[shard]
	p.begun++
	s.shardPasses[shard] = p
	return p.begun, p.completed, nil
}

// CompleteShardPass implements prebuilds.ShardPassLog.
func (s *Store) CompleteShardPass(_ context.Context, shard prebuilds.Shard, number int64) error {
	if err := checkShardPassLog("complete shard pass", shard); err != nil {
		return err
	}
	s.shardMu.Lock()
	defer s.shardMu.Unlock()
	p := s.shardPasses[shard]
	if number < 1 || number > p.begun {
		return fmt.Errorf("memstore: complete shard pass %d of shard %d of %d: %d passes have begun: %w",
			number, shard.Index, shard.Count, p.begun, prebuilds.ErrInvalidArgument)
	}
	p.completed = max(p.completed, number)
	s.shardPasses[shard] = p
	return nil
}

// CreatePrebuilds implements prebuilds.Store. All entries are written or
// none.
func (s *Store) CreatePrebuilds(_ context.Context, p prebuilds.CreatePrebuildsParams) ([]prebuilds.Job, error) {
	if len(p.Instances) == 0 {
		return nil, nil
	}
	if p.PresetID == uuid.Nil || p.TemplateVersionID == uuid.Nil {
		return nil, fmt.Errorf("memstore: create prebuilds of preset %s: preset and template version ids are required: %w", p.PresetID, prebuilds.ErrInvalidArgument)
	}
	for i, n := range p.Instances {
		if n.InstanceID == uuid.Nil || n.BuildID == uuid.Nil {
			return nil, fmt.Errorf("memstore: create prebuilds of preset %s: entry %d: instance and build ids are required: %w", p.PresetID, i, prebuilds.ErrInvalidArgument)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	preset, ok := s.presets[p.PresetID]
	if !ok {
		return nil, fmt.Errorf("memstore: create prebuilds of preset %s: %w", p.PresetID, prebuilds.ErrNotFound)
	}
	if preset.TemplateVersionID != p.TemplateVersionID {
		return nil, fmt.Errorf("memstore: create prebuilds of preset %s: preset is on template version %s, not %s: %w",
			p.PresetID, preset.TemplateVersionID, p.TemplateVersionID, prebuilds.ErrConflict)
	}
	instanceIDs := make(map[uuid.UUID]struct{}, len(p.Instances))
	buildIDs := make(map[uuid.UUID]struct{}, len(p.Instances))
	for _, n := range p.Instances {
		if _, ok := s.instances[n.InstanceID]; ok {
			return nil, fmt.Errorf("memstore: create prebuilds of preset %s: instance %s already exists: %w", p.PresetID, n.InstanceID, prebuilds.ErrConflict)
		}
		if _, ok := instanceIDs[n.InstanceID]; ok {
			return nil, fmt.Errorf("memstore: create prebuilds of preset %s: instance %s repeated: %w", p.PresetID, n.InstanceID, prebuilds.ErrConflict)
		}
		if _, ok := s.builds[n.BuildID]; ok {
			return nil, fmt.Errorf("memstore: create prebuilds of preset %s: build %s already exists: %w", p.PresetID, n.BuildID, prebuilds.ErrConflict)
		}
		if _, ok := buildIDs[n.BuildID]; ok {
			return nil, fmt.Errorf("memstore: create prebuilds of preset %s: build %s repeated: %w", p.PresetID, n.BuildID, prebuilds.ErrConflict)
		}
		instanceIDs[n.InstanceID] = struct{}{}
		buildIDs[n.BuildID] = struct{}{}
	}
	templateID := s.versions[preset.TemplateVersionID].TemplateID
	now := prebuilds.Micro(p.Now)
	jobs := make([]prebuilds.Job, 0, len(p.Instances))
	for _, n := range p.Instances {
		b := &prebuilds.Build{
			ID:                n.BuildID,
			InstanceID:        n.InstanceID,
			Number:            1,
			TemplateVersionID: preset.TemplateVersionID,
			PresetID:          preset.ID,
			Transition:        prebuilds.TransitionStart,
			JobStatus:         prebuilds.JobPending,
			Parameters:        cloneParams(preset.Parameters),
			CreatedAt:         now,
		}
		s.addInstance(&instance{Instance: prebuilds.Instance{
			ID:         n.InstanceID,
			OwnerID:    prebuilds.SystemOwner,
			TemplateID: templateID,
			Name:       n.Name,
			CreatedAt:  now,
		}}, b)
		jobs = append(jobs, jobOf(b))
	}
	return jobs, nil
}

// DeletePrebuild implements prebuilds.Store. The check and the write are one
// atomic step with respect to Claim: a claimed prebuild is never deleted.
func (s *Store) DeletePrebuild(_ context.Context, p prebuilds.DeletePrebuildParams) (prebuilds.Job, error) {
	if p.InstanceID == uuid.Nil || p.BuildID == uuid.Nil {
		return prebuilds.Job{}, fmt.Errorf("memstore: delete prebuild %s: instance and build ids are required: %w", p.InstanceID, prebuilds.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[p.InstanceID]
	if !ok {
		return prebuilds.Job{}, fmt.Errorf("memstore: delete prebuild %s: %w", p.InstanceID, prebuilds.ErrNotFound)
	}
	latest := in.latest()
	switch {
	case in.OwnerID != prebuilds.SystemOwner:
		return prebuilds.Job{}, fmt.Errorf("memstore: delete prebuild %s: owned by %s: %w", p.InstanceID, in.OwnerID, prebuilds.ErrConflict)
	case in.Deleted:
		return prebuilds.Job{}, fmt.Errorf("memstore: delete prebuild %s: already deleted: %w", p.InstanceID, prebuilds.ErrConflict)
	case latest.Transition != prebuilds.TransitionStart || latest.JobStatus != prebuilds.JobSucceeded:
		return prebuilds.Job{}, fmt.Errorf("memstore: delete prebuild %s: latest build #%d is %s %s: %w",
			p.InstanceID, latest.Number, latest.Transition, latest.JobStatus, prebuilds.ErrConflict)
	}
	if _, ok := s.builds[p.BuildID]; ok {
		return prebuilds.Job{}, fmt.Errorf("memstore: delete prebuild %s: build %s already exists: %w", p.InstanceID, p.BuildID, prebuilds.ErrConflict)
	}
	b := &prebuilds.Build{
		ID:                p.BuildID,
		InstanceID:        p.InstanceID,
		Number:            latest.Number + 1,
		TemplateVersionID: latest.TemplateVersionID,
		Transition:        prebuilds.TransitionDelete,
		JobStatus:         prebuilds.JobPending,
		CreatedAt:         prebuilds.Micro(p.Now),
	}
	s.appendBuild(in, b)
	return jobOf(b), nil
}

// CancelPending implements prebuilds.Store. It returns the canceled instance
// IDs in byte order (an empty, non-nil slice when there are none).
func (s *Store) CancelPending(_ context.Context, p prebuilds.CancelPendingParams) ([]uuid.UUID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	preset, ok := s.presets[p.PresetID]
	if !ok {
		return nil, fmt.Errorf("memstore: cancel pending of preset %s: %w", p.PresetID, prebuilds.ErrNotFound)
	}
	ids := []uuid.UUID{}
	if s.active(preset) {
		return ids, nil
	}
	now := prebuilds.Micro(p.Now)
	var victims []*instance
	for _, in := range s.live[p.PresetID] {
		if pendingFirstBuild(in) {
			victims = append(victims, in)
		}
	}
	for _, in := range victims {
		b := in.builds[0]
		b.JobStatus = prebuilds.JobCanceled
		b.CompletedAt = now
		s.markDeleted(in)
		ids = append(ids, in.ID)
	}
	slices.SortFunc(ids, prebuilds.CompareUUID)
	return ids, nil
}

// pendingFirstBuild reports whether in's only build is build #1, start,
// pending: queued work no worker has taken.
func pendingFirstBuild(in *instance) bool {
	if len(in.builds) != 1 {
		return false
	}
	b := in.builds[0]
	return b.Transition == prebuilds.TransitionStart && b.JobStatus == prebuilds.JobPending
}

// SetPresetStatus implements prebuilds.Store (compare-and-set).
func (s *Store) SetPresetStatus(_ context.Context, presetID uuid.UUID, from, to prebuilds.PresetStatus) (bool, error) {
	if !from.Valid() || !to.Valid() {
		return false, fmt.Errorf("memstore: set status of preset %s: %q → %q: %w", presetID, from, to, prebuilds.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.presets[presetID]
	if !ok {
		return false, fmt.Errorf("memstore: set status of preset %s: %w", presetID, prebuilds.ErrNotFound)
	}
	if p.Status != from {
		return false, nil
	}
	p.Status = to
	return true, nil
}
