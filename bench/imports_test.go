package bench_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestImportGraph keeps what a consumer compiles small: a program that
// imports prebuilds and memstore, or a store's benchmarks that import
// bench, builds no plotting, Docker or testcontainers module, and bench
// (which every store's benchmarks import) no PostgreSQL driver either.
func TestImportGraph(t *testing.T) {
	t.Parallel()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	heavy := []string{"gonum.org/v1/plot", "github.com/docker/", "github.com/moby/", "github.com/testcontainers/", "github.com/containerd/"}
	for pkg, forbidden := range map[string][]string{
		"github.com/prebuildkit/prebuildkit/prebuilds": heavy,
		"github.com/prebuildkit/prebuildkit/memstore":  heavy,
		"github.com/prebuildkit/prebuildkit/bench": append(heavy, "github.com/jackc/pgx",
			"github.com/peterldowns/pgtestdb", "github.com/prebuildkit/prebuildkit/internal/pgtest",
			"github.com/prebuildkit/prebuildkit/pgstore"),
	} {
		out, err := exec.CommandContext(t.Context(), goTool, "list", "-deps", "-f", "{{.ImportPath}}", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for dep := range strings.FieldsSeq(string(out)) {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
