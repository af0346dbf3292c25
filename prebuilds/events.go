package prebuilds

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// EventKind names a Notifier event.
type EventKind string

// Event kinds.
const (
	// EventHardLimited: the preset's K newest builds failed; creation stops.
	EventHardLimited EventKind = "preset_hard_limited"
	// EventRecovered: the hard-limit condition cleared.
	EventRecovered EventKind = "preset_recovered"
	// EventValidationFailed: the provisioner reported a failure retrying
	// cannot fix.
	EventValidationFailed EventKind = "preset_validation_failed"
	// EventResourcesReplaced: a claimed prebuild's resources were replaced
	// on claim (the prebuild did not match what the user got).
	EventResourcesReplaced EventKind = "resources_replaced"
)

// Event is a notification about a preset or a claimed prebuild. Each status
// event is emitted exactly once per real transition across all replicas,
// because only the replica whose compare-and-set changed the row emits it.
type Event struct {
	Kind              EventKind
	At                time.Time
	PresetID          uuid.UUID
	PresetName        string
	TemplateID        uuid.UUID
	TemplateName      string
	TemplateVersionID uuid.UUID
	OrganizationName  string
	// InstanceID and Claimant are set for EventResourcesReplaced.
	InstanceID uuid.UUID
	Claimant   uuid.UUID
	// Resources lists the replaced resources (EventResourcesReplaced).
	Resources []string
}

// Notifier receives events. Notify is called synchronously from the
// reconciliation pass, so it should hand off and return quickly.
type Notifier interface {
	Notify(ctx context.Context, e Event)
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, e Event)

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, e Event) { f(ctx, e) }
