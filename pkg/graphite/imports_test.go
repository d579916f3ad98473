package graphite

import (
	"go/build"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/meridianhq/meridian/"

// meridianDeps returns the Meridian packages pkg imports, directly or not
// (test files excluded).
func meridianDeps(t *testing.T, pkg string) map[string]bool {
	t.Helper()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	seen := map[string]bool{}
	var walk func(p string)
	walk = func(p string) {
		bp, err := build.ImportDir(filepath.Join(root, strings.TrimPrefix(p, module)), 0)
		require.NoError(t, err, p)
		for _, imp := range bp.Imports {
			if strings.HasPrefix(imp, module) && !seen[imp] {
				seen[imp] = true
				walk(imp)
			}
		}
	}
	walk(pkg)
	return seen
}

// TestWriteAndReadSidesApart: carbon (the distributor's side) and the
// querier's side (api, render, functions, parser) do not import each other;
// both share only the path mapping.
func TestWriteAndReadSidesApart(t *testing.T) {
	const g = module + "pkg/graphite/"
	read := []string{g + "api", g + "render", g + "functions", g + "parser"}
	carbonDeps := meridianDeps(t, g+"carbon")
	for _, r := range read {
		require.False(t, carbonDeps[r], "carbon imports %s", r)
		require.False(t, meridianDeps(t, r)[g+"carbon"], "%s imports carbon", r)
	}
	require.True(t, carbonDeps[g+"mapping"])
	require.True(t, meridianDeps(t, g+"api")[g+"mapping"])
}
