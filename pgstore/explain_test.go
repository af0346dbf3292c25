package pgstore_test

import (
	"context"
	_ "embed"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/pgstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

//go:embed testdata/seed_fleet.sql
var seedFleetSQL string

// TestExplainSnapshot seeds 10,000 presets and 50,000 instances and logs
// EXPLAIN (ANALYZE, BUFFERS) of every snapshot query under both failure
// policies, the snapshot's wall time and a plain scan of the same tables,
// and requires the facts query to read latest builds through the
// (instance_id, number) index and the adaptive outcomes to be probes of the
// first-outcomes index. It takes
// about half a minute, so the default run skips it unless PGSTORE_EXPLAIN=1
// or CI is set (scripts/test.sh sets PGSTORE_EXPLAIN=1):
// go test -run ExplainSnapshot -v ./pgstore/.
func TestExplainSnapshot(t *testing.T) {
	if os.Getenv("PGSTORE_EXPLAIN") == "" && os.Getenv("CI") == "" {
		t.Skip("set PGSTORE_EXPLAIN=1 to seed a 10,000-preset fleet and EXPLAIN the snapshot")
	}
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.pool.Exec(ctx, seedFleetSQL)
	require.NoError(t, err)
	// Steady state: autovacuum has set the visibility map, so index-only
	// scans need no heap fetches.
	_, err = f.pool.Exec(ctx, "VACUUM ANALYZE")
	require.NoError(t, err)

	now := time.Date(2026, 3, 2, 10, 1, 0, 0, time.UTC)
	for _, policy := range []prebuilds.FailurePolicy{prebuilds.PolicyCoder, prebuilds.PolicyAdaptive} {
		p := explainParams(now, policy)
		for _, q := range pgstore.SnapshotQueries(p) {
			if policy == prebuilds.PolicyAdaptive && q.Name != "facts" && q.Name != "outcomes" {
				continue // the same as under PolicyCoder
			}
			err := pgx.BeginTxFunc(ctx, f.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, pgstore.SnapshotSetupSQL); err != nil {
					return err
				}
				rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+q.SQL, q.Args...)
				if err != nil {
					return err
				}
				lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					return err
				}
				plan := strings.Join(lines, "\n")
				t.Logf("EXPLAIN %s (%s):\n%s", q.Name, policy, plan)
				switch q.Name {
				case "facts":
					// The latest build of every instance streams from the
					// (instance_id, number) index. Whether the current-preset
					// side reads the same index with a filter or scans and
					// sorts depends on work_mem and statistics, so only the
					// latest-build side is asserted.
					require.Contains(t, plan, "Index Only Scan using builds_instance_number_key", "latest builds come from the index")
				case "outcomes":
					// Per preset, the newest success and the failures after it
					// are probes of the first-outcomes index, never a scan of
					// every first build ever made.
					require.Regexp(t, `Index (Only )?Scan using builds_first_outcomes_idx`, plan, "outcomes are index probes")
					require.NotContains(t, plan, "Seq Scan on builds", "outcomes never scan the builds table")
				}
				return nil
			})
			require.NoError(t, err, q.Name)
		}
	}

	// Wall time of the whole snapshot through the Store under each policy,
	// against a plain scan that fetches both big tables.
	var scanTimes []time.Duration
	for range 5 {
		start := time.Now()
		for _, table := range []string{"instances", "builds"} {
			rows, err := f.pool.Query(ctx, "SELECT * FROM "+table)
			require.NoError(t, err)
			for rows.Next() {
			}
			require.NoError(t, rows.Err())
		}
		scanTimes = append(scanTimes, time.Since(start))
	}
	for _, policy := range []prebuilds.FailurePolicy{prebuilds.PolicyCoder, prebuilds.PolicyAdaptive} {
		var snapTimes []time.Duration
		var snap *prebuilds.GlobalSnapshot
		for range 5 {
			start := time.Now()
			acquired, err := f.s.WithReconciliationLock(ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
				var err error
				snap, err = r.Snapshot(ctx, explainParams(now, policy))
				return err
			})
			require.NoError(t, err)
			require.True(t, acquired)
			snapTimes = append(snapTimes, time.Since(start))
		}
		require.Len(t, snap.Presets, 10_000)
		// Every preset of the fleet has a succeeded first build; 7.5% of
		// the instances have a first build still in progress, created
		// before StuckBefore.
		require.NotEmpty(t, snap.Stuck)
		if policy == prebuilds.PolicyAdaptive {
			require.Len(t, snap.Proven, 10_000)
			require.Empty(t, snap.Backoffs)
		} else {
			require.Empty(t, snap.Proven)
		}
		t.Logf("snapshot (%s): presets=%d running=%d in_progress=%d pending_inactive=%d backoffs=%d streaks=%d proven=%d hard_limited=%d stuck=%d counters=%d",
			policy, len(snap.Presets), len(snap.Running), len(snap.InProgress), len(snap.PendingInactive), len(snap.Backoffs),
			len(snap.Streaks), len(snap.Proven), len(snap.HardLimited), len(snap.Stuck), len(snap.Counters))
		t.Logf("snapshot wall time (%s, median of 5): %v", policy, median(snapTimes))
	}
	t.Logf("plain scan of instances+builds (median of 5): %v", median(scanTimes))
}

// explainParams are the snapshot parameters of the EXPLAIN test: lookback
// 1h, K 3, build timeout 30s.
func explainParams(now time.Time, policy prebuilds.FailurePolicy) prebuilds.SnapshotParams {
	return prebuilds.SnapshotParams{
		Now: now, Lookback: now.Add(-time.Hour), HardLimit: 3, Policy: policy, StuckBefore: now.Add(-30 * time.Second),
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
