package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Compile-time assertions: Store is both the Reconciler's store and the
// integrators' control plane.
var (
	_ prebuilds.Store        = (*Store)(nil)
	_ prebuilds.ControlPlane = (*Store)(nil)
)

// DefaultLockKey is the advisory lock key of the reconciliation lock.
const DefaultLockKey int64 = 0x70726562_7265636e // "prebrecn"

// Store is a prebuilds.Store and prebuilds.ControlPlane on PostgreSQL. It is
// safe for concurrent use; several Stores (one per replica, each with its
// own pool) may share one database.
type Store struct {
	pool    *pgxpool.Pool
	lockKey int64
	// channel is the NOTIFY channel of the change feed (see Changes).
	channel string
}

// Option configures a Store.
type Option func(*Store)

// WithLockKey sets the advisory lock key of the reconciliation lock
// (default DefaultLockKey), from which the shard locks' keys and the change
// feed's channel are derived too. Every replica sharing a database must use
// the same key; change it only when the key collides with another
// application's advisory locks in the same database, or when several
// pgstore schemas share one database (each needs its own locks and feed).
func WithLockKey(key int64) Option {
	return func(s *Store) { s.lockKey = key }
}

// New returns a Store on pool. The schema must exist (see Migrate). The
// pool must allow at least two connections: WithReconciliationLock holds
// one while the writes made under the lock use others.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{pool: pool, lockKey: DefaultLockKey}
	for _, o := range opts {
		o(s)
	}
	s.channel = fmt.Sprintf("prebuildkit_changes_%016x", uint64(s.lockKey))
	return s
}

// sentinels are the errors of prebuilds that need no translation.
var sentinels = []error{
	prebuilds.ErrNotFound,
	prebuilds.ErrConflict,
	prebuilds.ErrNoClaimablePrebuild,
	prebuilds.ErrInvalidPreset,
	prebuilds.ErrInvalidArgument,
	prebuilds.ErrInvalidTransition,
}

// PostgreSQL error codes translated at the boundary.
const (
	pgUniqueViolation     = "23505"
	pgForeignKeyViolation = "23503"
	pgCheckViolation      = "23514"
	pgNotNullViolation    = "23502"
	pgInvalidText         = "22P02"
)

// opError is the one place where errors leave the package: it translates
// driver errors to prebuilds sentinels and names the operation and key.
func opError(op string, key any, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("pgstore: %s %v: %w", op, key, translate(err))
}

func translate(err error) error {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return err
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: %w", prebuilds.ErrNotFound, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case pgUniqueViolation:
			return fmt.Errorf("%w: %w", prebuilds.ErrConflict, err)
		case pgForeignKeyViolation:
			return fmt.Errorf("%w: %w", prebuilds.ErrNotFound, err)
		case pgCheckViolation, pgNotNullViolation, pgInvalidText:
			return fmt.Errorf("%w: %w", prebuilds.ErrInvalidArgument, err)
		}
	}
	return err
}

// errf builds an error matching sentinel with a short description.
func errf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), sentinel)
}

// inTx runs fn in a read-committed transaction, committing when fn returns
// nil and rolling back otherwise.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, fn)
}

// micro is prebuilds.Micro; every timestamp written goes through it.
func micro(t time.Time) time.Time { return prebuilds.Micro(t) }

// nullTime maps the zero time to NULL and anything else to its microsecond
// value.
func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	m := micro(t)
	return &m
}

// timeOf reads a nullable timestamp back as UTC (zero when NULL).
func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// pgUUID and pgUUIDs convert IDs for query parameters. pgx encodes a
// github.com/google/uuid value through its driver.Valuer: formatted as text,
// parsed back and encoded, ~20 allocations per ID; pgtype.UUID is encoded
// directly. They matter where IDs are many (arrays) or calls hot.
func pgUUID(id uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: id, Valid: true} }

func pgUUIDs(ids []uuid.UUID) []pgtype.UUID {
	out := make([]pgtype.UUID, len(ids))
	for i, id := range ids {
		out[i] = pgUUID(id)
	}
	return out
}

// uuidDest is the scan destination for a non-null uuid column into id: the
// same bytes as a *[16]byte, which pgx fills from the binary value directly
// (scanning into *uuid.UUID goes through its sql.Scanner: text, then parsed).
func uuidDest(id *uuid.UUID) *[16]byte { return (*[16]byte)(id) }

// nullUUID maps uuid.Nil to NULL.
func nullUUID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

// params prepares a parameter map for a jsonb column (never NULL).
func params(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// paramsOf returns a parameter map read back, nil when empty.
func paramsOf(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// copyParams copies a map so that callers never share one.
func copyParams(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// ceilMicro rounds t up to the next microsecond. Stored timestamps are whole
// microseconds, so for any stored c: c >= t ⇔ c >= ceilMicro(t), and
// c < t ⇔ c < ceilMicro(t). Comparing against ceilMicro keeps comparisons
// exact when t carries nanoseconds.
func ceilMicro(t time.Time) time.Time {
	tr := t.UTC().Truncate(time.Microsecond)
	if tr.Before(t) {
		tr = tr.Add(time.Microsecond)
	}
	return tr
}
