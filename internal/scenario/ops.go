package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/model"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Op is one state change of a scenario, applied either to the model or to a
// store through its control plane. now is the instant of the step.
type Op interface {
	ApplyModel(w *model.World, now time.Time) error
	ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, now time.Time) error
}

// AddTemplate creates template Key in organisation OrganizationKey.
type AddTemplate struct{ Key string }

func (o AddTemplate) template() prebuilds.Template {
	return prebuilds.Template{ID: ID(o.Key), OrganizationID: ID(OrganizationKey), OrganizationName: OrganizationKey, Name: o.Key}
}

// ApplyModel implements Op.
func (o AddTemplate) ApplyModel(w *model.World, _ time.Time) error {
	return w.CreateTemplate(o.template())
}

// ApplyStore implements Op.
func (o AddTemplate) ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, _ time.Time) error {
	return cp.CreateTemplate(ctx, o.template())
}

// AddVersion creates version Key of template Template, created at now.
type AddVersion struct{ Key, Template string }

func (o AddVersion) version(now time.Time) prebuilds.TemplateVersion {
	return prebuilds.TemplateVersion{ID: ID(o.Key), TemplateID: ID(o.Template), Name: o.Key, CreatedAt: prebuilds.Micro(now)}
}

// ApplyModel implements Op.
func (o AddVersion) ApplyModel(w *model.World, now time.Time) error {
	return w.CreateTemplateVersion(o.version(now))
}

// ApplyStore implements Op.
func (o AddVersion) ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, now time.Time) error {
	return cp.CreateTemplateVersion(ctx, o.version(now))
}

// Activate makes Version the active version of Template.
type Activate struct{ Template, Version string }

// ApplyModel implements Op.
func (o Activate) ApplyModel(w *model.World, _ time.Time) error {
	return w.SetActiveVersion(ID(o.Template), ID(o.Version))
}

// ApplyStore implements Op.
func (o Activate) ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, _ time.Time) error {
	return cp.SetActiveVersion(ctx, ID(o.Template), ID(o.Version))
}

// Deprecate sets (or, with Undo, clears) the deprecated flag of Template.
type Deprecate struct {
	Template string
	Undo     bool
}

// ApplyModel implements Op.
func (o Deprecate) ApplyModel(w *model.World, _ time.Time) error {
	return w.SetTemplateDeprecated(ID(o.Template), !o.Undo)
}

// ApplyStore implements Op.
func (o Deprecate) ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, _ time.Time) error {
	return cp.SetTemplateDeprecated(ctx, ID(o.Template), !o.Undo)
}

// DeleteTemplate soft-deletes Template.
type DeleteTemplate struct{ Template string }

// ApplyModel implements Op.
func (o DeleteTemplate) ApplyModel(w *model.World, _ time.Time) error {
	return w.DeleteTemplate(ID(o.Template))
}

// ApplyStore implements Op.
func (o DeleteTemplate) ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, _ time.Time) error {
	return cp.DeleteTemplate(ctx, ID(o.Template))
}

// UpsertPreset writes preset Key of Version. Desired nil leaves prebuilds
// unconfigured. The preset is named after its key.
type UpsertPreset struct {
	Key, Version string
	Desired      *int
	TTL          time.Duration
	Timezone     string
	Schedules    []prebuilds.Schedule
	Parameters   map[string]string
}

func (o UpsertPreset) preset() prebuilds.Preset {
	return prebuilds.Preset{
		ID:                ID(o.Key),
		TemplateVersionID: ID(o.Version),
		Name:              o.Key,
		Desired:           o.Desired,
		TTL:               o.TTL,
		Timezone:          o.Timezone,
		Schedules:         o.Schedules,
		Parameters:        o.Parameters,
	}
}

// ApplyModel implements Op.
func (o UpsertPreset) ApplyModel(w *model.World, _ time.Time) error {
	return w.UpsertPreset(o.preset())
}

// ApplyStore implements Op.
func (o UpsertPreset) ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, _ time.Time) error {
	return cp.UpsertPreset(ctx, o.preset())
}

// Invalidate sets Preset's invalidated_at to now.
type Invalidate struct{ Preset string }

// ApplyModel implements Op.
func (o Invalidate) ApplyModel(w *model.World, now time.Time) error {
	return w.InvalidatePreset(ID(o.Preset), now)
}

// ApplyStore implements Op.
func (o Invalidate) ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, now time.Time) error {
	return cp.InvalidatePreset(ctx, ID(o.Preset), now)
}

// Reset is the admin reset of Preset at now.
type Reset struct{ Preset string }

// ApplyModel implements Op.
func (o Reset) ApplyModel(w *model.World, now time.Time) error {
	return w.ResetPreset(ID(o.Preset), now)
}

// ApplyStore implements Op.
func (o Reset) ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, now time.Time) error {
	return cp.ResetPreset(ctx, ID(o.Preset), now)
}

// Pause sets (or, with Undo, clears) the global pause switch.
type Pause struct{ Undo bool }

// ApplyModel implements Op.
func (o Pause) ApplyModel(w *model.World, _ time.Time) error { return w.SetPaused(!o.Undo) }

// ApplyStore implements Op.
func (o Pause) ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, _ time.Time) error {
	return cp.SetPaused(ctx, !o.Undo)
}

// CreateInstance creates instance Key with build #1 (key BuildKey(Key, 1),
// job pending) at now. Owner is a key; empty means SystemOwner (a prebuild).
// Transition empty means start. Preset may be empty (no preset).
type CreateInstance struct {
	Key, Template, Version, Preset string
	Owner                          string
	Transition                     prebuilds.Transition
}

func (o CreateInstance) params(now time.Time) prebuilds.CreateInstanceParams {
	p := prebuilds.CreateInstanceParams{
		InstanceID:        ID(o.Key),
		OwnerID:           prebuilds.SystemOwner,
		TemplateID:        ID(o.Template),
		Name:              o.Key,
		BuildID:           ID(BuildKey(o.Key, 1)),
		TemplateVersionID: ID(o.Version),
		Transition:        o.Transition,
		Now:               now,
	}
	if o.Owner != "" {
		p.OwnerID = ID(o.Owner)
	}
	if o.Preset != "" {
		p.PresetID = ID(o.Preset)
	}
	if p.Transition == "" {
		p.Transition = prebuilds.TransitionStart
	}
	return p
}

// ApplyModel implements Op.
func (o CreateInstance) ApplyModel(w *model.World, now time.Time) error {
	return w.CreateInstance(o.params(now))
}

// ApplyStore implements Op.
func (o CreateInstance) ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, now time.Time) error {
	return cp.CreateInstance(ctx, o.params(now))
}

// StartBuild appends build number Number (key BuildKey(Instance, Number)) to
// Instance at now: a stop, delete or start started by someone other than
// the reconciler. Preset may be empty.
type StartBuild struct {
	Instance   string
	Number     int
	Version    string
	Preset     string
	Transition prebuilds.Transition
}

func (o StartBuild) params(now time.Time) prebuilds.StartBuildParams {
	p := prebuilds.StartBuildParams{
		InstanceID:        ID(o.Instance),
		BuildID:           ID(BuildKey(o.Instance, o.Number)),
		TemplateVersionID: ID(o.Version),
		Transition:        o.Transition,
		Now:               now,
	}
	if o.Preset != "" {
		p.PresetID = ID(o.Preset)
	}
	return p
}

// ApplyModel implements Op.
func (o StartBuild) ApplyModel(w *model.World, now time.Time) error {
	return w.StartBuild(o.params(now))
}

// ApplyStore implements Op.
func (o StartBuild) ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, now time.Time) error {
	return cp.StartBuild(ctx, o.params(now))
}

// UpdateJob reports Status (and FailureKind) for build Number of Instance.
type UpdateJob struct {
	Instance    string
	Number      int
	Status      prebuilds.JobStatus
	FailureKind prebuilds.FailureKind
}

func (o UpdateJob) params(now time.Time) prebuilds.UpdateJobParams {
	return prebuilds.UpdateJobParams{
		BuildID:     ID(BuildKey(o.Instance, o.Number)),
		Status:      o.Status,
		FailureKind: o.FailureKind,
		Now:         now,
	}
}

// ApplyModel implements Op.
func (o UpdateJob) ApplyModel(w *model.World, now time.Time) error {
	_, err := w.UpdateJob(o.params(now))
	return err
}

// ApplyStore implements Op.
func (o UpdateJob) ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, now time.Time) error {
	_, err := cp.UpdateJob(ctx, o.params(now))
	return err
}

// SetReady sets (or, with Undo, clears) the ready flag of Instance.
type SetReady struct {
	Instance string
	Undo     bool
}

// ApplyModel implements Op.
func (o SetReady) ApplyModel(w *model.World, _ time.Time) error {
	return w.SetReady(ID(o.Instance), !o.Undo)
}

// ApplyStore implements Op.
func (o SetReady) ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, _ time.Time) error {
	return cp.SetReady(ctx, ID(o.Instance), !o.Undo)
}

// Claim claims a prebuild of Preset for the user UserKey at now. When Want
// is set, the claimed instance must be that one.
type Claim struct {
	Preset string
	Want   string
}

func (o Claim) params(now time.Time) prebuilds.ClaimParams {
	return prebuilds.ClaimParams{PresetID: ID(o.Preset), Owner: ID(UserKey), Now: now}
}

func (o Claim) check(inst prebuilds.Instance) error {
	if o.Want != "" && inst.ID != ID(o.Want) {
		return &ClaimMismatchError{Preset: o.Preset, Want: o.Want, Got: inst.ID}
	}
	return nil
}

// ClaimMismatchError is returned by Claim when the claimed instance is not
// the one the scenario wants.
type ClaimMismatchError struct {
	// Preset and Want are keys; Got is the ID of the instance handed out.
	Preset, Want string
	Got          uuid.UUID
}

func (e *ClaimMismatchError) Error() string {
	return fmt.Sprintf("claim of %s handed out %s, want %s (%s)", e.Preset, e.Got, e.Want, ID(e.Want))
}

// ApplyModel implements Op.
func (o Claim) ApplyModel(w *model.World, now time.Time) error {
	inst, err := w.Claim(o.params(now))
	if err != nil {
		return err
	}
	return o.check(inst)
}

// ApplyStore implements Op.
func (o Claim) ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, now time.Time) error {
	inst, err := cp.Claim(ctx, o.params(now))
	if err != nil {
		return err
	}
	return o.check(inst)
}

// RemoveInstance is the admin removal of Instance.
type RemoveInstance struct{ Instance string }

// ApplyModel implements Op.
func (o RemoveInstance) ApplyModel(w *model.World, _ time.Time) error {
	return w.RemoveInstance(ID(o.Instance))
}

// ApplyStore implements Op.
func (o RemoveInstance) ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, _ time.Time) error {
	return cp.RemoveInstance(ctx, ID(o.Instance))
}

// Seq applies several operations in order at the same instant, stopping at
// the first error.
type Seq []Op

// ApplyModel implements Op.
func (s Seq) ApplyModel(w *model.World, now time.Time) error {
	for i, op := range s {
		if err := op.ApplyModel(w, now); err != nil {
			return fmt.Errorf("op %d (%T): %w", i, op, err)
		}
	}
	return nil
}

// ApplyStore implements Op.
func (s Seq) ApplyStore(ctx context.Context, cp prebuilds.ControlPlane, now time.Time) error {
	for i, op := range s {
		if err := op.ApplyStore(ctx, cp, now); err != nil {
			return fmt.Errorf("op %d (%T): %w", i, op, err)
		}
	}
	return nil
}
