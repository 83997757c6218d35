package vfs

import (
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadOnly(t *testing.T) {
	m := NewMem()
	noErr(t, m.WriteFile("a", []byte("abcdef")))
	before := dump(m)
	ro := ReadOnly(m)

	// Reads work.
	wantList(t, ro, "a")
	if size := must[int64](t)(ro.Stat("a")); size != 6 {
		t.Errorf("Stat = %d", size)
	}
	f := must[File](t)(ro.Open("a"))
	buf := make([]byte, 3)
	if n, err := f.Read(buf); n != 3 || err != nil || string(buf) != "abc" {
		t.Errorf("Read = %d, %v, %q", n, err, buf)
	}
	if n, err := f.ReadAt(buf, 3); n != 3 || err != nil || string(buf) != "def" {
		t.Errorf("ReadAt = %d, %v, %q", n, err, buf)
	}
	if off := must[int64](t)(f.Seek(1, io.SeekStart)); off != 1 {
		t.Errorf("Seek = %d", off)
	}
	if size := must[int64](t)(f.Size()); size != 6 {
		t.Errorf("Size = %d", size)
	}

	// Every mutation is refused.
	refusals := map[string]func() error{
		"Create":        func() error { _, err := ro.Create("b"); return err },
		"OpenReadWrite": func() error { _, err := ro.OpenReadWrite("a"); return err },
		"Remove":        func() error { return ro.Remove("a") },
		"Rename":        func() error { return ro.Rename("a", "b") },
		"SyncDir":       func() error { return ro.SyncDir() },
		"Lock":          func() error { _, err := ro.Lock("LOCK"); return err },
		"File.Write":    func() error { _, err := f.Write([]byte("x")); return err },
		"File.Truncate": func() error { return f.Truncate(0) },
		"File.Sync":     func() error { return f.Sync() },
	}
	for name, call := range refusals {
		if err := call(); !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s = %v, want ErrReadOnly", name, err)
		}
	}
	noErr(t, f.Close())

	// Nothing reached the Mem: no mutating op, no change, no lock held.
	if diff := cmp.Diff(before, dump(m)); diff != "" {
		t.Errorf("Mem changed (-before +after):\n%s", diff)
	}
	l := must[io.Closer](t)(m.Lock("LOCK"))
	noErr(t, l.Close())

	// Errors from the underlying FS pass through.
	if _, err := ro.Open("missing"); err == nil || errors.Is(err, ErrReadOnly) {
		t.Errorf("Open(missing) = %v, want the underlying not-exist error", err)
	}
}
