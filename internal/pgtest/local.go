package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/peterldowns/pgtestdb"
)

const (
	// localStartTimeout bounds initdb plus the wait for the server to accept
	// connections.
	localStartTimeout = 90 * time.Second
	// localPortAttempts is how often a start is retried when the free port
	// picked was taken in between.
	localPortAttempts = 5
	// localUser runs the cluster when the tests run as root.
	localUser = "postgres"
)

// localServerFlags make the throwaway cluster fast and loopback-only; the
// data is never worth keeping across a crash.
var localServerFlags = []string{
	"-c", "fsync=off",
	"-c", "synchronous_commit=off",
	"-c", "full_page_writes=off",
	"-c", "max_connections=400",
	"-c", "shared_buffers=128MB",
	"-c", "log_min_messages=warning",
	"-c", "log_connections=off",
}

// binGlob is where Debian-style packages install the server binaries.
const binGlob = "/usr/lib/postgresql/*/bin"

// findLocalBinaries returns a directory holding initdb and postgres, or why
// there is none. The newest /usr/lib/postgresql/N/bin wins over PATH.
func findLocalBinaries() (dir, why string) {
	return findBinaries(binGlob)
}

// findBinaries is findLocalBinaries with the versioned directories matched
// by glob.
func findBinaries(glob string) (dir, why string) {
	matches, _ := filepath.Glob(glob)
	sort.Slice(matches, func(i, j int) bool {
		return versionOf(matches[i]) > versionOf(matches[j])
	})
	for _, d := range matches {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, ""
		}
	}
	initdb, err := exec.LookPath("initdb")
	if err == nil {
		d := filepath.Dir(initdb)
		if isExecutable(filepath.Join(d, "postgres")) {
			return d, ""
		}
	}
	return "", fmt.Sprintf("no initdb and postgres under %s or on PATH", glob)
}

// versionOf extracts N from /usr/lib/postgresql/N/bin (0 if not a number).
func versionOf(binDir string) float64 {
	v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	if err != nil {
		return 0
	}
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// localCluster is a throwaway cluster in its own temp dir.
type localCluster struct {
	dir  string // temp dir: data/, server.log, unix socket
	cred *syscall.Credential
	cmd  *exec.Cmd
	done chan struct{} // closed when the server process has exited
	log  *os.File
}

// startLocal initialises and starts a cluster with the binaries in bin, as
// the postgres user when running as root.
func startLocal(ctx context.Context, bin string) (*adminServer, error) {
	ctx, cancel := context.WithTimeout(ctx, localStartTimeout)
	defer cancel()

	cred, err := unprivilegedCredential()
	if err != nil {
		return nil, err
	}
	base := tempBase(cred)
	sweepStaleClusters(base)
	dir, err := os.MkdirTemp(base, clusterDirPrefix)
	if err != nil {
		return nil, fmt.Errorf("local cluster: create temp dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("local cluster: write owner: %w", err)
	}
	c := &localCluster{dir: dir, cred: cred}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			_ = os.RemoveAll(dir)
			return nil, fmt.Errorf("local cluster: chown %s: %w", dir, err)
		}
	}
	if err := c.initdb(ctx, bin); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}

	var lastErr error
	for range localPortAttempts {
		port, err := freeLoopbackPort()
		if err != nil {
			lastErr = err
			break
		}
		conf := pgtestdb.Config{
			DriverName: driverName,
			Host:       "127.0.0.1",
			Port:       strconv.Itoa(port),
			User:       "postgres",
			Database:   "postgres",
			Options:    "sslmode=disable",
		}
		err = c.run(ctx, bin, port, conf)
		if err == nil {
			return &adminServer{
				conf: conf,
				desc: fmt.Sprintf("local cluster %s at %s (%s)", dir, hostPort(conf), bin),
				stop: c.stop,
			}, nil
		}
		lastErr = err
		if !errors.Is(err, errPortInUse) {
			break
		}
	}
	_ = os.RemoveAll(dir)
	return nil, lastErr
}

const (
	clusterDirPrefix = "pgtest-cluster-"
	// ownerFile in a cluster dir holds the pid of the test binary that made it.
	ownerFile = "owner.pid"
)

// sweepStaleClusters removes cluster dirs left by test binaries that died
// without tear-down (their server died with them: see Pdeathsig in run).
// Failures are ignored: a leftover dir is only litter.
func sweepStaleClusters(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, clusterDirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue // being created, or not ours
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(d)
		}
	}
}

// unprivilegedCredential returns the postgres user's credential when running
// as root (PostgreSQL refuses to run as root), nil otherwise.
func unprivilegedCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(localUser)
	if err != nil {
		return nil, fmt.Errorf("local cluster: running as root and cannot find user %q to run PostgreSQL as: %w", localUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("local cluster: uid of %q: %w", localUser, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("local cluster: gid of %q: %w", localUser, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// tempBase is the directory the cluster dir is made in: os.TempDir(), or
// /tmp when the server runs as another user who could not traverse it.
func tempBase(cred *syscall.Credential) string {
	base := os.TempDir()
	if cred == nil {
		return base
	}
	fi, err := os.Stat(base)
	if err != nil || fi.Mode().Perm()&0o001 == 0 {
		return "/tmp"
	}
	return base
}

func (c *localCluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if ctx != nil {
		cmd = exec.CommandContext(ctx, name, args...)
	} else {
		cmd = exec.Command(name, args...)
	}
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true}
	return cmd
}

func (c *localCluster) dataDir() string { return filepath.Join(c.dir, "data") }

func (c *localCluster) initdb(ctx context.Context, bin string) error {
	cmd := c.command(ctx, filepath.Join(bin, "initdb"),
		"-D", c.dataDir(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("local cluster: initdb in %s: %w: %s", c.dir, err, lastLines(out.String(), 5))
	}
	return nil
}

var errPortInUse = errors.New("port in use")

// run starts the server on port and waits until conf connects.
func (c *localCluster) run(ctx context.Context, bin string, port int, conf pgtestdb.Config) error {
	logPath := filepath.Join(c.dir, "server.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("local cluster: open %s: %w", logPath, err)
	}
	args := append([]string{
		"-D", c.dataDir(),
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + c.dir,
	}, localServerFlags...)
	// Not tied to ctx: the server outlives startLocal.
	cmd := c.command(nil, filepath.Join(bin, "postgres"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the test binary dies without tear-down, take the server with it.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return fmt.Errorf("local cluster: start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	c.cmd, c.done, c.log = cmd, done, logFile

	err = waitReady(ctx, conf.URL(), done)
	if err == nil {
		return nil
	}
	_ = c.kill()
	out, _ := os.ReadFile(logPath)
	tail := lastLines(string(out), 5)
	if strings.Contains(tail, "Address already in use") {
		return fmt.Errorf("local cluster: port %d: %w", port, errPortInUse)
	}
	return fmt.Errorf("local cluster: %w; server log: %s", err, tail)
}

// waitReady polls until dsn accepts a connection, the server exits, or ctx ends.
func waitReady(ctx context.Context, dsn string, exited <-chan struct{}) error {
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var lastErr error
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgconn.Connect(attemptCtx, dsn)
		cancel()
		if err == nil {
			return conn.Close(ctx)
		}
		lastErr = err
		select {
		case <-exited:
			return errors.New("postgres exited during start-up")
		case <-ctx.Done():
			return fmt.Errorf("postgres not ready: %w (last error: %v)", ctx.Err(), lastErr)
		case <-tick.C:
		}
	}
}

// stop shuts the server down (fast mode, then kill) and removes its dir.
func (c *localCluster) stop(ctx context.Context) error {
	var errs []error
	if c.cmd != nil {
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("fast shutdown timed out: %w", ctx.Err()))
			_ = c.kill()
		}
	}
	if c.log != nil {
		_ = c.log.Close()
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", c.dir, err))
	}
	return errors.Join(errs...)
}

// kill ends the server at once and waits for it.
func (c *localCluster) kill() error {
	if c.cmd == nil {
		return nil
	}
	err := c.cmd.Process.Kill()
	<-c.done
	if c.log != nil {
		_ = c.log.Close()
		c.log = nil
	}
	c.cmd = nil
	return err
}

// freeLoopbackPort asks the kernel for a free port on 127.0.0.1.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("local cluster: find a free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, fmt.Errorf("local cluster: unexpected listener address %v", l.Addr())
	}
	return addr.Port, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
