package conformance

import (
	"context"
	"slices"
	"sync"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// writeKind names a Store write.
type writeKind string

// Write kinds, one per writing method of prebuilds.Store.
const (
	writeCreatePrebuilds writeKind = "create_prebuilds"
	writeDeletePrebuild  writeKind = "delete_prebuild"
	writeCancelPending   writeKind = "cancel_pending"
	writeSetPresetStatus writeKind = "set_preset_status"
	writeFailStuckBuild  writeKind = "fail_stuck_build"
)

// write is one call of a writing Store method, with its inputs and results.
// Only the fields of its Kind are set.
type write struct {
	Kind writeKind
	// Create, Jobs: CreatePrebuilds' params and returned jobs.
	Create prebuilds.CreatePrebuildsParams
	// Delete, Job: DeletePrebuild's params and returned job.
	Delete prebuilds.DeletePrebuildParams
	// Cancel, Canceled: CancelPending's params and returned instance IDs.
	Cancel   prebuilds.CancelPendingParams
	Canceled []uuid.UUID
	// PresetID, From, To, Changed: SetPresetStatus' params and result.
	PresetID uuid.UUID
	From, To prebuilds.PresetStatus
	Changed  bool
	// Fail: FailStuckBuild's params.
	Fail prebuilds.FailStuckBuildParams

	Jobs []prebuilds.Job
	Job  prebuilds.Job
	Err  error
}

// recorder is a prebuilds.Store that passes every call to an inner store and
// records the writes (CreatePrebuilds, DeletePrebuild, CancelPending,
// SetPresetStatus) with their results, and the events sent to its
// Notifier. Hand it to prebuilds.NewReconciler to see exactly what a pass
// wrote. It is safe for concurrent use.
type recorder struct {
	inner prebuilds.Store
	// newID, when set, replaces the IDs the Reconciler generated for new
	// instances and builds, so that a replay writes the same rows.
	newID func() uuid.UUID

	mu     sync.Mutex
	writes []write
	events []prebuilds.Event
}

var _ prebuilds.Store = (*recorder)(nil)

// newRecorder returns a recorder over inner.
func newRecorder(inner prebuilds.Store) *recorder { return &recorder{inner: inner} }

// notifier returns a prebuilds.Notifier that records events on r.
func (r *recorder) notifier() prebuilds.Notifier {
	return prebuilds.NotifierFunc(func(_ context.Context, e prebuilds.Event) {
		r.mu.Lock()
		defer r.mu.Unlock()
		e.Resources = slices.Clone(e.Resources)
		r.events = append(r.events, e)
	})
}

// recorded returns the writes recorded so far, in call order.
func (r *recorder) recorded() []write {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.writes)
}

// notified returns the events recorded so far, in notification order.
func (r *recorder) notified() []prebuilds.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

func (r *recorder) record(w write) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes = append(r.writes, w)
}

// WithReconciliationLock implements prebuilds.Store by passing through.
func (r *recorder) WithReconciliationLock(ctx context.Context, fn func(ctx context.Context, sr prebuilds.SnapshotReader) error) (bool, error) {
	return r.inner.WithReconciliationLock(ctx, fn)
}

// CreatePrebuilds implements prebuilds.Store and records the call.
func (r *recorder) CreatePrebuilds(ctx context.Context, p prebuilds.CreatePrebuildsParams) ([]prebuilds.Job, error) {
	p.Instances = slices.Clone(p.Instances)
	if r.newID != nil {
		for i := range p.Instances {
			p.Instances[i].InstanceID, p.Instances[i].BuildID = r.newID(), r.newID()
		}
	}
	jobs, err := r.inner.CreatePrebuilds(ctx, p)
	r.record(write{Kind: writeCreatePrebuilds, Create: p, PresetID: p.PresetID, Jobs: slices.Clone(jobs), Err: err})
	return jobs, err
}

// DeletePrebuild implements prebuilds.Store and records the call.
func (r *recorder) DeletePrebuild(ctx context.Context, p prebuilds.DeletePrebuildParams) (prebuilds.Job, error) {
	if r.newID != nil {
		p.BuildID = r.newID()
	}
	job, err := r.inner.DeletePrebuild(ctx, p)
	r.record(write{Kind: writeDeletePrebuild, Delete: p, Job: job, Err: err})
	return job, err
}

// CancelPending implements prebuilds.Store and records the call.
func (r *recorder) CancelPending(ctx context.Context, p prebuilds.CancelPendingParams) ([]uuid.UUID, error) {
	ids, err := r.inner.CancelPending(ctx, p)
	r.record(write{Kind: writeCancelPending, Cancel: p, PresetID: p.PresetID, Canceled: slices.Clone(ids), Err: err})
	return ids, err
}

// Snapshot implements prebuilds.Store by passing through.
func (r *recorder) Snapshot(ctx context.Context, p prebuilds.SnapshotParams) (*prebuilds.GlobalSnapshot, error) {
	return r.inner.Snapshot(ctx, p)
}

// FailStuckBuild implements prebuilds.Store and records the call.
func (r *recorder) FailStuckBuild(ctx context.Context, p prebuilds.FailStuckBuildParams) error {
	err := r.inner.FailStuckBuild(ctx, p)
	r.record(write{Kind: writeFailStuckBuild, Fail: p, Err: err})
	return err
}

// SetPresetStatus implements prebuilds.Store and records the call.
func (r *recorder) SetPresetStatus(ctx context.Context, presetID uuid.UUID, from, to prebuilds.PresetStatus) (bool, error) {
	changed, err := r.inner.SetPresetStatus(ctx, presetID, from, to)
	r.record(write{Kind: writeSetPresetStatus, PresetID: presetID, From: from, To: to, Changed: changed, Err: err})
	return changed, err
}
