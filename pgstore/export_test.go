package pgstore

import "github.com/prebuildkit/prebuildkit/prebuilds"

// ExplainQuery is one snapshot query with the arguments the store passes it.
type ExplainQuery struct {
	Name string
	SQL  string
	Args []any
}

// SnapshotQueries exposes the snapshot's SQL to the EXPLAIN test: the
// queries a snapshot with parameters p runs, with their arguments.
func SnapshotQueries(p prebuilds.SnapshotParams) []ExplainQuery {
	qs := []snapshotQuery{
		{"paused", snapshotPausedSQL, nil},
		{"presets", snapshotPresetsSQL, nil},
		{"schedules", snapshotSchedulesSQL, nil},
		factsQuery(p),
	}
	if p.Policy.Resolved() == prebuilds.PolicyAdaptive {
		qs = append(qs, outcomesQuery(p))
	}
	qs = append(qs, snapshotQuery{"counters", snapshotCountersSQL, nil})
	out := make([]ExplainQuery, len(qs))
	for i, q := range qs {
		out[i] = ExplainQuery{Name: q.name, SQL: q.sql, Args: q.args}
	}
	return out
}

// SnapshotSetupSQL is the statement a snapshot transaction starts with.
const SnapshotSetupSQL = snapshotSetupSQL

// PendingJobsSQL exposes PendingJobs' query ($1 limit) to the index test.
const PendingJobsSQL = pendingJobsSQL
