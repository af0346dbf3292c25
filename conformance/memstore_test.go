package conformance_test

import (
	"testing"

	"github.com/coder/quartz"

	"github.com/prebuildkit/prebuildkit/conformance"
	"github.com/prebuildkit/prebuildkit/memstore"
)

// TestMemstoreConformance runs the conformance suite against memstore.
func TestMemstoreConformance(t *testing.T) {
	t.Parallel()
	conformance.Run(t, conformance.Harness{
		NewStore: func(*testing.T, *quartz.Mock) conformance.Store { return memstore.New() },
	})
}
