package memstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// CreateTemplate implements prebuilds.ControlPlane.
func (s *Store) CreateTemplate(_ context.Context, t prebuilds.Template) error {
	if t.ID == uuid.Nil || t.Name == "" || t.ActiveVersionID != uuid.Nil {
		return fmt.Errorf("memstore: create template %s: id and name are required and active version must be nil: %w", t.ID, prebuilds.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.templates[t.ID]; ok {
		return fmt.Errorf("memstore: create template %s: already exists: %w", t.ID, prebuilds.ErrConflict)
	}
	s.templates[t.ID] = &t
	return nil
}

// CreateTemplateVersion implements prebuilds.ControlPlane.
func (s *Store) CreateTemplateVersion(_ context.Context, v prebuilds.TemplateVersion) error {
	if v.ID == uuid.Nil || v.TemplateID == uuid.Nil {
		return fmt.Errorf("memstore: create template version %s: id and template id are required: %w", v.ID, prebuilds.ErrInvalidArgument)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.templates[v.TemplateID]; !ok {
		return fmt.Errorf("memstore: create template version %s: template %s: %w", v.ID, v.TemplateID, prebuilds.ErrNotFound)
	}
	if _, ok := s.versions[v.ID]; ok {
		return fmt.Errorf("memstore: create template version %s: already exists: %w", v.ID, prebuilds.ErrConflict)
	}
	v.CreatedAt = prebuilds.Micro(v.CreatedAt)
	s.versions[v.ID] = &v
	return nil
}

// SetActiveVersion implements prebuilds.ControlPlane.
func (s *Store) SetActiveVersion(_ context.Context, templateID, versionID uuid.UUID) error {
	var changes []prebuilds.Change
	defer s.publish(&changes)
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.templates[templateID]
	if !ok {
		return fmt.Errorf("memstore: set active version of template %s: %w", templateID, prebuilds.ErrNotFound)
	}
	v, ok := s.versions[versionID]
	if !ok || v.TemplateID != templateID {
		return fmt.Errorf("memstore: set active version of template %s: version %s: %w", templateID, versionID, prebuilds.ErrNotFound)
	}
	if t.Deleted {
		return fmt.Errorf("memstore: set active version of template %s: template is deleted: %w", templateID, prebuilds.ErrConflict)
	}
	t.ActiveVersionID = versionID
	changes = s.templateChanges(templateID)
	return nil
}

// SetTemplateDeprecated implements prebuilds.ControlPlane.
func (s *Store) SetTemplateDeprecated(_ context.Context, templateID uuid.UUID, deprecated bool) error {
	var changes []prebuilds.Change
	defer s.publish(&changes)
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.templates[templateID]
	if !ok {
		return fmt.Errorf("memstore: set template %s deprecated: %w", templateID, prebuilds.ErrNotFound)
	}
	t.Deprecated = deprecated
	changes = s.templateChanges(templateID)
	return nil
}

// DeleteTemplate implements prebuilds.ControlPlane. It is idempotent.
func (s *Store) DeleteTemplate(_ context.Context, templateID uuid.UUID) error {
	var changes []prebuilds.Change
	defer s.publish(&changes)
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.templates[templateID]
	if !ok {
		return fmt.Errorf("memstore: delete template %s: %w", templateID, prebuilds.ErrNotFound)
	}
	t.Deleted = true
	changes = s.templateChanges(templateID)
	return nil
}

// UpsertPreset implements prebuilds.ControlPlane.
func (s *Store) UpsertPreset(_ context.Context, p prebuilds.Preset) error {
	if err := prebuilds.ValidatePreset(p); err != nil {
		return fmt.Errorf("memstore: upsert preset %s: %w", p.ID, err)
	}
	var changes []prebuilds.Change
	defer s.publish(&changes)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.versions[p.TemplateVersionID]; !ok {
		return fmt.Errorf("memstore: upsert preset %s: template version %s: %w", p.ID, p.TemplateVersionID, prebuilds.ErrNotFound)
	}
	existing, exists := s.presets[p.ID]
	if exists && existing.TemplateVersionID != p.TemplateVersionID {
		return fmt.Errorf("memstore: upsert preset %s: exists on template version %s: %w", p.ID, existing.TemplateVersionID, prebuilds.ErrConflict)
	}
	for _, other := range s.presetsByVersion[p.TemplateVersionID] {
		if other.ID != p.ID && other.Name == p.Name {
			return fmt.Errorf("memstore: upsert preset %s: name %q is taken by preset %s: %w", p.ID, p.Name, other.ID, prebuilds.ErrConflict)
		}
	}
	if exists && existing.Desired != nil && p.Desired == nil {
		return fmt.Errorf("memstore: upsert preset %s: %w", p.ID,
			&prebuilds.ValidationError{Field: "desired", Reason: "cannot be unset once set (set 0 to drain the pool)"})
	}
	c := p.Clone()
	if c.Desired != nil && (!exists || existing.Desired == nil) {
		s.configured++
	}
	if exists {
		existing.Name = c.Name
		existing.Desired = c.Desired
		existing.TTL = c.TTL
		existing.Timezone = c.Timezone
		existing.Schedules = c.Schedules
		existing.Parameters = c.Parameters
		changes = []prebuilds.Change{{PresetID: c.ID, Kind: prebuilds.ChangePresetWritten}}
		return nil
	}
	if c.Status == "" {
		c.Status = prebuilds.PresetHealthy
	}
	c.InvalidatedAt = prebuilds.Micro(c.InvalidatedAt)
	c.ResetAt = prebuilds.Micro(c.ResetAt)
	s.presets[c.ID] = &c
	s.presetOrder = append(s.presetOrder, &c)
	s.presetsByVersion[c.TemplateVersionID] = append(s.presetsByVersion[c.TemplateVersionID], &c)
	changes = []prebuilds.Change{{PresetID: c.ID, Kind: prebuilds.ChangePresetWritten}}
	return nil
}

// InvalidatePreset implements prebuilds.ControlPlane.
func (s *Store) InvalidatePreset(_ context.Context, presetID uuid.UUID, at time.Time) error {
	var changes []prebuilds.Change
	defer s.publish(&changes)
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.presets[presetID]
	if !ok {
		return fmt.Errorf("memstore: invalidate preset %s: %w", presetID, prebuilds.ErrNotFound)
	}
	p.InvalidatedAt = prebuilds.Micro(at)
	changes = []prebuilds.Change{{PresetID: presetID, Kind: prebuilds.ChangePresetWritten}}
	return nil
}

// ResetPreset implements prebuilds.ControlPlane.
func (s *Store) ResetPreset(_ context.Context, presetID uuid.UUID, at time.Time) error {
	var changes []prebuilds.Change
	defer s.publish(&changes)
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.presets[presetID]
	if !ok {
		return fmt.Errorf("memstore: reset preset %s: %w", presetID, prebuilds.ErrNotFound)
	}
	p.Status = prebuilds.PresetHealthy
	p.ResetAt = prebuilds.Micro(at)
	changes = []prebuilds.Change{{PresetID: presetID, Kind: prebuilds.ChangePresetWritten}}
	return nil
}

// SetPaused implements prebuilds.ControlPlane.
func (s *Store) SetPaused(_ context.Context, paused bool) error {
	var changes []prebuilds.Change
	defer s.publish(&changes)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused = paused
	if !paused {
		changes = []prebuilds.Change{{Kind: prebuilds.ChangeResync}}
	}
	return nil
}

// CreateInstance implements prebuilds.ControlPlane.
func (s *Store) CreateInstance(_ context.Context, p prebuilds.CreateInstanceParams) error {
	if p.InstanceID == uuid.Nil || p.BuildID == uuid.Nil || p.OwnerID == uuid.Nil ||
		p.TemplateID == uuid.Nil || p.TemplateVersionID == uuid.Nil || !p.Transition.Valid() {
		return fmt.Errorf("memstore: create instance %s: ids are required and transition %q must be valid: %w",
			p.InstanceID, p.Transition, prebuilds.ErrInvalidArgument)
	}
	var changes []prebuilds.Change
	defer s.publish(&changes)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.templates[p.TemplateID]; !ok {
		return fmt.Errorf("memstore: create instance %s: template %s: %w", p.InstanceID, p.TemplateID, prebuilds.ErrNotFound)
	}
	if v, ok := s.versions[p.TemplateVersionID]; !ok || v.TemplateID != p.TemplateID {
		return fmt.Errorf("memstore: create instance %s: template version %s of template %s: %w",
			p.InstanceID, p.TemplateVersionID, p.TemplateID, prebuilds.ErrNotFound)
	}
	if p.PresetID != uuid.Nil {
		preset, ok := s.presets[p.PresetID]
		if !ok {
			return fmt.Errorf("memstore: create instance %s: preset %s: %w", p.InstanceID, p.PresetID, prebuilds.ErrNotFound)
		}
		if preset.TemplateVersionID != p.TemplateVersionID {
			return fmt.Errorf("memstore: create instance %s: preset %s belongs to template version %s, not %s: %w",
				p.InstanceID, p.PresetID, preset.TemplateVersionID, p.TemplateVersionID, prebuilds.ErrInvalidArgument)
		}
	}
	if _, ok := s.instances[p.InstanceID]; ok {
		return fmt.Errorf("memstore: create instance %s: instance already exists: %w", p.InstanceID, prebuilds.ErrConflict)
	}
	if _, ok := s.builds[p.BuildID]; ok {
		return fmt.Errorf("memstore: create instance %s: build %s already exists: %w", p.InstanceID, p.BuildID, prebuilds.ErrConflict)
	}
	now := prebuilds.Micro(p.Now)
	in := &instance{Instance: prebuilds.Instance{
		ID:         p.InstanceID,
		OwnerID:    p.OwnerID,
		TemplateID: p.TemplateID,
		Name:       p.Name,
		CreatedAt:  now,
	}}
	s.addInstance(in, &prebuilds.Build{
		ID:                p.BuildID,
		InstanceID:        p.InstanceID,
		Number:            1,
		TemplateVersionID: p.TemplateVersionID,
		PresetID:          p.PresetID,
		Transition:        p.Transition,
		JobStatus:         prebuilds.JobPending,
		Parameters:        cloneParams(p.Parameters),
		CreatedAt:         now,
	})
	changes = instanceChanges(in, prebuilds.ChangeBuildStarted)
	return nil
}

// StartBuild implements prebuilds.ControlPlane.
func (s *Store) StartBuild(_ context.Context, p prebuilds.StartBuildParams) error {
	if p.InstanceID == uuid.Nil || p.BuildID == uuid.Nil || p.TemplateVersionID == uuid.Nil || !p.Transition.Valid() {
		return fmt.Errorf("memstore: start build %s on instance %s: ids are required and transition %q must be valid: %w",
			p.BuildID, p.InstanceID, p.Transition, prebuilds.ErrInvalidArgument)
	}
	var changes []prebuilds.Change
	defer s.publish(&changes)
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[p.InstanceID]
	if !ok {
		return fmt.Errorf("memstore: start build %s: instance %s: %w", p.BuildID, p.InstanceID, prebuilds.ErrNotFound)
	}
	if in.Deleted {
		return fmt.Errorf("memstore: start build %s: instance %s is deleted: %w", p.BuildID, p.InstanceID, prebuilds.ErrConflict)
	}
	latest := in.latest()
	if !latest.JobStatus.Terminal() {
		return fmt.Errorf("memstore: start build %s: instance %s has build #%d in status %s: %w",
			p.BuildID, p.InstanceID, latest.Number, latest.JobStatus, prebuilds.ErrConflict)
	}
	v, ok := s.versions[p.TemplateVersionID]
	if !ok {
		return fmt.Errorf("memstore: start build %s: template version %s: %w", p.BuildID, p.TemplateVersionID, prebuilds.ErrNotFound)
	}
	if v.TemplateID != in.TemplateID {
		return fmt.Errorf("memstore: start build %s: template version %s is of template %s, instance %s of template %s: %w",
			p.BuildID, p.TemplateVersionID, v.TemplateID, p.InstanceID, in.TemplateID, prebuilds.ErrInvalidArgument)
	}
	if p.PresetID != uuid.Nil {
		preset, ok := s.presets[p.PresetID]
		if !ok {
			return fmt.Errorf("memstore: start build %s: preset %s: %w", p.BuildID, p.PresetID, prebuilds.ErrNotFound)
		}
		if preset.TemplateVersionID != p.TemplateVersionID {
			return fmt.Errorf("memstore: start build %s: preset %s is on template version %s, not %s: %w",
				p.BuildID, p.PresetID, preset.TemplateVersionID, p.TemplateVersionID, prebuilds.ErrInvalidArgument)
		}
	}
	if _, ok := s.builds[p.BuildID]; ok {
		return fmt.Errorf("memstore: start build %s: build already exists: %w", p.BuildID, prebuilds.ErrConflict)
	}
	s.appendBuild(in, &prebuilds.Build{
		ID:                p.BuildID,
		InstanceID:        p.InstanceID,
		Number:            latest.Number + 1,
		TemplateVersionID: p.TemplateVersionID,
		PresetID:          p.PresetID,
		Transition:        p.Transition,
		JobStatus:         prebuilds.JobPending,
		Parameters:        cloneParams(p.Parameters),
		CreatedAt:         prebuilds.Micro(p.Now),
	})
	changes = instanceChanges(in, prebuilds.ChangeBuildStarted)
	return nil
}

// UpdateJob implements prebuilds.ControlPlane.
func (s *Store) UpdateJob(_ context.Context, p prebuilds.UpdateJobParams) (prebuilds.UpdateJobResult, error) {
	var res prebuilds.UpdateJobResult
	switch {
	case !p.Status.Valid():
		return res, fmt.Errorf("memstore: update job %s: unknown status %q: %w", p.BuildID, p.Status, prebuilds.ErrInvalidArgument)
	case p.FailureKind != prebuilds.FailureNone && p.Status != prebuilds.JobFailed:
		return res, fmt.Errorf("memstore: update job %s: failure kind %q with status %s: %w", p.BuildID, p.FailureKind, p.Status, prebuilds.ErrInvalidArgument)
	case !p.FailureKind.Valid():
		return res, fmt.Errorf("memstore: update job %s: unknown failure kind %q: %w", p.BuildID, p.FailureKind, prebuilds.ErrInvalidArgument)
	}
	var changes []prebuilds.Change
	defer s.publish(&changes)
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.builds[p.BuildID]
	if !ok {
		return res, fmt.Errorf("memstore: update job %s: %w", p.BuildID, prebuilds.ErrNotFound)
	}
	if !b.JobStatus.CanBecome(p.Status) {
		return res, fmt.Errorf("memstore: update job %s: %s → %s: %w", p.BuildID, b.JobStatus, p.Status, prebuilds.ErrInvalidTransition)
	}
	b.JobStatus = p.Status
	b.FailureKind = p.FailureKind
	if p.Status.Terminal() {
		b.CompletedAt = prebuilds.Micro(p.Now)
	}
	in := s.instances[b.InstanceID]
	s.syncPending(in, b)
	if p.Status == prebuilds.JobSucceeded && b.Transition == prebuilds.TransitionDelete {
		s.markDeleted(in)
	}
	if p.Status == prebuilds.JobFailed && b.Number == 1 && in.counted != uuid.Nil {
		s.counter(in.counted).Failed++
	}
	s.recordOutcome(in, b)
	if p.Status.Terminal() {
		changes = instanceChanges(in, prebuilds.ChangeJobCompleted)
	}
	if p.Status == prebuilds.JobFailed && p.FailureKind == prebuilds.FailureValidation &&
		b.Transition == prebuilds.TransitionStart && in.OwnerID == prebuilds.SystemOwner && b.PresetID != uuid.Nil {
		if preset := s.presets[b.PresetID]; preset != nil && preset.Status == prebuilds.PresetHealthy {
			preset.Status = prebuilds.PresetValidationFailed
			res.ValidationFailedPreset = preset.ID
		}
	}
	return res, nil
}

// SetReady implements prebuilds.ControlPlane.
func (s *Store) SetReady(_ context.Context, instanceID uuid.UUID, ready bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[instanceID]
	if !ok {
		return fmt.Errorf("memstore: set instance %s ready: %w", instanceID, prebuilds.ErrNotFound)
	}
	in.Ready = ready
	return nil
}

// Claim implements prebuilds.ControlPlane. It takes the oldest claimable
// prebuild (created_at, then instance ID in byte order) in one atomic step.
func (s *Store) Claim(_ context.Context, p prebuilds.ClaimParams) (prebuilds.Instance, error) {
	if p.Owner == uuid.Nil || p.Owner == prebuilds.SystemOwner {
		return prebuilds.Instance{}, fmt.Errorf("memstore: claim from preset %s: owner %s: %w", p.PresetID, p.Owner, prebuilds.ErrInvalidArgument)
	}
	var changes []prebuilds.Change
	defer s.publish(&changes)
	s.mu.Lock()
	defer s.mu.Unlock()
	preset, ok := s.presets[p.PresetID]
	if !ok {
		return prebuilds.Instance{}, fmt.Errorf("memstore: claim from preset %s: %w", p.PresetID, prebuilds.ErrNotFound)
	}
	// Claimed or missed, the preset's pool is short: a targeted pass
	// refills it.
	changes = []prebuilds.Change{{PresetID: preset.ID, Kind: prebuilds.ChangeClaimed}}
	if !s.active(preset) {
		s.counter(preset.ID).ClaimsMissed++
		return prebuilds.Instance{}, fmt.Errorf("memstore: claim from preset %s: preset is not active: %w", p.PresetID, prebuilds.ErrNoClaimablePrebuild)
	}
	now := prebuilds.Micro(p.Now)
	var best *instance
	for _, in := range s.live[p.PresetID] {
		latest := in.latest()
		if latest.Transition != prebuilds.TransitionStart || latest.JobStatus != prebuilds.JobSucceeded ||
			!in.Ready || prebuilds.Expired(*preset, in.CreatedAt, now) {
			continue
		}
		if best == nil || olderInstance(in, best) {
			best = in
		}
	}
	if best == nil {
		s.counter(preset.ID).ClaimsMissed++
		return prebuilds.Instance{}, fmt.Errorf("memstore: claim from preset %s: %w", p.PresetID, prebuilds.ErrNoClaimablePrebuild)
	}
	best.OwnerID = p.Owner
	best.ClaimedAt = now
	s.refile(best)
	if best.counted != uuid.Nil {
		s.counter(best.counted).Claimed++
	}
	return best.Instance, nil
}

// olderInstance orders instances oldest first: created_at, then ID.
func olderInstance(a, b *instance) bool {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c < 0
	}
	return prebuilds.CompareUUID(a.ID, b.ID) < 0
}

// RemoveInstance implements prebuilds.ControlPlane. It is idempotent.
func (s *Store) RemoveInstance(_ context.Context, instanceID uuid.UUID) error {
	var changes []prebuilds.Change
	defer s.publish(&changes)
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[instanceID]
	if !ok {
		return fmt.Errorf("memstore: remove instance %s: %w", instanceID, prebuilds.ErrNotFound)
	}
	s.markDeleted(in)
	changes = instanceChanges(in, prebuilds.ChangeInstanceRemoved)
	return nil
}

// GetPreset implements prebuilds.ControlPlane. The result shares nothing
// with the store.
func (s *Store) GetPreset(_ context.Context, presetID uuid.UUID) (prebuilds.Preset, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	p, ok := s.presets[presetID]
	if !ok {
		return prebuilds.Preset{}, fmt.Errorf("memstore: get preset %s: %w", presetID, prebuilds.ErrNotFound)
	}
	return p.Clone(), nil
}

// GetInstance implements prebuilds.ControlPlane.
func (s *Store) GetInstance(_ context.Context, instanceID uuid.UUID) (prebuilds.Instance, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	in, ok := s.instances[instanceID]
	if !ok {
		return prebuilds.Instance{}, fmt.Errorf("memstore: get instance %s: %w", instanceID, prebuilds.ErrNotFound)
	}
	return in.Instance, nil
}

// ListBuilds implements prebuilds.ControlPlane. Builds come back by
// ascending number and share nothing with the store.
func (s *Store) ListBuilds(_ context.Context, instanceID uuid.UUID) ([]prebuilds.Build, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	in, ok := s.instances[instanceID]
	if !ok {
		return nil, fmt.Errorf("memstore: list builds of instance %s: %w", instanceID, prebuilds.ErrNotFound)
	}
	out := make([]prebuilds.Build, len(in.builds))
	for i, b := range in.builds {
		out[i] = cloneBuild(b)
	}
	return out, nil
}

// PendingJobs implements prebuilds.ControlPlane. It sorts the index of
// pending builds on live instances (created_at, then build ID in byte
// order) and returns the first p.Limit as jobs sharing nothing with the
// store: O(P log P) for P pending builds, whatever the number of builds.
func (s *Store) PendingJobs(_ context.Context, p prebuilds.PendingJobsParams) ([]prebuilds.Job, error) {
	if p.Limit < 1 || p.Limit > prebuilds.MaxPendingJobsLimit {
		return nil, fmt.Errorf("memstore: pending jobs: limit %d not in 1..%d: %w", p.Limit, prebuilds.MaxPendingJobsLimit, prebuilds.ErrInvalidArgument)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	builds := make([]*prebuilds.Build, 0, len(s.pending))
	for _, b := range s.pending {
		builds = append(builds, b)
	}
	slices.SortFunc(builds, func(a, b *prebuilds.Build) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return prebuilds.CompareUUID(a.ID, b.ID)
	})
	jobs := make([]prebuilds.Job, 0, min(len(builds), p.Limit))
	for _, b := range builds[:min(len(builds), p.Limit)] {
		jobs = append(jobs, jobOf(b))
	}
	return jobs, nil
}
