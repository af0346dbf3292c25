package pgstore

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// claimableSQL is true when instance i (in scope) is a claimable prebuild of
// preset $2: SystemOwner ($1), not deleted, ready, created at or after $3
// (invalidated_at, may be NULL) and $4 (the TTL cut-off, may be NULL), its
// latest build start+succeeded and its current preset $2.
const claimableSQL = `
	i.owner_id = $1 AND NOT i.deleted AND i.ready
	AND ($3::timestamptz IS NULL OR i.created_at >= $3::timestamptz)
	AND ($4::timestamptz IS NULL OR i.created_at >= $4::timestamptz)
	AND (SELECT b.transition = 'start' AND b.job_status = 'succeeded'
	     FROM builds b WHERE b.instance_id = i.id ORDER BY b.number DESC LIMIT 1)
	AND (SELECT b.preset_id FROM builds b
	     WHERE b.instance_id = i.id AND b.transition = 'start' AND b.preset_id IS NOT NULL
	     ORDER BY b.number DESC LIMIT 1) = $2`

// Claim takes the oldest claimable prebuild of the preset and gives it to
// p.Owner.
//
// The candidate row is locked with FOR UPDATE SKIP LOCKED, so concurrent
// claimers never wait for each other or take the same instance. Because a
// delete or a job update may have committed between the statement's
// snapshot and the lock, the criteria are checked again in a new statement
// once the lock is held; a candidate that fails the re-check is passed over.
// DeletePrebuild takes the same row lock, so exactly one of a racing claim
// and delete wins.
func (s *Store) Claim(ctx context.Context, p prebuilds.ClaimParams) (prebuilds.Instance, error) {
	inst, err := s.claim(ctx, p)
	if err != nil {
		return prebuilds.Instance{}, opError("claim", "preset "+p.PresetID.String(), err)
	}
	return inst, nil
}

func (s *Store) claim(ctx context.Context, p prebuilds.ClaimParams) (prebuilds.Instance, error) {
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
