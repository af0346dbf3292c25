package pgstore_test

import (
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/prebuildkit/prebuildkit/conformance"
	"github.com/prebuildkit/prebuildkit/pgstore"
)

// TestConformance runs the exported conformance suite against pgstore, one
// fresh migrated database per store.
func TestConformance(t *testing.T) {
	t.Parallel()
	// The randomised tests ask for a store per check, sequentially, all with
	// the same t; their databases are dropped only when t ends. Closing the
	// previous check's pool when the next store is made keeps the number of
	// open connections bounded.
	var (
		mu   sync.Mutex
		last = map[*testing.T]*pgxpool.Pool{}
	)
	conformance.Run(t, conformance.Harness{
		NewStore: func(t *testing.T) conformance.Store {
			pool := newPool(t)
			mu.Lock()
			if prev := last[t]; prev != nil {
				prev.Close()
			}
			last[t] = pool
			mu.Unlock()
			t.Cleanup(func() {
				mu.Lock()
				delete(last, t)
				mu.Unlock()
			})
			return pgstore.New(pool)
		},
	})
}
