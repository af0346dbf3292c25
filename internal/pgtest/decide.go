package pgtest

import (
	"fmt"
	"strings"
)

// Environment variables read by this package.
const (
	// EnvDatabaseURL is an admin DSN (postgres:// URL) of a server to use.
	EnvDatabaseURL = "PREBUILDKIT_TEST_DATABASE_URL"
	// EnvSource forces one source: "dsn", "docker" or "local".
	EnvSource = "PREBUILDKIT_TEST_POSTGRES"
	// EnvImage is the image the testcontainers source runs.
	EnvImage = "PREBUILDKIT_TEST_POSTGRES_IMAGE"
	// EnvCI turns "no server available" from a skip into a failure.
	EnvCI = "CI"
)

// DefaultImage is the image used by the testcontainers source when
// PREBUILDKIT_TEST_POSTGRES_IMAGE is unset.
const DefaultImage = "postgres:15"

// source is where the admin server comes from.
type source string

const (
	sourceNone   source = ""
	sourceDSN    source = "dsn"
	sourceDocker source = "docker"
	sourceLocal  source = "local"
)

// selection is what the environment says before anything is probed.
type selection struct {
	// Forced is the value of PREBUILDKIT_TEST_POSTGRES ("" when unset).
	Forced string
	// HaveDSN reports whether PREBUILDKIT_TEST_DATABASE_URL is non-empty.
	HaveDSN bool
	// CI reports whether CI is set to a value other than "", "0" or "false".
	CI bool
}

// availability is what probing found. A probe that was not run counts as
// unavailable; wants tells which probes a selection needs.
type availability struct {
	Docker bool // a local Docker engine answered
	Local  bool // PostgreSQL server binaries were found
	// Why explains, per source, why it is unavailable ("" if unknown).
	DockerWhy string
	LocalWhy  string
}

// decision is the outcome of decide: use Source, or (Source == sourceNone)
// skip or fail with Message.
type decision struct {
	Source  source
	Fail    bool
	Message string
}

// parseCI reports whether the value of CI means "running in CI".
func parseCI(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "0", "false", "no":
		return false
	}
	return true
}

// wants reports whether decide may pick src for sel, so the caller probes
// only what can matter.
func (sel selection) wants(src source) bool {
	switch sel.Forced {
	case "":
		if sel.HaveDSN {
			return src == sourceDSN
		}
		return src == sourceDocker || src == sourceLocal
	default:
		return string(src) == sel.Forced
	}
}

// decide picks the admin server source. Order when nothing is forced: the
// DSN, then Docker, then local binaries; with none available the tests skip,
// or fail when CI is set. A forced source that is unavailable always fails.
func decide(sel selection, av availability) decision {
	switch sel.Forced {
	case "":
	case string(sourceDSN):
		if sel.HaveDSN {
			return decision{Source: sourceDSN}
		}
		return decision{Fail: true, Message: fmt.Sprintf(
			"pgtest: %s=dsn but %s is empty", EnvSource, EnvDatabaseURL)}
	case string(sourceDocker):
		if av.Docker {
			return decision{Source: sourceDocker}
		}
		return decision{Fail: true, Message: fmt.Sprintf(
			"pgtest: %s=docker but Docker is unavailable: %s", EnvSource, orUnknown(av.DockerWhy))}
	case string(sourceLocal):
		if av.Local {
			return decision{Source: sourceLocal}
		}
		return decision{Fail: true, Message: fmt.Sprintf(
			"pgtest: %s=local but no PostgreSQL server binaries: %s", EnvSource, orUnknown(av.LocalWhy))}
	default:
		return decision{Fail: true, Message: fmt.Sprintf(
			"pgtest: %s=%q is not one of dsn, docker, local", EnvSource, sel.Forced)}
	}

	switch {
	case sel.HaveDSN:
		return decision{Source: sourceDSN}
	case av.Docker:
		return decision{Source: sourceDocker}
	case av.Local:
		return decision{Source: sourceLocal}
	}
	msg := fmt.Sprintf("pgtest: no PostgreSQL: set %s, start Docker (%s), or install PostgreSQL server binaries (%s)",
		EnvDatabaseURL, orUnknown(av.DockerWhy), orUnknown(av.LocalWhy))
	return decision{Fail: sel.CI, Message: msg}
}

func orUnknown(s string) string {
	if s == "" {
		return "not probed"
	}
	return s
}
