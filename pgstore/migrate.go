package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrationLockKey is the session advisory lock that serialises Migrate and
// MigrateDown across processes. It differs from the reconciliation lock.
const migrationLockKey int64 = 0x70726562_6d696772 // "prebmigr"

// Migrations returns the embedded SQL migrations, for users who run their
// own migration tool. Files are named NNNN_name.up.sql and
// NNNN_name.down.sql at the root of the returned file system; apply the up
// files in ascending version order.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		// The directory is embedded at build time; Sub fails only on an
		// invalid path literal.
		panic(fmt.Sprintf("pgstore: embedded migrations: %v", err))
	}
	return sub
}

// Migration is one numbered schema change.
type Migration struct {
	Version int
	Name    string
	Up      string
	Down    string
}

// MigrationRun reports one migration applied or reverted by Migrate or
// MigrateDown.
type MigrationRun struct {
	Version  int
	Name     string
	Duration time.Duration
}

// MigrateResult reports what a Migrate or MigrateDown call did.
type MigrateResult struct {
	// Direction is "up" or "down".
	Direction string
	// Ran lists the migrations applied (up, ascending) or reverted (down,
	// descending) by this call; empty when the schema was already there.
	Ran []MigrationRun
	// Version is the schema version after the call (0 = nothing applied).
	Version int
}

// LatestVersion is the version Migrate brings a database to.
func LatestVersion() int {
	ms, err := loadMigrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// loadMigrations parses the embedded files into migrations ordered by
// version. Versions must be 1, 2, 3, … with an up and a down file each.
func loadMigrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	byVersion := map[int]*Migration{}
	for _, e := range entries {
		name := e.Name()
		var direction string
		switch {
		case strings.HasSuffix(name, ".up.sql"):
			direction = "up"
		case strings.HasSuffix(name, ".down.sql"):
			direction = "down"
		default:
			return nil, fmt.Errorf("migration %q: want NNNN_name.up.sql or NNNN_name.down.sql", name)
		}
		base := strings.TrimSuffix(name, "."+direction+".sql")
		num, label, ok := strings.Cut(base, "_")
		if !ok {
			return nil, fmt.Errorf("migration %q: want NNNN_name", name)
		}
		version, err := strconv.Atoi(num)
		if err != nil || version <= 0 {
			return nil, fmt.Errorf("migration %q: bad version %q", name, num)
		}
		body, err := migrationFiles.ReadFile(path.Join("migrations", name))
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", name, err)
		}
		m := byVersion[version]
		if m == nil {
			m = &Migration{Version: version, Name: label}
			byVersion[version] = m
		}
		if m.Name != label {
			return nil, fmt.Errorf("migration %d: names %q and %q differ", version, m.Name, label)
		}
		if direction == "up" {
			m.Up = string(body)
		} else {
			m.Down = string(body)
		}
	}
	ms := make([]Migration, 0, len(byVersion))
	for _, m := range byVersion {
		ms = append(ms, *m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration versions must be contiguous from 1: missing %d", i+1)
		}
		if m.Up == "" || m.Down == "" {
			return nil, fmt.Errorf("migration %d (%s): missing up or down file", m.Version, m.Name)
		}
	}
	return ms, nil
}

const createMigrationsTable = `
CREATE TABLE IF NOT EXISTS prebuildkit_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`

// Migrate applies every embedded migration that has not run yet, each in
// its own transaction, under a session advisory lock so that concurrent
// callers (several replicas starting at once) apply each migration exactly
// once. It is idempotent: on an up-to-date database it does nothing and
// reports an empty Ran. Applied versions are kept in the
// prebuildkit_migrations table.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (MigrateResult, error) {
	res := MigrateResult{Direction: "up"}
	ms, err := loadMigrations()
	if err != nil {
		return res, fmt.Errorf("pgstore: migrate: %w", err)
	}
	err = withMigrationLock(ctx, pool, func(conn *pgx.Conn) error {
		applied, err := appliedVersions(ctx, conn)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if applied[m.Version] {
				continue
			}
			start := time.Now()
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, m.Up); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO prebuildkit_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
				return err
			})
			if err != nil {
				return fmt.Errorf("apply %04d_%s: %w", m.Version, m.Name, err)
			}
			res.Ran = append(res.Ran, MigrationRun{Version: m.Version, Name: m.Name, Duration: time.Since(start)})
			applied[m.Version] = true
		}
		res.Version = maxVersion(applied)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("pgstore: migrate: %w", err)
	}
	return res, nil
}

// MigrateDown reverts applied migrations above toVersion, newest first, each
// in its own transaction, under the same lock as Migrate. toVersion 0
// removes the whole schema (the prebuildkit_migrations table stays, empty).
func MigrateDown(ctx context.Context, pool *pgxpool.Pool, toVersion int) (MigrateResult, error) {
	res := MigrateResult{Direction: "down"}
	if toVersion < 0 {
		return res, fmt.Errorf("pgstore: migrate down to %d: version must not be negative", toVersion)
	}
	ms, err := loadMigrations()
	if err != nil {
		return res, fmt.Errorf("pgstore: migrate down: %w", err)
	}
	err = withMigrationLock(ctx, pool, func(conn *pgx.Conn) error {
		applied, err := appliedVersions(ctx, conn)
		if err != nil {
			return err
		}
		for i := len(ms) - 1; i >= 0; i-- {
			m := ms[i]
			if m.Version <= toVersion || !applied[m.Version] {
				continue
			}
			start := time.Now()
			err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, m.Down); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `DELETE FROM prebuildkit_migrations WHERE version = $1`, m.Version)
				return err
			})
			if err != nil {
				return fmt.Errorf("revert %04d_%s: %w", m.Version, m.Name, err)
			}
			res.Ran = append(res.Ran, MigrationRun{Version: m.Version, Name: m.Name, Duration: time.Since(start)})
			delete(applied, m.Version)
		}
		res.Version = maxVersion(applied)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("pgstore: migrate down to %d: %w", toVersion, err)
	}
	return res, nil
}

// withMigrationLock runs fn on one connection holding the migration lock.
// The lock is session-level, so it is released explicitly, as the
// reconciliation lock is (see sessionLock): when withMigrationLock returns,
// the next Migrate or MigrateDown gets the lock at once.
func withMigrationLock(ctx context.Context, pool *pgxpool.Pool, fn func(conn *pgx.Conn) error) (err error) {
	pc, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	l := newSessionLock(pool, pc, singleKey(migrationLockKey))
	if _, err := pc.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLockKey); err != nil {
		// The server may have granted the lock before the wait for it was
		// interrupted.
		return fmt.Errorf("take migration lock: %w", errors.Join(err, l.release(ctx, false)))
	}
	defer func() {
		if uerr := l.release(ctx, true); uerr != nil && err == nil {
			err = uerr
		}
	}()
	if _, err := pc.Exec(ctx, createMigrationsTable); err != nil {
		return fmt.Errorf("create prebuildkit_migrations: %w", err)
	}
	return fn(pc.Conn())
}

func appliedVersions(ctx context.Context, conn *pgx.Conn) (map[int]bool, error) {
	rows, err := conn.Query(ctx, `SELECT version FROM prebuildkit_migrations`)
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	applied := make(map[int]bool, len(versions))
	for _, v := range versions {
		applied[int(v)] = true
	}
	return applied, nil
}

func maxVersion(applied map[int]bool) int {
	v := 0
	for k := range applied {
		v = max(v, k)
	}
	return v
}
