package pgstore

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// pendingJobsSQL lists pending jobs on instances that are not deleted,
// oldest first. It walks builds_pending_idx in order and stops after $1
// rows; uuid comparison in PostgreSQL is byte order, as CompareUUID.
const pendingJobsSQL = `
	SELECT b.id, b.instance_id, b.preset_id, b.template_version_id, b.transition::text, b.parameters
	FROM builds b
	JOIN instances i ON i.id = b.instance_id
	WHERE b.job_status = 'pending' AND NOT i.deleted
	ORDER BY b.created_at, b.id
	LIMIT $1`

// PendingJobs lists the jobs of pending builds on instances that are not
// deleted, oldest first (created_at, then build ID), at most p.Limit. It
// is one read-committed statement; taking a job is UpdateJob(running).
func (s *Store) PendingJobs(ctx context.Context, p prebuilds.PendingJobsParams) ([]prebuilds.Job, error) {
	jobs, err := s.pendingJobs(ctx, p)
	return jobs, opError("pending jobs", p.Limit, err)
}

func (s *Store) pendingJobs(ctx context.Context, p prebuilds.PendingJobsParams) ([]prebuilds.Job, error) {
	if p.Limit < 1 || p.Limit > prebuilds.MaxPendingJobsLimit {
		return nil, errf(prebuilds.ErrInvalidArgument, "limit %d not in 1..%d", p.Limit, prebuilds.MaxPendingJobsLimit)
	}
	rows, err := s.pool.Query(ctx, pendingJobsSQL, int32(p.Limit))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, scanJob)
}

func scanJob(row pgx.CollectableRow) (prebuilds.Job, error) {
	var (
		j          prebuilds.Job
		presetID   pgtype.UUID
		transition string
		parameters map[string]string
	)
	if err := row.Scan(uuidDest(&j.BuildID), uuidDest(&j.InstanceID), &presetID, uuidDest(&j.TemplateVersionID), &transition, &parameters); err != nil {
		return j, err
	}
	j.PresetID = presetID.Bytes // uuid.Nil when NULL
	j.Transition = prebuilds.Transition(transition)
	j.Parameters = paramsOf(parameters)
	return j, nil
}
