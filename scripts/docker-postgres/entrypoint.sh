#!/bin/sh
# Entrypoint of the locally built images prebuildkit/postgres:<major>-local (see
# scripts/testcontainers.sh). It behaves like the official postgres image as far
# as the testcontainers-go Postgres module relies on it:
#
#   - POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required) and
#     POSTGRES_DB (default: the user) are honoured on the first start;
#   - the cluster is initialised on the first start, a temporary server (unix
#     socket only) creates the database and runs /docker-entrypoint-initdb.d/*
#     (*.sql, *.sh), then stops, so "database system is ready to accept
#     connections" is logged twice before the real server is up;
#   - "postgres -c fsync=off ..." (or bare "-c ..." options) start the real
#     server listening on 0.0.0.0:5432 with password (scram-sha-256) auth;
#     any other command is executed as given.
set -eu

# The image holds one major's server binaries.
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
PGDATA=${PGDATA:-/var/lib/postgresql/data}
SOCKDIR=/run/postgresql
export PGDATA PATH="$PGBIN:$PATH"

case "${1:-postgres}" in
-*) set -- postgres "$@" ;;
esac
if [ "$#" -eq 0 ]; then
	set -- postgres
fi
if [ "$1" != postgres ]; then
	exec "$@"
fi
shift

# Drop root: prepare directories, then re-execute as the postgres user.
if [ "$(id -u)" = 0 ]; then
	mkdir -p "$PGDATA" "$SOCKDIR"
	chown -R postgres:postgres "$PGDATA" "$SOCKDIR"
	chmod 700 "$PGDATA"
	exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ]; then
		echo "entrypoint: POSTGRES_PASSWORD must be set and non-empty" >&2
		exit 1
	fi
	user=${POSTGRES_USER:-postgres}
	db=${POSTGRES_DB:-$user}

	pwfile=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 \
		-E UTF8 --locale=C --no-sync
	rm -f "$pwfile"

	printf '%s\n' "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
	printf '%s\n' "listen_addresses = '*'" "unix_socket_directories = '$SOCKDIR'" \
		>>"$PGDATA/postgresql.conf"

	# Temporary server: no TCP listener, so nobody connects before set-up ends.
	pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -c unix_socket_directories=$SOCKDIR" start

	psql_cmd() {
		psql -v ON_ERROR_STOP=1 -X -q -h "$SOCKDIR" -U "$user" "$@"
	}
	if [ "$db" != postgres ]; then
		printf 'CREATE DATABASE :"db";\n' | psql_cmd -d postgres -v db="$db"
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		[ -e "$f" ] || continue
		case "$f" in
		*.sql) echo "entrypoint: running $f"; psql_cmd -d "$db" -f "$f" ;;
		*.sh) echo "entrypoint: running $f"; sh "$f" ;;
		*) echo "entrypoint: ignoring $f" ;;
		esac
	done

	pg_ctl -D "$PGDATA" -m fast -w stop
	echo "entrypoint: initialisation complete"
fi

exec postgres -D "$PGDATA" "$@"
