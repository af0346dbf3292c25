// Package pgstore is a PostgreSQL implementation of prebuilds.Store and
// prebuilds.ControlPlane on pgx/v5, for running several reconciler
// replicas against one database.
//
// # Usage
//
//	pool, err := pgxpool.New(ctx, "postgres://app@db/prebuilds")
//	if err != nil { ... }
//	if _, err := pgstore.Migrate(ctx, pool); err != nil { ... }
//	store := pgstore.New(pool)
//	rec := prebuilds.NewReconciler(store, cfg) // or use store as a ControlPlane
//
// Migrate applies the embedded, numbered SQL migrations that have not run
// yet, each in its own transaction, under a session advisory lock (so
// replicas starting together migrate once), and records them in the
// prebuildkit_migrations table; MigrateDown reverts them. Teams that run
// their own migration tool take the same files from Migrations()
// (NNNN_name.up.sql / NNNN_name.down.sql) instead. The tables (templates,
// template_versions, presets, preset_schedules, instances, builds,
// settings) and enum types are created in the connection's current schema:
// give pgstore its own database or set search_path in the pool's
// configuration.
//
// No template, version, preset, instance or build is ever deleted: a
// deleted template or instance is a flag, and history feeds the cumulative
// counters. Templates, versions and presets are permanent (a trigger rejects
// DELETE, TRUNCATE and UPDATE of id on them with SQLSTATE 23001), so
// instances and builds refer to them without foreign keys, whose per-row
// checks dominated the cost of a create; every write checks those
// references itself, in the same statement or transaction. Builds keep
// their foreign key to instances. Migration 0002, which made that change,
// rebuilds the unique index on builds under exclusive locks: on a large
// database run it in a maintenance window (or with lock_timeout, retrying).
//
// # Semantics
//
// The semantics are specified in docs/spec.md ("The snapshot", "Store
// operations"); every operation behaves as it says. Errors match the
// sentinels of package prebuilds (driver errors are translated once, at the
// package boundary: no rows → ErrNotFound, unique violation → ErrConflict,
// foreign-key violation → ErrNotFound, check violation → ErrInvalidArgument)
// and name the operation and key. Timestamps are written as
// prebuilds.Micro(t) into timestamptz columns and read back in UTC; no query
// calls now() for a decision: now, the backoff lookback, the build-timeout
// cut-off (StuckBefore) and the hard limit are parameters.
//
// WithReconciliationLock takes a session-level advisory lock
// (pg_try_advisory_lock, key DefaultLockKey or WithLockKey) on one pooled
// connection without blocking and holds it until fn returns. Each call of
// the reader's Snapshot begins a REPEATABLE READ READ ONLY transaction on
// that connection and commits it as soon as the snapshot has been read, so
// no transaction stays open, pinning xmin and holding back vacuum, while
// the pass writes; two Snapshot calls under one lock are two transactions
// and may see different states. The reader refuses use after fn returns.
// A snapshot transaction starts only after the lock is granted, so it sees
// every write the previous holder committed; a transaction-level lock
// taken by the snapshot transaction's own first statement could not
// promise that (the snapshot would be fixed before the lock was granted).
// Writes made under the lock use other connections of the pool, which must
// therefore allow at least two connections. The lock is released when fn
// returns, on a context that is not canceled, so that when
// WithReconciliationLock returns the next acquirer gets it. A connection
// whose unlock cannot be confirmed, or that died during fn (a failed
// snapshot rollback or commit, a broken network), is closed instead; the
// server frees the lock only when it ends that connection's backend, which
// happens after the client has closed, so WithReconciliationLock then waits,
// on another connection, until pg_locks no longer shows the backend holding
// the lock (at most 10 seconds, then it returns an error). Migrate and
// MigrateDown release the migration lock the same way.
//
// The snapshot is a handful of set-based queries sent in one batch: the
// pause switch, the configured presets with their templates, their
// schedules, one "facts" query that computes every live prebuild's latest
// build and current preset once (DISTINCT ON streams from the builds
// indexes) and derives running, in-progress, pending-inactive and stuck rows
// from it, and the cumulative counters. Under PolicyCoder the facts query
// also derives the backoff and hard-limit rows (C(P) ranked with
// row_number() over (partition by preset order by created_at desc, id
// desc)). Under PolicyAdaptive an "outcomes" query reads, per configured
// preset, the newest successful first build of a prebuild and the failures
// completed after it, as probes of the partial index
// builds_first_outcomes_idx (preset_id, job_status, completed_at desc, id
// desc, first builds that finished): streak, last_failed_at and proven come
// from at most 65 index entries per preset, however long the history of
// builds grows. The snapshot transaction runs with jit off: its queries are
// many cheap probes, which JIT compilation only slows down.
//
// FailStuckBuild locks the instance row, then the build, as UpdateJob does,
// and fails the build only if it is still a start build in progress created
// before StuckBefore on a live prebuild; a report racing it lands either
// before (FailStuckBuild gets ErrConflict) or after (UpdateJob gets
// ErrInvalidTransition). Migration 0004 adds the failure kind 'timeout' and
// builds builds_first_outcomes_idx without CONCURRENTLY (it blocks writes
// to builds while it is built); its down migration rebuilds the enum and
// turns timed-out builds into transient failures.
//
// PendingJobs is one statement that walks the partial index
// builds_pending_idx (created_at, id WHERE job_status = 'pending') in order,
// joins each build to its instance to skip deleted ones, and stops at the
// limit; the index holds only jobs no provisioner has taken yet.
//
// Claim locks the oldest candidate with FOR UPDATE SKIP LOCKED, then checks
// the criteria again in a new statement before transferring it: a delete
// build committed between the statement's snapshot and the lock would
// otherwise go unseen. DeletePrebuild, StartBuild, UpdateJob and
// CancelPending lock the instance row first too, so a claimed instance is
// never deleted and exactly one of a racing claim and delete wins.
package pgstore
