package evlog

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// TestCrashLoopCheckpointHasTeeth shows the crash loops catch a checkpoint
// trusted beyond the durable end: a writer that checkpoints what it wrote
// before fsyncing it, and a recovery that trusts a checkpoint without
// checking that the segment still holds what it indexes.
func TestCrashLoopCheckpointHasTeeth(t *testing.T) {
	trustCheckpointBeyondDurable = true
	t.Cleanup(func() { trustCheckpointBeyondDurable = false })
	bad := crashLoop(t, 3, 30, SyncNever, nil)
	if len(bad) == 0 {
		t.Fatal("the crash loop found no violation: it has no teeth")
	}
	t.Logf("%d violations, e.g. %s", len(bad), bad[0])
}

// fillNewest appends events of ~1 KiB over 8 streams to l until its active
// segment holds at least size bytes.
func fillNewest(t *testing.T, l *Log, size int64) {
	t.Helper()
	ctx := t.Context()
	payload := make([]byte, 1000)
	for i := 0; l.Stats().Bytes < size; i++ {
		reqs := make([]AppendRequest, 8)
		for s := range reqs {
			evs := make([]Envelope, 16)
			for k := range evs {
				evs[k] = Envelope{Type: "filled", Data: payload}
			}
			reqs[s] = AppendRequest{Stream: fmt.Sprintf("stream-%d", s), Expect: ExpectAny, Events: evs}
		}
		if _, err := l.AppendBatch(ctx, reqs); err != nil {
			t.Fatal(err)
		}
	}
}

// logExtent reads every event of l and returns how many there are and the
// last seq, failing on a seq gap. It borrows each payload (nothing is kept):
// copying a 32 MiB log event by event is not what the callers check.
func logExtent(t *testing.T, l *Log) (n int, last uint64) {
	t.Helper()
	for e, err := range l.RangeBorrowed(t.Context(), 1, math.MaxUint64) {
		if err != nil {
			t.Fatalf("reading events: %v", err)
		}
		n++
		if e.Seq != uint64(n) {
			t.Fatalf("event %d has seq %d", n, e.Seq)
		}
		last = e.Seq
	}
	return n, last
}

// TestOpenReadsBoundedBytes is the byte-counter proof that Open after a
// clean Close reads a number of bytes independent of the newest segment's
// size: the same at 1 MiB and at 32 MiB, writer and read-only. Without the
// checkpoint it reads the whole segment.
func TestOpenReadsBoundedBytes(t *testing.T) {
	const bound = 16 << 10
	opts := Options{Sync: SyncNever, Clock: fakeClock(t0, time.Millisecond)}
	read := map[string]int64{}
	for _, size := range []int64{1 << 20, 32 << 20} {
		mem := vfs.NewMem()
		l := openMem(t, mem, opts)
		fillNewest(t, l, size)
		wantN, wantLast := logExtent(t, l)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		for _, ro := range []bool{false, true} {
			c := vfs.NewCounting(mem)
			var fsys vfs.FS = c
			if ro {
				fsys = vfs.ReadOnly(c)
			}
			l, err := openFS(fsys, opts, ro)
			if err != nil {
				t.Fatal(err)
			}
			n := c.Total().BytesRead
			if n, last := logExtent(t, l); n != wantN || last != wantLast {
				t.Errorf("size %d read-only %v: reopened log has %d events up to seq %d, want %d up to %d", size, ro, n, last, wantN, wantLast)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			t.Logf("newest segment of %d MiB, read-only %v: Open read %d bytes", size>>20, ro, n)
			if n > bound {
				t.Errorf("newest segment of %d MiB, read-only %v: Open read %d bytes, over %d", size>>20, ro, n, bound)
			}
			read[fmt.Sprint(ro)+"/"+fmt.Sprint(size)] = n
		}
		// The proof has teeth: without the checkpoint Open scans the segment.
		names, _ := mem.List()
		for _, n := range names {
			if strings.HasSuffix(n, segment.CheckpointExt) {
				if err := mem.Remove(n); err != nil {
					t.Fatal(err)
				}
			}
		}
		c := vfs.NewCounting(mem)
		l, err := openFS(vfs.ReadOnly(c), opts, true)
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
		if n := c.Total().BytesRead; n < size {
			t.Errorf("without a checkpoint Open read %d bytes of a %d-byte segment", n, size)
		}
	}
	for _, ro := range []string{"false", "true"} {
		if a, b := read[ro+"/1048576"], read[ro+"/33554432"]; a != b {
			t.Errorf("read-only %s: Open read %d bytes at 1 MiB, %d at 32 MiB", ro, a, b)
		}
	}
}

// copyMem returns a new Mem holding the files of m.
func copyMem(t *testing.T, m *vfs.Mem) *vfs.Mem {
	t.Helper()
	out := vfs.NewMem()
	names, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		b, err := m.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := out.WriteFile(n, b); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// warnCounter is a slog handler counting warnings.
type warnCounter struct{ n *atomic.Int64 }

func (h warnCounter) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h warnCounter) Handle(context.Context, slog.Record) error    { h.n.Add(1); return nil }
func (h warnCounter) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h warnCounter) WithGroup(string) slog.Handler                { return h }

// TestOpenDamagedCheckpoint damages the active segment's checkpoint byte
// by byte: Open (writer and read-only) never fails and never serves
// anything but the log's events; damage it sees at open is a warning and
// a scan of the segment, damage in a frame read later is answered by a
// scan of the segment.
func TestOpenDamagedCheckpoint(t *testing.T) {
	ctx := t.Context()
	opts := Options{Sync: SyncNever, Clock: fakeClock(t0, time.Millisecond)}
	mem := vfs.NewMem()
	l := openMem(t, mem, opts)
	for i := range 300 {
		if _, err := l.Append(ctx, fmt.Sprintf("s-%d", i%23), ExpectAny, Envelope{Type: "t", Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	want := readAll(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	name := segment.CheckpointName(segment.FormatFileName(1, 0))
	good, err := mem.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int // the bytes flipped: every one of the header and trailer, a sample of the frames
	for i := 0; i < len(good); i++ {
		if i > segment.CheckpointHeaderSize && i < len(good)-segment.TrailerSize {
			i += 6 // the frames: a sample
		}
		offs = append(offs, i)
	}
	// The flips are independent (each on its own copy, with its own warning
	// counter): parallel subtests over ranges of them.
	const chunk = 32
	var checked atomic.Int64
	t.Run("ranges", func(t *testing.T) {
		for lo := 0; lo < len(offs); lo += chunk {
			part := offs[lo:min(lo+chunk, len(offs))]
			t.Run(fmt.Sprintf("%d-%d", part[0], part[len(part)-1]), func(t *testing.T) {
				t.Parallel()
				for _, i := range part {
					for _, ro := range []bool{false, true} {
						openFlippedCheckpoint(t, mem, opts, name, good, i, ro, want)
						checked.Add(1)
					}
				}
			})
		}
	})
	if n := checked.Load(); n != int64(2*len(offs)) {
		t.Fatalf("checked %d flips, want %d (every offset, writer and read-only)", n, 2*len(offs))
	}
}

// openFlippedCheckpoint opens a copy of mem whose checkpoint name holds good
// with byte i flipped (read-only if ro) and checks it serves want and every
// stream whole, warning when the flip is in the header.
func openFlippedCheckpoint(t *testing.T, mem *vfs.Mem, opts Options, name string, good []byte, i int, ro bool, want []Envelope) {
	t.Helper()
	ctx := t.Context()
	var warned atomic.Int64
	o := opts
	o.Logger = slog.New(warnCounter{&warned})
	m := copyMem(t, mem)
	b := slices.Clone(good)
	b[i] ^= 0x40
	if err := m.WriteFile(name, b); err != nil {
		t.Fatal(err)
	}
	var fsys vfs.FS = m
	if ro {
		fsys = vfs.ReadOnly(m)
	}
	l, err := openFS(fsys, o, ro)
	if err != nil {
		t.Fatalf("byte %d flipped, read-only %v: Open: %v", i, ro, err)
	}
	if got := readAll(t, l); !envsEqual(want, got) {
		t.Fatalf("byte %d flipped, read-only %v: the log differs", i, ro)
	}
	for s := range 23 {
		stream := fmt.Sprintf("s-%d", s)
		var n int
		for e, err := range l.Stream(ctx, stream, 1) {
			if err != nil {
				t.Fatalf("byte %d flipped: reading %s: %v", i, stream, err)
			}
			if e.Stream != stream {
				t.Fatalf("byte %d flipped: %s served an event of %s", i, stream, e.Stream)
			}
			n++
		}
		if v, err := l.StreamVersion(ctx, stream); err != nil || v != uint64(n) || n == 0 {
			t.Fatalf("byte %d flipped: %s: %d events, version %d, %v", i, stream, n, v, err)
		}
	}
	if i < segment.CheckpointHeaderSize && warned.Load() == 0 {
		t.Errorf("byte %d of the header flipped, read-only %v: no warning", i, ro)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("byte %d flipped: Close: %v", i, err)
	}
}

// checkpointCovers reports whether segment file of mem has a checkpoint
// that Open uses and that indexes the byte at off.
func checkpointCovers(t *testing.T, mem *vfs.Mem, file string, off int64) bool {
	t.Helper()
	s, err := segment.Open(mem, file)
	if err != nil {
		return false
	}
	defer s.Close()
	c, err := segment.OpenCheckpoint(mem, s)
	if err != nil {
		return false
	}
	defer c.Close()
	return c.Check(s) == nil && off < c.End
}

// readAllErr reads every event of l, returning the first error.
func readAllErr(l *Log) ([]Envelope, error) {
	var out []Envelope
	for e, err := range l.Events(context.Background(), 1) {
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

// TestCrashRecoveryScansPastCheckpoint: after a crash (the process killed,
// no Close), recovery takes the index from the checkpoint written halfway
// through the segment and scans only what follows it.
func TestCrashRecoveryScansPastCheckpoint(t *testing.T) {
	opts := Options{Sync: SyncAlways, SegmentSize: 4 << 20, Clock: fakeClock(t0, time.Millisecond)}
	mem := vfs.NewMem()
	l := openMem(t, mem, opts)
	fillNewest(t, l, 3<<20)
	want := readAll(t, l)
	killed := mem.Clone()
	l.Close()
	seg := segment.FormatFileName(1, 0)
	size, err := killed.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	c := vfs.NewCounting(killed)
	l2, err := openFS(c, opts, false)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	read := c.File(seg).BytesRead
	if got := readAll(t, l2); !envsEqual(want, got) {
		t.Fatalf("recovered %d events, want %d", len(got), len(want))
	}
	t.Logf("segment of %d bytes: recovery read %d of them", size, read)
	if read > size-opts.SegmentSize/2+segment.CheckpointWindow+segment.HeaderSize {
		t.Errorf("recovery read %d bytes of a %d-byte segment checkpointed at %d or later", read, size, opts.SegmentSize/2)
	}
}
