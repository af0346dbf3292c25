package model

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/robfig/cron/v3"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// ValidatePreset is the model's own reading of the preset rules of
// docs/spec.md ("Preset validation"). It shares no code with
// prebuilds.ValidatePreset: zones are loaded with time.LoadLocation and cron
// expressions parsed with robfig/cron here, so a bug in either validator
// shows up as a disagreement. A rejection is a *prebuilds.ValidationError
// naming the first failing field, checked in this order: id,
// template_version_id, name, desired, ttl, status, timezone, the
// schedules-need-timezone-and-desired rule, each schedule's cron then
// instances, parameters.
func ValidatePreset(p prebuilds.Preset) error {
	bad := func(field, format string, args ...any) error {
		return &prebuilds.ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	if p.ID == uuid.Nil {
		return bad("id", "must not be nil")
	}
	if p.TemplateVersionID == uuid.Nil {
		return bad("template_version_id", "must not be nil")
	}
	if p.Name == "" {
		return bad("name", "must not be empty")
	}
	if !utf8.ValidString(p.Name) {
		return bad("name", "must be valid UTF-8")
	}
	if p.Desired != nil && (*p.Desired < 0 || *p.Desired > prebuilds.MaxDesired) {
		return bad("desired", "must be between 0 and %d, got %d", prebuilds.MaxDesired, *p.Desired)
	}
	if p.TTL < 0 {
		return bad("ttl", "must not be negative, got %s", p.TTL)
	}
	if p.TTL != p.TTL.Truncate(time.Microsecond) {
		return bad("ttl", "must be whole microseconds, got %s", p.TTL)
	}
	if p.Status != "" && !knownStatus(p.Status) {
		return bad("status", "unknown status %q", p.Status)
	}
	if p.Timezone != "" && !zoneUsable(p.Timezone) {
		return bad("timezone", "%q is not a usable time zone", p.Timezone)
	}
	if len(p.Schedules) > 0 && p.Timezone == "" {
		return bad("timezone", "required when schedules are set")
	}
	if len(p.Schedules) > 0 && p.Desired == nil {
		return bad("desired", "required when schedules are set")
	}
	for i, s := range p.Schedules {
		if reason := cronProblem(s.Cron); reason != "" {
			return bad(fmt.Sprintf("schedules[%d].cron", i), "%s", reason)
		}
		if s.Instances < 0 || s.Instances > prebuilds.MaxDesired {
			return bad(fmt.Sprintf("schedules[%d].instances", i), "must be between 0 and %d, got %d", prebuilds.MaxDesired, s.Instances)
		}
	}
	for k := range p.Parameters {
		if k == "" || !utf8.ValidString(k) {
			return bad("parameters", "parameter name %q must be non-empty UTF-8", k)
		}
	}
	return nil
}

// knownStatus lists the preset statuses by hand rather than asking
// PresetStatus.Valid.
func knownStatus(s prebuilds.PresetStatus) bool {
	switch s {
	case prebuilds.PresetHealthy, prebuilds.PresetHardLimited, prebuilds.PresetValidationFailed:
		return true
	}
	return false
}

// zoneUsable reports whether name is a fixed, loadable zone. "Local" would
// make the answer depend on the machine.
func zoneUsable(name string) bool {
	if name == "Local" {
		return false
	}
	_, err := time.LoadLocation(name)
	return err == nil
}

// validationParser is a five-field parser without descriptors; it is built
// here, not borrowed from prebuilds.
var validationParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// cronProblem says what is wrong with a schedule's cron expression, or ""
// when it is usable: non-empty, no time-zone prefix, exactly five fields,
// parsed by robfig/cron into a field schedule.
func cronProblem(expr string) string {
	e := strings.TrimSpace(expr)
	switch {
	case e == "":
		return "empty cron expression"
	case strings.HasPrefix(e, "TZ=") || strings.HasPrefix(e, "CRON_TZ="):
		return "time zone prefix not allowed"
	case len(strings.Fields(e)) != 5:
		return fmt.Sprintf("want 5 fields, got %d", len(strings.Fields(e)))
	}
	sched, err := validationParser.Parse(e)
	if err != nil {
		return err.Error()
	}
	if _, ok := sched.(*cron.SpecSchedule); !ok {
		return "not a field schedule"
	}
	return ""
}
