package render

import (
	"math"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/graphite/functions"
)

func TestRenderFormats(t *testing.T) {
	nan := math.NaN()
	all := []*functions.Series{
		{Name: "a.b", Tags: map[string]string{"name": "a.b"}, Start: 60, End: 240, Step: 60, Values: []float64{1.5, nan, 3}},
		{Name: "empty", Tags: map[string]string{"name": "empty"}, Start: 60, End: 120, Step: 60, Values: []float64{nan}},
	}
	rec := httptest.NewRecorder()
	writeRenderJSON(rec, all, false)
	require.JSONEq(t, `[{"target":"a.b","tags":{"name":"a.b"},"datapoints":[[1.5,60],[null,120],[3,180]]},
		{"target":"empty","tags":{"name":"empty"},"datapoints":[[null,60]]}]`, rec.Body.String())

	rec = httptest.NewRecorder()
	writeRenderJSON(rec, all, true)
	require.JSONEq(t, `[{"target":"a.b","tags":{"name":"a.b"},"datapoints":[[1.5,60],[3,180]]}]`, rec.Body.String())

	rec = httptest.NewRecorder()
	writeCSV(rec, all[:1], false)
	require.Equal(t, "a.b,1970-01-01 00:01:00,1.5\r\na.b,1970-01-01 00:02:00,\r\na.b,1970-01-01 00:03:00,3\r\n", rec.Body.String())

	rec = httptest.NewRecorder()
	writeRaw(rec, all[:1])
	require.Equal(t, "a.b,60,240,60|1.5,None,3\n", rec.Body.String())
}
