package pgstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// snapshotOutcomesSQL computes PolicyAdaptive's facts (docs/spec.md,
// "Outcomes") for every configured preset P. O(P) is the build #1 of every
// instance created as a prebuild whose build #1 has preset P (deleted and
// claimed instances included), succeeded or failed, completed at or after
// max(lookback, reset_at), newest first: completed_at desc, then build ID
// desc (uuid order is byte order, as prebuilds.CompareUUID).
//
// Instead of ordering O(P), each preset makes two reads of
// builds_first_outcomes_idx (migration 0004), whose key is that order within
// (preset_id, job_status):
//
//   - s, the newest success completed at or after reset_at: one probe
//     (LIMIT 1). Its existence is proven(P) (no lookback).
//   - the failures completed after s (in O(P)'s order) and at or after
//     max(lookback, reset_at): a range of the index, at most 64 entries. They
//     are exactly the leading failures of O(P): when s is in the window it
//     is O(P)'s newest success, and when it is older every failure of the
//     window is newer than it. Their count is streak(P) (capped at
//     prebuilds.MaxStreak by the LIMIT), the newest one's completed_at is
//     last_failed_at(P).
//
// Both reads skip the builds of instances not created as prebuilds (a
// user's instance created with a preset) through the instances primary key.
// $1 is the lookback rounded up to the microsecond. One row per preset with
// streak(P) ≥ 1 or proven(P): preset_id, streak, last_failed_at (NULL when
// the streak is 0), proven.
var (
	snapshotOutcomesSQL = outcomesSQL("", "")
	// snapshotOutcomesFilteredSQL: $2 … $4 select (presetFilterSQL).
	snapshotOutcomesFilteredSQL = outcomesSQL(`
JOIN template_versions v ON v.id = p.template_version_id
JOIN templates t ON t.id = v.template_id`, presetFilterSQL(2))
)

// outcomesSQL is snapshotOutcomesSQL with join (the preset's template t)
// and filter, a condition on p and t, added.
func outcomesSQL(join, filter string) string {
	return `
SELECT p.id, f.streak, f.last_failed_at, s.id IS NOT NULL AS proven
FROM presets p` + join + `
LEFT JOIN LATERAL (
    SELECT b.completed_at, b.id
    FROM builds b
    JOIN instances i ON i.id = b.instance_id
    WHERE b.preset_id = p.id AND b.number = 1 AND b.job_status = 'succeeded'
      AND b.completed_at >= coalesce(p.reset_at, '-infinity')
      AND i.created_as_prebuild
    ORDER BY b.completed_at DESC, b.id DESC
    LIMIT 1
) s ON true
CROSS JOIN LATERAL (
    SELECT count(*) AS streak, max(x.completed_at) AS last_failed_at
    FROM (
        SELECT b.completed_at
        FROM builds b
        JOIN instances i ON i.id = b.instance_id
        WHERE b.preset_id = p.id AND b.number = 1 AND b.job_status = 'failed'
          AND b.completed_at >= greatest($1::timestamptz, p.reset_at, s.completed_at)
          AND (s.id IS NULL OR b.completed_at > s.completed_at OR b.id > s.id)
          AND i.created_as_prebuild
        ORDER BY b.completed_at DESC, b.id DESC
        LIMIT ` + strconv.Itoa(prebuilds.MaxStreak) + `
    ) x
) f
WHERE p.desired IS NOT NULL AND (f.streak > 0 OR s.id IS NOT NULL)` + filter
}

// outcomeRow is one row of snapshotOutcomesSQL.
type outcomeRow struct {
	presetID     uuid.UUID
	streak       int64
	lastFailedAt time.Time // zero when the streak is 0
	proven       bool
}

// addOutcomes files the outcome rows into snap: a StreakRow per preset with
// a streak, the proven presets, and, with K > 0, the presets whose streak
// reached K (hard_limited(P) under PolicyAdaptive).
func addOutcomes(snap *prebuilds.GlobalSnapshot, rows []outcomeRow, k int) {
	for _, r := range rows {
		if r.streak > 0 {
			snap.Streaks = append(snap.Streaks, prebuilds.StreakRow{
				PresetID: r.presetID, Streak: int(r.streak), LastFailedAt: r.lastFailedAt,
			})
			if k > 0 && r.streak >= int64(k) {
				snap.HardLimited = append(snap.HardLimited, r.presetID)
			}
		}
		if r.proven {
			snap.Proven = append(snap.Proven, r.presetID)
		}
	}
}

// FailStuckBuild fails a start build that outlived the build timeout
// (docs/spec.md, "Stuck builds"): in one transaction that locks the
// instance row first, as UpdateJob does, so that a provisioner's report
// racing it either lands before (and the build is no longer in progress)
// or after (and gets ErrInvalidTransition).
func (s *Store) FailStuckBuild(ctx context.Context, p prebuilds.FailStuckBuildParams) error {
	return opError("fail stuck build", p.BuildID, s.failStuckBuild(ctx, p))
}

func (s *Store) failStuckBuild(ctx context.Context, p prebuilds.FailStuckBuildParams) error {
	if p.BuildID == uuid.Nil {
		return errf(prebuilds.ErrInvalidArgument, "build id must not be nil")
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		instanceID, inst, err := lockInstanceOfBuild(ctx, tx, p.BuildID)
		if err != nil {
			return err
		}
		var (
			transition, status string
			createdAt          time.Time
		)
		err = tx.QueryRow(ctx, `SELECT transition::text, job_status::text, created_at FROM builds WHERE id = $1 FOR UPDATE`,
			pgUUID(p.BuildID)).Scan(&transition, &status, &createdAt)
		if err != nil {
			return err
		}
		switch {
		case prebuilds.Transition(transition) != prebuilds.TransitionStart || !prebuilds.JobStatus(status).InProgress():
			return errf(prebuilds.ErrConflict, "build %s is a %s build whose job is %s, not a start build in progress", p.BuildID, transition, status)
		case !createdAt.Before(p.StuckBefore):
			return errf(prebuilds.ErrConflict, "build %s was created at %s, not before %s", p.BuildID,
				createdAt.UTC().Format(time.RFC3339Nano), p.StuckBefore.UTC().Format(time.RFC3339Nano))
		case inst.deleted || inst.owner != prebuilds.SystemOwner:
			return errf(prebuilds.ErrConflict, "instance %s is no longer a live prebuild", instanceID)
		}
		tag, err := tx.Exec(ctx, failStuckBuildSQL, pgUUID(p.BuildID), micro(p.Now))
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("build %s: %d rows failed, want 1", p.BuildID, tag.RowsAffected())
		}
		return nil
	})
}

// failStuckBuildSQL fails the build $1 with failure kind timeout, completed
// at $2. The checks ran on the locked rows just before.
const failStuckBuildSQL = `
UPDATE builds SET job_status = 'failed', failure_kind = 'timeout', completed_at = $2
WHERE id = $1 AND transition = 'start' AND job_status IN ('pending', 'running')`
