package pgstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Snapshot implements prebuilds.Store: one consistent read without the
// reconciliation lock, in a REPEATABLE READ READ ONLY transaction on a pool
// connection. It takes no lock a pass could wait for, and waits for none.
func (s *Store) Snapshot(ctx context.Context, p prebuilds.SnapshotParams) (*prebuilds.GlobalSnapshot, error) {
	key := prebuilds.Micro(p.Now).Format(time.RFC3339Nano)
	if err := checkSnapshotParams(p); err != nil {
		return nil, opError("snapshot", key, err)
	}
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, opError("snapshot", key, err)
	}
	defer pc.Release()
	return snapshotOn(ctx, pc, p)
}

// errReaderClosed is returned by a SnapshotReader used after its lock was
// released.
var errReaderClosed = errors.New("pgstore: snapshot reader used after WithReconciliationLock returned")

// snapshotReader reads snapshots on the lock's connection, one transaction
// per Snapshot call. A connection must not be used by two goroutines at
// once, so reads are serialised, and close waits for a read in progress.
type snapshotReader struct {
	mu     sync.Mutex
	pc     *pgxpool.Conn
	closed bool
}

func (r *snapshotReader) close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

// Snapshot reads the snapshot (docs/spec.md, "The snapshot") with a handful of set-based
// queries sent in one batch, in a REPEATABLE READ READ ONLY transaction on
// the lock's connection that is committed before Snapshot returns.
func (r *snapshotReader) Snapshot(ctx context.Context, p prebuilds.SnapshotParams) (*prebuilds.GlobalSnapshot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := prebuilds.Micro(p.Now).Format(time.RFC3339Nano)
	if err := checkSnapshotParams(p); err != nil {
		return nil, opError("snapshot", key, err)
	}
	if r.closed {
		return nil, opError("snapshot", key, errReaderClosed)
	}
	// pgx's BeginTx closes the connection when BEGIN fails with anything
	// but a server error, a context that is already done included; the
	// lock's connection is kept healthy by not sending BEGIN then.
	if err := ctx.Err(); err != nil {
		return nil, opError("snapshot", key, context.Cause(ctx))
	}
	return snapshotOn(ctx, r.pc, p)
}

// snapshotOn reads the snapshot in a REPEATABLE READ READ ONLY transaction
// on pc, committed before it returns.
func snapshotOn(ctx context.Context, pc *pgxpool.Conn, p prebuilds.SnapshotParams) (*prebuilds.GlobalSnapshot, error) {
	key := prebuilds.Micro(p.Now).Format(time.RFC3339Nano)
	tx, err := pc.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, opError("snapshot", key, fmt.Errorf("begin snapshot transaction: %w", err))
	}
	snap, err := readSnapshot(ctx, tx, p)
	if err != nil {
		// The transaction only read, so a rollback loses nothing; it runs
		// even when ctx was canceled, bounded so that a hung connection
		// cannot block the pass. A failed rollback closes the connection,
		// which also releases the lock on the server.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
		return nil, opError("snapshot", key, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, opError("snapshot", key, fmt.Errorf("commit snapshot transaction: %w", err))
	}
	return snap, nil
}

// stateColumns are the columns of the state CTEs: the instance, its
// latest build l, its current preset p and that preset's template t.
const stateColumns = `
    i.id, i.created_at, i.ready,
    l.build_id, l.number, l.transition, l.job_status, l.build_created_at,
    p.id AS preset_id, p.desired, p.reset_at, p.template_version_id,
    t.active_version_id, t.deprecated, t.deleted,
    ` + activeSQL + ` AS active`

// stateCTE yields one row per live prebuild (SystemOwner, not deleted)
// whose current preset (instances.preset_id, migration 0005) has a desired
// count: the instance, its latest build (highest number) and what the
// snapshot needs of that preset and its template. $1 is SystemOwner.
//
// The latest build is DISTINCT ON (instance_id) in (instance_id, number
// DESC) order, which streams from builds_instance_number_key (an
// index-only scan, no sort) and merge- or hash-joins the instances.
const stateCTE = `
WITH latest AS (
    SELECT DISTINCT ON (b.instance_id)
           b.instance_id, b.id AS build_id, b.number, b.transition, b.job_status, b.created_at AS build_created_at
    FROM builds b
    ORDER BY b.instance_id, b.number DESC
), state AS MATERIALIZED (
    SELECT ` + stateColumns + `
    FROM instances i
    JOIN latest l ON l.instance_id = i.id
    JOIN presets p ON p.id = i.preset_id
    JOIN template_versions v ON v.id = p.template_version_id
    JOIN templates t ON t.id = v.template_id
    WHERE i.owner_id = $1 AND NOT i.deleted AND p.desired IS NOT NULL
)`

// presetFilterSQL is the selection of a filtered snapshot, a condition on
// a preset p of template t: $n the preset IDs (NULL: every preset), $n+1
// the shard count (≤ 1: every shard), $n+2 the shard index. Filtered
// snapshots are planned for their parameters (plan_cache_mode
// force_custom_plan), so the planner drops the branches that select
// everything and reads the presets by primary key.
func presetFilterSQL(n int) string {
	return fmt.Sprintf(`
      AND ($%[1]d::uuid[] IS NULL OR p.id = ANY($%[1]d::uuid[]))
      AND ($%[2]d::int8 <= 1 OR `+shardSQL+` %% $%[2]d::int8 = $%[3]d::int8)`, n, n+1, n+2)
}

// shardSQL is prebuilds.ShardOf of template t, before the modulo: its
// first four bytes as a big-endian unsigned integer.
const shardSQL = `('x' || substr(t.id::text, 1, 8))::bit(32)::int8`

// stateFilteredCTE is stateCTE for the presets selected by presetFilterSQL
// from $n on: it walks their pools in instances_pool_idx and reads each
// instance's latest build with one probe of builds_instance_number_key, so
// it reads only the selected presets' rows.
func stateFilteredCTE(n int) string {
	return `
WITH state AS MATERIALIZED (
    SELECT ` + stateColumns + `
    FROM presets p
    JOIN template_versions v ON v.id = p.template_version_id
    JOIN templates t ON t.id = v.template_id
    JOIN instances i ON i.preset_id = p.id
    CROSS JOIN LATERAL (
        SELECT b.id AS build_id, b.number, b.transition, b.job_status, b.created_at AS build_created_at
        FROM builds b
        WHERE b.instance_id = i.id
        ORDER BY b.number DESC
        LIMIT 1
    ) l
    WHERE i.owner_id = $1 AND NOT i.deleted AND p.desired IS NOT NULL` + presetFilterSQL(n) + `
)`
}

// Row kinds of the facts query.
const (
	factRunning         = "running"
	factInProgress      = "in_progress"
	factPendingInactive = "pending_inactive"
	factStuck           = "stuck"
	factFailures        = "failures"
)

const (
	// snapshotSetupSQL turns JIT compilation off for the snapshot
	// transaction. The outcomes query is thousands of cheap index probes
	// (two per preset) whose summed cost passes jit_above_cost at a few
	// thousand presets: compiling it took ~280 ms at 10,000 presets, longer
	// than running it (TestExplainSnapshot).
	snapshotSetupSQL = `SET LOCAL jit = off`

	// snapshotFilteredSetupSQL makes a filtered snapshot's queries planned
	// for their parameters every time (see presetFilterSQL).
	snapshotFilteredSetupSQL = `SET LOCAL plan_cache_mode = force_custom_plan`

	snapshotPausedSQL = `SELECT paused FROM settings`

	snapshotPresetsSQL = `
SELECT ` + presetColumns + `,
       t.id, t.name, t.organization_id, t.organization_name, t.active_version_id, t.deprecated, t.deleted
FROM presets p
JOIN template_versions v ON v.id = p.template_version_id
JOIN templates t ON t.id = v.template_id
WHERE p.desired IS NOT NULL`

	snapshotSchedulesSQL = `
SELECT s.preset_id, s.cron, s.instances
FROM preset_schedules s
JOIN presets p ON p.id = s.preset_id
WHERE p.desired IS NOT NULL
ORDER BY s.preset_id, s.position`

	// The facts query computes the per-instance state once and derives
	// every instance-based row of the snapshot from it, one UNION ALL branch
	// per kind. Columns: kind, preset_id, instance_id, build_id, transition,
	// n, at, ready, backoff, hard_limited.
	//
	//   running          instance_id, at = instance created_at, ready
	//   in_progress      transition, n = count
	//   pending_inactive n = count
	//   stuck            instance_id, build_id
	//   failures         (PolicyCoder only) n = num_failed, at =
	//                    last_build_at, backoff (a backoff row exists),
	//                    hard_limited
	//
	// $1 is SystemOwner (stateCTE). $2 is StuckBefore rounded up to the
	// microsecond, NULL when stuck builds are off: a latest start build of
	// the pool still pending or running and created before it is stuck,
	// except an inactive preset's queued first builds (the ones
	// pending_inactive counts, which CancelPending takes care of).
	snapshotFactsBranchesSQL = `
SELECT '` + factRunning + `', s.preset_id, s.id, NULL::uuid, NULL::text, 0::bigint, s.created_at, s.ready, false, false
FROM state s
WHERE s.transition = 'start' AND s.job_status = 'succeeded'
UNION ALL
SELECT '` + factInProgress + `', s.preset_id, NULL, NULL, s.transition::text, count(*), NULL, false, false, false
FROM state s
WHERE s.job_status IN ('pending', 'running')
GROUP BY s.preset_id, s.transition
UNION ALL
SELECT '` + factPendingInactive + `', s.preset_id, NULL, NULL, NULL, count(*), NULL, false, false, false
FROM state s
WHERE s.number = 1 AND s.transition = 'start' AND s.job_status = 'pending' AND NOT s.active
GROUP BY s.preset_id
UNION ALL
SELECT '` + factStuck + `', s.preset_id, s.id, s.build_id, NULL, 0, NULL, false, false, false
FROM state s
WHERE s.transition = 'start' AND s.job_status IN ('pending', 'running')
  AND s.build_created_at < $2::timestamptz
  AND NOT (s.number = 1 AND s.job_status = 'pending' AND NOT s.active)`

	// snapshotFactsAdaptiveSQL is the facts query under PolicyAdaptive,
	// whose failure facts come from snapshotOutcomesSQL instead.
	snapshotFactsAdaptiveSQL = stateCTE + snapshotFactsBranchesSQL

	// snapshotFactsCoderSQL adds PolicyCoder's failures branch. C(P)
	// (candidates) are the latest start builds of live prebuilds whose
	// current preset's version is active and template not deleted, created
	// at or after reset_at, ranked newest first (created_at desc, build ID
	// desc; uuid order is byte order, as prebuilds.CompareUUID). $3 is the
	// lookback rounded up to the microsecond, $4 is K (0 = off).
	snapshotFactsCoderSQL = stateCTE + snapshotCoderCTEs + snapshotFactsBranchesSQL + snapshotCoderBranchSQL

	// snapshotCoderCTEs follow the state CTE under PolicyCoder.
	snapshotCoderCTEs = `,
candidates AS (
    SELECT s.preset_id, s.desired, s.job_status, s.build_created_at,
           row_number() OVER (PARTITION BY s.preset_id ORDER BY s.build_created_at DESC, s.build_id DESC) AS rank
    FROM state s
    WHERE s.transition = 'start'
      AND s.active_version_id = s.template_version_id AND NOT s.deleted
      AND (s.reset_at IS NULL OR s.build_created_at >= s.reset_at)
), failures AS (
    SELECT preset_id,
           count(*) FILTER (WHERE job_status = 'failed' AND build_created_at >= $3) AS num_failed,
           count(*) FILTER (WHERE job_status = 'failed' AND build_created_at >= $3 AND rank <= desired) AS ranked_failed,
           max(build_created_at) FILTER (WHERE job_status = 'failed' AND build_created_at >= $3 AND rank <= desired) AS last_build_at,
           $4::integer > 0 AND count(*) >= $4::integer
               AND count(*) FILTER (WHERE rank <= $4::integer AND job_status = 'failed') = $4::integer AS hard_limited
    FROM candidates
    GROUP BY preset_id
)`

	// snapshotCoderBranchSQL is the failures branch of the facts query.
	snapshotCoderBranchSQL = `
UNION ALL
SELECT '` + factFailures + `', f.preset_id, NULL, NULL, NULL, f.num_failed, f.last_build_at, false, f.ranked_failed > 0, f.hard_limited
FROM failures f
WHERE f.ranked_failed > 0 OR f.hard_limited`

	// Cumulative counters over instances created as prebuilds, by the
	// preset of build #1, deleted instances included, and the claims that
	// found nothing claimable; a row when one of them is positive.
	snapshotCountersSQL = `
WITH made AS (
    SELECT b.preset_id, count(*) AS created,
           count(*) FILTER (WHERE b.job_status = 'failed') AS failed,
           count(*) FILTER (WHERE i.claimed_at IS NOT NULL) AS claimed
    FROM instances i
    JOIN builds b ON b.instance_id = i.id AND b.number = 1
    WHERE i.created_as_prebuild
    GROUP BY b.preset_id
)
SELECT p.id, coalesce(m.created, 0), coalesce(m.failed, 0), coalesce(m.claimed, 0), coalesce(c.misses, 0)
FROM presets p
LEFT JOIN made m ON m.preset_id = p.id
LEFT JOIN preset_claim_misses c ON c.preset_id = p.id
WHERE p.desired IS NOT NULL AND (m.preset_id IS NOT NULL OR c.preset_id IS NOT NULL)`
)

// Filtered snapshots (SnapshotParams.Presets or Shard): the same queries
// restricted by presetFilterSQL, its parameters after the query's own.
var (
	// snapshotPresetsFilteredSQL: $1 … $3 select.
	snapshotPresetsFilteredSQL = snapshotPresetsSQL + presetFilterSQL(1)

	// snapshotSchedulesFilteredSQL: $1 … $3 select.
	snapshotSchedulesFilteredSQL = `
SELECT s.preset_id, s.cron, s.instances
FROM presets p
JOIN template_versions v ON v.id = p.template_version_id
JOIN templates t ON t.id = v.template_id
JOIN preset_schedules s ON s.preset_id = p.id
WHERE p.desired IS NOT NULL` + presetFilterSQL(1) + `
ORDER BY s.preset_id, s.position`

	// snapshotFactsAdaptiveFilteredSQL: $1, $2 as in the full query, $3 …
	// $5 select.
	snapshotFactsAdaptiveFilteredSQL = stateFilteredCTE(3) + snapshotFactsBranchesSQL

	// snapshotFactsCoderFilteredSQL: $1 … $4 as in the full query, $5 … $7
	// select.
	snapshotFactsCoderFilteredSQL = stateFilteredCTE(5) + snapshotCoderCTEs + snapshotFactsBranchesSQL + snapshotCoderBranchSQL

	// snapshotCountersFilteredSQL counts the first builds of the selected
	// presets through builds_preset_idx: $1 … $3 select.
	snapshotCountersFilteredSQL = `
WITH selected AS (
    SELECT p.id
    FROM presets p
    JOIN template_versions v ON v.id = p.template_version_id
    JOIN templates t ON t.id = v.template_id
    WHERE p.desired IS NOT NULL` + presetFilterSQL(1) + `
), made AS (
    SELECT b.preset_id, count(*) AS created,
           count(*) FILTER (WHERE b.job_status = 'failed') AS failed,
           count(*) FILTER (WHERE i.claimed_at IS NOT NULL) AS claimed
    FROM selected p
    JOIN builds b ON b.preset_id = p.id AND b.number = 1
    JOIN instances i ON i.id = b.instance_id
    WHERE i.created_as_prebuild
    GROUP BY b.preset_id
)
SELECT p.id, coalesce(m.created, 0), coalesce(m.failed, 0), coalesce(m.claimed, 0), coalesce(c.misses, 0)
FROM selected p
LEFT JOIN made m ON m.preset_id = p.id
LEFT JOIN preset_claim_misses c ON c.preset_id = p.id
WHERE m.preset_id IS NOT NULL OR c.preset_id IS NOT NULL`
)

// filtered reports whether p asks for a filtered snapshot.
func filtered(p prebuilds.SnapshotParams) bool { return p.Presets != nil || !p.Shard.All() }

// filterArgs are presetFilterSQL's arguments for p.
func filterArgs(p prebuilds.SnapshotParams) []any {
	var ids []pgtype.UUID // nil: NULL, every preset
	if p.Presets != nil {
		ids = pgUUIDs(p.Presets)
	}
	count, index := int64(0), int64(0)
	if !p.Shard.All() {
		count, index = int64(p.Shard.Count), int64(p.Shard.Index)
	}
	return []any{ids, count, index}
}

// snapshotQueries are the queries of a snapshot with parameters p, in the
// order the batch sends them, with their arguments: setup, paused,
// presets, schedules, facts, outcomes (PolicyAdaptive), counters.
func snapshotQueries(p prebuilds.SnapshotParams) []snapshotQuery {
	qs := []snapshotQuery{{"setup", snapshotSetupSQL, nil}}
	presets := snapshotQuery{"presets", snapshotPresetsSQL, nil}
	schedules := snapshotQuery{"schedules", snapshotSchedulesSQL, nil}
	counters := snapshotQuery{"counters", snapshotCountersSQL, nil}
	if filtered(p) {
		qs = append(qs, snapshotQuery{"setup", snapshotFilteredSetupSQL, nil})
		sel := filterArgs(p)
		presets = snapshotQuery{"presets", snapshotPresetsFilteredSQL, sel}
		schedules = snapshotQuery{"schedules", snapshotSchedulesFilteredSQL, sel}
		counters = snapshotQuery{"counters", snapshotCountersFilteredSQL, sel}
	}
	qs = append(qs, snapshotQuery{"paused", snapshotPausedSQL, nil}, presets, schedules, factsQuery(p))
	if p.Policy.Resolved() == prebuilds.PolicyAdaptive {
		qs = append(qs, outcomesQuery(p))
	}
	return append(qs, counters)
}

// snapshotQuery is one query of the snapshot with its arguments.
type snapshotQuery struct {
	name string
	sql  string
	args []any
}

// factsQuery is the facts query of p's policy and filter with its
// arguments.
func factsQuery(p prebuilds.SnapshotParams) snapshotQuery {
	var stuckBefore *time.Time // NULL: stuck builds off
	if !p.StuckBefore.IsZero() {
		t := ceilMicro(p.StuckBefore)
		stuckBefore = &t
	}
	var q snapshotQuery
	if p.Policy.Resolved() == prebuilds.PolicyAdaptive {
		q = snapshotQuery{"facts", snapshotFactsAdaptiveSQL, []any{pgUUID(prebuilds.SystemOwner), stuckBefore}}
		if filtered(p) {
			q.sql = snapshotFactsAdaptiveFilteredSQL
		}
	} else {
		hardLimit := int32(min(p.HardLimit.K(), math.MaxInt32)) // 0 turns the hard limit off
		q = snapshotQuery{"facts", snapshotFactsCoderSQL, []any{pgUUID(prebuilds.SystemOwner), stuckBefore, ceilMicro(p.Lookback), hardLimit}}
		if filtered(p) {
			q.sql = snapshotFactsCoderFilteredSQL
		}
	}
	if filtered(p) {
		q.args = append(q.args, filterArgs(p)...)
	}
	return q
}

// outcomesQuery is PolicyAdaptive's outcomes query with its arguments.
func outcomesQuery(p prebuilds.SnapshotParams) snapshotQuery {
	if filtered(p) {
		return snapshotQuery{"outcomes", snapshotOutcomesFilteredSQL, append([]any{ceilMicro(p.Lookback)}, filterArgs(p)...)}
	}
	return snapshotQuery{"outcomes", snapshotOutcomesSQL, []any{ceilMicro(p.Lookback)}}
}

// checkSnapshotParams refuses what no snapshot can be computed for: an
// unknown failure policy, a shard that is not one.
func checkSnapshotParams(p prebuilds.SnapshotParams) error {
	if !p.Policy.Valid() {
		return errf(prebuilds.ErrInvalidArgument, "unknown failure policy %q", p.Policy)
	}
	if !p.Shard.Valid() {
		return errf(prebuilds.ErrInvalidArgument, "shard %d of %d is not a shard", p.Shard.Index, p.Shard.Count)
	}
	return nil
}

func readSnapshot(ctx context.Context, tx pgx.Tx, p prebuilds.SnapshotParams) (*prebuilds.GlobalSnapshot, error) {
	snap := &prebuilds.GlobalSnapshot{Now: p.Now}
	schedules := map[uuid.UUID][]prebuilds.Schedule{}

	// What to do with each query's rows, by query name.
	handlers := map[string]func(rows pgx.Rows) error{
		"paused": func(rows pgx.Rows) error {
			_, err := pgx.ForEachRow(rows, []any{&snap.Paused}, func() error { return nil })
			return err
		},
		"presets": func(rows pgx.Rows) error {
			var err error
			snap.Presets, err = pgx.CollectRows(rows, scanPresetRow)
			return err
		},
		"schedules": func(rows pgx.Rows) error {
			var (
				presetID  uuid.UUID
				cron      string
				instances int32
			)
			_, err := pgx.ForEachRow(rows, []any{uuidDest(&presetID), &cron, &instances}, func() error {
				schedules[presetID] = append(schedules[presetID], prebuilds.Schedule{Cron: cron, Instances: int(instances)})
				return nil
			})
			return err
		},
		"facts": func(rows pgx.Rows) error {
			var (
				kind                 string
				presetID             uuid.UUID
				instanceID, buildID  pgtype.UUID // NULL except for running and stuck rows
				transition           *string
				n                    int64
				at                   *time.Time
				ready, backoff, hard bool
			)
			_, err := pgx.ForEachRow(rows, []any{&kind, uuidDest(&presetID), &instanceID, &buildID, &transition, &n, &at, &ready, &backoff, &hard}, func() error {
				switch kind {
				case factRunning:
					snap.Running = append(snap.Running, prebuilds.RunningPrebuild{
						InstanceID: instanceID.Bytes, PresetID: presetID, CreatedAt: timeOf(at), Ready: ready,
					})
				case factInProgress:
					snap.InProgress = append(snap.InProgress, prebuilds.InProgressCount{
						PresetID: presetID, Transition: prebuilds.Transition(*transition), Count: int(n),
					})
				case factPendingInactive:
					snap.PendingInactive = append(snap.PendingInactive, prebuilds.PendingInactiveCount{PresetID: presetID, Count: int(n)})
				case factStuck:
					snap.Stuck = append(snap.Stuck, prebuilds.StuckBuild{PresetID: presetID, InstanceID: instanceID.Bytes, BuildID: buildID.Bytes})
				case factFailures:
					if backoff {
						snap.Backoffs = append(snap.Backoffs, prebuilds.BackoffRow{PresetID: presetID, NumFailed: int(n), LastBuildAt: timeOf(at)})
					}
					if hard {
						snap.HardLimited = append(snap.HardLimited, presetID)
					}
				default:
					return fmt.Errorf("unknown snapshot row kind %q", kind)
				}
				return nil
			})
			return err
		},
		"outcomes": func(rows pgx.Rows) error {
			var (
				r   outcomeRow
				at  *time.Time
				out []outcomeRow
			)
			_, err := pgx.ForEachRow(rows, []any{uuidDest(&r.presetID), &r.streak, &at, &r.proven}, func() error {
				r.lastFailedAt = timeOf(at)
				out = append(out, r)
				return nil
			})
			addOutcomes(snap, out, p.HardLimit.K())
			return err
		},
		"counters": func(rows pgx.Rows) error {
			var err error
			snap.Counters, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (prebuilds.PresetCounters, error) {
				var (
					c                                prebuilds.PresetCounters
					created, failed, claimed, missed int64
				)
				err := row.Scan(uuidDest(&c.PresetID), &created, &failed, &claimed, &missed)
				c.Created, c.Failed, c.Claimed, c.ClaimsMissed = int(created), int(failed), int(claimed), int(missed)
				return c, err
			})
			return err
		},
	}
	batch := &pgx.Batch{}
	for _, q := range snapshotQueries(p) {
		if q.name == "setup" {
			batch.Queue(q.sql).Exec(func(pgconn.CommandTag) error { return nil })
			continue
		}
		batch.Queue(q.sql, q.args...).Query(handlers[q.name])
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return nil, fmt.Errorf("read snapshot: %w", err)
	}
	// Empty row sets are nil, as in the reference model.
	snap.Presets = nilIfEmpty(snap.Presets)
	snap.Running = nilIfEmpty(snap.Running)
	snap.Counters = nilIfEmpty(snap.Counters)
	for i := range snap.Presets {
		snap.Presets[i].Schedules = schedules[snap.Presets[i].ID]
	}
	return snap, nil
}

func scanPresetRow(row pgx.CollectableRow) (prebuilds.PresetRow, error) {
	var (
		pf            presetFields
		r             prebuilds.PresetRow
		activeVersion pgtype.UUID
	)
	dest := append(pf.dest(), uuidDest(&r.TemplateID), &r.TemplateName, uuidDest(&r.OrganizationID), &r.OrganizationName,
		&activeVersion, &r.Deprecated, &r.Deleted)
	if err := row.Scan(dest...); err != nil {
		return r, err
	}
	r.Preset = pf.preset()
	r.ActiveVersionID = activeVersion.Bytes // zero (uuid.Nil) when NULL
	return r, nil
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}
