package evlog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// fixture is a log on a Mem: a few sealed segments and an active one
// holding several batches, all fsynced and recorded as durable but the
// last, which a process killed before any fsync left behind.
type fixture struct {
	mem    *vfs.Mem
	events []Envelope // everything in the log
	segs   []string   // segment names, oldest first
	// lastBatch is the offset in the active segment where the last batch
	// starts, and lastBatchEvents its size.
	lastBatch       int64
	lastBatchEvents int
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	mem := vfs.NewMem()
	l := openMem(t, mem, crashOpts(SyncAlways))
	work := genWorkload(11, 120)
	if err := runWorkload(t.Context(), l, work[:len(work)-1]); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The last batch: appended under SyncNever, then the process dies.
	l = openMem(t, mem, crashOpts(SyncNever))
	last := work[len(work)-1]
	if _, err := l.AppendBatch(t.Context(), last.reqs); err != nil {
		t.Fatal(err)
	}
	f := &fixture{mem: mem.Clone(), events: readAll(t, l)}
	mem = f.mem
	for _, r := range last.reqs {
		f.lastBatchEvents += len(r.Events)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := mem.List()
	for _, n := range names {
		if strings.HasSuffix(n, segment.Ext) {
			f.segs = append(f.segs, n)
		}
	}
	if len(f.segs) < 4 {
		t.Fatalf("fixture has %d segments, want at least 4", len(f.segs))
	}
	// Find where the last batch starts: after the last frame of the
	// active segment that is not an event or a commit of it.
	data, _ := mem.ReadFile(f.active())
	r := segment.NewReader(bytes.NewReader(data), segment.HeaderSize, int64(len(data)))
	var ends []int64 // ends of the commit and mark frames
	for {
		fr, err := r.Next()
		if err != nil {
			break
		}
		if fr.Kind != segment.KindEvent {
			ends = append(ends, fr.Offset+fr.Size())
		}
	}
	f.lastBatch = segment.HeaderSize
	if len(ends) >= 2 {
		f.lastBatch = ends[len(ends)-2]
	}
	return f
}

func (f *fixture) active() string { return f.segs[len(f.segs)-1] }

func (f *fixture) mutate(t *testing.T, name string, fn func([]byte) []byte) {
	t.Helper()
	data, err := f.mem.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.mem.WriteFile(name, fn(slices.Clone(data))); err != nil {
		t.Fatal(err)
	}
}

// TestRecoveryTable opens damaged logs: a torn tail is truncated and
// reported, keeping every complete batch; anything else is an error naming
// the file and the offset of the first invalid frame.
func TestRecoveryTable(t *testing.T) {
	type want int
	const (
		clean   want = iota // nothing lost
		torn                // the last batch (only) is lost, a tail reported
		tornAll             // a tail reported, no event lost
		corrupt             // Open fails with ErrCorrupt
		readErr             // Open succeeds, reading everything fails with ErrCorrupt
	)
	base := newFixture(t)
	sealed := base.segs[1]
	sealedData, _ := base.mem.ReadFile(sealed)
	sealedSeg, err := segment.Open(base.mem, sealed)
	if err != nil {
		t.Fatal(err)
	}
	recordsEnd, summaryOff := sealedSeg.Trailer.RecordsEnd, sealedSeg.Trailer.SummaryOff
	sealedSeg.Close()

	flip := func(off int64) func([]byte) []byte {
		return func(b []byte) []byte { b[off] ^= 0x40; return b }
	}
	cases := []struct {
		name    string
		file    func(f *fixture) string
		corrupt func(f *fixture, b []byte) []byte
		want    want
		offset  int64 // for corrupt/readErr: the reported offset (-1: don't check)
	}{
		{"garbage appended", (*fixture).active, func(f *fixture, b []byte) []byte { return append(b, "garbage garbage garbage"...) }, tornAll, 0},
		{"zeros appended", (*fixture).active, func(f *fixture, b []byte) []byte { return append(b, make([]byte, 700)...) }, tornAll, 0},
		{"0xFF appended", (*fixture).active, func(f *fixture, b []byte) []byte { return append(b, bytes.Repeat([]byte{0xff}, 600)...) }, tornAll, 0},
		{"huge length prefix at the tail", (*fixture).active, func(f *fixture, b []byte) []byte {
			return append(b, 1, 2, 3, 4, 0xff, 0xff, 0xff, 0x7f, 1)
		}, tornAll, 0},
		{"last batch's commit torn", (*fixture).active, func(f *fixture, b []byte) []byte { return b[:len(b)-3] }, torn, 0},
		{"flip in the last batch", (*fixture).active, func(f *fixture, b []byte) []byte { return flip(f.lastBatch + 12)(b) }, torn, 0},
		{"flip in an earlier batch of the newest segment", (*fixture).active, func(f *fixture, b []byte) []byte {
			return flip(segment.HeaderSize + 12)(b)
		}, corrupt, segment.HeaderSize},
		{"newest segment: flip in header", (*fixture).active, func(f *fixture, b []byte) []byte { return flip(40)(b) }, corrupt, 0},
		{"sealed: flip in header", func(f *fixture) string { return sealed }, func(f *fixture, b []byte) []byte { return flip(20)(b) }, corrupt, 0},
		{"sealed: flip in trailer", func(f *fixture) string { return sealed }, func(f *fixture, b []byte) []byte {
			return flip(int64(len(b)) - 10)(b)
		}, corrupt, -1},
		{"sealed: flip in a record", func(f *fixture) string { return sealed }, func(f *fixture, b []byte) []byte {
			return flip(segment.HeaderSize + 20)(b)
		}, readErr, segment.HeaderSize},
		{"sealed: truncated", func(f *fixture) string { return sealed }, func(f *fixture, b []byte) []byte { return b[:recordsEnd-5] }, corrupt, -1},
		{"sealed: zero length", func(f *fixture) string { return sealed }, func(f *fixture, b []byte) []byte { return nil }, corrupt, 0},
		{"sealed: random bytes", func(f *fixture) string { return sealed }, func(f *fixture, b []byte) []byte {
			for i := range b {
				b[i] = byte(i*7 + 3)
			}
			return b
		}, corrupt, 0},
		{"sealed: all 0xFF", func(f *fixture) string { return sealed }, func(f *fixture, b []byte) []byte { return bytes.Repeat([]byte{0xff}, len(b)) }, corrupt, 0},
	}
	_ = summaryOff
	_ = sealedData
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			name := tc.file(f)
			f.mutate(t, name, func(b []byte) []byte { return tc.corrupt(f, b) })
			before := snapshotFiles(t, f.mem)

			// A read-only open never modifies anything.
			ro, roErr := openFS(vfs.ReadOnly(f.mem), crashOpts(SyncAlways), true)
			if roErr == nil {
				ro.Close()
			}
			if d := cmp.Diff(before, snapshotFiles(t, f.mem)); d != "" {
				t.Fatalf("read-only open modified the directory:\n%s", d)
			}

			l, err := openFS(f.mem, crashOpts(SyncAlways), false)
			if tc.want == corrupt {
				ce, ok := errors.AsType[*segment.CorruptError](err)
				if !ok || !errors.Is(err, ErrCorrupt) {
					t.Fatalf("open: got %v, want a CorruptError", err)
				}
				if !errors.Is(roErr, ErrCorrupt) {
					t.Errorf("read-only open: got %v, want ErrCorrupt", roErr)
				}
				if ce.File != name && tc.name != "sealed: truncated" {
					t.Errorf("error names %q, want %q", ce.File, name)
				}
				if tc.offset >= 0 && ce.Offset != tc.offset {
					t.Errorf("error offset %d, want %d", ce.Offset, tc.offset)
				}
				if d := cmp.Diff(before, snapshotFiles(t, f.mem)); d != "" {
					t.Errorf("a failed open modified the directory:\n%s", d)
				}
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer l.Close()
			if tc.want == readErr {
				var rerr error
				for _, err := range l.Events(t.Context(), 1) {
					if err != nil {
						rerr = err
					}
				}
				ce, ok := errors.AsType[*segment.CorruptError](rerr)
				if !ok || ce.File != name || ce.Offset != tc.offset {
					t.Fatalf("reading: got %v, want a CorruptError naming %s at %d", rerr, name, tc.offset)
				}
				return
			}
			rep := l.Recovery()
			wantEvents := f.events
			switch tc.want {
			case torn:
				wantEvents = f.events[:len(f.events)-f.lastBatchEvents]
				fallthrough
			case tornAll:
				if rep.TornTail == nil || rep.TornFile != name {
					t.Fatalf("recovery report %+v, want a torn tail in %s", rep, name)
				}
			case clean:
				if rep.TornTail != nil {
					t.Fatalf("unexpected torn tail %+v", rep.TornTail)
				}
			}
			if d := envsDiff(wantEvents, readAll(t, l)); d != "" {
				t.Fatalf("events after recovery (-want +got):\n%s", d)
			}
			// The tail is gone: a second open finds nothing to repair, and
			// the log continues after the last kept event.
			l.Close()
			l2 := openMem(t, f.mem, crashOpts(SyncAlways))
			defer l2.Close()
			if rep := l2.Recovery(); rep.TornTail != nil {
				t.Fatalf("second open still finds a torn tail: %+v", rep.TornTail)
			}
			pos, err := l2.Append(t.Context(), "after", ExpectNoStream, Envelope{Type: "t", Time: t0.AddDate(1, 0, 0)})
			if err != nil || pos.Seq != uint64(len(wantEvents)+1) {
				t.Fatalf("append after recovery: %+v, %v", pos, err)
			}
		})
	}
}

// snapshotFiles returns the directory's files and contents.
func snapshotFiles(t *testing.T, mem *vfs.Mem) map[string]string {
	t.Helper()
	names, err := mem.List()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string)
	for _, n := range names {
		b, _ := mem.ReadFile(n)
		out[n] = string(b)
	}
	return out
}

// TestRecoveryTruncateEveryOffset cuts the newest segment at every offset
// of its last batch: recovery always keeps exactly the batches before it.
func TestRecoveryTruncateEveryOffset(t *testing.T) {
	f := newFixture(t)
	data, _ := f.mem.ReadFile(f.active())
	keep := f.events[:len(f.events)-f.lastBatchEvents]
	for cut := f.lastBatch; cut < int64(len(data)); cut++ {
		mem := f.mem.Clone()
		if err := mem.WriteFile(f.active(), data[:cut]); err != nil {
			t.Fatal(err)
		}
		l, err := openFS(mem, crashOpts(SyncAlways), false)
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		got := readAll(t, l)
		rep := l.Recovery()
		l.Close()
		if !envsEqual(keep, got) {
			t.Fatalf("cut at %d: %d events, want %d", cut, len(got), len(keep))
		}
		if (cut > f.lastBatch) != (rep.TornTail != nil) {
			t.Fatalf("cut at %d: torn tail report %+v", cut, rep.TornTail)
		}
		if n, _ := mem.Stat(f.active()); n != f.lastBatch {
			t.Fatalf("cut at %d: file is %d bytes after recovery, want %d", cut, n, f.lastBatch)
		}
	}
}

// TestRecoveryMissingSegments: a missing middle or newest segment, or a
// segment of another log, is corruption naming the file.
func TestRecoveryMissingSegments(t *testing.T) {
	t.Run("middle", func(t *testing.T) {
		f := newFixture(t)
		f.mem.Remove(f.segs[1])
		_, err := openFS(f.mem, crashOpts(SyncAlways), false)
		if ce, ok := errors.AsType[*segment.CorruptError](err); !ok || ce.File != f.segs[2] {
			t.Fatalf("got %v, want a CorruptError naming %s", err, f.segs[2])
		}
	})
	t.Run("newest", func(t *testing.T) {
		f := newFixture(t)
		f.mem.Remove(f.active())
		_, err := openFS(f.mem, crashOpts(SyncAlways), false)
		if ce, ok := errors.AsType[*segment.CorruptError](err); !ok || ce.File != f.segs[len(f.segs)-2] {
			t.Fatalf("got %v, want a CorruptError naming %s", err, f.segs[len(f.segs)-2])
		}
	})
	t.Run("foreign", func(t *testing.T) {
		f := newFixture(t)
		g := newFixture(t)
		data, _ := g.mem.ReadFile(g.segs[0])
		f.mem.WriteFile(f.segs[0], data)
		_, err := openFS(f.mem, crashOpts(SyncAlways), false)
		if !errors.Is(err, segment.ErrForeign) || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrForeign", err)
		}
	})
}

// TestRecoveryStrayFiles: files that look like segments but are not part of
// the log (a segment of another log or a copy under another generation's
// name) make Open fail with ErrCorrupt naming the stray file, and nothing
// is deleted — the writer validates the whole directory before it removes
// anything. A read-only open fails the same way.
func TestRecoveryStrayFiles(t *testing.T) {
	cases := []struct {
		name string
		// corrupt adds the stray file to f's directory and returns its name.
		corrupt func(t *testing.T, f *fixture) string
		foreign bool // the error also matches ErrForeign
	}{
		{"another log's segment under a higher generation", func(t *testing.T, f *fixture) string {
			g := newFixture(t)
			data, _ := g.mem.ReadFile(g.segs[0])
			name := segment.FormatFileName(1, 1)
			f.mem.WriteFile(name, data)
			return name
		}, true},
		{"copy of a sealed segment under the next generation", func(t *testing.T, f *fixture) string {
			data, _ := f.mem.ReadFile(f.segs[0])
			name := segment.FormatFileName(1, 1)
			f.mem.WriteFile(name, data)
			return name
		}, false},
		{"copy of a middle segment under a higher generation", func(t *testing.T, f *fixture) string {
			data, _ := f.mem.ReadFile(f.segs[1])
			base, _, _ := segment.ParseFileName(f.segs[1])
			name := segment.FormatFileName(base, 7)
			f.mem.WriteFile(name, data)
			return name
		}, false},
		{"copy of the active segment under a higher generation", func(t *testing.T, f *fixture) string {
			data, _ := f.mem.ReadFile(f.active())
			base, _, _ := segment.ParseFileName(f.active())
			name := segment.FormatFileName(base, 1)
			f.mem.WriteFile(name, data)
			return name
		}, false},
		{"a sealed segment under a later first seq", func(t *testing.T, f *fixture) string {
			data, _ := f.mem.ReadFile(f.segs[0])
			base, _, _ := segment.ParseFileName(f.segs[1])
			name := segment.FormatFileName(base, 3)
			f.mem.WriteFile(name, data)
			return name
		}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			stray := tc.corrupt(t, f)
			before := snapshotFiles(t, f.mem)
			for _, readOnly := range []bool{true, false} {
				fsys := vfs.FS(f.mem)
				if readOnly {
					fsys = vfs.ReadOnly(f.mem)
				}
				l, err := openFS(fsys, crashOpts(SyncAlways), readOnly)
				if err == nil {
					l.Close()
				}
				ce, ok := errors.AsType[*segment.CorruptError](err)
				if !ok || ce.File != stray {
					t.Errorf("open (read-only %v): got %v, want a CorruptError naming %s", readOnly, err, stray)
				}
				if tc.foreign && !errors.Is(err, segment.ErrForeign) {
					t.Errorf("open (read-only %v): got %v, want ErrForeign", readOnly, err)
				}
				if d := cmp.Diff(before, snapshotFiles(t, f.mem)); d != "" {
					t.Fatalf("open (read-only %v) modified the directory:\n%s", readOnly, d)
				}
			}
			rep, err := verifyFS(t.Context(), vfs.ReadOnly(f.mem))
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Corrupt() || !slices.ContainsFunc(rep.Findings, func(x Finding) bool { return x.File == stray }) {
				t.Errorf("verify: %+v, want corruption naming %s", rep.Findings, stray)
			}
		})
	}
}

// TestTornSealAfterRoll: a roll creates the next segment, then seals the
// old one; a crash before that seal's fsync completed can leave the old
// segment's trailer on disk without the footer before it. Recovery must
// not trust such a seal while the newest segment holds no event: every
// event of the old segment stays readable, its footer is a torn tail, and
// the log appends and reads on. (Found by the crash loop's garbage model.)
func TestTornSealAfterRoll(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	l, err := Open(dir, Options{SegmentSize: MinSegmentSize})
	if err != nil {
		t.Fatal(err)
	}
	var segs []SegmentInfo
	for i := 0; len(segs) < 2; i++ {
		if _, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "t", Data: bytes.Repeat([]byte{byte(i)}, 100)}); err != nil {
			t.Fatal(err)
		}
		if segs, err = l.Segments(); err != nil {
			t.Fatal(err)
		}
	}
	old, newest := segs[0], segs[1]
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The crash: the newest segment holds only its header (no event went
	// into it yet), and the old one's first footer frame never reached the
	// disk, though its trailer did.
	// Close checkpointed the event the roll put into the newest segment:
	// that checkpoint would prove the segment held a durable event (and
	// so the seal durable), which a crash before any event went into it
	// cannot leave.
	if err := os.Truncate(filepath.Join(dir, newest.File), segment.HeaderSize); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, segment.CheckpointName(newest.File))); err != nil {
		t.Fatal(err)
	}
	oldPath := filepath.Join(dir, old.File)
	b, err := os.ReadFile(oldPath)
	if err != nil {
		t.Fatal(err)
	}
	s, err := segment.Open(mustOS(t, dir), old.File)
	if err != nil {
		t.Fatal(err)
	}
	recEnd := s.Trailer.RecordsEnd
	s.Close()
	clear(b[recEnd : recEnd+16])
	if err := os.WriteFile(oldPath, b, 0o600); err != nil {
		t.Fatal(err)
	}

	rep, err := Verify(ctx, dir)
	if err != nil || rep.Corrupt() || rep.Events != uint64(old.Events) {
		t.Fatalf("verify: %d events, findings %v, %v; want %d events, a torn tail", rep.Events, rep.Findings, err, old.Events)
	}
	l, err = Open(dir, Options{SegmentSize: MinSegmentSize})
	if err != nil {
		t.Fatalf("open after a torn seal: %v", err)
	}
	defer l.Close()
	if tt := l.Recovery().TornTail; tt == nil || tt.Offset != recEnd {
		t.Errorf("recovery: torn tail %+v, want one at the old segment's records end %d", tt, recEnd)
	}
	if _, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "t"}); err != nil {
		t.Fatal(err)
	}
	n := uint64(0)
	for e, err := range l.Events(ctx, 1) {
		if err != nil {
			t.Fatalf("reading after a torn seal: %v", err)
		}
		if n++; e.Seq != n {
			t.Fatalf("seq %d, want %d", e.Seq, n)
		}
	}
	if n != uint64(old.Events)+1 {
		t.Fatalf("the log holds %d events, want %d", n, old.Events+1)
	}
}

func mustOS(t *testing.T, dir string) vfs.FS {
	t.Helper()
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	return fsys
}
