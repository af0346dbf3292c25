package pgstore

// SnapshotQueries exposes the snapshot's SQL to the EXPLAIN test, with the
// number of parameters each takes ($1 SystemOwner, $2 lookback, $3 K).
var SnapshotQueries = []struct {
	Name   string
	SQL    string
	Params int
}{
	{"paused", snapshotPausedSQL, 0},
	{"presets", snapshotPresetsSQL, 0},
	{"schedules", snapshotSchedulesSQL, 0},
	{"facts", snapshotFactsSQL, 3},
	{"counters", snapshotCountersSQL, 0},
}

// PendingJobsSQL exposes PendingJobs' query ($1 limit) to the index test.
const PendingJobsSQL = pendingJobsSQL
