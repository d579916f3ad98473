package render

import (
	"encoding/json"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/meridianhq/meridian/pkg/graphite/functions"
)

// Consolidate consolidates every series of a render answer to at
// most maxDataPoints points (0: unchanged), as graphite-web's render does:
// over the answer's whole span (latest end - earliest start), not each
// series' own.
func Consolidate(all []*functions.Series, maxDataPoints int) []*functions.Series {
	if maxDataPoints <= 0 || len(all) == 0 {
		return all
	}
	lo, hi := all[0].Start, all[0].End
	for _, s := range all {
		lo, hi = min(lo, s.Start), max(hi, s.End)
	}
	out := make([]*functions.Series, len(all))
	for i, s := range all {
		out[i] = functions.ConsolidateRange(s, maxDataPoints, hi-lo)
	}
	return out
}

// ContentType is the Content-Type of a render answer in format.
func ContentType(format string) string {
	switch format {
	case FormatCSV:
		return "text/csv"
	case FormatRaw:
		return "text/plain"
	}
	return "application/json"
}

// Write encodes a render answer in format (json, csv or raw).
func Write(w io.Writer, all []*functions.Series, format string, noNull bool) {
	switch format {
	case FormatCSV:
		writeCSV(w, all, noNull)
	case FormatRaw:
		writeRaw(w, all)
	default:
		writeRenderJSON(w, all, noNull)
	}
}

// formatValue writes a value as graphite-web's JSON does: null for NaN,
// 1e9999 / -1e9999 for infinities (Python's float encoder), shortest
// round-tripping decimal otherwise.
func formatValue(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, "null"...)
	case math.IsInf(v, 1):
		return append(b, "1e9999"...)
	case math.IsInf(v, -1):
		return append(b, "-1e9999"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

func writeRenderJSON(w io.Writer, all []*functions.Series, noNull bool) {
	b := make([]byte, 0, 4096)
	b = append(b, '[')
	first := true
	for _, s := range all {
		if noNull && allNull(s.Values) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		name, _ := json.Marshal(s.Name)
		tags := s.Tags
		if tags == nil {
			tags = map[string]string{}
		}
		tj, _ := json.Marshal(tags)
		b = append(b, `{"target":`...)
		b = append(b, name...)
		b = append(b, `,"tags":`...)
		b = append(b, tj...)
		b = append(b, `,"datapoints":[`...)
		firstPoint := true
		for i, v := range s.Values {
			if noNull && math.IsNaN(v) {
				continue
			}
			if !firstPoint {
				b = append(b, ',')
			}
			firstPoint = false
			b = append(b, '[')
			b = formatValue(b, v)
			b = append(b, ',')
			b = strconv.AppendInt(b, s.Start+int64(i)*s.Step, 10)
			b = append(b, ']')
		}
		b = append(b, "]}"...)
		if len(b) > 1<<20 {
			_, _ = w.Write(b)
			b = b[:0]
		}
	}
	b = append(b, ']')
	_, _ = w.Write(b)
}

func allNull(vs []float64) bool {
	for _, v := range vs {
		if !math.IsNaN(v) {
			return false
		}
	}
	return true
}

// writeCSV writes name,YYYY-MM-DD HH:MM:SS,value lines (UTC), an empty value
// for null, as graphite-web's csv format.
func writeCSV(w io.Writer, all []*functions.Series, noNull bool) {
	var b []byte
	for _, s := range all {
		name := s.Name
		if strings.ContainsAny(name, ",\"\n") {
			name = `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
		}
		for i, v := range s.Values {
			if noNull && math.IsNaN(v) {
				continue
			}
			b = append(b, name...)
			b = append(b, ',')
			b = time.Unix(s.Start+int64(i)*s.Step, 0).UTC().AppendFormat(b, "2006-01-02 15:04:05")
			b = append(b, ',')
			if !math.IsNaN(v) {
				b = strconv.AppendFloat(b, v, 'g', -1, 64)
			}
			b = append(b, '\r', '\n')
		}
	}
	_, _ = w.Write(b)
}

// writeRaw writes name,start,end,step|v1,v2,... per series, None for null.
func writeRaw(w io.Writer, all []*functions.Series) {
	var b []byte
	for _, s := range all {
		b = append(b, s.Name...)
		b = append(b, ',')
		b = strconv.AppendInt(b, s.Start, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, s.End, 10)
		b = append(b, ',')
		b = strconv.AppendInt(b, s.Step, 10)
		b = append(b, '|')
		for i, v := range s.Values {
			if i > 0 {
				b = append(b, ',')
			}
			if math.IsNaN(v) {
				b = append(b, "None"...)
			} else {
				b = strconv.AppendFloat(b, v, 'g', -1, 64)
			}
		}
		b = append(b, '\n')
	}
	_, _ = w.Write(b)
}
