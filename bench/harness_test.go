package bench

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func TestHarnessDefaults(t *testing.T) {
	h, err := Harness{NewStore: func(*testing.B) Store { return nil }}.resolved()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(h.Presets, DefaultPresets) || !slices.Equal(h.Groups, Groups) || !slices.Equal(h.Concurrency, []int{1, 2, 4, 8}) ||
		h.ColdFillPresets != 1_000 || h.Fleet == nil || h.ShardPresets != 50_000 || h.Shards != 4 {
		t.Fatalf("defaults not applied: %+v", h)
	}
}

func TestHarnessRejectsWhatRunCannotUse(t *testing.T) {
	store := func(*testing.B) Store { return nil }
	claim := func(context.Context, Store, prebuilds.ClaimParams) (prebuilds.Instance, error) {
		return prebuilds.Instance{}, nil
	}
	for _, tc := range []struct {
		name string
		h    Harness
		want string
	}{
		{"no constructor", Harness{}, "NewStore is nil"},
		{"zero presets", Harness{NewStore: store, Presets: []int{100, 0}}, "Harness.Presets: 0"},
		{"negative cold fill", Harness{NewStore: store, ColdFillPresets: -1}, "ColdFillPresets: -1"},
		{"zero concurrency", Harness{NewStore: store, Concurrency: []int{0}}, "Concurrency: 0"},
		{"invalid config", Harness{NewStore: store, Config: prebuilds.Config{MaxCreatesPerPass: -1}}, "Harness.Config"},
		{"unknown group", Harness{NewStore: store, Groups: []string{"Pass", "Passes"}}, `unknown group "Passes"`},
		{"claim without function", Harness{NewStore: store, Claims: []ClaimVariant{{Name: "a"}}}, `"a" has no Claim function`},
		{"claim name with slash", Harness{NewStore: store, Claims: []ClaimVariant{{Name: "a/b", Claim: claim}}}, `"a/b"`},
		{"one shard", Harness{NewStore: store, Shards: 1}, "Harness.Shards: 1 shards is no sharding"},
		{"negative shard fleet", Harness{NewStore: store, ShardPresets: -1}, "Harness.ShardPresets: -1"},
		{"claim name twice", Harness{NewStore: store, Claims: []ClaimVariant{{Name: "a", Claim: claim}, {Name: "a", Claim: claim}}}, "appears twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.h.resolved()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("resolved() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestPresetsFlag(t *testing.T) {
	var p presetCounts
	if err := p.Set("100, 1_000,10000"); err != nil || !slices.Equal(p, []int{100, 1000, 10000}) || p.String() != "100,1000,10000" {
		t.Fatalf("Set = %v, %v (%q)", p, err, p.String())
	}
	for _, bad := range []string{"", "100,", "-5", "1e3", "ten"} {
		if err := p.Set(bad); err == nil {
			t.Errorf("Set(%q) succeeded: %v", bad, p)
		}
	}
}

func TestShardPresetsFlag(t *testing.T) {
	if n, err := parseShardPresets(" 50_000"); err != nil || n != 50_000 {
		t.Fatalf("parseShardPresets = %d, %v", n, err)
	}
	for _, bad := range []string{"", "0", "-5", "1e3", "ten"} {
		if n, err := parseShardPresets(bad); err == nil {
			t.Errorf("parseShardPresets(%q) = %d, want an error", bad, n)
		}
	}
}
