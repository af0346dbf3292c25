package model

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func TestValidatePreset(t *testing.T) {
	t.Parallel()
	base := func() prebuilds.Preset {
		d := 2
		return prebuilds.Preset{ID: id("p"), TemplateVersionID: id("v1"), Name: "p", Desired: &d, TTL: time.Hour,
			Timezone: "Europe/Paris", Schedules: []prebuilds.Schedule{{Cron: "0-30 8 * * 1-5", Instances: 3}},
			Parameters: map[string]string{"region": "eu"}}
	}
	if err := ValidatePreset(base()); err != nil {
		t.Fatalf("valid preset rejected: %v", err)
	}
	tests := []struct {
		name, field string
		mutate      func(*prebuilds.Preset)
	}{
		{"nil id", "id", func(p *prebuilds.Preset) { p.ID = uuid.Nil }},
		{"nil version", "template_version_id", func(p *prebuilds.Preset) { p.TemplateVersionID = uuid.Nil }},
		{"empty name", "name", func(p *prebuilds.Preset) { p.Name = "" }},
		{"name not utf8", "name", func(p *prebuilds.Preset) { p.Name = "p\xff" }},
		{"negative desired", "desired", func(p *prebuilds.Preset) { *p.Desired = -1 }},
		{"desired too large", "desired", func(p *prebuilds.Preset) { *p.Desired = prebuilds.MaxDesired + 1 }},
		{"schedules without desired", "desired", func(p *prebuilds.Preset) { p.Desired = nil }},
		{"negative ttl", "ttl", func(p *prebuilds.Preset) { p.TTL = -time.Microsecond }},
		{"sub-microsecond ttl", "ttl", func(p *prebuilds.Preset) { p.TTL = time.Hour + 999*time.Nanosecond }},
		{"unknown status", "status", func(p *prebuilds.Preset) { p.Status = "sad" }},
		{"unknown zone", "timezone", func(p *prebuilds.Preset) { p.Timezone = "Nowhere/Void" }},
		{"local zone", "timezone", func(p *prebuilds.Preset) { p.Timezone = "Local" }},
		{"schedules without zone", "timezone", func(p *prebuilds.Preset) { p.Timezone = "" }},
		{"empty cron", "schedules[0].cron", func(p *prebuilds.Preset) { p.Schedules[0].Cron = "  " }},
		{"four fields", "schedules[0].cron", func(p *prebuilds.Preset) { p.Schedules[0].Cron = "* * * *" }},
		{"six fields", "schedules[0].cron", func(p *prebuilds.Preset) { p.Schedules[0].Cron = "0 * * * * *" }},
		{"descriptor", "schedules[0].cron", func(p *prebuilds.Preset) { p.Schedules[0].Cron = "@hourly" }},
		{"every", "schedules[0].cron", func(p *prebuilds.Preset) { p.Schedules[0].Cron = "@every 1h" }},
		{"tz prefix", "schedules[0].cron", func(p *prebuilds.Preset) { p.Schedules[0].Cron = "TZ=UTC * * * * *" }},
		{"cron_tz prefix", "schedules[0].cron", func(p *prebuilds.Preset) { p.Schedules[0].Cron = " CRON_TZ=UTC 0 9 * * 1" }},
		{"out of range", "schedules[0].cron", func(p *prebuilds.Preset) { p.Schedules[0].Cron = "61 * * * *" }},
		{"second schedule", "schedules[1].cron", func(p *prebuilds.Preset) {
			p.Schedules = append(p.Schedules, prebuilds.Schedule{Cron: "* * 32 * *", Instances: 1})
		}},
		{"negative instances", "schedules[0].instances", func(p *prebuilds.Preset) { p.Schedules[0].Instances = -1 }},
		{"too many instances", "schedules[0].instances", func(p *prebuilds.Preset) { p.Schedules[0].Instances = prebuilds.MaxDesired + 1 }},
		{"empty parameter", "parameters", func(p *prebuilds.Preset) { p.Parameters[""] = "x" }},
		{"parameter not utf8", "parameters", func(p *prebuilds.Preset) { p.Parameters["k\xc3"] = "x" }},
		// First failing field wins.
		{"ttl before zone", "ttl", func(p *prebuilds.Preset) { p.TTL, p.Timezone = -1, "Nowhere/Void" }},
		{"cron before instances", "schedules[0].cron", func(p *prebuilds.Preset) { p.Schedules[0] = prebuilds.Schedule{Cron: "x", Instances: -1} }},
		{"zone before missing desired", "timezone", func(p *prebuilds.Preset) { p.Desired, p.Timezone = nil, "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := base()
			tt.mutate(&p)
			err := ValidatePreset(p)
			var ve *prebuilds.ValidationError
			if !errors.Is(err, prebuilds.ErrInvalidPreset) || !errors.As(err, &ve) || ve.Field != tt.field {
				t.Fatalf("got %v, want a *ValidationError on %q", err, tt.field)
			}
			if ve.Reason == "" || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("error %q has no reason or does not name %q", err, tt.field)
			}
		})
	}
}

// TestUpsertPresetUsesOwnValidator: the world rejects through ValidatePreset
// and stores nothing.
func TestUpsertPresetUsesOwnValidator(t *testing.T) {
	t.Parallel()
	w := fixture(t, 1)
	err := w.UpsertPreset(prebuilds.Preset{ID: id("p9"), TemplateVersionID: id("v1"), Name: "bad\xff"})
	var ve *prebuilds.ValidationError
	if !errors.As(err, &ve) || ve.Field != "name" {
		t.Fatalf("UpsertPreset with a non-UTF-8 name = %v, want a ValidationError on name", err)
	}
	if len(w.Presets) != 1 {
		t.Fatalf("rejected preset was stored: %d presets", len(w.Presets))
	}
}
