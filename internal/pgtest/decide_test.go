package pgtest

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDecide(t *testing.T) {
	t.Parallel()

	both := availability{Docker: true, Local: true}
	none := availability{DockerWhy: "no Docker socket at /var/run/docker.sock", LocalWhy: "no initdb"}
	tests := []struct {
		name     string
		sel      selection
		av       availability
		want     source
		wantFail bool
		contains string // in Message when no source is chosen
	}{
		{name: "dsn first", sel: selection{HaveDSN: true}, av: both, want: sourceDSN},
		{name: "dsn first in CI", sel: selection{HaveDSN: true, CI: true}, av: none, want: sourceDSN},
		{name: "docker before local", av: both, want: sourceDocker},
		{name: "local without docker", av: availability{Local: true}, want: sourceLocal},
		{name: "docker without local", av: availability{Docker: true}, want: sourceDocker},
		{name: "nothing skips", av: none, contains: "no initdb"},
		{name: "nothing fails in CI", sel: selection{CI: true}, av: none, wantFail: true, contains: EnvDatabaseURL},
		{name: "forced dsn", sel: selection{Forced: "dsn", HaveDSN: true}, av: both, want: sourceDSN},
		{name: "forced dsn missing fails", sel: selection{Forced: "dsn"}, av: both, wantFail: true, contains: EnvDatabaseURL},
		{name: "forced docker over dsn", sel: selection{Forced: "docker", HaveDSN: true}, av: both, want: sourceDocker},
		{name: "forced docker unavailable fails", sel: selection{Forced: "docker"}, av: availability{Local: true, DockerWhy: "no socket"}, wantFail: true, contains: "no socket"},
		{name: "forced docker unavailable fails outside CI", sel: selection{Forced: "docker", CI: false}, av: none, wantFail: true, contains: "docker"},
		{name: "forced local", sel: selection{Forced: "local", HaveDSN: true}, av: both, want: sourceLocal},
		{name: "forced local unavailable fails", sel: selection{Forced: "local"}, av: availability{Docker: true, LocalWhy: "no initdb"}, wantFail: true, contains: "no initdb"},
		{name: "unknown forced value fails", sel: selection{Forced: "podman"}, av: both, wantFail: true, contains: `"podman"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := decide(tt.sel, tt.av)
			require.Equal(t, tt.want, got.Source)
			require.Equal(t, tt.wantFail, got.Fail)
			if tt.want == sourceNone {
				require.Contains(t, got.Message, tt.contains)
				require.NotContains(t, got.Message, "\n", "skip/fail reason must be one line")
			} else {
				require.Empty(t, got.Message)
			}
		})
	}
}

func TestSelectionWants(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name string
		sel  selection
		want []source // sources to probe; the others must not be probed
	}{
		{name: "auto with dsn probes nothing", sel: selection{HaveDSN: true}, want: []source{sourceDSN}},
		{name: "auto without dsn", sel: selection{}, want: []source{sourceDocker, sourceLocal}},
		{name: "forced docker", sel: selection{Forced: "docker", HaveDSN: true}, want: []source{sourceDocker}},
		{name: "forced local", sel: selection{Forced: "local"}, want: []source{sourceLocal}},
		{name: "forced dsn", sel: selection{Forced: "dsn"}, want: []source{sourceDSN}},
		{name: "unknown", sel: selection{Forced: "x"}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []source
			for _, s := range []source{sourceDSN, sourceDocker, sourceLocal} {
				if tt.sel.wants(s) {
					got = append(got, s)
				}
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseCI(t *testing.T) {
	t.Parallel()

	for v, want := range map[string]bool{
		"": false, "0": false, "false": false, "FALSE": false, "no": false,
		"true": true, "1": true, "yes": true, "github": true,
	} {
		require.Equal(t, want, parseCI(v), "CI=%q", v)
	}
}

func TestChooseImage(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		named   string
		present []string
		want    imagePlan
	}{
		{name: "nothing present pulls the default", want: imagePlan{Image: DefaultImage, Pull: true}},
		{name: "default present", present: []string{DefaultImage, localImage}, want: imagePlan{Image: DefaultImage}},
		{name: "local image before a pull", present: []string{localImage}, want: imagePlan{Image: localImage}},
		{name: "named present", named: "postgres:16", present: []string{"postgres:16", DefaultImage}, want: imagePlan{Image: "postgres:16"}},
		{name: "named absent is pulled, not replaced", named: "postgres:16", present: []string{DefaultImage, localImage}, want: imagePlan{Image: "postgres:16", Pull: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			present := map[string]bool{}
			for _, img := range tt.present {
				present[img] = true
			}
			require.Equal(t, tt.want, chooseImage(tt.named, present))
		})
	}
}

func TestPick(t *testing.T) {
	t.Parallel()

	pullFailed := errors.New(`pull postgres:18: engine answered HTTP 500: Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host`)
	both := availability{Docker: true, Local: true}
	tests := []struct {
		name     string
		sel      selection
		av       availability
		fail     map[source]error // start errors; a source not listed starts
		want     source           // sourceNone: no server
		wantFail bool
		tried    []source
		logs     []string // substrings, one per logged line, in order
		contains []string // in the decision's message when no server
	}{
		{
			name: "pull fails, local taken with one line",
			av:   both, fail: map[source]error{sourceDocker: pullFailed},
			want: sourceLocal, tried: []source{sourceDocker, sourceLocal},
			logs: []string{"pgtest: Docker failed: pull postgres:18: engine answered HTTP 500: Get \"https://registry-1.docker.io/v2/\": dial tcp: lookup registry-1.docker.io: no such host; falling back to local PostgreSQL binaries"},
		},
		{
			name: "docker starts, local untouched",
			av:   both, want: sourceDocker, tried: []source{sourceDocker},
		},
		{
			name: "forced docker fails without falling back",
			sel:  selection{Forced: "docker"}, av: both, fail: map[source]error{sourceDocker: pullFailed},
			wantFail: true, tried: []source{sourceDocker},
			contains: []string{EnvSource + "=docker", "no fallback", "no such host"},
		},
		{
			name: "pull fails and nothing else: failure, no fallback line",
			av:   availability{Docker: true, LocalWhy: "no initdb"}, fail: map[source]error{sourceDocker: pullFailed},
			wantFail: true, tried: []source{sourceDocker},
			contains: []string{"no PostgreSQL server could be started", "Docker: pull postgres:18"},
		},
		{
			name: "both fail: failure names both, one fallback line",
			av:   both, fail: map[source]error{sourceDocker: pullFailed, sourceLocal: errors.New("initdb: exit status 1\nsecond line")},
			wantFail: true, tried: []source{sourceDocker, sourceLocal},
			logs:     []string{"falling back to local PostgreSQL binaries"},
			contains: []string{"Docker: pull postgres:18", "local PostgreSQL binaries: initdb: exit status 1 second line"},
		},
		{
			name: "dsn failure does not fall back",
			sel:  selection{HaveDSN: true}, av: both, fail: map[source]error{sourceDSN: errors.New("parse: bad URL")},
			wantFail: true, tried: []source{sourceDSN},
			contains: []string{EnvDatabaseURL, "bad URL"},
		},
		{
			name:     "nothing available skips without trying",
			av:       availability{DockerWhy: "no Docker socket", LocalWhy: "no initdb"},
			contains: []string{"no Docker socket", "no initdb"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var tried []source
			var logs []string
			srv, dec := pick(tt.sel, tt.av, func(src source) (*adminServer, error) {
				tried = append(tried, src)
				if err := tt.fail[src]; err != nil {
					return nil, err
				}
				return &adminServer{desc: string(src)}, nil
			}, func(line string) { logs = append(logs, line) })

			require.Equal(t, tt.tried, tried)
			require.Len(t, logs, len(tt.logs), "logged: %q", logs)
			for i, want := range tt.logs {
				require.Contains(t, logs[i], want)
				require.NotContains(t, logs[i], "\n")
			}
			require.Equal(t, tt.want, dec.Source)
			require.Equal(t, tt.wantFail, dec.Fail)
			if tt.want != sourceNone {
				require.NotNil(t, srv)
				require.Equal(t, string(tt.want), srv.desc)
				return
			}
			require.Nil(t, srv)
			require.NotContains(t, dec.Message, "\n")
			for _, c := range tt.contains {
				require.Contains(t, dec.Message, c)
			}
		})
	}
}
