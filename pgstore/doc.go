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
// # Shards
//
// Store implements prebuilds.ShardLocker. WithShardLock takes and releases
// the lock of one shard with the same code as WithReconciliationLock (same
// reader, same release guarantees), on a lock of its own per (Count,
// Index): pg_try_advisory_lock(int4, int4) with the store's lock key folded
// to 32 bits (its two halves XORed) and Count<<16 | Index. That two-key
// space never meets the bigint keys of the cluster-wide and migration
// locks. The zero shard (Count ≤ 1) is the cluster-wide lock; an invalid
// shard, or a Count above MaxShards (65,535), is ErrInvalidArgument.
//
// Store also implements prebuilds.ShardPassLog, in the table shard_passes
// (migration 0006): one row per (lock key, Count, Index), created by the
// shard's first pass, holding the passes begun and the newest completed.
// BeginShardPass is one upsert, CompleteShardPass one update that only
// raises the completed number, ShardPassesBegun one read of a Count's rows.
// Replicas share the log when they share the lock key.
//
// The snapshot is a handful of set-based queries sent in one batch: the
// pause switch, the configured presets with their templates, their
// schedules, one "facts" query that computes every live prebuild's latest
// build once (DISTINCT ON streams from the builds index) and joins its
// current preset (instances.preset_id, below), and derives running,
// in-progress, pending-inactive and stuck rows from it, and the cumulative
// counters. Under PolicyCoder the facts query
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
// # Filtered snapshots and preset pools
//
// A filtered snapshot (SnapshotParams.Presets, SnapshotParams.Shard) runs
// the same queries restricted to the selected presets: by primary key when
// Presets is set, by the shard of their template (prebuilds.ShardOf, in SQL
// ('x' || substr(t.id::text, 1, 8))::bit(32)::int8 % count) when Shard is.
// It reads only the selected presets' rows: the facts query walks each
// selected preset's pool in instances_pool_idx and reads each member's
// latest build with one probe of the builds index, the counters count the
// presets' first builds through builds_preset_idx, and the outcomes are the
// same per-preset probes. Its transaction sets plan_cache_mode to
// force_custom_plan, so that every filtered query is planned for its
// selection. At 10,000 presets and 50,000 instances a one-preset snapshot
// reads a few dozen buffers (TestExplainSnapshot), whatever the fleet's
// size.
//
// A preset's pool is found through instances.preset_id, the instance's
// current preset (the preset of its most recent start build that has one),
// which the store writes in the same statement or transaction as the build
// that sets it: CreatePrebuilds, CreateInstance and StartBuild (under the
// instance row lock). instances_pool_idx indexes it for live prebuilds,
// oldest first. Anything else that writes builds must keep it too (the
// benchmark loader, bench/pgfleet, does). Migration 0005 adds the column
// and fills it from the builds, adds the pool index, and rebuilds
// builds_preset_idx over every transition, in one transaction and without
// CONCURRENTLY: its ALTER TABLE and DROP INDEX take ACCESS EXCLUSIVE locks
// on instances and builds, so every read and write of them (claims and
// snapshots included) waits until it commits. On a large database run it
// in a maintenance window, or set lock_timeout and retry.
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
// Claim is one statement, one round trip: it walks the preset's pool in
// claim order (instances_pool_idx), locks each candidate in turn with FOR
// NO KEY UPDATE SKIP LOCKED, re-checks its latest build with
// prebuildkit_running, a VOLATILE function and so a read with a new
// snapshot (a delete build committed after the statement began, but before
// the lock, would otherwise go unseen), transfers the first that passes,
// counts a miss when none does, and notifies the change feed. A row another
// transaction changed after the statement began is re-checked by
// PostgreSQL itself once locked. DeletePrebuild, StartBuild, UpdateJob,
// CancelPending and FailStuckBuild lock the instance row first too, so a
// claimed instance is never deleted and exactly one of a racing claim and
// delete wins.
//
// # Change feed
//
// Store implements prebuilds.ChangeFeed with LISTEN/NOTIFY on one channel
// per lock key (prebuildkit_changes_<key in hex>). pg_notify runs in the
// transaction, usually in the very statement, of each write that is a
// change, so a notification is delivered only when, and once, the write
// commits: a claim, hit or miss (claimed); a job update to a terminal
// status (job_completed); CreateInstance and StartBuild (build_started);
// RemoveInstance (instance_removed), each naming the instance's current
// preset, the preset its first build counts for when it was created as a
// prebuild, and for StartBuild its preset before the build too; an upsert,
// invalidation or reset of a preset (preset_written); and SetActiveVersion,
// SetTemplateDeprecated and DeleteTemplate (preset_written for every
// configured preset of the template, or, when it has more than 1,000, one
// resync, so that a write never queues thousands of notifications).
// Resuming reconciliation (SetPaused(false)) is a resync. The Reconciler's
// own writes (CreatePrebuilds, DeletePrebuild, CancelPending,
// SetPresetStatus, FailStuckBuild) notify nothing. A payload is
// "<kind>:<preset id>" or "resync".
//
// Changes LISTENs on a dedicated connection per call: taken from the pool
// and hijacked, so it does not count against the pool's MaxConns and never
// serves another caller, but is made with the pool's configuration
// (application_name included). It returns once the LISTEN is in place;
// the changes committed after that are delivered, coalesced per preset
// while the reader falls behind (the latest kind wins), so a slow reader
// holds back neither the connection nor the server's notification queue.
// The connection is pinged after 30 seconds without a notification. When
// it breaks (pg_terminate_backend, a server restart, a network failure)
// notifications may be lost while nobody listens: the feed connects again,
// at once and then after a backoff doubling from 50ms to 5s while attempts
// fail, and once it listens again it delivers a resync, which the
// Reconciler answers with a full pass. A payload it does not recognise
// (another version's kind, garbage) is a resync too. When ctx is done the
// channel is closed after the feed's goroutines have ended and its
// connection is closed.
package pgstore
