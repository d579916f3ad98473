package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const sampleMap = `# Architecture

## Package map

| package | owns | may import |
|---|---|---|
| ` + "`pkg/limits`" + ` | per-tenant limits | nothing |
| ` + "`pkg/querier`" + ` | the read path | ` + "`pkg/limits`, `pkg/util/...`" + ` |
| ` + "`pkg/graphite/...`" + ` | Graphite | ` + "`pkg/querier`" + ` |
| ` + "`pkg/graphite/carbon`" + ` | carbon ingestion | ` + "`pkg/limits`" + ` |

Text after the table.

| ` + "`pkg/other`" + ` | not part of the map | ` + "`pkg/querier`" + ` |
`

func TestParseMap(t *testing.T) {
	rules, err := parseMap(strings.NewReader(sampleMap), "## Package map")
	require.NoError(t, err)
	require.Equal(t, []rule{
		{pattern: "pkg/limits"},
		{pattern: "pkg/querier", allowed: []string{"pkg/limits", "pkg/util/..."}},
		{pattern: "pkg/graphite/...", allowed: []string{"pkg/querier"}},
		{pattern: "pkg/graphite/carbon", allowed: []string{"pkg/limits"}},
	}, rules)

	_, err = parseMap(strings.NewReader(sampleMap), "## Nowhere")
	require.ErrorContains(t, err, "no heading")
}

func TestCheck(t *testing.T) {
	rules, err := parseMap(strings.NewReader(sampleMap), "## Package map")
	require.NoError(t, err)
	const m = "example.com/mod"
	imports := map[string][]string{
		m + "/pkg/limits":          {"fmt"},
		m + "/pkg/querier":         {"fmt", m + "/pkg/limits", m + "/pkg/util/matchers", m + "/pkg/graphite/api"},
		m + "/pkg/graphite/api":    {m + "/pkg/querier", m + "/pkg/graphite/parser"},
		m + "/pkg/graphite/parser": nil,
		m + "/pkg/graphite/carbon": {m + "/pkg/querier", m + "/pkg/limits"},
		m + "/pkg/unmapped":        nil,
	}
	require.Equal(t, []string{
		"pkg/graphite/carbon imports pkg/querier, which its row (`pkg/graphite/carbon`) does not allow",
		"pkg/querier imports pkg/graphite/api, which its row (`pkg/querier`) does not allow",
		"pkg/unmapped: no row in the package map; add one saying what it owns and what it may import",
	}, check(rules, m, imports))
}
