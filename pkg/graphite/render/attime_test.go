package render

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 25, 14, 37, 21, 0, time.UTC)
	midnight := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"now", now},
		{"-1h", now.Add(-time.Hour)},
		{"-5min", now.Add(-5 * time.Minute)},
		{"-5m", now.Add(-5 * time.Minute)},
		{"-30s", now.Add(-30 * time.Second)},
		{"-1d", now.Add(-24 * time.Hour)},
		{"-2w", now.Add(-14 * 24 * time.Hour)},
		{"-1mon", now.Add(-30 * 24 * time.Hour)},
		{"-1y", now.Add(-365 * 24 * time.Hour)},
		{"-1d12h", now.Add(-36 * time.Hour)},
		{"+1h", now.Add(time.Hour)},
		{"now-1h", now.Add(-time.Hour)},
		{"1700000000", time.Unix(1700000000, 0)},
		{"20240102", time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)},
		{"14:30_20240102", time.Date(2024, 1, 2, 14, 30, 0, 0, time.UTC)},
		{"02:30pm_20240102", time.Date(2024, 1, 2, 14, 30, 0, 0, time.UTC)},
		{"midnight", midnight},
		{"noon", midnight.Add(12 * time.Hour)},
		{"teatime", midnight.Add(16 * time.Hour)},
		{"today", midnight},
		{"yesterday", midnight.AddDate(0, 0, -1)},
		{"tomorrow", midnight.AddDate(0, 0, 1)},
		{"noon yesterday", midnight.AddDate(0, 0, -1).Add(12 * time.Hour)},
		{"midnight-1d", midnight.AddDate(0, 0, -1)},
		{"01/02/2024", time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)},
		{"01/02/24", time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := ParseTime(tc.in, now, time.UTC)
		require.NoError(t, err, tc.in)
		require.True(t, tc.want.Equal(got), "%s: want %s, got %s", tc.in, tc.want, got)
	}
	for _, bad := range []string{"", "-1", "-1x", "soon", "25:00_20240102", "-h"} {
		_, err := ParseTime(bad, now, time.UTC)
		require.Error(t, err, bad)
	}
}

func TestParseTimeZone(t *testing.T) {
	loc := time.FixedZone("X", 2*3600)
	now := time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC) // 03:00 in X
	got, err := ParseTime("midnight", now, loc)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 11, 24, 22, 0, 0, 0, time.UTC).Unix(), got.Unix())
}
