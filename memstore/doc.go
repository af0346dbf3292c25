// Package memstore is the in-memory implementation of prebuilds.Store and
// prebuilds.ControlPlane: the embedded default, used by examples, fast tests
// and single-process deployments that do not need durability.
//
// The semantics are specified in docs/spec.md ("The snapshot", "Store
// operations"); memstore follows them exactly, and the conformance suite
// compares it with the reference model.
//
// # Consistency
//
// One mutex guards all state and every operation holds it from its first
// check to its last write, so each operation is atomic and serialisable, as
// if it were one transaction: CreatePrebuilds writes all its entries or
// none; Claim picks and takes a prebuild in one step, so concurrent claimers
// never get the same instance; DeletePrebuild re-checks ownership and the
// latest build in the same step as it writes, so a claimed prebuild is never
// deleted whatever the interleaving. A snapshot is computed in one critical
// section and is therefore one consistent read.
//
// Nothing returned aliases the store: presets, builds, jobs and snapshots
// are deep copies (an empty parameter map or schedule list comes back nil).
// Every stored timestamp is prebuilds.Micro of the input (UTC, microsecond
// precision); Claim judges expiry at Micro(Now). A snapshot echoes
// SnapshotParams.Now as given and compares created_at with Lookback as
// given (no rounding). The store never reads a clock.
//
// # Reconciliation lock
//
// The reconciliation lock is a separate mutex, only ever taken with TryLock:
// WithReconciliationLock returns (false, nil) at once when another caller
// holds it. It is scoped to one *Store, so several Reconcilers sharing a
// Store behave like replicas sharing a database, and exactly one of them
// reconciles at a time. Because it is distinct from the state mutex, fn may
// write through the Store while holding it. The lock is released when fn
// returns or panics; the SnapshotReader is valid only inside fn. The lock
// only excludes other reconcilers: control-plane operations (claims, job
// updates) proceed while it is held, each atomic on its own.
//
// # Complexity
//
// The store keeps indexes so that a snapshot costs O(presets + live
// prebuilds), never presets × instances: each instance keeps its builds by
// number (the latest build is the last one) and its current preset;
// SystemOwner-owned, not-deleted instances are indexed by current preset;
// the cumulative counters are maintained on write. Claimed and deleted
// instances therefore cost nothing in a snapshot. Ranking a preset's
// candidate builds for backoff sorts only that preset's builds. Claim scans
// the live prebuilds of one preset. PendingJobs sorts an index of the
// pending builds of not-deleted instances, maintained on every job update
// and deletion: O(P log P) for P pending jobs, never a scan of all builds.
// Other operations are O(1) apart from the name check of UpsertPreset
// (presets of one version). BenchmarkStore/Snapshot in this package
// (bench.Run) measures it from 100 to 10,000 presets (bench/REPORT.md).
//
// # Decisions where the contract is silent
//
// Beyond those every store shares (docs/spec.md, "Decisions"): snapshot
// rows come in preset insertion order, running prebuilds oldest
// first within a preset; callers must not rely on it (see
// prebuilds.SortSnapshot). CancelPending returns an empty, non-nil slice
// when nothing was canceled. Snapshot never fails inside fn; a negative
// HardLimit disables the hard limit like 0. Context cancellation is not
// observed: every operation completes without blocking on I/O.
package memstore
