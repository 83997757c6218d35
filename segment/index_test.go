package segment

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
)

// seal returns a sealed segment file: header, records (zeros if nil) up to
// x.End, and the footer of x.
func seal(x *Index, h Header, records []byte) ([]byte, Trailer) {
	hb := h.Encode()
	file := append([]byte(nil), hb[:]...)
	if records == nil {
		records = make([]byte, x.End-HeaderSize)
	}
	file = append(file, records...)
	if int64(len(file)) != x.End {
		panic(fmt.Sprintf("records end at %d, index at %d", len(file), x.End))
	}
	return x.AppendFooter(file, hb)
}

// openMem writes data as name in a new Mem and opens it through a Counting.
func openMem(t testing.TB, name string, data []byte) (*Segment, *vfs.Counting) {
	t.Helper()
	mem := vfs.NewMem()
	if err := mem.WriteFile(name, data); err != nil {
		t.Fatal(err)
	}
	fsys := vfs.NewCounting(mem)
	s, err := Open(fsys, name)
	if err != nil {
		t.Fatalf("Open(%s): %v", name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s, fsys
}

// readStreams reads every stream's entry and postings back from a sealed
// segment.
func readStreams(t testing.TB, s *Segment, names []string) map[string]*StreamPostings {
	t.Helper()
	out := map[string]*StreamPostings{}
	for _, name := range names {
		e, ok, err := s.Lookup(name)
		if err != nil || !ok {
			t.Fatalf("Lookup(%q) = %+v, %v, %v", name, e, ok, err)
		}
		posts, err := s.Postings(e, nil)
		if err != nil {
			t.Fatalf("Postings(%q): %v", name, err)
		}
		if len(posts) != int(e.Count) {
			t.Fatalf("Postings(%q): %d postings, entry says %d", name, len(posts), e.Count)
		}
		out[name] = &StreamPostings{FirstVersion: e.FirstVersion, Posts: posts}
	}
	return out
}

func TestIndexFooterLarge(t *testing.T) {
	rng := newRand(t)
	const streams = 3000
	batches := genBatches(rng, 1000, genOptions{batches: 400, maxBatch: 99, streams: streams, maxData: 16, syncEvery: 1})
	img := buildImage(testHeader(1000), batches)
	x := img.index(len(batches))
	t.Logf("%d events, %d streams, %d blocks", x.Count, x.Streams(), (x.Streams()+blockStride-1)/blockStride)
	if x.Count < 10000 || x.Streams() < streams-50 || x.Streams() <= blockStride {
		t.Fatalf("generated %d events over %d streams: not the intended shape", x.Count, x.Streams())
	}
	file, tr := seal(x, img.h, img.data[HeaderSize:])
	name := FormatFileName(img.h.BaseSeq, 0)
	s, fsys := openMem(t, name, file)

	if !s.Sealed {
		t.Fatal("segment is not sealed")
	}
	if diff := cmp.Diff(tr, s.Trailer); diff != "" {
		t.Errorf("Trailer read back (-appended +opened):\n%s", diff)
	}
	envs := img.envelopes(len(batches))
	wantTr := Trailer{RecordsEnd: x.End, SummaryOff: tr.SummaryOff, SummaryLen: tr.SummaryLen, Count: uint32(len(envs)),
		LastSeq: envs[len(envs)-1].Seq, FirstTime: envs[0].Time.UnixNano(), LastTime: envs[len(envs)-1].Time.UnixNano()}
	for _, e := range envs {
		if e.Version == 1 {
			wantTr.NewStreams++
		}
	}
	if diff := cmp.Diff(wantTr, tr); diff != "" {
		t.Errorf("Trailer (-want +got):\n%s", diff)
	}
	if tr.SummaryOff+int64(tr.SummaryLen)+TrailerSize != int64(len(file)) {
		t.Errorf("summary at %d+%d, file is %d bytes", tr.SummaryOff, tr.SummaryLen, len(file))
	}

	sum, err := s.Summary()
	if err != nil {
		t.Fatal(err)
	}
	if sum.NumStreams != x.Streams() {
		t.Errorf("NumStreams = %d, want %d", sum.NumStreams, x.Streams())
	}
	if len(sum.Sparse) != (len(envs)+SparseInterval-1)/SparseInterval {
		t.Errorf("%d sparse entries for %d events", len(sum.Sparse), len(envs))
	}
	for i, sp := range sum.Sparse {
		f := img.frames[img.frameIndexOfSeq(sp.Seq)]
		e := envs[i*SparseInterval]
		if sp.Seq != e.Seq || sp.Off != f.off || sp.Time != e.Time.UnixNano() {
			t.Errorf("sparse entry %d = %+v, want seq %d at %d, time %d", i, sp, e.Seq, f.off, e.Time.UnixNano())
		}
	}
	if diff := cmp.Diff(sparseOf(x), sum.Sparse); diff != "" {
		t.Errorf("Summary sparse index (-index +summary):\n%s", diff)
	}

	names := slices.Sorted(maps.Keys(x.streams))
	got := readStreams(t, s, names)
	if diff := cmp.Diff(x.streams, got); diff != "" {
		t.Errorf("streams read back (-added +read):\n%s", diff)
	}
	// The postings locate exactly the stream's events, in version order.
	var er EventReader
	var dec Decoder
	for _, name := range names[:200] {
		sp := got[name]
		v := sp.FirstVersion
		err := er.Read(s.File(), s.Name, sp.Posts, func(off int64, p []byte) error {
			var e event.Envelope
			if err := dec.Decode(p, &e); err != nil {
				return err
			}
			if e.Stream != name || e.Version != v {
				return fmt.Errorf("event at %d is %q v%d, want %q v%d", off, e.Stream, e.Version, name, v)
			}
			v++
			return nil
		})
		if err != nil {
			t.Fatalf("reading stream %q: %v", name, err)
		}
	}

	// Absent streams: the bloom filter answers almost all from memory.
	fsys.Reset()
	const absent = 20000
	mayContain := 0
	for i := range absent {
		name := fmt.Sprintf("absent-%d", i)
		if sum.MayContain(name) {
			mayContain++
		}
		if e, ok, err := s.Lookup(name); ok || err != nil {
			t.Fatalf("Lookup(%q) = %+v, %v, %v; want not found", name, e, ok, err)
		}
	}
	reads := fsys.File(name).Reads
	t.Logf("%d absent lookups: bloom false positives %d, block reads %d", absent, mayContain, reads)
	if mayContain > absent*3/100 {
		t.Errorf("bloom filter passes %d of %d absent streams (> 3%%)", mayContain, absent)
	}
	if reads > int64(2*mayContain) || reads > absent*3/100 {
		t.Errorf("%d absent lookups read %d times (bloom passes %d)", absent, reads, mayContain)
	}
	// Every present stream passes the bloom filter (no false negatives).
	for _, name := range names {
		if !sum.MayContain(name) {
			t.Fatalf("bloom filter rejects present stream %q", name)
		}
	}
	// A present stream costs one block read and one postings read.
	fsys.Reset()
	e, ok, err := s.Lookup(names[17])
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, err := s.Postings(e, nil); err != nil {
		t.Fatal(err)
	}
	if c := fsys.File(name); c.Reads > 3 {
		t.Errorf("Lookup+Postings of one stream: %d reads", c.Reads)
	}

	// The records scan strictly to the same index.
	sx, tail, err := split(Scan(s.File(), s.Header, tr.RecordsEnd, ScanOptions{File: name, Strict: true}))
	if err != nil || tail != nil {
		t.Fatalf("Scan of the records: %v, tail %+v", err, tail)
	}
	if diff := indexDiff(x, sx); diff != "" {
		t.Errorf("scanned index (-built +scanned):\n%s", diff)
	}

	// SeekSeq lands on the sparse entry at or before any seq.
	frameOf := map[uint64]int64{}
	for _, f := range img.frames {
		if f.kind == KindEvent {
			frameOf[img.batches[f.batch].events[f.event].Seq] = f.off
		}
	}
	for i, e := range envs {
		off := SeekSeq(sum.Sparse, e.Seq)
		if off > frameOf[e.Seq] {
			t.Fatalf("SeekSeq(%d) = %d, after the event's frame at %d", e.Seq, off, frameOf[e.Seq])
		}
		if want := frameOf[envs[i/SparseInterval*SparseInterval].Seq]; off != want {
			t.Fatalf("SeekSeq(%d) = %d, want %d", e.Seq, off, want)
		}
	}
}

// frameIndexOfSeq returns the index of the event frame with seq.
func (img *segImage) frameIndexOfSeq(seq uint64) int {
	for i, f := range img.frames {
		if f.kind == KindEvent && img.batches[f.batch].events[f.event].Seq == seq {
			return i
		}
	}
	panic(fmt.Sprintf("no event with seq %d", seq))
}

// randIndex builds a random index: streams with random names (some long),
// postings at increasing offsets, non-decreasing times.
func randIndex(rng *rand.Rand, baseSeq uint64) *Index {
	x := NewIndex(baseSeq)
	nstreams := rng.IntN(300)
	if rng.IntN(10) == 0 {
		nstreams = 0
	}
	names := make([]string, nstreams)
	first := make(map[string]uint64)
	vers := make(map[string]uint64)
	for i := range names {
		n := 1 + rng.IntN(40)
		if rng.IntN(20) == 0 {
			n = 1 + rng.IntN(event.MaxStreamLen)
		}
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		names[i] = string(b)
		first[names[i]] = 1 + rng.Uint64N(5)
		if rng.IntN(5) == 0 {
			first[names[i]] = 1 + rng.Uint64()>>1
		}
	}
	off, tm := int64(HeaderSize), rng.Int64()>>(1+rng.IntN(63))
	if rng.IntN(3) == 0 {
		tm = -tm
	}
	events := 0
	if nstreams > 0 {
		events = rng.IntN(3000)
	}
	for i := range events {
		name := names[rng.IntN(nstreams)]
		v := first[name] + vers[name]
		vers[name]++
		n := uint32(FrameHeaderSize + 1 + rng.IntN(300))
		x.Add(EventInfo{Seq: baseSeq + uint64(i), Stream: name, Version: v, Time: tm, Off: off, Len: n})
		off += int64(n)
		if rng.IntN(4) == 0 {
			off += CommitFrameSize
		}
		tm += int64(rng.IntN(1000))
	}
	x.End = off + CommitFrameSize
	return x
}

// Property: the footer of any index decodes to that index.
func TestFooterRoundTripProperty(t *testing.T) {
	rng := newRand(t)
	for iter := range 60 {
		base := 1 + rng.Uint64N(1<<40)
		x := randIndex(rng, base)
		h := testHeader(base)
		h.Generation = uint64(iter)
		file, tr := seal(x, h, nil)
		s, _ := openMem(t, FormatFileName(base, h.Generation), file)
		if !s.Sealed {
			t.Fatalf("iteration %d: not sealed", iter)
		}
		want := Trailer{RecordsEnd: x.End, SummaryOff: tr.SummaryOff, SummaryLen: tr.SummaryLen, Count: uint32(x.Count),
			LastSeq: x.LastSeq, FirstTime: x.FirstTime, LastTime: x.LastTime, NewStreams: uint32(x.NewStreams)}
		if diff := cmp.Diff(want, s.Trailer); diff != "" {
			t.Fatalf("iteration %d: trailer (-want +got):\n%s", iter, diff)
		}
		sum, err := s.Summary()
		if err != nil {
			t.Fatalf("iteration %d: Summary: %v", iter, err)
		}
		if diff := cmp.Diff(sparseOf(x), sum.Sparse, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("iteration %d: sparse (-want +got):\n%s", iter, diff)
		}
		got := readStreams(t, s, slices.Collect(maps.Keys(x.streams)))
		if diff := cmp.Diff(x.streams, got); diff != "" {
			t.Fatalf("iteration %d: streams (-want +got):\n%s", iter, diff)
		}
		for range 20 {
			name := fmt.Sprintf("absent/%d", rng.Uint64())
			if _, ok, err := s.Lookup(name); ok || err != nil {
				t.Fatalf("iteration %d: Lookup(%q) = %v, %v", iter, name, ok, err)
			}
		}
	}
}

func TestFooterEmptySegment(t *testing.T) {
	x := NewIndex(42)
	file, tr := seal(x, testHeader(42), nil)
	if tr.Count != 0 || tr.LastSeq != 41 || tr.RecordsEnd != HeaderSize {
		t.Errorf("empty segment trailer %+v", tr)
	}
	s, _ := openMem(t, FormatFileName(42, 0), file)
	if !s.Sealed {
		t.Fatal("empty sealed segment is not sealed")
	}
	sum, err := s.Summary()
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Sparse) != 0 || sum.NumStreams != 0 {
		t.Errorf("empty summary %+v", sum)
	}
	if _, ok, err := s.Lookup("x"); ok || err != nil {
		t.Errorf("Lookup in an empty segment: %v, %v", ok, err)
	}
	if _, tail, err := split(Scan(s.File(), s.Header, tr.RecordsEnd, ScanOptions{Strict: true})); err != nil || tail != nil {
		t.Errorf("Scan of an empty segment: %v %+v", err, tail)
	}
}

func TestIndexAccessors(t *testing.T) {
	x := NewIndex(10)
	if x.FirstSeq() != 10 || x.LastSeq != 9 || x.End != HeaderSize || x.Streams() != 0 || lastVer(x, "a") != 0 {
		t.Fatalf("NewIndex(10) = %+v", x)
	}
	if _, ok := streamOf(x, "a"); ok {
		t.Error("Stream of an empty index found something")
	}
	for i := range 600 {
		x.Add(EventInfo{Seq: 10 + uint64(i), Stream: []string{"a", "b"}[i%2], Version: 5 + uint64(i/2), Time: int64(i), Off: HeaderSize + int64(i)*20, Len: 20})
	}
	if x.Count != 600 || x.LastSeq != 609 || x.FirstTime != 0 || x.LastTime != 599 || x.NewStreams != 0 {
		t.Errorf("totals %+v", x)
	}
	if lastVer(x, "a") != 5+299 || lastVer(x, "b") != 5+299 || x.Streams() != 2 {
		t.Errorf("LastVersion a=%d b=%d, streams %d", lastVer(x, "a"), lastVer(x, "b"), x.Streams())
	}
	want := []SparseEntry{{10, HeaderSize, 0}, {266, HeaderSize + 256*20, 256}, {522, HeaderSize + 512*20, 512}}
	if diff := cmp.Diff(want, sparseOf(x)); diff != "" {
		t.Errorf("sparse (-want +got):\n%s", diff)
	}
	// Slices handed out are not modified by later Adds.
	sp, _ := streamOf(x, "a")
	before := slices.Clone(sp.Posts)
	sparse := slices.Clone(sparseOf(x))
	held := sparseOf(x)
	for i := range 300 {
		x.Add(EventInfo{Seq: 610 + uint64(i), Stream: "a", Version: 305 + uint64(i), Time: 600, Off: 20000 + int64(i)*20, Len: 20})
	}
	if !slices.Equal(before, sp.Posts) || !slices.Equal(sparse, held) {
		t.Error("a slice returned before Add changed")
	}
	x.Add(EventInfo{Seq: 910, Stream: "new", Version: 1, Time: 700, Off: 30000, Len: 20})
	if x.NewStreams != 1 {
		t.Errorf("NewStreams = %d after a version-1 event", x.NewStreams)
	}
}

func TestSeekSeqAndTime(t *testing.T) {
	sparse := []SparseEntry{{10, 100, 1000}, {266, 5000, 2000}, {522, 9000, 2000}, {778, 12000, 3000}}
	for _, tt := range []struct {
		seq  uint64
		want int64
	}{
		{0, HeaderSize}, {1, HeaderSize}, {9, HeaderSize}, // before the first entry
		{10, 100}, {11, 100}, {265, 100}, // exact, between
		{266, 5000}, {521, 5000}, {522, 9000}, {777, 9000},
		{778, 12000}, {779, 12000}, {math.MaxUint64, 12000}, // after the last
	} {
		if got := SeekSeq(sparse, tt.seq); got != tt.want {
			t.Errorf("SeekSeq(%d) = %d, want %d", tt.seq, got, tt.want)
		}
	}
	if got := SeekSeq(nil, 5); got != HeaderSize {
		t.Errorf("SeekSeq(nil, 5) = %d", got)
	}
	for _, tt := range []struct {
		t    int64
		want int64
		ok   bool
	}{
		{math.MinInt64, 0, false}, {999, 0, false}, // before the first entry
		{1000, 100, true}, {1999, 100, true}, // exact, between
		{2000, 9000, true}, {2500, 9000, true}, // equal times: the last entry at or before
		{3000, 12000, true}, {math.MaxInt64, 12000, true}, // after the last
	} {
		got, ok := SeekTime(sparse, tt.t)
		if got != tt.want || ok != tt.ok {
			t.Errorf("SeekTime(%d) = %d, %v, want %d, %v", tt.t, got, ok, tt.want, tt.ok)
		}
	}
	if _, ok := SeekTime(nil, 0); ok {
		t.Error("SeekTime(nil) ok")
	}
}

// blockCandidates must return every block that can hold a hash, including
// when a run of equal hashes spans several blocks.
func TestBlockCandidates(t *testing.T) {
	s := &Summary{blocks: []summaryBlock{{hash: 10}, {hash: 20, off: 1}, {hash: 20, off: 2}, {hash: 20, off: 3}, {hash: 30, off: 4}}}
	for _, tt := range []struct {
		h      uint64
		lo, hi int
	}{
		{5, 0, 0}, {10, 0, 1}, {15, 0, 1}, {20, 0, 4}, {25, 3, 4}, {30, 3, 5}, {math.MaxUint64, 4, 5},
	} {
		got := s.blockCandidates(tt.h)
		if diff := cmp.Diff(s.blocks[tt.lo:tt.hi], got, cmp.AllowUnexported(summaryBlock{}), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("blockCandidates(%d) (-want +got):\n%s", tt.h, diff)
		}
	}
	if got := (&Summary{}).blockCandidates(7); len(got) != 0 {
		t.Errorf("no blocks: %v", got)
	}
}

// appendEntry appends a stream block entry.
func appendEntry(p []byte, h uint64, e StreamEntry, name string) []byte {
	var b [entFixedSize]byte
	le.PutUint64(b[entHashOff:], h)
	le.PutUint64(b[entFirstVerOff:], e.FirstVersion)
	le.PutUint32(b[entCountOff:], e.Count)
	le.PutUint64(b[entPostOffOff:], uint64(e.PostOff))
	le.PutUint32(b[entPostLenOff:], e.PostLen)
	le.PutUint16(b[entNameLenOff:], uint16(len(name)))
	return append(append(p, b[:]...), name...)
}

// findEntry tells streams with colliding hashes apart by name.
func TestFindEntryCollisions(t *testing.T) {
	const recEnd, footEnd = 1000, 5000
	ea := StreamEntry{FirstVersion: 1, Count: 2, PostOff: 1000, PostLen: 20}
	eb := StreamEntry{FirstVersion: 7, Count: 1, PostOff: 1020, PostLen: 15}
	ec := StreamEntry{FirstVersion: 3, Count: 4, PostOff: 1035, PostLen: 30}
	var p []byte
	p = appendEntry(p, 5, ea, "alpha")
	p = appendEntry(p, 5, eb, "beta")
	p = appendEntry(p, 9, ec, "gamma")
	for _, tt := range []struct {
		h    uint64
		name string
		want StreamEntry
		ok   bool
	}{
		{5, "alpha", ea, true}, {5, "beta", eb, true}, {9, "gamma", ec, true},
		{5, "delta", StreamEntry{}, false}, {9, "alpha", StreamEntry{}, false}, {1, "x", StreamEntry{}, false}, {10, "x", StreamEntry{}, false},
	} {
		got, ok, err := findEntry(p, tt.h, tt.name, recEnd, footEnd)
		if err != nil || ok != tt.ok || got != tt.want {
			t.Errorf("findEntry(%d, %q) = %+v, %v, %v; want %+v, %v", tt.h, tt.name, got, ok, err, tt.want, tt.ok)
		}
	}
}

func TestFindEntryRejectsMalformed(t *testing.T) {
	const recEnd, footEnd = 1000, 5000
	good := StreamEntry{FirstVersion: 1, Count: 2, PostOff: 1000, PostLen: 20}
	with := func(f func(*StreamEntry)) StreamEntry { e := good; f(&e); return e }
	tests := map[string][]byte{
		"first version 0":       appendEntry(nil, 5, with(func(e *StreamEntry) { e.FirstVersion = 0 }), "a"),
		"count 0":               appendEntry(nil, 5, with(func(e *StreamEntry) { e.Count = 0 }), "a"),
		"empty name":            appendEntry(nil, 5, good, ""),
		"postings in records":   appendEntry(nil, 5, with(func(e *StreamEntry) { e.PostOff = recEnd - 1 }), "a"),
		"postings past footer":  appendEntry(nil, 5, with(func(e *StreamEntry) { e.PostOff, e.PostLen = footEnd-10, 11 }), "a"),
		"hashes out of order":   appendEntry(appendEntry(nil, 9, good, "b"), 5, good, "a"),
		"truncated fixed part":  appendEntry(nil, 1, good, "a")[:entFixedSize-1],
		"truncated name":        appendEntry(nil, 1, good, "abc")[:entFixedSize+2],
		"garbage after entries": append(appendEntry(nil, 1, good, "a"), 1, 2, 3),
	}
	for name, p := range tests {
		// Search for a hash above every entry's, so that all are checked.
		if e, ok, err := findEntry(p, 100, "zzz", recEnd, footEnd); err == nil {
			t.Errorf("%s: findEntry = %+v, %v, nil; want an error", name, e, ok)
		}
	}
}

// BUG: the range check PostOff+PostLen > footerEnd overflows for a PostOff
// near MaxInt64, so an entry pointing far outside the file is accepted, and
// Segment.Postings then allocates PostLen bytes (up to 64 MiB) to read it.
func TestFindEntryRejectsOverflowingPostingsRange(t *testing.T) {
	const recEnd, footEnd = 1000, 5000
	e := StreamEntry{FirstVersion: 1, Count: 1, PostOff: math.MaxInt64 - 4, PostLen: 100}
	p := appendEntry(nil, 5, e, "a")
	if got, ok, err := findEntry(p, 5, "a", recEnd, footEnd); err == nil {
		t.Errorf("findEntry accepts an entry whose postings lie at %d+%d, past the footer end %d: %+v, ok %v", e.PostOff, e.PostLen, footEnd, got, ok)
	}
}

// summaryPayload encodes a summary frame payload by hand.
type summaryFields struct {
	sparse  []SparseEntry
	blocks  []summaryBlock
	streams uint32
	bloom   []byte
}

func (s summaryFields) encode() []byte {
	p := le.AppendUint32(nil, uint32(len(s.sparse)))
	for _, e := range s.sparse {
		p = le.AppendUint64(p, e.Seq)
		p = le.AppendUint64(p, uint64(e.Off))
		p = le.AppendUint64(p, uint64(e.Time))
	}
	p = le.AppendUint32(p, uint32(len(s.blocks)))
	for _, b := range s.blocks {
		p = le.AppendUint64(p, b.hash)
		p = le.AppendUint64(p, uint64(b.off))
		p = le.AppendUint32(p, b.len)
	}
	p = le.AppendUint32(p, s.streams)
	p = le.AppendUint32(p, uint32(len(s.bloom)*8))
	return append(p, s.bloom...)
}

func TestDecodeSummaryRejects(t *testing.T) {
	const recEnd, footEnd, count = 1000, 5000, 300
	good := func() summaryFields {
		return summaryFields{
			sparse:  []SparseEntry{{1, 64, 10}, {257, 600, 20}},
			blocks:  []summaryBlock{{hash: 3, off: 2000, len: 100}, {hash: 8, off: 2100, len: 100}},
			streams: blockStride + 1, // two blocks
			bloom:   make([]byte, 16),
		}
	}
	if _, err := DecodeSummary(good().encode(), recEnd, footEnd, count); err != nil {
		t.Fatalf("valid summary: %v", err)
	}
	tests := map[string]func(*summaryFields){
		"sparse count short":        func(s *summaryFields) { s.sparse = s.sparse[:1] },
		"sparse seq not increasing": func(s *summaryFields) { s.sparse[1].Seq = 1 },
		"sparse offset decreasing":  func(s *summaryFields) { s.sparse[1].Off = 63 },
		"sparse offset in header":   func(s *summaryFields) { s.sparse[0].Off = HeaderSize - 1 },
		"sparse offset in footer":   func(s *summaryFields) { s.sparse[1].Off = recEnd },
		"sparse time decreasing":    func(s *summaryFields) { s.sparse[1].Time = 9 },
		"block in records":          func(s *summaryFields) { s.blocks[0].off = recEnd - 1 },
		"block past footer":         func(s *summaryFields) { s.blocks[1].off, s.blocks[1].len = footEnd-50, 51 },
		"block shorter than frame":  func(s *summaryFields) { s.blocks[1].len = FrameHeaderSize - 1 },
		"block hashes decreasing":   func(s *summaryFields) { s.blocks[1].hash = 2 },
		"too few blocks":            func(s *summaryFields) { s.streams = 129 },
		"too many blocks":           func(s *summaryFields) { s.streams = 64 },
		"more streams than events": func(s *summaryFields) {
			s.streams, s.blocks = count+1, nil
			for i := range (count + blockStride) / blockStride {
				s.blocks = append(s.blocks, summaryBlock{hash: uint64(i), off: 2000 + 100*int64(i), len: 100})
			}
		},
		"no bloom": func(s *summaryFields) { s.bloom = nil },
	}
	for name, mut := range tests {
		s := good()
		mut(&s)
		p := s.encode()
		if name == "no bloom" {
			// The bloom length field claims bits the payload lacks.
			le.PutUint32(p[len(p)-4:], 128)
		}
		if _, err := DecodeSummary(p, recEnd, footEnd, count); err == nil {
			t.Errorf("%s: DecodeSummary accepted it", name)
		}
	}
	p := good().encode()
	for n := range len(p) {
		if _, err := DecodeSummary(p[:n], recEnd, footEnd, count); err == nil {
			t.Errorf("DecodeSummary accepts the first %d of %d bytes", n, len(p))
		}
	}
	if _, err := DecodeSummary(append(bytes.Clone(p), 0), recEnd, footEnd, count); err == nil {
		t.Error("DecodeSummary accepts a trailing byte")
	}
	// Bloom bits that are not a whole number of bytes.
	q := bytes.Clone(p)
	le.PutUint32(q[len(q)-16-4:], 127)
	if _, err := DecodeSummary(q, recEnd, footEnd, count); err == nil {
		t.Error("DecodeSummary accepts a 127-bit bloom filter")
	}
	// Huge counts are rejected without allocating for them.
	for _, off := range []int{0, 4 + 2*sparseSize} {
		q := bytes.Clone(p)
		le.PutUint32(q[off:], math.MaxUint32)
		var err error
		alloc := allocBytes(func() { _, err = DecodeSummary(q, recEnd, footEnd, count) })
		if err == nil || alloc > 4096 {
			t.Errorf("count 2^32-1 at %d: %v, %d bytes allocated", off, err, alloc)
		}
	}
}

// BUG: the range check b.off+b.len > footerEnd overflows for an offset near
// MaxInt64, so a block directory entry pointing outside the file is
// accepted; Lookup then allocates its length (up to 64 MiB) to read it.
func TestDecodeSummaryRejectsOverflowingBlockRange(t *testing.T) {
	const recEnd, footEnd, count = 1000, 5000, 300
	s := summaryFields{
		sparse:  []SparseEntry{{1, 64, 10}, {257, 600, 20}},
		blocks:  []summaryBlock{{hash: 3, off: math.MaxInt64 - 4, len: 100}},
		streams: 10,
		bloom:   make([]byte, 16),
	}
	if sum, err := DecodeSummary(s.encode(), recEnd, footEnd, count); err == nil {
		t.Errorf("DecodeSummary accepts a block at %d+%d, past the footer end %d: %+v", s.blocks[0].off, s.blocks[0].len, footEnd, sum.blocks)
	}
}

func TestDecodePostings(t *testing.T) {
	const recEnd = 10000
	enc := func(count uint64, pairs ...uint64) []byte {
		p := binary.AppendUvarint(nil, count)
		for _, v := range pairs {
			p = binary.AppendUvarint(p, v)
		}
		return p
	}
	got, err := decodePostings(enc(3, 64, 20, 20, 30, 100, 9), 3, recEnd, nil)
	want := []Posting{{64, 20}, {84, 30}, {184, 9}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("decodePostings = %v, %v; want %v", got, err, want)
	}
	// dst is reused.
	dst := make([]Posting, 0, 10)
	got, _ = decodePostings(enc(1, 64, 20), 1, recEnd, dst)
	if &got[0] != &dst[:1][0] {
		t.Error("decodePostings did not reuse dst")
	}
	bad := map[string]struct {
		p     []byte
		count uint32
	}{
		"count mismatch":        {enc(2, 64, 20, 20, 30), 3},
		"empty":                 {nil, 1},
		"zero delta":            {enc(2, 64, 20, 0, 30), 2},
		"offset in header":      {enc(1, 63, 20), 1},
		"length below header":   {enc(1, 64, 8), 1},
		"length over the limit": {enc(1, 64, FrameHeaderSize+MaxFramePayload+1), 1},
		"past records end":      {enc(1, recEnd-10, 11), 1},
		"huge delta":            {enc(2, 64, 20, math.MaxUint64, 20), 2},
		"trailing bytes":        {append(enc(1, 64, 20), 0), 1},
		"truncated varint":      {append(enc(1, 64), 0x80), 1},
		"missing length":        {enc(1, 64), 1},
		"overlong varint":       {append(enc(1), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 20), 1},
		"count 2^32-1":          {enc(math.MaxUint32, 64, 20), math.MaxUint32},
	}
	for name, tt := range bad {
		var err error
		alloc := allocBytes(func() { _, err = decodePostings(tt.p, tt.count, recEnd, nil) })
		if err == nil {
			t.Errorf("%s: decodePostings accepted it", name)
		}
		if alloc > 4096 {
			t.Errorf("%s: decodePostings allocated %d bytes", name, alloc)
		}
	}
}

func TestBloomFalsePositiveRate(t *testing.T) {
	for _, keys := range []int{0, 1, 10, 1000, 10000} {
		b := newBloom(keys)
		for i := range keys {
			b.add(streamHash(fmt.Sprintf("present-%d", i)))
		}
		for i := range keys {
			if !b.mayContain(streamHash(fmt.Sprintf("present-%d", i))) {
				t.Fatalf("%d keys: false negative for key %d", keys, i)
			}
		}
		fp := 0
		const probes = 20000
		for i := range probes {
			if b.mayContain(streamHash(fmt.Sprintf("absent-%d", i))) {
				fp++
			}
		}
		t.Logf("%d keys: %.2f%% false positives", keys, 100*float64(fp)/probes)
		if limit := map[bool]int{true: 2, false: 5}[keys >= 1000]; keys >= 10 && fp > probes*limit/100 {
			t.Errorf("%d keys: %d false positives in %d (%.2f%%)", keys, fp, probes, 100*float64(fp)/probes)
		}
	}
	if (bloom{}).mayContain(1) {
		t.Error("an empty bloom filter claims a key")
	}
}

// streamHash is FNV-1a 64, part of the format.
func TestStreamHash(t *testing.T) {
	for s, want := range map[string]uint64{"": 0xcbf29ce484222325, "a": 0xaf63dc4c8601ec8c, "foobar": 0x85944171f73967e8} {
		if got := streamHash(s); got != want {
			t.Errorf("streamHash(%q) = %#x, want %#x", s, got, want)
		}
	}
	if streamHash(strings.Repeat("x", 1000)) == streamHash(strings.Repeat("x", 1001)) {
		t.Error("trivial collision")
	}
}
