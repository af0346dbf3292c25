package memstore_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func newPrebuilds(n int) []prebuilds.NewPrebuild {
	out := make([]prebuilds.NewPrebuild, n)
	for i := range out {
		out[i] = prebuilds.NewPrebuild{InstanceID: uuid.New(), BuildID: uuid.New(), Name: "pb-" + uuid.NewString()}
	}
	return out
}

func TestReconciliationLock(t *testing.T) {
	t.Parallel()
	t.Run("ReleasedOnPanic", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		require.Panics(t, func() {
			_, _ = f.s.WithReconciliationLock(f.ctx, func(context.Context, prebuilds.SnapshotReader) error { panic("fn") })
		})
		acquired, err := f.s.WithReconciliationLock(f.ctx, func(context.Context, prebuilds.SnapshotReader) error { return nil })
		require.True(t, acquired)
		require.NoError(t, err)
	})
	t.Run("NestedIsNotAcquired", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		called := false
		acquired, err := f.s.WithReconciliationLock(f.ctx, func(ctx context.Context, _ prebuilds.SnapshotReader) error {
			inner, err := f.s.WithReconciliationLock(ctx, func(context.Context, prebuilds.SnapshotReader) error {
				called = true
				return nil
			})
			require.False(t, inner)
			return err
		})
		require.True(t, acquired)
		require.NoError(t, err)
		require.False(t, called, "fn must not run without the lock")
	})
	t.Run("ReaderExpiresWithFn", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		var kept prebuilds.SnapshotReader
		_, err := f.s.WithReconciliationLock(f.ctx, func(_ context.Context, r prebuilds.SnapshotReader) error {
			kept = r
			return nil
		})
		require.NoError(t, err)
		_, err = kept.Snapshot(f.ctx, prebuilds.SnapshotParams{Now: t0})
		require.ErrorIs(t, err, prebuilds.ErrConflict)
	})
}
