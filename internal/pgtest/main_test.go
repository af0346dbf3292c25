package pgtest

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := Run(m)
	if code == 0 {
		// Tear-down must leave nothing behind: no pool, probe or process
		// watcher goroutines.
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: goroutines leaked after tear-down: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
