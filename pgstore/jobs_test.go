package pgstore_test

import (
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/pgstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// TestPendingJobsUsesPartialIndex: the PendingJobs query can be answered in
// order from builds_pending_idx, stopping at the limit, with no sort and no
// scan of the builds table (both disabled for the planner here, so the
// test does not depend on table sizes).
func TestPendingJobsUsesPartialIndex(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p := f.preset(ptr(1))
	for i := range 20 {
		status := prebuilds.JobSucceeded
		if i%4 == 0 {
			status = prebuilds.JobPending
		}
		f.prebuild(p, t0.Add(time.Duration(i)*time.Second), status)
	}
	_, err := f.pool.Exec(f.ctx, "ANALYZE")
	require.NoError(t, err)

	var plan []string
	err = pgx.BeginTxFunc(f.ctx, f.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(f.ctx, "SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off"); err != nil {
			return err
		}
		rows, err := tx.Query(f.ctx, "EXPLAIN "+pgstore.PendingJobsSQL, int32(10))
		if err != nil {
			return err
		}
		plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	require.NoError(t, err)
	text := strings.Join(plan, "\n")
	require.Contains(t, text, "builds_pending_idx", "plan:\n%s", text)
	require.NotContains(t, text, "Sort", "plan:\n%s", text)

	jobs, err := f.s.PendingJobs(f.ctx, prebuilds.PendingJobsParams{Limit: 10})
	require.NoError(t, err)
	require.Len(t, jobs, 5)
	require.Equal(t, map[string]string{"size": "large"}, jobs[0].Parameters)
	require.Equal(t, p, jobs[0].PresetID)
}
