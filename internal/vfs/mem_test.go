package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// memDump is everything observable about a Mem's file state.
type memDump struct {
	Current map[string]string // name -> current content
	Synced  map[string]string // name -> synced content, current namespace
	Durable map[string]string // name -> synced content, durable namespace
	Log     []string          // pending directory operations
	Ops     int
}

func dump(m *Mem) memDump {
	m.mu.Lock()
	defer m.mu.Unlock()
	d := memDump{Current: map[string]string{}, Synced: map[string]string{}, Durable: map[string]string{}, Ops: m.ops}
	for name, ino := range m.names {
		d.Current[name] = string(ino.data)
		d.Synced[name] = string(ino.synced)
	}
	for name, ino := range m.durable {
		d.Durable[name] = string(ino.synced)
	}
	for _, op := range m.log {
		d.Log = append(d.Log, fmt.Sprintf("%d %s %s", op.kind, op.name, op.to))
	}
	return d
}

// contents maps every name in m to its current content.
func contents(t *testing.T, m *Mem) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range must[[]string](t)(m.List()) {
		out[name] = string(must[[]byte](t)(m.ReadFile(name)))
	}
	return out
}

func TestMemHandlesHaveTheirOwnOffsets(t *testing.T) {
	m := NewMem()
	noErr(t, m.WriteFile("a", []byte("abcdef")))
	f1 := must[File](t)(m.Open("a"))
	f2 := must[File](t)(m.Open("a"))
	buf := make([]byte, 2)
	must[int](t)(f1.Read(buf))
	must[int](t)(f1.Read(buf))
	if n, _ := f2.Read(buf); n != 2 || string(buf) != "ab" {
		t.Errorf("second handle read %q, want ab", buf[:n])
	}
	if n, _ := f1.Read(buf); n != 2 || string(buf) != "ef" {
		t.Errorf("first handle read %q, want ef", buf[:n])
	}
}

func TestMemReadFileWriteFile(t *testing.T) {
	m := NewMem()
	_, err := m.ReadFile("a")
	wantIs(t, "ReadFile missing", err, fs.ErrNotExist)
	wantIs(t, "WriteFile bad name", m.WriteFile("a/b", nil), fs.ErrInvalid)
	data := []byte("fixture")
	noErr(t, m.WriteFile("a", data))
	data[0] = 'X' // WriteFile copies
	got := must[[]byte](t)(m.ReadFile("a"))
	if string(got) != "fixture" {
		t.Errorf("ReadFile = %q", got)
	}
	got[0] = 'Y' // ReadFile copies
	if string(must[[]byte](t)(m.ReadFile("a"))) != "fixture" {
		t.Error("ReadFile result aliases the file")
	}
	if m.Ops() != 0 {
		t.Errorf("Ops = %d after fixtures, want 0", m.Ops())
	}
	// Fixtures are durable, data and entry.
	c := m.CrashClone(DropUnsynced, nil)
	if diff := cmp.Diff(map[string]string{"a": "fixture"}, contents(t, c)); diff != "" {
		t.Errorf("after crash (-want +got):\n%s", diff)
	}
}

func TestMemCloneIsDeepAndFresh(t *testing.T) {
	m := NewMem()
	noErr(t, m.WriteFile("durable", []byte("d")))
	f := must[File](t)(m.Create("pending"))
	must[int](t)(f.Write([]byte("synced")))
	noErr(t, f.Sync())
	must[int](t)(f.Write([]byte("+unsynced")))
	noErr(t, m.Rename("durable", "renamed"))
	l := must[io.Closer](t)(m.Lock("LOCK"))
	defer l.Close()
	m.CrashAt(100)

	c := m.Clone()
	want := dump(m)
	want.Ops = 0
	if diff := cmp.Diff(want, dump(c)); diff != "" {
		t.Errorf("clone state (-want +got):\n%s", diff)
	}
	if c.Ops() != 0 || c.Crashed() {
		t.Errorf("clone Ops = %d, Crashed = %v; want 0, false", c.Ops(), c.Crashed())
	}
	cl := must[io.Closer](t)(c.Lock("LOCK")) // locks are not cloned
	noErr(t, cl.Close())
	// The clone crashes like the original.
	for _, model := range CrashModels() {
		if diff := cmp.Diff(dump(m.CrashClone(model, nil)), dump(c.CrashClone(model, nil))); diff != "" {
			t.Errorf("%v: clone crashes differently (-orig +clone):\n%s", model, diff)
		}
	}
	// And it is independent.
	before := dump(m)
	g := must[File](t)(c.OpenReadWrite("pending"))
	must[int](t)(g.Write([]byte("XX")))
	noErr(t, g.Sync())
	noErr(t, c.Remove("renamed"))
	noErr(t, c.SyncDir())
	must[int](t)(f.Write([]byte("!"))) // writes through the original's handle
	after := dump(m)
	before.Current["pending"] += "!"
	before.Ops++
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("original changed by clone (-want +got):\n%s", diff)
	}
	if got := contents(t, c); !cmp.Equal(got, map[string]string{"pending": "XXnced+unsynced", "LOCK": ""}) {
		t.Errorf("clone contents = %v", got)
	}
}

func TestMemLock(t *testing.T) {
	m := NewMem()
	l := must[io.Closer](t)(m.Lock("LOCK"))
	_, err := m.Lock("LOCK")
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Lock = %v, want ErrLocked", err)
	}
	if m.Ops() != 0 {
		t.Errorf("Lock counted as %d ops", m.Ops())
	}
	noErr(t, l.Close())
	l = must[io.Closer](t)(m.Lock("LOCK"))
	noErr(t, l.Close())
	// The LOCK file's entry is not durable until SyncDir.
	if got := contents(t, m.CrashClone(DropUnsynced, nil)); len(got) != 0 {
		t.Errorf("after crash: %v, want nothing", got)
	}
	noErr(t, m.SyncDir())
	if got := contents(t, m.CrashClone(DropUnsynced, nil)); !cmp.Equal(got, map[string]string{"LOCK": ""}) {
		t.Errorf("after SyncDir and crash: %v, want LOCK", got)
	}
}

func TestMemConcurrentUse(t *testing.T) {
	m := NewMem()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			name := fmt.Sprintf("f%d", i)
			f, err := m.Create(name)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			for j := range 20 {
				if _, err := f.Write([]byte{byte(j)}); err != nil {
					t.Error(err)
				}
				if j%5 == 0 {
					f.Sync()
					m.SyncDir()
					m.List()
				}
			}
		})
	}
	wg.Wait()
	names := must[[]string](t)(m.List())
	if len(names) != 8 || !slices.IsSorted(names) {
		t.Errorf("List = %v", names)
	}
	if ops := m.Ops(); ops != 8*(1+20+4+4) {
		t.Errorf("Ops = %d, want %d", ops, 8*(1+20+4+4))
	}
	for _, name := range names {
		if got := must[int64](t)(m.Stat(name)); got != 20 {
			t.Errorf("Stat(%s) = %d, want 20", name, got)
		}
	}
}
