package distributor

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"

	"github.com/meridianhq/meridian/pkg/limits"
)

var validationNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func validationLimits() limits.Limits {
	return limits.Limits{
		MaxLabelNameLength:     64,
		MaxLabelValueLength:    128,
		MaxLabelNamesPerSeries: 5,
		CreationGracePeriod:    model.Duration(10 * time.Minute),
	}
}

// labelPairs builds labels from name, value pairs, in the order given.
func labelPairs(nv ...string) []prompb.Label {
	ls := make([]prompb.Label, 0, len(nv)/2)
	for i := 0; i+1 < len(nv); i += 2 {
		ls = append(ls, prompb.Label{Name: nv[i], Value: nv[i+1]})
	}
	return ls
}

func oneSampleSeries(ls []prompb.Label) prompb.TimeSeries {
	return prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: 1, Timestamp: validationNow.UnixMilli()}}}
}

func TestValidateSeries(t *testing.T) {
	nowMs := validationNow.UnixMilli()
	year3000 := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

	tests := []struct {
		name       string
		ts         prompb.TimeSeries
		wantID     string   // "" means valid
		wantMsg    []string // substrings of the message
		wantLabels []prompb.Label
	}{
		{
			name:       "valid",
			ts:         oneSampleSeries(labelPairs("__name__", "up", "job", "a")),
			wantLabels: labelPairs("__name__", "up", "job", "a"),
		},
		{
			name:       "unsorted labels are sorted, not rejected",
			ts:         oneSampleSeries(labelPairs("zone", "z", "__name__", "up", "job", "a")),
			wantLabels: labelPairs("__name__", "up", "job", "a", "zone", "z"),
		},
		{
			name:       "empty label values are dropped",
			ts:         oneSampleSeries(labelPairs("__name__", "up", "empty", "", "job", "a", "z", "")),
			wantLabels: labelPairs("__name__", "up", "job", "a"),
		},
		{
			name:       "colon in metric name",
			ts:         oneSampleSeries(labelPairs("__name__", "job:up:sum")),
			wantLabels: labelPairs("__name__", "job:up:sum"),
		},
		{
			name:    "missing metric name",
			ts:      oneSampleSeries(labelPairs("job", "a")),
			wantID:  ErrIDMissingMetricName,
			wantMsg: []string{"no metric name", `series {job="a"}`},
		},
		{
			name:   "empty metric name counts as missing",
			ts:     oneSampleSeries(labelPairs("__name__", "", "job", "a")),
			wantID: ErrIDMissingMetricName,
		},
		{
			name:    "invalid metric name",
			ts:      oneSampleSeries(labelPairs("__name__", "1up")),
			wantID:  ErrIDInvalidMetricName,
			wantMsg: []string{`metric name "1up"`, "[a-zA-Z_:][a-zA-Z0-9_:]*"},
		},
		{
			name:    "invalid label name",
			ts:      oneSampleSeries(labelPairs("__name__", "up", "a-b", "x")),
			wantID:  ErrIDInvalidLabelName,
			wantMsg: []string{`label name "a-b"`, "[a-zA-Z_][a-zA-Z0-9_]*", `"a-b"="x"`},
		},
		{
			name:   "colon is not allowed in a label name",
			ts:     oneSampleSeries(labelPairs("__name__", "up", "a:b", "x")),
			wantID: ErrIDInvalidLabelName,
		},
		{
			name:    "label name too long",
			ts:      oneSampleSeries(labelPairs("__name__", "up", strings.Repeat("n", 65), "x")),
			wantID:  ErrIDLabelNameTooLong,
			wantMsg: []string{"65 bytes long, over the limit of 64", "-validation.max-length-label-name", "max_label_name_length"},
		},
		{
			name:    "label value too long",
			ts:      oneSampleSeries(labelPairs("__name__", "up", "job", strings.Repeat("v", 129))),
			wantID:  ErrIDLabelValueTooLong,
			wantMsg: []string{`value of label "job" is 129 bytes long, over the limit of 128`, "-validation.max-length-label-value", "max_label_value_length"},
		},
		{
			name:    "too many labels",
			ts:      oneSampleSeries(labelPairs("__name__", "up", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5")),
			wantID:  ErrIDTooManyLabels,
			wantMsg: []string{"6 labels, over the limit of 5", "-validation.max-label-names-per-series", "max_label_names_per_series"},
		},
		{
			name:       "dropped empty labels do not count towards the limit",
			ts:         oneSampleSeries(labelPairs("__name__", "up", "a", "1", "b", "2", "c", "3", "d", "4", "e", "")),
			wantLabels: labelPairs("__name__", "up", "a", "1", "b", "2", "c", "3", "d", "4"),
		},
		{
			name:    "duplicate label names",
			ts:      oneSampleSeries(labelPairs("__name__", "up", "job", "a", "job", "b")),
			wantID:  ErrIDDuplicateLabelNames,
			wantMsg: []string{`label name "job" appears more than once`},
		},
		{
			name:    "invalid UTF-8 in a label value",
			ts:      oneSampleSeries(labelPairs("__name__", "up", "job", "a\xffb")),
			wantID:  ErrIDInvalidUTF8,
			wantMsg: []string{`label "job"`, "not valid UTF-8", `job="a\xffb"`},
		},
		{
			name:    "invalid UTF-8 in a label name",
			ts:      oneSampleSeries(labelPairs("__name__", "up", "j\xffb", "a")),
			wantID:  ErrIDInvalidUTF8,
			wantMsg: []string{`label "j\xffb"`},
		},
		{
			name: "sample in the year 3000",
			ts: prompb.TimeSeries{
				Labels:  labelPairs("__name__", "up"),
				Samples: []prompb.Sample{{Timestamp: nowMs}, {Timestamp: year3000}},
			},
			wantID:  ErrIDSampleTooFarInFuture,
			wantMsg: []string{"3000-01-01T00:00:00Z", "over the limit of 10m0s", "-validation.create-grace-period", "creation_grace_period"},
		},
		{
			name: "sample within the grace period",
			ts: prompb.TimeSeries{
				Labels:  labelPairs("__name__", "up"),
				Samples: []prompb.Sample{{Timestamp: nowMs + (10 * time.Minute).Milliseconds()}},
			},
			wantLabels: labelPairs("__name__", "up"),
		},
		{
			name: "histogram too far in the future",
			ts: prompb.TimeSeries{
				Labels:     labelPairs("__name__", "up"),
				Histograms: []prompb.Histogram{{Timestamp: nowMs + time.Hour.Milliseconds()}},
			},
			wantID:  ErrIDSampleTooFarInFuture,
			wantMsg: []string{"is 1h0m0s ahead"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := validationLimits()
			maxTs := nowMs + time.Duration(lim.CreationGracePeriod).Milliseconds()
			verr, ok := validateSeries(&tt.ts, &lim, maxTs, false)
			if tt.wantID == "" {
				require.True(t, ok, "unexpected rejection %s: %s", verr.id, verr.message(&tt.ts, nowMs))
				require.Equal(t, tt.wantLabels, tt.ts.Labels)
				return
			}
			require.False(t, ok)
			require.Equal(t, tt.wantID, verr.id)
			msg := verr.message(&tt.ts, nowMs)
			for _, want := range tt.wantMsg {
				require.Contains(t, msg, want)
			}
		})
	}
}

func TestValidateRequest(t *testing.T) {
	lim := validationLimits()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		oneSampleSeries(labelPairs("__name__", "good1")),
		oneSampleSeries(labelPairs("job", "nameless")),
		{Labels: labelPairs("__name__", "no_samples")},
		oneSampleSeries(labelPairs("__name__", "good2", "b", "2", "a", "1")),
		oneSampleSeries(labelPairs("__name__", "bad", "x", strings.Repeat("v", 200))),
		oneSampleSeries(labelPairs("__name__", "good3")),
	}}
	var rej rejections
	validateRequest(req, &lim, validationNow, &rej, validateOptions{})

	require.Equal(t, []prompb.TimeSeries{
		oneSampleSeries(labelPairs("__name__", "good1")),
		oneSampleSeries(labelPairs("__name__", "good2", "a", "1", "b", "2")),
		oneSampleSeries(labelPairs("__name__", "good3")),
	}, req.Timeseries)
	require.Equal(t, 2, rej.series)
	require.Equal(t, map[string]int{ErrIDMissingMetricName: 1, ErrIDLabelValueTooLong: 1}, rej.seriesByID)
	require.Equal(t, map[string]int{ErrIDMissingMetricName: 1, ErrIDLabelValueTooLong: 1}, rej.samplesByID)
	require.Len(t, rej.shown, 2)
	require.True(t, strings.HasPrefix(rej.shown[0], ErrIDMissingMetricName+": "))
	require.True(t, strings.HasPrefix(rej.shown[1], ErrIDLabelValueTooLong+": "))

	report := rej.report(6, true)
	require.Contains(t, report, "2 of 6 series rejected, the other series were stored:\n")
	require.Contains(t, report, "rejected series per error ID: "+ErrIDLabelValueTooLong+"=1, "+ErrIDMissingMetricName+"=1\n")
}

func TestRejectionsShowsFirstFive(t *testing.T) {
	var rej rejections
	for i := 0; i < 8; i++ {
		rej.add(ErrIDTooManyLabels, 2, func() string { return "too many" })
	}
	require.Equal(t, 8, rej.series)
	require.Len(t, rej.shown, maxShownRejections)
	require.Equal(t, 16, rej.samplesByID[ErrIDTooManyLabels])
	report := rej.report(10, true)
	require.Contains(t, report, "8 of 10 series rejected (first 5 shown)")
	require.Equal(t, 5, strings.Count(report, " "+ErrIDTooManyLabels+": too many\n"))
}

func TestFormatSeries(t *testing.T) {
	tests := []struct {
		name   string
		labels []prompb.Label
		want   string
	}{
		{name: "short", labels: labelPairs("__name__", "up", "job", "a"), want: `{__name__="up", job="a"}`},
		{name: "escapes", labels: labelPairs("a-b", "x\"\n\xff"), want: `{"a-b"="x\"\n\xff"}`},
		{name: "empty", want: `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, formatSeries(tt.labels))
		})
	}

	t.Run("long series are cut", func(t *testing.T) {
		got := formatSeries(labelPairs("__name__", "up", "big", strings.Repeat("é", 10<<20)))
		require.LessOrEqual(t, len(got), maxSeriesChars+4)
		require.True(t, strings.HasPrefix(got, `{__name__="up", big="éé`))
		require.True(t, strings.HasSuffix(got, "...}"))
		require.True(t, utf8.ValidString(got))
	})
}

func TestValidNames(t *testing.T) {
	tests := []struct {
		s                  string
		wantLabel, wantMet bool
	}{
		{"up", true, true},
		{"_x9", true, true},
		{"__name__", true, true},
		{"a:b", false, true},
		{":a", false, true},
		{"9a", false, false},
		{"", false, false},
		{"a-b", false, false},
		{"é", false, false},
	}
	for _, tt := range tests {
		require.Equal(t, tt.wantLabel, validLabelName(tt.s), "label name %q", tt.s)
		require.Equal(t, tt.wantMet, validMetricName(tt.s), "metric name %q", tt.s)
	}
}

// validationBenchRequest builds a request of n valid series with 10 sorted labels each.
func validationBenchRequest(n int) *prompb.WriteRequest {
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, n)}
	for i := range req.Timeseries {
		req.Timeseries[i] = prompb.TimeSeries{
			Labels: labelPairs("__name__", "http_requests_total", "cluster", "eu-west-1", "code", "200",
				"handler", "/api/v1/push", "instance", "10.0.0.1:8080", "job", "meridian",
				"method", "POST", "namespace", "prod", "pod", "meridian-0", "zone", "a"),
			Samples: []prompb.Sample{{Value: float64(i), Timestamp: validationNow.UnixMilli()}},
		}
	}
	return req
}

func TestValidateRequestDoesNotAllocateWhenValid(t *testing.T) {
	lim := validationLimits()
	lim.MaxLabelNamesPerSeries = 30
	req := validationBenchRequest(100)
	allocs := testing.AllocsPerRun(20, func() {
		var rej rejections
		validateRequest(req, &lim, validationNow, &rej, validateOptions{})
		if rej.series != 0 || len(req.Timeseries) != 100 {
			panic("benchmark request rejected")
		}
	})
	require.Zero(t, allocs)
}

func BenchmarkValidate(b *testing.B) {
	lim := validationLimits()
	lim.MaxLabelNamesPerSeries = 30
	req := validationBenchRequest(1000)
	b.ReportAllocs()
	for b.Loop() {
		var rej rejections
		validateRequest(req, &lim, validationNow, &rej, validateOptions{})
		if rej.series != 0 {
			b.Fatal(rej.shown)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(req.Timeseries)), "ns/series")
}
