package vfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLinkAndShared(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	src, err := OpenOS(a)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := OpenOS(b)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if err := os.WriteFile(filepath.Join(a, "f"), []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if shared, err := Shared(src, "f"); err != nil || shared {
		t.Fatalf("Shared of a file with one name = %v, %v", shared, err)
	}
	// Through ReadOnly, as a read-only log's backup links.
	if err := Link(ReadOnly(src), "f", dst, "g"); err != nil {
		t.Fatal(err)
	}
	// Through an Unwrapper, as a writer's backup links (its FS records
	// failed directory fsyncs).
	if err := Link(unwrapper{src}, "f", dst, "g2"); err != nil {
		t.Fatalf("Link through an Unwrapper: %v", err)
	}
	if err := dst.Remove("g2"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		fs   FS
		name string
	}{{src, "f"}, {dst, "g"}} {
		if shared, err := Shared(c.fs, c.name); err != nil || !shared {
			t.Fatalf("Shared(%s) after a link = %v, %v", c.name, shared, err)
		}
	}
	if err := Link(src, "f", dst, "g"); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Link over an existing name = %v, want ErrExist", err)
	}
	if err := os.Symlink("f", filepath.Join(a, "s")); err != nil {
		t.Fatal(err)
	}
	if err := Link(src, "s", dst, "h"); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("Link of a symbolic link = %v, want ErrNotRegular", err)
	}
	m := NewMem()
	if err := Link(m, "f", dst, "x"); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Link from a Mem = %v, want ErrUnsupported", err)
	}
	if shared, err := Shared(m, "f"); err != nil || shared {
		t.Fatalf("Shared on a Mem = %v, %v", shared, err)
	}
}

// unwrapper is an FS wrapping another, as the log's record of failed
// directory fsyncs does.
type unwrapper struct{ FS }

func (u unwrapper) UnwrapFS() FS { return u.FS }
