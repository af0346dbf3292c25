package conformance_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/conformance"
	"github.com/prebuildkit/prebuildkit/memstore"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// newestClaimStore is memstore with one bug, the kind a store author might
// write: Claim hands out the newest claimable prebuild instead of the
// oldest. It is built on memstore's public API only: it finds the
// claimable prebuilds of the preset, makes every one but the newest not
// ready for the time of memstore's (correct) Claim, then restores them.
type newestClaimStore struct {
	*memstore.Store
	mu sync.Mutex
}

func (s *newestClaimStore) Claim(ctx context.Context, p prebuilds.ClaimParams) (prebuilds.Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	older := s.olderClaimable(ctx, p)
	for _, id := range older {
		if err := s.SetReady(ctx, id, false); err != nil {
			return prebuilds.Instance{}, err
		}
	}
	inst, err := s.Store.Claim(ctx, p)
	for _, id := range older {
		if rerr := s.SetReady(ctx, id, true); rerr != nil && err == nil {
			err = rerr
		}
	}
	return inst, err
}

// olderClaimable lists the claimable prebuilds of the preset but the
// newest, when the snapshot can be read (nil otherwise).
func (s *newestClaimStore) olderClaimable(ctx context.Context, p prebuilds.ClaimParams) []uuid.UUID {
	preset, err := s.GetPreset(ctx, p.PresetID)
	if err != nil {
		return nil
	}
	now := prebuilds.Micro(p.Now)
	var claimable []prebuilds.RunningPrebuild
	_, _ = s.WithReconciliationLock(ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
		snap, err := r.Snapshot(ctx, prebuilds.SnapshotParams{Now: now, Lookback: now})
		if err != nil {
			return err
		}
		for _, run := range snap.Running {
			expired := (!preset.InvalidatedAt.IsZero() && run.CreatedAt.Before(preset.InvalidatedAt)) ||
				(preset.TTL > 0 && now.Sub(run.CreatedAt) > preset.TTL)
			if run.PresetID == p.PresetID && run.Ready && !expired {
				claimable = append(claimable, run)
			}
		}
		return nil
	})
	if len(claimable) < 2 {
		return nil
	}
	// Running rows come oldest first: keep the last one claimable.
	ids := make([]uuid.UUID, 0, len(claimable)-1)
	for _, run := range claimable[:len(claimable)-1] {
		ids = append(ids, run.InstanceID)
	}
	return ids
}

// newestClaimEnv makes TestNewestClaimStore run: it is set only in the
// child process TestFailureOutputNewestClaim starts.
const newestClaimEnv = "PREBUILDKIT_CONFORMANCE_NEWEST_CLAIM"

// TestNewestClaimStore runs the suite against newestClaimStore, which must
// fail. It runs only as the child process of TestFailureOutputNewestClaim.
func TestNewestClaimStore(t *testing.T) {
	if os.Getenv(newestClaimEnv) == "" {
		t.Skip("runs only in the child process of TestFailureOutputNewestClaim")
	}
	conformance.Run(t, conformance.Harness{NewStore: func(*testing.T) conformance.Store { return &newestClaimStore{Store: memstore.New()} }})
}

// runNewestClaimStore runs TestNewestClaimStore (with -test.run's
// pattern run and the extra flags) in a child process, as a store author
// would meet the suite, and returns its output by lines. The run must
// fail.
func runNewestClaimStore(t *testing.T, run string, flags ...string) []string {
	t.Helper()
	args := append([]string{"-test.run=" + run, "-test.count=1", "-test.timeout=10m"}, flags...)
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Env = append(os.Environ(), newestClaimEnv+"=1")
	cmd.Dir = t.TempDir() // rapid saves its fail files under testdata/rapid of the working directory
	out, err := cmd.CombinedOutput()
	text := strings.TrimRight(string(out), "\n")
	lines := strings.Split(text, "\n")
	t.Logf("the suite's output for the newest-claim store, -run %s (%d lines):\n%s", run, len(lines), text)
	if _, failed := err.(*exec.ExitError); !failed {
		t.Fatalf("the suite passed the newest-claim store or did not run (%v): it must fail", err)
	}
	return lines
}

// checkReadable checks what every failure of the suite must be: the rule
// stated within the first ruleLines lines, no object named by a raw UUID
// alone, and no log of the mock clock.
func checkReadable(t *testing.T, lines []string, rule string, ruleLines int) {
	t.Helper()
	if i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, rule) }); i < 0 || i >= ruleLines {
		t.Errorf("the rule %q is on line %d, want it within the first %d", rule, i+1, ruleLines)
	}
	for _, l := range lines {
		for _, m := range rawUUID.FindAllStringIndex(l, -1) {
			t.Errorf("a raw UUID names an object: %q", l[max(m[0]-20, 0):m[1]])
		}
		if strings.Contains(l, "Mock Clock") {
			t.Errorf("the mock clock logs: %q", l)
		}
	}
}

const ruleClaimOldest = "Claim must hand out the oldest claimable prebuild of the preset (created_at, then instance ID)."

// TestFailureOutputNewestClaim runs the whole suite against the
// newest-claim store and measures what its author reads: the run fails in
// at most 60 lines and states the broken rule in the first 10.
func TestFailureOutputNewestClaim(t *testing.T) {
	t.Parallel()
	const maxLines = 60
	lines := runNewestClaimStore(t, "^TestNewestClaimStore$")
	if len(lines) > maxLines {
		t.Errorf("the failing run printed %d lines, want at most %d", len(lines), maxLines)
	}
	checkReadable(t, lines, ruleClaimOldest, 10)
}

// TestFailureOutputStateMachine runs only the state machines against the
// newest-claim store: a failure prints the shrunk operation sequence in the
// vocabulary of keys, ending with the claim that went wrong. -rapid.checks
// is high so that the bug is found whatever the random sequences; rapid
// stops at the first failing one.
func TestFailureOutputStateMachine(t *testing.T) {
	t.Parallel()
	lines := runNewestClaimStore(t, "^TestNewestClaimStore$/^StateMachine$", "-rapid.checks=2000")
	checkReadable(t, lines, ruleClaimOldest, 10)
	text := strings.Join(lines, "\n")
	if !strings.Contains(text, "shrunk operation sequence") {
		t.Errorf("no shrunk operation sequence in the output")
	}
	if !regexp.MustCompile(`\d+\. Claim p\d+ for (alice|bob)\n`).MatchString(text) {
		t.Errorf("the sequence does not end with the claim, named by keys")
	}
}

// rawUUID matches a UUID in its 36-character form.
var rawUUID = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
