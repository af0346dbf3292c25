package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prebuildkit/prebuildkit/bench/internal/report"
)

// committedRun parses the raw output bench/REPORT.md names, as
// scripts/bench.sh rendered it.
func committedRun(t *testing.T) (*report.Results, string) {
	t.Helper()
	body, err := os.ReadFile(filepath.Join(repoRoot, "bench", "REPORT.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?m)^Raw output: (.*)\\.$").FindStringSubmatch(string(body))
	if m == nil {
		t.Fatal("bench/REPORT.md names no raw output")
	}
	var all strings.Builder
	for _, name := range strings.Split(m[1], ", ") {
		raw, err := os.ReadFile(filepath.Join(repoRoot, "bench", strings.Trim(name, "`")))
		if err != nil {
			t.Fatalf("bench/REPORT.md names %s: %v", name, err)
		}
		all.Write(raw)
		all.WriteByte('\n')
	}
	rs, err := report.Parse(strings.NewReader(all.String()))
	if err != nil {
		t.Fatal(err)
	}
	return rs, string(body)
}

// TestCommittedSizingAgrees keeps the three places that quote the sizing
// answer on the same run: bench/REPORT.md's sizing table is what its raw
// output gives, bench/doc.go's table is too, and every figure the README's
// worked example quotes (in bold) is in the report.
func TestCommittedSizingAgrees(t *testing.T) {
	rs, committed := committedRun(t)

	var b strings.Builder
	if err := report.Write(&b, rs, report.Options{}); err != nil {
		t.Fatal(err)
	}
	section := func(doc string) string {
		_, after, _ := strings.Cut(doc, "\n## Sizing")
		before, _, _ := strings.Cut(after, "\n![")
		before, _, _ = strings.Cut(before, "\n## ")
		return before
	}
	if want, got := section(b.String()), section(committed); want == "" || got != want {
		t.Errorf("bench/REPORT.md's sizing table is not what its raw output gives; rerun scripts/bench.sh\n got: %s\nwant: %s", got, want)
	}

	src, err := os.ReadFile(filepath.Join(repoRoot, "bench", "doc.go"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := report.DocBlock(string(src)), report.SizingText(rs, report.Options{}); got != want {
		t.Errorf("bench/doc.go's sizing table is not bench/REPORT.md's run (scripts/bench.sh writes both):\n got:\n%s\nwant:\n%s", got, want)
	}

	readme, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, example, ok := strings.Cut(string(readme), "<!-- sizing-example:begin -->")
	example, _, ok2 := strings.Cut(example, "<!-- sizing-example:end -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no worked example between <!-- sizing-example:begin --> and <!-- sizing-example:end -->")
	}
	quoted := regexp.MustCompile(`\*\*([^*]+)\*\*`).FindAllStringSubmatch(strings.Join(strings.Fields(example), " "), -1)
	if len(quoted) < 3 {
		t.Fatalf("the worked example quotes %d figures of the report in bold, want the figures it rests on", len(quoted))
	}
	for _, q := range quoted {
		if !strings.Contains(committed, q[1]) {
			t.Errorf("README's worked example quotes %q, which bench/REPORT.md does not say", q[1])
		}
	}
}
