//go:build unix

package evlogcli

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestReadOnlyCommandsOnAFIFO: a FIFO given as DIR (a wrong path, a
// hostile one) is refused as a regular file is, with status 1. Every
// command used to open it for reading to use it as the directory
// (os.OpenRoot opens without O_DIRECTORY) and block there forever, and
// tail, which handles SIGTERM, then ignored it too. The test sees a
// command opening the FIFO without waiting for it: a non-blocking open
// for writing succeeds only while a reader has it open; it then opens
// it itself, which lets the reader go on.
func TestReadOnlyCommandsOnAFIFO(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for _, args := range stateCommands(fifo) {
		r, opened := runBesideFIFO(t, fifo, args...)
		if opened {
			t.Errorf("evlogctl %q opened the FIFO given as DIR for reading (it blocks until a writer opens it)", args)
		}
		if r.code != 1 {
			t.Errorf("evlogctl %q on a FIFO: exit %d, want 1\nstderr: %s", args, r.code, r.stderr)
		}
	}
}

// runBesideFIFO runs evlogctl with args, which name fifo, and reports
// whether it opened fifo for reading meanwhile (such an open blocks until
// a writer opens the FIFO: the test then opens it, which lets the command
// go on). A non-blocking open for writing succeeds only while a reader
// has the FIFO open.
func runBesideFIFO(t *testing.T, fifo string, args ...string) (result, bool) {
	t.Helper()
	done := make(chan result, 1)
	go func() { done <- run1(t, args...) }()
	var f *os.File
	waitUntil(t, "evlogctl to end or to open the FIFO", func() bool {
		if len(done) > 0 {
			return true
		}
		g, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		f = g
		return err == nil
	})
	if f != nil {
		f.Close() // the reader's open has returned
	}
	return <-done, f != nil
}
