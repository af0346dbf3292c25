package pgstore_test

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/peterldowns/pgtestdb"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/internal/pgtest"
	"github.com/prebuildkit/prebuildkit/pgstore"
	"github.com/prebuildkit/prebuildkit/pgstore/pgstoretest"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// emptyMigrator makes databases without any schema.
type emptyMigrator struct{}

func (emptyMigrator) Hash() (string, error) { return "pgstore-empty-v1", nil }
func (emptyMigrator) Migrate(context.Context, *sql.DB, pgtestdb.Config) error {
	return nil
}

func emptyPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	dsn := pgtest.NewDatabase(t, emptyMigrator{})
	pool, err := pgxpool.New(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// schemaFingerprint lists every column, constraint, index, enum label,
// trigger and function of the public schema, so two schemas can be
// compared. Migrate's own bookkeeping table is left out.
func schemaFingerprint(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `
		SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
		FROM information_schema.columns WHERE table_schema = 'public' AND table_name <> 'prebuildkit_migrations'
		UNION ALL
		SELECT 'constraint ' || conrelid::regclass || ' ' || pg_get_constraintdef(oid)
		FROM pg_constraint WHERE connamespace = 'public'::regnamespace AND conrelid::regclass::text <> 'prebuildkit_migrations'
		UNION ALL
		SELECT 'index ' || indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename <> 'prebuildkit_migrations'
		UNION ALL
		SELECT 'enum ' || t.typname || ' ' || e.enumlabel || ' ' || e.enumsortorder
		FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
		UNION ALL
		SELECT 'trigger ' || pg_get_triggerdef(oid) FROM pg_trigger
		WHERE NOT tgisinternal AND tgrelid::regclass::text NOT LIKE 'pg_%'
		UNION ALL
		SELECT 'function ' || pg_get_functiondef(oid) FROM pg_proc WHERE pronamespace = 'public'::regnamespace
		ORDER BY 1`)
	require.NoError(t, err)
	fp, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return fp
}

func tableExists(t *testing.T, pool *pgxpool.Pool, name string) bool {
	t.Helper()
	var ok bool
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok))
	return ok
}

func TestMigrateUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := emptyPool(t)

	res, err := pgstore.Migrate(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, "up", res.Direction)
	require.Len(t, res.Ran, pgstore.LatestVersion())
	require.Equal(t, 1, res.Ran[0].Version)
	require.Equal(t, "init", res.Ran[0].Name)
	require.Equal(t, pgstore.LatestVersion(), res.Version)
	first := schemaFingerprint(t, pool)
	require.NotEmpty(t, first)
	for _, table := range []string{"templates", "template_versions", "presets", "preset_schedules", "instances", "builds", "settings"} {
		require.True(t, tableExists(t, pool, table), table)
	}

	// Idempotent.
	res, err = pgstore.Migrate(ctx, pool)
	require.NoError(t, err)
	require.Empty(t, res.Ran)
	require.Equal(t, pgstore.LatestVersion(), res.Version)

	res, err = pgstore.MigrateDown(ctx, pool, 0)
	require.NoError(t, err)
	require.Equal(t, "down", res.Direction)
	require.Len(t, res.Ran, pgstore.LatestVersion())
	require.Equal(t, 0, res.Version)
	for _, table := range []string{"templates", "presets", "instances", "builds", "settings"} {
		require.False(t, tableExists(t, pool, table), table)
	}
	var enums int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_type WHERE typtype = 'e' AND typnamespace = 'public'::regnamespace`).Scan(&enums))
	require.Zero(t, enums)

	// Down again does nothing.
	res, err = pgstore.MigrateDown(ctx, pool, 0)
	require.NoError(t, err)
	require.Empty(t, res.Ran)

	res, err = pgstore.Migrate(ctx, pool)
	require.NoError(t, err)
	require.Len(t, res.Ran, pgstore.LatestVersion())
	require.Equal(t, first, schemaFingerprint(t, pool), "up → down → up must give the same schema")

	// The store works on the re-created schema (a fresh pool: cached
	// statements of the old one name dropped types).
	fresh := openPool(t, pool)
	s := pgstore.New(fresh)
	acquired, err := s.WithReconciliationLock(ctx, func(context.Context, prebuilds.SnapshotReader) error { return nil })
	require.NoError(t, err)
	require.True(t, acquired)
}

// TestMigrateDownStepByStep reverts one migration at a time and checks that
// each down file gives back exactly the schema its up files made: the
// schema at version v is built independently by running the up files 1..v
// by hand on an empty database.
func TestMigrateDownStepByStep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fsys := pgstore.Migrations()
	latest := pgstore.LatestVersion()
	require.GreaterOrEqual(t, latest, 2)

	pool := emptyPool(t)
	_, err := pgstore.Migrate(ctx, pool)
	require.NoError(t, err)
	for v := latest - 1; v >= 1; v-- {
		res, err := pgstore.MigrateDown(ctx, pool, v)
		require.NoError(t, err)
		require.Equal(t, v, res.Version)
		require.Len(t, res.Ran, 1)

		byHand := emptyPool(t)
		for n := 1; n <= v; n++ {
			matches, err := fs.Glob(fsys, fmt.Sprintf("%04d_*.up.sql", n))
			require.NoError(t, err)
			require.Len(t, matches, 1)
			up, err := fs.ReadFile(fsys, matches[0])
			require.NoError(t, err)
			_, err = byHand.Exec(ctx, string(up))
			require.NoError(t, err, matches[0])
		}
		require.Equal(t, schemaFingerprint(t, byHand), schemaFingerprint(t, pool), "schema after reverting to version %d", v)
	}
}

// TestMigrateFailureKindTimeout: migration 0004 adds failure kind
// 'timeout' in the transaction that applies it; reverting it rebuilds the
// enum without the label and keeps timed-out builds as transient failures.
func TestMigrateFailureKindTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := emptyPool(t)
	_, err := pgstore.Migrate(ctx, pool)
	require.NoError(t, err)
	latest := schemaFingerprint(t, pool)

	s := pgstore.New(pool)
	tmpl, ver, preset := uuid.New(), uuid.New(), uuid.New()
	require.NoError(t, s.CreateTemplate(ctx, prebuilds.Template{ID: tmpl, Name: "t"}))
	require.NoError(t, s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: ver, TemplateID: tmpl, CreatedAt: t0}))
	require.NoError(t, s.UpsertPreset(ctx, prebuilds.Preset{ID: preset, TemplateVersionID: ver, Name: "p", Desired: ptr(1)}))
	build := uuid.New()
	_, err = s.CreatePrebuilds(ctx, prebuilds.CreatePrebuildsParams{PresetID: preset, TemplateVersionID: ver, Now: t0,
		Instances: []prebuilds.NewPrebuild{{InstanceID: uuid.New(), BuildID: build}}})
	require.NoError(t, err)
	require.NoError(t, s.FailStuckBuild(ctx, prebuilds.FailStuckBuildParams{BuildID: build, StuckBefore: t0.Add(time.Minute), Now: t0.Add(time.Minute)}))

	kind := func(p *pgxpool.Pool) string {
		var k string
		require.NoError(t, p.QueryRow(ctx, `SELECT failure_kind::text FROM builds WHERE id = $1`, build).Scan(&k))
		return k
	}
	require.Equal(t, "timeout", kind(pool))
	res, err := pgstore.MigrateDown(ctx, pool, 3)
	require.NoError(t, err)
	require.Equal(t, 3, res.Version)
	require.Equal(t, "transient", kind(pool))
	rows, err := pool.Query(ctx, `SELECT unnest(enum_range(NULL::failure_kind))::text`)
	require.NoError(t, err)
	labels, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"transient", "validation"}, labels)

	_, err = pgstore.Migrate(ctx, pool)
	require.NoError(t, err)
	require.Equal(t, latest, schemaFingerprint(t, pool))
	// A fresh pool: cached statements of the old one name the dropped type.
	fresh := openPool(t, pool)
	_, err = pgstore.New(fresh).UpdateJob(ctx, prebuilds.UpdateJobParams{BuildID: build, Status: prebuilds.JobFailed, Now: t0})
	require.ErrorIs(t, err, prebuilds.ErrInvalidTransition)
	_, err = fresh.Exec(ctx, `UPDATE builds SET failure_kind = 'timeout' WHERE id = $1`, build)
	require.NoError(t, err)
	require.Equal(t, "timeout", kind(fresh))
}

// TestCatalogueIsPermanent: templates, versions and presets cannot be
// deleted, truncated or renumbered (instances and builds refer to them
// without foreign keys), while builds keep theirs to instances.
func TestCatalogueIsPermanent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	preset := f.preset(ptr(1))
	instance := f.prebuild(preset, t0, prebuilds.JobSucceeded)
	pool := f.pool

	for _, table := range []string{"templates", "template_versions", "presets"} {
		for _, stmt := range []string{
			"DELETE FROM " + table,
			"TRUNCATE " + table + " CASCADE",
			"UPDATE " + table + " SET id = gen_random_uuid()",
		} {
			_, err := pool.Exec(ctx, stmt)
			var pgErr *pgconn.PgError
			require.ErrorAs(t, err, &pgErr, stmt)
			require.Equal(t, "23001", pgErr.Code, stmt) // restrict_violation
			require.Contains(t, pgErr.Message, table, stmt)
		}
	}
	// Nothing went: the store still reads the preset and its prebuild.
	_, err := f.s.GetPreset(ctx, preset)
	require.NoError(t, err)
	_, err = f.s.GetInstance(ctx, instance)
	require.NoError(t, err)

	// A build still cannot name an instance that does not exist.
	_, err = pool.Exec(ctx, `
		INSERT INTO builds (id, instance_id, number, template_version_id, transition, created_at)
		VALUES (gen_random_uuid(), gen_random_uuid(), 1, $1, 'start', now())`, f.ver)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "23503", pgErr.Code) // foreign_key_violation
}

func TestMigrateDownNegative(t *testing.T) {
	t.Parallel()
	_, err := pgstore.MigrateDown(context.Background(), emptyPool(t), -1)
	require.ErrorContains(t, err, "negative")
}

func TestMigrateConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := emptyPool(t)
	const callers = 4
	results := make([]pgstore.MigrateResult, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = pgstore.Migrate(ctx, pool)
		}()
	}
	wg.Wait()
	ran := 0
	for i := range callers {
		require.NoError(t, errs[i])
		require.Equal(t, pgstore.LatestVersion(), results[i].Version)
		ran += len(results[i].Ran)
	}
	require.Equal(t, pgstore.LatestVersion(), ran, "each migration runs exactly once")
	var rows int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM prebuildkit_migrations`).Scan(&rows))
	require.Equal(t, pgstore.LatestVersion(), rows)
}

func TestMigrationsFS(t *testing.T) {
	t.Parallel()
	fsys := pgstore.Migrations()
	up, err := fs.ReadFile(fsys, "0001_init.up.sql")
	require.NoError(t, err)
	require.Contains(t, string(up), "CREATE TABLE builds")
	down, err := fs.ReadFile(fsys, "0001_init.down.sql")
	require.NoError(t, err)
	require.Contains(t, string(down), "DROP TABLE builds")

	hash, err := pgstoretest.New().Hash()
	require.NoError(t, err)
	require.Regexp(t, `^pgstore-[0-9a-f]{16}$`, hash)
}
