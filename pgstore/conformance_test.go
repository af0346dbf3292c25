package pgstore_test

import (
	"testing"

	"github.com/coder/quartz"

	"github.com/prebuildkit/prebuildkit/conformance"
	"github.com/prebuildkit/prebuildkit/pgstore"
)

// TestConformance runs the exported conformance suite against pgstore, one
// fresh migrated database per store.
func TestConformance(t *testing.T) {
	t.Parallel()
	conformance.Run(t, conformance.Harness{
		NewStore: func(t *testing.T, _ *quartz.Mock) conformance.Store {
			return pgstore.New(newPool(t))
		},
		StateMachineChecks: 25,
	})
}
