package pgtest

import (
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
