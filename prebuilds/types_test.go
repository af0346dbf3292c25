package prebuilds_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

func TestJobStatusPredicates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		s                        prebuilds.JobStatus
		valid, inProgress, ended bool
	}{
		{prebuilds.JobPending, true, true, false},
		{prebuilds.JobRunning, true, true, false},
		{prebuilds.JobCanceling, true, false, false},
		{prebuilds.JobSucceeded, true, false, true},
		{prebuilds.JobFailed, true, false, true},
		{prebuilds.JobCanceled, true, false, true},
		{"", false, false, false},
		{"done", false, false, false},
	} {
		require.Equal(t, tc.valid, tc.s.Valid(), "%q.Valid", tc.s)
		require.Equal(t, tc.inProgress, tc.s.InProgress(), "%q.InProgress", tc.s)
		require.Equal(t, tc.ended, tc.s.Terminal(), "%q.Terminal", tc.s)
	}
}
