package render

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPartValuesRoundTrip(t *testing.T) {
	in := PartValues{1.5, math.NaN(), math.Inf(1), math.Inf(-1), 0, -2e-300, 1e300}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	require.Equal(t, `[1.5,null,"+Inf","-Inf",0,-2e-300,1e+300]`, string(b))
	var out PartValues
	require.NoError(t, json.Unmarshal(b, &out))
	require.Len(t, out, len(in))
	for i := range in {
		if math.IsNaN(in[i]) {
			require.True(t, math.IsNaN(out[i]))
			continue
		}
		require.Equal(t, in[i], out[i])
	}
	require.NoError(t, json.Unmarshal([]byte(`[]`), &out))
	require.Empty(t, out)
}
