package vfs

import (
	"io"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCounting(t *testing.T) {
	c := NewCounting(NewMem())
	f := must[File](t)(c.Create("a"))
	must[int](t)(f.Write([]byte("abc")))
	must[int](t)(f.Write([]byte("de")))
	noErr(t, f.Sync())
	must[int64](t)(f.Seek(0, io.SeekStart))
	buf := make([]byte, 4)
	must[int](t)(f.Read(buf))
	if n, err := f.ReadAt(make([]byte, 10), 0); n != 5 || err != io.EOF {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	g := must[File](t)(c.Open("a"))
	if _, err := c.Open("missing"); err == nil {
		t.Fatal("Open missing succeeded")
	}
	noErr(t, c.Rename("a", "b"))
	// Handles count under the name they were opened with.
	must[int](t)(f.Write([]byte("f"))) // at offset 4: "abcdf"
	must[[]byte](t)(io.ReadAll(g))     // 5 bytes, then EOF: two reads
	h := must[File](t)(c.OpenReadWrite("b"))
	must[int](t)(h.Write([]byte("xy")))
	noErr(t, h.Sync())
	noErr(t, c.Remove("b"))
	noErr(t, c.SyncDir())
	// Uncounted pass-throughs.
	must[[]string](t)(c.List())
	c.Stat("b")
	l := must[io.Closer](t)(c.Lock("LOCK"))
	noErr(t, l.Close())

	wantA := Counters{
		Reads: 2 + 2, BytesRead: 4 + 5 + 5,
		Writes: 3, BytesWritten: 6,
		Syncs: 1, Creates: 1, Opens: 1,
	}
	wantB := Counters{Writes: 1, BytesWritten: 2, Syncs: 1, Opens: 1, Removes: 1}
	wantTotal := Counters{
		Reads: 4, BytesRead: 14, Writes: 4, BytesWritten: 8, Syncs: 2,
		Creates: 1, Opens: 3, Removes: 1, Renames: 1, SyncDirs: 1,
	}
	for _, tt := range []struct {
		what      string
		got, want Counters
	}{
		{"File(a)", c.File("a"), wantA},
		{"File(b)", c.File("b"), wantB},
		{"File(missing)", c.File("missing"), Counters{Opens: 1}},
		{"File(never)", c.File("never"), Counters{}},
		{"Total", c.Total(), wantTotal},
	} {
		if diff := cmp.Diff(tt.want, tt.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tt.what, diff)
		}
	}

	c.Reset()
	if diff := cmp.Diff(Counters{}, c.Total()); diff != "" {
		t.Errorf("Total after Reset (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(Counters{}, c.File("a")); diff != "" {
		t.Errorf("File(a) after Reset (-want +got):\n%s", diff)
	}
	must[int](t)(f.Write([]byte("g")))
	if diff := cmp.Diff(Counters{Writes: 1, BytesWritten: 1}, c.File("a")); diff != "" {
		t.Errorf("File(a) counting after Reset (-want +got):\n%s", diff)
	}
}

func TestCountingCountsFailedCalls(t *testing.T) {
	c := NewCounting(NewFaulty(NewMem(), FailKind(OpWrite, 0, ENOSPC("a"))))
	f := must[File](t)(c.Create("a"))
	if _, err := f.Write([]byte("abc")); err == nil {
		t.Fatal("injected write failure did not happen")
	}
	want := Counters{Creates: 1, Writes: 1}
	if diff := cmp.Diff(want, c.File("a")); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestCountingConcurrent(t *testing.T) {
	c := NewCounting(NewMem())
	writeFile(t, c, "a", make([]byte, 100))
	f := must[File](t)(c.Open("a"))
	defer f.Close()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			buf := make([]byte, 10)
			for range 100 {
				f.ReadAt(buf, 0)
			}
			c.Total()
			c.File("a")
		})
	}
	wg.Wait()
	if got := c.File("a"); got.Reads != 800 || got.BytesRead != 8000 {
		t.Errorf("Reads = %d, BytesRead = %d; want 800, 8000", got.Reads, got.BytesRead)
	}
}
