package bench

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/peterldowns/pgtestdb"

	"github.com/prebuildkit/prebuildkit/pgstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// pgEnums are pgstore's enum types, registered on the connection so that
// COPY can encode them.
var pgEnums = []string{"build_transition", "job_status", "failure_kind", "preset_status"}

// CopyFleet writes f straight into pgstore's tables with COPY, in one
// transaction on conn, then ANALYZEs them. The schema must exist and the
// tables be empty. It yields the same rows as Seed through pgstore's control
// plane (the tests compare the snapshots), in seconds for 10,000 presets
// where Seed takes minutes. It depends on pgstore's schema, version 1.
func CopyFleet(ctx context.Context, conn *pgx.Conn, f *Fleet) error {
	types, err := conn.LoadTypes(ctx, pgEnums)
	if err != nil {
		return fmt.Errorf("bench: copy fleet: load enum types: %w", err)
	}
	conn.TypeMap().RegisterTypes(types)

	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		copyRows := func(table string, cols []string, rows [][]any) error {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(rows)); err != nil {
				return fmt.Errorf("copy %s: %w", table, err)
			}
			return nil
		}
		rows := make([][]any, 0, len(f.Templates))
		for _, t := range f.Templates {
			rows = append(rows, []any{t.ID, t.OrganizationID, t.OrganizationName, t.Name, t.Deprecated, t.Deleted})
		}
		if err := copyRows("templates", []string{"id", "organization_id", "organization_name", "name", "deprecated", "deleted"}, rows); err != nil {
			return err
		}
		rows = rows[:0]
		for _, v := range f.Versions {
			rows = append(rows, []any{v.ID, v.TemplateID, v.Name, prebuilds.Micro(v.CreatedAt)})
		}
		if err := copyRows("template_versions", []string{"id", "template_id", "name", "created_at"}, rows); err != nil {
			return err
		}
		ids := make([]uuid.UUID, 0, len(f.Templates))
		active := make([]uuid.UUID, 0, len(f.Templates))
		for _, t := range f.Templates {
			if t.ActiveVersionID != uuid.Nil {
				ids = append(ids, t.ID)
				active = append(active, t.ActiveVersionID)
			}
		}
		if _, err := tx.Exec(ctx, `
			UPDATE templates t SET active_version_id = u.version
			FROM unnest($1::uuid[], $2::uuid[]) AS u(id, version)
			WHERE t.id = u.id`, ids, active); err != nil {
			return fmt.Errorf("activate versions: %w", err)
		}

		rows = rows[:0]
		var schedules [][]any
		for _, p := range f.Presets {
			var desired *int32
			if p.Desired != nil {
				d := int32(*p.Desired)
				desired = &d
			}
			status := p.Status
			if status == "" {
				status = prebuilds.PresetHealthy
			}
			rows = append(rows, []any{
				p.ID, p.TemplateVersionID, p.Name, desired, int64(p.TTL / time.Microsecond), nullTime(p.InvalidatedAt),
				p.Timezone, jsonParams(p.Parameters), string(status), nullTime(p.ResetAt),
			})
			for i, s := range p.Schedules {
				schedules = append(schedules, []any{p.ID, int32(i), s.Cron, int32(s.Instances)})
			}
		}
		if err := copyRows("presets", []string{"id", "template_version_id", "name", "desired", "ttl_micros", "invalidated_at",
			"timezone", "parameters", "status", "reset_at"}, rows); err != nil {
			return err
		}
		if err := copyRows("preset_schedules", []string{"preset_id", "position", "cron", "instances"}, schedules); err != nil {
			return err
		}

		rows = rows[:0]
		builds := make([][]any, 0, f.Builds())
		for _, in := range f.Instances {
			rows = append(rows, []any{
				in.ID, in.OwnerID, in.TemplateID, in.Name, prebuilds.Micro(in.CreatedAt), in.Ready, in.Deleted,
				true, nullTime(in.ClaimedAt),
			})
			for _, b := range in.Builds {
				var kind *string
				if b.FailureKind != prebuilds.FailureNone {
					k := string(b.FailureKind)
					kind = &k
				}
				var preset *uuid.UUID
				if b.PresetID != uuid.Nil {
					id := b.PresetID
					preset = &id
				}
				builds = append(builds, []any{
					b.ID, in.ID, int32(b.Number), b.TemplateVersionID, preset, string(b.Transition), string(b.JobStatus), kind,
					jsonParams(b.Parameters), prebuilds.Micro(b.CreatedAt), nullTime(b.CompletedAt),
				})
			}
		}
		if err := copyRows("instances", []string{"id", "owner_id", "template_id", "name", "created_at", "ready", "deleted",
			"created_as_prebuild", "claimed_at"}, rows); err != nil {
			return err
		}
		return copyRows("builds", []string{"id", "instance_id", "number", "template_version_id", "preset_id", "transition",
			"job_status", "failure_kind", "parameters", "created_at", "completed_at"}, builds)
	})
	if err != nil {
		return fmt.Errorf("bench: copy fleet: %w", err)
	}
	// Fresh statistics, as autovacuum would eventually gather: the planner
	// must not plan the snapshot for empty tables.
	if _, err := conn.Exec(ctx, `ANALYZE`); err != nil {
		return fmt.Errorf("bench: copy fleet: analyze: %w", err)
	}
	return nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	m := prebuilds.Micro(t)
	return &m
}

// jsonParams is a parameter map for a jsonb column (never NULL).
func jsonParams(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// FleetMigrator is a pgtestdb.Migrator that applies pgstore's migrations and
// then, when Fleet is set, copies the fleet in with CopyFleet. pgtestdb
// builds one template database per Hash and clones it for each caller, so a
// large fleet is loaded once per server and every benchmark gets a fresh
// copy cheaply.
type FleetMigrator struct {
	// Fleet is nil for an empty, migrated database.
	Fleet *Fleet
}

// seedVersion changes whenever CopyFleet or the generator changes what
// they write, so that stale template databases are not reused.
const seedVersion = "bench-seed-1"

// Hash implements pgtestdb.Migrator: the migrations' contents, the seeding
// code's version and the fleet parameters.
func (m FleetMigrator) Hash() (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, seedVersion)
	err := fs.WalkDir(pgstore.Migrations(), ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(pgstore.Migrations(), path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\n%s\n", path, body)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("bench: hash migrations: %w", err)
	}
	if m.Fleet != nil {
		fmt.Fprintf(h, "%+v\n", m.Fleet.Params)
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// Migrate implements pgtestdb.Migrator.
func (m FleetMigrator) Migrate(ctx context.Context, _ *sql.DB, conf pgtestdb.Config) error {
	pool, err := pgxpool.New(ctx, conf.URL())
	if err != nil {
		return fmt.Errorf("bench: migrate: connect: %w", err)
	}
	defer pool.Close()
	if _, err := pgstore.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("bench: migrate: %w", err)
	}
	if m.Fleet == nil {
		return nil
	}
	return pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error {
		return CopyFleet(ctx, c.Conn(), m.Fleet)
	})
}

// TableScan is the floor of a snapshot: every row of the tables a snapshot
// reads, copied into memory with no filtering, joining or ranking.
type TableScan struct {
	Templates, Versions, Presets, Schedules, Instances, Builds int
}

// ScanTables reads every row of templates, template_versions, presets,
// preset_schedules, instances and builds in one REPEATABLE READ READ ONLY
// transaction, decoding each column into Go values, and counts them. It is
// what any snapshot needs at least when it does not use the indexes to skip
// history.
func ScanTables(ctx context.Context, pool *pgxpool.Pool) (TableScan, error) {
	var ts TableScan
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		type query struct {
			sql string
			n   *int
		}
		for _, q := range []query{
			{`SELECT id, organization_id, organization_name, name, active_version_id, deprecated, deleted FROM templates`, &ts.Templates},
			{`SELECT id, template_id, name, created_at FROM template_versions`, &ts.Versions},
			{`SELECT id, template_version_id, name, desired, ttl_micros, invalidated_at, timezone, parameters, status::text, reset_at FROM presets`, &ts.Presets},
			{`SELECT preset_id, position, cron, instances FROM preset_schedules`, &ts.Schedules},
			{`SELECT id, owner_id, template_id, name, created_at, ready, deleted, created_as_prebuild, claimed_at FROM instances`, &ts.Instances},
			{`SELECT id, instance_id, number, template_version_id, preset_id, transition::text, job_status::text, failure_kind::text, parameters, created_at, completed_at FROM builds`, &ts.Builds},
		} {
			rows, err := tx.Query(ctx, q.sql)
			if err != nil {
				return err
			}
			all, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) ([]any, error) { return row.Values() })
			if err != nil {
				return err
			}
			*q.n = len(all)
		}
		return nil
	})
	if err != nil {
		return ts, fmt.Errorf("bench: scan tables: %w", err)
	}
	return ts, nil
}
