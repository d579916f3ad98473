// Command importcheck enforces the package map in docs/architecture.md: every
// package of the module must have a row there, and may import only the
// Meridian packages its row allows. The table in the docs is the rule itself,
// so the map a reader sees and the map `make lint` checks cannot drift.
//
// Usage (from the repository root): go run ./tools/importcheck
//
// A row of the table looks like
//
//	| `pkg/querier` | what it owns | `pkg/limits`, `pkg/util/...` |
//
// The first cell names a package, or a subtree with a trailing "/...". The
// last cell lists, in backticks, what it may import; a trailing "/..."
// allows a whole subtree, and a cell without backticks allows nothing. Only
// non-test imports count: tests may reach wider (integration tests start the
// wiring), production code may not.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
)

func main() {
	doc := flag.String("map", "docs/architecture.md", "the Markdown file with the package map")
	heading := flag.String("heading", "## Package map", "the heading of the section that holds the table")
	flag.Parse()

	f, err := os.Open(*doc)
	if err != nil {
		fail(err)
	}
	rules, err := parseMap(f, *heading)
	f.Close()
	if err != nil {
		fail(fmt.Errorf("read the package map in %s: %w", *doc, err))
	}
	module, imports, err := listImports()
	if err != nil {
		fail(err)
	}
	problems := check(rules, module, imports)
	for _, p := range problems {
		fmt.Fprintln(os.Stderr, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(os.Stderr, "importcheck: %d import(s) break the package map in %s: move the shared code to a package both may import, or change the map (and say why)\n", len(problems), *doc)
		os.Exit(1)
	}
	fmt.Printf("importcheck: %d packages follow the package map in %s\n", len(imports), *doc)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "importcheck:", err)
	os.Exit(2)
}

// rule is one row of the package map.
type rule struct {
	pattern string   // a package path relative to the module, or a subtree "a/b/..."
	allowed []string // patterns of the same form
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// parseMap reads the first Markdown table after heading.
func parseMap(r io.Reader, heading string) ([]rule, error) {
	sc := bufio.NewScanner(r)
	in, inTable := false, false
	var rules []rule
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !in {
			in = line == heading
			continue
		}
		if !strings.HasPrefix(line, "|") {
			if inTable {
				break
			}
			if strings.HasPrefix(line, "#") {
				break
			}
			continue
		}
		inTable = true
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) < 2 {
			continue
		}
		first := codeSpan.FindStringSubmatch(cells[0])
		if first == nil {
			continue // the header row and its separator
		}
		ru := rule{pattern: first[1]}
		for _, m := range codeSpan.FindAllStringSubmatch(cells[len(cells)-1], -1) {
			ru.allowed = append(ru.allowed, m[1])
		}
		rules = append(rules, ru)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !in {
		return nil, fmt.Errorf("no heading %q", heading)
	}
	if len(rules) == 0 {
		return nil, errors.New("no table rows after the heading")
	}
	return rules, nil
}

// matches reports whether pkg (relative to the module) is pattern or, for a
// pattern ending in "/...", in its subtree.
func matches(pattern, pkg string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == base || strings.HasPrefix(pkg, base+"/")
	}
	return pkg == pattern
}

// ruleFor returns the most specific rule for pkg: an exact row beats a
// subtree, a longer subtree beats a shorter one.
func ruleFor(rules []rule, pkg string) (rule, bool) {
	best, found := rule{}, false
	for _, r := range rules {
		if !matches(r.pattern, pkg) {
			continue
		}
		if !found || len(r.pattern) > len(best.pattern) || r.pattern == pkg {
			best, found = r, true
		}
		if r.pattern == pkg {
			break
		}
	}
	return best, found
}

// check returns one line per package without a row and per import its row
// does not allow. imports maps each package path (full) to its imports.
func check(rules []rule, module string, imports map[string][]string) []string {
	var problems []string
	pkgs := make([]string, 0, len(imports))
	for p := range imports {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, full := range pkgs {
		pkg := relative(module, full)
		r, ok := ruleFor(rules, pkg)
		if !ok {
			problems = append(problems, fmt.Sprintf("%s: no row in the package map; add one saying what it owns and what it may import", pkg))
			continue
		}
		for _, imp := range imports[full] {
			if imp != module && !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := relative(module, imp)
			if matches(r.pattern, dep) && strings.HasSuffix(r.pattern, "/...") {
				continue // inside its own subtree
			}
			allowed := false
			for _, a := range r.allowed {
				if matches(a, dep) {
					allowed = true
					break
				}
			}
			if !allowed {
				problems = append(problems, fmt.Sprintf("%s imports %s, which its row (`%s`) does not allow", pkg, dep, r.pattern))
			}
		}
	}
	return problems
}

func relative(module, full string) string {
	if full == module {
		return "."
	}
	return strings.TrimPrefix(full, module+"/")
}

// listImports asks the go command for every package of the main module and
// its non-test imports.
func listImports() (string, map[string][]string, error) {
	mod, err := goCmd("list", "-m")
	if err != nil {
		return "", nil, err
	}
	module := strings.TrimSpace(string(mod))
	out, err := goCmd("list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "./...")
	if err != nil {
		return "", nil, err
	}
	imports := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		imports[fields[0]] = fields[1:]
	}
	return module, imports, nil
}

func goCmd(args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
