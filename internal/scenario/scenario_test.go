package scenario_test

import (
	"strings"
	"testing"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
)

func TestIDDeterministic(t *testing.T) {
	t.Parallel()
	if scenario.ID("p1") != scenario.ID("p1") {
		t.Fatal("ID not deterministic")
	}
	if scenario.ID("p1") == scenario.ID("p2") {
		t.Fatal("distinct keys share an ID")
	}
	if got, want := scenario.BuildKey("i1", 2), "i1/b2"; got != want {
		t.Fatalf("BuildKey = %q, want %q", got, want)
	}
}

// TestPositions: every scenario and check says where it is defined, as a
// module-relative "file:line" of this package's table.
func TestPositions(t *testing.T) {
	t.Parallel()
	for _, s := range scenario.Table() {
		if !strings.HasPrefix(string(s.Pos), "internal/scenario/") || !strings.Contains(string(s.Pos), ".go:") {
			t.Errorf("scenario %s: Pos = %q, want internal/scenario/<file>.go:<line>", s.Name, s.Pos)
		}
		for _, c := range s.Checks {
			if !strings.HasPrefix(string(c.Pos), "internal/scenario/") || c.Pos == s.Pos {
				t.Errorf("scenario %s, check at %s: Pos = %q, want its own line in internal/scenario", s.Name, c.At, c.Pos)
			}
		}
	}
}
