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

// CreateTemplate inserts a template.
func (s *Store) CreateTemplate(ctx context.Context, t prebuilds.Template) error {
	return opError("create template", t.ID, s.createTemplate(ctx, t))
}

func (s *Store) createTemplate(ctx context.Context, t prebuilds.Template) error {
	switch {
	case t.ID == uuid.Nil:
		return errf(prebuilds.ErrInvalidArgument, "template id is nil")
	case t.Name == "":
		return errf(prebuilds.ErrInvalidArgument, "template name is empty")
	case t.ActiveVersionID != uuid.Nil:
		return errf(prebuilds.ErrInvalidArgument, "active version must be set with SetActiveVersion")
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO templates (id, organization_id, organization_name, name, deprecated, deleted)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		t.ID, t.OrganizationID, t.OrganizationName, t.Name, t.Deprecated, t.Deleted)
	return err
}

// CreateTemplateVersion inserts a version of an existing template.
func (s *Store) CreateTemplateVersion(ctx context.Context, v prebuilds.TemplateVersion) error {
	return opError("create template version", v.ID, s.createTemplateVersion(ctx, v))
}

func (s *Store) createTemplateVersion(ctx context.Context, v prebuilds.TemplateVersion) error {
	if v.ID == uuid.Nil || v.TemplateID == uuid.Nil {
		return errf(prebuilds.ErrInvalidArgument, "version id or template id is nil")
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if err := mustExist(ctx, tx, "template", `SELECT EXISTS (SELECT 1 FROM templates WHERE id = $1)`, v.TemplateID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `
			INSERT INTO template_versions (id, template_id, name, created_at) VALUES ($1, $2, $3, $4)`,
			v.ID, v.TemplateID, v.Name, micro(v.CreatedAt))
		return err
	})
}

// SetActiveVersion makes versionID the template's active version.
func (s *Store) SetActiveVersion(ctx context.Context, templateID, versionID uuid.UUID) error {
	return opError("set active version", templateID, s.setActiveVersion(ctx, templateID, versionID))
}

func (s *Store) setActiveVersion(ctx context.Context, templateID, versionID uuid.UUID) error {
	return s.inTx(ctx, func(tx pgx.Tx) error {
		var deleted bool
		err := tx.QueryRow(ctx, `SELECT deleted FROM templates WHERE id = $1 FOR UPDATE`, templateID).Scan(&deleted)
		if errors.Is(err, pgx.ErrNoRows) {
			return errf(prebuilds.ErrNotFound, "template %s", templateID)
		}
		if err != nil {
			return err
		}
		var owner uuid.UUID
		err = tx.QueryRow(ctx, `SELECT template_id FROM template_versions WHERE id = $1`, versionID).Scan(&owner)
		if errors.Is(err, pgx.ErrNoRows) || (err == nil && owner != templateID) {
			return errf(prebuilds.ErrNotFound, "version %s of template %s", versionID, templateID)
		}
		if err != nil {
			return err
		}
		if deleted {
			return errf(prebuilds.ErrConflict, "template %s is deleted", templateID)
		}
		_, err = tx.Exec(ctx, `UPDATE templates SET active_version_id = $2 WHERE id = $1`, templateID, versionID)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `WITH written AS (SELECT $2::uuid AS id),`+templatePresetsCTE+` SELECT count(*) FROM notified`,
			s.channel, pgUUID(templateID))
		return err
	})
}

// SetTemplateDeprecated sets or clears the deprecated flag.
func (s *Store) SetTemplateDeprecated(ctx context.Context, templateID uuid.UUID, deprecated bool) error {
	return opError("set template deprecated", templateID,
		s.updateNotify(ctx, "template", `WITH written AS (UPDATE templates SET deprecated = $3 WHERE id = $2 RETURNING id),`+
			templatePresetsCTE, templateID, deprecated))
}

// DeleteTemplate marks the template deleted (idempotent).
func (s *Store) DeleteTemplate(ctx context.Context, templateID uuid.UUID) error {
	return opError("delete template", templateID,
		s.updateNotify(ctx, "template", `WITH written AS (UPDATE templates SET deleted = true WHERE id = $2 RETURNING id),`+
			templatePresetsCTE, templateID))
}

// UpsertPreset validates p and inserts or updates it.
func (s *Store) UpsertPreset(ctx context.Context, p prebuilds.Preset) error {
	return opError("upsert preset", p.ID, s.upsertPreset(ctx, p))
}

func (s *Store) upsertPreset(ctx context.Context, p prebuilds.Preset) error {
	if err := prebuilds.ValidatePreset(p); err != nil {
		return err
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if err := mustExist(ctx, tx, "template version", `SELECT EXISTS (SELECT 1 FROM template_versions WHERE id = $1)`, p.TemplateVersionID); err != nil {
			return err
		}
		var (
			existingVersion uuid.UUID
			desiredSet      bool
		)
		err := tx.QueryRow(ctx, `SELECT template_version_id, desired IS NOT NULL FROM presets WHERE id = $1 FOR UPDATE`, p.ID).
			Scan(&existingVersion, &desiredSet)
		exists := err == nil
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if exists && existingVersion != p.TemplateVersionID {
			return errf(prebuilds.ErrConflict, "preset %s belongs to version %s", p.ID, existingVersion)
		}
		var nameTaken bool
		err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM presets WHERE template_version_id = $1 AND name = $2 AND id <> $3)`,
			p.TemplateVersionID, p.Name, p.ID).Scan(&nameTaken)
		if err != nil {
			return err
		}
		if nameTaken {
			return errf(prebuilds.ErrConflict, "version %s already has a preset named %q", p.TemplateVersionID, p.Name)
		}
		if exists && desiredSet && p.Desired == nil {
			return &prebuilds.ValidationError{Field: "desired", Reason: "cannot be unset once set"}
		}
		ttl := int64(p.TTL / time.Microsecond)
		if exists {
			_, err = tx.Exec(ctx, `
				UPDATE presets SET name = $2, desired = $3, ttl_micros = $4, timezone = $5, parameters = $6
				WHERE id = $1`,
				p.ID, p.Name, p.Desired, ttl, p.Timezone, params(p.Parameters))
		} else {
			status := p.Status
			if status == "" {
				status = prebuilds.PresetHealthy
			}
			_, err = tx.Exec(ctx, `
				INSERT INTO presets (id, template_version_id, name, desired, ttl_micros, invalidated_at, timezone, parameters, status, reset_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
				p.ID, p.TemplateVersionID, p.Name, p.Desired, ttl, nullTime(p.InvalidatedAt), p.Timezone,
				params(p.Parameters), string(status), nullTime(p.ResetAt))
		}
		if err != nil {
			return err
		}
		if err := replaceSchedules(ctx, tx, p.ID, p.Schedules); err != nil {
			return err
		}
		return s.notifyPresets(ctx, tx, prebuilds.ChangePresetWritten, p.ID)
	})
}

func replaceSchedules(ctx context.Context, tx pgx.Tx, presetID uuid.UUID, schedules []prebuilds.Schedule) error {
	if _, err := tx.Exec(ctx, `DELETE FROM preset_schedules WHERE preset_id = $1`, presetID); err != nil {
		return err
	}
	if len(schedules) == 0 {
		return nil
	}
	positions := make([]int32, len(schedules))
	crons := make([]string, len(schedules))
	instances := make([]int32, len(schedules))
	for i, sc := range schedules {
		positions[i] = int32(i)
		crons[i] = sc.Cron
		instances[i] = int32(sc.Instances)
	}
	_, err := tx.Exec(ctx, `
		INSERT INTO preset_schedules (preset_id, position, cron, instances)
		SELECT $1, u.position, u.cron, u.instances
		FROM unnest($2::integer[], $3::text[], $4::integer[]) AS u(position, cron, instances)`,
		presetID, positions, crons, instances)
	return err
}

// InvalidatePreset sets invalidated_at: prebuilds created before it expire.
func (s *Store) InvalidatePreset(ctx context.Context, presetID uuid.UUID, at time.Time) error {
	return opError("invalidate preset", presetID,
		s.updateNotify(ctx, "preset", `WITH written AS (UPDATE presets SET invalidated_at = $3 WHERE id = $2 RETURNING id),`+
			presetWrittenCTE, presetID, nullTime(at)))
}

// ResetPreset sets the preset healthy and reset_at = at.
func (s *Store) ResetPreset(ctx context.Context, presetID uuid.UUID, at time.Time) error {
	return opError("reset preset", presetID,
		s.updateNotify(ctx, "preset", `WITH written AS (UPDATE presets SET status = 'healthy', reset_at = $3 WHERE id = $2 RETURNING id),`+
			presetWrittenCTE, presetID, nullTime(at)))
}

// SetPaused sets the global pause switch. Resuming is a resync of the
// change feed.
func (s *Store) SetPaused(ctx context.Context, paused bool) error {
	return opError("set paused", paused,
		s.updateNotify(ctx, "settings row", `WITH written AS (UPDATE settings SET paused = $2 RETURNING paused),
notified AS (SELECT pg_notify($1, '`+string(prebuilds.ChangeResync)+`') FROM written WHERE NOT written.paused)`, paused))
}

// CreateInstance inserts an instance and its build #1.
func (s *Store) CreateInstance(ctx context.Context, p prebuilds.CreateInstanceParams) error {
	return opError("create instance", p.InstanceID, s.createInstance(ctx, p))
}

func (s *Store) createInstance(ctx context.Context, p prebuilds.CreateInstanceParams) error {
	if p.InstanceID == uuid.Nil || p.BuildID == uuid.Nil || p.OwnerID == uuid.Nil ||
		p.TemplateID == uuid.Nil || p.TemplateVersionID == uuid.Nil {
		return errf(prebuilds.ErrInvalidArgument, "instance, build, owner, template and version ids must not be nil")
	}
	if !p.Transition.Valid() {
		return errf(prebuilds.ErrInvalidArgument, "unknown transition %q", p.Transition)
	}
	now := micro(p.Now)
	return s.inTx(ctx, func(tx pgx.Tx) error {
		if err := mustExist(ctx, tx, "template", `SELECT EXISTS (SELECT 1 FROM templates WHERE id = $1)`, p.TemplateID); err != nil {
			return err
		}
		var versionOK bool
		err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM template_versions WHERE id = $1 AND template_id = $2)`,
			p.TemplateVersionID, p.TemplateID).Scan(&versionOK)
		if err != nil {
			return err
		}
		if !versionOK {
			return errf(prebuilds.ErrNotFound, "version %s of template %s", p.TemplateVersionID, p.TemplateID)
		}
		if err := checkBuildPreset(ctx, tx, p.PresetID, p.TemplateVersionID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO instances (id, owner_id, template_id, name, created_at, created_as_prebuild, preset_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			p.InstanceID, p.OwnerID, p.TemplateID, p.Name, now, p.OwnerID == prebuilds.SystemOwner, currentPreset(p.Transition, p.PresetID))
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO builds (id, instance_id, number, template_version_id, preset_id, transition, job_status, parameters, created_at)
			VALUES ($1, $2, 1, $3, $4, $5, 'pending', $6, $7)`,
			p.BuildID, p.InstanceID, p.TemplateVersionID, nullUUID(p.PresetID), string(p.Transition), params(p.Parameters), now)
		if err != nil {
			return err
		}
		return s.notifyInstance(ctx, tx, prebuilds.ChangeBuildStarted, p.InstanceID, uuid.Nil)
	})
}

// currentPreset is the current preset (instances.preset_id) a build of
// transition tr with preset makes: the preset of a start build, nil (no
// change) otherwise.
func currentPreset(tr prebuilds.Transition, preset uuid.UUID) *uuid.UUID {
	if tr != prebuilds.TransitionStart {
		return nil
	}
	return nullUUID(preset)
}

// StartBuild appends a build to a not-deleted instance whose latest job is
// terminal.
func (s *Store) StartBuild(ctx context.Context, p prebuilds.StartBuildParams) error {
	return opError("start build", p.InstanceID, s.startBuild(ctx, p))
}

func (s *Store) startBuild(ctx context.Context, p prebuilds.StartBuildParams) error {
	if p.InstanceID == uuid.Nil || p.BuildID == uuid.Nil || p.TemplateVersionID == uuid.Nil {
		return errf(prebuilds.ErrInvalidArgument, "instance, build and version ids must not be nil")
	}
	if !p.Transition.Valid() {
		return errf(prebuilds.ErrInvalidArgument, "unknown transition %q", p.Transition)
	}
	return s.inTx(ctx, func(tx pgx.Tx) error {
		inst, err := lockInstance(ctx, tx, p.InstanceID)
		if err != nil {
			return err
		}
		if inst.deleted {
			return errf(prebuilds.ErrConflict, "instance %s is deleted", p.InstanceID)
		}
		latest, err := latestBuild(ctx, tx, p.InstanceID)
		if err != nil {
			return err
		}
		if !latest.status.Terminal() {
			return errf(prebuilds.ErrConflict, "instance %s: latest job %s is %s", p.InstanceID, latest.id, latest.status)
		}
		var versionTemplate uuid.UUID
		err = tx.QueryRow(ctx, `SELECT template_id FROM template_versions WHERE id = $1`, p.TemplateVersionID).Scan(&versionTemplate)
		if errors.Is(err, pgx.ErrNoRows) {
			return errf(prebuilds.ErrNotFound, "template version %s", p.TemplateVersionID)
		}
		if err != nil {
			return err
		}
		if versionTemplate != inst.templateID {
			return errf(prebuilds.ErrInvalidArgument, "version %s is of template %s, instance %s of template %s",
				p.TemplateVersionID, versionTemplate, p.InstanceID, inst.templateID)
		}
		if err := checkBuildPreset(ctx, tx, p.PresetID, p.TemplateVersionID); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			INSERT INTO builds (id, instance_id, number, template_version_id, preset_id, transition, job_status, parameters, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)`,
			p.BuildID, p.InstanceID, latest.number+1, p.TemplateVersionID, nullUUID(p.PresetID), string(p.Transition),
			params(p.Parameters), micro(p.Now))
		if err != nil {
			return err
		}
		if next := currentPreset(p.Transition, p.PresetID); next != nil && *next != inst.presetID {
			// A start with a preset moves the instance to that preset's pool.
			if _, err := tx.Exec(ctx, `UPDATE instances SET preset_id = $2 WHERE id = $1`, p.InstanceID, *next); err != nil {
				return err
			}
		}
		return s.notifyInstance(ctx, tx, prebuilds.ChangeBuildStarted, p.InstanceID, inst.presetID)
	})
}

// UpdateJob records the provisioner's report on a build's job.
func (s *Store) UpdateJob(ctx context.Context, p prebuilds.UpdateJobParams) (prebuilds.UpdateJobResult, error) {
	res, err := s.updateJob(ctx, p)
	return res, opError("update job", p.BuildID, err)
}

func (s *Store) updateJob(ctx context.Context, p prebuilds.UpdateJobParams) (prebuilds.UpdateJobResult, error) {
	var res prebuilds.UpdateJobResult
	if !p.Status.Valid() {
		return res, errf(prebuilds.ErrInvalidArgument, "unknown job status %q", p.Status)
	}
	if p.FailureKind != prebuilds.FailureNone && p.Status != prebuilds.JobFailed {
		return res, errf(prebuilds.ErrInvalidArgument, "failure kind %q needs status failed, got %s", p.FailureKind, p.Status)
	}
	if !p.FailureKind.Valid() {
		return res, errf(prebuilds.ErrInvalidArgument, "unknown failure kind %q", p.FailureKind)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		instanceID, inst, err := lockInstanceOfBuild(ctx, tx, p.BuildID)
		if err != nil {
			return err
		}
		var (
			status, transition string
			presetID           *uuid.UUID
		)
		err = tx.QueryRow(ctx, `SELECT job_status, transition, preset_id FROM builds WHERE id = $1 FOR UPDATE`, p.BuildID).
			Scan(&status, &transition, &presetID)
		if err != nil {
			return err
		}
		from := prebuilds.JobStatus(status)
		if !from.CanBecome(p.Status) {
			return errf(prebuilds.ErrInvalidTransition, "build %s: %s → %s", p.BuildID, from, p.Status)
		}
		var completedAt *time.Time
		if p.Status.Terminal() {
			t := micro(p.Now)
			completedAt = &t
		}
		var kind *string
		if p.FailureKind != prebuilds.FailureNone {
			k := string(p.FailureKind)
			kind = &k
		}
		_, err = tx.Exec(ctx, `UPDATE builds SET job_status = $2, failure_kind = $3, completed_at = $4 WHERE id = $1`,
			p.BuildID, string(p.Status), kind, completedAt)
		if err != nil {
			return err
		}
		tr := prebuilds.Transition(transition)
		if p.Status == prebuilds.JobSucceeded && tr == prebuilds.TransitionDelete {
			if _, err := tx.Exec(ctx, `UPDATE instances SET deleted = true WHERE id = $1`, instanceID); err != nil {
				return err
			}
		}
		if p.Status == prebuilds.JobFailed && p.FailureKind == prebuilds.FailureValidation &&
			tr == prebuilds.TransitionStart && inst.owner == prebuilds.SystemOwner && presetID != nil {
			tag, err := tx.Exec(ctx, `UPDATE presets SET status = 'validation_failed' WHERE id = $1 AND status = 'healthy'`, *presetID)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				res.ValidationFailedPreset = *presetID
			}
		}
		if p.Status.Terminal() {
			return s.notifyInstance(ctx, tx, prebuilds.ChangeJobCompleted, instanceID, uuid.Nil)
		}
		return nil
	})
	if err != nil {
		return prebuilds.UpdateJobResult{}, err
	}
	return res, nil
}

// SetReady sets the instance's ready flag.
func (s *Store) SetReady(ctx context.Context, instanceID uuid.UUID, ready bool) error {
	return opError("set ready", instanceID,
		s.updateOne(ctx, "instance", `UPDATE instances SET ready = $2 WHERE id = $1`, instanceID, ready))
}

// RemoveInstance marks the instance deleted without a build (idempotent).
func (s *Store) RemoveInstance(ctx context.Context, instanceID uuid.UUID) error {
	return opError("remove instance", instanceID,
		s.updateNotify(ctx, "instance", `WITH written AS (
    UPDATE instances SET deleted = true WHERE id = $2 RETURNING id, preset_id, created_as_prebuild
), concerned AS (
    SELECT preset_id FROM written
    UNION
    SELECT b.preset_id FROM written w JOIN builds b ON b.instance_id = w.id AND b.number = 1 WHERE w.created_as_prebuild
), notified AS (
    SELECT pg_notify($1, '`+string(prebuilds.ChangeInstanceRemoved)+`:' || preset_id::text) FROM concerned WHERE preset_id IS NOT NULL
)`, instanceID))
}

// GetPreset reads a preset back.
func (s *Store) GetPreset(ctx context.Context, presetID uuid.UUID) (prebuilds.Preset, error) {
	p, err := s.getPreset(ctx, presetID)
	return p, opError("get preset", presetID, err)
}

func (s *Store) getPreset(ctx context.Context, presetID uuid.UUID) (prebuilds.Preset, error) {
	var p prebuilds.Preset
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+presetColumns+` FROM presets p WHERE p.id = $1`, presetID)
		if err != nil {
			return err
		}
		p, err = pgx.CollectExactlyOneRow(rows, scanPreset)
		if errors.Is(err, pgx.ErrNoRows) {
			return errf(prebuilds.ErrNotFound, "preset %s", presetID)
		}
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT cron, instances FROM preset_schedules WHERE preset_id = $1 ORDER BY position`, presetID)
		if err != nil {
			return err
		}
		p.Schedules, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (prebuilds.Schedule, error) {
			var sc prebuilds.Schedule
			err := row.Scan(&sc.Cron, &sc.Instances)
			return sc, err
		})
		if len(p.Schedules) == 0 {
			p.Schedules = nil
		}
		return err
	})
	if err != nil {
		return prebuilds.Preset{}, err
	}
	return p, nil
}

const presetColumns = `p.id, p.template_version_id, p.name, p.desired, p.ttl_micros, p.invalidated_at, p.timezone,
	p.parameters, p.status::text, p.reset_at`

func scanPreset(row pgx.CollectableRow) (prebuilds.Preset, error) {
	var pf presetFields
	if err := row.Scan(pf.dest()...); err != nil {
		return prebuilds.Preset{}, err
	}
	return pf.preset(), nil
}

// presetFields receives the presetColumns of one row.
type presetFields struct {
	p                      prebuilds.Preset
	desired                *int32
	ttl                    int64
	invalidatedAt, resetAt *time.Time
	status                 string
	parameters             map[string]string
}

func (f *presetFields) dest() []any {
	return []any{uuidDest(&f.p.ID), uuidDest(&f.p.TemplateVersionID), &f.p.Name, &f.desired, &f.ttl, &f.invalidatedAt, &f.p.Timezone,
		&f.parameters, &f.status, &f.resetAt}
}

func (f *presetFields) preset() prebuilds.Preset {
	p := f.p
	if f.desired != nil {
		d := int(*f.desired)
		p.Desired = &d
	}
	p.TTL = time.Duration(f.ttl) * time.Microsecond
	p.InvalidatedAt = timeOf(f.invalidatedAt)
	p.Parameters = paramsOf(f.parameters)
	p.Status = prebuilds.PresetStatus(f.status)
	p.ResetAt = timeOf(f.resetAt)
	return p
}

// GetInstance reads an instance back.
func (s *Store) GetInstance(ctx context.Context, instanceID uuid.UUID) (prebuilds.Instance, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+instanceColumns+` FROM instances WHERE id = $1`, instanceID)
	if err != nil {
		return prebuilds.Instance{}, opError("get instance", instanceID, err)
	}
	inst, err := pgx.CollectExactlyOneRow(rows, scanInstance)
	if errors.Is(err, pgx.ErrNoRows) {
		err = errf(prebuilds.ErrNotFound, "instance %s", instanceID)
	}
	return inst, opError("get instance", instanceID, err)
}

const instanceColumns = `id, owner_id, template_id, name, created_at, ready, deleted, claimed_at`

func scanInstance(row pgx.CollectableRow) (prebuilds.Instance, error) {
	var (
		i         prebuilds.Instance
		claimedAt *time.Time
	)
	err := row.Scan(uuidDest(&i.ID), uuidDest(&i.OwnerID), uuidDest(&i.TemplateID), &i.Name, &i.CreatedAt, &i.Ready, &i.Deleted, &claimedAt)
	i.CreatedAt = i.CreatedAt.UTC()
	i.ClaimedAt = timeOf(claimedAt)
	return i, err
}

// ListBuilds returns an instance's builds by ascending number.
func (s *Store) ListBuilds(ctx context.Context, instanceID uuid.UUID) ([]prebuilds.Build, error) {
	var builds []prebuilds.Build
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := mustExist(ctx, tx, "instance", `SELECT EXISTS (SELECT 1 FROM instances WHERE id = $1)`, instanceID); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `
			SELECT id, instance_id, number, template_version_id, preset_id, transition::text, job_status::text,
			       failure_kind::text, parameters, created_at, completed_at
			FROM builds WHERE instance_id = $1 ORDER BY number`, instanceID)
		if err != nil {
			return err
		}
		builds, err = pgx.CollectRows(rows, scanBuild)
		return err
	})
	if err != nil {
		return nil, opError("list builds", instanceID, err)
	}
	return builds, nil
}

func scanBuild(row pgx.CollectableRow) (prebuilds.Build, error) {
	var (
		b                  prebuilds.Build
		number             int32
		presetID           pgtype.UUID
		transition, status string
		kind               *string
		parameters         map[string]string
		createdAt          time.Time
		completedAt        *time.Time
	)
	err := row.Scan(uuidDest(&b.ID), uuidDest(&b.InstanceID), &number, uuidDest(&b.TemplateVersionID), &presetID, &transition, &status,
		&kind, &parameters, &createdAt, &completedAt)
	if err != nil {
		return b, err
	}
	b.Number = int(number)
	b.PresetID = presetID.Bytes // uuid.Nil when NULL
	b.Transition = prebuilds.Transition(transition)
	b.JobStatus = prebuilds.JobStatus(status)
	if kind != nil {
		b.FailureKind = prebuilds.FailureKind(*kind)
	}
	b.Parameters = paramsOf(parameters)
	b.CreatedAt = createdAt.UTC()
	b.CompletedAt = timeOf(completedAt)
	return b, nil
}

// querier is what the helpers below need: a pool or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// mustExist runs an EXISTS query and returns ErrNotFound naming what when
// it is false.
func mustExist(ctx context.Context, q querier, what, sql string, id uuid.UUID) error {
	var ok bool
	if err := q.QueryRow(ctx, sql, id).Scan(&ok); err != nil {
		return err
	}
	if !ok {
		return errf(prebuilds.ErrNotFound, "%s %s", what, id)
	}
	return nil
}

// updateOne runs an UPDATE keyed by its first argument and returns
// ErrNotFound when it touched no row.
func (s *Store) updateOne(ctx context.Context, what, sql string, args ...any) error {
	tag, err := s.pool.Exec(ctx, sql, args...)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return errf(prebuilds.ErrNotFound, "%s %v", what, args[0])
	}
	return nil
}

// updateNotify runs a write and its notifications in one statement: ctes
// are the statement's common table expressions, "written" (the rows
// written, none when the key matched nothing) and "notified" (the
// pg_notify calls) among them. $1 is the channel, args are $2 on. It
// returns ErrNotFound naming what when nothing was written.
func (s *Store) updateNotify(ctx context.Context, what, ctes string, args ...any) error {
	var written int64
	err := s.pool.QueryRow(ctx, ctes+`
SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM notified)`, append([]any{s.channel}, args...)...).Scan(&written, new(int64))
	if err != nil {
		return err
	}
	if written == 0 {
		return errf(prebuilds.ErrNotFound, "%s %v", what, args[0])
	}
	return nil
}

// presetWrittenCTE notifies preset_written for the presets in CTE
// "written" (column id), as CTE "notified".
const presetWrittenCTE = `
notified AS (SELECT pg_notify($1, '` + string(prebuilds.ChangePresetWritten) + `:' || id::text) FROM written)`

type lockedInstance struct {
	owner      uuid.UUID
	templateID uuid.UUID
	deleted    bool
	presetID   uuid.UUID // current preset; uuid.Nil when none
}

// lockInstance takes the instance row lock that serialises every write to
// an instance and its builds (claim, delete, start, job updates).
func lockInstance(ctx context.Context, tx pgx.Tx, id uuid.UUID) (lockedInstance, error) {
	var (
		li     lockedInstance
		preset pgtype.UUID
	)
	err := tx.QueryRow(ctx, `SELECT owner_id, template_id, deleted, preset_id FROM instances WHERE id = $1 FOR UPDATE`, id).
		Scan(&li.owner, &li.templateID, &li.deleted, &preset)
	li.presetID = preset.Bytes
	if errors.Is(err, pgx.ErrNoRows) {
		return li, errf(prebuilds.ErrNotFound, "instance %s", id)
	}
	return li, err
}

// lockInstanceOfBuild locks the row of the instance that build belongs to
// (ErrNotFound for an unknown build). Lock order everywhere: the instance
// row, then its builds.
func lockInstanceOfBuild(ctx context.Context, tx pgx.Tx, buildID uuid.UUID) (uuid.UUID, lockedInstance, error) {
	var instanceID uuid.UUID
	err := tx.QueryRow(ctx, `SELECT instance_id FROM builds WHERE id = $1`, pgUUID(buildID)).Scan(uuidDest(&instanceID))
	if errors.Is(err, pgx.ErrNoRows) {
		return instanceID, lockedInstance{}, errf(prebuilds.ErrNotFound, "build %s", buildID)
	}
	if err != nil {
		return instanceID, lockedInstance{}, err
	}
	inst, err := lockInstance(ctx, tx, instanceID)
	return instanceID, inst, err
}

type buildHead struct {
	id         uuid.UUID
	number     int
	transition prebuilds.Transition
	status     prebuilds.JobStatus
	versionID  uuid.UUID
}

// latestBuild reads the instance's highest-numbered build. Called after
// lockInstance, in a new statement, so it sees every build committed before
// the lock was granted.
func latestBuild(ctx context.Context, tx pgx.Tx, instanceID uuid.UUID) (buildHead, error) {
	var (
		h                  buildHead
		number             int32
		transition, status string
	)
	err := tx.QueryRow(ctx, `
		SELECT id, number, transition::text, job_status::text, template_version_id
		FROM builds WHERE instance_id = $1 ORDER BY number DESC LIMIT 1`, instanceID).
		Scan(&h.id, &number, &transition, &status, &h.versionID)
	if errors.Is(err, pgx.ErrNoRows) {
		return h, errf(prebuilds.ErrConflict, "instance %s has no build", instanceID)
	}
	h.number = int(number)
	h.transition = prebuilds.Transition(transition)
	h.status = prebuilds.JobStatus(status)
	return h, err
}

// checkBuildPreset is the preset check shared by CreateInstance and
// StartBuild: a build's preset, when set, must exist (ErrNotFound) and be
// one of the build's version (ErrInvalidArgument).
func checkBuildPreset(ctx context.Context, tx pgx.Tx, presetID, versionID uuid.UUID) error {
	if presetID == uuid.Nil {
		return nil
	}
	var presetVersion uuid.UUID
	err := tx.QueryRow(ctx, `SELECT template_version_id FROM presets WHERE id = $1`, presetID).Scan(&presetVersion)
	if errors.Is(err, pgx.ErrNoRows) {
		return errf(prebuilds.ErrNotFound, "preset %s", presetID)
	}
	if err != nil {
		return err
	}
	if presetVersion != versionID {
		return errf(prebuilds.ErrInvalidArgument, "preset %s belongs to version %s, not %s", presetID, presetVersion, versionID)
	}
	return nil
}
