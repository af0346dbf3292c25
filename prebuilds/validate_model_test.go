package prebuilds_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"pgregory.net/rapid"

	"github.com/prebuildkit/prebuildkit/model"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Pools mix valid values with every way the rules can be broken, so that a
// random preset fails on any field, or on none, often.
var (
	poolNames = []string{"p", "", "weekday-pool", "ünïcode", "bad\xff", "\xc3", "ok\xed\xa0\x80"}
	poolZones = []string{"", "UTC", "Europe/Paris", "America/New_York", "Etc/GMT+5", "Local",
		"Mars/Olympus_Mons", "europe/paris", "../etc/passwd", "Europe/", " UTC"}
	poolCrons = []string{
		"* * * * *", "0 9 * * 1-5", "*/15 * * * *", "0-30 8 * * MON-FRI", " 0 0 1 1 * ", "0 0 ? * *",
		"0 0 31 2 *", "5,10 1-3 * JAN-MAR SUN",
		"", "   ", "@hourly", "@every 1h", "@every 1h 2 3 4", "TZ=UTC * * * * *", "CRON_TZ=Europe/Paris 0 9 * * *",
		"61 * * * *", "* 24 * * *", "* * * *", "0 * * * * *", "every monday", "*/0 * * * *", "5-1 * * * *",
		"* * * * 8", "* * 0 * *", "* * * 13 *", "x * * * *",
	}
	poolParams = []string{"k", "region", "", "k\xc3", "\xff"}
	poolTTLs   = []time.Duration{0, time.Hour, time.Microsecond, -1, -time.Hour, 1, 1500, time.Second + 999}
	poolStatus = []prebuilds.PresetStatus{"", prebuilds.PresetHealthy, prebuilds.PresetHardLimited,
		prebuilds.PresetValidationFailed, "sad", "Healthy"}
)

func countGen() *rapid.Generator[int] {
	return rapid.OneOf(
		rapid.SampledFrom([]int{0, 1, -1, prebuilds.MaxDesired, prebuilds.MaxDesired + 1}),
		rapid.IntRange(-3, prebuilds.MaxDesired+3),
	)
}

func presetGen() *rapid.Generator[prebuilds.Preset] {
	return rapid.Custom(func(t *rapid.T) prebuilds.Preset {
		p := prebuilds.Preset{
			ID:                uuid.NewSHA1(uuid.NameSpaceOID, []byte("p")),
			TemplateVersionID: uuid.NewSHA1(uuid.NameSpaceOID, []byte("v")),
			Name:              rapid.SampledFrom(poolNames).Draw(t, "name"),
			Status:            rapid.SampledFrom(poolStatus).Draw(t, "status"),
			Timezone:          rapid.SampledFrom(poolZones).Draw(t, "timezone"),
		}
		if rapid.IntRange(0, 9).Draw(t, "nil_id") == 0 {
			p.ID = uuid.Nil
		}
		if rapid.IntRange(0, 9).Draw(t, "nil_version") == 0 {
			p.TemplateVersionID = uuid.Nil
		}
		if rapid.IntRange(0, 3).Draw(t, "random_name") == 0 {
			p.Name = string(rapid.SliceOfN(rapid.Byte(), 0, 6).Draw(t, "name_bytes"))
		}
		if rapid.IntRange(0, 4).Draw(t, "desired_nil") != 0 {
			d := countGen().Draw(t, "desired")
			p.Desired = &d
		}
		p.TTL = rapid.OneOf(rapid.SampledFrom(poolTTLs), rapid.Map(rapid.Int64(), func(n int64) time.Duration {
			return time.Duration(n)
		})).Draw(t, "ttl")
		for range rapid.IntRange(0, 3).Draw(t, "schedules") {
			cron := rapid.SampledFrom(poolCrons).Draw(t, "cron")
			if rapid.IntRange(0, 9).Draw(t, "random_cron") == 0 {
				cron = rapid.StringN(0, 12, -1).Draw(t, "cron_string")
			}
			p.Schedules = append(p.Schedules, prebuilds.Schedule{Cron: cron, Instances: countGen().Draw(t, "instances")})
		}
		if n := rapid.IntRange(0, 2).Draw(t, "parameters"); n > 0 {
			p.Parameters = map[string]string{}
			for range n {
				p.Parameters[rapid.SampledFrom(poolParams).Draw(t, "param")] = "v"
			}
		}
		return p
	})
}

// agree fails unless the model's validator and prebuilds.ValidatePreset both
// accept p or both blame the same field.
func agree(t interface {
	Helper()
	Fatalf(string, ...any)
}, p prebuilds.Preset) {
	t.Helper()
	want, got := prebuilds.ValidatePreset(p), model.ValidatePreset(p)
	if want == nil && got == nil {
		return
	}
	var wv, gv *prebuilds.ValidationError
	if want != nil && !errors.As(want, &wv) {
		t.Fatalf("prebuilds.ValidatePreset(%#v) = %v, not a *ValidationError", p, want)
	}
	if got != nil && !errors.As(got, &gv) {
		t.Fatalf("model.ValidatePreset(%#v) = %v, not a *ValidationError", p, got)
	}
	if wv == nil || gv == nil || wv.Field != gv.Field {
		t.Fatalf("validators disagree on %#v\n prebuilds: %v\n model:     %v", p, want, got)
	}
}

// TestValidatePresetAgreesWithModel: over random presets (valid and invalid
// zones, a pool of good and bad cron expressions, negative and oversized
// counts, sub-microsecond TTLs, non-UTF-8 names and parameter names) the two
// independent validators accept the same presets and blame the same first
// field.
func TestValidatePresetAgreesWithModel(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) { agree(t, presetGen().Draw(t, "preset")) })
}

// TestValidatePresetAgreesWithModelOnPools tries every pooled value alone on
// an otherwise valid scheduled preset, so each rule is exercised regardless
// of what random draws reach.
func TestValidatePresetAgreesWithModelOnPools(t *testing.T) {
	t.Parallel()
	base := func() prebuilds.Preset {
		d := 1
		return prebuilds.Preset{ID: uuid.NameSpaceDNS, TemplateVersionID: uuid.NameSpaceURL, Name: "p", Desired: &d,
			Timezone: "UTC", Schedules: []prebuilds.Schedule{{Cron: "* * * * *", Instances: 1}}}
	}
	rejected := 0
	check := func(p prebuilds.Preset) {
		agree(t, p)
		if prebuilds.ValidatePreset(p) != nil {
			rejected++
		}
	}
	for _, v := range poolNames {
		p := base()
		p.Name = v
		check(p)
	}
	for _, v := range poolZones {
		p := base()
		p.Timezone = v
		check(p)
	}
	for _, v := range poolCrons {
		p := base()
		p.Schedules[0].Cron = v
		check(p)
	}
	for _, v := range poolParams {
		p := base()
		p.Parameters = map[string]string{v: "x"}
		check(p)
	}
	for _, v := range poolTTLs {
		p := base()
		p.TTL = v
		check(p)
	}
	for _, v := range poolStatus {
		p := base()
		p.Status = v
		check(p)
	}
	if rejected == 0 {
		t.Fatal("no pooled value was rejected: the pools do not exercise the rules")
	}
}

// FuzzValidatePresetAgreesWithModel lets the fuzzer pick the free-form
// strings; the seeds make it a regression test under plain go test.
func FuzzValidatePresetAgreesWithModel(f *testing.F) {
	f.Add("p", "UTC", "* * * * *", "k", 1, 1, int64(0))
	f.Add("bad\xff", "Local", "@hourly", "", -1, -1, int64(-1))
	f.Add("", "Mars/Base", "TZ=UTC * * * * *", "k\xc3", 10001, 3, int64(1500))
	f.Add("x", "", " CRON_TZ=UTC 0 9 * * 1 ", "r", 0, 10001, int64(3600e9))
	f.Fuzz(func(t *testing.T, name, tz, cron, param string, desired, instances int, ttl int64) {
		p := prebuilds.Preset{ID: uuid.NameSpaceDNS, TemplateVersionID: uuid.NameSpaceURL, Name: name, Desired: &desired,
			TTL: time.Duration(ttl), Timezone: tz, Schedules: []prebuilds.Schedule{{Cron: cron, Instances: instances}},
			Parameters: map[string]string{param: "v"}}
		agree(t, p)
	})
}
