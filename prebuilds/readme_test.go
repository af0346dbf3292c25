package prebuilds_test

import (
	"os"
	"strings"
	"testing"
)

// between returns the text strictly between the lines containing begin and
// end, or fails.
func between(t *testing.T, text, begin, end, what string) string {
	t.Helper()
	_, rest, ok := strings.Cut(text, begin)
	if !ok {
		t.Fatalf("%s: no %q marker", what, begin)
	}
	_, rest, _ = strings.Cut(rest, "\n") // the rest of the marker's line
	body, _, ok := strings.Cut(rest, end)
	if !ok {
		t.Fatalf("%s: no %q marker after %q", what, end, begin)
	}
	return body[:strings.LastIndex(body, "\n")+1] // drop the end marker's indentation
}

// TestReadmeExample: the README's "Using it" code block is the body of
// Example, line for line (without the function's one level of indentation),
// so the README shows code that compiles and runs.
func TestReadmeExample(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	source, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	block := between(t, string(readme), "<!-- example:begin -->", "<!-- example:end -->", "README.md")
	code := between(t, block, "```go", "```", "README.md example block")
	body := between(t, string(source), "// README:begin", "// README:end", "example_test.go")
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		lines = append(lines, strings.TrimPrefix(l, "\t"))
	}
	if want := strings.Join(lines, "\n") + "\n"; code != want {
		t.Errorf("README.md's example differs from Example in prebuilds/example_test.go; paste this between its ```go fences:\n%s", want)
	}
}
