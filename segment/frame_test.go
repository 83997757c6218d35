package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type testFrame struct {
	kind    Kind
	payload []byte
}

func randFrames(rng *rand.Rand, n int) []testFrame {
	fs := make([]testFrame, n)
	for i := range fs {
		size := rng.IntN(200)
		switch rng.IntN(20) {
		case 0:
			size = 0
		case 1:
			size = 2000 + rng.IntN(60000)
		}
		fs[i] = testFrame{kind: Kind(1 + rng.IntN(5)), payload: make([]byte, size)}
		for j := range fs[i].payload {
			fs[i].payload[j] = byte(rng.Uint32())
		}
	}
	return fs
}

// encodeFrames appends the frames after prefix and returns the data and the
// Frames a Reader must return.
func encodeFrames(prefix []byte, fs []testFrame) ([]byte, []Frame) {
	data := append([]byte(nil), prefix...)
	var want []Frame
	for _, f := range fs {
		off := int64(len(data))
		data = AppendFrame(data, f.kind, f.payload)
		want = append(want, Frame{Kind: f.kind, Offset: off, Payload: f.payload})
	}
	return data, want
}

func TestReaderRoundTrip(t *testing.T) {
	rng := newRand(t)
	for iter := range 50 {
		prefix := bytes.Repeat([]byte{0xee}, rng.IntN(100))
		fs := randFrames(rng, rng.IntN(300))
		data, want := encodeFrames(prefix, fs)
		got, err := readAllFrames(data, int64(len(prefix)), int64(len(data)))
		if !errors.Is(err, io.EOF) {
			t.Fatalf("iteration %d: reading %d frames: %v after %d", iter, len(fs), err, len(got))
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); diff != "" {
			t.Fatalf("iteration %d: frames (-want +got):\n%s", iter, diff)
		}
		for _, f := range got {
			if f.Size() != int64(FrameHeaderSize+len(f.Payload)) {
				t.Fatalf("Size() = %d for a %d-byte payload", f.Size(), len(f.Payload))
			}
		}
	}
}

// io.EOF comes exactly at the end of the range, and keeps coming.
func TestReaderEOF(t *testing.T) {
	data, _ := encodeFrames(nil, []testFrame{{KindEvent, []byte("a")}, {KindCommit, make([]byte, 20)}})
	r := NewReader(bytes.NewReader(data), 0, int64(len(data)))
	for range 2 {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if f, err := r.Next(); !errors.Is(err, io.EOF) || f.Payload != nil {
			t.Fatalf("Next at the end = %+v, %v, want io.EOF", f, err)
		}
	}
	if r.Offset() != int64(len(data)) || r.End() != int64(len(data)) {
		t.Errorf("Offset, End = %d, %d, want %d, %d", r.Offset(), r.End(), len(data), len(data))
	}
	// An empty range is at its end at once.
	r = NewReader(bytes.NewReader(data), 10, 10)
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("Next on an empty range = %v, want io.EOF", err)
	}
	// A range ending after the first frame stops there.
	first := int64(FrameHeaderSize + 1)
	r = NewReader(bytes.NewReader(data), 0, first)
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("Next past the range = %v, want io.EOF", err)
	}
}

// Frames larger than the Reader's 256 KiB window grow it.
func TestReaderLargeFrames(t *testing.T) {
	sizes := []int{10, readChunk + 44*1024, 3, readChunk - FrameHeaderSize, readChunk - FrameHeaderSize - 1, 1 << 20, 0, readChunk, 5, 3 << 20, 1}
	var fs []testFrame
	for i, n := range sizes {
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(i + j)
		}
		fs = append(fs, testFrame{KindEvent, p})
	}
	data, want := encodeFrames(make([]byte, 100), fs)
	got, err := readAllFrames(data, 100, int64(len(data)))
	if !errors.Is(err, io.EOF) {
		t.Fatalf("after %d frames: %v", len(got), err)
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b []byte) bool { return bytes.Equal(a, b) })); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	// Reset keeps the grown buffer and reads another range correctly.
	r := NewReader(bytes.NewReader(data), 100, int64(len(data)))
	for range len(sizes) {
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	r.Reset(bytes.NewReader(data), want[5].Offset, want[6].Offset)
	f, err := r.Next()
	if err != nil || f.Offset != want[5].Offset || !bytes.Equal(f.Payload, want[5].Payload) {
		t.Fatalf("after Reset: frame at %d (%d bytes), %v; want the frame at %d", f.Offset, len(f.Payload), err, want[5].Offset)
	}
	if _, err := r.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("after Reset: %v, want io.EOF", err)
	}
}

// frameOutcome is what reading a mutated stream must give: the number of
// frames read, then either io.EOF or a *FrameError at an offset.
type frameOutcome struct {
	frames    int
	eof       bool
	offset    int64
	truncated bool
}

func (o frameOutcome) String() string {
	if o.eof {
		return fmt.Sprintf("%d frames then io.EOF", o.frames)
	}
	return fmt.Sprintf("%d frames then FrameError{Offset: %d, Truncated: %v}", o.frames, o.offset, o.truncated)
}

func readOutcome(t *testing.T, data []byte) frameOutcome {
	t.Helper()
	r := NewReader(bytes.NewReader(data), 0, int64(len(data)))
	var o frameOutcome
	for {
		off := r.Offset()
		f, err := r.Next()
		if err == nil {
			if f.Offset != off {
				t.Fatalf("frame at %d, Reader was at %d", f.Offset, off)
			}
			o.frames++
			continue
		}
		if errors.Is(err, io.EOF) {
			o.eof = true
			return o
		}
		fe, ok := errors.AsType[*FrameError](err)
		if !ok {
			t.Fatalf("Next: %v, want a *FrameError", err)
		}
		if errors.Is(err, ErrTruncated) != fe.Truncated {
			t.Errorf("errors.Is(err, ErrTruncated) = %v, Truncated = %v", errors.Is(err, ErrTruncated), fe.Truncated)
		}
		if fe.Offset != off || r.Offset() != off {
			t.Errorf("FrameError at %d, Reader at %d, want both at %d", fe.Offset, r.Offset(), off)
		}
		// The Reader does not advance past a bad frame.
		_, err2 := r.Next()
		if fe2, ok := errors.AsType[*FrameError](err2); !ok || *fe2 != *fe {
			t.Errorf("second Next = %v, want the same error %v", err2, err)
		}
		o.offset, o.truncated = fe.Offset, fe.Truncated
		return o
	}
}

func TestReaderCorrupt(t *testing.T) {
	frames := []testFrame{{KindEvent, []byte("first event payload")}, {KindCommit, make([]byte, 20)}, {KindEvent, bytes.Repeat([]byte("x"), 300)}}
	data, want := encodeFrames(nil, frames)
	last := want[2]
	lastEnd := last.Offset + last.Size()

	type tcase struct {
		name    string
		corrupt func(b []byte) []byte
		want    frameOutcome
	}
	tests := []tcase{
		{"intact", func(b []byte) []byte { return b }, frameOutcome{frames: 3, eof: true}},
		{"zeros appended", func(b []byte) []byte { return append(b, make([]byte, 100)...) }, frameOutcome{frames: 3, offset: lastEnd}},
		{"8 zeros appended", func(b []byte) []byte { return append(b, make([]byte, 8)...) }, frameOutcome{frames: 3, offset: lastEnd, truncated: true}},
		{"0xff appended", func(b []byte) []byte { return append(b, bytes.Repeat([]byte{0xff}, 100)...) }, frameOutcome{frames: 3, offset: lastEnd, truncated: true}},
		{"0x7f appended", func(b []byte) []byte { return append(b, bytes.Repeat([]byte{0x7f}, 100)...) }, frameOutcome{frames: 3, offset: lastEnd, truncated: true}},
		{"zeroed middle frame", func(b []byte) []byte {
			clear(b[want[1].Offset : want[1].Offset+want[1].Size()])
			return b
		}, frameOutcome{frames: 1, offset: want[1].Offset}},
		{"length over the limit, data short", func(b []byte) []byte {
			le.PutUint32(b[want[1].Offset+frameLenOff:], MaxFramePayload+1)
			return b
		}, frameOutcome{frames: 1, offset: want[1].Offset, truncated: true}},
		{"length 2^32-1", func(b []byte) []byte {
			le.PutUint32(b[want[1].Offset+frameLenOff:], math.MaxUint32)
			return b
		}, frameOutcome{frames: 1, offset: want[1].Offset, truncated: true}},
		{"length shrunk", func(b []byte) []byte {
			le.PutUint32(b[want[1].Offset+frameLenOff:], 5)
			return b
		}, frameOutcome{frames: 1, offset: want[1].Offset}},
	}
	for _, k := range []Kind{0, KindNames + 1, 0x80, 0xff} {
		tests = append(tests, tcase{fmt.Sprintf("unknown kind %d with a valid checksum", k), func(b []byte) []byte {
			f := b[want[1].Offset : want[1].Offset+want[1].Size()]
			f[frameKindOff] = byte(k)
			le.PutUint32(f[frameCRCOff:], crc(f[frameLenOff:]))
			return b
		}, frameOutcome{frames: 1, offset: want[1].Offset}})
	}
	// Truncated at every offset of the last frame.
	for cut := last.Offset + 1; cut < lastEnd; cut++ {
		tests = append(tests, tcase{fmt.Sprintf("truncated at %d", cut), func(b []byte) []byte { return b[:cut] },
			frameOutcome{frames: 2, offset: last.Offset, truncated: true}})
	}
	// A flipped byte anywhere in the middle frame.
	for off := want[1].Offset; off < want[1].Offset+want[1].Size(); off++ {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			mut := bytes.Clone(data)
			mut[off] ^= mask
			n := int64(le.Uint32(mut[want[1].Offset+frameLenOff:]))
			rest := int64(len(mut)) - want[1].Offset - FrameHeaderSize
			tests = append(tests, tcase{fmt.Sprintf("byte %d ^ %#x", off, mask), func(b []byte) []byte {
				b[off] ^= mask
				return b
			}, frameOutcome{frames: 1, offset: want[1].Offset, truncated: n > rest}}) // truncated only when the length grew past the end
		}
	}
	for _, tt := range tests {
		got := readOutcome(t, tt.corrupt(bytes.Clone(data)))
		if got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

// zeroReaderAt is a ReaderAt of size bytes, all zero but for head at 0,
// that allocates nothing.
type zeroReaderAt struct {
	head []byte
	size int64
}

func (z zeroReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= z.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), z.size-off))
	clear(p[:n])
	if off < int64(len(z.head)) {
		copy(p[:n], z.head[off:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// A length field beyond MaxFramePayload is rejected without allocating it,
// even when that much data follows.
func TestReaderHugeLengthDoesNotAllocate(t *testing.T) {
	for _, n := range []uint32{MaxFramePayload + 1, math.MaxUint32, MaxFramePayload} {
		for _, size := range []int64{20, 4 << 30} {
			head := make([]byte, FrameHeaderSize)
			le.PutUint32(head[frameLenOff:], n)
			head[frameKindOff] = byte(KindEvent)
			var err error
			alloc := allocBytes(func() {
				r := NewReader(zeroReaderAt{head, size}, 0, size)
				_, err = r.Next()
			})
			if n == MaxFramePayload && size > int64(n) {
				// A legal length with the data present is read (and fails
				// its checksum); that allocation is the frame's own size.
				if _, ok := errors.AsType[*FrameError](err); !ok || errors.Is(err, ErrTruncated) {
					t.Errorf("length %d, size %d: %v, want a checksum FrameError", n, size, err)
				}
				continue
			}
			fe, ok := errors.AsType[*FrameError](err)
			if !ok || fe.Offset != 0 {
				t.Fatalf("length %d, size %d: %v, want a FrameError at 0", n, size, err)
			}
			if fe.Truncated != (int64(n) > size-FrameHeaderSize) {
				t.Errorf("length %d, size %d: Truncated = %v", n, size, fe.Truncated)
			}
			// The only allocation is the Reader's read window.
			if limit := uint64(readChunk + 8<<10); alloc > limit {
				t.Errorf("length %d, size %d: allocated %d bytes, want at most %d", n, size, alloc, limit)
			}
			t.Logf("length %d, size %d: %d bytes allocated", n, size, alloc)
		}
	}
}

// A ReaderAt that holds less than the range claims gives a truncated
// FrameError; any other read error is passed through as is.
func TestReaderReadErrors(t *testing.T) {
	data, _ := encodeFrames(nil, []testFrame{{KindEvent, []byte("abc")}, {KindEvent, bytes.Repeat([]byte("d"), 100)}})
	r := NewReader(bytes.NewReader(data[:20]), 0, int64(len(data)))
	if _, err := r.Next(); err != nil {
		t.Fatalf("first frame: %v", err)
	}
	_, err := r.Next()
	if fe, ok := errors.AsType[*FrameError](err); !ok || !fe.Truncated || fe.Offset != 12 {
		t.Errorf("data shorter than the range: %v, want a truncated FrameError at 12", err)
	}

	r = NewReader(errReaderAt{syscall.EIO}, 0, 100)
	_, err = r.Next()
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("failing ReaderAt: %v, want EIO", err)
	}
	if _, ok := errors.AsType[*FrameError](err); ok {
		t.Errorf("an I/O error is reported as a FrameError: %v", err)
	}
}

func TestFrameErrorIs(t *testing.T) {
	if !errors.Is(&FrameError{Truncated: true}, ErrTruncated) {
		t.Error("truncated FrameError does not match ErrTruncated")
	}
	if errors.Is(&FrameError{}, ErrTruncated) {
		t.Error("non-truncated FrameError matches ErrTruncated")
	}
	if errors.Is(&FrameError{Truncated: true}, ErrCorrupt) {
		t.Error("FrameError matches ErrCorrupt (Scan wraps it into a CorruptError)")
	}
}

func TestKindString(t *testing.T) {
	want := map[Kind]string{0: "invalid", KindEvent: "event", KindCommit: "commit", KindPostings: "postings", KindBlock: "block", KindSummary: "summary",
		KindZBlock: "zblock", KindZMap: "zmap", KindMark: "mark", KindIDs: "ids", KindNames: "names", 11: "invalid", 255: "invalid"}
	for k, s := range want {
		if k.String() != s || k.valid() != (s != "invalid") {
			t.Errorf("Kind(%d): String %q valid %v", k, k.String(), k.valid())
		}
	}
}

func TestCommitRoundTrip(t *testing.T) {
	for _, c := range []Commit{
		{FirstSeq: 1, Count: 1, DurableEnd: HeaderSize},
		{FirstSeq: 12345, Count: 77, DurableEnd: 1 << 30},
		{FirstSeq: math.MaxUint64, Count: math.MaxUint32, DurableEnd: math.MaxInt64},
	} {
		b := AppendCommitFrame([]byte{1, 2, 3}, c)
		if len(b)-3 != CommitFrameSize {
			t.Errorf("commit frame is %d bytes, want %d", len(b)-3, CommitFrameSize)
		}
		fs, err := readAllFrames(b, 3, int64(len(b)))
		if !errors.Is(err, io.EOF) || len(fs) != 1 || fs[0].Kind != KindCommit {
			t.Fatalf("reading the commit frame: %v %v", fs, err)
		}
		got, err := DecodeCommit(fs[0].Payload)
		if err != nil || got != c {
			t.Errorf("DecodeCommit = %+v, %v, want %+v", got, err, c)
		}
	}
}

func TestDecodeCommitRejects(t *testing.T) {
	payload := func(c Commit) []byte { return AppendCommitFrame(nil, c)[FrameHeaderSize:] }
	valid := payload(Commit{FirstSeq: 1, Count: 1, DurableEnd: 64})
	for name, p := range map[string][]byte{
		"zero first seq":      payload(Commit{FirstSeq: 0, Count: 1, DurableEnd: 64}),
		"zero count":          payload(Commit{FirstSeq: 1, Count: 0, DurableEnd: 64}),
		"all zero":            make([]byte, commitPayloadSize),
		"negative durable":    payload(Commit{FirstSeq: 1, Count: 1, DurableEnd: -1}),
		"min int64 durable":   payload(Commit{FirstSeq: 1, Count: 1, DurableEnd: math.MinInt64}),
		"short":               valid[:commitPayloadSize-1],
		"long":                append(bytes.Clone(valid), 0),
		"empty":               nil,
		"event-sized payload": make([]byte, 200),
	} {
		if c, err := DecodeCommit(p); err == nil {
			t.Errorf("%s: DecodeCommit = %+v, nil; want an error", name, c)
		}
	}
}

// sizeRecordingReaderAt records the size of each read.
type sizeRecordingReaderAt struct {
	ra    io.ReaderAt
	reads []int
}

func (c *sizeRecordingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.reads = append(c.reads, len(p))
	return c.ra.ReadAt(p, off)
}

// A Reader's first read after NewReader or Reset is small and each later
// one doubles, up to readChunk: a point look-up reads tens of KiB, not
// 256, and a scan still reads every byte once, in few calls.
func TestReaderReadsGrow(t *testing.T) {
	var fs []testFrame
	for i := range 20000 {
		fs = append(fs, testFrame{KindEvent, bytes.Repeat([]byte{byte(i)}, 100)})
	}
	data, want := encodeFrames(nil, fs)
	c := &sizeRecordingReaderAt{ra: bytes.NewReader(data)}
	r := NewReader(c, 0, int64(len(data)))
	if _, err := r.Next(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{firstChunk}, c.reads); diff != "" {
		t.Errorf("one frame: reads (-want +got):\n%s", diff)
	}
	for {
		if _, err := r.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	total, wantReads := 0, []int{}
	for n := firstChunk; total < len(data); n = min(2*n, readChunk) {
		wantReads = append(wantReads, min(n, len(data)-total))
		total += n
	}
	// Each read after the first also carries the unread tail of a frame
	// cut by the previous one, so compare the sizes loosely: the count and
	// the sum (each byte read about once).
	sum := 0
	for _, n := range c.reads {
		sum += n
	}
	if len(c.reads) != len(wantReads) || sum > len(data)+len(c.reads)*(FrameHeaderSize+100) {
		t.Errorf("scan of %d bytes: %d reads summing to %d (%v), want %d reads (%v)", len(data), len(c.reads), sum, c.reads, len(wantReads), wantReads)
	}
	// Reset starts small again, with the buffer it has.
	c.reads = nil
	r.Reset(c, want[10000].Offset, int64(len(data)))
	if f, err := r.Next(); err != nil || f.Offset != want[10000].Offset {
		t.Fatalf("after Reset: frame at %d, %v; want %d", f.Offset, err, want[10000].Offset)
	}
	if diff := cmp.Diff([]int{firstChunk}, c.reads); diff != "" {
		t.Errorf("after Reset: reads (-want +got):\n%s", diff)
	}
}
