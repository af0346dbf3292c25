package memstore_test

import (
	"testing"

	"github.com/prebuildkit/prebuildkit/conformance"
	"github.com/prebuildkit/prebuildkit/memstore"
)

// TestConformance runs the exported conformance suite against memstore.
func TestConformance(t *testing.T) {
	t.Parallel()
	conformance.Run(t, conformance.Harness{
		NewStore: func(*testing.T) conformance.Store { return memstore.New() },
	})
}
