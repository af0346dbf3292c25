package conformance

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
	"github.com/prebuildkit/prebuildkit/model"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// A failure of the suite reads, in this order: the rule broken in one plain
// sentence; where the case is defined (file:line); the objects involved, by
// scenario key with the UUID beside; then the details, -model +store (or
// -want +got) diffs with IDs named the same way. A case gathers everything
// it found wrong into one failure (verdict) rather than failing at the first
// difference and leaving the rest to later cases.

// tb is what the checks need from *testing.T and *rapid.T alike.
type tb interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// verdict gathers the misbehaviours one case found.
type verdict struct {
	rule    string
	pos     scenario.Pos
	objects []string
	notes   []string
	lines   []string
}

func newVerdict(rule string, pos scenario.Pos) *verdict { return &verdict{rule: rule, pos: pos} }

// object names an object involved, e.g. "wanted i1 (0f3c5a2e)".
func (v *verdict) object(format string, args ...any) {
	v.objects = append(v.objects, fmt.Sprintf(format, args...))
}

// note adds context printed before the misbehaviours; a note alone does
// not fail the case.
func (v *verdict) note(s string) { v.notes = append(v.notes, s) }

// addf records one misbehaviour (or the details of one).
func (v *verdict) addf(format string, args ...any) {
	v.lines = append(v.lines, fmt.Sprintf(format, args...))
}

// diff records a diff under a heading, when there is one.
func (v *verdict) diff(heading, diff string) {
	if diff != "" {
		v.addf("%s:\n%s", heading, strings.TrimRight(diff, "\n"))
	}
}

func (v *verdict) failed() bool { return len(v.lines) > 0 }

func (v *verdict) String() string {
	var b strings.Builder
	b.WriteString(v.rule)
	b.WriteString("\ncase: ")
	b.WriteString(string(v.pos))
	if len(v.objects) > 0 {
		b.WriteString("\nobjects: ")
		b.WriteString(strings.Join(v.objects, ", "))
	}
	for _, l := range slices.Concat(v.notes, v.lines) {
		b.WriteString("\n")
		b.WriteString(l)
	}
	return b.String()
}

// report fails t with the verdict, once, if anything was found.
func (v *verdict) report(t tb) {
	t.Helper()
	if v.failed() {
		t.Fatalf("%s", v)
	}
}

// fatalf records one more misbehaviour and reports.
func (v *verdict) fatalf(t tb, format string, args ...any) {
	t.Helper()
	v.addf(format, args...)
	v.report(t)
}

// defined returns the position of its caller: the case a check function
// implements.
func defined() scenario.Pos { return scenario.Here(0) }

// labeler names IDs by the scenario keys they were made from.
type labeler map[uuid.UUID]string

// commonKeys are keys the suite uses for owners and claimants.
var commonKeys = []string{scenario.UserKey, scenario.OrganizationKey, "claimant", "alice", "bob", "someone", "late"}

func newLabeler() labeler {
	l := labeler{prebuilds.SystemOwner: "system"}
	l.add(commonKeys...)
	return l
}

// add names ID(k) k for every key.
func (l labeler) add(keys ...string) labeler {
	for _, k := range keys {
		l[scenario.ID(k)] = k
	}
	return l
}

// addWorld names the templates, versions, presets, instances and builds of
// w after their names (scenarios name every object after its key); builds
// are "<instance>/b<number>".
func (l labeler) addWorld(w *model.World) labeler {
	for _, t := range w.Templates {
		l[t.ID] = t.Name
	}
	for _, v := range w.Versions {
		l[v.ID] = v.Name
	}
	for _, p := range w.Presets {
		l[p.ID] = p.Name
	}
	names := map[uuid.UUID]string{}
	for _, i := range w.Instances {
		if _, known := l[i.ID]; !known {
			l[i.ID] = i.Name
		}
		names[i.ID] = l[i.ID]
	}
	for _, b := range w.Builds {
		if _, known := l[b.ID]; !known {
			l[b.ID] = names[b.InstanceID] + "/b" + strconv.Itoa(b.Number)
		}
	}
	return l
}

// of names id "key (0f3c5a2e)": the key it was made from and the first
// eight hex digits of the UUID. An ID of no known key is "? (0f3c5a2e)".
func (l labeler) of(id uuid.UUID) string {
	if id == uuid.Nil {
		return "nil"
	}
	short := id.String()[:8]
	if n, ok := l[id]; ok && n != "" {
		return n + " (" + short + ")"
	}
	return "? (" + short + ")"
}

// key is the bare key of id, or its label when it has none.
func (l labeler) key(id uuid.UUID) string {
	if n, ok := l[id]; ok && n != "" {
		return n
	}
	return l.of(id)
}

// list names ids.
func (l labeler) list(ids []uuid.UUID) string {
	names := make([]string, len(ids))
	for i, id := range ids {
		names[i] = l.of(id)
	}
	return "[" + strings.Join(names, ", ") + "]"
}

var (
	convertedLabel = regexp.MustCompile(`[\w.]+\(Inverse\((?:id|time), string\(("[^"]*")\)\)\)`)
	bareLabel      = regexp.MustCompile(`Inverse\((?:id|time), string\(("[^"]*")\)\)`)
)

// diff is cmp.Diff(want, got) ("" when equal) with every UUID named by l
// and every time in RFC 3339 (UTC, to the microsecond).
func (l labeler) diff(want, got any) string {
	if cmp.Equal(want, got, cmpopts.EquateEmpty()) {
		return ""
	}
	d := cmp.Diff(want, got, cmpopts.EquateEmpty(),
		cmp.Transformer("id", l.of),
		cmp.Transformer("time", func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }))
	if d == "" { // two IDs share a label: show them raw
		return cmp.Diff(want, got, cmpopts.EquateEmpty())
	}
	d = convertedLabel.ReplaceAllString(d, "$1")
	return bareLabel.ReplaceAllString(d, "$1")
}

// sentinels are the error classes stores and the model must agree on.
var sentinels = []struct {
	name string
	err  error
}{
	{"ErrNotFound", prebuilds.ErrNotFound},
	{"ErrConflict", prebuilds.ErrConflict},
	{"ErrNoClaimablePrebuild", prebuilds.ErrNoClaimablePrebuild},
	{"ErrInvalidPreset", prebuilds.ErrInvalidPreset},
	{"ErrInvalidArgument", prebuilds.ErrInvalidArgument},
	{"ErrInvalidTransition", prebuilds.ErrInvalidTransition},
}

// errClass names the sentinel err matches ("nil" for nil), with the field
// of a *prebuilds.ValidationError.
func errClass(err error) string {
	if err == nil {
		return "nil"
	}
	var names []string
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			names = append(names, s.name)
		}
	}
	if len(names) == 0 {
		return "unclassified error: " + err.Error()
	}
	class := strings.Join(names, "+")
	var ve *prebuilds.ValidationError
	if errors.As(err, &ve) {
		class += "(field " + strconv.Quote(ve.Field) + ")"
	}
	return class
}

// ruleSameError is the rule of every comparison of a store's error with
// the model's.
const ruleSameError = "A store operation must fail exactly when the model's does, with the same sentinel error (docs/store-semantics.md)."

// sameError records a misbehaviour in v unless the store's error and the
// model's are of the same class. It reports whether they agree.
func sameError(v *verdict, what string, storeErr, modelErr error) bool {
	sc, mc := errClass(storeErr), errClass(modelErr)
	if sc == mc {
		return true
	}
	v.addf("%s: store returned %s, the model %s", what, sc, mc)
	if storeErr != nil {
		v.addf("  store error: %v", storeErr)
	}
	if modelErr != nil {
		v.addf("  model error: %v", modelErr)
	}
	return false
}

// offset renders at as an offset from start, "+1h0m0.000001s".
func offset(start, at time.Time) string {
	return "+" + at.Sub(start).String()
}

// describeOp renders a scenario operation by its keys, e.g.
// "UpdateJob{Instance:i1 Number:1 Status:failed FailureKind:transient}".
func describeOp(op scenario.Op) string {
	name := fmt.Sprintf("%T", op)
	name = name[strings.LastIndex(name, ".")+1:]
	if seq, ok := op.(scenario.Seq); ok {
		parts := make([]string, len(seq))
		for i, o := range seq {
			parts[i] = describeOp(o)
		}
		return strings.Join(parts, "; ")
	}
	if up, ok := op.(scenario.UpsertPreset); ok && up.Desired != nil {
		type shown scenario.UpsertPreset // same fields, Desired shown by value below
		s := fmt.Sprintf("%+v", shown(up))
		return name + strings.Replace(s, fmt.Sprintf("Desired:%p", up.Desired), "Desired:"+strconv.Itoa(*up.Desired), 1)
	}
	return fmt.Sprintf("%s%+v", name, op)
}
