#!/usr/bin/env bash
# Capacity benchmarks: runs ./bench with -count suitable for benchstat, keeps
# the raw output under bench/results/, and writes bench/REPORT.md and
# bench/results/pass_latency.png (bench/cmd/benchreport).
#
# Environment:
#   BENCH_COUNT    runs of each benchmark (default 6; benchstat wants >= 6
#                  for a confidence interval)
#   BENCH_TIME     -benchtime per run (default 1s)
#   BENCH_FILTER   -bench regexp (default .)
#   BENCH_TIMEOUT  go test -timeout (default 60m)
#   PREBUILDKIT_TEST_DATABASE_URL / PREBUILDKIT_TEST_POSTGRES
#                  where PostgreSQL comes from (see internal/pgtest)
#
# With the defaults it takes about 15 minutes on 2 cores. Compare two runs
# with: benchstat bench/results/raw-OLD.txt bench/results/raw-NEW.txt
set -euo pipefail
cd "$(dirname "$0")/.."

count=${BENCH_COUNT:-6}
benchtime=${BENCH_TIME:-1s}
filter=${BENCH_FILTER:-.}
timeout=${BENCH_TIMEOUT:-60m}
results=bench/results
mkdir -p "$results"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
raw="$results/raw-$stamp.txt"
machine="$results/machine.txt"

step() { printf '\n== %s\n' "$*"; }

# benchstat comes from the module proxy; it is a tool, not a dependency of
# the module, so install it from outside the module.
gobin=$(go env GOPATH)/bin
benchstat=$(command -v benchstat || true)
if [ -z "$benchstat" ] && [ -x "$gobin/benchstat" ]; then
	benchstat=$gobin/benchstat
fi
if [ -z "$benchstat" ]; then
	step "installing benchstat"
	if (cd "$(mktemp -d)" && GOFLAGS=-mod=mod go install golang.org/x/perf/cmd/benchstat@latest); then
		benchstat=$gobin/benchstat
	else
		echo "benchstat could not be installed; the report is written without it" >&2
	fi
fi

step "machine"
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "cores: $(nproc)"
	echo "ram: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
	echo "go: $(go env GOVERSION) $(go env GOOS)/$(go env GOARCH)"
	echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$machine"
cat "$machine"

step "go test -bench '$filter' -benchtime $benchtime -count $count ./bench/ → $raw"
info=$(mktemp)
# pgtest announces the server it starts with "pgtest: ..." lines, which
# benchstat would read as a configuration change; keep them out of the raw
# output.
PREBUILDKIT_BENCH_INFO=$info go test -run '^$' -bench "$filter" -benchtime "$benchtime" -count "$count" \
	-timeout "$timeout" ./bench/ ./memstore/ ./pgstore/ 2>&1 | tee "$raw.log" | grep -v '^pgtest: ' >"$raw" || {
	tail -50 "$raw.log" >&2
	exit 1
}
rm -f "$raw.log"
cat "$raw"
grep -m1 '^postgres:' "$info" >>"$machine" || echo "postgres: not measured" >>"$machine"
rm -f "$info"

if [ -n "$benchstat" ]; then
	step "benchstat → $results/benchstat.txt"
	"$benchstat" "$raw" | tee "$results/benchstat.txt"
fi

step "report → bench/REPORT.md"
reproduce="BENCH_COUNT=$count BENCH_TIME=$benchtime BENCH_FILTER='$filter' scripts/bench.sh"
if [ -n "${PREBUILDKIT_TEST_POSTGRES:-}" ]; then
	reproduce="PREBUILDKIT_TEST_POSTGRES=$PREBUILDKIT_TEST_POSTGRES $reproduce"
fi
go run ./bench/cmd/benchreport \
	-out bench/REPORT.md \
	-chart "$results/pass_latency.png" \
	-machine "$machine" \
	-notes bench/NOTES.md \
	-cmd "$reproduce" \
	"$raw"
echo "wrote bench/REPORT.md and $results/pass_latency.png"
