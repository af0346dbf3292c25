package pgstore_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// TestErrorsNamePackage: pgstore's errors start with "pgstore: " and wrap
// the sentinel. Which sentinel each failing call returns, and in which
// order the checks run, is the conformance suite's (Errors/...).
func TestErrorsNamePackage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := f.ctx
	_, getErr := f.s.GetPreset(ctx, uuid.New())
	_, claimErr := f.s.Claim(ctx, prebuilds.ClaimParams{PresetID: uuid.New(), Owner: uuid.Nil, Now: t0})
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"create template without name", f.s.CreateTemplate(ctx, prebuilds.Template{ID: uuid.New()}), prebuilds.ErrInvalidArgument},
		{"create version of a missing template", f.s.CreateTemplateVersion(ctx, prebuilds.TemplateVersion{ID: uuid.New(), TemplateID: uuid.New()}), prebuilds.ErrNotFound},
		{"activate a missing version", f.s.SetActiveVersion(ctx, f.tmpl, uuid.New()), prebuilds.ErrNotFound},
		{"delete a missing template", f.s.DeleteTemplate(ctx, uuid.New()), prebuilds.ErrNotFound},
		{"get a missing preset", getErr, prebuilds.ErrNotFound},
		{"claim for nobody", claimErr, prebuilds.ErrInvalidArgument},
	}
	for _, c := range cases {
		require.ErrorIs(t, c.err, c.want, c.name)
		require.ErrorContains(t, c.err, "pgstore: ", c.name)
	}
}
