package prebuilds

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

func schedPreset(tz string, s ...Schedule) Preset {
	return Preset{ID: uuid.NameSpaceDNS, TemplateVersionID: uuid.NameSpaceURL, Name: "p", Desired: intp(1), Timezone: tz, Schedules: s}
}

func TestDesiredAtSchedules(t *testing.T) {
	t.Parallel()
	p := schedPreset("UTC", Schedule{Cron: "* 2-4 * * 1", Instances: 2}, Schedule{Cron: "* 6-8 * * 1", Instances: 3})
	mon := func(h, m, s int) time.Time { return time.Date(2026, 3, 2, h, m, s, 0, time.UTC) }
	tests := []struct {
		at   time.Time
		want int
	}{
		{mon(1, 0, 0), 1},
		{mon(3, 0, 0), 2},
		{mon(7, 0, 0), 3},
		{mon(8, 59, 59), 3},
		{mon(9, 0, 0), 1},
		{mon(3, 0, 0).AddDate(0, 0, 1), 1}, // Tuesday
	}
	for _, tt := range tests {
		got, err := DesiredAt(p, tt.at)
		if err != nil || got != tt.want {
			t.Errorf("DesiredAt(%s) = %d, %v; want %d", tt.at, got, err, tt.want)
		}
	}
}

func TestDesiredAtFirstMatchWins(t *testing.T) {
	t.Parallel()
	p := schedPreset("UTC", Schedule{Cron: "* * * * *", Instances: 4}, Schedule{Cron: "* * * * *", Instances: 9})
	if got, _ := DesiredAt(p, t0); got != 4 {
		t.Fatalf("got %d, want 4", got)
	}
}

func TestDesiredAtTimezoneAcrossDST(t *testing.T) {
	t.Parallel()
	// 09:00-09:59 local in Los Angeles. US DST began 2026-03-08: 09:00 PST
	// is 17:00 UTC before, 09:00 PDT is 16:00 UTC after.
	p := schedPreset("America/Los_Angeles", Schedule{Cron: "* 9 * * *", Instances: 5})
	tests := []struct {
		at   time.Time
		want int
	}{
		{time.Date(2026, 3, 7, 17, 30, 0, 0, time.UTC), 5},
		{time.Date(2026, 3, 7, 16, 30, 0, 0, time.UTC), 1},
		{time.Date(2026, 3, 9, 16, 30, 0, 0, time.UTC), 5},
		{time.Date(2026, 3, 9, 17, 30, 0, 0, time.UTC), 1},
	}
	for _, tt := range tests {
		if got, err := DesiredAt(p, tt.at); err != nil || got != tt.want {
			t.Errorf("DesiredAt(%s) = %d, %v; want %d", tt.at, got, err, tt.want)
		}
	}
}

func TestDesiredAtDayOfMonthOrWeek(t *testing.T) {
	t.Parallel()
	// Both restricted: cron matches either (the 1st, or any Monday).
	p := schedPreset("UTC", Schedule{Cron: "* * 1 * 1", Instances: 7})
	mon := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	first := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC) // a Wednesday
	tue := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	for at, want := range map[time.Time]int{mon: 7, first: 7, tue: 1} {
		if got, _ := DesiredAt(p, at); got != want {
			t.Errorf("DesiredAt(%s) = %d, want %d", at, got, want)
		}
	}
}

func TestDesiredAtInvalidStoredFallsBack(t *testing.T) {
	t.Parallel()
	for _, p := range []Preset{
		schedPreset("Mars/Olympus", Schedule{Cron: "* * * * *", Instances: 4}),
		schedPreset("UTC", Schedule{Cron: "not cron", Instances: 4}),
		schedPreset("", Schedule{Cron: "* * * * *", Instances: 4}),
	} {
		got, err := DesiredAt(p, t0)
		if got != 1 || !errors.Is(err, ErrInvalidPreset) {
			t.Errorf("DesiredAt(%+v) = %d, %v; want fallback 1 and ErrInvalidPreset", p, got, err)
		}
	}
	if got, err := DesiredAt(Preset{}, t0); got != 0 || err != nil {
		t.Errorf("nil desired: got %d, %v", got, err)
	}
}

func TestValidatePreset(t *testing.T) {
	t.Parallel()
	ok := schedPreset("Europe/Paris", Schedule{Cron: "0-30 8 * * 1-5", Instances: 3})
	if err := ValidatePreset(ok); err != nil {
		t.Fatalf("valid preset rejected: %v", err)
	}
	tests := []struct {
		field  string
		mutate func(*Preset)
	}{
		{"id", func(p *Preset) { p.ID = uuid.Nil }},
		{"template_version_id", func(p *Preset) { p.TemplateVersionID = uuid.Nil }},
		{"name", func(p *Preset) { p.Name = "" }},
		{"name", func(p *Preset) { p.Name = "bad\xff" }},
		{"desired", func(p *Preset) { p.Desired = intp(-1) }},
		{"desired", func(p *Preset) { p.Desired = intp(MaxDesired + 1) }},
		{"desired", func(p *Preset) { p.Desired = nil }}, // schedules need a default
		{"ttl", func(p *Preset) { p.TTL = -time.Second }},
		{"ttl", func(p *Preset) { p.TTL = time.Nanosecond }},
		{"status", func(p *Preset) { p.Status = "sad" }},
		{"timezone", func(p *Preset) { p.Timezone = "Nowhere/Void" }},
		{"timezone", func(p *Preset) { p.Timezone = "Local" }},
		{"timezone", func(p *Preset) { p.Timezone = "" }},
		{"schedules[0].cron", func(p *Preset) { p.Schedules[0].Cron = "* * * *" }},
		{"schedules[0].cron", func(p *Preset) { p.Schedules[0].Cron = "@hourly" }},
		{"schedules[0].cron", func(p *Preset) { p.Schedules[0].Cron = "TZ=UTC * * * * *" }},
		{"schedules[0].cron", func(p *Preset) { p.Schedules[0].Cron = "61 * * * *" }},
		{"schedules[0].cron", func(p *Preset) { p.Schedules[0].Cron = "" }},
		{"schedules[0].instances", func(p *Preset) { p.Schedules[0].Instances = -2 }},
		{"schedules[0].instances", func(p *Preset) { p.Schedules[0].Instances = MaxDesired + 1 }},
		{"parameters", func(p *Preset) { p.Parameters = map[string]string{"": "x"} }},
		{"parameters", func(p *Preset) { p.Parameters = map[string]string{"\xc3": "x"} }},
	}
	for _, tt := range tests {
		p := ok
		p.Schedules = append([]Schedule(nil), ok.Schedules...)
		tt.mutate(&p)
		err := ValidatePreset(p)
		var ve *ValidationError
		if !errors.Is(err, ErrInvalidPreset) || !errors.As(err, &ve) || ve.Field != tt.field {
			t.Errorf("field %s: got %v, want a ValidationError on %q", tt.field, err, tt.field)
			continue
		}
		if !strings.Contains(err.Error(), tt.field) {
			t.Errorf("error %q does not name the field %q", err, tt.field)
		}
	}
}

// FuzzValidatePreset: validation never panics, and whatever it rejects is
// ErrInvalidPreset; whatever it accepts evaluates without error.
func FuzzValidatePreset(f *testing.F) {
	f.Add(1, int64(0), "UTC", "* 2-4 * * 1", 2, "", int64(0))
	f.Add(-1, int64(-5), "Mars/Base", "@every 1h", -3, "k", int64(1))
	f.Add(3, int64(3600e9), "America/Los_Angeles", "TZ=UTC 0 9 * * *", 1, "region", int64(1772445600))
	f.Add(0, int64(1), "", "*/0 * * * *", 0, "", int64(-1))
	f.Fuzz(func(t *testing.T, desired int, ttl int64, tz, cron string, inst int, param string, unix int64) {
		p := Preset{ID: uuid.NameSpaceDNS, TemplateVersionID: uuid.NameSpaceURL, Name: "p", Desired: &desired,
			TTL: time.Duration(ttl), Timezone: tz, Schedules: []Schedule{{Cron: cron, Instances: inst}},
			Parameters: map[string]string{param: "v"}}
		err := ValidatePreset(p)
		if err != nil && !errors.Is(err, ErrInvalidPreset) {
			t.Fatalf("ValidatePreset error %v is not ErrInvalidPreset", err)
		}
		at := time.Unix(unix%(1<<40), 0)
		got, derr := DesiredAt(p, at)
		if derr != nil && !errors.Is(derr, ErrInvalidPreset) {
			t.Fatalf("DesiredAt error %v is not ErrInvalidPreset", derr)
		}
		if err == nil {
			if derr != nil {
				t.Fatalf("valid preset failed to evaluate: %v", derr)
			}
			if got != desired && got != inst {
				t.Fatalf("DesiredAt = %d, want %d or %d", got, desired, inst)
			}
		} else if derr != nil && got != desired {
			t.Fatalf("invalid schedule: DesiredAt = %d, want fallback %d", got, desired)
		}
	})
}
