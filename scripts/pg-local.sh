#!/usr/bin/env bash
# Throwaway local PostgreSQL server for the tests, shared by every test binary
# of one run (internal/pgtest otherwise starts one cluster per binary).
#
# Usage:
#   env=$(scripts/pg-local.sh start) && eval "$env"   # exports PREBUILDKIT_TEST_DATABASE_URL
#   scripts/pg-local.sh stop
#   scripts/pg-local.sh status                        # exit 0 if running
#
# start prints one line on stdout, `export PREBUILDKIT_TEST_DATABASE_URL=...`
# (everything else goes to stderr); when a server recorded in the state file
# is already running it prints the same line again. The cluster lives in a
# fresh temp dir, listens on a free 127.0.0.1 port only, runs as the postgres
# user when started as root, and trades durability for speed (fsync=off).
# stop shuts it down and removes its dir; stopping nothing is not an error.
#
# Environment:
#   PG_BIN                     server binaries (default /usr/lib/postgresql/15/bin)
#   PREBUILDKIT_PG_LOCAL_STATE state file (default ${TMPDIR:-/tmp}/prebuildkit-pg-local.state)
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
state=${PREBUILDKIT_PG_LOCAL_STATE:-${TMPDIR:-/tmp}/prebuildkit-pg-local.state}
run_as=postgres

log() { printf 'pg-local.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# as_pg runs a command as the cluster owner (postgres when we are root).
as_pg() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "$run_as" -- "$@"
	else
		"$@"
	fi
}

# read_state sets dir, port, pid from the state file; fails if there is none.
read_state() {
	[ -f "$state" ] || return 1
	dir=$(sed -n 's/^dir=//p' "$state")
	port=$(sed -n 's/^port=//p' "$state")
	pid=$(sed -n 's/^pid=//p' "$state")
	[ -n "$dir" ] && [ -n "$port" ] && [ -n "$pid" ]
}

running() {
	read_state || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 2
}

dsn() { printf 'postgres://postgres@127.0.0.1:%s/postgres?sslmode=disable' "$1"; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

random_port() { echo $((20000 + RANDOM % 40000)); }

cmd_start() {
	if running; then
		log "already running on 127.0.0.1:$port (dir $dir)"
		echo "export PREBUILDKIT_TEST_DATABASE_URL='$(dsn "$port")'"
		return
	fi
	if read_state; then
		log "removing stale state (pid $pid, dir $dir)"
		rm -rf "$dir"
		rm -f "$state"
	fi
	for b in initdb pg_ctl postgres pg_isready; do
		[ -x "$PG_BIN/$b" ] || die "$PG_BIN/$b not found: install postgresql-15 (apt-get install -y postgresql-15) or set PG_BIN"
	done
	if [ "$(id -u)" = 0 ]; then
		id "$run_as" >/dev/null 2>&1 || die "running as root and there is no '$run_as' user to run PostgreSQL as"
	fi

	dir=$(mktemp -d /tmp/prebuildkit-pg-local.XXXXXX)
	if [ "$(id -u)" = 0 ]; then
		chown "$run_as:" "$dir"
	fi
	if ! as_pg "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
		>"$dir/initdb.log" 2>&1; then
		tail -n 20 "$dir/initdb.log" >&2
		rm -rf "$dir"
		die "initdb failed"
	fi

	local attempt
	for attempt in 1 2 3 4 5; do
		port=$(random_port)
		port_busy "$port" && continue
		if as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o \
			"-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=500" \
			start >/dev/null 2>&1; then
			pid=$(head -n1 "$dir/data/postmaster.pid")
			printf 'dir=%s\nport=%s\npid=%s\n' "$dir" "$port" "$pid" >"$state"
			log "started PostgreSQL on 127.0.0.1:$port (pid $pid, dir $dir)"
			echo "export PREBUILDKIT_TEST_DATABASE_URL='$(dsn "$port")'"
			return
		fi
		if ! grep -q 'Address already in use' "$dir/server.log" 2>/dev/null; then
			break
		fi
		log "port $port taken, retrying (attempt $attempt)"
	done
	tail -n 20 "$dir/server.log" >&2 || true
	rm -rf "$dir"
	die "could not start PostgreSQL"
}

cmd_stop() {
	if ! read_state; then
		log "not running (no state file $state)"
		return
	fi
	if kill -0 "$pid" 2>/dev/null; then
		if ! as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1; then
			log "fast shutdown failed, killing pid $pid"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -rf "$dir"
	rm -f "$state"
	log "stopped (dir $dir removed)"
}

cmd_status() {
	if running; then
		log "running on 127.0.0.1:$port (pid $pid, dir $dir)"
		echo "export PREBUILDKIT_TEST_DATABASE_URL='$(dsn "$port")'"
		return 0
	fi
	log "not running"
	return 1
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
status) cmd_status ;;
*) die "usage: $0 start|stop|status" ;;
esac
