//go:build unix

package evlogcli

import (
	"path/filepath"
	"syscall"
	"testing"
)

// TestDestinationFIFO: a FIFO given where a command writes a directory
// (restore's and salvage's DIR, backup's DEST) is refused with status 1,
// never opened for reading: such an open blocks until a writer opens the
// FIFO, so the command would hang. restore and salvage list the
// destination with os.ReadDir, which is safe only because it opens with
// O_DIRECTORY (Go 1.26): this test keeps them that way (runBesideFIFO
// sees an open for reading).
func TestDestinationFIFO(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "log")
	makeLog(t, dir, false)
	backup := filepath.Join(tmp, "backup")
	mustRun(t, "backup", dir, backup)
	fifo := filepath.Join(tmp, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for _, args := range [][]string{
		{"restore", backup, fifo},
		{"restore", "--dry-run", backup, fifo},
		{"salvage", dir, fifo},
		{"backup", dir, fifo},
	} {
		r, opened := runBesideFIFO(t, fifo, args...)
		if opened {
			t.Errorf("evlogctl %q opened the FIFO given as its destination for reading (it blocks until a writer opens it)", args)
		}
		if r.code != 1 {
			t.Errorf("evlogctl %q into a FIFO: exit %d, want 1\nstderr: %s", args, r.code, r.stderr)
		}
	}
}
