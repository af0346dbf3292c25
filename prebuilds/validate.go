package prebuilds

import (
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// MaxDesired bounds desired and scheduled instance counts so that a typo
// cannot ask a store to create millions of instances in one pass.
const MaxDesired = 10_000

// ValidatePreset checks p the way every store must before writing it. The
// error is a *ValidationError (errors.Is(err, ErrInvalidPreset)) naming the
// first offending field.
func ValidatePreset(p Preset) error {
	if p.ID == uuid.Nil {
		return &ValidationError{Field: "id", Reason: "must not be nil"}
	}
	if p.TemplateVersionID == uuid.Nil {
		return &ValidationError{Field: "template_version_id", Reason: "must not be nil"}
	}
	if p.Name == "" {
		return &ValidationError{Field: "name", Reason: "must not be empty"}
	}
	if !utf8.ValidString(p.Name) {
		return &ValidationError{Field: "name", Reason: "must be valid UTF-8"}
	}
	if p.Desired != nil {
		if *p.Desired < 0 {
			return &ValidationError{Field: "desired", Reason: fmt.Sprintf("must not be negative, got %d", *p.Desired)}
		}
		if *p.Desired > MaxDesired {
			return &ValidationError{Field: "desired", Reason: fmt.Sprintf("must be at most %d, got %d", MaxDesired, *p.Desired)}
		}
	}
	if p.TTL < 0 {
		return &ValidationError{Field: "ttl", Reason: fmt.Sprintf("must not be negative, got %s", p.TTL)}
	}
	if p.TTL%time.Microsecond != 0 {
		return &ValidationError{Field: "ttl", Reason: "must be a whole number of microseconds"}
	}
	if p.Status != "" && !p.Status.Valid() {
		return &ValidationError{Field: "status", Reason: fmt.Sprintf("unknown status %q", p.Status)}
	}
	if p.Timezone != "" {
		if _, err := loadLocation(p.Timezone); err != nil {
			return &ValidationError{Field: "timezone", Reason: err.Error()}
		}
	}
	if len(p.Schedules) > 0 {
		if p.Timezone == "" {
			return &ValidationError{Field: "timezone", Reason: "required when schedules are set"}
		}
		if p.Desired == nil {
			return &ValidationError{Field: "desired", Reason: "required when schedules are set"}
		}
	}
	for i, s := range p.Schedules {
		if _, err := parseCron(s.Cron); err != nil {
			return &ValidationError{Field: fmt.Sprintf("schedules[%d].cron", i), Reason: err.Error()}
		}
		if s.Instances < 0 {
			return &ValidationError{Field: fmt.Sprintf("schedules[%d].instances", i), Reason: fmt.Sprintf("must not be negative, got %d", s.Instances)}
		}
		if s.Instances > MaxDesired {
			return &ValidationError{Field: fmt.Sprintf("schedules[%d].instances", i), Reason: fmt.Sprintf("must be at most %d, got %d", MaxDesired, s.Instances)}
		}
	}
	for k := range p.Parameters {
		if k == "" {
			return &ValidationError{Field: "parameters", Reason: "parameter name must not be empty"}
		}
		if !utf8.ValidString(k) {
			return &ValidationError{Field: "parameters", Reason: "parameter name must be valid UTF-8"}
		}
	}
	return nil
}
