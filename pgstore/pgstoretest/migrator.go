// Package pgstoretest helps tests that need a pgstore database: Migrator
// plugs pgstore's migrations into github.com/peterldowns/pgtestdb, so that
// every test gets a clone of one migrated template database.
package pgstoretest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/peterldowns/pgtestdb"

	"github.com/prebuildkit/prebuildkit/pgstore"
)

// Migrator is a pgtestdb.Migrator that runs pgstore.Migrate.
type Migrator struct{}

var _ pgtestdb.Migrator = Migrator{}

// New returns the migrator.
func New() Migrator { return Migrator{} }

// Hash identifies the schema: a digest of every embedded migration's name
// and contents, so a changed migration gets a new template database.
func (Migrator) Hash() (string, error) {
	fsys := pgstore.Migrations()
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return "", fmt.Errorf("pgstoretest: list migrations: %w", err)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return "", fmt.Errorf("pgstoretest: read migration %s: %w", name, err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(body))
		h.Write(body)
	}
	return "pgstore-" + hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Migrate runs pgstore.Migrate on the template database. The *sql.DB is not
// used: pgstore migrates through a pgx pool opened on the same database.
func (Migrator) Migrate(ctx context.Context, _ *sql.DB, conf pgtestdb.Config) error {
	pool, err := pgxpool.New(ctx, conf.URL())
	if err != nil {
		return fmt.Errorf("pgstoretest: connect %s: %w", conf.Database, err)
	}
	defer pool.Close()
	if _, err := pgstore.Migrate(ctx, pool); err != nil {
		return fmt.Errorf("pgstoretest: %w", err)
	}
	return nil
}
