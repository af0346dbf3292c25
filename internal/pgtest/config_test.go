package pgtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/peterldowns/pgtestdb"
	"github.com/stretchr/testify/require"
)

func TestParseAdminURL(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		dsn     string
		want    pgtestdb.Config
		wantURL string
		wantErr string
	}{
		{
			name:    "full",
			dsn:     "postgres://admin:secret@127.0.0.1:5433/postgres?sslmode=disable",
			want:    pgtestdb.Config{DriverName: "pgx", Host: "127.0.0.1", Port: "5433", User: "admin", Password: "secret", Database: "postgres", Options: "sslmode=disable"},
			wantURL: "postgres://admin:secret@127.0.0.1:5433/postgres?sslmode=disable",
		},
		{
			name: "defaults",
			dsn:  "postgresql://localhost",
			want: pgtestdb.Config{DriverName: "pgx", Host: "localhost", Port: "5432", User: "postgres", Database: "postgres"},
		},
		{
			name:    "special characters stay escaped",
			dsn:     "postgres://ad%3Amin:p%40ss%3Aw%2Frd@localhost/db",
			want:    pgtestdb.Config{DriverName: "pgx", Host: "localhost", Port: "5432", User: "ad%3Amin", Password: "p%40ss%3Aw%2Frd", Database: "db"},
			wantURL: "postgres://ad%3Amin:p%40ss%3Aw%2Frd@localhost:5432/db?",
		},
		{
			name:    "ipv6",
			dsn:     "postgres://u:p@[::1]:5432/db",
			want:    pgtestdb.Config{DriverName: "pgx", Host: "[::1]", Port: "5432", User: "u", Password: "p", Database: "db"},
			wantURL: "postgres://u:p@[::1]:5432/db?",
		},
		{name: "keyword form rejected", dsn: "host=localhost user=postgres", wantErr: "scheme"},
		{name: "no host", dsn: "postgres:///db", wantErr: "no host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseAdminURL(tt.dsn)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			if tt.wantURL != "" {
				require.Equal(t, tt.wantURL, got.URL())
			}
		})
	}
}

func TestDockerSocket(t *testing.T) {
	tests := []struct {
		host     string
		wantSock string
		wantWhy  string
	}{
		{host: "", wantSock: defaultDockerSocket},
		{host: "unix:///run/user/1000/docker.sock", wantSock: "/run/user/1000/docker.sock"},
		{host: "tcp://10.0.0.1:2375", wantWhy: "not a local unix socket"},
		{host: "ssh://user@host", wantWhy: "not a local unix socket"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Setenv("DOCKER_HOST", tt.host)
			sock, why := dockerSocket()
			require.Equal(t, tt.wantSock, sock)
			if tt.wantWhy == "" {
				require.Empty(t, why)
			} else {
				require.Contains(t, why, tt.wantWhy)
			}
		})
	}
}

func TestProbeDockerWithoutSocket(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "missing.sock"))
	plan, why := probeDocker(t.Context())
	require.Equal(t, imagePlan{}, plan)
	require.Contains(t, why, "no Docker socket")
}

func TestIsLoopback(t *testing.T) {
	t.Parallel()

	for host, want := range map[string]bool{
		"localhost": true, "127.0.0.1": true, "[::1]": true, "::1": true,
		"172.17.0.1": false, "example.com": false, "": false,
	} {
		require.Equal(t, want, isLoopback(host), "host %q", host)
	}
}

func TestFindLocalBinaries(t *testing.T) {
	root := t.TempDir()
	mk := func(version string, names ...string) {
		dir := filepath.Join(root, version, "bin")
		require.NoError(t, os.MkdirAll(dir, 0o755))
		for _, n := range names {
			require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\n"), 0o755))
		}
	}
	mk("9.6", "initdb", "postgres")
	mk("14", "initdb", "postgres")
	mk("16", "initdb") // incomplete: no server binary
	t.Setenv("PATH", t.TempDir())

	dir, why := findBinaries(filepath.Join(root, "*", "bin"))
	require.Empty(t, why)
	require.Equal(t, filepath.Join(root, "14", "bin"), dir)

	dir, why = findBinaries(filepath.Join(t.TempDir(), "*", "bin"))
	require.Empty(t, dir)
	require.Contains(t, why, "no initdb")
}
