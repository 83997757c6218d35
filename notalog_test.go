package evlog

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestOpenRefusesForeignDirectory: a directory holding files but none of
// a log is not made into a log (nothing is created in it, not even LOCK)
// and is not read as an empty log.
func TestOpenRefusesForeignDirectory(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string // created empty; a trailing "/" makes a directory
		isLog bool
	}{
		{"empty", nil, true},
		{"foreign file", []string{"notes.txt"}, false},
		{"foreign files", []string{"a.db", "b.db"}, false},
		{"a segment-like but wrong name", []string{"1-0.seg"}, false},
		{"hidden file only", []string{".DS_Store"}, true},
		{"subdirectory only", []string{"lost+found/"}, true},
		{"LOCK only", []string{LockFile}, true},
		{"LOCK and strangers", []string{LockFile, "notes.txt"}, true},
		{"a snapshot", []string{"ee639cad45b1994c-00000000000000000020.snap"}, true},
		{"a segment temporary", []string{"00000000000000000001-00000000.seg.tmp"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				p := filepath.Join(dir, f)
				var err error
				if f[len(f)-1] == '/' {
					err = os.Mkdir(p, 0o700)
				} else {
					err = os.WriteFile(p, nil, 0o600)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			list := func() []string {
				es, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, e := range es {
					names = append(names, e.Name())
				}
				return names
			}
			before := list()
			ro, err := OpenReadOnly(dir, Options{})
			if err == nil {
				ro.Close()
			}
			if tc.isLog != (err == nil) || !tc.isLog && !errors.Is(err, ErrNotALog) {
				t.Fatalf("OpenReadOnly: %v (a log: %v)", err, tc.isLog)
			}
			if err := CheckLogDir(dir); tc.isLog != (err == nil) || !tc.isLog && !errors.Is(err, ErrNotALog) {
				t.Fatalf("CheckLogDir: %v (a log: %v)", err, tc.isLog)
			}
			if _, err := Verify(t.Context(), dir); tc.isLog != (err == nil) || !tc.isLog && !errors.Is(err, ErrNotALog) {
				t.Fatalf("Verify: %v (a log: %v)", err, tc.isLog)
			}
			if tc.isLog {
				return // Open of a log (sometimes with a temporary) is tested elsewhere
			}
			l, err := Open(dir, Options{})
			if err == nil {
				l.Close()
			}
			if !errors.Is(err, ErrNotALog) {
				t.Fatalf("Open: %v, want ErrNotALog", err)
			}
			if d := cmp.Diff(before, list()); d != "" {
				t.Fatalf("Open modified the directory (-before +after):\n%s", d)
			}
			if slices.Contains(list(), LockFile) {
				t.Fatal("Open created LOCK")
			}
		})
	}
}
