package evlog

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestImportRules enforces the package dependency rules (README, "Layout"):
// dependencies point one way, from cmd/ down to event, and pure packages
// stay free of I/O dependencies.
func TestImportRules(t *testing.T) {
	const mod = "github.com/evlog/evlog"
	third := map[string]string{
		"msgpack": "github.com/vmihailenco/msgpack/v5",
		"zstd":    "github.com/klauspost/compress/zstd",
		"cmp":     "github.com/google/go-cmp/cmp",
		"cmpopts": "github.com/google/go-cmp/cmp/cmpopts",
	}
	// For each package (non-test files): the module packages and third-party
	// modules it may import. Anything not listed is forbidden; the standard
	// library is always allowed.
	allow := map[string][]string{
		"event":              {},
		"internal/vfs":       {},
		"internal/testhook":  {"internal/vfs"},
		"internal/copyhook":  {},
		"internal/filehead":  {"internal/vfs", "segment", "snapshot"},
		"segment":            {"event", "internal/vfs", "internal/testhook", "zstd"}, // testhook: the frame-limit seam (limit.go)
		"snapshot":           {"event", "internal/vfs", "zstd"},
		"replay":             {"event", "snapshot", "msgpack"},
		"aggregate":          {"event", "replay", "snapshot"},
		"projection":         {"event", "replay", "snapshot"},
		".":                  {"event", "segment", "snapshot", "replay", "internal/vfs", "internal/testhook", "internal/copyhook", "internal/filehead", "msgpack"},
		"cmd/evlogctl":       {".", "evlogcli", "examples/inventory"},
		"evlogcli":           {".", "event", "segment", "snapshot", "replay", "aggregate", "projection", "internal/vfs", "internal/copyhook", "internal/filehead", "msgpack", "zstd", "examples/inventory"},
		"examples/inventory": {".", "event", "aggregate", "projection", "replay"},
		"evlogtest":          {".", "event", "snapshot", "replay", "aggregate", "projection", "cmp", "cmpopts"},
		"fuzz":               {".", "event", "segment", "snapshot", "replay", "aggregate", "projection", "internal/vfs", "internal/testhook", "msgpack", "zstd"},
	}
	isStd := func(p string) bool { return !strings.Contains(strings.Split(p, "/")[0], ".") }
	fset := token.NewFileSet()
	seen := map[string]bool{}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "bench" || d.Name() == "jetstream") {
				return filepath.SkipDir // bench/ and jetstream/ are modules of their own
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		dir := filepath.ToSlash(filepath.Dir(p))
		rules, ok := allow[dir]
		if !ok {
			t.Errorf("package %s has no import rule: add it to TestImportRules", dir)
			return nil
		}
		seen[dir] = true
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			ip, _ := strconv.Unquote(imp.Path.Value)
			if isStd(ip) {
				continue
			}
			var name string
			switch {
			case ip == mod:
				name = "."
			case strings.HasPrefix(ip, mod+"/"):
				name = strings.TrimPrefix(ip, mod+"/")
			default:
				for k, v := range third {
					if ip == v {
						name = k
					}
				}
				if name == "" {
					t.Errorf("%s imports %s: a dependency the module has not chosen (justify it, then list it here)", p, ip)
					continue
				}
			}
			if !slices.Contains(rules, name) {
				t.Errorf("%s (package %s) imports %s: not allowed by the dependency rules", p, dir, path.Clean(ip))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"event", "internal/vfs", "segment", "."} {
		if !seen[must] {
			t.Errorf("no Go files found for package %s: is the test running from the module root?", must)
		}
	}
}

// TestRootModuleHasNoNATS keeps the core library free of the JetStream
// backend's dependencies: they belong to the nested module jetstream/.
func TestRootModuleHasNoNATS(t *testing.T) {
	b, err := os.ReadFile("go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, dep := range []string{"nats-io", "synadia-io"} {
		if strings.Contains(string(b), dep) {
			t.Errorf("go.mod mentions %s: the JetStream backend's dependencies belong to jetstream/go.mod", dep)
		}
	}
}
