package pgstore

import (
	"context"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// ExplainQuery is one snapshot query with the arguments the store passes it.
type ExplainQuery struct {
	Name string
	SQL  string
	Args []any
}

// SnapshotQueries exposes the snapshot's SQL to the EXPLAIN test: the
// queries a snapshot with parameters p runs, with their arguments, after
// the statements SnapshotSetup returns.
func SnapshotQueries(p prebuilds.SnapshotParams) []ExplainQuery {
	var out []ExplainQuery
	for _, q := range snapshotQueries(p) {
		if q.name != "setup" {
			out = append(out, ExplainQuery{Name: q.name, SQL: q.sql, Args: q.args})
		}
	}
	return out
}

// SnapshotSetup lists the statements a snapshot transaction with
// parameters p starts with.
func SnapshotSetup(p prebuilds.SnapshotParams) []string {
	var out []string
	for _, q := range snapshotQueries(p) {
		if q.name == "setup" {
			out = append(out, q.sql)
		}
	}
	return out
}

// PendingJobsSQL exposes PendingJobs' query ($1 limit) to the index test.
const PendingJobsSQL = pendingJobsSQL

// ShardSQL is the shard expression of the snapshot filter (template t).
const ShardSQL = shardSQL

// SystemOwnerSQL is the literal the claim's SQL names SystemOwner by.
const SystemOwnerSQL = systemOwnerSQL

// ClaimTwoStep is the claim pgstore made before its one-statement claim,
// kept for the benchmark that compares them.
func ClaimTwoStep(ctx context.Context, s *Store, p prebuilds.ClaimParams) (prebuilds.Instance, error) {
	inst, err := s.claimTwoStep(ctx, p)
	if err != nil {
		return prebuilds.Instance{}, opError("claim", "preset "+p.PresetID.String(), err)
	}
	return inst, nil
}

// Channel is the store's NOTIFY channel.
func (s *Store) Channel() string { return s.channel }

// ParsePayload reads a change feed payload.
func ParsePayload(payload string) prebuilds.Change { return parsePayload(payload) }

// ShardKey is the advisory key pair of a shard's lock (ok false for the
// cluster-wide lock or an invalid shard).
func (s *Store) ShardKey(shard prebuilds.Shard) (k1, k2 int32, ok bool) {
	k, err := s.shardKey(shard)
	if err != nil || !k.pair {
		return 0, 0, false
	}
	return k.k1, k.k2, true
}

// LockRow is how pg_locks shows the lock of shard (the cluster-wide lock
// for the zero shard): classid, objid, objsubid.
func (s *Store) LockRow(shard prebuilds.Shard) []int64 {
	k, err := s.shardKey(shard)
	if err != nil {
		return nil
	}
	classid, objid, objsubid := k.pgLocks()
	return []int64{classid, objid, int64(objsubid)}
}
