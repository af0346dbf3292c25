package memstore

import (
	"maps"
	"sync"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Compile-time proof that Store implements both interfaces.
var (
	_ prebuilds.Store        = (*Store)(nil)
	_ prebuilds.ControlPlane = (*Store)(nil)
	_ prebuilds.ShardLocker  = (*Store)(nil)
)

// Store is an in-memory prebuilds.Store and prebuilds.ControlPlane. The zero
// value is not usable; create one with New. A Store is safe for concurrent
// use; see the package documentation for its guarantees.
type Store struct {
	// reconcile is the reconciliation lock. It is only ever taken with
	// TryLock and is independent of mu, so fn may write through the Store
	// while holding it.
	reconcile sync.Mutex
	// shardLocks are the shards' reconciliation locks (ShardLocker),
	// created on first use under shardMu; like reconcile, only TryLock'ed.
	shardMu    sync.Mutex
	shardLocks map[prebuilds.Shard]*sync.Mutex
	// shardPasses is the ShardPassLog, under shardMu.
	shardPasses map[prebuilds.Shard]shardPasses

	// mu guards everything below. Every operation holds it for its whole
	// duration, which makes each operation atomic (a transaction).
	mu sync.RWMutex

	paused    bool
	templates map[uuid.UUID]*prebuilds.Template
	versions  map[uuid.UUID]*prebuilds.TemplateVersion
	presets   map[uuid.UUID]*prebuilds.Preset
	// presetOrder lists presets in insertion order, so snapshots are
	// deterministic without sorting.
	presetOrder []*prebuilds.Preset
	// presetsByVersion indexes presets by their template version (name
	// uniqueness checks).
	presetsByVersion map[uuid.UUID][]*prebuilds.Preset
	instances        map[uuid.UUID]*instance
	builds           map[uuid.UUID]*prebuilds.Build
	// live indexes SystemOwner-owned, not-deleted instances that have a
	// current preset, by that preset. Every snapshot row but the counters
	// is computed from it alone.
	live map[uuid.UUID][]*instance
	// liveCount is the number of instances in live and configured the
	// number of presets with a desired count: they size snapshot slices.
	liveCount  int
	configured int
	// counters are the cumulative per-preset totals, maintained on write.
	counters map[uuid.UUID]*prebuilds.PresetCounters
	// outcomes are the results of prebuilds' first builds by preset (the
	// adaptive policy's O(P)), maintained on write.
	outcomes map[uuid.UUID]*outcomeLog

	// feed fans committed changes out to ChangeFeed subscribers. It has its
	// own lock, never taken while holding mu.
	feed feed
	// pending holds exactly the builds whose job is pending on instances
	// that are not deleted: what PendingJobs lists. It is maintained on
	// every write that changes a job status or deletes an instance.
	pending map[uuid.UUID]*prebuilds.Build
}

// instance is an instance with its builds and derived attributes.
type instance struct {
	prebuilds.Instance
	// builds are ordered by number: builds[i].Number == i+1.
	builds []*prebuilds.Build
	// current is the preset of the most recent start build that has one.
	current uuid.UUID
	// counted is the preset whose counters this instance feeds: build #1's
	// preset when the instance was created with owner SystemOwner.
	counted uuid.UUID
	// filed is the key under which the instance sits in Store.live, or
	// uuid.Nil when it is not there; pos is its index in that bucket.
	filed uuid.UUID
	pos   int
}

func (in *instance) latest() *prebuilds.Build { return in.builds[len(in.builds)-1] }

// New returns an empty Store: no templates, not paused.
func New() *Store {
	return &Store{
		templates:        make(map[uuid.UUID]*prebuilds.Template),
		versions:         make(map[uuid.UUID]*prebuilds.TemplateVersion),
		presets:          make(map[uuid.UUID]*prebuilds.Preset),
		presetsByVersion: make(map[uuid.UUID][]*prebuilds.Preset),
		instances:        make(map[uuid.UUID]*instance),
		builds:           make(map[uuid.UUID]*prebuilds.Build),
		live:             make(map[uuid.UUID][]*instance),
		counters:         make(map[uuid.UUID]*prebuilds.PresetCounters),
		outcomes:         make(map[uuid.UUID]*outcomeLog),
		pending:          make(map[uuid.UUID]*prebuilds.Build),
	}
}

// refile moves in to the live bucket it belongs in after a change of owner,
// deleted flag or current preset. Callers hold s.mu.
func (s *Store) refile(in *instance) {
	want := uuid.Nil
	if in.OwnerID == prebuilds.SystemOwner && !in.Deleted {
		want = in.current
	}
	if want == in.filed {
		return
	}
	if in.filed != uuid.Nil {
		// Swap-remove from the old bucket.
		bucket := s.live[in.filed]
		last := len(bucket) - 1
		bucket[in.pos] = bucket[last]
		bucket[in.pos].pos = in.pos
		bucket[last] = nil
		if last == 0 {
			delete(s.live, in.filed)
		} else {
			s.live[in.filed] = bucket[:last]
		}
		s.liveCount--
	}
	if want != uuid.Nil {
		in.pos = len(s.live[want])
		s.live[want] = append(s.live[want], in)
		s.liveCount++
	}
	in.filed = want
}

// addInstance inserts in with build #1 and maintains every index. Callers
// hold s.mu and have checked that the IDs are free.
func (s *Store) addInstance(in *instance, b1 *prebuilds.Build) {
	in.builds = []*prebuilds.Build{b1}
	if b1.Transition == prebuilds.TransitionStart && b1.PresetID != uuid.Nil {
		in.current = b1.PresetID
	}
	if in.OwnerID == prebuilds.SystemOwner && b1.PresetID != uuid.Nil {
		in.counted = b1.PresetID
		s.counter(b1.PresetID).Created++
	}
	s.instances[in.ID] = in
	s.builds[b1.ID] = b1
	s.refile(in)
	s.syncPending(in, b1)
}

// appendBuild adds b as in's next build. Callers hold s.mu.
func (s *Store) appendBuild(in *instance, b *prebuilds.Build) {
	in.builds = append(in.builds, b)
	s.builds[b.ID] = b
	if b.Transition == prebuilds.TransitionStart && b.PresetID != uuid.Nil {
		in.current = b.PresetID
		s.refile(in)
	}
	s.syncPending(in, b)
}

// syncPending files b in s.pending, or takes it out, after a change of its
// job status or of in's deleted flag. Callers hold s.mu.
func (s *Store) syncPending(in *instance, b *prebuilds.Build) {
	if b.JobStatus == prebuilds.JobPending && !in.Deleted {
		s.pending[b.ID] = b
	} else {
		delete(s.pending, b.ID)
	}
}

// markDeleted marks in deleted and maintains the indexes. Callers hold
// s.mu.
func (s *Store) markDeleted(in *instance) {
	in.Deleted = true
	s.refile(in)
	for _, b := range in.builds {
		s.syncPending(in, b)
	}
}

func (s *Store) counter(presetID uuid.UUID) *prebuilds.PresetCounters {
	c := s.counters[presetID]
	if c == nil {
		c = &prebuilds.PresetCounters{PresetID: presetID}
		s.counters[presetID] = c
	}
	return c
}

// active reports whether p is active (docs/spec.md, "Vocabulary"). Callers hold s.mu.
func (s *Store) active(p *prebuilds.Preset) bool {
	t := s.templateOf(p)
	return t != nil && t.ActiveVersionID == p.TemplateVersionID && !t.Deprecated && !t.Deleted
}

// templateOf returns the template of p's version. Callers hold s.mu.
func (s *Store) templateOf(p *prebuilds.Preset) *prebuilds.Template {
	v := s.versions[p.TemplateVersionID]
	if v == nil {
		return nil
	}
	return s.templates[v.TemplateID]
}

// cloneParams copies a parameter map; an empty map comes back nil.
func cloneParams(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

func cloneBuild(b *prebuilds.Build) prebuilds.Build {
	c := *b
	c.Parameters = cloneParams(b.Parameters)
	return c
}

func jobOf(b *prebuilds.Build) prebuilds.Job {
	return prebuilds.Job{
		BuildID:           b.ID,
		InstanceID:        b.InstanceID,
		PresetID:          b.PresetID,
		TemplateVersionID: b.TemplateVersionID,
		Transition:        b.Transition,
		Parameters:        cloneParams(b.Parameters),
	}
}
