//go:build unix

package vfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
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

// TestOpenOSDirSwappedForFIFO: a directory replaced by a FIFO after
// OpenOS checked it, before it opens it, is refused at once: opening a
// FIFO for reading waits for a writer, so a read-only command would hang
// for ever. The hook makes the swap happen exactly there; the deadline
// only bounds the hang (then the test opens the FIFO for writing, which
// releases the blocked open).
func TestOpenOSDirSwappedForFIFO(t *testing.T) {
	for _, tc := range []struct {
		name string
		arg  func(dir string) string
	}{
		{"path", func(dir string) string { return dir }},
		{"trailing slash", func(dir string) string { return dir + "/" }},
		{"symlink", func(dir string) string {
			l := filepath.Join(filepath.Dir(dir), "link")
			if err := os.Symlink(dir, l); err != nil {
				t.Fatal(err)
			}
			return l
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			arg := tc.arg(dir)
			beforeOpenRoot = func(string) {
				if err := os.Remove(dir); err != nil {
					t.Error(err)
				}
				if err := syscall.Mkfifo(dir, 0o600); err != nil {
					t.Error(err)
				}
			}
			t.Cleanup(func() { beforeOpenRoot = func(string) {} })
			type opened struct {
				o   *OS
				err error
			}
			done := make(chan opened, 1)
			go func() {
				o, err := OpenOS(arg)
				done <- opened{o, err}
			}()
			var got opened
			select {
			case got = <-done:
			case <-time.After(30 * time.Second):
				// Release the open blocked on the FIFO.
				if w, err := os.OpenFile(dir, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Close()
				}
				got = <-done
				t.Errorf("OpenOS(%s) blocked on a FIFO swapped in after its check (released after 30s): %v", arg, got.err)
			}
			if got.err == nil {
				got.o.Close()
				t.Fatalf("OpenOS(%s) of a FIFO succeeded", arg)
			}
		})
	}
}

// TestOSOpenFileSwappedForFIFO: a segment or snapshot replaced by a FIFO
// (or a symbolic link to one) after Open checked the name, before it opens
// it, is refused at once with ErrNotRegular, for every way of opening a
// file, and the FIFO is left as it was. The deadline only bounds a hang.
func TestOSOpenFileSwappedForFIFO(t *testing.T) {
	for _, link := range []bool{false, true} {
		for op, open := range map[string]func(*OS, string) (File, error){"Open": (*OS).Open, "OpenReadWrite": (*OS).OpenReadWrite, "Create": (*OS).Create} {
			t.Run(fmt.Sprintf("%s/link=%v", op, link), func(t *testing.T) {
				dir := t.TempDir()
				o, err := OpenOS(dir)
				if err != nil {
					t.Fatal(err)
				}
				defer o.Close()
				name := "00000000000000000001-0000000000000001.seg"
				path := filepath.Join(dir, name)
				if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
					t.Fatal(err)
				}
				fifo := path
				if link {
					fifo = filepath.Join(dir, "fifo")
				}
				beforeOpenFile = func(string) {
					if err := os.Remove(path); err != nil {
						t.Error(err)
					}
					if err := syscall.Mkfifo(fifo, 0o600); err != nil {
						t.Error(err)
					}
					if link {
						if err := os.Symlink("fifo", path); err != nil {
							t.Error(err)
						}
					}
				}
				t.Cleanup(func() { beforeOpenFile = func(string) {} })
				type opened struct {
					f   File
					err error
				}
				done := make(chan opened, 1)
				go func() {
					f, err := open(o, name)
					done <- opened{f, err}
				}()
				var got opened
				select {
				case got = <-done:
				case <-time.After(30 * time.Second):
					if w, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
						w.Close()
					}
					got = <-done
					t.Errorf("%s blocked on a FIFO swapped in after its check (released after 30s)", op)
				}
				if got.err == nil {
					got.f.Close()
				}
				if !errors.Is(got.err, ErrNotRegular) {
					t.Errorf("%s of a name swapped for a FIFO: %v, want ErrNotRegular", op, got.err)
				}
				if fi, err := os.Lstat(fifo); err != nil || fi.Mode().Type() != os.ModeNamedPipe {
					t.Errorf("the FIFO changed: %v, %v", fi, err)
				}
			})
		}
	}
}
