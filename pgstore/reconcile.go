package pgstore

import (
	"context"
	"errors"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// CreatePrebuilds inserts one SystemOwner instance and its build #1 per
// entry in a single statement (one round trip, atomic on its own): a CTE
// reads the preset only if it belongs to the given version, and the two
// INSERTs take their rows from it, so a missing preset or a version mismatch
// inserts nothing. Only then does a second read tell the two apart.
func (s *Store) CreatePrebuilds(ctx context.Context, p prebuilds.CreatePrebuildsParams) ([]prebuilds.Job, error) {
	jobs, err := s.createPrebuilds(ctx, p)
	if err != nil {
		return nil, opError("create prebuilds", "preset "+p.PresetID.String(), err)
	}
	return jobs, nil
}

// createPrebuildsSQL inserts the instances ($5 ids, $6 names) and their
// builds ($7 ids) of preset $1 if the preset belongs to version $2, and
// returns the number of builds inserted and the preset's parameters (NULL
// when the preset did not match). The builds' foreign key to instances is
// checked at the end of the statement, after both INSERTs, so the sibling
// CTEs need not be chained.
const createPrebuildsSQL = `
WITH preset AS (
	SELECT p.id, p.parameters, v.template_id
	FROM presets p JOIN template_versions v ON v.id = p.template_version_id
	WHERE p.id = $1 AND p.template_version_id = $2
), new_instances AS (
	INSERT INTO instances (id, owner_id, template_id, name, created_at, created_as_prebuild, preset_id)
	SELECT u.id, $3, preset.template_id, u.name, $4, true, preset.id
	FROM preset, unnest($5::uuid[], $6::text[]) AS u(id, name)
), new_builds AS (
	INSERT INTO builds (id, instance_id, number, template_version_id, preset_id, transition, job_status, parameters, created_at)
	SELECT u.build_id, u.instance_id, 1, $2, preset.id, 'start', 'pending', preset.parameters, $4
	FROM preset, unnest($7::uuid[], $5::uuid[]) AS u(build_id, instance_id)
	RETURNING id
)
SELECT (SELECT count(*) FROM new_builds), (SELECT parameters FROM preset)`

func (s *Store) createPrebuilds(ctx context.Context, p prebuilds.CreatePrebuildsParams) ([]prebuilds.Job, error) {
	if len(p.Instances) == 0 {
		return nil, nil
	}
	if p.PresetID == uuid.Nil || p.TemplateVersionID == uuid.Nil {
		return nil, errf(prebuilds.ErrInvalidArgument, "preset and version ids must not be nil")
	}
	instanceIDs := make([]uuid.UUID, len(p.Instances))
	buildIDs := make([]uuid.UUID, len(p.Instances))
	names := make([]string, len(p.Instances))
	for i, n := range p.Instances {
		if n.InstanceID == uuid.Nil || n.BuildID == uuid.Nil {
			return nil, errf(prebuilds.ErrInvalidArgument, "entry %d: instance and build ids must not be nil", i)
		}
		instanceIDs[i], buildIDs[i], names[i] = n.InstanceID, n.BuildID, n.Name
	}
	// A repeated ID is found before any SQL, but the preset checks come
	// first in the order of checks, so it is reported only after them.
	var repeat error
	if dup, ok := firstRepeat(instanceIDs); ok {
		repeat = errf(prebuilds.ErrConflict, "instance id %s repeats", dup)
	} else if dup, ok := firstRepeat(buildIDs); ok {
		repeat = errf(prebuilds.ErrConflict, "build id %s repeats", dup)
	}
	if repeat != nil {
		if err := s.checkCreatePreset(ctx, p); err != nil {
			return nil, err
		}
		return nil, repeat
	}
	var inserted int64
	var presetParams map[string]string
	err := s.pool.QueryRow(ctx, createPrebuildsSQL,
		pgUUID(p.PresetID), pgUUID(p.TemplateVersionID), pgUUID(prebuilds.SystemOwner), micro(p.Now),
		pgUUIDs(instanceIDs), names, pgUUIDs(buildIDs),
	).Scan(&inserted, &presetParams)
	if err != nil {
		return nil, err
	}
	if inserted != int64(len(p.Instances)) {
		// Nothing was inserted: the preset is missing or of another version.
		if err := s.checkCreatePreset(ctx, p); err != nil {
			return nil, err
		}
		// The preset matches now but did not when the statement ran (it
		// was created in between): report it as a conflict, nothing written.
		return nil, errf(prebuilds.ErrConflict, "preset %s changed concurrently; %d of %d inserted", p.PresetID, inserted, len(p.Instances))
	}
	jobs := make([]prebuilds.Job, len(p.Instances))
	for i, n := range p.Instances {
		jobs[i] = prebuilds.Job{
			BuildID:           n.BuildID,
			InstanceID:        n.InstanceID,
			PresetID:          p.PresetID,
			TemplateVersionID: p.TemplateVersionID,
			Transition:        prebuilds.TransitionStart,
			Parameters:        copyParams(presetParams),
		}
	}
	return jobs, nil
}

// checkCreatePreset runs CreatePrebuilds' preset checks in the documented
// order (preset missing → ErrNotFound, version mismatch → ErrConflict). It
// is called only on error paths.
func (s *Store) checkCreatePreset(ctx context.Context, p prebuilds.CreatePrebuildsParams) error {
	var versionID uuid.UUID
	err := s.pool.QueryRow(ctx, `SELECT template_version_id FROM presets WHERE id = $1`, p.PresetID).Scan(&versionID)
	if errors.Is(err, pgx.ErrNoRows) {
		return errf(prebuilds.ErrNotFound, "preset %s", p.PresetID)
	}
	if err != nil {
		return err
	}
	if versionID != p.TemplateVersionID {
		return errf(prebuilds.ErrConflict, "preset %s belongs to version %s, not %s", p.PresetID, versionID, p.TemplateVersionID)
	}
	return nil
}

func firstRepeat(ids []uuid.UUID) (uuid.UUID, bool) {
	seen := make(map[uuid.UUID]struct{}, len(ids))
	for _, id := range ids {
		if _, ok := seen[id]; ok {
			return id, true
		}
		seen[id] = struct{}{}
	}
	return uuid.Nil, false
}

// DeletePrebuild inserts a delete build under the instance row lock, only if
// the instance is still a running prebuild. Claim takes the same lock, so a
// claimed instance is never deleted.
func (s *Store) DeletePrebuild(ctx context.Context, p prebuilds.DeletePrebuildParams) (prebuilds.Job, error) {
	job, err := s.deletePrebuild(ctx, p)
	if err != nil {
		return prebuilds.Job{}, opError("delete prebuild", p.InstanceID, err)
	}
	return job, nil
}

func (s *Store) deletePrebuild(ctx context.Context, p prebuilds.DeletePrebuildParams) (prebuilds.Job, error) {
	if p.InstanceID == uuid.Nil || p.BuildID == uuid.Nil {
		return prebuilds.Job{}, errf(prebuilds.ErrInvalidArgument, "instance and build ids must not be nil")
	}
	var job prebuilds.Job
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		inst, err := lockInstance(ctx, tx, p.InstanceID)
		if err != nil {
			return err
		}
		if inst.owner != prebuilds.SystemOwner {
			return errf(prebuilds.ErrConflict, "instance %s is owned by %s", p.InstanceID, inst.owner)
		}
		if inst.deleted {
			return errf(prebuilds.ErrConflict, "instance %s is deleted", p.InstanceID)
		}
		latest, err := latestBuild(ctx, tx, p.InstanceID)
		if err != nil {
			return err
		}
		if latest.transition != prebuilds.TransitionStart || latest.status != prebuilds.JobSucceeded {
			return errf(prebuilds.ErrConflict, "instance %s: latest build is %s+%s", p.InstanceID, latest.transition, latest.status)
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO builds (id, instance_id, number, template_version_id, preset_id, transition, job_status, parameters, created_at)
			VALUES ($1, $2, $3, $4, NULL, 'delete', 'pending', '{}', $5)`,
			p.BuildID, p.InstanceID, latest.number+1, latest.versionID, micro(p.Now))
		if err != nil {
			return err
		}
		job = prebuilds.Job{
			BuildID:           p.BuildID,
			InstanceID:        p.InstanceID,
			TemplateVersionID: latest.versionID,
			Transition:        prebuilds.TransitionDelete,
		}
		return nil
	})
	return job, err
}

// activeSQL is true when preset p is active; it expects p (presets) and t
// (templates) in scope. A template without an active version has no active
// preset.
const activeSQL = `(t.active_version_id IS NOT DISTINCT FROM p.template_version_id AND NOT t.deprecated AND NOT t.deleted)`

// CancelPending cancels the queued first builds of an inactive preset.
func (s *Store) CancelPending(ctx context.Context, p prebuilds.CancelPendingParams) ([]uuid.UUID, error) {
	ids, err := s.cancelPending(ctx, p)
	if err != nil {
		return nil, opError("cancel pending", "preset "+p.PresetID.String(), err)
	}
	return ids, nil
}

func (s *Store) cancelPending(ctx context.Context, p prebuilds.CancelPendingParams) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// FOR SHARE on the template holds off SetActiveVersion and friends
		// until the cancellation commits.
		var active bool
		err := tx.QueryRow(ctx, `
			SELECT `+activeSQL+`
			FROM presets p
			JOIN template_versions v ON v.id = p.template_version_id
			JOIN templates t ON t.id = v.template_id
			WHERE p.id = $1
			FOR SHARE OF t`, p.PresetID).Scan(&active)
		if errors.Is(err, pgx.ErrNoRows) {
			return errf(prebuilds.ErrNotFound, "preset %s", p.PresetID)
		}
		if err != nil || active {
			return err
		}
		// Lock the candidate instances, then re-check the criteria in a
		// new statement, which sees every build committed before the locks
		// were granted.
		rows, err := tx.Query(ctx, `
			SELECT i.id FROM instances i
			WHERE i.owner_id = $1 AND NOT i.deleted
			  AND i.id IN (SELECT b.instance_id FROM builds b
			               WHERE b.preset_id = $2 AND b.transition = 'start' AND b.number = 1 AND b.job_status = 'pending')
			ORDER BY i.id
			FOR UPDATE OF i`, prebuilds.SystemOwner, p.PresetID)
		if err != nil {
			return err
		}
		locked, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil || len(locked) == 0 {
			return err
		}
		rows, err = tx.Query(ctx, `
			UPDATE builds b SET job_status = 'canceled', completed_at = $4
			FROM instances i
			WHERE i.id = b.instance_id AND i.id = ANY($3::uuid[])
			  AND i.owner_id = $1 AND NOT i.deleted
			  AND b.number = 1 AND b.preset_id = $2 AND b.transition = 'start' AND b.job_status = 'pending'
			  AND NOT EXISTS (SELECT 1 FROM builds later WHERE later.instance_id = i.id AND later.number > 1)
			RETURNING b.instance_id`, prebuilds.SystemOwner, p.PresetID, pgUUIDs(locked), micro(p.Now))
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
		if err != nil || len(ids) == 0 {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE instances SET deleted = true WHERE id = ANY($1::uuid[])`, pgUUIDs(ids))
		return err
	})
	if err != nil {
		return nil, err
	}
	if ids == nil {
		ids = []uuid.UUID{} // empty, not nil, when nothing was canceled
	}
	slices.SortFunc(ids, prebuilds.CompareUUID)
	return ids, nil
}

// SetPresetStatus is a compare-and-set of the preset's status in one
// statement.
func (s *Store) SetPresetStatus(ctx context.Context, presetID uuid.UUID, from, to prebuilds.PresetStatus) (bool, error) {
	changed, err := s.setPresetStatus(ctx, presetID, from, to)
	return changed, opError("set preset status", presetID, err)
}

func (s *Store) setPresetStatus(ctx context.Context, presetID uuid.UUID, from, to prebuilds.PresetStatus) (bool, error) {
	if !from.Valid() || !to.Valid() {
		return false, errf(prebuilds.ErrInvalidArgument, "preset status %q → %q", from, to)
	}
	var exists, changed bool
	err := s.pool.QueryRow(ctx, `
		WITH updated AS (
		    UPDATE presets SET status = $3::preset_status WHERE id = $1 AND status = $2::preset_status RETURNING 1
		)
		SELECT EXISTS (SELECT 1 FROM updated) OR EXISTS (SELECT 1 FROM presets WHERE id = $1),
		       EXISTS (SELECT 1 FROM updated)`,
		presetID, string(from), string(to)).Scan(&exists, &changed)
	if err != nil {
		return false, err
	}
	if !exists {
		return false, errf(prebuilds.ErrNotFound, "preset %s", presetID)
	}
	return changed, nil
}
