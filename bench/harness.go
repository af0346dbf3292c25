package bench

import (
	"context"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Store is what Run measures: the Reconciler's store and the control plane,
// implemented by one value (as conformance.Store).
type Store interface {
	prebuilds.Store
	prebuilds.ControlPlane
}

// Harness tells Run how to get stores and, optionally, what to measure.
// Only NewStore is required (or Load alone: Run loads every store it uses
// with a fleet).
type Harness struct {
	// NewStore returns a fresh, empty, isolated store: no templates, not
	// paused, sharing nothing with any other store it returned. Run calls
	// it once per sub-benchmark (RunParallel's Claim once per b.N it tries)
	// and seeds the store through its control plane (Seed) unless Load is
	// set. Register clean-up with b.Cleanup.
	NewStore func(b *testing.B) Store

	// Load, when set, returns a fresh, isolated store that holds f exactly
	// as Seed through its control plane would leave it, by a faster path:
	// pgstore's benchmarks clone a template database filled once with COPY
	// (package pgfleet). Run calls it wherever it would call NewStore and
	// then Seed. Default: NewStore, then Seed.
	Load func(b *testing.B, f *Fleet) Store

	// Presets are the fleet sizes of the Snapshot, Pass and Refill
	// benchmarks. The -bench.presets flag, when given, wins. Default
	// DefaultPresets.
	Presets []int

	// Fleet returns the parameters of the fleet of n presets that Snapshot,
	// Pass and Refill run on. It must be a balanced fleet (a pass has nothing to
	// do) with at least one running prebuild per preset. Default
	// SteadyFleet.
	Fleet func(presets int) FleetParams

	// ColdFillPresets is the number of empty pools of ColdDesired
	// prebuilds that ColdFill fills in each pass. Default 1,000 (10,000
	// creates per pass).
	ColdFillPresets int

	// Concurrency lists the executor's MaxConcurrency values ColdFill
	// measures. Default 1, 2, 4, 8.
	Concurrency []int

	// ShardPresets is the fleet size of the Shards group, reconciled by 1,
	// 2 and 4 replicas at once. Default 50,000; -bench.shard-presets
	// overrides it.
	ShardPresets int
	// Shards is the Config.Shards of the Shards group, at least 2.
	// Default 4.
	Shards int

	// Config is the Reconciler configuration of every pass (FailurePolicy,
	// MaxCreatesPerPass, …). Run sets Clock (a mock at the fleet's Now),
	// Logger (discarded), Registerer and Notifier (none), JobSink, and for
	// ColdFill MaxConcurrency. It must be valid (Config.Validate).
	Config prebuilds.Config

	// Claims are implementations of a claim to measure side by side, as
	// Claim/impl=<Name>, e.g. a store's current claim and a candidate
	// replacement. Default: the store's own ControlPlane.Claim, measured as
	// Claim.
	Claims []ClaimVariant

	// Handle, when set, returns another handle on the data s holds — for a
	// database-backed store, a store on its own connection pool to the same
	// database. Refill runs each of its RefillReplicas Reconcilers on a
	// handle of its own (s for the first) and claims through another, as
	// the replicas and the API server of one deployment do; a store's
	// change feed must deliver a change committed through any handle to
	// every handle's subscribers. Default: s itself for all of them.
	Handle func(b *testing.B, s Store) Store

	// Groups restricts Run to these groups of sub-benchmarks: "Snapshot",
	// "Pass", "ColdFill", "Claim", "CreatePrebuilds", "Refill" (a variant
	// of a store that only matters for some of them, such as a slow
	// network). Default: all of them. go test -bench filters further.
	Groups []string
}

// ClaimVariant is one implementation of a claim (see Harness.Claims).
type ClaimVariant struct {
	// Name appears in the sub-benchmark name, Claim/impl=<Name>.
	Name string
	// Claim must behave as ControlPlane.Claim on s: take the oldest
	// claimable prebuild of p.PresetID for p.Owner, atomically.
	Claim func(ctx context.Context, s Store, p prebuilds.ClaimParams) (prebuilds.Instance, error)
}

// DefaultPresets are the fleet sizes Snapshot and Pass measure unless
// Harness.Presets or -bench.presets says otherwise.
var DefaultPresets = []int{100, 1_000, 5_000, 10_000}

// Groups are the groups of sub-benchmarks Run knows, in the order it runs
// them.
var Groups = []string{"Snapshot", "Pass", "ColdFill", "Claim", "CreatePrebuilds", "Refill", "Shards"}

// ShardReplicas are the replica counts of the Shards group.
var ShardReplicas = []int{1, 2, 4}

// ColdDesired is the pool size of every preset of a ColdFleet.
const ColdDesired = 10

// SteadyFleet is the default fleet of Snapshot and Pass: n presets with 5
// running, ready prebuilds each (RunningPerPreset 5, desired 5), two
// versions per template (the older one holds unconfigured copies), two
// past instances per preset the snapshot must skip (one deleted, one
// claimed), 10% of presets scheduled and 20% with a TTL. A pass over it
// has nothing to do.
func SteadyFleet(n int) FleetParams {
	return FleetParams{
		Presets: n, VersionsPerTemplate: 2, RunningPerPreset: 5, HistoryDepth: 2,
		ScheduleShare: 0.1, TTLShare: 0.2, Seed: 1,
	}
}

// ColdFleet is the fleet of ColdFill and CreatePrebuilds: n empty pools
// that each want ColdDesired prebuilds, no history.
func ColdFleet(n int) FleetParams {
	return FleetParams{Presets: n, RunningPerPreset: 0, Desired: ColdDesired, Seed: 2}
}

// presetsFlag is -bench.presets; shardPresetsFlag -bench.shard-presets.
var (
	presetsFlag      presetCounts
	shardPresetsFlag int
)

func init() {
	flag.Var(&presetsFlag, "bench.presets",
		"comma-separated preset counts of bench.Run's Snapshot, Pass and Refill benchmarks (overrides Harness.Presets; default 100,1000,5000,10000)")
	flag.Func("bench.shard-presets",
		"preset count of bench.Run's Shards benchmarks (overrides Harness.ShardPresets; default 50000)",
		func(v string) error {
			n, err := parseShardPresets(v)
			shardPresetsFlag = n
			return err
		})
}

// parseShardPresets parses -bench.shard-presets: a positive count.
func parseShardPresets(v string) (int, error) {
	n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(v), "_", ""))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a positive preset count (want e.g. 50000)", v)
	}
	return n, nil
}

// presetCounts is a flag.Value of positive integers, e.g. "100,1000".
type presetCounts []int

func (p *presetCounts) String() string {
	if p == nil {
		return ""
	}
	s := make([]string, len(*p))
	for i, n := range *p {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func (p *presetCounts) Set(v string) error {
	var out []int
	for field := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(field), "_", ""))
		if err != nil || n <= 0 {
			return fmt.Errorf("%q is not a positive preset count (want e.g. 100,1000,10000)", field)
		}
		out = append(out, n)
	}
	*p = out
	return nil
}

// resolved returns h with defaults applied, or an error naming the first
// field Run cannot use.
func (h Harness) resolved() (Harness, error) {
	if h.NewStore == nil && h.Load == nil {
		return h, fmt.Errorf("bench: Harness.NewStore is nil (and so is Load)")
	}
	if len(presetsFlag) > 0 {
		h.Presets = slices.Clone(presetsFlag)
	}
	if len(h.Presets) == 0 {
		h.Presets = slices.Clone(DefaultPresets)
	}
	for _, n := range h.Presets {
		if n <= 0 {
			return h, fmt.Errorf("bench: Harness.Presets: %d is not a positive preset count", n)
		}
	}
	if h.Fleet == nil {
		h.Fleet = SteadyFleet
	}
	if h.ColdFillPresets == 0 {
		h.ColdFillPresets = 1_000
	}
	if h.ColdFillPresets < 0 {
		return h, fmt.Errorf("bench: Harness.ColdFillPresets: %d is negative", h.ColdFillPresets)
	}
	if shardPresetsFlag > 0 {
		h.ShardPresets = shardPresetsFlag
	}
	if h.ShardPresets == 0 {
		h.ShardPresets = 50_000
	}
	if h.Shards == 0 {
		h.Shards = 4
	}
	if h.ShardPresets < 0 {
		return h, fmt.Errorf("bench: Harness.ShardPresets: %d is not a positive preset count", h.ShardPresets)
	}
	if h.Shards < 2 {
		return h, fmt.Errorf("bench: Harness.Shards: %d shards is no sharding (want at least 2, or 0 for the default 4)", h.Shards)
	}
	if len(h.Concurrency) == 0 {
		h.Concurrency = []int{1, 2, 4, 8}
	}
	for _, c := range h.Concurrency {
		if c <= 0 {
			return h, fmt.Errorf("bench: Harness.Concurrency: %d is not a positive MaxConcurrency", c)
		}
	}
	if err := h.Config.Validate(); err != nil {
		return h, fmt.Errorf("bench: Harness.Config: %w", err)
	}
	seen := map[string]bool{}
	for _, v := range h.Claims {
		switch {
		case v.Claim == nil:
			return h, fmt.Errorf("bench: Harness.Claims: %q has no Claim function", v.Name)
		case v.Name == "" || strings.ContainsAny(v.Name, "/ \t"):
			return h, fmt.Errorf("bench: Harness.Claims: name %q must be non-empty, without spaces or slashes", v.Name)
		case seen[v.Name]:
			return h, fmt.Errorf("bench: Harness.Claims: name %q appears twice", v.Name)
		}
		seen[v.Name] = true
	}
	for _, g := range h.Groups {
		if !slices.Contains(Groups, g) {
			return h, fmt.Errorf("bench: Harness.Groups: unknown group %q (want one of %s)", g, strings.Join(Groups, ", "))
		}
	}
	if len(h.Groups) == 0 {
		h.Groups = slices.Clone(Groups)
	}
	return h, nil
}
