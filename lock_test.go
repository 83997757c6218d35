package evlog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// TestLockFileRemovedSecondWriter: removing or replacing LOCK under a
// running writer lets a second Open lock the new file. The first writer
// must notice at its next roll and fail-stop before writing any further
// segment, so the two never append side by side past it.
func TestLockFileRemovedSecondWriter(t *testing.T) {
	tamper := map[string]func(t *testing.T, dir string){
		"removed": func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, LockFile)); err != nil {
				t.Fatal(err)
			}
		},
		"replaced": func(t *testing.T, dir string) {
			other := filepath.Join(dir, "LOCK.new")
			if err := os.WriteFile(other, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(other, filepath.Join(dir, LockFile)); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, tamper := range tamper {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			dir := t.TempDir()
			opts := Options{SegmentSize: MinSegmentSize}
			a, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			ev := Envelope{Type: "x", Data: []byte("\xc4\x80" + strings.Repeat("a", 128))}
			if _, err := a.Append(ctx, "s", ExpectAny, ev); err != nil {
				t.Fatal(err)
			}
			tamper(t, dir)
			b, err := Open(dir, opts)
			if err == nil {
				defer b.Close()
			}
			// Appending fills the 4 KiB segment within ~30 events; the roll
			// after it must fail-stop the first writer.
			var failed error
			for i := range 100 {
				if _, err := a.Append(ctx, "s", ExpectAny, ev); err != nil {
					failed = err
					t.Logf("first writer stopped after %d more appends: %v", i, err)
					break
				}
			}
			if !errors.Is(failed, ErrWriterFailed) || !errors.Is(failed, ErrLockLost) {
				t.Fatalf("first writer: got %v, want a fail-stop matching ErrWriterFailed and ErrLockLost", failed)
			}
			segs, err := a.Segments()
			if err != nil {
				t.Fatal(err)
			}
			if len(segs) != 1 {
				t.Fatalf("first writer has %d segments, want 1: it rolled although its lock was lost", len(segs))
			}
			if _, err := a.Append(ctx, "s", ExpectAny, ev); !errors.Is(err, ErrWriterFailed) {
				t.Fatalf("append after the fail-stop: %v, want ErrWriterFailed", err)
			}
		})
	}
}

// TestLockFileRemovedMem is the same on the in-memory FS, whose locks,
// like flock's, belong to the file and not to its name.
func TestLockFileRemovedMem(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	opts := Options{SegmentSize: MinSegmentSize}
	a := openMem(t, mem, opts)
	defer a.Close()
	if err := a.checkLock(); err != nil {
		t.Fatalf("intact lock: %v", err)
	}
	if _, err := openFS(mem, opts, false); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open with LOCK in place: %v, want ErrLocked", err)
	}
	if err := mem.Remove(LockFile); err != nil {
		t.Fatal(err)
	}
	b := openMem(t, mem, opts) // LOCK is a new file: nothing keeps b out
	defer b.Close()
	ev := Envelope{Type: "x", Data: []byte("\xc4\x80" + strings.Repeat("a", 128))}
	var failed error
	for range 100 {
		if _, failed = a.Append(ctx, "s", ExpectAny, ev); failed != nil {
			break
		}
	}
	if !errors.Is(failed, ErrWriterFailed) || !errors.Is(failed, ErrLockLost) {
		t.Fatalf("first writer: got %v, want a fail-stop matching ErrWriterFailed and ErrLockLost", failed)
	}
}
