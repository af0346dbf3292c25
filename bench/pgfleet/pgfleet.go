// Package pgfleet loads the fleets of package bench into pgstore's schema:
// CopyFleet writes a bench.Fleet with COPY (seconds for 10,000 presets where
// bench.Seed through pgstore's control plane takes minutes), Migrator plugs
// a fleet into github.com/peterldowns/pgtestdb so that it is loaded once per
// server into a template database and every benchmark gets a cheap clone,
// and ScanTables reads the same tables without any filtering: the floor a
// snapshot is judged against. pgstore's benchmarks use it; it is a separate
// package so that package bench, which any store's benchmarks import, does
// not depend on pgx.
package pgfleet

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/peterldowns/pgtestdb"

	"github.com/prebuildkit/prebuildkit/bench"
	"github.com/prebuildkit/prebuildkit/pgstore/pgstoretest"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// pgEnums are pgstore's enum types, registered on the connection so that
// COPY can encode them.
var pgEnums = []string{"build_transition", "job_status", "failure_kind", "preset_status"}

// CopyFleet writes f straight into pgstore's tables with COPY, in one
// transaction on conn, then ANALYZEs them. The schema must exist and the
// tables be empty. It yields the same rows as Seed through pgstore's control
// plane (the tests compare the snapshots), in seconds for 10,000 presets
// where Seed takes minutes. It depends on pgstore's schema, version 5.
func CopyFleet(ctx context.Context, conn *pgx.Conn, f *bench.Fleet) error {
	types, err := conn.LoadTypes(ctx, pgEnums)
	if err != nil {
		return fmt.Errorf("pgfleet: copy fleet: load enum types: %w", err)
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
			// The current preset: the preset of the most recent start
			// build that has one (pgstore's instances.preset_id).
			var current *uuid.UUID
			for _, b := range in.Builds {
				if b.Transition == prebuilds.TransitionStart && b.PresetID != uuid.Nil {
					id := b.PresetID
					current = &id
				}
			}
			rows = append(rows, []any{
				in.ID, in.OwnerID, in.TemplateID, in.Name, prebuilds.Micro(in.CreatedAt), in.Ready, in.Deleted,
				true, nullTime(in.ClaimedAt), current,
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
			"created_as_prebuild", "claimed_at", "preset_id"}, rows); err != nil {
			return err
		}
		return copyRows("builds", []string{"id", "instance_id", "number", "template_version_id", "preset_id", "transition",
			"job_status", "failure_kind", "parameters", "created_at", "completed_at"}, builds)
	})
	if err != nil {
		return fmt.Errorf("pgfleet: copy fleet: %w", err)
	}
	// Fresh statistics, as autovacuum would eventually gather: the planner
	// must not plan the snapshot for empty tables. Tables left empty (a cold
	// fleet has no instances yet) are not analyzed: statistics saying "0
	// rows" make PostgreSQL cache sequential-scan plans for the foreign-key
	// checks of every insert that follows, which then grow with the table
	// for as long as the connection lives — a benchmark artifact a
	// long-running server does not have (autovacuum re-analyzes as tables
	// grow, which invalidates those plans).
	if _, err := conn.Exec(ctx, `ANALYZE templates, template_versions, presets, preset_schedules, settings`); err != nil {
		return fmt.Errorf("pgfleet: copy fleet: analyze: %w", err)
	}
	if len(f.Instances) > 0 {
		if _, err := conn.Exec(ctx, `ANALYZE instances, builds`); err != nil {
			return fmt.Errorf("pgfleet: copy fleet: analyze: %w", err)
		}
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

// Migrator is a pgtestdb.Migrator that applies pgstore's migrations
// (pgstoretest.Migrator) and then, when Fleet is set, copies the fleet in
// with CopyFleet. pgtestdb builds one template database per Hash and clones
// it for each caller, so a large fleet is loaded once per server and every
// benchmark gets a fresh copy cheaply. The template is keyed by a digest of
// the fleet's content, computed once per *Fleet: do not modify a Fleet after
// handing it to a Migrator.
type Migrator struct {
	// Fleet is nil for an empty, migrated database.
	Fleet *bench.Fleet
}

var _ pgtestdb.Migrator = Migrator{}

// seedVersion changes whenever CopyFleet or the generator changes what
// they write, so that stale template databases are not reused.
const seedVersion = "bench-seed-2"

// Hash implements pgtestdb.Migrator: the schema's hash, the seeding code's
// version and a digest of the fleet's content.
func (m Migrator) Hash() (string, error) {
	schema, err := pgstoretest.New().Hash()
	if err != nil {
		return "", fmt.Errorf("pgfleet: hash: %w", err)
	}
	if m.Fleet == nil {
		return schema, nil
	}
	digest, err := fleetDigest(m.Fleet)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n", schema, seedVersion, digest)
	return "bench-" + hex.EncodeToString(h.Sum(nil))[:24], nil
}

// digests caches fleetDigest per fleet: pgtestdb asks for the hash on every
// clone. A Fleet must not be modified once a Migrator has used it.
var digests sync.Map // *bench.Fleet → string

// fleetDigest hashes the whole content of f, so that a fleet edited after
// NewFleet (a template deprecated, say) gets its own template database.
func fleetDigest(f *bench.Fleet) (string, error) {
	if d, ok := digests.Load(f); ok {
		return d.(string), nil
	}
	h := sha256.New()
	if err := json.NewEncoder(h).Encode(f); err != nil {
		return "", fmt.Errorf("pgfleet: hash fleet: %w", err)
	}
	d := hex.EncodeToString(h.Sum(nil))
	digests.Store(f, d)
	return d, nil
}

// Migrate implements pgtestdb.Migrator.
func (m Migrator) Migrate(ctx context.Context, db *sql.DB, conf pgtestdb.Config) error {
	if err := pgstoretest.New().Migrate(ctx, db, conf); err != nil {
		return fmt.Errorf("pgfleet: migrate: %w", err)
	}
	if m.Fleet == nil {
		return nil
	}
	conn, err := pgx.Connect(ctx, conf.URL())
	if err != nil {
		return fmt.Errorf("pgfleet: migrate: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return CopyFleet(ctx, conn, m.Fleet)
}

// TableScan is the floor of a snapshot: every row of the tables a snapshot
// reads, decoded into the domain types, with no filtering, joining or
// ranking.
type TableScan struct {
	Templates []prebuilds.Template
	Versions  []prebuilds.TemplateVersion
	Presets   []prebuilds.Preset
	Schedules int
	Instances []prebuilds.Instance
	Builds    []prebuilds.Build
}

// Counts returns the number of rows read per table, in the order templates,
// versions, presets, schedules, instances, builds.
func (ts *TableScan) Counts() [6]int {
	return [6]int{len(ts.Templates), len(ts.Versions), len(ts.Presets), ts.Schedules, len(ts.Instances), len(ts.Builds)}
}

// ScanTables reads every row of templates, template_versions, presets,
// preset_schedules, instances and builds in one REPEATABLE READ READ ONLY
// transaction, the queries sent in one batch like pgstore's snapshot, and
// decodes them into the domain types. A snapshot that does not skip history
// through indexes reads at least this much. uuid columns are scanned as
// [16]byte (binary, no parsing), as pgstore does: a floor must not be slow.
func ScanTables(ctx context.Context, pool *pgxpool.Pool) (*TableScan, error) {
	u := func(id *uuid.UUID) *[16]byte { return (*[16]byte)(id) }
	ts := &TableScan{}
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		batch := &pgx.Batch{}
		batch.Queue(`SELECT id, organization_id, organization_name, name, active_version_id, deprecated, deleted FROM templates`).
			Query(func(rows pgx.Rows) error {
				var err error
				ts.Templates, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (prebuilds.Template, error) {
					var t prebuilds.Template
					var active pgtype.UUID
					err := row.Scan(u(&t.ID), u(&t.OrganizationID), &t.OrganizationName, &t.Name, &active, &t.Deprecated, &t.Deleted)
					t.ActiveVersionID = active.Bytes
					return t, err
				})
				return err
			})
		batch.Queue(`SELECT id, template_id, name, created_at FROM template_versions`).Query(func(rows pgx.Rows) error {
			var err error
			ts.Versions, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (prebuilds.TemplateVersion, error) {
				var v prebuilds.TemplateVersion
				err := row.Scan(u(&v.ID), u(&v.TemplateID), &v.Name, &v.CreatedAt)
				return v, err
			})
			return err
		})
		batch.Queue(`SELECT id, template_version_id, name, desired, ttl_micros, invalidated_at, timezone, parameters, status::text, reset_at FROM presets`).
			Query(func(rows pgx.Rows) error {
				var err error
				ts.Presets, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (prebuilds.Preset, error) {
					var (
						p                      prebuilds.Preset
						desired                *int32
						ttl                    int64
						invalidatedAt, resetAt *time.Time
						status                 string
					)
					err := row.Scan(u(&p.ID), u(&p.TemplateVersionID), &p.Name, &desired, &ttl, &invalidatedAt, &p.Timezone, &p.Parameters, &status, &resetAt)
					if desired != nil {
						d := int(*desired)
						p.Desired = &d
					}
					p.TTL = time.Duration(ttl) * time.Microsecond
					p.Status = prebuilds.PresetStatus(status)
					if invalidatedAt != nil {
						p.InvalidatedAt = *invalidatedAt
					}
					if resetAt != nil {
						p.ResetAt = *resetAt
					}
					return p, err
				})
				return err
			})
		batch.Queue(`SELECT preset_id, position, cron, instances FROM preset_schedules`).Query(func(rows pgx.Rows) error {
			var (
				id        uuid.UUID
				pos, n    int32
				cron      string
				schedules []prebuilds.Schedule
			)
			_, err := pgx.ForEachRow(rows, []any{u(&id), &pos, &cron, &n}, func() error {
				schedules = append(schedules, prebuilds.Schedule{Cron: cron, Instances: int(n)})
				return nil
			})
			ts.Schedules = len(schedules)
			return err
		})
		batch.Queue(`SELECT id, owner_id, template_id, name, created_at, ready, deleted, claimed_at FROM instances`).Query(func(rows pgx.Rows) error {
			var err error
			ts.Instances, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (prebuilds.Instance, error) {
				var in prebuilds.Instance
				var claimed *time.Time
				err := row.Scan(u(&in.ID), u(&in.OwnerID), u(&in.TemplateID), &in.Name, &in.CreatedAt, &in.Ready, &in.Deleted, &claimed)
				if claimed != nil {
					in.ClaimedAt = *claimed
				}
				return in, err
			})
			return err
		})
		batch.Queue(`SELECT id, instance_id, number, template_version_id, preset_id, transition::text, job_status::text, coalesce(failure_kind::text, ''), parameters, created_at, completed_at FROM builds`).
			Query(func(rows pgx.Rows) error {
				var err error
				ts.Builds, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (prebuilds.Build, error) {
					var (
						b                        prebuilds.Build
						number                   int32
						preset                   pgtype.UUID
						transition, status, kind string
						completed                *time.Time
					)
					err := row.Scan(u(&b.ID), u(&b.InstanceID), &number, u(&b.TemplateVersionID), &preset, &transition, &status, &kind, &b.Parameters, &b.CreatedAt, &completed)
					b.Number = int(number)
					b.PresetID = preset.Bytes
					b.Transition, b.JobStatus, b.FailureKind = prebuilds.Transition(transition), prebuilds.JobStatus(status), prebuilds.FailureKind(kind)
					if completed != nil {
						b.CompletedAt = *completed
					}
					return b, err
				})
				return err
			})
		return tx.SendBatch(ctx, batch).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("pgfleet: scan tables: %w", err)
	}
	return ts, nil
}
