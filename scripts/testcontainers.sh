#!/usr/bin/env bash
# Proves the testcontainers path of internal/pgtest: makes sure a local Docker
# engine answers, makes sure a Postgres image exists locally (built with
# debootstrap from Debian packages, since no container registry is reachable),
# then runs the given Go packages with PREBUILDKIT_TEST_POSTGRES=docker so that
# every test database comes from a testcontainers-go Postgres container, and
# checks from pgtest's log lines that they did, on the expected major.
#
# Usage: scripts/testcontainers.sh [go test flags and packages...]
#        scripts/testcontainers.sh prepare   (only engine + image, no tests)
#   Packages default to ./internal/pgtest/ ./pgstore/...; package patterns
#   whose directory does not exist yet are dropped with a note. Arguments that
#   start with '-' are passed to go test as flags (give values with '=', as
#   in -run=TestX); -timeout defaults to 20m as in scripts/test.sh.
#
# Environment:
#   PREBUILDKIT_PG_MAJOR             PostgreSQL major of the image built here: 15 (default,
#                                    Debian bookworm), 17 (trixie) or 18 (sid); the image
#                                    is prebuildkit/postgres:<major>-local.
#   PREBUILDKIT_TEST_POSTGRES_IMAGE  image to use instead (default prebuildkit/postgres:<major>-local);
#                                    only that default is built here, any other must exist.
#   PREBUILDKIT_REBUILD_IMAGE=1      rebuild the image from scratch.
#   PREBUILDKIT_DOCKERD_LOG          dockerd log when started here (default /var/log/prebuildkit-dockerd.log).
#
# Exits non-zero when Docker cannot be made to answer, the image cannot be
# built, a test fails, or no package actually used the testcontainers path.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

major=${PREBUILDKIT_PG_MAJOR:-15}
case "$major" in
15) suite=bookworm ;;
17) suite=trixie ;;
18) suite=sid ;;
*)
	printf 'testcontainers.sh: error: PREBUILDKIT_PG_MAJOR=%s: only 15, 17 and 18 can be built here\n' "$major" >&2
	exit 1
	;;
esac
default_image=prebuildkit/postgres:$major-local
image=${PREBUILDKIT_TEST_POSTGRES_IMAGE:-$default_image}
entrypoint_src=$repo/scripts/docker-postgres/entrypoint.sh
dockerd_log=${PREBUILDKIT_DOCKERD_LOG:-/var/log/prebuildkit-dockerd.log}

log() { printf 'testcontainers.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s; }

as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_packages() {
	local missing=()
	command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
	command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
	# The docker CLI may exist without the engine; docker.io brings both.
	if [ "${#missing[@]}" -gt 0 ]; then
		log "installing ${missing[*]}"
		as_root apt-get update -qq
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
	fi
	command -v docker >/dev/null 2>&1 || die "docker CLI missing after installing docker.io"
}

docker_answers() { timeout 10 docker info >/dev/null 2>&1; }

ensure_dockerd() {
	if [ -n "${DOCKER_HOST:-}" ] && [[ $DOCKER_HOST != unix://* ]]; then
		die "DOCKER_HOST=$DOCKER_HOST is not a local unix socket; only the local engine may be used"
	fi
	if docker_answers; then
		return
	fi
	log "starting dockerd (log: $dockerd_log)"
	as_root mkdir -p "$(dirname "$dockerd_log")"
	# setsid + nohup: dockerd outlives this script on purpose (reused by later runs).
	as_root setsid nohup dockerd >>"$dockerd_log" 2>&1 </dev/null &
	local deadline=$(($(now) + 60))
	until docker_answers; do
		if [ "$(now)" -ge "$deadline" ]; then
			tail -n 30 "$dockerd_log" >&2 || true
			die "dockerd did not answer 'docker info' within 60s"
		fi
		sleep 1
	done
	log "dockerd is up"
}

# Debian mirror this machine uses for bookworm (deb822 .sources or one-line
# .list), default deb.debian.org; the other suites come from the same mirror.
debian_mirror() {
	local f uri
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { if ($(i+1) == "bookworm") print $i; break } }' "$f" | head -n1)
		if [ -n "$uri" ]; then echo "$uri"; return; fi
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		uri=$(awk '
			/^[[:space:]]*$/ { if (u != "" && s ~ /(^| )bookworm( |$)/) { print u; exit } u = ""; s = ""; next }
			/^URIs:/ { u = $2 } /^Suites:/ { $1 = ""; s = $0 " " }
			END { if (u != "" && s ~ /(^| )bookworm( |$)/) print u }' "$f" | head -n1)
		if [ -n "$uri" ]; then echo "$uri"; return; fi
	done
	echo http://deb.debian.org/debian
}

entrypoint_sha() { sha256sum "$entrypoint_src" | cut -c1-16; }

image_entrypoint_sha() {
	docker image inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$image" 2>/dev/null |
		sed -n 's/^PREBUILDKIT_ENTRYPOINT_SHA=//p'
}

image_changes=(
	--change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]'
	--change 'CMD ["postgres"]'
	--change "ENV PATH=/usr/lib/postgresql/$major/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	--change 'ENV PGDATA=/var/lib/postgresql/data'
	--change 'ENV LANG=C.UTF-8'
	--change 'EXPOSE 5432'
)

build_image() {
	local mirror rootfs start sha
	sha=$(entrypoint_sha)
	mirror=$(debian_mirror)
	rootfs=$(mktemp -d /var/tmp/prebuildkit-pg-rootfs.XXXXXX)
	build_rootfs=$rootfs
	trap 'as_root rm -rf "$build_rootfs"' EXIT
	start=$(now)
	log "building $image: debootstrap $suite with postgresql-$major from $mirror into $rootfs"
	if ! as_root debootstrap --variant=minbase --include="postgresql-$major" "$suite" "$rootfs" "$mirror" \
		>"$rootfs.debootstrap.log" 2>&1; then
		tail -n 30 "$rootfs.debootstrap.log" >&2
		die "debootstrap failed (log: $rootfs.debootstrap.log)"
	fi
	rm -f "$rootfs.debootstrap.log"
	as_root install -m 0755 "$entrypoint_src" "$rootfs/usr/local/bin/docker-entrypoint.sh"
	# Drop what the image never uses: Debian's own cluster, apt caches and lists.
	as_root rm -rf "$rootfs/var/lib/postgresql/$major" "$rootfs/etc/postgresql/$major" \
		"$rootfs/var/cache/apt/archives/"*.deb "$rootfs/var/lib/apt/lists/"*
	as_root mkdir -p "$rootfs/var/lib/postgresql/data" "$rootfs/run/postgresql" "$rootfs/docker-entrypoint-initdb.d"
	as_root chroot "$rootfs" chown postgres:postgres /var/lib/postgresql/data /run/postgresql
	as_root tar -C "$rootfs" -c . | docker import "${image_changes[@]}" \
		--change "ENV PREBUILDKIT_ENTRYPOINT_SHA=$sha" - "$image" >/dev/null
	as_root rm -rf "$rootfs"
	trap - EXIT
	log "built $image in $(($(now) - start))s"
}

# Swap in a changed entrypoint without repeating debootstrap.
refresh_entrypoint() {
	local cid sha
	sha=$(entrypoint_sha)
	log "updating the entrypoint of $image"
	cid=$(docker create --entrypoint /bin/true "$image")
	docker cp "$entrypoint_src" "$cid:/usr/local/bin/docker-entrypoint.sh"
	docker commit "${image_changes[@]}" --change "ENV PREBUILDKIT_ENTRYPOINT_SHA=$sha" "$cid" "$image" >/dev/null
	docker rm "$cid" >/dev/null
}

ensure_image() {
	if [ "$image" != "$default_image" ]; then
		docker image inspect "$image" >/dev/null 2>&1 ||
			die "image $image is not present locally and only $default_image can be built here"
		return
	fi
	if [ "${PREBUILDKIT_REBUILD_IMAGE:-}" = 1 ] || ! docker image inspect "$image" >/dev/null 2>&1; then
		build_image
	elif [ "$(image_entrypoint_sha)" != "$(entrypoint_sha)" ]; then
		refresh_entrypoint
	else
		log "reusing image $image"
	fi
}

if [ "${1:-}" = prepare ]; then
	ensure_packages
	ensure_dockerd
	ensure_image
	exit 0
fi

# Split arguments into go test flags and package patterns; drop patterns
# whose directory does not exist (yet).
flags=()
pkgs=()
for arg in "$@"; do
	case "$arg" in
	-*) flags+=("$arg") ;;
	*) pkgs+=("$arg") ;;
	esac
done
if [ "${#pkgs[@]}" -eq 0 ]; then
	pkgs=(./internal/pgtest/ ./pgstore/...)
fi
# The same bound as scripts/test.sh unless one is given: go test's default of
# 10 minutes is less than pgstore's suite needs through a container on a
# loaded 2-core machine.
case " ${flags[*]-} " in
*" -timeout"*) ;;
*) flags+=(-timeout 20m) ;;
esac
existing=()
for p in "${pkgs[@]}"; do
	dir=${p%/...}
	if [ -d "$dir" ]; then
		existing+=("$p")
	else
		log "skipping $p: $dir does not exist"
	fi
done
[ "${#existing[@]}" -gt 0 ] || die "none of the packages exist: ${pkgs[*]}"

ensure_packages
ensure_dockerd
ensure_image

export PREBUILDKIT_TEST_POSTGRES=docker
export PREBUILDKIT_TEST_POSTGRES_IMAGE=$image
export TESTCONTAINERS_RYUK_DISABLED=true
export TESTCONTAINERS_HOST_OVERRIDE=localhost
unset PREBUILDKIT_TEST_DATABASE_URL

out=$(mktemp /tmp/prebuildkit-testcontainers.XXXXXX.log)
log "go test -count=1 -v ${flags[*]} ${existing[*]} (full output: $out)"
start=$(now)
set +e
go test -count=1 -v "${flags[@]}" "${existing[@]}" >"$out" 2>&1
rc=$?
set -e
elapsed=$(($(now) - start))

# Summary: package results, failures and pgtest's own lines.
grep -E '^(ok|FAIL|---|panic:|pgtest:|\?)' "$out" | grep -v -- '--- PASS' || true
if [ "$rc" -ne 0 ]; then
	log "go test failed after ${elapsed}s; last lines of $out:"
	tail -n 60 "$out" >&2
	exit "$rc"
fi

# Forced mode fails instead of skipping, so a package that uses pgtest cannot
# pass without a container; still require that at least one did start one.
started=$(grep -c '^pgtest: started testcontainers postgres' "$out" || true)
tested=$(grep -cE '^ok[[:space:]]' "$out" || true)
if [ "$started" -eq 0 ]; then
	die "no test used the testcontainers path (no 'pgtest: started testcontainers postgres' line)"
fi
# The image built here must have served the major it was built for.
if [ "$image" = "$default_image" ]; then
	other=$(grep '^pgtest: started testcontainers postgres' "$out" | grep -v ", PostgreSQL $major\." || true)
	[ -z "$other" ] || die "expected PostgreSQL $major from $image, got: $other"
fi
log "testcontainers path ($image) used by $started of $tested tested package(s); go test took ${elapsed}s"
