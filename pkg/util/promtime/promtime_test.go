package promtime

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	v1 "github.com/prometheus/prometheus/web/api/v1"
	"github.com/stretchr/testify/require"
)

func TestSentinelsArePrometheus(t *testing.T) {
	require.True(t, MinTime.Equal(v1.MinTime))
	require.True(t, MaxTime.Equal(v1.MaxTime))
	require.Equal(t, "-292273086-05-16T16:47:06Z", minTimeFormatted)
	require.Equal(t, "292277025-08-18T07:12:54.999999999Z", maxTimeFormatted)
}

func TestParseTime(t *testing.T) {
	ms := func(sec, msec int64) time.Time { return time.Unix(sec, msec*int64(time.Millisecond)).UTC() }
	tests := []struct {
		in      string
		want    time.Time
		wantErr string
	}{
		{in: "0", want: ms(0, 0)},
		{in: "1700000000", want: ms(1700000000, 0)},
		{in: "1700000000.123", want: ms(1700000000, 123)},
		// Fractions round to the nearest millisecond, halves away from zero.
		{in: "1700000000.1234", want: ms(1700000000, 123)},
		{in: "1700000000.1235", want: ms(1700000000, 124)},
		{in: "1.0015", want: ms(1, 2)},
		// 1.0005 is a hair below the half in binary.
		{in: "1.0005", want: ms(1, 0)},
		{in: "1.0004999", want: ms(1, 0)},
		{in: "0.9996", want: ms(1, 0)},
		{in: "-1.5", want: ms(-2, 500)},
		{in: "-1.0015", want: ms(-2, 998)},
		{in: "-1.0005", want: ms(-1, 0)},
		{in: "1e3", want: ms(1000, 0)},
		// RFC 3339 keeps nanoseconds; Millis says whether they are exact.
		{in: "2026-01-02T03:04:05Z", want: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{in: "2026-01-02T03:04:05.5+01:00", want: time.Date(2026, 1, 2, 2, 4, 5, 5e8, time.UTC)},
		{in: "1970-01-01T00:00:00.0005Z", want: time.Unix(0, 500_000).UTC()},
		{in: "-292273086-05-16T16:47:06Z", want: MinTime},
		{in: "292277025-08-18T07:12:54.999999999Z", want: MaxTime},
		{in: "", wantErr: `cannot parse "" to a valid timestamp`},
		{in: "tomorrow", wantErr: `cannot parse "tomorrow" to a valid timestamp`},
		{in: "-292273086-05-16T16:47:07Z", wantErr: "cannot parse"}, // only the sentinels themselves
	}
	for _, tc := range tests {
		got, err := ParseTime(tc.in)
		if tc.wantErr != "" {
			require.ErrorContains(t, err, tc.wantErr, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.True(t, tc.want.Equal(got), "%s: got %s want %s", tc.in, got, tc.want)
	}
}

func TestParseTimeParam(t *testing.T) {
	form := map[string]string{"start": "10", "end": "soon"}
	get := func(k string) string { return form[k] }
	got, err := ParseTimeParam(get, "start", MinTime)
	require.NoError(t, err)
	require.True(t, got.Equal(time.Unix(10, 0)))
	got, err = ParseTimeParam(get, "time", MaxTime)
	require.NoError(t, err)
	require.True(t, got.Equal(MaxTime))
	_, err = ParseTimeParam(get, "end", MaxTime)
	require.EqualError(t, err, `invalid time value for 'end': cannot parse "soon" to a valid timestamp`)
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "15", want: 15 * time.Second},
		{in: "0.5", want: 500 * time.Millisecond},
		// Float seconds truncate to nanoseconds, so 1.001 is a hair short
		// of 1001ms (and the engine steps by 1000ms).
		{in: "1.001", want: time.Second + time.Millisecond - 1},
		{in: "0.0000000019", want: 1},
		{in: "-1", want: -time.Second},
		{in: "5m", want: 5 * time.Minute},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "1001ms", want: 1001 * time.Millisecond},
		{in: "1e30", wantErr: `cannot parse "1e30" to a valid duration. It overflows int64`},
		{in: "9223372036.854775807", wantErr: "overflows int64"},
		{in: "NaN", wantErr: "overflows int64"},
		{in: "-Inf", wantErr: "overflows int64"},
		{in: "soon", wantErr: `cannot parse "soon" to a valid duration`},
		{in: "", wantErr: `cannot parse "" to a valid duration`},
		{in: "-5m", wantErr: `cannot parse "-5m" to a valid duration`},
	}
	for _, tc := range tests {
		got, err := ParseDuration(tc.in)
		if tc.wantErr != "" {
			require.ErrorContains(t, err, tc.wantErr, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.want, got, tc.in)
	}
}

func TestMillis(t *testing.T) {
	tests := []struct {
		t      time.Time
		want   int64
		wantOK bool
	}{
		{t: time.Unix(1700000000, 123e6), want: 1700000000123, wantOK: true},
		{t: time.Unix(-2, 500e6), want: -1500, wantOK: true},
		// Sub-millisecond times truncate towards zero, as the engine does.
		{t: time.Unix(0, 500_000), want: 0},
		{t: time.Unix(0, -500_000), want: 0},
		{t: time.Unix(-1, 999_500_000), want: 0},
		{t: time.Unix(0, math.MaxInt64/1_000_000*1_000_000), want: math.MaxInt64 / 1_000_000, wantOK: true},
		{t: MinTime},
		{t: MaxTime},
		{t: time.Unix(1e15, 0)},
	}
	for _, tc := range tests {
		got, ok := Millis(tc.t)
		require.Equal(t, tc.wantOK, ok, tc.t.String())
		if ok || tc.want != 0 {
			require.Equal(t, tc.want, got, tc.t.String())
		}
	}
	ms, ok := DurationMillis(1001 * time.Millisecond)
	require.True(t, ok)
	require.EqualValues(t, 1001, ms)
	ms, ok = DurationMillis(time.Second + time.Millisecond - 1)
	require.False(t, ok)
	require.EqualValues(t, 1000, ms)
}

// TestFormatRoundTrips: what the frontend writes into a sub-query is read
// back by the querier as the same milliseconds.
func TestFormatRoundTrips(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	maxMs := int64(math.MaxInt64 / 1_000_000)
	times := []int64{0, 1, -1, 999, -999, 1001, 1700000000123, -1700000000123, maxMs, -maxMs}
	for range 100_000 {
		times = append(times, r.Int64N(2*maxMs)-maxMs)
	}
	for _, want := range times {
		tm, err := ParseTime(FormatMillis(want))
		require.NoError(t, err)
		got, ok := Millis(tm)
		require.True(t, ok, want)
		require.Equal(t, want, got, FormatMillis(want))
	}
	steps := []int64{1, 999, 1000, 1001, 15_000, 60_000, 86_400_000, 1e12 + 1}
	for range 10_000 {
		steps = append(steps, 1+r.Int64N(1e10))
	}
	for _, want := range steps {
		d, err := ParseDuration(FormatDurationMillis(want))
		require.NoError(t, err)
		got, ok := DurationMillis(d)
		require.True(t, ok, want)
		require.Equal(t, want, got, FormatDurationMillis(want))
	}
	require.Equal(t, "600", FormatDurationMillis(600_000))
	require.Equal(t, "1001ms", FormatDurationMillis(1001))
	require.Equal(t, "1.5", FormatMillis(1500))
}

// TestMillisIsTheEngines: the PromQL engine evaluates a range query parsed
// with ParseTime and ParseDuration at Millis(start) + k*DurationMillis(step)
// whenever both are ok.
func TestMillisIsTheEngines(t *testing.T) {
	ng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute})
	empty := storage.QueryableFunc(func(int64, int64) (storage.Querier, error) { return storage.NoopQuerier(), nil })
	for _, w := range []struct{ start, end, step string }{
		{"0", "100", "15"},
		{"1700000000.123", "1700000060.9996", "7.5"},
		{"-1.5", "30", "1001ms"},
		{"1969-12-31T23:59:59.999Z", "1970-01-01T00:01:00Z", "10s"},
		{"2262-04-11T23:47:15.854Z", "2262-04-11T23:47:16Z", "100ms"},
	} {
		start, err := ParseTime(w.start)
		require.NoError(t, err)
		end, err := ParseTime(w.end)
		require.NoError(t, err)
		step, err := ParseDuration(w.step)
		require.NoError(t, err)
		s, ok1 := Millis(start)
		e, ok2 := Millis(end)
		st, ok3 := DurationMillis(step)
		require.True(t, ok1 && ok2 && ok3, w)

		q, err := ng.NewRangeQuery(context.Background(), empty, nil, "time()", start, end, step)
		require.NoError(t, err)
		res := q.Exec(context.Background())
		require.NoError(t, res.Err)
		m, err := res.Matrix()
		require.NoError(t, err)
		require.Len(t, m, 1)
		var want []int64
		for ts := s; ts <= e; ts += st {
			want = append(want, ts)
		}
		var got []int64
		for _, p := range m[0].Floats {
			got = append(got, p.T)
		}
		require.Equal(t, want, got, w)
		q.Close()
	}
}
