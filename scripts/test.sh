#!/usr/bin/env bash
# The test command of the README. Runs on a fresh machine with Go and the
# PostgreSQL server binaries (Debian: postgresql-15): formatting, vet, the
# race-enabled test suite (pgstore against a real PostgreSQL, provisioned by
# internal/pgtest: PREBUILDKIT_TEST_DATABASE_URL, else Docker, else a
# throwaway local cluster), and a one-iteration smoke of every benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	printf 'gofmt would change:\n%s\n' "$unformatted" >&2
	exit 1
fi

step "go vet"
go vet ./...

# Install the PostgreSQL server binaries when missing, so pgstore tests run
# (they fail rather than skip when CI is set).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1 \
	&& [ -z "${PREBUILDKIT_TEST_DATABASE_URL:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	step "installing PostgreSQL server binaries"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
fi

step "go test -race ./..."
PGSTORE_EXPLAIN=1 go test -race -count=1 -timeout 20m ./...

step "benchmark smoke (-benchtime=1x)"
# Every benchmark once. The packages whose benchmarks run bench.Run take
# -bench.presets (after the package list): two small fleet sizes exercise
# every sub-benchmark in a fraction of the default sizes' time.
suite_pkgs="./bench/ ./memstore/ ./pgstore/"
# shellcheck disable=SC2046,SC2086 # word splitting of package lists
{
	go test -run '^$' -bench . -benchtime 1x -count=1 -timeout 20m \
		$(go list ./... | grep -v -x -e '.*/prebuildkit/bench' -e '.*/prebuildkit/memstore' -e '.*/prebuildkit/pgstore') &&
		go test -run '^$' -bench . -benchtime 1x -count=1 -timeout 20m $suite_pkgs -bench.presets=100,1000
} >/tmp/prebuildkit-bench-smoke.txt 2>&1 || {
	cat /tmp/prebuildkit-bench-smoke.txt >&2
	exit 1
}
grep -E '^(ok|FAIL|---)' /tmp/prebuildkit-bench-smoke.txt || true

step "all tests passed"
