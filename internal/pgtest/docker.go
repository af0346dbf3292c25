package pgtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coder/quartz"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
)

const (
	// defaultDockerSocket is where a local engine listens when DOCKER_HOST is unset.
	defaultDockerSocket = "/var/run/docker.sock"
	// dockerProbeTimeout bounds every request this package sends to the engine.
	dockerProbeTimeout = 2 * time.Second
	// containerStartTimeout bounds starting the container and waiting for it,
	// after any pull.
	containerStartTimeout = 2 * time.Minute
)

// Bounds of an image pull. A registry that cannot be resolved or refuses the
// connection makes the engine answer with an error within seconds; these
// catch the engine that says nothing (a registry that drops packets) and a
// download that stops.
const (
	// pullAnswerTimeout bounds the wait for the engine's first progress
	// message, which it sends once the registry has served the manifest.
	pullAnswerTimeout = 15 * time.Second
	// pullStallTimeout bounds the gap between two progress messages.
	pullStallTimeout = time.Minute
	// pullTimeout bounds the whole pull.
	pullTimeout = 10 * time.Minute
)

// Labels put on containers this package starts, so that a later test binary
// can remove the containers of one that died without tear-down.
const (
	labelPID  = "prebuildkit.pgtest.pid"
	labelHost = "prebuildkit.pgtest.host"
)

// dockerSocket returns the unix socket of the local engine, or why Docker
// must not be used: only a local unix socket is ever dialled.
func dockerSocket() (string, string) {
	host := strings.TrimSpace(os.Getenv("DOCKER_HOST"))
	if host == "" {
		return defaultDockerSocket, ""
	}
	if path, ok := strings.CutPrefix(host, "unix://"); ok && path != "" {
		return path, ""
	}
	return "", fmt.Sprintf("DOCKER_HOST=%s is not a local unix socket", host)
}

// dockerAPI talks to the engine over its local unix socket only.
type dockerAPI struct {
	client *http.Client
}

func newDockerAPI(sock string) *dockerAPI {
	return &dockerAPI{client: &http.Client{
		Timeout:   dockerProbeTimeout,
		Transport: unixTransport(sock),
	}}
}

// unixTransport dials sock whatever the request's host.
func unixTransport(sock string) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
		DisableKeepAlives: true,
	}
}

func (d *dockerAPI) close() { d.client.CloseIdleConnections() }

// do sends a request and returns the status code and body.
func (d *dockerAPI) do(ctx context.Context, method, path string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, dockerProbeTimeout)
	defer cancel()
	// The host part is ignored: the transport dials the unix socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://docker"+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, body, err
}

// probeDocker reports the image to run and whether it must be pulled, or why
// Docker is unavailable: the engine must answer /_ping on its local unix
// socket. Whether a pull works is only known when it is tried.
func probeDocker(ctx context.Context) (plan imagePlan, why string) {
	sock, why := dockerSocket()
	if why != "" {
		return imagePlan{}, why
	}
	if _, err := os.Stat(sock); err != nil {
		return imagePlan{}, fmt.Sprintf("no Docker socket at %s", sock)
	}
	api := newDockerAPI(sock)
	defer api.close()

	if code, _, err := api.do(ctx, http.MethodGet, "/_ping"); err != nil || code != http.StatusOK {
		return imagePlan{}, fmt.Sprintf("Docker at %s does not answer: %s", sock, describe(code, err))
	}

	named := strings.TrimSpace(os.Getenv(EnvImage))
	candidates := []string{DefaultImage, localImage}
	if named != "" {
		candidates = []string{named}
	}
	present := map[string]bool{}
	for _, img := range candidates {
		code, _, err := api.do(ctx, http.MethodGet, "/images/"+url.PathEscape(img)+"/json")
		if err != nil {
			return imagePlan{}, fmt.Sprintf("Docker at %s: inspect image %s: %v", sock, img, err)
		}
		present[img] = code == http.StatusOK
	}
	return chooseImage(named, present), ""
}

// pullImage has the engine at sock pull ref and waits until it is done,
// within the bounds above (clock measures them). The error is the engine's
// own when it gives one: for an unreachable registry it names the DNS failure
// or the refused connection.
func pullImage(ctx context.Context, clock quartz.Clock, sock, ref string) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	answer := clock.AfterFunc(pullAnswerTimeout, func() {
		cancel(fmt.Errorf("no answer from the engine within %s (registry unreachable?)", pullAnswerTimeout))
	}, "pull", "answer")
	defer answer.Stop()
	total := clock.AfterFunc(pullTimeout, func() {
		cancel(fmt.Errorf("not finished within %s", pullTimeout))
	}, "pull", "total")
	defer total.Stop()
	var stall *quartz.Timer
	defer func() {
		if stall != nil {
			stall.Stop()
		}
	}()
	// failed prefers the reason a timer gave to the error it caused.
	failed := func(err error) error {
		if cause := context.Cause(ctx); ctx.Err() != nil && cause != nil {
			return cause
		}
		return err
	}

	client := &http.Client{Transport: unixTransport(sock)}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost,
		"http://docker/images/create?fromImage="+url.QueryEscape(ref), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return failed(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("engine answered HTTP %d: %s", resp.StatusCode, engineMessage(body))
	}
	// The body is a stream of JSON progress messages; a failure during the
	// download arrives as a message with an error.
	dec := json.NewDecoder(resp.Body)
	for {
		var msg struct {
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return failed(fmt.Errorf("read progress: %w", err))
		}
		if msg.ErrorDetail.Message != "" {
			return errors.New(msg.ErrorDetail.Message)
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
		if stall == nil {
			answer.Stop()
			stall = clock.AfterFunc(pullStallTimeout, func() {
				cancel(fmt.Errorf("no progress for %s", pullStallTimeout))
			}, "pull", "stall")
		} else {
			stall.Reset(pullStallTimeout, "pull", "stall")
		}
	}
}

// engineMessage extracts the message of an engine's error body.
func engineMessage(body []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return e.Message
	}
	return strings.TrimSpace(string(body))
}

func describe(code int, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("HTTP %d", code)
}

// sweepStaleContainers removes containers labelled by a test binary of this
// host that no longer runs. Failures are ignored: a leftover container is
// only litter.
func sweepStaleContainers(ctx context.Context, sock, host string) {
	api := newDockerAPI(sock)
	defer api.close()
	filters := url.QueryEscape(`{"label":["` + labelPID + `"]}`)
	code, body, err := api.do(ctx, http.MethodGet, "/containers/json?all=1&filters="+filters)
	if err != nil || code != http.StatusOK {
		return
	}
	var list []struct {
		ID     string            `json:"Id"`
		Labels map[string]string `json:"Labels"`
	}
	if json.Unmarshal(body, &list) != nil {
		return
	}
	for _, c := range list {
		if c.Labels[labelHost] != host {
			continue
		}
		pid, err := strconv.Atoi(c.Labels[labelPID])
		if err != nil || pid <= 0 || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		code, _, err := api.do(ctx, http.MethodDelete, "/containers/"+url.PathEscape(c.ID)+"?force=1&v=1")
		if err == nil && code < 300 {
			fmt.Fprintf(os.Stderr, "pgtest: removed container %.12s left by dead test binary pid %d\n", c.ID, pid)
		}
	}
}

// configureTestcontainers pins testcontainers-go to the local engine and to
// loopback, unless the user set these variables: no reaper container (Main
// stops the container) and mapped ports reached on localhost instead of a
// gateway address.
func configureTestcontainers(sock string) {
	setDefaultEnv("TESTCONTAINERS_RYUK_DISABLED", "true")
	setDefaultEnv("TESTCONTAINERS_HOST_OVERRIDE", "localhost")
	setDefaultEnv("DOCKER_HOST", "unix://"+sock)
}

func setDefaultEnv(key, value string) {
	if _, ok := os.LookupEnv(key); !ok {
		_ = os.Setenv(key, value)
	}
}

// startContainer runs the planned image, pulled first if the plan says so,
// with the testcontainers-go Postgres module.
func startContainer(ctx context.Context, plan imagePlan, logf func(string)) (*adminServer, error) {
	image := plan.Image
	sock, why := dockerSocket()
	if why != "" {
		return nil, errors.New(why)
	}
	configureTestcontainers(sock)
	host, _ := os.Hostname()
	sweepStaleContainers(ctx, sock, host)

	if plan.Pull {
		logf(fmt.Sprintf("pgtest: pulling %s (not present in Docker)", image))
		clock := quartz.NewReal()
		began := clock.Now()
		if err := pullImage(ctx, clock, sock, image); err != nil {
			return nil, fmt.Errorf("pull %s (gave up after %s): %w", image, clock.Since(began).Round(time.Millisecond), err)
		}
		logf(fmt.Sprintf("pgtest: pulled %s in %s", image, clock.Since(began).Round(time.Second)))
	}

	ctx, cancel := context.WithTimeout(ctx, containerStartTimeout)
	defer cancel()
	ctr, err := tcpostgres.Run(ctx, image,
		tcpostgres.WithDatabase("postgres"),
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword("postgres"),
		tcpostgres.WithSQLDriver(driverName),
		tcpostgres.BasicWaitStrategies(),
		testcontainers.WithLabels(map[string]string{
			labelPID:  strconv.Itoa(os.Getpid()),
			labelHost: host,
		}),
		// Publish on loopback only, not on every interface of the host.
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{network.MustParsePort("5432/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1")}}}
		}),
		testcontainers.WithCmdArgs(
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
			"-c", "max_connections=400",
		),
	)
	if err != nil {
		if ctr != nil {
			_ = testcontainers.TerminateContainer(ctr)
		}
		return nil, fmt.Errorf("run container %s: %w", image, err)
	}
	stop := func(ctx context.Context) error {
		return testcontainers.TerminateContainer(ctr, testcontainers.StopContext(ctx))
	}
	dsn, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		_ = stop(ctx)
		return nil, fmt.Errorf("connection string of container %s: %w", image, err)
	}
	conf, err := parseAdminURL(dsn)
	if err != nil {
		_ = stop(ctx)
		return nil, fmt.Errorf("connection string of container %s: %w", image, err)
	}
	if !isLoopback(conf.Host) {
		_ = stop(ctx)
		return nil, fmt.Errorf("container %s is mapped to %s, not loopback (TESTCONTAINERS_HOST_OVERRIDE=%s)",
			image, conf.Host, os.Getenv("TESTCONTAINERS_HOST_OVERRIDE"))
	}
	return &adminServer{
		conf: conf,
		desc: fmt.Sprintf("testcontainers postgres image=%s at %s", image, hostPort(conf)),
		stop: stop,
	}, nil
}

// isLoopback reports whether host names the loopback interface.
func isLoopback(host string) bool {
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
