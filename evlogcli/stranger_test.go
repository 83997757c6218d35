//go:build unix

package evlogcli

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/evlog/evlog/segment"
)

// TestReadOnlyCommandsBesideStrangers: FIFOs and symbolic links named like
// segments and snapshots are not part of the log. Every read-only command
// runs to completion (a FIFO opened for reading would block it forever),
// verify reports them as strangers without failing, and nothing deletes
// them.
func TestReadOnlyCommandsBesideStrangers(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "log")
	makeLog(t, dir, false)
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	strangers := map[string]func(string) error{
		segment.FormatFileName(1, 99):                    func(p string) error { return syscall.Mkfifo(p, 0o644) },
		segment.FormatFileName(1_000_000, 0):             func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"00000000000000ff-00000000000000000001.snap":     func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"00000000000000ff-00000000000000000002.snap":     func(p string) error { return os.Symlink(filepath.Base(segs[0]), p) },
		segment.FormatFileName(1, 98) + segment.TempExt:  func(p string) error { return os.Symlink(filepath.Base(segs[0]), p) },
		"00000000000000ff-00000000000000000003.snap.tmp": func(p string) error { return os.Symlink(filepath.Base(segs[0]), p) },
		segment.FormatFileName(1_000_001, 0) + "/":       func(p string) error { return os.Mkdir(p, 0o755) },
	}
	for name, mk := range strangers {
		if err := mk(filepath.Join(dir, name)); err != nil {
			t.Skipf("%s: %v", name, err)
		}
	}
	for _, args := range readOnlyCommands(dir, tmp) {
		r := run1(t, args...)
		if r.code != 0 {
			t.Errorf("evlogctl %q: exit %d: %s", args, r.code, r.stderr)
		}
		os.RemoveAll(filepath.Join(tmp, "salvaged"))
	}
	r := run1(t, "verify", dir)
	if r.code != 0 {
		t.Errorf("verify: exit %d", r.code)
	}
	for name := range strangers {
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A writer opening the log leaves them alone too.
	mustRun(t, "load", dir, "--count", "6", "--size", "40", "--batch", "6")
	mustRun(t, "snapshot", dir)
	mustRun(t, "snapshots", dir, "--prune", "--keep", "1")
	for name := range strangers {
		if _, err := os.Lstat(filepath.Join(dir, name)); err != nil {
			t.Errorf("after load, snapshot and prune: %s: %v", name, err)
		}
	}
	t.Log(r.stdout)
}
