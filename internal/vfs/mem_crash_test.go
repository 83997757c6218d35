package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMemOpsCountsMutatingOperations(t *testing.T) {
	m := NewMem()
	noErr(t, m.WriteFile("fixture", []byte("0123456789")))
	var f File
	steps := []struct {
		name  string
		do    func() error
		delta int
	}{
		{"Create", func() (err error) { f, err = m.Create("a"); return err }, 1},
		{"Write", func() error { _, err := f.Write([]byte("abc")); return err }, 1},
		{"empty Write", func() error { _, err := f.Write(nil); return err }, 1},
		{"Sync", func() error { return f.Sync() }, 1},
		{"Truncate", func() error { return f.Truncate(1) }, 1},
		{"Rename", func() error { return m.Rename("a", "b") }, 1},
		{"Remove", func() error { return m.Remove("b") }, 1},
		{"SyncDir", func() error { return m.SyncDir() }, 1},
		{"failing Remove", func() error { m.Remove("missing"); return nil }, 1},
		{"failing Rename", func() error { m.Rename("missing", "x"); return nil }, 1},
		{"Write on read-only handle", func() error {
			g := must[File](t)(m.Open("fixture"))
			defer g.Close()
			if _, err := g.Write([]byte("x")); err == nil {
				return errors.New("succeeded")
			}
			return nil
		}, 1},
		{"invalid name", func() error { m.Remove("a/b"); m.Create(".."); return nil }, 0},
		{"closed handle", func() error {
			noErr(t, f.Close())
			f.Write([]byte("x"))
			f.Sync()
			return nil
		}, 0},
		{"reads", func() error {
			g := must[File](t)(m.Open("fixture"))
			buf := make([]byte, 4)
			g.Read(buf)
			g.ReadAt(buf, 2)
			g.Seek(0, io.SeekEnd)
			g.Size()
			m.Stat("fixture")
			m.List()
			m.ReadFile("fixture")
			return g.Close()
		}, 0},
		{"Lock", func() error {
			l, err := m.Lock("LOCK")
			if err != nil {
				return err
			}
			return l.Close()
		}, 0},
	}
	for _, s := range steps {
		before := m.Ops()
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := m.Ops() - before; got != s.delta {
			t.Errorf("%s counted %d ops, want %d", s.name, got, s.delta)
		}
	}
}

// crashStep is one mutating operation of a workload. h holds the open
// handles by name; a step whose handle was never opened (because its Create
// crashed) returns errNoHandle.
type crashStep struct {
	name string
	do   func(m *Mem, h map[string]File) error
}

var errNoHandle = errors.New("no handle")

func createStep(name string) crashStep {
	return crashStep{"create " + name, func(m *Mem, h map[string]File) error {
		f, err := m.Create(name)
		if err == nil {
			h[name] = f
		}
		return err
	}}
}

func fileStep(what, name string, do func(File) error) crashStep {
	return crashStep{what + " " + name, func(_ *Mem, h map[string]File) error {
		f := h[name]
		if f == nil {
			return errNoHandle
		}
		return do(f)
	}}
}

func writeStep(name, data string) crashStep {
	return fileStep("write", name, func(f File) error { _, err := f.Write([]byte(data)); return err })
}

func syncStep(name string) crashStep {
	return fileStep("sync", name, func(f File) error { return f.Sync() })
}

var crashWorkload = []crashStep{
	createStep("a"),
	writeStep("a", "hello"),
	syncStep("a"),
	{"syncdir", func(m *Mem, _ map[string]File) error { return m.SyncDir() }},
	createStep("b"),
	writeStep("b", "world"),
	writeStep("a", " again"),
	fileStep("truncate", "a", func(f File) error { return f.Truncate(3) }),
	syncStep("b"),
	{"rename b a", func(m *Mem, _ map[string]File) error { return m.Rename("b", "a") }},
	writeStep("a", "!"), // through the handle on the replaced file
	{"remove a", func(m *Mem, _ map[string]File) error { return m.Remove("a") }},
	{"syncdir", func(m *Mem, _ map[string]File) error { return m.SyncDir() }},
	writeStep("b", "?"), // the removed file
}

// TestMemCrashAt arms a crash at every op of a workload and checks that ops
// before it succeed, op k fails with ErrCrashed without taking effect, every
// later op fails with ErrCrashed, and the state is exactly that after the
// first k ops.
func TestMemCrashAt(t *testing.T) {
	for k := range len(crashWorkload) {
		t.Run(fmt.Sprintf("k=%d_%s", k, strings.ReplaceAll(crashWorkload[k].name, " ", "_")), func(t *testing.T) {
			ref, refHandles := NewMem(), map[string]File{}
			for _, s := range crashWorkload[:k] {
				noErr(t, s.do(ref, refHandles))
			}

			m, h := NewMem(), map[string]File{}
			m.CrashAt(k)
			for i, s := range crashWorkload {
				err := s.do(m, h)
				switch {
				case i < k && err != nil:
					t.Fatalf("op %d (%s) before the crash point failed: %v", i, s.name, err)
				case i == k && !errors.Is(err, ErrCrashed):
					t.Fatalf("op %d (%s) at the crash point = %v, want ErrCrashed", i, s.name, err)
				case i > k && !errors.Is(err, ErrCrashed) && !errors.Is(err, errNoHandle):
					t.Fatalf("op %d (%s) after the crash = %v, want ErrCrashed", i, s.name, err)
				}
				if i == k-1 && m.Crashed() {
					t.Fatal("crashed before the crash point")
				}
			}
			if !m.Crashed() {
				t.Error("Crashed() = false after the crash point")
			}
			if m.Ops() != k {
				t.Errorf("Ops() = %d, want %d", m.Ops(), k)
			}
			if diff := cmp.Diff(dump(ref), dump(m)); diff != "" {
				t.Errorf("state after crash differs from the first %d ops (-want +got):\n%s", k, diff)
			}
			for _, model := range CrashModels() {
				seed := uint64(k)
				want := dump(ref.CrashClone(model, rand.New(rand.NewPCG(seed, 0))))
				got := dump(m.CrashClone(model, rand.New(rand.NewPCG(seed, 0))))
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%v: CrashClone differs (-want +got):\n%s", model, diff)
				}
			}
		})
	}
}

func TestMemAfterCrashEverythingFails(t *testing.T) {
	m := NewMem()
	noErr(t, m.WriteFile("a", []byte("abc")))
	rw := must[File](t)(m.OpenReadWrite("a"))
	ro := must[File](t)(m.Open("a"))
	l := must[io.Closer](t)(m.Lock("LOCK"))
	m.CrashAt(m.Ops())
	err := m.SyncDir()
	wantIs(t, "crashing SyncDir", err, ErrCrashed)

	buf := make([]byte, 2)
	calls := map[string]func() error{
		"Create":        func() error { _, err := m.Create("b"); return err },
		"Open":          func() error { _, err := m.Open("a"); return err },
		"OpenReadWrite": func() error { _, err := m.OpenReadWrite("a"); return err },
		"Remove":        func() error { return m.Remove("a") },
		"Rename":        func() error { return m.Rename("a", "c") },
		"List":          func() error { _, err := m.List(); return err },
		"Stat":          func() error { _, err := m.Stat("a"); return err },
		"SyncDir":       func() error { return m.SyncDir() },
		"Lock":          func() error { _, err := m.Lock("OTHER"); return err },
		"WriteFile":     func() error { return m.WriteFile("z", nil) },
		"Read":          func() error { _, err := ro.Read(buf); return err },
		"ReadAt":        func() error { _, err := ro.ReadAt(buf, 0); return err },
		"Seek":          func() error { _, err := ro.Seek(0, io.SeekStart); return err },
		"Size":          func() error { _, err := ro.Size(); return err },
		"Write":         func() error { _, err := rw.Write(buf); return err },
		"Sync":          func() error { return rw.Sync() },
		"Truncate":      func() error { return rw.Truncate(0) },
	}
	for _, name := range slices.Sorted(maps.Keys(calls)) {
		wantIs(t, name, calls[name](), ErrCrashed)
	}
	// Invalid names report the crash too: the machine is off.
	wantIs(t, "Create with a bad name", func() error { _, err := m.Create("a/b"); return err }(), ErrCrashed)
	// Closing is allowed (and pointless).
	noErr(t, rw.Close())
	noErr(t, ro.Close())
	noErr(t, l.Close())
	// Inspection still works.
	if got := string(must[[]byte](t)(m.ReadFile("a"))); got != "abc" {
		t.Errorf("ReadFile = %q", got)
	}
	if m.Ops() != 0 {
		t.Errorf("Ops = %d, want 0", m.Ops())
	}
	// The survivor is a working, uncrashed Mem.
	c := m.CrashClone(DropUnsynced, nil)
	if c.Crashed() || c.Ops() != 0 {
		t.Errorf("CrashClone: Crashed = %v, Ops = %d", c.Crashed(), c.Ops())
	}
	writeFile(t, c, "b", []byte("x"))
	cl := must[io.Closer](t)(c.Lock("LOCK"))
	noErr(t, cl.Close())
}

func TestMemCrashAtArming(t *testing.T) {
	m := NewMem()
	m.CrashAt(0)
	m.CrashAt(-1) // disarm
	// Ops 0 and 1.
	writeFile(t, m, "a", []byte("x"))
	if m.Crashed() {
		t.Fatal("crashed after disarming")
	}
	m.CrashAt(-5)
	noErr(t, m.SyncDir())
	// Arming at an index already passed crashes the next op.
	m.CrashAt(1)
	wantIs(t, "Remove", m.Remove("a"), ErrCrashed)
	if m.Ops() != 3 || !m.Crashed() {
		t.Errorf("Ops = %d, Crashed = %v; want 3, true", m.Ops(), m.Crashed())
	}
	// Disarming does not undo a crash.
	m.CrashAt(-1)
	_, err := m.List()
	wantIs(t, "List after disarming a crashed Mem", err, ErrCrashed)
}

// crashOutcomes is a set of surviving directories, as name -> content maps.
type crashOutcomes []map[string]string

func TestCrashModels(t *testing.T) {
	sectors := func(n int, b byte) string { return strings.Repeat(string(b), n) }
	const seeds = 300

	// Multi-sector append: 1000 synced bytes then 2000 unsynced.
	bigSynced, bigCurrent := sectors(1000, 'S'), sectors(1000, 'S')+sectors(2000, 'U')
	var bigKeep crashOutcomes
	for _, n := range []int{1000, 1024, 1536, 2048, 2560, 3000} {
		bigKeep = append(bigKeep, map[string]string{"a": bigCurrent[:n]})
	}

	tests := []struct {
		name  string
		setup func(t *testing.T, m *Mem)
		// drop is exactly what survives under DropUnsynced.
		drop map[string]string
		// keep is every outcome KeepPrefix may produce; each must show up
		// within the seeds tried.
		keep crashOutcomes
		// garbage checks a Garbage outcome; nil means it must equal drop.
		garbage func(got map[string]string) error
	}{
		{
			name: "synced file and entry",
			setup: func(t *testing.T, m *Mem) {
				f := must[File](t)(m.Create("a"))
				must[int](t)(f.Write([]byte("hello")))
				noErr(t, f.Sync())
				noErr(t, m.SyncDir())
			},
			drop: map[string]string{"a": "hello"},
			keep: crashOutcomes{{"a": "hello"}},
		},
		{
			name: "fsynced file whose entry was never SyncDir'ed",
			setup: func(t *testing.T, m *Mem) {
				f := must[File](t)(m.Create("a"))
				must[int](t)(f.Write([]byte("hello")))
				noErr(t, f.Sync())
			},
			drop: map[string]string{},
			keep: crashOutcomes{{}, {"a": "hello"}},
		},
		{
			name: "entry SyncDir'ed, data never synced",
			setup: func(t *testing.T, m *Mem) {
				f := must[File](t)(m.Create("a"))
				must[int](t)(f.Write([]byte("data")))
				noErr(t, m.SyncDir())
			},
			drop: map[string]string{"a": ""},
			keep: crashOutcomes{{"a": ""}, {"a": "data"}},
			garbage: func(got map[string]string) error {
				if a, ok := got["a"]; len(got) != 1 || !ok || (len(a) != 0 && len(a) != 4) {
					return errors.New("want a with 0 or 4 bytes")
				}
				return nil
			},
		},
		{
			name: "unsynced append to a durable file",
			setup: func(t *testing.T, m *Mem) {
				noErr(t, m.WriteFile("a", []byte("syn")))
				f := must[File](t)(m.OpenReadWrite("a"))
				must[int64](t)(f.Seek(0, io.SeekEnd))
				must[int](t)(f.Write([]byte("+more")))
			},
			drop: map[string]string{"a": "syn"},
			keep: crashOutcomes{{"a": "syn"}, {"a": "syn+more"}},
			garbage: func(got map[string]string) error {
				a := got["a"]
				if len(got) != 1 || !strings.HasPrefix(a, "syn") || (len(a) != 3 && len(a) != 8) {
					return errors.New(`want a = "syn" + 0 or 5 bytes`)
				}
				return nil
			},
		},
		{
			name: "multi-sector unsynced append",
			setup: func(t *testing.T, m *Mem) {
				noErr(t, m.WriteFile("a", []byte(bigSynced)))
				f := must[File](t)(m.OpenReadWrite("a"))
				must[int64](t)(f.Seek(0, io.SeekEnd))
				for range 4 {
					must[int](t)(f.Write([]byte(sectors(500, 'U'))))
				}
			},
			drop: map[string]string{"a": bigSynced},
			keep: bigKeep,
			garbage: func(got map[string]string) error {
				a := got["a"]
				if len(got) != 1 || !strings.HasPrefix(a, bigSynced) {
					return errors.New("synced prefix altered or file lost")
				}
				if n := len(a); n > 3000 || (n%SectorSize != 0 && n != 1000 && n != 3000) {
					return fmt.Errorf("length %d is not a torn-append length", n)
				}
				return nil
			},
		},
		{
			name: "rename not followed by SyncDir",
			setup: func(t *testing.T, m *Mem) {
				noErr(t, m.WriteFile("a", []byte("A")))
				noErr(t, m.WriteFile("b", []byte("B")))
				noErr(t, m.Rename("a", "b"))
			},
			drop: map[string]string{"a": "A", "b": "B"},
			keep: crashOutcomes{{"a": "A", "b": "B"}, {"b": "A"}},
		},
		{
			name: "remove not followed by SyncDir",
			setup: func(t *testing.T, m *Mem) {
				noErr(t, m.WriteFile("a", []byte("A")))
				noErr(t, m.Remove("a"))
			},
			drop: map[string]string{"a": "A"},
			keep: crashOutcomes{{"a": "A"}, {}},
		},
		{
			name: "atomic replace without SyncDir",
			setup: func(t *testing.T, m *Mem) {
				noErr(t, m.WriteFile("CURRENT", []byte("v1")))
				f := must[File](t)(m.Create("tmp"))
				must[int](t)(f.Write([]byte("v2")))
				noErr(t, f.Sync())
				noErr(t, m.Rename("tmp", "CURRENT"))
			},
			drop: map[string]string{"CURRENT": "v1"},
			keep: crashOutcomes{{"CURRENT": "v1"}, {"CURRENT": "v1", "tmp": "v2"}, {"CURRENT": "v2"}},
		},
		{
			name: "atomic replace with SyncDir",
			setup: func(t *testing.T, m *Mem) {
				noErr(t, m.WriteFile("CURRENT", []byte("v1")))
				f := must[File](t)(m.Create("tmp"))
				must[int](t)(f.Write([]byte("v2")))
				noErr(t, f.Sync())
				noErr(t, m.Rename("tmp", "CURRENT"))
				noErr(t, m.SyncDir())
			},
			drop: map[string]string{"CURRENT": "v2"},
			keep: crashOutcomes{{"CURRENT": "v2"}},
		},
		{
			name: "truncated after sync",
			setup: func(t *testing.T, m *Mem) {
				noErr(t, m.WriteFile("a", []byte("0123456789")))
				f := must[File](t)(m.OpenReadWrite("a"))
				noErr(t, f.Truncate(4))
			},
			drop: map[string]string{"a": "0123456789"},
			keep: crashOutcomes{{"a": "0123456789"}, {"a": "0123"}},
		},
		{
			name: "overwritten by Create after sync",
			setup: func(t *testing.T, m *Mem) {
				noErr(t, m.WriteFile("a", []byte("old-data")))
				f := must[File](t)(m.Create("a"))
				must[int](t)(f.Write([]byte("new")))
			},
			drop: map[string]string{"a": "old-data"},
			// Per sector: the synced or current version, at the synced or
			// current length.
			keep: crashOutcomes{{"a": "old-data"}, {"a": "new-data"}, {"a": "old"}, {"a": "new"}},
		},
		{
			name: "two-sector overwrite tears per sector",
			setup: func(t *testing.T, m *Mem) {
				noErr(t, m.WriteFile("a", []byte(sectors(1024, 'o'))))
				f := must[File](t)(m.OpenReadWrite("a"))
				must[int](t)(f.Write([]byte(sectors(1024, 'n'))))
			},
			drop: map[string]string{"a": sectors(1024, 'o')},
			keep: crashOutcomes{
				{"a": sectors(1024, 'o')}, {"a": sectors(1024, 'n')},
				{"a": sectors(512, 'o') + sectors(512, 'n')}, {"a": sectors(512, 'n') + sectors(512, 'o')},
			},
		},
		{
			name: "removed file synced through an open handle",
			setup: func(t *testing.T, m *Mem) {
				noErr(t, m.WriteFile("a", []byte("old")))
				f := must[File](t)(m.OpenReadWrite("a"))
				noErr(t, m.Remove("a"))
				must[int](t)(f.Write([]byte("new")))
				noErr(t, f.Sync())
			},
			// The unlink was not durable, the data was.
			drop: map[string]string{"a": "new"},
			keep: crashOutcomes{{"a": "new"}, {}},
		},
		{
			name: "file created and removed before SyncDir",
			setup: func(t *testing.T, m *Mem) {
				writeFile(t, m, "tmp", []byte("x"))
				noErr(t, m.Remove("tmp"))
			},
			drop: map[string]string{},
			// The create may survive without the remove, with or without
			// the unsynced byte.
			keep: crashOutcomes{{}, {"tmp": ""}, {"tmp": "x"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMem()
			tt.setup(t, m)
			before := dump(m)

			if diff := cmp.Diff(tt.drop, contents(t, m.CrashClone(DropUnsynced, nil))); diff != "" {
				t.Errorf("DropUnsynced (-want +got):\n%s", diff)
			}

			seen := make([]bool, len(tt.keep))
			for seed := range uint64(seeds) {
				got := contents(t, m.CrashClone(KeepPrefix, rand.New(rand.NewPCG(seed, 1))))
				i := slices.IndexFunc(tt.keep, func(o map[string]string) bool { return maps.Equal(o, got) })
				if i < 0 {
					t.Fatalf("KeepPrefix seed %d: unexpected outcome %s", seed, summarize(got))
				}
				seen[i] = true
			}
			for i, ok := range seen {
				if !ok {
					t.Errorf("KeepPrefix never produced %s in %d seeds", summarize(tt.keep[i]), seeds)
				}
			}

			for seed := range uint64(seeds) {
				got := contents(t, m.CrashClone(Garbage, rand.New(rand.NewPCG(seed, 2))))
				if tt.garbage == nil {
					if diff := cmp.Diff(tt.drop, got); diff != "" {
						t.Fatalf("Garbage seed %d (-want +got):\n%s", seed, diff)
					}
				} else if err := tt.garbage(got); err != nil {
					t.Fatalf("Garbage seed %d: %v: got %s", seed, err, summarize(got))
				}
			}

			if diff := cmp.Diff(before, dump(m)); diff != "" {
				t.Errorf("CrashClone changed the original (-before +after):\n%s", diff)
			}
		})
	}
}

// summarize shortens long contents for messages.
func summarize(c map[string]string) string {
	var b strings.Builder
	b.WriteString("{")
	for _, name := range slices.Sorted(maps.Keys(c)) {
		v := c[name]
		if len(v) > 20 {
			v = fmt.Sprintf("%s…(%d bytes)", v[:10], len(v))
		}
		fmt.Fprintf(&b, " %s:%q", name, v)
	}
	b.WriteString(" }")
	return b.String()
}

func TestGarbageCorruptsOnlyUnsyncedSectors(t *testing.T) {
	synced := bytes.Repeat([]byte{'S'}, 700)
	m := NewMem()
	noErr(t, m.WriteFile("a", synced))
	f := must[File](t)(m.OpenReadWrite("a"))
	must[int64](t)(f.Seek(0, io.SeekEnd))
	must[int](t)(f.Write(bytes.Repeat([]byte{'U'}, 8*SectorSize-700)))
	// Sectors 1..7 are wholly unsynced.
	var intact, zero, random, lengths, full int
	seenLen := map[int]bool{}
	for seed := range uint64(200) {
		a := must[[]byte](t)(m.CrashClone(Garbage, rand.New(rand.NewPCG(seed, 3))).ReadFile("a"))
		if !bytes.HasPrefix(a, synced) {
			t.Fatalf("seed %d: synced bytes altered", seed)
		}
		seenLen[len(a)] = true
		if len(a) == 8*SectorSize {
			full++
		}
		for off := SectorSize; off+SectorSize <= len(a); off += SectorSize {
			switch sec := a[off : off+SectorSize]; {
			case bytes.Equal(sec, bytes.Repeat([]byte{'U'}, SectorSize)):
				intact++
			case bytes.Equal(sec, make([]byte, SectorSize)):
				zero++
			default:
				random++
			}
		}
	}
	lengths = len(seenLen)
	if intact == 0 || zero == 0 || random == 0 || lengths < 3 {
		t.Errorf("over 200 seeds: %d intact, %d zeroed, %d random sectors, %d distinct lengths; want all kinds and several lengths",
			intact, zero, random, lengths)
	}
	// The current length is likely: torn there (about 5/16) or extended
	// to it (1/2 of the rest), about 131 of 200; without extension ~62.
	if full < 100 {
		t.Errorf("current length in %d of 200 crashes, want Garbage to extend files to it often", full)
	}
	if !seenLen[8*SectorSize] || !seenLen[700] {
		t.Errorf("lengths seen %v, want both the synced (700) and the current (4096) length", slices.Sorted(maps.Keys(seenLen)))
	}
}

func TestCrashCloneIsDeterministic(t *testing.T) {
	m := randomWorkload(rand.New(rand.NewPCG(42, 42)), 60)
	// Make sure there is an unsynced append to a durable file.
	noErr(t, m.WriteFile("z", bytes.Repeat([]byte{'z'}, 700)))
	f := must[File](t)(m.OpenReadWrite("z"))
	must[int64](t)(f.Seek(0, io.SeekEnd))
	must[int](t)(f.Write(bytes.Repeat([]byte{'Z'}, 3000)))
	for _, model := range CrashModels() {
		distinct := map[string]bool{}
		for seed := range uint64(20) {
			a := dump(m.CrashClone(model, rand.New(rand.NewPCG(seed, 7))))
			b := dump(m.CrashClone(model, rand.New(rand.NewPCG(seed, 7))))
			if diff := cmp.Diff(a, b); diff != "" {
				t.Fatalf("%v seed %d: two runs differ:\n%s", model, seed, diff)
			}
			distinct[fmt.Sprint(a)] = true
		}
		if model != DropUnsynced && model != RemovalsFirst && len(distinct) < 2 {
			t.Errorf("%v: 20 seeds gave one outcome; the model is not random", model)
		}
	}
	if a, b := dump(m.CrashClone(KeepPrefix, nil)), dump(m.CrashClone(KeepPrefix, nil)); !cmp.Equal(a, b) {
		t.Error("nil rng is not deterministic")
	}
}

func TestCrashCloneResultIsDurable(t *testing.T) {
	m := randomWorkload(rand.New(rand.NewPCG(1, 2)), 60)
	for _, model := range CrashModels() {
		c := m.CrashClone(model, rand.New(rand.NewPCG(3, 4)))
		want := contents(t, c)
		if diff := cmp.Diff(want, contents(t, c.CrashClone(DropUnsynced, nil))); diff != "" {
			t.Errorf("%v: crashing the survivor again loses data (-want +got):\n%s", model, diff)
		}
	}
}

// randomWorkload runs n random operations on a new Mem over a few names,
// leaving handles open, and returns it.
func randomWorkload(rng *rand.Rand, n int) *Mem {
	m := NewMem()
	names := []string{"a", "b", "c", "d"}
	pick := func() string { return names[rng.IntN(len(names))] }
	handles := map[string]File{}
	handle := func() File {
		if len(handles) == 0 {
			return nil
		}
		keys := slices.Sorted(maps.Keys(handles))
		return handles[keys[rng.IntN(len(keys))]]
	}
	for range n {
		switch rng.IntN(10) {
		case 0:
			name := pick()
			if f, err := m.Create(name); err == nil {
				handles[name+fmt.Sprint(rng.IntN(2))] = f
			}
		case 1:
			name := pick()
			if f, err := m.OpenReadWrite(name); err == nil {
				f.Seek(int64(rng.IntN(1500)), io.SeekStart)
				handles[name+fmt.Sprint(rng.IntN(2))] = f
			}
		case 2, 3, 4:
			if f := handle(); f != nil {
				data := make([]byte, rng.IntN(1200))
				for i := range data {
					data[i] = byte('a' + rng.IntN(26))
				}
				f.Write(data)
			}
		case 5:
			if f := handle(); f != nil {
				f.Sync()
			}
		case 6:
			if f := handle(); f != nil && rng.IntN(3) == 0 {
				f.Truncate(int64(rng.IntN(2000)))
			}
		case 7:
			m.Rename(pick(), pick())
		case 8:
			if rng.IntN(2) == 0 {
				m.Remove(pick())
			}
		case 9:
			m.SyncDir()
		}
	}
	return m
}

// TestCrashModelProperties checks each model's contract on random
// workloads against the Mem's internal state.
func TestCrashModelProperties(t *testing.T) {
	for iter := range uint64(150) {
		m := randomWorkload(rand.New(rand.NewPCG(iter, 99)), 50)
		// Candidate namespaces for KeepPrefix: durable + each log prefix.
		var candidates []map[string]*inode
		ns := maps.Clone(m.durable)
		candidates = append(candidates, maps.Clone(ns))
		for _, op := range m.log {
			op.apply(ns)
			candidates = append(candidates, maps.Clone(ns))
		}
		for _, model := range CrashModels() {
			got := contents(t, m.CrashClone(model, rand.New(rand.NewPCG(iter, 5))))
			var err error
			switch model {
			case DropUnsynced:
				want := map[string]string{}
				for name, ino := range m.durable {
					want[name] = string(ino.synced)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					err = errors.New(diff)
				}
			case Garbage:
				err = checkNamespace(got, m.durable, func(ino *inode, data []byte) bool {
					return garbageAllowed(ino.synced, ino.data, data)
				})
			case KeepPrefix:
				for _, c := range candidates {
					if err = checkNamespace(got, c, func(ino *inode, data []byte) bool {
						return keepPrefixAllowed(ino.synced, ino.data, data)
					}); err == nil {
						break
					}
				}
			}
			if err != nil {
				t.Fatalf("workload %d, %v: %v", iter, model, err)
			}
		}
	}
}

// checkNamespace reports whether got has exactly the names of ns, each with
// content ok for its inode.
func checkNamespace(got map[string]string, ns map[string]*inode, ok func(*inode, []byte) bool) error {
	if !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(ns))) {
		return fmt.Errorf("names %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(ns)))
	}
	for name, ino := range ns {
		if !ok(ino, []byte(got[name])) {
			return fmt.Errorf("%s: %d bytes not allowed (synced %d, current %d)", name, len(got[name]), len(ino.synced), len(ino.data))
		}
	}
	return nil
}

// tornAppendLen reports whether n is a length an append from s to c bytes
// can be torn at.
func tornAppendLen(n, s, c int) bool {
	return n == s || n == c || (n > s && n < c && n%SectorSize == 0)
}

func keepPrefixAllowed(s, c, got []byte) bool {
	if bytes.HasPrefix(c, s) {
		return bytes.HasPrefix(c, got) && tornAppendLen(len(got), len(s), len(c))
	}
	if len(got) != len(s) && len(got) != len(c) {
		return false
	}
	version := func(first, second []byte, off, end int) []byte {
		var v []byte
		for i := off; i < end; i++ {
			if i < len(first) {
				v = append(v, first[i])
			} else {
				v = append(v, second[i])
			}
		}
		return v
	}
	for off := 0; off < len(got); off += SectorSize {
		end := min(off+SectorSize, len(got))
		if !bytes.Equal(got[off:end], version(s, c, off, end)) && !bytes.Equal(got[off:end], version(c, s, off, end)) {
			return false
		}
	}
	return true
}

func garbageAllowed(s, c, got []byte) bool {
	if !bytes.HasPrefix(got, s) {
		return false
	}
	if len(c) <= len(s) {
		return len(got) == len(s)
	}
	return tornAppendLen(len(got), len(s), len(c))
}

func TestCrashModelString(t *testing.T) {
	for model, want := range map[CrashModel]string{
		DropUnsynced: "DropUnsynced", KeepPrefix: "KeepPrefix", Garbage: "Garbage", RemovalsFirst: "RemovalsFirst", CrashModel(9): "CrashModel(9)",
	} {
		if got := model.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("CrashClone with an unknown model did not panic")
		}
	}()
	NewMem().CrashClone(CrashModel(9), nil)
}
