package conformance

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/model"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// modelStore adapts a *model.World to Store, so that the suite can make the
// very same call on a store and on the model. It is for sequential use (the
// model is not safe for concurrent use); the lock only answers
// WithReconciliationLock like a store would.
type modelStore struct {
	w    *model.World
	lock sync.Mutex
}

var _ Store = (*modelStore)(nil)

func (m *modelStore) WithReconciliationLock(ctx context.Context, fn func(ctx context.Context, r prebuilds.SnapshotReader) error) (bool, error) {
	if !m.lock.TryLock() {
		return false, nil
	}
	defer m.lock.Unlock()
	return true, fn(ctx, modelReader{m.w})
}

// FailStuckBuild implements prebuilds.Store.
func (m *modelStore) FailStuckBuild(_ context.Context, p prebuilds.FailStuckBuildParams) error {
	return m.w.FailStuckBuild(p)
}

// Snapshot implements prebuilds.Store without the lock.
func (m *modelStore) Snapshot(_ context.Context, p prebuilds.SnapshotParams) (*prebuilds.GlobalSnapshot, error) {
	if err := model.ValidateSnapshotParams(p); err != nil {
		return nil, err
	}
	return m.w.Snapshot(p), nil
}

type modelReader struct{ w *model.World }

func (r modelReader) Snapshot(_ context.Context, p prebuilds.SnapshotParams) (*prebuilds.GlobalSnapshot, error) {
	if err := model.ValidateSnapshotParams(p); err != nil {
		return nil, err
	}
	return r.w.Snapshot(p), nil
}

func (m *modelStore) CreatePrebuilds(_ context.Context, p prebuilds.CreatePrebuildsParams) ([]prebuilds.Job, error) {
	return m.w.CreatePrebuilds(p)
}

func (m *modelStore) DeletePrebuild(_ context.Context, p prebuilds.DeletePrebuildParams) (prebuilds.Job, error) {
	return m.w.DeletePrebuild(p)
}

func (m *modelStore) CancelPending(_ context.Context, p prebuilds.CancelPendingParams) ([]uuid.UUID, error) {
	return m.w.CancelPending(p)
}

func (m *modelStore) SetPresetStatus(_ context.Context, id uuid.UUID, from, to prebuilds.PresetStatus) (bool, error) {
	return m.w.SetPresetStatus(id, from, to)
}

func (m *modelStore) CreateTemplate(_ context.Context, t prebuilds.Template) error {
	return m.w.CreateTemplate(t)
}

func (m *modelStore) CreateTemplateVersion(_ context.Context, v prebuilds.TemplateVersion) error {
	return m.w.CreateTemplateVersion(v)
}

func (m *modelStore) SetActiveVersion(_ context.Context, t, v uuid.UUID) error {
	return m.w.SetActiveVersion(t, v)
}

func (m *modelStore) SetTemplateDeprecated(_ context.Context, t uuid.UUID, b bool) error {
	return m.w.SetTemplateDeprecated(t, b)
}

func (m *modelStore) DeleteTemplate(_ context.Context, t uuid.UUID) error {
	return m.w.DeleteTemplate(t)
}

func (m *modelStore) UpsertPreset(_ context.Context, p prebuilds.Preset) error {
	return m.w.UpsertPreset(p)
}

func (m *modelStore) InvalidatePreset(_ context.Context, p uuid.UUID, at time.Time) error {
	return m.w.InvalidatePreset(p, at)
}

func (m *modelStore) ResetPreset(_ context.Context, p uuid.UUID, at time.Time) error {
	return m.w.ResetPreset(p, at)
}

func (m *modelStore) SetPaused(_ context.Context, b bool) error { return m.w.SetPaused(b) }

func (m *modelStore) CreateInstance(_ context.Context, p prebuilds.CreateInstanceParams) error {
	return m.w.CreateInstance(p)
}

func (m *modelStore) StartBuild(_ context.Context, p prebuilds.StartBuildParams) error {
	return m.w.StartBuild(p)
}

func (m *modelStore) UpdateJob(_ context.Context, p prebuilds.UpdateJobParams) (prebuilds.UpdateJobResult, error) {
	return m.w.UpdateJob(p)
}

func (m *modelStore) SetReady(_ context.Context, i uuid.UUID, b bool) error {
	return m.w.SetReady(i, b)
}

func (m *modelStore) Claim(_ context.Context, p prebuilds.ClaimParams) (prebuilds.Instance, error) {
	return m.w.Claim(p)
}

func (m *modelStore) RemoveInstance(_ context.Context, i uuid.UUID) error {
	return m.w.RemoveInstance(i)
}

func (m *modelStore) GetPreset(_ context.Context, p uuid.UUID) (prebuilds.Preset, error) {
	return m.w.GetPreset(p)
}

func (m *modelStore) GetInstance(_ context.Context, i uuid.UUID) (prebuilds.Instance, error) {
	return m.w.GetInstance(i)
}

func (m *modelStore) ListBuilds(_ context.Context, i uuid.UUID) ([]prebuilds.Build, error) {
	return m.w.ListBuilds(i)
}

func (m *modelStore) PendingJobs(_ context.Context, p prebuilds.PendingJobsParams) ([]prebuilds.Job, error) {
	return m.w.PendingJobs(p)
}
