//go:build unix

package vfs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestOSRefusesNonRegular: Create, Open and OpenReadWrite refuse symbolic
// links, FIFOs and directories without blocking and without changing what
// a link points to; Lstat and ReadDir report their types.
func TestOSRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	o, err := OpenOS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := os.WriteFile(filepath.Join(dir, "target"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("target", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	wantType := map[string]os.FileMode{"target": 0, "link": os.ModeSymlink, "fifo": os.ModeNamedPipe, "sub": os.ModeDir}
	infos, err := o.ReadDir()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(wantType) {
		t.Fatalf("ReadDir: %+v", infos)
	}
	for _, fi := range infos {
		if fi.Mode != wantType[fi.Name] {
			t.Errorf("ReadDir: %s has type %v, want %v", fi.Name, fi.Mode, wantType[fi.Name])
		}
		if lfi, err := o.Lstat(fi.Name); err != nil || lfi.Mode != fi.Mode {
			t.Errorf("Lstat(%s) = %+v, %v", fi.Name, lfi, err)
		}
	}
	for _, name := range []string{"link", "fifo", "sub"} {
		for op, open := range map[string]func(string) (File, error){"Open": o.Open, "OpenReadWrite": o.OpenReadWrite, "Create": o.Create} {
			f, err := open(name)
			if err == nil {
				f.Close()
			}
			if !errors.Is(err, ErrNotRegular) {
				t.Errorf("%s(%s): got %v, want ErrNotRegular", op, name, err)
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "target")); err != nil || string(b) != "data" {
		t.Errorf("the link's target changed: %q, %v", b, err)
	}
	if err := o.RenameNoReplace("link", "new"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("RenameNoReplace of a link: %v, want ErrNotRegular", err)
	}
}
