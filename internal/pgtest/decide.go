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

// DefaultImage is the official image the testcontainers source runs when
// PREBUILDKIT_TEST_POSTGRES_IMAGE is unset; it is pulled when missing.
const DefaultImage = "postgres:18"

// localImage is built by scripts/testcontainers.sh from Debian packages for
// machines that reach no container registry. When present, and
// DefaultImage is not, it is used instead of pulling DefaultImage.
const localImage = "prebuildkit/postgres:15-local"

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

// imagePlan is the image the Docker source runs and whether the engine must
// pull it first.
type imagePlan struct {
	Image string
	Pull  bool
}

// chooseImage picks the image for the Docker source. named is the value of
// PREBUILDKIT_TEST_POSTGRES_IMAGE ("" when unset) and present tells which
// images the engine already has. A named image is used as named, pulled
// when absent. Otherwise a present DefaultImage wins, then a present
// localImage (so a machine that built it never tries a registry), and with
// neither DefaultImage is pulled.
func chooseImage(named string, present map[string]bool) imagePlan {
	if named != "" {
		return imagePlan{Image: named, Pull: !present[named]}
	}
	for _, img := range []string{DefaultImage, localImage} {
		if present[img] {
			return imagePlan{Image: img}
		}
	}
	return imagePlan{Image: DefaultImage, Pull: true}
}

// availability is what probing found. A probe that was not run counts as
// unavailable; wants tells which probes a selection needs.
type availability struct {
	Docker bool // a local Docker engine answered (the image may still need a pull)
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
// DSN, then Docker (an engine that answers, even if the image must still be
// pulled), then local binaries; with none available the tests skip,
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

// without returns av with src marked unavailable for reason why, after it was
// chosen and failed to start.
func (av availability) without(src source, why string) availability {
	switch src {
	case sourceDocker:
		av.Docker, av.DockerWhy = false, why
	case sourceLocal:
		av.Local, av.LocalWhy = false, why
	}
	return av
}

// sourceName names a source in messages.
func sourceName(src source) string {
	switch src {
	case sourceDSN:
		return EnvDatabaseURL
	case sourceDocker:
		return "Docker"
	case sourceLocal:
		return "local PostgreSQL binaries"
	}
	return string(src)
}

// pick starts the source decide chooses. When nothing is forced and the
// chosen source fails to start, it logs one line saying why and what comes
// next, and tries the next available source; a forced source, or the DSN,
// fails at once. If every available source failed, the result is a failure
// naming each, not a skip: something is there but broken.
func pick(sel selection, av availability, start func(source) (*adminServer, error), logf func(string)) (*adminServer, decision) {
	var failures []string
	for {
		dec := decide(sel, av)
		if dec.Source == sourceNone {
			if len(failures) > 0 {
				dec.Fail = true
				dec.Message = "pgtest: no PostgreSQL server could be started: " + strings.Join(failures, "; ")
			}
			return nil, dec
		}
		srv, err := start(dec.Source)
		if err == nil {
			return srv, dec
		}
		why := oneLine(err.Error())
		if sel.Forced != "" {
			return nil, decision{Fail: true, Message: fmt.Sprintf(
				"pgtest: %s=%s: %s failed, and a forced source has no fallback: %s", EnvSource, sel.Forced, sourceName(dec.Source), why)}
		}
		if dec.Source == sourceDSN {
			return nil, decision{Fail: true, Message: fmt.Sprintf("pgtest: %s: %s", sourceName(dec.Source), why)}
		}
		failures = append(failures, fmt.Sprintf("%s: %s", sourceName(dec.Source), why))
		av = av.without(dec.Source, why)
		if next := decide(sel, av); next.Source != sourceNone {
			logf(fmt.Sprintf("pgtest: %s failed: %s; falling back to %s", sourceName(dec.Source), why, sourceName(next.Source)))
		}
	}
}

// oneLine folds a multi-line message into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
