package evlog

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/evlog/evlog/snapshot"
)

// umask returns the process umask (set and restored at once).
func umask() fs.FileMode {
	m := syscall.Umask(0o022)
	syscall.Umask(m)
	return fs.FileMode(m)
}

// TestPerm: a log holds personal data, so by default the files evlog
// creates are private to the owner (0600, directories 0700); Options.Perm
// changes that.
func TestPerm(t *testing.T) {
	mask := umask()
	for _, tc := range []struct {
		perm          fs.FileMode
		file, dirPerm fs.FileMode
	}{
		{0, 0o600, 0o700},
		{0o640, 0o640, 0o750},
		{0o644, 0o644, 0o755},
	} {
		t.Run(tc.file.String(), func(t *testing.T) {
			ctx := t.Context()
			dir := filepath.Join(t.TempDir(), "new", "log")
			l, err := Open(dir, Options{Perm: tc.perm})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "x"}); err != nil {
				t.Fatal(err)
			}
			store, err := l.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := store.Save(ctx, snapshot.Meta{Name: "n", LogID: l.LogID(), Seq: 1, Time: l.LastTime()}, []byte("s")); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			check := func(p string, want fs.FileMode) {
				t.Helper()
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := fi.Mode().Perm(), want&^mask; got != want {
					t.Errorf("%s: mode %v, want %v", p, got, want)
				}
			}
			check(dir, tc.dirPerm)
			check(filepath.Dir(dir), tc.dirPerm)
			es, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(es) != 4 { // LOCK, a segment, its checkpoint, a snapshot
				t.Fatalf("%d files in the log directory, want 4: %v", len(es), es)
			}
			for _, e := range es {
				check(filepath.Join(dir, e.Name()), tc.file)
			}
		})
	}
}

func TestPermValidate(t *testing.T) {
	for _, p := range []fs.FileMode{0o400, 0o200, 0o1600, fs.ModeDir | 0o700, 0o7777} {
		if err := (Options{Perm: p}).Validate(); err == nil {
			t.Errorf("Perm %v: Validate accepted it", p)
		}
		if _, err := Open(t.TempDir(), Options{Perm: p}); err == nil || errors.Is(err, ErrNotALog) {
			t.Errorf("Perm %v: Open: %v, want an invalid-options error", p, err)
		}
	}
	for _, p := range []fs.FileMode{0, 0o600, 0o640, 0o660, 0o644, 0o666} {
		if err := (Options{Perm: p}).Validate(); err != nil {
			t.Errorf("Perm %v: %v", p, err)
		}
	}
}
