package model

import (
	"maps"
	"slices"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// CreatePrebuilds mirrors prebuilds.Store.CreatePrebuilds.
func (w *World) CreatePrebuilds(p prebuilds.CreatePrebuildsParams) ([]prebuilds.Job, error) {
	const op = "create prebuilds"
	if len(p.Instances) == 0 {
		return nil, nil
	}
	if p.PresetID == uuid.Nil || p.TemplateVersionID == uuid.Nil {
		return nil, errorf(op, p.PresetID, prebuilds.ErrInvalidArgument)
	}
	for _, n := range p.Instances {
		if n.InstanceID == uuid.Nil || n.BuildID == uuid.Nil {
			return nil, errorf(op, p.PresetID, prebuilds.ErrInvalidArgument)
		}
	}
	pr := w.preset(p.PresetID)
	if pr == nil {
		return nil, errorf(op, p.PresetID, prebuilds.ErrNotFound)
	}
	if pr.TemplateVersionID != p.TemplateVersionID {
		return nil, errorf(op, p.PresetID, prebuilds.ErrConflict)
	}
	for i, n := range p.Instances {
		if w.instance(n.InstanceID) != nil || w.build(n.BuildID) != nil {
			return nil, errorf(op, n.InstanceID, prebuilds.ErrConflict)
		}
		for _, m := range p.Instances[:i] {
			if m.InstanceID == n.InstanceID || m.BuildID == n.BuildID {
				return nil, errorf(op, n.InstanceID, prebuilds.ErrConflict)
			}
		}
	}
	v := w.version(p.TemplateVersionID)
	templateID := uuid.Nil
	if v != nil {
		templateID = v.TemplateID
	}
	now := micro(p.Now)
	jobs := make([]prebuilds.Job, 0, len(p.Instances))
	for _, n := range p.Instances {
		w.Instances = append(w.Instances, Instance{
			Instance: prebuilds.Instance{
				ID:         n.InstanceID,
				OwnerID:    prebuilds.SystemOwner,
				TemplateID: templateID,
				Name:       n.Name,
				CreatedAt:  now,
			},
			CreatedAsPrebuild: true,
		})
		w.Builds = append(w.Builds, prebuilds.Build{
			ID:                n.BuildID,
			InstanceID:        n.InstanceID,
			Number:            1,
			TemplateVersionID: p.TemplateVersionID,
			PresetID:          p.PresetID,
			Transition:        prebuilds.TransitionStart,
			JobStatus:         prebuilds.JobPending,
			Parameters:        maps.Clone(pr.Parameters),
			CreatedAt:         now,
		})
		jobs = append(jobs, prebuilds.Job{
			BuildID:           n.BuildID,
			InstanceID:        n.InstanceID,
			PresetID:          p.PresetID,
			TemplateVersionID: p.TemplateVersionID,
			Transition:        prebuilds.TransitionStart,
			Parameters:        maps.Clone(pr.Parameters),
		})
	}
	return jobs, nil
}

// DeletePrebuild mirrors prebuilds.Store.DeletePrebuild.
func (w *World) DeletePrebuild(p prebuilds.DeletePrebuildParams) (prebuilds.Job, error) {
	const op = "delete prebuild"
	if p.InstanceID == uuid.Nil || p.BuildID == uuid.Nil {
		return prebuilds.Job{}, errorf(op, p.InstanceID, prebuilds.ErrInvalidArgument)
	}
	inst := w.instance(p.InstanceID)
	if inst == nil {
		return prebuilds.Job{}, errorf(op, p.InstanceID, prebuilds.ErrNotFound)
	}
	latest, ok := w.latestBuild(p.InstanceID)
	if inst.OwnerID != prebuilds.SystemOwner || inst.Deleted || !ok ||
		latest.Transition != prebuilds.TransitionStart || latest.JobStatus != prebuilds.JobSucceeded {
		return prebuilds.Job{}, errorf(op, p.InstanceID, prebuilds.ErrConflict)
	}
	if w.build(p.BuildID) != nil {
		return prebuilds.Job{}, errorf(op, p.BuildID, prebuilds.ErrConflict)
	}
	w.Builds = append(w.Builds, prebuilds.Build{
		ID:                p.BuildID,
		InstanceID:        p.InstanceID,
		Number:            latest.Number + 1,
		TemplateVersionID: latest.TemplateVersionID,
		Transition:        prebuilds.TransitionDelete,
		JobStatus:         prebuilds.JobPending,
		CreatedAt:         micro(p.Now),
	})
	return prebuilds.Job{
		BuildID:           p.BuildID,
		InstanceID:        p.InstanceID,
		TemplateVersionID: latest.TemplateVersionID,
		Transition:        prebuilds.TransitionDelete,
	}, nil
}

// pendingFirstBuild reports whether the instance's only build is build #1,
// start, pending.
func (w *World) pendingFirstBuild(instanceID uuid.UUID) bool {
	builds := w.buildsOf(instanceID)
	return len(builds) == 1 && builds[0].Number == 1 &&
		builds[0].Transition == prebuilds.TransitionStart && builds[0].JobStatus == prebuilds.JobPending
}

// CancelPending mirrors prebuilds.Store.CancelPending. The IDs come back in
// UUID order, empty (not nil) when none.
func (w *World) CancelPending(p prebuilds.CancelPendingParams) ([]uuid.UUID, error) {
	pr := w.preset(p.PresetID)
	if pr == nil {
		return nil, errorf("cancel pending", p.PresetID, prebuilds.ErrNotFound)
	}
	ids := []uuid.UUID{}
	if w.active(*pr) {
		return ids, nil
	}
	now := micro(p.Now)
	for i := range w.Instances {
		inst := &w.Instances[i]
		if inst.OwnerID != prebuilds.SystemOwner || inst.Deleted || !w.pendingFirstBuild(inst.ID) ||
			w.currentPreset(inst.ID) != p.PresetID {
			continue
		}
		for j := range w.Builds {
			if w.Builds[j].InstanceID == inst.ID {
				w.Builds[j].JobStatus = prebuilds.JobCanceled
				w.Builds[j].CompletedAt = now
			}
		}
		inst.Deleted = true
		ids = append(ids, inst.ID)
	}
	slices.SortFunc(ids, compareUUID)
	return ids, nil
}

// SetPresetStatus mirrors prebuilds.Store.SetPresetStatus.
func (w *World) SetPresetStatus(presetID uuid.UUID, from, to prebuilds.PresetStatus) (bool, error) {
	const op = "set preset status"
	if !knownPresetStatus(from) || !knownPresetStatus(to) {
		return false, errorf(op, presetID, prebuilds.ErrInvalidArgument)
	}
	pr := w.preset(presetID)
	if pr == nil {
		return false, errorf(op, presetID, prebuilds.ErrNotFound)
	}
	if pr.Status != from {
		return false, nil
	}
	pr.Status = to
	return true, nil
}
