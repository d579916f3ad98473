package ringutil

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestShuffleShardSize(t *testing.T) {
	for _, tc := range []struct{ size, rf, want int }{
		{size: 0, rf: 3, want: 0},  // all instances
		{size: -1, rf: 3, want: 0}, // never reaches here (limits validate), but means all
		{size: 1, rf: 3, want: 3},  // never fewer replicas than RF
		{size: 3, rf: 3, want: 3},
		{size: 5, rf: 3, want: 5},
	} {
		require.Equal(t, tc.want, ShuffleShardSize(tc.size, tc.rf), "size %d rf %d", tc.size, tc.rf)
	}
}
