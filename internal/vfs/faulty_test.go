package vfs

import (
	"errors"
	"io"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestFaultyEachKind fails the first operation of each kind and checks it
// was not performed, then that the next one (not sticky) is.
func TestFaultyEachKind(t *testing.T) {
	type env struct {
		m  *Mem
		fs *Faulty
		rw File // OpenReadWrite("a") through fs, made before arming
	}
	tests := []struct {
		kind OpKind
		do   func(e env) error
		// unchanged checks the operation did not happen.
		unchanged func(t *testing.T, e env)
	}{
		{OpCreate, func(e env) error { _, err := e.fs.Create("new"); return err },
			func(t *testing.T, e env) {
				_, err := e.m.Stat("new")
				wantIs(t, "Stat", err, fs.ErrNotExist)
			}},
		{OpWrite, func(e env) error { _, err := e.rw.Write([]byte("XYZ")); return err },
			func(t *testing.T, e env) { wantContent(t, e.m, "a", []byte("abc")) }},
		{OpSync, func(e env) error {
			must[int](t)(e.rw.Write([]byte("X"))) // note: an OpWrite, not failed
			return e.rw.Sync()
		}, func(t *testing.T, e env) {
			got := must[[]byte](t)(e.m.CrashClone(DropUnsynced, nil).ReadFile("a"))
			if string(got) != "abc" {
				t.Errorf("synced content = %q, want abc", got)
			}
		}},
		{OpTruncate, func(e env) error { return e.rw.Truncate(1) },
			func(t *testing.T, e env) { wantContent(t, e.m, "a", []byte("abc")) }},
		{OpRemove, func(e env) error { return e.fs.Remove("a") },
			func(t *testing.T, e env) { wantList(t, e.m, "a") }},
		{OpRename, func(e env) error { return e.fs.Rename("a", "b") },
			func(t *testing.T, e env) { wantList(t, e.m, "a") }},
		{OpSyncDir, func(e env) error {
			writeFile(t, e.fs, "pending", nil)
			return e.fs.SyncDir()
		}, func(t *testing.T, e env) {
			if _, err := e.m.CrashClone(DropUnsynced, nil).Stat("pending"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("pending entry became durable: %v", err)
			}
		}},
		{OpOpen, func(e env) error { _, err := e.fs.Open("a"); return err }, nil},
		{OpRead, func(e env) error { _, err := e.rw.ReadAt(make([]byte, 1), 0); return err }, nil},
		{OpList, func(e env) error { _, err := e.fs.List(); return err }, nil},
		{OpStat, func(e env) error { _, err := e.fs.Stat("a"); return err }, nil},
		{OpLock, func(e env) error { _, err := e.fs.Lock("LOCK"); return err },
			func(t *testing.T, e env) {
				l := must[io.Closer](t)(e.m.Lock("LOCK")) // not held
				noErr(t, l.Close())
			}},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			m := NewMem()
			noErr(t, m.WriteFile("a", []byte("abc")))
			var inject Injector // armed once the env is set up
			fsys := NewFaulty(m, func(op Op) error {
				if inject == nil {
					return nil
				}
				return inject(op)
			})
			e := env{m: m, fs: fsys, rw: must[File](t)(fsys.OpenReadWrite("a"))}
			inject = FailKind(tt.kind, 0, EIO("a"))
			before := m.Ops()
			err := tt.do(e)
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("error %v, want one matching EIO", err)
			}
			if tt.unchanged != nil {
				tt.unchanged(t, e)
			}
			if tt.kind.Mutating() && tt.kind != OpSync && tt.kind != OpSyncDir && m.Ops() != before {
				t.Errorf("the failed %v reached the underlying FS", tt.kind)
			}
			// Not sticky: the same operation now succeeds.
			if err := tt.do(e); err != nil {
				t.Errorf("second %v: %v; failures must not be sticky", tt.kind, err)
			}
		})
	}
}

func TestFaultyShortWrite(t *testing.T) {
	m := NewMem()
	fsys := NewFaulty(m, FailKind(OpWrite, 1, ShortWrite(3, ENOSPC("a"))))
	f := must[File](t)(fsys.Create("a"))
	must[int](t)(f.Write([]byte("01")))
	n, err := f.Write([]byte("abcdef"))
	if n != 3 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("short write = %d, %v; want 3, ENOSPC", n, err)
	}
	wantContent(t, m, "a", []byte("01abc"))
	// The offset advanced by what was written.
	must[int](t)(f.Write([]byte("Z")))
	wantContent(t, m, "a", []byte("01abcZ"))

	for _, tt := range []struct {
		n       int
		err     error
		wantN   int
		wantErr error
	}{
		{10, nil, 4, io.ErrShortWrite}, // clamped; nil means io.ErrShortWrite
		{-1, EIO("b"), 0, syscall.EIO},
		{0, ENOSPC("b"), 0, syscall.ENOSPC},
	} {
		m := NewMem()
		f := must[File](t)(NewFaulty(m, FailKind(OpWrite, 0, ShortWrite(tt.n, tt.err))).Create("b"))
		n, err := f.Write([]byte("wxyz"))
		if n != tt.wantN || !errors.Is(err, tt.wantErr) {
			t.Errorf("ShortWrite(%d, %v): Write = %d, %v; want %d, %v", tt.n, tt.err, n, err, tt.wantN, tt.wantErr)
		}
		wantContent(t, m, "b", []byte("wxyz"[:tt.wantN]))
	}

	// For other kinds a ShortWrite is an ordinary failure.
	m = NewMem()
	err = NewFaulty(m, FailKind(OpCreate, 0, ShortWrite(1, ENOSPC("c")))).SyncDir()
	noErr(t, err)
	_, err = NewFaulty(m, FailKind(OpCreate, 0, ShortWrite(1, ENOSPC("c")))).Create("c")
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "short write of 1 bytes") {
		t.Errorf("Create = %v, want the ShortWrite error matching ENOSPC", err)
	}
	wantList(t, m)
}

func TestFaultyOpsAndIndexes(t *testing.T) {
	var seen []Op
	fsys := NewFaulty(NewMem(), func(op Op) error {
		seen = append(seen, op)
		if op.Index == 4 {
			return EIO(op.Name)
		}
		return nil
	})
	f := must[File](t)(fsys.Create("a"))
	must[int](t)(f.Write([]byte("hello")))
	g := must[File](t)(fsys.Open("a"))
	must[int](t)(g.Read(make([]byte, 2)))
	noErr(t, f.Sync())
	noErr(t, f.Truncate(1))
	if err := fsys.Rename("a", "b"); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Rename #4 = %v, want EIO", err)
	}
	noErr(t, fsys.SyncDir())
	must[[]string](t)(fsys.List())
	must[int64](t)(fsys.Stat("a"))
	noErr(t, fsys.Remove("a"))
	noErr(t, must[io.Closer](t)(fsys.Lock("LOCK")).Close())
	// Seek, Size and Close are not seen.
	must[int64](t)(f.Seek(0, io.SeekStart))
	must[int64](t)(f.Size())
	noErr(t, g.Close())

	want := []Op{
		{Kind: OpCreate, Name: "a", Index: 0},
		{Kind: OpWrite, Name: "a", Index: 1, Len: 5},
		{Kind: OpOpen, Name: "a", Index: -1},
		{Kind: OpRead, Name: "a", Index: -1, Len: 2},
		{Kind: OpSync, Name: "a", Index: 2},
		{Kind: OpTruncate, Name: "a", Index: 3},
		{Kind: OpRename, Name: "a", NewName: "b", Index: 4},
		{Kind: OpSyncDir, Name: ".", Index: 5},
		{Kind: OpList, Name: ".", Index: -1},
		{Kind: OpStat, Name: "a", Index: -1},
		{Kind: OpRemove, Name: "a", Index: 6},
		{Kind: OpLock, Name: "LOCK", Index: -1},
	}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("ops seen (-want +got):\n%s", diff)
	}
	if fsys.Ops() != 7 {
		t.Errorf("Ops() = %d, want 7", fsys.Ops())
	}
}

func TestFailAt(t *testing.T) {
	for k := range 4 {
		m := NewMem()
		noErr(t, m.WriteFile("a", nil))
		fsys := NewFaulty(m, FailAt(k, ENOSPC("x")))
		var errs []error
		f, err := fsys.Create("a") // op 0
		errs = append(errs, err)
		if f == nil {
			f = must[File](t)(fsys.OpenReadWrite("a")) // not a mutating op
		}
		_, err = f.Write([]byte("x")) // op 1
		errs = append(errs, err)
		errs = append(errs, f.Sync())       // op 2
		errs = append(errs, fsys.SyncDir()) // op 3
		for i, err := range errs {
			if (i == k) != errors.Is(err, syscall.ENOSPC) {
				t.Errorf("FailAt(%d): op %d returned %v", k, i, err)
			}
		}
	}
	// Non-mutating ops never match, even FailAt(-1).
	fsys := NewFaulty(NewMem(), FailAt(-1, ENOSPC("x")))
	if _, err := fsys.List(); err != nil {
		t.Errorf("FailAt(-1) failed List: %v", err)
	}
}

func TestFailKindCountsItsKindOnly(t *testing.T) {
	m := NewMem()
	fsys := NewFaulty(m, FailKind(OpSync, 2, EIO("a")))
	f := must[File](t)(fsys.Create("a"))
	for i := range 5 {
		must[int](t)(f.Write([]byte("x")))
		err := f.Sync()
		if (i == 2) != errors.Is(err, syscall.EIO) {
			t.Errorf("sync %d: %v", i, err)
		}
	}
}

func TestInjectedErrors(t *testing.T) {
	for _, tt := range []struct {
		err   error
		errno syscall.Errno
	}{
		{EIO("seg-1"), syscall.EIO},
		{ENOSPC("seg-1"), syscall.ENOSPC},
	} {
		if !errors.Is(tt.err, tt.errno) {
			t.Errorf("%v does not match %v", tt.err, tt.errno)
		}
		if pe, ok := errors.AsType[*fs.PathError](tt.err); !ok || pe.Path != "seg-1" {
			t.Errorf("%v is not a *fs.PathError on seg-1", tt.err)
		}
		if !strings.Contains(tt.err.Error(), "seg-1") {
			t.Errorf("%q does not name the file", tt.err)
		}
	}
	if errors.Is(EIO("a"), syscall.ENOSPC) {
		t.Error("EIO matches ENOSPC")
	}
}

func TestOpStrings(t *testing.T) {
	for kind, want := range map[OpKind]string{
		OpCreate: "create", OpWrite: "write", OpSync: "sync", OpTruncate: "truncate",
		OpRemove: "remove", OpRename: "rename", OpSyncDir: "syncdir", OpOpen: "open",
		OpRead: "read", OpList: "list", OpStat: "stat", OpLock: "lock", OpKind(99): "OpKind(99)",
	} {
		if got := kind.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
	mutating := []OpKind{OpCreate, OpWrite, OpSync, OpTruncate, OpRemove, OpRename, OpSyncDir}
	for kind := range OpKind(OpLock + 1) {
		isMutating := false
		for _, k := range mutating {
			isMutating = isMutating || k == kind
		}
		if kind.Mutating() != isMutating {
			t.Errorf("%v.Mutating() = %v", kind, kind.Mutating())
		}
	}
	for op, want := range map[Op]string{
		{Kind: OpWrite, Name: "a", Index: 3, Len: 10}:       "write a #3 (10 bytes)",
		{Kind: OpRename, Name: "a", NewName: "b", Index: 0}: "rename a -> b #0",
		{Kind: OpStat, Name: "a", Index: -1}:                "stat a",
	} {
		if got := op.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}
