package fuzz

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/testhook"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// writeSegments writes the first count of segs into dir under the names of
// segments starting at the given seqs (a later file with the same name
// replaces an earlier one).
func writeSegments(t *testing.T, dir string, count int, bases []uint64, segs [][]byte) {
	t.Helper()
	for i := range count {
		if err := os.WriteFile(filepath.Join(dir, segment.FormatFileName(bases[i], 0)), segs[i], 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// memSegments returns an in-memory directory holding the first count of
// segs under the names of segments starting at the given seqs, like
// writeSegments.
func memSegments(t *testing.T, count int, bases []uint64, segs [][]byte) *vfs.Mem {
	t.Helper()
	m := vfs.NewMem()
	for i := range count {
		f, err := m.Create(segment.FormatFileName(bases[i], 0))
		if err == nil {
			_, err = f.Write(segs[i])
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := m.SyncDir(); err != nil {
		t.Fatal(err)
	}
	return m
}

// openMem opens a log on fsys through testhook (readOnly: OpenReadOnly).
func openMem(fsys vfs.FS, opts evlog.Options, readOnly bool) (*evlog.Log, error) {
	open := testhook.Open
	if readOnly {
		open = testhook.OpenReadOnly
	}
	l, err := open(fsys, opts)
	if err != nil {
		return nil, err
	}
	return l.(*evlog.Log), nil
}

// FuzzOpenDir opens a directory of one to three segment files holding
// arbitrary bytes (named as segments starting at seq 1, base2 and base3),
// read-only and, on a copy, for writing; reads everything; and verifies it.
// The directories are in memory (vfs.Mem): an input takes well under a
// millisecond, so the fuzzer (and its minimizer) get somewhere.
//
// The oracle:
//   - nothing panics, and one input allocates at most maxAlloc;
//   - an open either fails with an error matching ErrCorrupt, or succeeds;
//     then reading every event yields a contiguous prefix — seqs 1, 2, …,
//     stream versions 1, 2, … per stream, recorded times that never
//     decrease, valid fields — that ends at LastSeq, or ends early with an
//     error matching ErrCorrupt; each stream read through its index yields
//     exactly that stream's events;
//   - the reader and the writer agree: both fail, or both serve the same
//     events (the writer truncates a torn tail the reader does not serve);
//     the writer then appends at LastSeq+1, and a reopened log serves the
//     old events followed by the new one;
//   - evlog.Verify never panics; when it reports no corruption, the log
//     opens and reads without error, with as many events as Verify counted.
func FuzzOpenDir(f *testing.F) {
	f.Fuzz(func(t *testing.T, n uint8, base2, base3 uint64, seg1, seg2, seg3 []byte) {
		count := int(n%3) + 1
		bases := []uint64{1, base2, base3}
		segs := [][]byte{seg1, seg2, seg3}
		checkInput(t, func() { checkOpenDir(t, count, bases, segs) })
	})
}

func checkOpenDir(t *testing.T, count int, bases []uint64, segs [][]byte) {
	ctx := context.Background()
	roDir, rwDir := memSegments(t, count, bases, segs), memSegments(t, count, bases, segs)

	vrep, verr := testhook.Verify(ctx, roDir)
	if verr != nil {
		t.Fatalf("Verify: %v", verr)
	}
	rep := vrep.(evlog.VerifyReport)

	var roEvents []event.Envelope
	roOK := false
	ro, err := openMem(roDir, evlog.Options{}, true)
	switch {
	case err != nil:
		if !errors.Is(err, evlog.ErrCorrupt) {
			t.Fatalf("OpenReadOnly: %v, want nil or an error matching ErrCorrupt", err)
		}
		if !rep.Corrupt() {
			t.Fatalf("Verify reports no corruption (%v), but OpenReadOnly fails: %v", rep.Findings, err)
		}
	default:
		var rerr error
		roEvents, rerr = checkServed(t, ro)
		roOK = rerr == nil
		if !rep.Corrupt() {
			if rerr != nil {
				t.Fatalf("Verify reports no corruption (%v), but reading fails after %d events: %v", rep.Findings, len(roEvents), rerr)
			}
			if uint64(len(roEvents)) != rep.Events {
				t.Fatalf("Verify counts %d events, the log serves %d", rep.Events, len(roEvents))
			}
		}
		if err := ro.Close(); err != nil {
			t.Fatalf("Close (read-only): %v", err)
		}
	}

	rw, werr := openMem(rwDir, evlog.Options{Sync: evlog.SyncNever}, false)
	if (werr == nil) != (err == nil) {
		t.Fatalf("OpenReadOnly: %v, but Open: %v", err, werr)
	}
	if werr != nil {
		if !errors.Is(werr, evlog.ErrCorrupt) {
			t.Fatalf("Open: %v, want nil or an error matching ErrCorrupt", werr)
		}
		return
	}
	defer rw.Close()
	rwEvents, rerr := checkServed(t, rw)
	if roOK != (rerr == nil) || !slices.EqualFunc(roEvents, rwEvents, sameEvent) {
		t.Fatalf("the reader serves %d events (complete: %v), the writer %d (read error: %v)", len(roEvents), roOK, len(rwEvents), rerr)
	}
	if !roOK {
		return // damage in a sealed segment: appending is allowed, but the log cannot be read past it
	}
	last := rw.LastSeq()
	pos, err := rw.Append(ctx, "fuzz-appended", evlog.ExpectAny, event.Envelope{Type: "appended", Data: []byte{0xc0}})
	switch {
	case errors.Is(err, evlog.ErrTimeBackwards), errors.Is(err, evlog.ErrInvalid):
		return // e.g. the log's last time is after now, or the stream is at its version limit
	case err != nil:
		t.Fatalf("Append after recovery (last seq %d): %v", last, err)
	case pos.Seq != last+1:
		t.Fatalf("Append after recovery: seq %d, want %d", pos.Seq, last+1)
	}
	if err := rw.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	again, err := openMem(rwDir, evlog.Options{}, true)
	if err != nil {
		t.Fatalf("reopening after an append: %v", err)
	}
	defer again.Close()
	if tail := again.Recovery().TornTail; tail != nil {
		t.Fatalf("after a clean close, the newest segment has a torn tail: %+v", *tail)
	}
	got, err := checkServed(t, again)
	if err != nil || len(got) != len(roEvents)+1 || !slices.EqualFunc(got[:len(roEvents)], roEvents, sameEvent) || got[len(got)-1].Seq != last+1 {
		t.Fatalf("after recovery and one append, the log serves %d events (error %v), want the %d recovered ones and seq %d", len(got), err, len(roEvents), last+1)
	}
}

// checkServed reads every event of l and checks the invariants of a
// served log; it returns the events and the error that ended the reading
// (matching ErrCorrupt, else the test fails).
func checkServed(t *testing.T, l *evlog.Log) ([]event.Envelope, error) {
	t.Helper()
	ctx := context.Background()
	events, err := readLog(ctx, l)
	if err != nil && !errors.Is(err, evlog.ErrCorrupt) {
		t.Fatalf("reading after %d events: %v, want an error matching ErrCorrupt", len(events), err)
	}
	versions := map[string]uint64{}
	var prev time.Time
	for i, e := range events {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: the log must serve seqs 1, 2, … (%s)", i, e.Seq, describe(e))
		}
		if e.Version != versions[e.Stream]+1 {
			t.Fatalf("seq %d is version %d of %q, want %d", e.Seq, e.Version, e.Stream, versions[e.Stream]+1)
		}
		versions[e.Stream] = e.Version
		if err := e.ValidateFields(); err != nil || e.SchemaVersion == 0 {
			t.Fatalf("seq %d: invalid fields served (%v): %s", e.Seq, err, describe(e))
		}
		if e.Time.Before(prev) {
			t.Fatalf("seq %d recorded at %v, before the previous event (%v)", e.Seq, e.Time, prev)
		}
		prev = e.Time
	}
	if err != nil {
		return events, err
	}
	if last := l.LastSeq(); last != uint64(len(events)) {
		t.Fatalf("LastSeq %d, but the log serves %d events", last, len(events))
	}
	if len(events) > 0 && !l.LastTime().Equal(prev) {
		t.Fatalf("LastTime %v, the last event's %v", l.LastTime(), prev)
	}
	// Every stream, through its index.
	for stream, v := range versions {
		var got []event.Envelope
		for e, err := range l.Stream(ctx, stream, 1) {
			if err != nil {
				if !errors.Is(err, evlog.ErrCorrupt) {
					t.Fatalf("reading stream %q: %v", stream, err)
				}
				return events, err
			}
			got = append(got, e)
		}
		var want []event.Envelope
		for _, e := range events {
			if e.Stream == stream {
				want = append(want, e)
			}
		}
		if !slices.EqualFunc(got, want, sameEvent) {
			t.Fatalf("stream %q (version %d) reads %d events through its index, %d in the log", stream, v, len(got), len(want))
		}
		if sv, err := l.StreamVersion(ctx, stream); err != nil || sv != v {
			t.Fatalf("StreamVersion(%q) = %d, %v; want %d", stream, sv, err, v)
		}
	}
	// SeqAt agrees with the recorded times.
	for _, i := range []int{0, len(events) / 2, len(events) - 1} {
		if i < 0 || i >= len(events) {
			continue
		}
		tm := events[i].Time
		want := 0
		for _, e := range events {
			if !e.Time.After(tm) {
				want++
			}
		}
		if got, err := l.SeqAt(t.Context(), tm); err != nil && !errors.Is(err, evlog.ErrCorrupt) || err == nil && got != uint64(want) {
			t.Fatalf("SeqAt(seq %d's time) = %d, %v; want %d", events[i].Seq, got, err, want)
		}
	}
	return events, nil
}

// openDirSeeds builds small real logs and derives FuzzOpenDir's seeds
// from them: names starting with "valid-" open and read without error.
func openDirSeeds(t *testing.T) seedCorpus {
	t.Helper()
	seeds := seedCorpus{}
	add := func(name string, count int, bases []uint64, segs [][]byte) {
		for len(segs) < 3 {
			segs = append(segs, nil)
			bases = append(bases, 0)
		}
		seeds[name] = corpusFile(uint8(count-1), bases[1], bases[2], segs[0], segs[1], segs[2])
	}
	// A log of three segments: two sealed, one active.
	bases, segs := smallLog(t, 3, 0)
	add("valid-three-segments", 3, bases, segs)
	torn := append(append([]byte(nil), segs[2]...), 0x42, 0, 0, 0, 7, 0, 0, 0, 1, 'x')
	add("valid-torn-tail", 3, bases, [][]byte{segs[0], segs[1], torn})
	cut := segs[2][:len(segs[2])-5]
	add("valid-cut-mid-frame", 3, bases, [][]byte{segs[0], segs[1], cut})
	add("valid-newest-header-only", 3, bases, [][]byte{segs[0], segs[1], segs[2][:segment.HeaderSize]})
	add("newest-missing", 2, bases[:2], segs[:2])
	add("middle-missing", 2, []uint64{1, bases[2]}, [][]byte{segs[0], segs[2]})
	flipped := append([]byte(nil), segs[0]...)
	flipped[segment.HeaderSize+20] ^= 0x08
	add("sealed-record-flipped", 3, bases, [][]byte{flipped, segs[1], segs[2]})
	trailer := append([]byte(nil), segs[0]...)
	trailer[len(trailer)-10] ^= 0x01
	add("sealed-trailer-flipped", 3, bases, [][]byte{trailer, segs[1], segs[2]})
	add("wrong-base-names", 3, []uint64{1, bases[2], bases[1]}, segs)
	// One active segment.
	bases1, segs1 := smallLog(t, 1, 1)
	add("valid-one-segment", 1, bases1, segs1)
	add("zero-length", 1, []uint64{1}, [][]byte{nil})
	add("garbage", 1, []uint64{1}, [][]byte{[]byte("evlogseg\x01\x00\x00\x00@\x00\x00\x00garbage garbage garbage garbage garbage")})
	// Another log's segment in the middle.
	bases2, segs2 := smallLog(t, 3, 2)
	add("foreign-middle", 3, bases, [][]byte{segs[0], segs2[1], segs[2]})
	_ = bases2
	// The golden files of segment/testdata/v1.
	for _, name := range []string{"sealed.seg", "torn.seg"} {
		b, err := os.ReadFile(filepath.Join("..", "segment", "testdata", "v1", name))
		if err != nil {
			t.Fatal(err)
		}
		add("golden-"+name, 1, []uint64{1}, [][]byte{b})
	}
	return seeds
}

// smallLog writes a log of segs segments (the last one active; seed varies
// the events) and returns their first seqs and contents.
func smallLog(t *testing.T, segs, seed int) ([]uint64, [][]byte) {
	t.Helper()
	dir := t.TempDir()
	tm := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	l, err := evlog.Open(dir, evlog.Options{SegmentSize: evlog.MinSegmentSize, Sync: evlog.SyncNever, Clock: func() time.Time { return tm }})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		info, err := l.Segments()
		if err != nil {
			t.Fatal(err)
		}
		if len(info) == segs && info[len(info)-1].Events >= 3 {
			break
		}
		tm = tm.Add(time.Duration(i%3) * time.Millisecond)
		e := event.Envelope{Type: []string{"created", "renamed"}[i%2], Data: fmt.Appendf(nil, "\xa6ev%04d", i+seed*1000)}
		if i%5 == 0 {
			e.ID, e.Meta = fmt.Sprint("id-", i), map[string]string{"k": "v"}
		}
		e2 := e
		e2.ID = "" // IDs are unique in a log
		if _, err := l.Append(t.Context(), []string{"cart-1", "cart-2", "user-9"}[i%3], evlog.ExpectAny, e, e2); err != nil {
			t.Fatal(err)
		}
	}
	info, err := l.Segments()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var bases []uint64
	var data [][]byte
	for _, si := range info {
		b, err := os.ReadFile(filepath.Join(dir, si.File))
		if err != nil {
			t.Fatal(err)
		}
		bases, data = append(bases, si.FirstSeq), append(data, b)
	}
	return bases, data
}

// The oldest segment of a log goes missing: the log must not open as if
// it began at the next segment's first seq. Seqs are 1-based and
// contiguous (doc.go), so a log whose first segment starts after seq 1
// has lost events, like a log missing a middle segment (which Open and
// Verify report as corruption).
func TestMissingFirstSegment(t *testing.T) {
	bases, segs := smallLog(t, 3, 0)
	dir := t.TempDir()
	writeSegments(t, dir, 3, bases, segs)
	if err := os.Remove(filepath.Join(dir, segment.FormatFileName(1, 0))); err != nil {
		t.Fatal(err)
	}
	rep, err := evlog.Verify(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Corrupt() {
		t.Errorf("Verify reports no corruption (%d events in %d segments) in a log whose first segment (seqs 1..%d) is missing", rep.Events, rep.Segments, bases[1]-1)
	}
	l, err := evlog.OpenReadOnly(dir, evlog.Options{})
	if err == nil {
		defer l.Close()
		events, _ := readLog(t.Context(), l)
		first := uint64(0)
		if len(events) > 0 {
			first = events[0].Seq
		}
		t.Errorf("OpenReadOnly serves %d events from seq %d; want an error matching ErrCorrupt (seqs 1..%d are missing)", len(events), first, bases[1]-1)
	} else if !errors.Is(err, evlog.ErrCorrupt) {
		t.Errorf("OpenReadOnly: %v, want an error matching ErrCorrupt", err)
	}
}

// Verify and Open agree about a segment whose name and header disagree on
// its first seq: Open refuses it as corrupt, so Verify must report it.
func TestVerifyMisnamedSegment(t *testing.T) {
	bases, segs := smallLog(t, 1, 0)
	dir := t.TempDir()
	writeSegments(t, dir, 1, []uint64{bases[0] + 9}, segs)
	if _, err := evlog.OpenReadOnly(dir, evlog.Options{}); !errors.Is(err, evlog.ErrCorrupt) {
		t.Fatalf("OpenReadOnly: %v, want an error matching ErrCorrupt", err)
	}
	rep, err := evlog.Verify(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Corrupt() {
		t.Errorf("Verify reports no corruption (findings %v) for segment %s, whose header says it starts at seq %d; Open refuses it", rep.Findings, segment.FormatFileName(bases[0]+9, 0), bases[0])
	}
}

// TestOpenDirInMemory: FuzzOpenDir's check runs entirely in memory (no
// temporary directory, no fsync), which is what makes fuzzing it fast
// enough to mean something: with TMPDIR pointing nowhere, every seed
// still passes.
func TestOpenDirInMemory(t *testing.T) {
	bases, segs := smallLog(t, 3, 0)
	torn := append(append([]byte(nil), segs[2]...), 0x42, 0, 0, 0, 7, 0, 0, 0, 1, 'x')
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "missing"))
	// Subtests: a t.TempDir in them would have to create its directory
	// under TMPDIR.
	t.Run("three-segments", func(t *testing.T) { checkOpenDir(t, 3, bases, segs) })
	t.Run("torn-tail", func(t *testing.T) { checkOpenDir(t, 3, bases, [][]byte{segs[0], segs[1], torn}) })
	t.Run("garbage", func(t *testing.T) { checkOpenDir(t, 1, bases, [][]byte{[]byte("garbage"), nil, nil}) })
}
