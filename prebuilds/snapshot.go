package prebuilds

import (
	"cmp"
	"maps"
	"slices"
	"time"

	"github.com/google/uuid"
)

// SnapshotParams are the inputs of a snapshot. Stores never read their own
// clock for a decision: Now and Lookback come from here. Build them with
// Config.SnapshotParams.
type SnapshotParams struct {
	// Now is the reconciliation instant (microsecond precision).
	Now time.Time
	// Lookback is Now − BackoffLookback: failures created before it are
	// forgotten by backoff.
	Lookback time.Time
	// HardLimit is the failure hard limit (see HardLimit for its encoding;
	// stores read HardLimit.K()): under PolicyCoder a preset is hard-limited
	// when its K newest candidate builds all failed, under PolicyAdaptive
	// when its failure streak reaches K.
	HardLimit HardLimit
	// Policy selects the failure facts: Backoffs under PolicyCoder, Streaks
	// and Proven under PolicyAdaptive (stores read Policy.Resolved(); an
	// unknown policy is ErrInvalidArgument).
	Policy FailurePolicy
	// StuckBefore, when set, is Now − BuildTimeout: prebuild start builds
	// still pending or running that were created before it are stuck. Zero
	// turns stuck builds off.
	StuckBefore time.Time
	// Presets, when not nil, restricts the snapshot to these presets: it is
	// exactly the full snapshot with only their rows and counters (IDs that
	// name no planned preset are ignored; Paused as always). nil means every
	// preset.
	Presets []uuid.UUID
	// Shard, when Count > 1, restricts the snapshot to the presets of the
	// shard (templates with ShardOf(template, Count) = Index), in the same
	// way; with Presets too, to the presets in both.
	Shard Shard
}

// PresetRow is a preset with everything the planner and the metrics need
// about its template and version.
type PresetRow struct {
	Preset
	TemplateID       uuid.UUID
	TemplateName     string
	OrganizationID   uuid.UUID
	OrganizationName string
	ActiveVersionID  uuid.UUID
	Deprecated       bool
	Deleted          bool
}

// NewPresetRow joins preset p with t, the template of its version, into a
// snapshot row. The row holds a deep copy of p (see Preset.Clone).
func NewPresetRow(p Preset, t Template) PresetRow {
	return PresetRow{
		Preset:           p.Clone(),
		TemplateID:       t.ID,
		TemplateName:     t.Name,
		OrganizationID:   t.OrganizationID,
		OrganizationName: t.OrganizationName,
		ActiveVersionID:  t.ActiveVersionID,
		Deprecated:       t.Deprecated,
		Deleted:          t.Deleted,
	}
}

// Clone returns a deep copy of p: Desired, Schedules and Parameters no longer
// alias p's. Empty Schedules and Parameters come back nil, as stores return
// them.
func (p Preset) Clone() Preset {
	if p.Desired != nil {
		d := *p.Desired
		p.Desired = &d
	}
	if len(p.Schedules) == 0 {
		p.Schedules = nil
	} else {
		p.Schedules = slices.Clone(p.Schedules)
	}
	if len(p.Parameters) == 0 {
		p.Parameters = nil
	} else {
		p.Parameters = maps.Clone(p.Parameters)
	}
	return p
}

// Active reports whether the preset is active: its version is its template's
// active version and the template is neither deleted nor deprecated.
func (p PresetRow) Active() bool {
	return p.TemplateVersionID == p.ActiveVersionID && !p.Deprecated && !p.Deleted
}

// RunningPrebuild is a SystemOwner instance, not deleted, whose latest build
// is start+succeeded, attributed to its current preset.
type RunningPrebuild struct {
	InstanceID uuid.UUID
	PresetID   uuid.UUID
	CreatedAt  time.Time
	Ready      bool
}

// InProgressCount counts SystemOwner, not-deleted instances whose latest
// build's job is pending or running, by current preset and transition.
type InProgressCount struct {
	PresetID   uuid.UUID
	Transition Transition
	Count      int
}

// PendingInactiveCount counts SystemOwner, not-deleted instances of an
// inactive preset whose only build is build #1, start, pending.
type PendingInactiveCount struct {
	PresetID uuid.UUID
	Count    int
}

// BackoffRow says a preset failed recently (backoff(P), docs/spec.md, "Backoff").
type BackoffRow struct {
	PresetID    uuid.UUID
	NumFailed   int
	LastBuildAt time.Time
}

// StreakRow is a preset's failure streak under PolicyAdaptive: its newest
// outcomes failed (docs/spec.md, "Outcomes").
type StreakRow struct {
	PresetID uuid.UUID
	// Streak is streak(P): the number of leading failures of O(P), 1 to
	// MaxStreak.
	Streak int
	// LastFailedAt is last_failed_at(P): when the newest outcome failed.
	LastFailedAt time.Time
}

// StuckBuild is a prebuild start build still pending or running that was
// created before SnapshotParams.StuckBefore.
type StuckBuild struct {
	PresetID   uuid.UUID
	InstanceID uuid.UUID
	BuildID    uuid.UUID
}

// PresetCounters are cumulative per-preset totals kept by the store, so that
// every replica exports the same counter values.
type PresetCounters struct {
	PresetID uuid.UUID
	// Created counts prebuild instances ever created for the preset.
	Created int
	// Failed counts prebuild instances of the preset whose build #1 failed.
	Failed int
	// Claimed counts prebuilds of the preset handed to users.
	Claimed int
	// ClaimsMissed counts Claim calls for the preset that found nothing
	// claimable (ErrNoClaimablePrebuild).
	ClaimsMissed int
}

// GlobalSnapshot is one consistent read of everything the reconciler needs
// (docs/spec.md, "The snapshot"). Rows other than Presets only name presets listed in Presets
// (those whose desired count is set). Row order is unspecified; SortSnapshot
// puts it in canonical order for comparison. Counts are never zero: a count
// row exists only when its count is positive.
type GlobalSnapshot struct {
	Now             time.Time
	Paused          bool
	Presets         []PresetRow
	Running         []RunningPrebuild
	InProgress      []InProgressCount
	PendingInactive []PendingInactiveCount
	Backoffs        []BackoffRow
	// HardLimited lists the presets whose hard-limit condition holds now.
	HardLimited []uuid.UUID
	// Streaks and Proven are PolicyAdaptive's facts (empty under
	// PolicyCoder): the presets with a failure streak, and the presets with
	// a successful first build since their reset.
	Streaks []StreakRow
	Proven  []uuid.UUID
	// Stuck lists the stuck start builds (empty when StuckBefore is zero).
	Stuck    []StuckBuild
	Counters []PresetCounters
}

// SortSnapshot puts every slice of s in canonical order: presets, counts,
// backoff, streak and proven rows by preset ID (then transition); running
// prebuilds by preset, then oldest first (created_at, then instance ID);
// stuck builds by preset, then build ID. Map keys are not
// reordered. Stores and models compare equal after SortSnapshot.
func SortSnapshot(s *GlobalSnapshot) {
	slices.SortFunc(s.Presets, func(a, b PresetRow) int { return compareUUID(a.ID, b.ID) })
	slices.SortFunc(s.Running, func(a, b RunningPrebuild) int {
		if c := compareUUID(a.PresetID, b.PresetID); c != 0 {
			return c
		}
		return compareOldest(a, b)
	})
	slices.SortFunc(s.InProgress, func(a, b InProgressCount) int {
		if c := compareUUID(a.PresetID, b.PresetID); c != 0 {
			return c
		}
		return cmp.Compare(a.Transition, b.Transition)
	})
	slices.SortFunc(s.PendingInactive, func(a, b PendingInactiveCount) int { return compareUUID(a.PresetID, b.PresetID) })
	slices.SortFunc(s.Backoffs, func(a, b BackoffRow) int { return compareUUID(a.PresetID, b.PresetID) })
	slices.SortFunc(s.HardLimited, compareUUID)
	slices.SortFunc(s.Streaks, func(a, b StreakRow) int { return compareUUID(a.PresetID, b.PresetID) })
	slices.SortFunc(s.Proven, compareUUID)
	slices.SortFunc(s.Stuck, func(a, b StuckBuild) int {
		if c := compareUUID(a.PresetID, b.PresetID); c != 0 {
			return c
		}
		return compareUUID(a.BuildID, b.BuildID)
	})
	slices.SortFunc(s.Counters, func(a, b PresetCounters) int { return compareUUID(a.PresetID, b.PresetID) })
}

// compareOldest orders prebuilds oldest first: created_at, then instance ID.
func compareOldest(a, b RunningPrebuild) int {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return compareUUID(a.InstanceID, b.InstanceID)
}

// compareUUID orders UUIDs by their bytes, the order Postgres uses for uuid.
func compareUUID(a, b uuid.UUID) int {
	for i := range a {
		if c := cmp.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// CompareUUID orders UUIDs by their bytes, the order PostgreSQL uses for
// the uuid type. Stores and models use it for every tie-break on IDs.
func CompareUUID(a, b uuid.UUID) int { return compareUUID(a, b) }

// PresetSnapshot is the planner's view of one preset.
type PresetSnapshot struct {
	Preset PresetRow
	// Running is oldest first (created_at, then instance ID).
	Running []RunningPrebuild
	// Starting, Stopping and Deleting count in-progress builds by transition.
	Starting, Stopping, Deleting int
	PendingInactive              int
	// Backoff is nil when the preset has no backoff row (PolicyCoder).
	Backoff     *BackoffRow
	HardLimited bool
	// Streak and LastFailedAt are the preset's StreakRow (0 and zero when it
	// has none); Proven says it is in GlobalSnapshot.Proven (PolicyAdaptive).
	Streak       int
	LastFailedAt time.Time
	Proven       bool
	// Stuck are the preset's stuck start builds, in build ID order.
	Stuck    []StuckBuild
	Paused   bool
	Counters PresetCounters
}

// Index builds the per-preset views of s in one pass over each of its slices
// (O(presets + rows)), never by scanning all rows for each preset. Views come
// back in canonical preset order (by ID). Rows for presets that are not in
// s.Presets are ignored. s is not modified.
func (s *GlobalSnapshot) Index() []PresetSnapshot {
	// Sort a permutation rather than the views themselves: a view is a few
	// hundred bytes, an index four.
	order := make([]int32, len(s.Presets))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return compareUUID(s.Presets[a].ID, s.Presets[b].ID) })
	views := make([]PresetSnapshot, len(s.Presets))
	pos := make(map[uuid.UUID]int, len(s.Presets))
	for i, o := range order {
		p := &s.Presets[o]
		views[i] = PresetSnapshot{Preset: *p, Paused: s.Paused, Counters: PresetCounters{PresetID: p.ID}}
		pos[p.ID] = i
	}
	// Running rows: count per preset, then carve every view's slice out of
	// one backing array (no per-preset growth).
	counts := make([]int, len(views))
	owner := make([]int32, len(s.Running)) // each row's view, -1 for none: one map lookup per row
	for k, r := range s.Running {
		i, ok := pos[r.PresetID]
		if !ok {
			owner[k] = -1
			continue
		}
		owner[k] = int32(i)
		counts[i]++
	}
	backing := make([]RunningPrebuild, 0, len(s.Running))
	for i, n := range counts {
		if n > 0 {
			views[i].Running = backing[len(backing) : len(backing) : len(backing)+n]
			backing = backing[:len(backing)+n]
		}
	}
	for k, r := range s.Running {
		if i := owner[k]; i >= 0 {
			views[i].Running = append(views[i].Running, r)
		}
	}
	for _, c := range s.InProgress {
		i, ok := pos[c.PresetID]
		if !ok {
			continue
		}
		switch c.Transition {
		case TransitionStart:
			views[i].Starting += c.Count
		case TransitionStop:
			views[i].Stopping += c.Count
		case TransitionDelete:
			views[i].Deleting += c.Count
		}
	}
	for _, c := range s.PendingInactive {
		if i, ok := pos[c.PresetID]; ok {
			views[i].PendingInactive += c.Count
		}
	}
	for _, b := range s.Backoffs {
		if i, ok := pos[b.PresetID]; ok {
			row := b
			views[i].Backoff = &row
		}
	}
	for _, id := range s.HardLimited {
		if i, ok := pos[id]; ok {
			views[i].HardLimited = true
		}
	}
	for _, r := range s.Streaks {
		if i, ok := pos[r.PresetID]; ok {
			views[i].Streak, views[i].LastFailedAt = r.Streak, r.LastFailedAt
		}
	}
	for _, id := range s.Proven {
		if i, ok := pos[id]; ok {
			views[i].Proven = true
		}
	}
	for _, b := range s.Stuck {
		if i, ok := pos[b.PresetID]; ok {
			views[i].Stuck = append(views[i].Stuck, b)
		}
	}
	for _, c := range s.Counters {
		if i, ok := pos[c.PresetID]; ok {
			views[i].Counters = c
		}
	}
	for i := range views {
		if !slices.IsSortedFunc(views[i].Running, compareOldest) {
			slices.SortFunc(views[i].Running, compareOldest)
		}
		if len(views[i].Stuck) > 1 {
			slices.SortFunc(views[i].Stuck, func(a, b StuckBuild) int { return compareUUID(a.BuildID, b.BuildID) })
		}
	}
	return views
}
