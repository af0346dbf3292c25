package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver pgtestdb uses
	"github.com/peterldowns/pgtestdb"
)

// driverName is the database/sql driver pgtestdb connects with.
const driverName = "pgx"

// stopTimeout bounds tear-down of a container or local cluster.
const stopTimeout = 60 * time.Second

// adminServer is a PostgreSQL server reachable with superuser rights.
type adminServer struct {
	conf pgtestdb.Config
	// desc names the server in log lines, e.g. "local cluster 127.0.0.1:5433".
	desc string
	// stop tears down what this package started; nil for a server it did not.
	stop func(context.Context) error
}

// provider holds the one admin server of this test binary.
type provider struct {
	mu       sync.Mutex
	resolved bool
	srv      *adminServer
	dec      decision
}

var (
	theProvider provider
	// mainUsed is set by Run: NewDatabase refuses to start a server that
	// nothing would stop.
	mainUsed atomic.Bool
)

// Main runs the tests of a package and tears down the server this package
// started, then exits with the tests' exit code. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	os.Exit(Run(m))
}

// Run is Main without os.Exit, for a TestMain that does more after the tests
// (goleak, say). It returns the exit code to pass to os.Exit; a failed
// tear-down turns a zero code into 1. Tear-down runs whatever the tests did.
func Run(m *testing.M) int {
	mainUsed.Store(true)
	code := m.Run()
	if err := theProvider.teardown(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// NewDatabase returns the DSN (a postgres:// URL) of a fresh database for
// this test, cloned from a template migrated by m. Templates are made once
// per migrator hash; the database is dropped when the test passes and kept
// (its DSN is logged) when it fails. The test skips, or fails, when no server
// is available (see the package documentation).
func NewDatabase(t testing.TB, m pgtestdb.Migrator) string {
	t.Helper()
	conf := adminConfig(t)
	inst := pgtestdb.Custom(t, conf, m)
	return inst.URL()
}

// NewPool is NewDatabase plus a pgxpool.Pool connected to the database,
// closed in t.Cleanup before the database is dropped.
func NewPool(t testing.TB, m pgtestdb.Migrator) *pgxpool.Pool {
	t.Helper()
	dsn := NewDatabase(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("pgtest: ping pool: %v", err)
	}
	return pool
}

// adminConfig returns the admin server's connection, resolving it on first
// use, or ends the test with a skip or a failure.
func adminConfig(t testing.TB) pgtestdb.Config {
	t.Helper()
	if !mainUsed.Load() {
		t.Fatalf("pgtest: call pgtest.Main(m) or pgtest.Run(m) from TestMain, so the server this package starts is stopped")
	}
	srv, dec := theProvider.get()
	if srv == nil {
		if dec.Fail {
			t.Fatal(dec.Message)
		}
		t.Skip(dec.Message)
	}
	return srv.conf
}

// get resolves the admin server once per test binary.
func (p *provider) get() (*adminServer, decision) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.resolved {
		p.srv, p.dec = resolve(context.Background(), logStderr)
		p.resolved = true
	}
	return p.srv, p.dec
}

// teardown stops the server if this package started one.
func (p *provider) teardown() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv == nil || p.srv.stop == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	err := p.srv.stop(ctx)
	if err != nil {
		return fmt.Errorf("stop %s: %w", p.srv.desc, err)
	}
	fmt.Fprintf(os.Stderr, "pgtest: stopped %s\n", p.srv.desc)
	p.srv = nil
	return nil
}

// readSelection reads the environment variables that steer the choice.
func readSelection() selection {
	return selection{
		Forced:  strings.TrimSpace(os.Getenv(EnvSource)),
		HaveDSN: strings.TrimSpace(os.Getenv(EnvDatabaseURL)) != "",
		CI:      parseCI(os.Getenv(EnvCI)),
	}
}

// resolve probes what the selection needs, decides, and starts the chosen
// server, falling back as pick describes. Lines about what it does go to logf.
func resolve(ctx context.Context, logf func(string)) (*adminServer, decision) {
	sel := readSelection()
	var av availability
	var plan imagePlan
	if sel.wants(sourceDocker) {
		plan, av.DockerWhy = probeDocker(ctx)
		av.Docker = av.DockerWhy == ""
	}
	if sel.wants(sourceLocal) {
		_, av.LocalWhy = findLocalBinaries()
		av.Local = av.LocalWhy == ""
	}
	srv, dec := pick(sel, av, func(src source) (*adminServer, error) {
		return start(ctx, src, plan, logf)
	}, logf)
	if srv != nil && srv.stop != nil {
		if v := serverVersion(ctx, srv.conf); v != "" {
			srv.desc += ", PostgreSQL " + v
		}
		logf("pgtest: started " + srv.desc)
	}
	return srv, dec
}

// logStderr is the logf of the test binary's own server.
func logStderr(line string) { fmt.Fprintln(os.Stderr, line) }

// serverVersion returns the server's version string, or "" if it cannot be
// read; it only decorates the "started" line.
func serverVersion(ctx context.Context, conf pgtestdb.Config) string {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, conf.URL())
	if err != nil {
		return ""
	}
	defer conn.Close(ctx)
	res := conn.ExecParams(ctx, "SHOW server_version", nil, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return ""
	}
	v, _, _ := strings.Cut(string(res.Rows[0][0]), " ")
	return v
}

// start brings up (or, for a DSN, just describes) the admin server.
func start(ctx context.Context, src source, plan imagePlan, logf func(string)) (*adminServer, error) {
	switch src {
	case sourceDSN:
		dsn := strings.TrimSpace(os.Getenv(EnvDatabaseURL))
		conf, err := parseAdminURL(dsn)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", EnvDatabaseURL, err)
		}
		return &adminServer{conf: conf, desc: "server from " + EnvDatabaseURL}, nil
	case sourceDocker:
		return startContainer(ctx, plan, logf)
	case sourceLocal:
		bin, why := findLocalBinaries()
		if why != "" {
			return nil, errors.New(why)
		}
		return startLocal(ctx, bin)
	}
	return nil, fmt.Errorf("unknown source %q", src)
}

// parseAdminURL turns a postgres:// URL into a pgtestdb.Config. User and
// password are kept URL-escaped because pgtestdb pastes them into a URL.
func parseAdminURL(dsn string) (pgtestdb.Config, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return pgtestdb.Config{}, fmt.Errorf("parse URL: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return pgtestdb.Config{}, fmt.Errorf("want a postgres:// or postgresql:// URL, got scheme %q", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return pgtestdb.Config{}, errors.New("URL has no host")
	}
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	user, password := "postgres", ""
	if u.User != nil {
		if name := u.User.Username(); name != "" {
			user = name
		}
		password, _ = u.User.Password()
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		db = "postgres"
	}
	return pgtestdb.Config{
		DriverName: driverName,
		Host:       host,
		Port:       port,
		User:       escapeUserinfo(user),
		Password:   escapeUserinfo(password),
		Database:   db,
		Options:    u.RawQuery,
	}, nil
}

// escapeUserinfo escapes s for the user or password part of a URL.
func escapeUserinfo(s string) string {
	// url.User escapes ':' as well, so the result is safe on either side of it.
	return url.User(s).String()
}

// hostPort joins host and port for log lines.
func hostPort(conf pgtestdb.Config) string {
	return net.JoinHostPort(strings.Trim(conf.Host, "[]"), conf.Port)
}
