package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// implementations returns a constructor for every FS that must behave the
// same; each call gives a fresh, empty directory.
func implementations() []struct {
	name string
	new  func(t *testing.T) FS
} {
	newOS := func(t *testing.T) FS {
		t.Helper()
		o, err := OpenOS(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { o.Close() })
		return o
	}
	return []struct {
		name string
		new  func(t *testing.T) FS
	}{
		{"OS", newOS},
		{"Mem", func(*testing.T) FS { return NewMem() }},
		{"Counting(Mem)", func(*testing.T) FS { return NewCounting(NewMem()) }},
		{"Faulty(Mem)", func(*testing.T) FS { return NewFaulty(NewMem(), nil) }},
		{"Counting(OS)", func(t *testing.T) FS { return NewCounting(newOS(t)) }},
		{"Faulty(OS)", func(t *testing.T) FS { return NewFaulty(newOS(t), nil) }},
	}
}

// must returns a function that fails the test on a non-nil error and
// otherwise returns the value: must[File](t)(fsys.Create("a")).
func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func noErr(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeFile creates name with data through fsys.
func writeFile(t *testing.T, fsys FS, name string, data []byte) {
	t.Helper()
	f := must[File](t)(fsys.Create(name))
	n, err := f.Write(data)
	if err != nil || n != len(data) {
		t.Fatalf("Write(%s) = %d, %v; want %d, nil", name, n, err, len(data))
	}
	noErr(t, f.Close())
}

// readFile reads name through fsys.
func readFile(t *testing.T, fsys FS, name string) []byte {
	t.Helper()
	f := must[File](t)(fsys.Open(name))
	defer f.Close()
	return must[[]byte](t)(io.ReadAll(f))
}

func wantContent(t *testing.T, fsys FS, name string, want []byte) {
	t.Helper()
	if diff := cmp.Diff(want, readFile(t, fsys, name), cmpBytes); diff != "" {
		t.Errorf("content of %s (-want +got):\n%s", name, diff)
	}
}

// cmpBytes makes nil and empty byte slices equal.
var cmpBytes = cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })

func wantList(t *testing.T, fsys FS, want ...string) {
	t.Helper()
	got := must[[]string](t)(fsys.List())
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
}

func wantIs(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want one matching %v", what, err, target)
	}
}

func TestConformance(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, fsys FS)
	}{
		{"CreateWriteSeekRead", func(t *testing.T, fsys FS) {
			f := must[File](t)(fsys.Create("a"))
			if n, err := f.Write([]byte("hello world")); n != 11 || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			if off := must[int64](t)(f.Seek(0, io.SeekStart)); off != 0 {
				t.Errorf("Seek = %d, want 0", off)
			}
			buf := make([]byte, 5)
			if n, err := f.Read(buf); n != 5 || err != nil || string(buf) != "hello" {
				t.Errorf("Read = %d, %v, %q", n, err, buf)
			}
			rest := must[[]byte](t)(io.ReadAll(f))
			if string(rest) != " world" {
				t.Errorf("rest = %q", rest)
			}
			if n, err := f.Read(buf); n != 0 || err != io.EOF {
				t.Errorf("Read at EOF = %d, %v; want 0, EOF", n, err)
			}
			if n, err := f.Read(nil); n != 0 || err != nil {
				t.Errorf("Read(nil) = %d, %v; want 0, nil", n, err)
			}
			if size := must[int64](t)(f.Size()); size != 11 {
				t.Errorf("Size = %d, want 11", size)
			}
			if size := must[int64](t)(fsys.Stat("a")); size != 11 {
				t.Errorf("Stat = %d, want 11", size)
			}
			noErr(t, f.Sync())
			noErr(t, fsys.SyncDir())
			noErr(t, f.Close())
			wantIs(t, "second Close", f.Close(), fs.ErrClosed)
			_, err := f.Read(buf)
			wantIs(t, "Read after Close", err, fs.ErrClosed)
			_, err = f.Write(buf)
			wantIs(t, "Write after Close", err, fs.ErrClosed)
			wantContent(t, fsys, "a", []byte("hello world"))
		}},
		{"SeekPastEndZeroFills", func(t *testing.T, fsys FS) {
			f := must[File](t)(fsys.Create("a"))
			defer f.Close()
			must[int](t)(f.Write([]byte("ab")))
			if off := must[int64](t)(f.Seek(5, io.SeekStart)); off != 5 {
				t.Errorf("Seek = %d", off)
			}
			if size := must[int64](t)(f.Size()); size != 2 {
				t.Errorf("Size after seek = %d, want 2 (seeking does not extend)", size)
			}
			must[int](t)(f.Write([]byte("c")))
			wantContent(t, fsys, "a", []byte("ab\x00\x00\x00c"))
			if off := must[int64](t)(f.Seek(-2, io.SeekEnd)); off != 4 {
				t.Errorf("Seek(-2, End) = %d, want 4", off)
			}
			if off := must[int64](t)(f.Seek(1, io.SeekCurrent)); off != 5 {
				t.Errorf("Seek(1, Current) = %d, want 5", off)
			}
			if _, err := f.Seek(-1, io.SeekStart); err == nil {
				t.Error("Seek to a negative offset succeeded")
			}
			if _, err := f.Seek(0, 42); err == nil {
				t.Error("Seek with a bad whence succeeded")
			}
		}},
		{"ReadAt", func(t *testing.T, fsys FS) {
			writeFile(t, fsys, "a", []byte("0123456789"))
			f := must[File](t)(fsys.Open("a"))
			defer f.Close()
			buf := make([]byte, 4)
			if n, err := f.ReadAt(buf, 3); n != 4 || err != nil || string(buf) != "3456" {
				t.Errorf("ReadAt(3) = %d, %v, %q", n, err, buf)
			}
			if n, err := f.ReadAt(buf, 8); n != 2 || err != io.EOF || string(buf[:n]) != "89" {
				t.Errorf("ReadAt(8) = %d, %v, %q; want 2, EOF, 89", n, err, buf[:n])
			}
			for _, off := range []int64{10, 100} {
				if n, err := f.ReadAt(buf, off); n != 0 || err != io.EOF {
					t.Errorf("ReadAt(%d) = %d, %v; want 0, EOF", off, n, err)
				}
			}
			if _, err := f.ReadAt(buf, -1); err == nil {
				t.Error("ReadAt(-1) succeeded")
			}
			// ReadAt neither uses nor moves the offset.
			if n, err := f.Read(buf); n != 4 || err != nil || string(buf) != "0123" {
				t.Errorf("Read after ReadAt = %d, %v, %q", n, err, buf)
			}
		}},
		{"Truncate", func(t *testing.T, fsys FS) {
			f := must[File](t)(fsys.Create("a"))
			defer f.Close()
			must[int](t)(f.Write([]byte("0123456789")))
			noErr(t, f.Truncate(4))
			if size := must[int64](t)(f.Size()); size != 4 {
				t.Errorf("Size = %d, want 4", size)
			}
			wantContent(t, fsys, "a", []byte("0123"))
			// The offset is unchanged (10): the next write leaves a hole.
			must[int](t)(f.Write([]byte("x")))
			wantContent(t, fsys, "a", []byte("0123\x00\x00\x00\x00\x00\x00x"))
			noErr(t, f.Truncate(13))
			wantContent(t, fsys, "a", []byte("0123\x00\x00\x00\x00\x00\x00x\x00\x00"))
			if err := f.Truncate(-1); err == nil {
				t.Error("Truncate(-1) succeeded")
			}
			noErr(t, f.Truncate(0))
			if size := must[int64](t)(fsys.Stat("a")); size != 0 {
				t.Errorf("Stat after Truncate(0) = %d", size)
			}
		}},
		{"CreateTruncatesExisting", func(t *testing.T, fsys FS) {
			writeFile(t, fsys, "a", []byte("old content"))
			old := must[File](t)(fsys.Open("a"))
			defer old.Close()
			f := must[File](t)(fsys.Create("a"))
			defer f.Close()
			if size := must[int64](t)(fsys.Stat("a")); size != 0 {
				t.Errorf("Stat after re-Create = %d, want 0", size)
			}
			if size := must[int64](t)(old.Size()); size != 0 {
				t.Errorf("old handle Size = %d, want 0 (same file, truncated)", size)
			}
			must[int](t)(f.Write([]byte("new")))
			buf := make([]byte, 3)
			if n, err := old.ReadAt(buf, 0); n != 3 || string(buf) != "new" {
				t.Errorf("old handle ReadAt = %d, %v, %q", n, err, buf)
			}
		}},
		{"OpenReadWrite", func(t *testing.T, fsys FS) {
			writeFile(t, fsys, "a", []byte("abcdef"))
			f := must[File](t)(fsys.OpenReadWrite("a"))
			defer f.Close()
			must[int](t)(f.Write([]byte("XY")))
			wantContent(t, fsys, "a", []byte("XYcdef"))
			must[int64](t)(f.Seek(0, io.SeekEnd))
			must[int](t)(f.Write([]byte("!")))
			wantContent(t, fsys, "a", []byte("XYcdef!"))
		}},
		{"OpenIsReadOnly", func(t *testing.T, fsys FS) {
			writeFile(t, fsys, "a", []byte("abc"))
			f := must[File](t)(fsys.Open("a"))
			defer f.Close()
			if n, err := f.Write([]byte("x")); err == nil || n != 0 {
				t.Errorf("Write on Open'ed file = %d, %v; want an error", n, err)
			}
			if err := f.Truncate(0); err == nil {
				t.Error("Truncate on Open'ed file succeeded")
			}
			wantContent(t, fsys, "a", []byte("abc"))
		}},
		{"Missing", func(t *testing.T, fsys FS) {
			_, err := fsys.Open("nope")
			wantIs(t, "Open", err, fs.ErrNotExist)
			_, err = fsys.OpenReadWrite("nope")
			wantIs(t, "OpenReadWrite", err, fs.ErrNotExist)
			_, err = fsys.Stat("nope")
			wantIs(t, "Stat", err, fs.ErrNotExist)
			wantIs(t, "Remove", fsys.Remove("nope"), fs.ErrNotExist)
			wantIs(t, "Rename", fsys.Rename("nope", "x"), fs.ErrNotExist)
			wantList(t, fsys)
		}},
		{"RenameReplaces", func(t *testing.T, fsys FS) {
			writeFile(t, fsys, "a", []byte("A"))
			writeFile(t, fsys, "b", []byte("B"))
			oldB := must[File](t)(fsys.Open("b"))
			defer oldB.Close()
			noErr(t, fsys.Rename("a", "b"))
			wantList(t, fsys, "b")
			wantContent(t, fsys, "b", []byte("A"))
			_, err := fsys.Stat("a")
			wantIs(t, "Stat old name", err, fs.ErrNotExist)
			if got := must[[]byte](t)(io.ReadAll(oldB)); string(got) != "B" {
				t.Errorf("handle on replaced file reads %q, want B", got)
			}
			noErr(t, fsys.Rename("b", "b"))
			wantContent(t, fsys, "b", []byte("A"))
			wantIs(t, "Rename from removed name", fsys.Rename("a", "c"), fs.ErrNotExist)
		}},
		{"RemoveKeepsHandles", func(t *testing.T, fsys FS) {
			writeFile(t, fsys, "a", []byte("abc"))
			f := must[File](t)(fsys.OpenReadWrite("a"))
			defer f.Close()
			noErr(t, fsys.Remove("a"))
			_, err := fsys.Stat("a")
			wantIs(t, "Stat after Remove", err, fs.ErrNotExist)
			wantList(t, fsys)
			must[int64](t)(f.Seek(0, io.SeekEnd))
			must[int](t)(f.Write([]byte("d")))
			buf := make([]byte, 4)
			if n, err := f.ReadAt(buf, 0); n != 4 || err != nil || string(buf) != "abcd" {
				t.Errorf("ReadAt on removed file = %d, %v, %q", n, err, buf)
			}
			noErr(t, f.Sync())
			// A new file under the old name is a different file.
			writeFile(t, fsys, "a", []byte("new"))
			if size := must[int64](t)(f.Size()); size != 4 {
				t.Errorf("removed file Size = %d, want 4", size)
			}
		}},
		{"ListSorted", func(t *testing.T, fsys FS) {
			wantList(t, fsys)
			for _, name := range []string{"c", "a", "B", "b.tmp"} {
				writeFile(t, fsys, name, nil)
			}
			wantList(t, fsys, "B", "a", "b.tmp", "c")
		}},
		{"InvalidNames", func(t *testing.T, fsys FS) {
			writeFile(t, fsys, "x", []byte("x"))
			for _, name := range []string{"", ".", "..", "a/b", `a\b`, "/abs", "../x"} {
				_, err := fsys.Create(name)
				wantIs(t, "Create "+name, err, fs.ErrInvalid)
				_, err = fsys.Open(name)
				wantIs(t, "Open "+name, err, fs.ErrInvalid)
				_, err = fsys.OpenReadWrite(name)
				wantIs(t, "OpenReadWrite "+name, err, fs.ErrInvalid)
				wantIs(t, "Remove "+name, fsys.Remove(name), fs.ErrInvalid)
				_, err = fsys.Stat(name)
				wantIs(t, "Stat "+name, err, fs.ErrInvalid)
				_, err = fsys.Lock(name)
				wantIs(t, "Lock "+name, err, fs.ErrInvalid)
				wantIs(t, "Rename from "+name, fsys.Rename(name, "y"), fs.ErrInvalid)
				wantIs(t, "Rename to "+name, fsys.Rename("x", name), fs.ErrInvalid)
			}
			wantList(t, fsys, "x")
			wantContent(t, fsys, "x", []byte("x"))
		}},
		{"Lock", func(t *testing.T, fsys FS) {
			l := must[io.Closer](t)(fsys.Lock("LOCK"))
			_, err := fsys.Lock("LOCK")
			wantIs(t, "second Lock", err, ErrLocked)
			wantList(t, fsys, "LOCK")
			other := must[io.Closer](t)(fsys.Lock("OTHER"))
			noErr(t, other.Close())
			noErr(t, l.Close())
			if err := l.Close(); err == nil {
				t.Error("second Close of a lock succeeded")
			}
			l = must[io.Closer](t)(fsys.Lock("LOCK"))
			noErr(t, l.Close())
		}},
		{"LockLost", func(t *testing.T, fsys FS) {
			// A lock belongs to the file: once LOCK is removed or replaced,
			// a second Lock succeeds on the new file and CheckLock of the
			// first reports the loss.
			for _, tamper := range []func(){
				func() { noErr(t, fsys.Remove("LOCK")) },
				func() { writeFile(t, fsys, "LOCK.new", nil); noErr(t, fsys.Rename("LOCK.new", "LOCK")) },
			} {
				l := must[io.Closer](t)(fsys.Lock("LOCK"))
				noErr(t, CheckLock(l))
				tamper()
				wantIs(t, "CheckLock after tampering", CheckLock(l), ErrLockLost)
				l2 := must[io.Closer](t)(fsys.Lock("LOCK"))
				noErr(t, CheckLock(l2))
				noErr(t, l2.Close())
				noErr(t, l.Close())
			}
		}},
		{"ConcurrentReadAt", func(t *testing.T, fsys FS) {
			const chunk, chunks = 64, 50
			f := must[File](t)(fsys.Create("a"))
			defer f.Close()
			block := bytes.Repeat([]byte{'z'}, chunk)
			must[int](t)(f.Write(block))
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					buf := make([]byte, chunk)
					for range chunks {
						if n, err := f.ReadAt(buf, 0); n != chunk || err != nil || !bytes.Equal(buf, block) {
							t.Errorf("ReadAt = %d, %v", n, err)
							return
						}
					}
				})
			}
			for range chunks {
				if _, err := f.Write(block); err != nil {
					t.Error(err)
					break
				}
			}
			wg.Wait()
			if size := must[int64](t)(f.Size()); size != chunk*(chunks+1) {
				t.Errorf("Size = %d", size)
			}
		}},
		{"LstatReadDir", func(t *testing.T, fsys FS) {
			writeFile(t, fsys, "b", []byte("12345"))
			writeFile(t, fsys, "a", nil)
			fi := must[FileInfo](t)(fsys.Lstat("b"))
			if d := cmp.Diff(FileInfo{Name: "b", Size: 5}, fi); d != "" || !fi.Regular() {
				t.Errorf("Lstat (-want +got):\n%s", d)
			}
			_, err := fsys.Lstat("missing")
			wantIs(t, "Lstat of a missing name", err, fs.ErrNotExist)
			got := must[[]DirEntry](t)(fsys.ReadDir())
			if d := cmp.Diff([]DirEntry{{Name: "a"}, {Name: "b"}}, got); d != "" {
				t.Errorf("ReadDir (-want +got):\n%s", d)
			}
		}},
		{"RenameNoReplace", func(t *testing.T, fsys FS) {
			writeFile(t, fsys, "a", []byte("A"))
			writeFile(t, fsys, "b", []byte("B"))
			wantIs(t, "RenameNoReplace over an existing name", fsys.RenameNoReplace("a", "b"), fs.ErrExist)
			wantContent(t, fsys, "a", []byte("A"))
			wantContent(t, fsys, "b", []byte("B"))
			noErr(t, fsys.RenameNoReplace("a", "c"))
			wantContent(t, fsys, "c", []byte("A"))
			wantList(t, fsys, "b", "c")
			wantIs(t, "RenameNoReplace of a missing name", fsys.RenameNoReplace("a", "d"), fs.ErrNotExist)
		}},
	}
	for _, impl := range implementations() {
		t.Run(impl.name, func(t *testing.T) {
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) { tt.run(t, impl.new(t)) })
			}
		})
	}
}
