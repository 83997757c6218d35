package evlogcli

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/evlog/evlog"
)

// TestReadOnlyCommandsOnReadOnlyDir runs every read-only command on a log
// whose directory and files the user may not write (a log mounted
// read-only, or another user's): each must work as on a writable one,
// since none may create anything there (no lock file, no temporary).
// Skipped when permissions are not enforced (root): run the test binary
// as another user to see it run.
func TestReadOnlyCommandsOnReadOnlyDir(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "log")
	makeLog(t, dir, false)
	mustRun(t, "load", dir, "--count", "3")
	// A subscription, so that subscriptions has a file to read.
	l, err := evlog.Open(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := l.Subscription("sub-1", evlog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Ack(t.Context(), 5); err != nil {
		t.Fatal(err)
	}
	sub.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		return os.Chmod(p, 0o444)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	if f, err := os.Create(filepath.Join(dir, "probe")); err == nil {
		f.Close()
		t.Skip("the file system lets this user write a 0555 directory (running as root?)")
	}
	cmds := append(readOnlyCommands(dir, tmp),
		[]string{"streams", dir},
		[]string{"subscriptions", dir},
		[]string{"backup", dir, filepath.Join(tmp, "backup")},
		[]string{"compact", dir, "--dry-run"},
	)
	for _, args := range cmds {
		if r := run1(t, args...); r.code != 0 {
			t.Errorf("evlogctl %q on a read-only directory: exit %d: %s", args, r.code, r.stderr)
		}
		os.RemoveAll(filepath.Join(tmp, "salvaged"))
	}
}
