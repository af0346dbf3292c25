package pgtest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/quartz"
	"github.com/stretchr/testify/require"
)

// fakeEngine serves h on a unix socket, as a Docker engine would, and
// returns the socket's path.
func fakeEngine(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	// Socket paths are limited to about 100 bytes: t.TempDir() can be longer.
	dir, err := os.MkdirTemp("", "pgtest-engine-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(h)
	_ = srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return sock
}

// progress writes one progress message of a pull and flushes it.
func progress(w http.ResponseWriter, msg string) {
	_, _ = fmt.Fprintln(w, msg)
	w.(http.Flusher).Flush()
}

func newMock(t *testing.T) *quartz.Mock {
	return quartz.NewMock(t).WithLogger(quartz.NoOpLogger)
}

// waitCtx bounds a wait for something the code under test must do at once,
// so that a bug fails the test instead of hanging it.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPullImageAnswers(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		handler http.HandlerFunc
		wantErr []string // substrings; none: success
	}{
		{
			name: "registry name does not resolve",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusInternalServerError)
				_, _ = w.Write([]byte(`{"message":"Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io on 10.0.0.53:53: no such host"}`))
			},
			wantErr: []string{"HTTP 500", "lookup registry-1.docker.io", "no such host"},
		},
		{
			name: "image unknown to the registry",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(http.StatusNotFound)
				_, _ = w.Write([]byte(`{"message":"manifest for postgres:18 not found"}`))
			},
			wantErr: []string{"HTTP 404", "manifest for postgres:18 not found"},
		},
		{
			name: "download fails midway",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				progress(w, `{"status":"Pulling from library/postgres","id":"18"}`)
				progress(w, `{"status":"Downloading","progressDetail":{"current":1,"total":9},"id":"abc"}`)
				progress(w, `{"errorDetail":{"message":"read tcp: connection reset by peer"},"error":"read tcp: connection reset by peer"}`)
			},
			wantErr: []string{"connection reset by peer"},
		},
		{
			name: "pulled",
			handler: func(w http.ResponseWriter, _ *http.Request) {
				progress(w, `{"status":"Pulling from library/postgres","id":"18"}`)
				progress(w, `{"status":"Pull complete","id":"abc"}`)
				progress(w, `{"status":"Status: Downloaded newer image for postgres:18"}`)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var gotMethod, gotPath, gotImage string
			sock := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
				gotMethod, gotPath, gotImage = r.Method, r.URL.Path, r.URL.Query().Get("fromImage")
				tt.handler(w, r)
			})
			err := pullImage(t.Context(), newMock(t), sock, "postgres:18")
			require.Equal(t, http.MethodPost, gotMethod)
			require.Equal(t, "/images/create", gotPath)
			require.Equal(t, "postgres:18", gotImage)
			if len(tt.wantErr) == 0 {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tt.wantErr {
				require.Contains(t, err.Error(), want)
			}
		})
	}
}

// silentUntilCanceled answers nothing until the client gives up.
func silentUntilCanceled(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

func TestPullImageNoAnswer(t *testing.T) {
	t.Parallel()

	ctx := waitCtx(t)
	clock := newMock(t)
	trap := clock.Trap().AfterFunc("pull", "answer")
	defer trap.Close()
	sock := fakeEngine(t, silentUntilCanceled)

	errc := make(chan error, 1)
	go func() { errc <- pullImage(ctx, clock, sock, "postgres:18") }()
	trap.MustWait(ctx).MustRelease(ctx)

	// Nothing happens before the bound...
	clock.Advance(pullAnswerTimeout - time.Millisecond).MustWait(ctx)
	select {
	case err := <-errc:
		t.Fatalf("pull ended before its bound: %v", err)
	default:
	}
	// ...and the pull ends at it, saying why.
	clock.Advance(time.Millisecond).MustWait(ctx)
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		t.Fatal("pull did not end at its bound")
	}
	require.ErrorContains(t, err, "no answer from the engine within 15s")
}

func TestPullImageStalls(t *testing.T) {
	t.Parallel()

	ctx := waitCtx(t)
	clock := newMock(t)
	stallSet := clock.Trap().AfterFunc("pull", "stall")
	defer stallSet.Close()
	stallReset := clock.Trap().TimerReset("pull", "stall")
	defer stallReset.Close()
	second := make(chan struct{})
	sock := fakeEngine(t, func(w http.ResponseWriter, r *http.Request) {
		progress(w, `{"status":"Pulling from library/postgres","id":"18"}`)
		select {
		case <-second:
		case <-r.Context().Done():
			return
		}
		progress(w, `{"status":"Downloading","progressDetail":{"current":1,"total":9},"id":"abc"}`)
		<-r.Context().Done()
	})

	errc := make(chan error, 1)
	go func() { errc <- pullImage(ctx, clock, sock, "postgres:18") }()
	// The first message arms the stall bound.
	stallSet.MustWait(ctx).MustRelease(ctx)
	clock.Advance(pullStallTimeout - time.Second).MustWait(ctx)
	// A second message restarts it: the pull survives past the first bound.
	close(second)
	stallReset.MustWait(ctx).MustRelease(ctx)
	clock.Advance(pullStallTimeout - time.Second).MustWait(ctx)
	select {
	case err := <-errc:
		t.Fatalf("pull ended while it made progress: %v", err)
	default:
	}
	clock.Advance(time.Second).MustWait(ctx)
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		t.Fatal("pull did not end at its bound")
	}
	require.ErrorContains(t, err, "no progress for 1m0s")
}

// TestPullFallbackRealEngine runs the whole selection against the Docker
// engine of this machine, when there is one, with an image whose registry
// is a closed port on loopback: the engine's pull must fail at once with
// the refused connection, and the tests must go on with local binaries;
// forced Docker must fail instead. Only loopback is dialled.
func TestPullFallbackRealEngine(t *testing.T) {
	if _, why := probeDocker(t.Context()); why != "" {
		t.Skipf("no Docker engine: %s", why)
	}
	if _, why := findLocalBinaries(); why != "" {
		t.Skipf("no local binaries to fall back to: %s", why)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedPort := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	image := fmt.Sprintf("127.0.0.1:%d/prebuildkit/absent:18", closedPort)

	t.Setenv(EnvDatabaseURL, "")
	t.Setenv(EnvImage, image)

	t.Run("falls back to local binaries", func(t *testing.T) {
		t.Setenv(EnvSource, "")
		var logs []string
		began := time.Now()
		srv, dec := resolve(t.Context(), func(line string) { logs = append(logs, line) })
		t.Logf("resolve took %s; logged:\n%s", time.Since(began).Round(time.Millisecond), strings.Join(logs, "\n"))
		require.NotNil(t, srv, "decision: %+v", dec)
		t.Cleanup(func() { require.NoError(t, srv.stop(context.Background())) })
		require.Equal(t, sourceLocal, dec.Source)
		require.Contains(t, srv.desc, "local cluster")

		var fallback []string
		for _, line := range logs {
			if strings.Contains(line, "falling back") {
				fallback = append(fallback, line)
			}
		}
		require.Len(t, fallback, 1, "logged: %q", logs)
		// The engine's own error, not one of the bounds: it failed at once.
		require.Contains(t, fallback[0], "pgtest: Docker failed: pull "+image)
		require.Contains(t, fallback[0], "connection refused")
		require.Contains(t, fallback[0], "falling back to local PostgreSQL binaries")
	})

	t.Run("forced docker fails", func(t *testing.T) {
		t.Setenv(EnvSource, "docker")
		var logs []string
		srv, dec := resolve(t.Context(), func(line string) { logs = append(logs, line) })
		require.Nil(t, srv)
		require.True(t, dec.Fail)
		require.Contains(t, dec.Message, EnvSource+"=docker")
		require.Contains(t, dec.Message, "connection refused")
		for _, line := range logs {
			require.NotContains(t, line, "falling back")
			require.NotContains(t, line, "pgtest: started")
		}
	})
}
