package segment

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Compressed segments (header flag FlagCompressed, written only by
// compaction) store their records — the very same event and commit frames
// — in independently compressed blocks:
//
//	header | zblock frame … | zmap frame | postings … | blocks … | summary | trailer
//	         ^ HeaderSize     ^ Trailer.RecordsEnd
//
// A zblock frame's payload is one zstd frame holding ZBlockSize (the last
// one: fewer) consecutive record bytes. The zmap frame lists, per zblock,
// its frame offset u64, frame size u32 and record bytes u32, after a u32
// count. Offsets in the index (postings, sparse entries) are logical: they
// address the uncompressed records as if they started at HeaderSize, so
// every reader works on a logical view (Segment.Records) and nothing else
// changes.

// zmap is a compressed segment's block directory.
type zmap struct {
	starts []int64 // logical start of each block (first is HeaderSize)
	phys   []int64
	plen   []uint32
	end    int64 // logical end of the records
}

func decodeZMap(p []byte, recordsEnd int64) (*zmap, error) {
	r := binReader{b: p}
	n := r.u32()
	if !r.fits(n, zmEntrySize) || r.off+int(n)*zmEntrySize != len(p) {
		return nil, fmt.Errorf("zmap: %d entries do not fit its %d bytes", n, len(p))
	}
	z := &zmap{starts: make([]int64, n), phys: make([]int64, n), plen: make([]uint32, n)}
	logical, phys := int64(HeaderSize), int64(HeaderSize)
	for i := range int(n) {
		off, pl, ll := int64(r.u64()), r.u32(), r.u32()
		if off != phys || pl < FrameHeaderSize || ll == 0 || ll > MaxZBlock {
			return nil, fmt.Errorf("zmap: block %d (offset %d, %d bytes, %d record bytes) is not contiguous or out of range", i, off, pl, ll)
		}
		z.starts[i], z.phys[i], z.plen[i] = logical, off, pl
		logical += int64(ll)
		phys += int64(pl)
	}
	if phys != recordsEnd {
		return nil, fmt.Errorf("zmap: blocks end at %d, the records at %d", phys, recordsEnd)
	}
	z.end = logical
	return z, nil
}

// zReader is the logical view of a compressed segment's records.
type zReader struct {
	s *Segment
	z *zmap

	mu    sync.Mutex
	cache [2]zcached // the two most recently used blocks
	tick  int
}

type zcached struct {
	block int
	data  []byte
	used  int
}

var zdecoders = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(2*MaxZBlock), zstd.WithDecoderMaxWindow(MaxZBlock))
	if err != nil {
		panic(err) // only invalid options fail
	}
	return d
}}

// block returns the decompressed records of block i (a slice the caller
// must copy from before releasing r.mu).
func (r *zReader) blockLocked(i int) ([]byte, error) {
	r.tick++
	for k := range r.cache {
		if c := &r.cache[k]; c.data != nil && c.block == i {
			c.used = r.tick
			return c.data, nil
		}
	}
	p, err := r.s.readFrame(r.z.phys[i], r.z.plen[i], KindZBlock, nil)
	if err != nil {
		return nil, err
	}
	want := r.z.end - r.z.starts[i]
	if i+1 < len(r.z.starts) {
		want = r.z.starts[i+1] - r.z.starts[i]
	}
	victim := &r.cache[0]
	if r.cache[1].used < victim.used {
		victim = &r.cache[1]
	}
	d := zdecoders.Get().(*zstd.Decoder)
	out, err := d.DecodeAll(p, victim.data[:0])
	zdecoders.Put(d)
	if err != nil || int64(len(out)) != want {
		victim.data = nil
		if err == nil {
			err = fmt.Errorf("holds %d record bytes, the zmap says %d", len(out), want)
		}
		return nil, &CorruptError{File: r.s.Name, Offset: r.z.phys[i], Reason: "compressed block: " + err.Error()}
	}
	*victim = zcached{block: i, data: out, used: r.tick}
	return out, nil
}

// ReadAt reads logical record bytes.
func (r *zReader) ReadAt(p []byte, off int64) (int, error) {
	if off < HeaderSize {
		return 0, errors.New("evlog/segment: read before the records")
	}
	n := 0
	r.mu.Lock()
	defer r.mu.Unlock()
	for n < len(p) {
		pos := off + int64(n)
		if pos >= r.z.end {
			return n, io.EOF
		}
		i := sort.Search(len(r.z.starts), func(i int) bool { return r.z.starts[i] > pos }) - 1
		b, err := r.blockLocked(i)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], b[pos-r.z.starts[i]:])
	}
	return n, nil
}

// Records returns the segment's records as a ReaderAt over logical
// offsets, and their logical end (for an unsealed segment: the file size;
// readers bound it by what is committed). For an uncompressed segment this
// is the file itself.
func (s *Segment) Records() (io.ReaderAt, int64, error) {
	if !s.Sealed {
		return s.f, s.Size, nil
	}
	if s.Header.Flags&FlagCompressed == 0 {
		return s.f, s.Trailer.RecordsEnd, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.zr == nil && s.zErr == nil {
		z, err := s.loadZMap()
		if err != nil {
			s.zErr = err
		} else {
			s.zr = &zReader{s: s, z: z}
		}
	}
	if s.zErr != nil {
		return nil, 0, s.zErr
	}
	return s.zr, s.zr.z.end, nil
}

func (s *Segment) loadZMap() (*zmap, error) {
	off := s.Trailer.RecordsEnd
	var hdr [FrameHeaderSize]byte
	if _, err := s.f.ReadAt(hdr[:], off); err != nil {
		return nil, corruptf(s.Name, off, "reading the zmap frame: %v", err)
	}
	n := le.Uint32(hdr[frameLenOff:])
	if int64(n) > s.Trailer.SummaryOff-off {
		return nil, corruptf(s.Name, off, "zmap frame of %d bytes overlaps the footer", n)
	}
	p, err := s.readFrame(off, FrameHeaderSize+n, KindZMap, nil)
	if err != nil {
		return nil, err
	}
	z, err := decodeZMap(p, off)
	if err != nil {
		return nil, &CorruptError{File: s.Name, Offset: off, Reason: err.Error()}
	}
	return z, nil
}
