package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/peterldowns/pgtestdb"
	"github.com/stretchr/testify/require"
)

// widgetMigrator creates one table with one seed row.
type widgetMigrator struct {
	hash  string        // "" → a fixed hash shared by the tests
	calls *atomic.Int32 // counts Migrate calls when non-nil
}

func (m widgetMigrator) Hash() (string, error) {
	if m.hash == "" {
		return "pgtest-widgets-v1", nil
	}
	return m.hash, nil
}

func (m widgetMigrator) Migrate(ctx context.Context, db *sql.DB, _ pgtestdb.Config) error {
	if m.calls != nil {
		m.calls.Add(1)
	}
	_, err := db.ExecContext(ctx, `
		CREATE TABLE widgets (id integer PRIMARY KEY, name text NOT NULL);
		INSERT INTO widgets (id, name) VALUES (1, 'seed');`)
	if err != nil {
		return fmt.Errorf("migrate widgets: %w", err)
	}
	return nil
}

func connect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func databaseName(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	require.NoError(t, err)
	name := strings.TrimPrefix(u.Path, "/")
	require.NotEmpty(t, name)
	return name
}

func widgetNames(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), `SELECT name FROM widgets ORDER BY id`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

// adminConn connects to the admin server behind NewDatabase.
func adminConn(t *testing.T) *pgx.Conn {
	t.Helper()
	return connect(t, adminConfig(t).URL())
}

func TestNewDatabaseIsolated(t *testing.T) {
	t.Parallel()

	dsnA := NewDatabase(t, widgetMigrator{})
	dsnB := NewDatabase(t, widgetMigrator{})
	require.NotEqual(t, databaseName(t, dsnA), databaseName(t, dsnB))

	a, b := connect(t, dsnA), connect(t, dsnB)
	var nameA, nameB string
	require.NoError(t, a.QueryRow(t.Context(), `SELECT current_database()`).Scan(&nameA))
	require.NoError(t, b.QueryRow(t.Context(), `SELECT current_database()`).Scan(&nameB))
	require.Equal(t, databaseName(t, dsnA), nameA)
	require.Equal(t, databaseName(t, dsnB), nameB)

	// Both start from the migrated template.
	require.Equal(t, []string{"seed"}, widgetNames(t, a))
	require.Equal(t, []string{"seed"}, widgetNames(t, b))

	// Writes to one are invisible in the other.
	_, err := a.Exec(t.Context(), `INSERT INTO widgets (id, name) VALUES (2, 'only-in-a')`)
	require.NoError(t, err)
	_, err = b.Exec(t.Context(), `DELETE FROM widgets`)
	require.NoError(t, err)
	require.Equal(t, []string{"seed", "only-in-a"}, widgetNames(t, a))
	require.Empty(t, widgetNames(t, b))
}

func TestNewPool(t *testing.T) {
	t.Parallel()

	pool := NewPool(t, widgetMigrator{})
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM widgets`).Scan(&n))
	require.Equal(t, 1, n)

	// The pool connects as pgtestdb's unprivileged role.
	var super bool
	require.NoError(t, pool.QueryRow(t.Context(),
		`SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super))
	require.False(t, super)
}

func TestTemplateMigratedOnce(t *testing.T) {
	t.Parallel()

	var calls atomic.Int32
	m := widgetMigrator{hash: "pgtest-once-" + uuid.NewString(), calls: &calls}
	first := NewDatabase(t, m)
	for range 3 {
		dsn := NewDatabase(t, m)
		require.Equal(t, []string{"seed"}, widgetNames(t, connect(t, dsn)))
	}
	require.Equal(t, int32(1), calls.Load())

	// The template is unique to this run: drop it once the clones are gone.
	tpl, _, ok := strings.Cut(databaseName(t, first), "_inst_")
	require.True(t, ok, "instance name %q", databaseName(t, first))
	admin := adminConn(t)
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		ctx := context.Background()
		_, err := admin.Exec(ctx, fmt.Sprintf(`ALTER DATABASE %q WITH is_template false`, tpl))
		require.NoError(t, err)
		_, err = admin.Exec(ctx, fmt.Sprintf(`DROP DATABASE %q`, tpl))
		require.NoError(t, err)
	})
}

// failedTB reports failure and collects cleanups so a test can see what
// happens to the database of a failed test.
type failedTB struct {
	testing.TB
	cleanups []func()
}

func (f *failedTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *failedTB) Failed() bool      { return true }

func TestDatabaseKeptWhenTestFails(t *testing.T) {
	t.Parallel()

	ftb := &failedTB{TB: t}
	dsn := NewDatabase(ftb, widgetMigrator{})
	for i := len(ftb.cleanups) - 1; i >= 0; i-- {
		ftb.cleanups[i]()
	}

	name := databaseName(t, dsn)
	admin := adminConn(t)
	var exists bool
	require.NoError(t, admin.QueryRow(t.Context(),
		`SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, name).Scan(&exists))
	require.True(t, exists, "database of a failed test must be kept")
	require.Equal(t, []string{"seed"}, widgetNames(t, connect(t, dsn)))

	t.Cleanup(func() {
		_, err := admin.Exec(context.Background(), fmt.Sprintf(`DROP DATABASE %q WITH (FORCE)`, name))
		require.NoError(t, err)
	})
}

func TestDatabaseDroppedWhenTestPasses(t *testing.T) {
	t.Parallel()

	var name string
	t.Run("user", func(t *testing.T) {
		name = databaseName(t, NewDatabase(t, widgetMigrator{}))
	})
	admin := adminConn(t)
	var exists bool
	require.NoError(t, admin.QueryRow(t.Context(),
		`SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, name).Scan(&exists))
	require.False(t, exists, "database of a passed test must be dropped")
}
