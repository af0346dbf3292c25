package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Claim takes the oldest claimable prebuild of the preset and gives it to
// p.Owner, in one statement (claimSQL): one round trip, atomic on its own.
func (s *Store) Claim(ctx context.Context, p prebuilds.ClaimParams) (prebuilds.Instance, error) {
	inst, err := s.claimOne(ctx, p)
	if err != nil {
		return prebuilds.Instance{}, opError("claim", "preset "+p.PresetID.String(), err)
	}
	return inst, nil
}

// claimSQL claims for owner $3 at $4 the oldest claimable prebuild of
// preset $2, counts a miss when there is none, and notifies channel $1 of
// the claim (hit or miss), all in one statement:
//
//   - preset: the preset, whether it is active, its TTL and invalidation.
//   - candidate: the preset's pool (instances_pool_idx: live prebuilds
//     whose current preset is $2, oldest first) filtered by what the
//     instance row says (ready, not expired), each locked in turn with FOR
//     NO KEY UPDATE SKIP LOCKED, so concurrent claimers never wait for each
//     other nor take the same instance. (NO KEY UPDATE is the lock the
//     transfer, an update of no key column, takes anyway; it conflicts with
//     every other writer's lock on the row, and not with the key-share lock
//     a build's foreign key check takes.) A row that another transaction changed
//     after this statement began is re-checked by PostgreSQL once locked
//     (its newest version must still pass the filter). The latest build is
//     re-checked too, by prebuildkit_running (migration 0005), which reads
//     with a new snapshot: a delete or start build committed after the
//     statement began (its writer held the row lock, not changed the row)
//     is seen, and the candidate passed over for the next one. The first
//     locked candidate that passes is the one. OFFSET 0 keeps the planner
//     from pushing the re-check into the subquery, below the lock, where
//     it would run before the row is locked.
//   - claimed: the transfer. missed: the miss counter, when nothing was
//     claimed. notified: the change.
//
// It returns one row when the preset exists (active, the notification
// count, then the claimed instance's columns, NULL on a miss) and none
// when it does not. DeletePrebuild, StartBuild, UpdateJob and CancelPending
// take the instance row lock before they check and write, so a claimed
// instance is never deleted and exactly one of a racing claim and delete
// wins.
//
// Not expired at now (microsecond precision, like every stored time) ⇔
// created_at ≥ invalidated_at (when set) and created_at ≥ now − ttl (when
// ttl > 0); ttl is subtracted as whole seconds plus microseconds, both
// exact (interval arithmetic multiplies in floating point).
const claimSQL = `
WITH preset AS (
    SELECT p.id, ` + activeSQL + ` AS active, p.ttl_micros, p.invalidated_at
    FROM presets p
    JOIN template_versions v ON v.id = p.template_version_id
    JOIN templates t ON t.id = v.template_id
    WHERE p.id = $2
), candidate AS (
    SELECT c.id
    FROM (
        SELECT i.id
        FROM instances i, preset p
        WHERE i.preset_id = $2 AND i.owner_id = ` + systemOwnerSQL + ` AND NOT i.deleted
          AND p.active AND i.ready
          AND (p.invalidated_at IS NULL OR i.created_at >= p.invalidated_at)
          AND (p.ttl_micros = 0 OR i.created_at >= $4::timestamptz
               - (p.ttl_micros / 1000000) * interval '1 second'
               - (p.ttl_micros % 1000000) * interval '1 microsecond')
        ORDER BY i.created_at, i.id
        OFFSET 0
        FOR NO KEY UPDATE OF i SKIP LOCKED
    ) c
    WHERE prebuildkit_running(c.id)
    LIMIT 1
), claimed AS (
    UPDATE instances i SET owner_id = $3, claimed_at = $4
    FROM candidate c
    WHERE i.id = c.id
    RETURNING ` + claimedColumns + `
), missed AS (
    INSERT INTO preset_claim_misses (preset_id, misses)
    SELECT p.id, 1 FROM preset p WHERE NOT EXISTS (SELECT FROM claimed)
    ON CONFLICT (preset_id) DO UPDATE SET misses = preset_claim_misses.misses + 1
    RETURNING preset_id
), notified AS (
    SELECT pg_notify($1, '` + string(prebuilds.ChangeClaimed) + `:' || p.id::text) FROM preset p
)
SELECT p.active, (SELECT count(*) FROM notified), (SELECT count(*) FROM missed),
       c.id, c.owner_id, c.template_id, c.name, c.created_at, c.ready, c.deleted, c.claimed_at
FROM preset p LEFT JOIN claimed c ON true`

// claimedColumns are instanceColumns of the claimed row.
const claimedColumns = `i.id, i.owner_id, i.template_id, i.name, i.created_at, i.ready, i.deleted, i.claimed_at`

// systemOwnerSQL is prebuilds.SystemOwner as an SQL literal: written into
// the query, not passed as a parameter, so that the planner matches the
// partial indexes whose predicate names it under any plan.
const systemOwnerSQL = `'c42fdf75-3097-471c-8c33-fb52454d81c0'::uuid`

func (s *Store) claimOne(ctx context.Context, p prebuilds.ClaimParams) (prebuilds.Instance, error) {
	if p.Owner == uuid.Nil || p.Owner == prebuilds.SystemOwner {
		return prebuilds.Instance{}, errf(prebuilds.ErrInvalidArgument, "owner %s cannot claim", p.Owner)
	}
	var (
		active           bool
		notified, missed int64
		id, owner, tmpl  pgtype.UUID
		name             *string
		createdAt        *time.Time
		ready, deleted   *bool
		claimedAt        *time.Time
	)
	err := s.pool.QueryRow(ctx, claimSQL, s.channel, pgUUID(p.PresetID), pgUUID(p.Owner), micro(p.Now)).
		Scan(&active, &notified, &missed, &id, &owner, &tmpl, &name, &createdAt, &ready, &deleted, &claimedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return prebuilds.Instance{}, errf(prebuilds.ErrNotFound, "preset %s", p.PresetID)
	case err != nil:
		return prebuilds.Instance{}, err
	case !id.Valid && !active:
		return prebuilds.Instance{}, errf(prebuilds.ErrNoClaimablePrebuild, "preset %s is not active", p.PresetID)
	case !id.Valid:
		return prebuilds.Instance{}, errf(prebuilds.ErrNoClaimablePrebuild, "preset %s", p.PresetID)
	}
	return prebuilds.Instance{
		ID: id.Bytes, OwnerID: owner.Bytes, TemplateID: tmpl.Bytes, Name: *name, CreatedAt: createdAt.UTC(),
		Ready: *ready, Deleted: *deleted, ClaimedAt: timeOf(claimedAt),
	}, nil
}

// claimableSQL (claimTwoStep) is true when instance i (in scope) is a
// claimable prebuild of preset $2: SystemOwner ($1), not deleted, ready,
// created at or after $3 (invalidated_at, may be NULL) and $4 (the TTL
// cut-off, may be NULL), its latest build start+succeeded and its current
// preset $2.
const claimableSQL = `
	i.owner_id = $1 AND NOT i.deleted AND i.ready
	AND ($3::timestamptz IS NULL OR i.created_at >= $3::timestamptz)
	AND ($4::timestamptz IS NULL OR i.created_at >= $4::timestamptz)
	AND (SELECT b.transition = 'start' AND b.job_status = 'succeeded'
	     FROM builds b WHERE b.instance_id = i.id ORDER BY b.number DESC LIMIT 1)
	AND (SELECT b.preset_id FROM builds b
	     WHERE b.instance_id = i.id AND b.transition = 'start' AND b.preset_id IS NOT NULL
	     ORDER BY b.number DESC LIMIT 1) = $2`

// claimTwoStep is the claim pgstore made before claimSQL, kept for the
// benchmark that compares the two (pgstore/bench_test.go): a read-committed
// transaction that reads the preset, locks the oldest candidate with FOR
// UPDATE SKIP LOCKED, then checks the criteria again in a new statement
// before transferring it, passing over candidates that fail the re-check.
// It does not notify the change feed.
func (s *Store) claimTwoStep(ctx context.Context, p prebuilds.ClaimParams) (prebuilds.Instance, error) {
	if p.Owner == uuid.Nil || p.Owner == prebuilds.SystemOwner {
		return prebuilds.Instance{}, errf(prebuilds.ErrInvalidArgument, "owner %s cannot claim", p.Owner)
	}
	var (
		inst prebuilds.Instance
		miss error
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var (
			active        bool
			ttlMicros     int64
			invalidatedAt *time.Time
		)
		err := tx.QueryRow(ctx, `
			SELECT `+activeSQL+`, p.ttl_micros, p.invalidated_at
			FROM presets p
			JOIN template_versions v ON v.id = p.template_version_id
			JOIN templates t ON t.id = v.template_id
			WHERE p.id = $1`, p.PresetID).Scan(&active, &ttlMicros, &invalidatedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return errf(prebuilds.ErrNotFound, "preset %s", p.PresetID)
		}
		if err != nil {
			return err
		}
		if !active {
			miss = errf(prebuilds.ErrNoClaimablePrebuild, "preset %s is not active", p.PresetID)
			_, err := tx.Exec(ctx, missSQL, pgUUID(p.PresetID))
			return err // commit the count, then report the miss
		}
		// Not expired at now (taken at microsecond precision, like every
		// stored time) ⇔ created_at ≥ invalidated_at (when set) and
		// now − created_at ≤ ttl, i.e. created_at ≥ now − ttl (when ttl > 0).
		var ttlCutoff *time.Time
		if ttlMicros > 0 {
			c := micro(p.Now).Add(-time.Duration(ttlMicros) * time.Microsecond)
			ttlCutoff = &c
		}
		passed := []uuid.UUID{} // never nil: ANY(NULL) would match nothing
		for {
			var id uuid.UUID
			err := tx.QueryRow(ctx, `
				SELECT i.id FROM instances i
				WHERE `+claimableSQL+`
				  AND i.id IN (SELECT b.instance_id FROM builds b WHERE b.preset_id = $2 AND b.transition = 'start')
				  AND NOT (i.id = ANY($5::uuid[]))
				ORDER BY i.created_at, i.id
				LIMIT 1
				FOR UPDATE OF i SKIP LOCKED`,
				prebuilds.SystemOwner, p.PresetID, invalidatedAt, ttlCutoff, pgUUIDs(passed)).Scan(&id)
			if errors.Is(err, pgx.ErrNoRows) {
				miss = errf(prebuilds.ErrNoClaimablePrebuild, "preset %s", p.PresetID)
				_, err := tx.Exec(ctx, missSQL, pgUUID(p.PresetID))
				return err // commit the count, then report the miss
			}
			if err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `
				UPDATE instances i SET owner_id = $6, claimed_at = $7
				WHERE i.id = $5 AND `+claimableSQL+`
				RETURNING `+instanceColumns,
				prebuilds.SystemOwner, p.PresetID, invalidatedAt, ttlCutoff, id, p.Owner, micro(p.Now))
			if err != nil {
				return err
			}
			inst, err = pgx.CollectExactlyOneRow(rows, scanInstance)
			if errors.Is(err, pgx.ErrNoRows) {
				passed = append(passed, id)
				continue
			}
			return err
		}
	})
	if err == nil && miss != nil {
		return prebuilds.Instance{}, miss
	}
	return inst, err
}

// missSQL counts one claim of preset $1 that found nothing claimable.
const missSQL = `
INSERT INTO preset_claim_misses (preset_id, misses) VALUES ($1, 1)
ON CONFLICT (preset_id) DO UPDATE SET misses = preset_claim_misses.misses + 1`
