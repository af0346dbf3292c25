package model

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Instance is an instance as the model keeps it: the public row plus the two
// facts the counters need after ownership changed.
type Instance struct {
	prebuilds.Instance
	// CreatedAsPrebuild is true when the instance was created with owner
	// SystemOwner.
	CreatedAsPrebuild bool
	// Claimed is true once Claim handed the instance to a user.
	Claimed bool
}

// World is the whole state of a store, in plain slices. The zero value is an
// empty, unpaused world. Slices are in insertion order; nothing relies on it.
type World struct {
	Templates []prebuilds.Template
	Versions  []prebuilds.TemplateVersion
	Presets   []prebuilds.Preset
	Instances []Instance
	Builds    []prebuilds.Build
	Paused    bool
	// ClaimMisses lists, once per Claim that found nothing claimable
	// (ErrNoClaimablePrebuild), the preset asked for.
	ClaimMisses []uuid.UUID
}

// Clone returns a deep copy of w: no slice or map is shared.
func (w *World) Clone() World {
	c := World{
		Templates:   slices.Clone(w.Templates),
		Versions:    slices.Clone(w.Versions),
		Instances:   slices.Clone(w.Instances),
		Paused:      w.Paused,
		ClaimMisses: slices.Clone(w.ClaimMisses),
	}
	for _, p := range w.Presets {
		c.Presets = append(c.Presets, copyPreset(p))
	}
	for _, b := range w.Builds {
		b.Parameters = maps.Clone(b.Parameters)
		c.Builds = append(c.Builds, b)
	}
	return c
}

func copyPreset(p prebuilds.Preset) prebuilds.Preset {
	if p.Desired != nil {
		d := *p.Desired
		p.Desired = &d
	}
	p.Schedules = slices.Clone(p.Schedules)
	p.Parameters = maps.Clone(p.Parameters)
	return p
}

// errorf wraps a sentinel with the operation and key.
func errorf(op string, key any, sentinel error) error {
	return fmt.Errorf("model: %s %v: %w", op, key, sentinel)
}

// ---- lookups (scans) ----

func (w *World) template(id uuid.UUID) *prebuilds.Template {
	for i := range w.Templates {
		if w.Templates[i].ID == id {
			return &w.Templates[i]
		}
	}
	return nil
}

func (w *World) version(id uuid.UUID) *prebuilds.TemplateVersion {
	for i := range w.Versions {
		if w.Versions[i].ID == id {
			return &w.Versions[i]
		}
	}
	return nil
}

func (w *World) preset(id uuid.UUID) *prebuilds.Preset {
	for i := range w.Presets {
		if w.Presets[i].ID == id {
			return &w.Presets[i]
		}
	}
	return nil
}

func (w *World) instance(id uuid.UUID) *Instance {
	for i := range w.Instances {
		if w.Instances[i].ID == id {
			return &w.Instances[i]
		}
	}
	return nil
}

func (w *World) build(id uuid.UUID) *prebuilds.Build {
	for i := range w.Builds {
		if w.Builds[i].ID == id {
			return &w.Builds[i]
		}
	}
	return nil
}

// buildsOf returns the builds of an instance by ascending number.
func (w *World) buildsOf(instanceID uuid.UUID) []prebuilds.Build {
	var out []prebuilds.Build
	for _, b := range w.Builds {
		if b.InstanceID == instanceID {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b prebuilds.Build) int { return a.Number - b.Number })
	return out
}

// latestBuild is the instance's build with the highest number.
func (w *World) latestBuild(instanceID uuid.UUID) (prebuilds.Build, bool) {
	var latest prebuilds.Build
	found := false
	for _, b := range w.Builds {
		if b.InstanceID == instanceID && (!found || b.Number > latest.Number) {
			latest, found = b, true
		}
	}
	return latest, found
}

// currentPreset is the preset of the instance's most recent start build that
// has one, or uuid.Nil.
func (w *World) currentPreset(instanceID uuid.UUID) uuid.UUID {
	best := -1
	preset := uuid.Nil
	for _, b := range w.Builds {
		if b.InstanceID == instanceID && b.Transition == prebuilds.TransitionStart && b.PresetID != uuid.Nil && b.Number > best {
			best, preset = b.Number, b.PresetID
		}
	}
	return preset
}

// versionActive: the preset's version is its template's active version and
// the template is not deleted (deprecation not considered).
func (w *World) versionActive(p prebuilds.Preset) bool {
	v := w.version(p.TemplateVersionID)
	if v == nil {
		return false
	}
	t := w.template(v.TemplateID)
	return t != nil && t.ActiveVersionID == p.TemplateVersionID && !t.Deleted
}

// active is the rule of docs/spec.md ("Vocabulary"): version active, template neither deleted nor deprecated.
func (w *World) active(p prebuilds.Preset) bool {
	if !w.versionActive(p) {
		return false
	}
	return !w.template(w.version(p.TemplateVersionID).TemplateID).Deprecated
}

// expired is the expiry rule of docs/spec.md ("Expiry").
func expired(p prebuilds.Preset, createdAt, now time.Time) bool {
	if !p.InvalidatedAt.IsZero() && createdAt.Before(p.InvalidatedAt) {
		return true
	}
	if p.TTL > 0 && now.Sub(createdAt) > p.TTL {
		return true
	}
	return false
}

// ---- control plane ----

// CreateTemplate mirrors prebuilds.ControlPlane.CreateTemplate.
func (w *World) CreateTemplate(t prebuilds.Template) error {
	const op = "create template"
	if t.ID == uuid.Nil || t.Name == "" || t.ActiveVersionID != uuid.Nil {
		return errorf(op, t.ID, prebuilds.ErrInvalidArgument)
	}
	if w.template(t.ID) != nil {
		return errorf(op, t.ID, prebuilds.ErrConflict)
	}
	w.Templates = append(w.Templates, t)
	return nil
}

// CreateTemplateVersion mirrors prebuilds.ControlPlane.CreateTemplateVersion.
func (w *World) CreateTemplateVersion(v prebuilds.TemplateVersion) error {
	const op = "create template version"
	if v.ID == uuid.Nil || v.TemplateID == uuid.Nil {
		return errorf(op, v.ID, prebuilds.ErrInvalidArgument)
	}
	if w.template(v.TemplateID) == nil {
		return errorf(op, v.ID, prebuilds.ErrNotFound)
	}
	if w.version(v.ID) != nil {
		return errorf(op, v.ID, prebuilds.ErrConflict)
	}
	v.CreatedAt = micro(v.CreatedAt)
	w.Versions = append(w.Versions, v)
	return nil
}

// SetActiveVersion mirrors prebuilds.ControlPlane.SetActiveVersion.
func (w *World) SetActiveVersion(templateID, versionID uuid.UUID) error {
	const op = "set active version"
	t := w.template(templateID)
	if t == nil {
		return errorf(op, templateID, prebuilds.ErrNotFound)
	}
	v := w.version(versionID)
	if v == nil || v.TemplateID != templateID {
		return errorf(op, versionID, prebuilds.ErrNotFound)
	}
	if t.Deleted {
		return errorf(op, templateID, prebuilds.ErrConflict)
	}
	t.ActiveVersionID = versionID
	return nil
}

// SetTemplateDeprecated mirrors prebuilds.ControlPlane.SetTemplateDeprecated.
func (w *World) SetTemplateDeprecated(templateID uuid.UUID, deprecated bool) error {
	t := w.template(templateID)
	if t == nil {
		return errorf("set template deprecated", templateID, prebuilds.ErrNotFound)
	}
	t.Deprecated = deprecated
	return nil
}

// DeleteTemplate mirrors prebuilds.ControlPlane.DeleteTemplate.
func (w *World) DeleteTemplate(templateID uuid.UUID) error {
	t := w.template(templateID)
	if t == nil {
		return errorf("delete template", templateID, prebuilds.ErrNotFound)
	}
	t.Deleted = true
	return nil
}

// UpsertPreset mirrors prebuilds.ControlPlane.UpsertPreset.
func (w *World) UpsertPreset(p prebuilds.Preset) error {
	const op = "upsert preset"
	if err := ValidatePreset(p); err != nil {
		return fmt.Errorf("model: %s %v: %w", op, p.ID, err)
	}
	if w.version(p.TemplateVersionID) == nil {
		return errorf(op, p.ID, prebuilds.ErrNotFound)
	}
	existing := w.preset(p.ID)
	if existing != nil && existing.TemplateVersionID != p.TemplateVersionID {
		return errorf(op, p.ID, prebuilds.ErrConflict)
	}
	for _, other := range w.Presets {
		if other.ID != p.ID && other.TemplateVersionID == p.TemplateVersionID && other.Name == p.Name {
			return errorf(op, p.ID, prebuilds.ErrConflict)
		}
	}
	if existing != nil && existing.Desired != nil && p.Desired == nil {
		return fmt.Errorf("model: %s %v: %w", op, p.ID,
			&prebuilds.ValidationError{Field: "desired", Reason: "cannot be unset once set"})
	}
	p = copyPreset(p)
	if existing == nil {
		if p.Status == "" {
			p.Status = prebuilds.PresetHealthy
		}
		p.InvalidatedAt = micro(p.InvalidatedAt)
		p.ResetAt = micro(p.ResetAt)
		w.Presets = append(w.Presets, p)
		return nil
	}
	existing.Name = p.Name
	existing.Desired = p.Desired
	existing.TTL = p.TTL
	existing.Timezone = p.Timezone
	existing.Schedules = p.Schedules
	existing.Parameters = p.Parameters
	return nil
}

// InvalidatePreset mirrors prebuilds.ControlPlane.InvalidatePreset.
func (w *World) InvalidatePreset(presetID uuid.UUID, at time.Time) error {
	p := w.preset(presetID)
	if p == nil {
		return errorf("invalidate preset", presetID, prebuilds.ErrNotFound)
	}
	p.InvalidatedAt = micro(at)
	return nil
}

// ResetPreset mirrors prebuilds.ControlPlane.ResetPreset.
func (w *World) ResetPreset(presetID uuid.UUID, at time.Time) error {
	p := w.preset(presetID)
	if p == nil {
		return errorf("reset preset", presetID, prebuilds.ErrNotFound)
	}
	p.Status = prebuilds.PresetHealthy
	p.ResetAt = micro(at)
	return nil
}

// SetPaused mirrors prebuilds.ControlPlane.SetPaused.
func (w *World) SetPaused(paused bool) error {
	w.Paused = paused
	return nil
}

// CreateInstance mirrors prebuilds.ControlPlane.CreateInstance.
func (w *World) CreateInstance(p prebuilds.CreateInstanceParams) error {
	const op = "create instance"
	if p.InstanceID == uuid.Nil || p.BuildID == uuid.Nil || p.OwnerID == uuid.Nil ||
		p.TemplateID == uuid.Nil || p.TemplateVersionID == uuid.Nil || !knownTransition(p.Transition) {
		return errorf(op, p.InstanceID, prebuilds.ErrInvalidArgument)
	}
	if w.template(p.TemplateID) == nil {
		return errorf(op, p.InstanceID, prebuilds.ErrNotFound)
	}
	v := w.version(p.TemplateVersionID)
	if v == nil || v.TemplateID != p.TemplateID {
		return errorf(op, p.InstanceID, prebuilds.ErrNotFound)
	}
	if p.PresetID != uuid.Nil {
		pr := w.preset(p.PresetID)
		if pr == nil {
			return errorf(op, p.InstanceID, prebuilds.ErrNotFound)
		}
		if pr.TemplateVersionID != p.TemplateVersionID {
			return errorf(op, p.InstanceID, prebuilds.ErrInvalidArgument)
		}
	}
	if w.instance(p.InstanceID) != nil || w.build(p.BuildID) != nil {
		return errorf(op, p.InstanceID, prebuilds.ErrConflict)
	}
	now := micro(p.Now)
	w.Instances = append(w.Instances, Instance{
		Instance: prebuilds.Instance{
			ID:         p.InstanceID,
			OwnerID:    p.OwnerID,
			TemplateID: p.TemplateID,
			Name:       p.Name,
			CreatedAt:  now,
		},
		CreatedAsPrebuild: p.OwnerID == prebuilds.SystemOwner,
	})
	w.Builds = append(w.Builds, prebuilds.Build{
		ID:                p.BuildID,
		InstanceID:        p.InstanceID,
		Number:            1,
		TemplateVersionID: p.TemplateVersionID,
		PresetID:          p.PresetID,
		Transition:        p.Transition,
		JobStatus:         prebuilds.JobPending,
		Parameters:        maps.Clone(p.Parameters),
		CreatedAt:         now,
	})
	return nil
}

// StartBuild mirrors prebuilds.ControlPlane.StartBuild.
func (w *World) StartBuild(p prebuilds.StartBuildParams) error {
	const op = "start build"
	if p.InstanceID == uuid.Nil || p.BuildID == uuid.Nil || p.TemplateVersionID == uuid.Nil || !knownTransition(p.Transition) {
		return errorf(op, p.InstanceID, prebuilds.ErrInvalidArgument)
	}
	inst := w.instance(p.InstanceID)
	if inst == nil {
		return errorf(op, p.InstanceID, prebuilds.ErrNotFound)
	}
	if inst.Deleted {
		return errorf(op, p.InstanceID, prebuilds.ErrConflict)
	}
	latest, ok := w.latestBuild(p.InstanceID)
	if ok && !finished(latest.JobStatus) {
		return errorf(op, p.InstanceID, prebuilds.ErrConflict)
	}
	v := w.version(p.TemplateVersionID)
	if v == nil {
		return errorf(op, p.InstanceID, prebuilds.ErrNotFound)
	}
	if v.TemplateID != inst.TemplateID {
		return errorf(op, p.InstanceID, prebuilds.ErrInvalidArgument)
	}
	if p.PresetID != uuid.Nil {
		pr := w.preset(p.PresetID)
		if pr == nil {
			return errorf(op, p.InstanceID, prebuilds.ErrNotFound)
		}
		if pr.TemplateVersionID != p.TemplateVersionID {
			return errorf(op, p.InstanceID, prebuilds.ErrInvalidArgument)
		}
	}
	if w.build(p.BuildID) != nil {
		return errorf(op, p.BuildID, prebuilds.ErrConflict)
	}
	w.Builds = append(w.Builds, prebuilds.Build{
		ID:                p.BuildID,
		InstanceID:        p.InstanceID,
		Number:            latest.Number + 1,
		TemplateVersionID: p.TemplateVersionID,
		PresetID:          p.PresetID,
		Transition:        p.Transition,
		JobStatus:         prebuilds.JobPending,
		Parameters:        maps.Clone(p.Parameters),
		CreatedAt:         micro(p.Now),
	})
	return nil
}

// jobTransitionAllowed is the job status graph of docs/spec.md ("Job status graph").
func jobTransitionAllowed(from, to prebuilds.JobStatus) bool {
	switch from {
	case prebuilds.JobPending:
		return to == prebuilds.JobRunning || to == prebuilds.JobSucceeded || to == prebuilds.JobFailed ||
			to == prebuilds.JobCanceling || to == prebuilds.JobCanceled
	case prebuilds.JobRunning:
		return to == prebuilds.JobSucceeded || to == prebuilds.JobFailed ||
			to == prebuilds.JobCanceling || to == prebuilds.JobCanceled
	case prebuilds.JobCanceling:
		return to == prebuilds.JobCanceled || to == prebuilds.JobFailed
	}
	return false
}

// UpdateJob mirrors prebuilds.ControlPlane.UpdateJob.
func (w *World) UpdateJob(p prebuilds.UpdateJobParams) (prebuilds.UpdateJobResult, error) {
	const op = "update job"
	var res prebuilds.UpdateJobResult
	knownKind := p.FailureKind == prebuilds.FailureNone || p.FailureKind == prebuilds.FailureTransient ||
		p.FailureKind == prebuilds.FailureValidation || p.FailureKind == prebuilds.FailureTimeout
	if !knownJobStatus(p.Status) || (p.FailureKind != prebuilds.FailureNone && p.Status != prebuilds.JobFailed) || !knownKind {
		return res, errorf(op, p.BuildID, prebuilds.ErrInvalidArgument)
	}
	b := w.build(p.BuildID)
	if b == nil {
		return res, errorf(op, p.BuildID, prebuilds.ErrNotFound)
	}
	if !jobTransitionAllowed(b.JobStatus, p.Status) {
		return res, fmt.Errorf("model: %s %v: %s → %s: %w", op, p.BuildID, b.JobStatus, p.Status, prebuilds.ErrInvalidTransition)
	}
	b.JobStatus = p.Status
	b.FailureKind = p.FailureKind
	if finished(p.Status) {
		b.CompletedAt = micro(p.Now)
	}
	inst := w.instance(b.InstanceID)
	if p.Status == prebuilds.JobSucceeded && b.Transition == prebuilds.TransitionDelete && inst != nil {
		inst.Deleted = true
	}
	if p.Status == prebuilds.JobFailed && p.FailureKind == prebuilds.FailureValidation &&
		b.Transition == prebuilds.TransitionStart && inst != nil && inst.OwnerID == prebuilds.SystemOwner &&
		b.PresetID != uuid.Nil {
		if pr := w.preset(b.PresetID); pr != nil && pr.Status == prebuilds.PresetHealthy {
			pr.Status = prebuilds.PresetValidationFailed
			res.ValidationFailedPreset = pr.ID
		}
	}
	return res, nil
}

// SetReady mirrors prebuilds.ControlPlane.SetReady.
func (w *World) SetReady(instanceID uuid.UUID, ready bool) error {
	inst := w.instance(instanceID)
	if inst == nil {
		return errorf("set ready", instanceID, prebuilds.ErrNotFound)
	}
	inst.Ready = ready
	return nil
}

// Claim mirrors prebuilds.ControlPlane.Claim.
func (w *World) Claim(p prebuilds.ClaimParams) (prebuilds.Instance, error) {
	const op = "claim"
	if p.Owner == uuid.Nil || p.Owner == prebuilds.SystemOwner {
		return prebuilds.Instance{}, errorf(op, p.PresetID, prebuilds.ErrInvalidArgument)
	}
	pr := w.preset(p.PresetID)
	if pr == nil {
		return prebuilds.Instance{}, errorf(op, p.PresetID, prebuilds.ErrNotFound)
	}
	if !w.active(*pr) {
		w.ClaimMisses = append(w.ClaimMisses, p.PresetID)
		return prebuilds.Instance{}, errorf(op, p.PresetID, prebuilds.ErrNoClaimablePrebuild)
	}
	now := micro(p.Now)
	var best *Instance
	for i := range w.Instances {
		inst := &w.Instances[i]
		if inst.Deleted || inst.OwnerID != prebuilds.SystemOwner || !inst.Ready {
			continue
		}
		if w.currentPreset(inst.ID) != p.PresetID {
			continue
		}
		latest, ok := w.latestBuild(inst.ID)
		if !ok || latest.Transition != prebuilds.TransitionStart || latest.JobStatus != prebuilds.JobSucceeded {
			continue
		}
		if expired(*pr, inst.CreatedAt, now) {
			continue
		}
		if best == nil || inst.CreatedAt.Before(best.CreatedAt) ||
			(inst.CreatedAt.Equal(best.CreatedAt) && compareUUID(inst.ID, best.ID) < 0) {
			best = inst
		}
	}
	if best == nil {
		w.ClaimMisses = append(w.ClaimMisses, p.PresetID)
		return prebuilds.Instance{}, errorf(op, p.PresetID, prebuilds.ErrNoClaimablePrebuild)
	}
	best.OwnerID = p.Owner
	best.ClaimedAt = now
	best.Claimed = true
	return best.Instance, nil
}

// RemoveInstance mirrors prebuilds.ControlPlane.RemoveInstance.
func (w *World) RemoveInstance(instanceID uuid.UUID) error {
	inst := w.instance(instanceID)
	if inst == nil {
		return errorf("remove instance", instanceID, prebuilds.ErrNotFound)
	}
	inst.Deleted = true
	return nil
}

// GetPreset mirrors prebuilds.ControlPlane.GetPreset.
func (w *World) GetPreset(presetID uuid.UUID) (prebuilds.Preset, error) {
	p := w.preset(presetID)
	if p == nil {
		return prebuilds.Preset{}, errorf("get preset", presetID, prebuilds.ErrNotFound)
	}
	return copyPreset(*p), nil
}

// GetInstance mirrors prebuilds.ControlPlane.GetInstance.
func (w *World) GetInstance(instanceID uuid.UUID) (prebuilds.Instance, error) {
	inst := w.instance(instanceID)
	if inst == nil {
		return prebuilds.Instance{}, errorf("get instance", instanceID, prebuilds.ErrNotFound)
	}
	return inst.Instance, nil
}

// ListBuilds mirrors prebuilds.ControlPlane.ListBuilds: by ascending number.
func (w *World) ListBuilds(instanceID uuid.UUID) ([]prebuilds.Build, error) {
	if w.instance(instanceID) == nil {
		return nil, errorf("list builds", instanceID, prebuilds.ErrNotFound)
	}
	builds := w.buildsOf(instanceID)
	for i := range builds {
		builds[i].Parameters = maps.Clone(builds[i].Parameters)
	}
	return builds, nil
}

// PendingJobs mirrors prebuilds.ControlPlane.PendingJobs: the jobs of
// pending builds on instances that are not deleted, oldest first (build
// created_at, then build ID in byte order), at most p.Limit.
func (w *World) PendingJobs(p prebuilds.PendingJobsParams) ([]prebuilds.Job, error) {
	if p.Limit < 1 || p.Limit > prebuilds.MaxPendingJobsLimit {
		return nil, errorf("pending jobs", p.Limit, prebuilds.ErrInvalidArgument)
	}
	var pending []prebuilds.Build
	for _, b := range w.Builds {
		if b.JobStatus != prebuilds.JobPending {
			continue
		}
		if inst := w.instance(b.InstanceID); inst == nil || inst.Deleted {
			continue
		}
		pending = append(pending, b)
	}
	slices.SortFunc(pending, func(a, b prebuilds.Build) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return compareUUID(a.ID, b.ID)
	})
	jobs := []prebuilds.Job{}
	for _, b := range pending[:min(len(pending), p.Limit)] {
		jobs = append(jobs, prebuilds.Job{
			BuildID:           b.ID,
			InstanceID:        b.InstanceID,
			PresetID:          b.PresetID,
			TemplateVersionID: b.TemplateVersionID,
			Transition:        b.Transition,
			Parameters:        maps.Clone(b.Parameters),
		})
	}
	return jobs, nil
}

// micro truncates t to the microsecond precision stores keep, in UTC. The
// model has its own rather than calling prebuilds.Micro, so that it never
// shares a bug with the code it checks.
func micro(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// compareUUID orders IDs by their bytes (the uuid order of PostgreSQL and of
// the stores' tie-breaks), independently of prebuilds.CompareUUID.
func compareUUID(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) }
