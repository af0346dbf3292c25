// Package pgtest gives each test its own migrated PostgreSQL database
// (the order is in docs/spec.md, "Test databases").
//
// A package that uses it stops the server it may start from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// (or code := pgtest.Run(m); ...; os.Exit(code) when TestMain does more).
// A test then asks for a database:
//
//	dsn := pgtest.NewDatabase(t, migrator)  // postgres:// URL
//	pool := pgtest.NewPool(t, migrator)     // *pgxpool.Pool, closed in t.Cleanup
//
// Databases come from github.com/peterldowns/pgtestdb: one template database
// per migrator Hash, migrated once, and one cheap CREATE DATABASE ... TEMPLATE
// clone per test. The clone is dropped when the test passes and kept when it
// fails; its DSN is in the test log ("testdbconf: ...") for inspection while
// the server lives (a server this package started is stopped at the end).
// Clones are owned by pgtestdb's role pgtdbuser (NOSUPERUSER NOCREATEDB
// NOCREATEROLE), which is what migrations run as.
//
// # Where the server comes from
//
// The admin server is found once per test binary, on the first NewDatabase
// call, in this order:
//
//  1. PREBUILDKIT_TEST_DATABASE_URL: an admin (superuser) DSN, as a
//     postgres:// URL. Nothing is started or stopped.
//  2. Docker: a local engine answering on its unix socket (DOCKER_HOST if it
//     is unix://..., else /var/run/docker.sock; any other DOCKER_HOST disables
//     this source). The image is PREBUILDKIT_TEST_POSTGRES_IMAGE if set;
//     else the official postgres:18 if present; else
//     prebuildkit/postgres:15-local if present (built from Debian packages by
//     scripts/testcontainers.sh, for machines without a registry); else
//     postgres:18, pulled. A missing image named by the variable is pulled
//     too. The pull is bounded: the engine reports a registry it cannot
//     resolve or reach within seconds, must send its first progress message
//     within 15s and then one at least every minute, and the pull ends after
//     10 minutes. When the pull fails, one line says why and the next source
//     is tried. The container is run by the testcontainers-go Postgres module
//     with TESTCONTAINERS_RYUK_DISABLED=true and
//     TESTCONTAINERS_HOST_OVERRIDE=localhost set when unset, and its port is
//     published on 127.0.0.1 only, so this package dials only the socket and
//     loopback.
//  3. Local binaries: initdb and postgres from the newest
//     /usr/lib/postgresql/N/bin, else from PATH. A throwaway cluster is made
//     in a temp dir and served on a free 127.0.0.1 port with fsync=off and
//     similar settings for speed; as root it runs as the postgres user.
//  4. None: every test that asks for a database skips with one line saying
//     what was tried, unless CI is set (to anything but "", "0", "false",
//     "no"): then it fails.
//
// When nothing is forced and a source is available but fails to start, the
// next one is tried; if all fail the tests fail rather than skip.
//
// PREBUILDKIT_TEST_POSTGRES=dsn|docker|local forces one source; the tests fail
// if it is unavailable or does not start (a failed pull included), and never
// fall back. CI uses docker to prove the testcontainers path
// (scripts/testcontainers.sh).
//
// # PostgreSQL majors
//
// The tests of this repository have run on PostgreSQL 15 (all of them on local
// binaries; pgstore's and this package's through testcontainers on
// prebuildkit/postgres:15-local), 17.12 and 18.6 (pgstore's, the conformance
// suite included, and this package's, through testcontainers on images built
// by scripts/testcontainers.sh with PREBUILDKIT_PG_MAJOR=17 and 18 from Debian
// trixie and sid packages). The official postgres images, pulled, have not
// been run: the machines this repository is built on reach no container
// registry.
//
// A log line on stderr, "pgtest: started <server>" and "pgtest: stopped
// <server>", names a server this package started and stopped.
package pgtest
