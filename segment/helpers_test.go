package segment

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/event"
)

var (
	update   = flag.Bool("update", false, "rewrite the golden files under testdata/v1 and the fuzz seed corpora under testdata/fuzz")
	seedFlag = flag.Uint64("seed", 0, "seed for the randomized tests (0: derive one from the clock and log it)")
)

// newRand returns a random source for a test and logs its seed, so a
// failure can be replayed with -seed.
func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("random seed %d (replay with -seed=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// t0 is the recorded time of the first event of generated segments.
var t0 = time.Date(2024, 5, 17, 10, 30, 0, 0, time.UTC).UnixNano()

// testLogID is the log ID of generated segments.
var testLogID = LogID{0xe7, 0x10, 0x6a, 0x5e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

// testHeader returns the header of a generated version 1 segment starting
// at baseSeq: the scan tests built on it check the version 1 rule (commit
// frames record the durable end). testHeaderV2 is the version 2 header
// (mark frames record it; see the V2 tests).
func testHeader(baseSeq uint64) Header {
	return Header{
		Version: 1,
		LogID:   testLogID,
		BaseSeq: baseSeq,
		Created: time.Date(2024, 5, 17, 10, 29, 59, 123456789, time.UTC),
	}
}

// testMarkKey is the mark key of generated version 2 segments.
var testMarkKey = [8]byte{0x6d, 0x61, 0x72, 0x6b, 0x2d, 0x6b, 0x65, 0x79}

func testHeaderV2(baseSeq uint64) Header {
	return Header{
		Version: 2,
		LogID:   testLogID,
		BaseSeq: baseSeq,
		Created: time.Date(2024, 5, 17, 10, 29, 59, 0, time.UTC),
		MarkKey: testMarkKey,
	}
}

// batch is one batch of events written with one commit frame. sync says
// whether the writer fsynced the file after it, which moves the durable end
// recorded by the following commits.
type batch struct {
	events []event.Envelope
	sync   bool
}

// frameInfo describes one frame of a segment image.
type frameInfo struct {
	off, end int64
	kind     Kind
	batch    int    // index of the batch the frame belongs to
	event    int    // index in the batch for event frames, -1 for commits
	commit   Commit // for commit frames
}

// segImage is a segment built with the package's own encoders, with a
// description of every frame, used as the oracle of the scan tests.
type segImage struct {
	h       Header
	hb      [HeaderSize]byte
	data    []byte // header and records (no footer)
	frames  []frameInfo
	start   []int64 // start of each batch
	end     []int64 // end of each batch (just past its commit frame, or its mark)
	cend    []int64 // just past each batch's commit frame
	batches []batch
}

// buildImage encodes a segment: header, then for each batch its event frames
// and a commit frame whose DurableEnd is the end of the data the writer had
// fsynced before (the header, made durable by Create, initially); in
// version 2, a fsynced batch is followed by the mark recording the fsync.
func buildImage(h Header, batches []batch) *segImage {
	img := &segImage{h: h, hb: h.Encode(), batches: batches}
	img.data = append([]byte(nil), img.hb[:]...)
	durable := int64(HeaderSize)
	for bi, b := range batches {
		img.start = append(img.start, int64(len(img.data)))
		for ei := range b.events {
			off := int64(len(img.data))
			img.data = AppendEventFrame(img.data, &b.events[ei])
			img.frames = append(img.frames, frameInfo{off: off, end: int64(len(img.data)), kind: KindEvent, batch: bi, event: ei})
		}
		off := int64(len(img.data))
		c := Commit{FirstSeq: b.events[0].Seq, Count: uint32(len(b.events)), DurableEnd: durable}
		img.data = AppendCommitFrame(img.data, c)
		img.frames = append(img.frames, frameInfo{off: off, end: int64(len(img.data)), kind: KindCommit, batch: bi, event: -1, commit: c})
		img.cend = append(img.cend, int64(len(img.data)))
		if b.sync {
			durable = int64(len(img.data))
			if h.Version >= 2 {
				img.data = AppendMarkFrame(img.data, h, durable, false)
				img.frames = append(img.frames, frameInfo{off: durable, end: int64(len(img.data)), kind: KindMark, batch: bi, event: -1})
			}
		}
		img.end = append(img.end, int64(len(img.data)))
	}
	return img
}

// index returns the index of the first n batches of img.
func (img *segImage) index(n int) *Index {
	x := NewIndex(img.h.BaseSeq)
	for _, f := range img.frames {
		if f.batch >= n {
			break
		}
		if f.kind == KindCommit {
			x.End = f.end
			continue
		}
		if f.kind == KindMark {
			x.End, x.Durable, x.Marked = f.end, f.off, true
			continue
		}
		e := &img.batches[f.batch].events[f.event]
		x.Add(EventInfo{Seq: e.Seq, Stream: e.Stream, Version: e.Version, Time: e.Time.UnixNano(), Off: f.off, Len: uint32(f.end - f.off), ID: e.ID})
	}
	return x
}

// envelopes returns the events of the first n batches.
func (img *segImage) envelopes(n int) []event.Envelope {
	var out []event.Envelope
	for _, b := range img.batches[:n] {
		out = append(out, b.events...)
	}
	return out
}

// frameAt returns the index of the frame holding byte off.
func (img *segImage) frameAt(off int64) int {
	for i, f := range img.frames {
		if off >= f.off && off < f.end {
			return i
		}
	}
	panic(fmt.Sprintf("no frame holds offset %d", off))
}

// genOptions shapes generated events.
type genOptions struct {
	batches   int
	maxBatch  int // events per batch: 1..maxBatch
	streams   int
	maxData   int
	syncEvery int // a batch is fsynced with probability 1/syncEvery (1: always)
}

// genBatches generates batches of valid events with contiguous seqs from
// baseSeq, contiguous per-stream versions and non-decreasing times.
func genBatches(rng *rand.Rand, baseSeq uint64, o genOptions) []batch {
	seq, tm := baseSeq, t0
	vers := map[string]uint64{}
	var out []batch
	for range o.batches {
		var b batch
		for range 1 + rng.IntN(o.maxBatch) {
			stream := fmt.Sprintf("order-%d", rng.IntN(o.streams))
			vers[stream]++
			e := event.Envelope{
				Seq:           seq,
				Stream:        stream,
				Version:       vers[stream],
				Type:          []string{"created", "item_added", "item_removed", "shipped"}[rng.IntN(4)],
				SchemaVersion: uint32(1 + rng.IntN(3)),
				Time:          time.Unix(0, tm).UTC(),
			}
			if rng.IntN(3) == 0 {
				e.ID = fmt.Sprintf("req-%08x", rng.Uint32())
			}
			if rng.IntN(4) == 0 {
				e.Meta = map[string]string{"correlation": fmt.Sprintf("c-%d", rng.IntN(100)), "user": "u1"}
			}
			if n := rng.IntN(o.maxData + 1); n > 0 {
				e.Data = make([]byte, n)
				for i := range e.Data {
					e.Data[i] = byte(rng.Uint32())
				}
			}
			b.events = append(b.events, e)
			seq++
			tm += int64(rng.IntN(3)) * int64(time.Millisecond) // sometimes equal times
		}
		b.sync = o.syncEvery <= 1 || rng.IntN(o.syncEvery) == 0
		out = append(out, b)
	}
	return out
}

// scanBytes scans data (a whole segment file) as Scan's callers do.
// split returns a Scan's index and tail, for tests written against them.
// It passes Infos over: set CollectInfos and read ScanResult for them.
func split(r ScanResult, err error) (*Index, *Tail, error) {
	return r.Index, r.Tail, err
}

func scanBytes(data []byte, h Header, opt ScanOptions) (*Index, *Tail, error) {
	return split(Scan(bytes.NewReader(data), h, int64(len(data)), opt))
}

// indexOpts compares Indexes, including their unexported postings and
// sparse index and IDs (an idList by its entries, not its chunks).
var indexOpts = cmp.Options{cmp.AllowUnexported(Index{}), cmp.Comparer(func(a, b idList) bool { return slices.Equal(a.all(), b.all()) })}

// indexDiff is cmp.Diff(want, got, indexOpts), "" when they are equal,
// with sameIndex as the fast check: cmp was 90% of the CPU of the
// every-truncation scans under -race, where nearly every index is equal.
func indexDiff(want, got *Index) string {
	if sameIndex(want, got) {
		return ""
	}
	return cmp.Diff(want, got, indexOpts)
}

// indexFields is the number of fields of Index that sameIndex compares.
const indexFields = 19

// sameIndex reports whether a and b are equal as cmp.Equal(a, b, indexOpts)
// sees them (nil and empty slices and maps differ). It may report false
// for indexes cmp finds equal (those with a checkpoint under them), never
// true for indexes it finds different: callers ask cmp when it is false.
func sameIndex(a, b *Index) bool {
	if n := reflect.TypeFor[Index]().NumField(); n != indexFields {
		panic(fmt.Sprintf("sameIndex compares %d fields of Index, which has %d: compare the new ones", indexFields, n))
	}
	if a == nil || b == nil {
		return a == b
	}
	return a.BaseSeq == b.BaseSeq && a.Count == b.Count && a.LastSeq == b.LastSeq &&
		a.FirstTime == b.FirstTime && a.LastTime == b.LastTime && a.NewStreams == b.NewStreams &&
		a.End == b.End && a.Durable == b.Durable && a.Marked == b.Marked && a.Strict == b.Strict &&
		(a.streams == nil) == (b.streams == nil) && equalStreams(a.streams, b.streams) &&
		(a.sparse == nil) == (b.sparse == nil) && slices.Equal(a.sparse, b.sparse) &&
		a.ids.n == b.ids.n && slices.Equal(a.ids.all(), b.ids.all()) && a.idsLost == b.idsLost &&
		a.base == nil && b.base == nil &&
		(a.slab == nil) == (b.slab == nil) && slices.Equal(a.slab, b.slab) &&
		(a.hint == nil) == (b.hint == nil) && maps.Equal(a.hint, b.hint) &&
		a.maxPosts == b.maxPosts && a.maxName == b.maxName
}

// wantCorrupt checks that err is a *CorruptError for file at offset off.
func wantCorrupt(t testing.TB, err error, file string, off int64) *CorruptError {
	t.Helper()
	ce, ok := errors.AsType[*CorruptError](err)
	if !ok {
		t.Fatalf("error = %v, want a *CorruptError", err)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("errors.Is(%v, ErrCorrupt) = false", err)
	}
	if ce.File != file || ce.Offset != off {
		t.Errorf("CorruptError at %s:%d (%s), want %s:%d", ce.File, ce.Offset, ce.Reason, file, off)
	}
	return ce
}

// allocBytes returns the bytes allocated on the heap while f (which must
// be repeatable) runs: the least of three runs. The process's counter also
// counts what other goroutines (parallel tests, the runtime) allocate
// meanwhile, which only adds, so the least is f's own allocation or
// closer to it; a bound checked against it is not loosened.
func allocBytes(f func()) uint64 {
	least := allocOnce(f)
	for range 2 {
		least = min(least, allocOnce(f))
	}
	return least
}

// allocOnce returns the bytes allocated in the process while f ran once.
func allocOnce(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// errReaderAt fails every read with err.
type errReaderAt struct{ err error }

func (r errReaderAt) ReadAt([]byte, int64) (int, error) { return 0, r.err }

// readAllFrames reads every frame of data[start:end) and returns copies of
// them and the error that ended the loop (io.EOF at a clean end).
func readAllFrames(data []byte, start, end int64) ([]Frame, error) {
	r := NewReader(bytes.NewReader(data), start, end)
	var out []Frame
	for {
		f, err := r.Next()
		if err != nil {
			return out, err
		}
		f.Payload = append([]byte(nil), f.Payload...)
		out = append(out, f)
	}
}

var _ io.ReaderAt = errReaderAt{}

// sparseOf, lastVer and streamOf are the index accessors for indexes held
// wholly in memory (which never fail).
func sparseOf(x *Index) []SparseEntry {
	s, err := x.Sparse()
	if err != nil {
		panic(err)
	}
	return s
}

func lastVer(x *Index, name string) uint64 {
	v, err := x.LastVersion(name)
	if err != nil {
		panic(err)
	}
	return v
}

func streamOf(x *Index, name string) (StreamPostings, bool) {
	sp, ok, err := x.Stream(name)
	if err != nil {
		panic(err)
	}
	return sp, ok
}
