#!/usr/bin/env bash
# Runs the tests under CPU load, to show that none of them depends on
# timing: one CPU burner per core (yes >/dev/null, stopped on exit) keeps
# every core busy while
#
#   1. scripts/test.sh runs STRESS_TEST_RUNS times in a row (default 3);
#   2. the lock, race and cancel tests of pgstore run -count=STRESS_COUNT
#      times (default 50) with -race;
#   3. the other tests that involve goroutines, clocks or a server (the
#      Reconciler's Run/Stop and pass tests, the conformance suite's
#      claim, lock and pending-job races on both stores, the pgstore replicas
#      test, internal/pgtest, cmd/prebuildsim) run -count=STRESS_HUNT_COUNT
#      times (default 5; 0 skips this phase).
#
# Every run is logged to a temporary directory, kept (and named) only when
# something failed. Exits non-zero when any run failed, after a summary of
# every run: result and duration.
set -euo pipefail
cd "$(dirname "$0")/.."

test_runs=${STRESS_TEST_RUNS:-3}
count=${STRESS_COUNT:-50}
hunt_count=${STRESS_HUNT_COUNT:-5}
cores=$(nproc)

# The lock, race and cancel tests of pgstore: the reconciliation lock
# between replicas (separate pools), its release after a canceled pass or a
# dropped connection, claim and delete races between replicas, snapshots
# under the lock, and the migration lock.
pgstore_lock_tests='^(TestLockExclusive|TestLockContention|TestLockReleasedOnCancel|TestLockReleasedWhenConnectionDrops|TestClaimExclusive|TestClaimVersusDelete|TestSnapshotSeesWritesUnderLock|TestSnapshotTransactionClosedWhileLockHeld|TestMigrateConcurrent)$'

logs=$(mktemp -d "${TMPDIR:-/tmp}/prebuildkit-stress.XXXXXX")
burners=()
failed=0
cleanup() {
	for pid in "${burners[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	wait "${burners[@]}" 2>/dev/null || true
	if [ "$failed" = 0 ]; then
		rm -rf "$logs"
	else
		echo "logs kept in $logs" >&2
	fi
}
trap cleanup EXIT

for _ in $(seq "$cores"); do
	yes >/dev/null &
	burners+=("$!")
done
echo "CPU burners: $cores × yes >/dev/null (pids ${burners[*]}); logs in $logs"

names=()
results=()
durations=()
# run NAME COMMAND...: runs the command with its output in a log file and
# records the result.
run() {
	local name=$1
	shift
	local log
	log="$logs/$(printf '%02d' "${#names[@]}")-$(echo "$name" | tr -c 'A-Za-z0-9' '_' | cut -c1-60).log"
	printf '\n== %s\n' "$name"
	local start=$SECONDS result
	if "$@" >"$log" 2>&1; then
		result=pass
	else
		result=FAIL
		failed=$((failed + 1))
		tail -n 40 "$log" >&2
		echo "(full output: $log)" >&2
	fi
	names+=("$name")
	results+=("$result")
	durations+=("$((SECONDS - start))")
	echo "$result in $((SECONDS - start))s"
}

for i in $(seq "$test_runs"); do
	run "scripts/test.sh (run $i of $test_runs)" scripts/test.sh
done

run "go test -race -count=$count -run '$pgstore_lock_tests' ./pgstore/" \
	go test -race -count="$count" -timeout 60m -run "$pgstore_lock_tests" ./pgstore/

if [ "$hunt_count" -gt 0 ]; then
	run "go test -race -count=$hunt_count ./prebuilds/ ./internal/pgtest/ ./cmd/prebuildsim/" \
		go test -race -count="$hunt_count" -timeout 60m ./prebuilds/ ./internal/pgtest/ ./cmd/prebuildsim/
	conformance_races='Conformance$/^(Claim|Lock|PendingJobs)$/'
	run "go test -race -count=$hunt_count -run '$conformance_races' ./conformance/ ./memstore/ ./pgstore/" \
		go test -race -count="$hunt_count" -timeout 60m -run "$conformance_races" ./conformance/ ./memstore/ ./pgstore/
	run "go test -race -count=$hunt_count -run '^TestReplicasUnderFaults$' ./pgstore/" \
		go test -race -count="$hunt_count" -timeout 60m -run '^TestReplicasUnderFaults$' ./pgstore/
fi

printf '\n== stress summary (%d CPU burners on %d cores)\n' "$cores" "$cores"
total=0
for i in "${!names[@]}"; do
	printf '%-5s %6ss  %s\n' "${results[$i]}" "${durations[$i]}" "${names[$i]}"
	total=$((total + durations[i]))
done
printf '%d runs: %d passed, %d failed; %ss in all\n' "${#names[@]}" "$((${#names[@]} - failed))" "$failed" "$total"
[ "$failed" = 0 ]
