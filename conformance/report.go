package conformance

import (
	"errors"
	"fmt"
	"reflect"
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
	// names, when set, names the objects of the case; a report names
	// every UUID left in its text with it (e.g. in a store's error).
	names func() labeler
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

// text is the verdict with every UUID in it named.
func (v *verdict) text() string {
	l := newLabeler()
	if v.names != nil {
		l = v.names()
	}
	return l.text(v.String())
}

// report fails t with the verdict, once, if anything was found.
func (v *verdict) report(t tb) {
	t.Helper()
	if v.failed() {
		t.Fatalf("%s", v.text())
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

// uuidText matches a UUID in its 36-character form.
var uuidText = regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)

// text names every UUID in s, e.g. in an error message of a store.
func (l labeler) text(s string) string {
	return uuidText.ReplaceAllStringFunc(s, func(u string) string {
		id, err := uuid.Parse(u)
		if err != nil {
			return u
		}
		return l.of(id)
	})
}

var (
	convertedLabel = regexp.MustCompile(`[\w.]+\(Inverse\((?:id|time), string\(("[^"]*")\)\)\)`)
	bareLabel      = regexp.MustCompile(`Inverse\((?:id|time), string\(("[^"]*")\)\)`)
	stringerQuote  = regexp.MustCompile(`(^|[\s:{(,])s"`)
	longTime       = regexp.MustCompile(`"(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?) \+0000 UTC"`)
)

// diff is cmp.Diff(want, got) ("" when equal) with every UUID named by l
// and every time in RFC 3339 (UTC, to the microsecond).
func (l labeler) diff(want, got any) string {
	// reflect.DeepEqual is the fast path (the state machines compare
	// snapshots after every step); cmp.Equal then forgives nil against
	// empty and equal instants in other representations.
	if reflect.DeepEqual(want, got) || cmp.Equal(want, got, cmpopts.EquateEmpty()) {
		return ""
	}
	d := cmp.Diff(want, got, cmpopts.EquateEmpty(),
		cmp.Transformer("id", l.of),
		cmp.Transformer("time", func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }))
	if d == "" { // two IDs share a label: show them raw
		return cmp.Diff(want, got, cmpopts.EquateEmpty())
	}
	d = convertedLabel.ReplaceAllString(d, "$1")
	d = bareLabel.ReplaceAllString(d, "$1")
	// Whole rows added or removed are printed untransformed, with their
	// String methods: quote them alike.
	d = stringerQuote.ReplaceAllString(d, `$1"`)
	d = longTime.ReplaceAllString(d, `"${1}T${2}Z"`)
	return l.text(d)
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
const ruleSameError = "A store operation must fail exactly when the model's does, with the same sentinel error (docs/spec.md)."

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

// snapshotObjects names the objects whose rows differ between two
// snapshots: "preset p1 (890ee732)", "prebuild i1 (0f3c5a2e)".
func snapshotObjects(want, got *prebuilds.GlobalSnapshot, l labeler) []string {
	seen := map[string]bool{}
	preset := func(id uuid.UUID) string { return "preset " + l.of(id) }
	add := func(s string) { seen[s] = true }
	differing(want.Presets, got.Presets, func(r prebuilds.PresetRow) uuid.UUID { return r.ID },
		func(r prebuilds.PresetRow) string { return preset(r.ID) }, add)
	differing(want.Running, got.Running, func(r prebuilds.RunningPrebuild) uuid.UUID { return r.InstanceID },
		func(r prebuilds.RunningPrebuild) string { return "prebuild " + l.of(r.InstanceID) }, add)
	type progress struct {
		preset uuid.UUID
		tr     prebuilds.Transition
	}
	differing(want.InProgress, got.InProgress, func(r prebuilds.InProgressCount) progress { return progress{r.PresetID, r.Transition} },
		func(r prebuilds.InProgressCount) string { return preset(r.PresetID) }, add)
	differing(want.PendingInactive, got.PendingInactive, func(r prebuilds.PendingInactiveCount) uuid.UUID { return r.PresetID },
		func(r prebuilds.PendingInactiveCount) string { return preset(r.PresetID) }, add)
	differing(want.Backoffs, got.Backoffs, func(r prebuilds.BackoffRow) uuid.UUID { return r.PresetID },
		func(r prebuilds.BackoffRow) string { return preset(r.PresetID) }, add)
	differing(want.HardLimited, got.HardLimited, func(id uuid.UUID) uuid.UUID { return id }, preset, add)
	differing(want.Counters, got.Counters, func(r prebuilds.PresetCounters) uuid.UUID { return r.PresetID },
		func(r prebuilds.PresetCounters) string { return preset(r.PresetID) }, add)
	out := make([]string, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// differing calls add(name(row)) for every row of want or got whose key is
// missing from the other or whose row differs there.
func differing[T any, K comparable](want, got []T, key func(T) K, name func(T) string, add func(string)) {
	index := func(rows []T) map[K]T {
		m := make(map[K]T, len(rows))
		for _, r := range rows {
			m[key(r)] = r
		}
		return m
	}
	wm, gm := index(want), index(got)
	for k, w := range wm {
		if g, ok := gm[k]; !ok || !(reflect.DeepEqual(w, g) || cmp.Equal(w, g, cmpopts.EquateEmpty())) {
			add(name(w))
		}
	}
	for k, g := range gm {
		if _, ok := wm[k]; !ok {
			add(name(g))
		}
	}
}

// planObjects names the presets whose plans differ.
func planObjects(want, got []prebuilds.Plan, l labeler) []string {
	var out []string
	differing(want, got, func(p prebuilds.Plan) uuid.UUID { return p.PresetID },
		func(p prebuilds.Plan) string { return "preset " + l.of(p.PresetID) }, func(s string) {
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		})
	slices.Sort(out)
	return out
}
