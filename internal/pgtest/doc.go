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
//     this source) with the image already present. The image is
//     PREBUILDKIT_TEST_POSTGRES_IMAGE, or else postgres:15 if present, or else
//     prebuildkit/postgres:15-local (built by scripts/testcontainers.sh). This
//     package never pulls images. The container is run by the
//     testcontainers-go Postgres module with TESTCONTAINERS_RYUK_DISABLED=true
//     and TESTCONTAINERS_HOST_OVERRIDE=localhost set when unset, so only the
//     socket and loopback are dialled.
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
// if it is unavailable. CI uses docker to prove the testcontainers path
// (scripts/testcontainers.sh).
//
// A log line on stderr, "pgtest: started <server>" and "pgtest: stopped
// <server>", names a server this package started and stopped.
package pgtest
