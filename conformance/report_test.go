package conformance

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func TestLabelerNamesIDsByKey(t *testing.T) {
	t.Parallel()
	l := newLabeler().add("i1")
	i1, stranger := scenario.ID("i1"), uuid.MustParse("0f3c5a2e-0000-4000-8000-000000000000")
	for _, tc := range []struct {
		id   uuid.UUID
		want string
	}{
		{i1, "i1 (" + i1.String()[:8] + ")"},
		{stranger, "? (0f3c5a2e)"},
		{uuid.Nil, "nil"},
		{prebuilds.SystemOwner, "system (" + prebuilds.SystemOwner.String()[:8] + ")"},
	} {
		if got := l.of(tc.id); got != tc.want {
			t.Errorf("of(%s) = %q, want %q", tc.id, got, tc.want)
		}
	}
	msg := fmt.Sprintf("memstore: claim from preset %s: %v", i1, prebuilds.ErrNoClaimablePrebuild)
	if got := l.text(msg); strings.Contains(got, i1.String()) || !strings.Contains(got, l.of(i1)) {
		t.Errorf("text(%q) = %q: want the UUID replaced by its label", msg, got)
	}
}

func TestLabelerDiffNamesEveryID(t *testing.T) {
	t.Parallel()
	l := newLabeler().add("b", "c", "p1", "user0")
	at := scenario.Epoch.Add(5 * time.Second)
	want := prebuilds.Instance{ID: scenario.ID("b"), OwnerID: scenario.ID("user0"), Name: "b", CreatedAt: at}
	got := want
	got.ID, got.Name, got.CreatedAt = scenario.ID("c"), "c", at.Add(15*time.Second)
	d := l.diff(want, got)
	for _, s := range []string{`"b (`, `"c (`, `"user0 (`, `"2025-06-02T00:00:05Z"`, `"2025-06-02T00:00:20Z"`} {
		if !strings.Contains(d, s) {
			t.Errorf("diff lacks %s:\n%s", s, d)
		}
	}
	if strings.Contains(d, "Inverse") || uuidText.MatchString(d) {
		t.Errorf("diff shows cmp's transformer or a raw UUID:\n%s", d)
	}
	if l.diff(want, want) != "" {
		t.Error("diff of equal values is not empty")
	}
	// Whole rows added or removed are named too.
	rows := l.diff([]prebuilds.BackoffRow{{PresetID: scenario.ID("p1"), NumFailed: 1, LastBuildAt: at}}, []prebuilds.BackoffRow(nil))
	if !strings.Contains(rows, `"p1 (`) || uuidText.MatchString(rows) || strings.Contains(rows, "+0000 UTC") {
		t.Errorf("diff of a removed row:\n%s", rows)
	}
}

func TestVerdictReadsRuleFirst(t *testing.T) {
	t.Parallel()
	l := newLabeler().add("b", "c")
	v := newVerdict("Claim must hand out the oldest claimable prebuild.", "conformance/claim.go:1")
	v.names = func() labeler { return l }
	if v.failed() {
		t.Fatal("an empty verdict failed")
	}
	v.object("wanted %s", l.of(scenario.ID("b")))
	v.note("a note alone fails nothing")
	if v.failed() {
		t.Fatal("objects and notes alone failed the verdict")
	}
	v.addf("took %s", scenario.ID("c"))
	lines := strings.Split(v.text(), "\n")
	want := []string{
		"Claim must hand out the oldest claimable prebuild.",
		"case: conformance/claim.go:1",
		"objects: wanted " + l.of(scenario.ID("b")),
		"a note alone fails nothing",
		"took " + l.of(scenario.ID("c")),
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("verdict text:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestSameErrorComparesClasses(t *testing.T) {
	t.Parallel()
	v := newVerdict(ruleSameError, "x")
	if !sameError(v, "op", fmt.Errorf("store: %w", prebuilds.ErrNotFound), fmt.Errorf("model: %w", prebuilds.ErrNotFound)) || v.failed() {
		t.Error("errors of the same class differ")
	}
	if sameError(v, "op", nil, prebuilds.ErrConflict) || !v.failed() {
		t.Error("nil against ErrConflict agree")
	}
	if sameError(v, "op", errors.New("boom"), errors.New("bang")) {
		t.Error("unclassified errors of different text agree")
	}
}

func TestDescribeOpByKeys(t *testing.T) {
	t.Parallel()
	two := 2
	for _, tc := range []struct {
		op   scenario.Op
		want string
	}{
		{scenario.UpsertPreset{Key: "p1", Version: "v1", Desired: &two}, "UpsertPreset{Key:p1 Version:v1 Desired:2 "},
		{scenario.Seq{scenario.AddTemplate{Key: "t1"}, scenario.Activate{Template: "t1", Version: "v1"}}, "AddTemplate{Key:t1}; Activate{Template:t1 Version:v1}"},
	} {
		if got := describeOp(tc.op); !strings.HasPrefix(got, tc.want) {
			t.Errorf("describeOp = %q, want prefix %q", got, tc.want)
		}
	}
}

func TestMachineReport(t *testing.T) {
	t.Parallel()
	v := newVerdict(ruleClaimOldest, "conformance/statemachine.go:1")
	v.object("wanted i2")
	v.addf("the diff")
	last := &runLog{failure: v, steps: []logStep{
		{what: "Setup template t1 with active version v1"},
		{what: "GetPreset p1", inert: true},
		{what: "Claim p1 for alice"},
	}}
	rapidMsg := []string{"[rapid] failed after 3 tests: ...\nTo reproduce, specify -run=\"X\" -rapid.seed=1\nFailed test output:"}
	full := machineReport(last, rapidMsg, false)
	for _, s := range []string{ruleClaimOldest + "\ncase: conformance/statemachine.go:1\nobjects: wanted i2", " 1. Setup template t1", " 3. Claim p1 for alice", "the diff", "rerun with: go test -run=\"X\" -rapid.seed=1"} {
		if !strings.Contains(full, s) {
			t.Errorf("full report lacks %q:\n%s", s, full)
		}
	}
	if strings.Contains(full, "GetPreset") {
		t.Errorf("full report shows an operation that changed nothing:\n%s", full)
	}
	brief := machineReport(last, rapidMsg, true)
	if strings.Contains(brief, "Claim p1 for alice") || strings.Contains(brief, "the diff") || !strings.HasPrefix(brief, ruleClaimOldest) || !strings.Contains(brief, "rerun with") {
		t.Errorf("brief report:\n%s", brief)
	}
}
