#!/usr/bin/env bash
# Capacity benchmarks: runs the benchmarks of ./bench (planner), ./memstore
# and ./pgstore (bench.Run, the suite every store runs) with -count suitable
# for benchstat, keeps the raw output, and writes the report with the sizing
# table and the pass-latency chart (bench/cmd/benchreport).
#
# A full run (every benchmark, BENCH_COUNT >= 6, BENCH_TIME a duration)
# writes bench/results/raw-<stamp>.txt, bench/results/machine.txt,
# bench/results/benchstat.txt, bench/results/pass_latency.png, bench/REPORT.md
# and the sizing table in bench/doc.go: commit them together. Any other run
# (BENCH_FILTER, a smaller BENCH_COUNT, BENCH_TIME=Nx, BENCH_PACKAGES or
# BENCH_SCRATCH set) is partial: everything it writes goes to a new
# bench/results/scratch-<stamp>/ (git-ignored), and the committed report,
# results and documentation are not touched.
#
# Environment:
#   BENCH_COUNT    runs of each benchmark (default 6; benchstat wants >= 6
#                  for a confidence interval)
#   BENCH_TIME     -benchtime per run (default 1s)
#   BENCH_FILTER   -bench regexp (default .)
#   BENCH_PRESETS  fleet sizes of bench.Run's Snapshot and Pass benchmarks,
#                  e.g. 1000,10000,50000 (-bench.presets; default
#                  100,1000,5000,10000)
#   BENCH_PACKAGES packages to run (default "./bench/ ./memstore/ ./pgstore/";
#                  each must import package bench when BENCH_PRESETS is set)
#   BENCH_SCRATCH  non-empty: treat the run as partial whatever else is set
#   BENCH_TIMEOUT  go test -timeout (default 90m)
#   PREBUILDKIT_TEST_DATABASE_URL / PREBUILDKIT_TEST_POSTGRES
#                  where PostgreSQL comes from (see internal/pgtest)
#
# With the defaults it takes half an hour or more on 2 cores (the set took
# ~15 minutes before bench.Run added the churn and targeted passes and the
# control-plane restores between iterations). Compare two runs
# with: benchstat bench/results/raw-OLD.txt bench/results/raw-NEW.txt
set -euo pipefail
cd "$(dirname "$0")/.."

default_count=6
default_packages="./bench/ ./memstore/ ./pgstore/"
count=${BENCH_COUNT:-$default_count}
benchtime=${BENCH_TIME:-1s}
filter=${BENCH_FILTER:-.}
presets=${BENCH_PRESETS:-}
packages=${BENCH_PACKAGES:-$default_packages}
timeout=${BENCH_TIMEOUT:-90m}
stamp=$(date -u +%Y%m%dT%H%M%SZ)

step() { printf '\n== %s\n' "$*"; }

if ! [[ $count =~ ^[1-9][0-9]*$ ]]; then
	echo "BENCH_COUNT=$count is not a positive number" >&2
	exit 2
fi

# Why this run is partial, if it is.
partial=()
[ "$filter" != "." ] && partial+=("BENCH_FILTER='$filter'")
[ "$count" -lt "$default_count" ] && partial+=("BENCH_COUNT=$count < $default_count")
case $benchtime in *x) partial+=("BENCH_TIME=$benchtime") ;; esac
[ -n "${BENCH_PACKAGES:-}" ] && partial+=("BENCH_PACKAGES='$packages'")
[ -n "${BENCH_SCRATCH:-}" ] && partial+=("BENCH_SCRATCH set")
why=""
if [ ${#partial[@]} -gt 0 ]; then
	why=$(printf '%s, ' "${partial[@]}")
	why=${why%, }
	results=bench/results/scratch-$stamp
	report=$results/REPORT.md
	mkdir -p "$results"
	echo "partial run ($why): writing to $results/ only; bench/REPORT.md and the committed results are not touched"
else
	results=bench/results
	report=bench/REPORT.md
	mkdir -p "$results"
fi
raw="$results/raw-$stamp.txt"
machine="$results/machine.txt"

# benchstat comes from the module proxy; it is a tool, not a dependency of
# the module, so install it from outside the module (full runs only: a
# partial run uses it when present).
gobin=$(go env GOPATH)/bin
benchstat=$(command -v benchstat || true)
if [ -z "$benchstat" ] && [ -x "$gobin/benchstat" ]; then
	benchstat=$gobin/benchstat
fi
if [ -z "$benchstat" ] && [ -z "$why" ]; then
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

args=()
[ -n "$presets" ] && args+=("-bench.presets=$presets")
step "go test -bench '$filter' -benchtime $benchtime -count $count $packages ${args[*]:-} → $raw"
info=$(mktemp)
log=$(mktemp)
trap 'rm -f "$info" "$log"' EXIT
# pgtest announces the server it starts with "pgtest: ..." lines, which
# benchstat would read as a configuration change; keep them out of the raw
# output.
# shellcheck disable=SC2086 # $packages is a list
PREBUILDKIT_BENCH_INFO=$info go test -run '^$' -bench "$filter" -benchtime "$benchtime" -count "$count" \
	-timeout "$timeout" $packages ${args[@]+"${args[@]}"} 2>&1 | tee "$log" | grep -v '^pgtest: ' >"$raw" || {
	tail -50 "$log" >&2
	exit 1
}
cat "$raw"
if ! grep -q '^Benchmark.*ns/op' "$raw"; then
	echo "no benchmark matched BENCH_FILTER='$filter' in $packages; nothing to report (raw output: $raw)" >&2
	exit 1
fi
grep -m1 '^postgres:' "$info" >>"$machine" || echo "postgres: not measured" >>"$machine"

if [ -n "$benchstat" ]; then
	step "benchstat → $results/benchstat.txt"
	"$benchstat" "$raw" | tee "$results/benchstat.txt"
fi

step "report → $report"
reproduce="BENCH_COUNT=$count BENCH_TIME=$benchtime BENCH_FILTER='$filter'"
[ -n "$presets" ] && reproduce="$reproduce BENCH_PRESETS=$presets"
[ -n "${BENCH_PACKAGES:-}" ] && reproduce="$reproduce BENCH_PACKAGES='$packages'"
reproduce="$reproduce scripts/bench.sh"
if [ -n "${PREBUILDKIT_TEST_POSTGRES:-}" ]; then
	reproduce="PREBUILDKIT_TEST_POSTGRES=$PREBUILDKIT_TEST_POSTGRES $reproduce"
fi
report_args=(
	-out "$report"
	-chart "$results/pass_latency.png"
	-machine "$machine"
	-notes bench/NOTES.md
	-cmd "$reproduce"
)
if [ -n "$why" ]; then
	report_args+=(-partial "$why")
else
	report_args+=(-doc bench/doc.go)
fi
go run ./bench/cmd/benchreport "${report_args[@]}" "$raw"
if [ -n "$why" ]; then
	echo "partial run: wrote $results/ (bench/REPORT.md untouched)"
else
	echo "wrote $report, $results/ and the sizing table of bench/doc.go: commit them together, with README's worked example updated to the new figures (go test ./bench/cmd/benchreport checks it)"
fi
