package evlog

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// closedCheckpointedLog returns a Mem holding a closed log of 200 events in
// one segment, the segment's name and the end P of its checkpoint (written
// at Close, after the last fsync).
func closedCheckpointedLog(t *testing.T) (mem *vfs.Mem, seg string, p int64) {
	t.Helper()
	mem = vfs.NewMem()
	l := openMem(t, mem, Options{Sync: SyncNever, Clock: fakeClock(t0, time.Millisecond)})
	for i := range 200 {
		if _, err := l.Append(t.Context(), fmt.Sprintf("s-%d", i%3), ExpectAny, Envelope{Type: "t", Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	seg = segment.FormatFileName(1, 0)
	s, err := segment.Open(mem, seg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ck, err := segment.OpenCheckpoint(mem, s)
	if err != nil {
		t.Fatalf("no usable checkpoint after Close: %v", err)
	}
	defer ck.Close()
	return mem, seg, ck.End
}

// dirContents is every file of m with its bytes.
func dirContents(t *testing.T, m *vfs.Mem) map[string][]byte {
	t.Helper()
	names, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		if n == "LOCK" {
			continue
		}
		b, err := m.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = b
	}
	return out
}

// TestDurableLossBelowCheckpoint: a checkpoint proves the active segment
// fsynced through its end P, so a segment that lost bytes before P — cut
// short, or changed in the checkpoint's window — lost durable data, which
// no crash does (RELIABILITY #30). It is corruption, never a torn tail:
// the writer's Open fails naming the segment and the offset and truncates
// and removes nothing; a read-only Open and Verify agree.
func TestDurableLossBelowCheckpoint(t *testing.T) {
	base, seg, p := closedCheckpointedLog(t)
	good, err := base.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(len(good))
	if p != size {
		t.Fatalf("the checkpoint at Close covers %d of %d bytes", p, size)
	}
	ws := segment.CheckpointWindowStart(p)
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
		lo, hi int64 // the offset reported lies in [lo, hi]
	}{
		{"cut by 30 bytes", func(b []byte) []byte { return b[:size-30] }, size - 30, size - 30},
		{"cut by 1 byte", func(b []byte) []byte { return b[:size-1] }, size - 1, size - 1},
		{"cut to half", func(b []byte) []byte { return b[:size/2] }, size / 2, size / 2},
		{"last frame flipped", func(b []byte) []byte { b[size-3] ^= 0x10; return b }, ws, size - 3},
		{"window flipped at its start", func(b []byte) []byte { b[ws] ^= 0x10; return b }, segment.HeaderSize, ws}, // the frame holding ws
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := copyMem(t, base)
			if err := m.WriteFile(seg, tc.damage(slices.Clone(good))); err != nil {
				t.Fatal(err)
			}
			before := dirContents(t, m)
			check := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s: %v, want ErrCorrupt", what, err)
				}
				ce, ok := errors.AsType[*CorruptError](err)
				if !ok || ce.File != seg || ce.Offset < tc.lo || ce.Offset > tc.hi {
					t.Fatalf("%s: %v, want a *CorruptError naming %s at an offset in [%d, %d]", what, err, seg, tc.lo, tc.hi)
				}
			}
			for _, ro := range []bool{false, true} {
				var fsys vfs.FS = m
				if ro {
					fsys = vfs.ReadOnly(m)
				}
				l, err := openFS(fsys, Options{Logger: slog.New(slog.DiscardHandler)}, ro)
				if err == nil {
					l.Close()
				}
				check(fmt.Sprintf("Open (read-only %v)", ro), err)
				if diff := cmp.Diff(before, dirContents(t, m)); diff != "" {
					t.Fatalf("Open (read-only %v) changed the directory (-before +after):\n%s", ro, diff)
				}
			}
			rep, err := verifyFS(t.Context(), vfs.ReadOnly(m))
			if err != nil {
				t.Fatal(err)
			}
			var corrupt []Finding
			for _, f := range rep.Findings {
				if f.Kind == FindingTornTail {
					t.Errorf("verify: %s: damage before the checkpoint's end taken for a torn tail", f)
				}
				if f.Kind == FindingCorrupt {
					corrupt = append(corrupt, f)
				}
			}
			if len(corrupt) != 1 {
				t.Fatalf("verify: findings %v, want one corruption", rep.Findings)
			}
			check("verify", corrupt[0].Err)
			if f := corrupt[0]; f.File != seg || f.Offset < tc.lo || f.Offset > tc.hi {
				t.Errorf("verify: %s, want %s at an offset in [%d, %d]", f, seg, tc.lo, tc.hi)
			}
		})
	}
}

// TestDurableLossCheckpointNotAuthentic: a checkpoint that is not proven
// the segment's own (here: of another log's segment of the same name) is
// no proof of anything: a cut segment is then a torn tail, as before.
func TestDurableLossCheckpointNotAuthentic(t *testing.T) {
	base, seg, _ := closedCheckpointedLog(t)
	other, _, _ := closedCheckpointedLog(t) // another log ID, so another mark key
	ckpt := segment.CheckpointName(seg)
	foreign, err := other.ReadFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	good, err := base.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	m := copyMem(t, base)
	if err := m.WriteFile(ckpt, foreign); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile(seg, good[:len(good)-30]); err != nil {
		t.Fatal(err)
	}
	l, err := openFS(m, Options{Logger: slog.New(slog.DiscardHandler)}, false)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer l.Close()
	if r := l.Recovery(); r.TornTail == nil {
		t.Errorf("recovery report %+v, want a torn tail", r)
	}
}

// TestReaderCheckpointAfterItsSize: a reader beside a live writer takes the
// active segment's size, then finds a checkpoint the writer wrote after
// appending more (P beyond that size): a state the writer passes through,
// not damage. The reader serves what it took.
func TestReaderCheckpointAfterItsSize(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	opts := Options{Sync: SyncNever, Clock: fakeClock(t0, time.Millisecond)}
	l := openMem(t, mem, opts)
	for i := range 50 {
		if _, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "t", Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	seg := segment.FormatFileName(1, 0)
	s, err := segment.Open(vfs.ReadOnly(mem), seg) // the reader takes the size here
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 50 {
		if _, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "t", Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil { // checkpoints through the end
		t.Fatal(err)
	}
	idx, _, _, err := scanNewest(vfs.ReadOnly(mem), s, segment.ScanOptions{File: seg}, true, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("a checkpoint written after the reader took the size: %v", err)
	}
	if idx.Count != 50 {
		t.Errorf("the reader indexed %d events, want the 50 it saw", idx.Count)
	}
}

// TestCheckpointedNewestProvesSeal: an authentic checkpoint of the newest
// segment proves it held a durable event, and so the seal of the segment
// before it durable. The newest cut to its header then lost durable data:
// damage in the sealed segment is not taken for a torn seal and
// truncated; Open refuses, changing nothing, and Verify agrees.
func TestCheckpointedNewestProvesSeal(t *testing.T) {
	mem := vfs.NewMem()
	opts := Options{SegmentSize: MinSegmentSize, Logger: slog.New(slog.DiscardHandler)}
	l := openMem(t, mem, opts)
	var segs []SegmentInfo
	var err error
	for i := 0; len(segs) < 2; i++ {
		if _, err := l.Append(t.Context(), "s", ExpectAny, Envelope{Type: "t", Data: slices.Repeat([]byte{byte(i)}, 100)}); err != nil {
			t.Fatal(err)
		}
		if segs, err = l.Segments(); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	old, newest := segs[0], segs[1]
	if _, err := mem.Stat(segment.CheckpointName(newest.File)); err != nil {
		t.Fatalf("no checkpoint of the newest segment after Close: %v", err)
	}
	nb, err := mem.ReadFile(newest.File)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := mem.ReadFile(old.File)
	if err != nil {
		t.Fatal(err)
	}
	s, err := segment.Open(mem, old.File)
	if err != nil {
		t.Fatal(err)
	}
	recEnd := s.Trailer.RecordsEnd
	s.Close()
	clear(ob[recEnd : recEnd+16]) // as a torn seal would look
	if err := mem.WriteFile(old.File, ob); err != nil {
		t.Fatal(err)
	}
	if err := mem.WriteFile(newest.File, nb[:segment.HeaderSize]); err != nil {
		t.Fatal(err)
	}
	before := dirContents(t, mem)
	l, err = openFS(mem, opts, false)
	if err == nil {
		l.Close()
	}
	if ce, ok := errors.AsType[*CorruptError](err); !ok || ce.File != newest.File || ce.Offset != segment.HeaderSize {
		t.Fatalf("Open: %v, want corruption of %s at %d", err, newest.File, segment.HeaderSize)
	}
	if diff := cmp.Diff(before, dirContents(t, mem)); diff != "" {
		t.Fatalf("Open changed the directory (-before +after):\n%s", diff)
	}
	rep, err := verifyFS(t.Context(), vfs.ReadOnly(mem))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(rep.Findings, func(f Finding) bool {
		return f.Kind == FindingCorrupt && f.File == newest.File && f.Offset == segment.HeaderSize
	}) || slices.ContainsFunc(rep.Findings, func(f Finding) bool { return f.Kind == FindingTornTail }) {
		t.Errorf("verify: %v, want the newest segment's loss at %d and no torn tail", rep.Findings, segment.HeaderSize)
	}
}

// TestReaderCheckpointAfterRoll: a reader beside a live writer opened the
// segments during a roll — the old one not yet sealed, the new one empty —
// and finds the new one's checkpoint, written after the writer sealed the
// old one and appended (its end beyond the size the reader took, the file
// grown since). That checkpoint is not the reader's proof that the new
// segment held an event: in its view the roll is still interrupted (the
// stress test's verify beside a writer reported "segment is not the newest
// but is not sealed" when it was). For the writer, and for a segment that
// did not grow, it is proof.
func TestReaderCheckpointAfterRoll(t *testing.T) {
	base, seg, p := closedCheckpointedLog(t)
	full, err := base.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	ckpt := segment.CheckpointName(seg)
	ck, err := base.ReadFile(ckpt)
	if err != nil {
		t.Fatal(err)
	}
	for _, grow := range []bool{true, false} {
		m := copyMem(t, base)
		if err := m.Remove(ckpt); err != nil {
			t.Fatal(err)
		}
		if err := m.WriteFile(seg, full[:segment.HeaderSize]); err != nil {
			t.Fatal(err)
		}
		s, err := segment.Open(vfs.ReadOnly(m), seg) // the reader takes the empty segment
		if err != nil {
			t.Fatal(err)
		}
		if grow { // the writer appends to the same file
			f, err := m.OpenReadWrite(seg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Seek(segment.HeaderSize, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(full[segment.HeaderSize:p]); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		if err := m.WriteFile(ckpt, ck); err != nil {
			t.Fatal(err)
		}
		ro := vfs.ReadOnly(m)
		if got, want := emptySegment(ro, &segment.DirSegment{DirFile: segment.DirFile{Name: seg}, Seg: s}), grow; got != want {
			t.Errorf("file grown %v: verify's emptySegment %v, want %v", grow, got, want)
		}
		if got, want := newestBlank(ro, s, true), grow; got != want {
			t.Errorf("file grown %v: a reader's newestBlank %v, want %v", grow, got, want)
		}
		if newestBlank(ro, s, false) {
			t.Errorf("file grown %v: the writer's newestBlank ignores an authentic checkpoint", grow)
		}
		s.Close()
	}
}
