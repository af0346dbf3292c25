package conformance

import (
	"strings"
	"testing"
)

// TestCaseNames: the fixed cases of the Errors, Effects and Snapshot/Rows
// groups have unique names (a repeated name would run as name#01, an
// unstable name) and record where they are defined, in their own file.
func TestCaseNames(t *testing.T) {
	t.Parallel()
	type named struct{ name, pos, file string }
	var all []named
	for _, c := range invalidPresets() {
		all = append(all, named{"Errors/UpsertPreset/Invalid/" + c.name, string(c.pos), "conformance/errors.go:"})
	}
	for _, c := range errorCases() {
		all = append(all, named{"Errors/" + c.op + "/" + c.name, string(c.pos), "conformance/errors.go:"})
	}
	for _, c := range effectCases() {
		all = append(all, named{"Effects/" + c.op + "/" + c.name, string(c.pos), "conformance/effects.go:"})
	}
	for _, c := range rowCases() {
		all = append(all, named{"Snapshot/Rows/" + c.name, string(c.pos), "conformance/rows.go:"})
	}
	seen := map[string]bool{}
	for _, c := range all {
		if seen[c.name] {
			t.Errorf("%s: the case name is used twice", c.name)
		}
		seen[c.name] = true
		if !strings.HasPrefix(c.pos, c.file) {
			t.Errorf("%s: defined at %q, want a line of %s", c.name, c.pos, strings.TrimSuffix(c.file, ":"))
		}
	}
}
