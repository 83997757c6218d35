package segment

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

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

// zReader is the logical view of a compressed segment's records. Blocks
// come from the segment's BlockCache (the log's shared one, or a small one
// of its own); a reader going through the records in order has the next
// blocks decompressed ahead of it, in the background.
type zReader struct {
	s       *Segment
	z       *zmap
	private *BlockCache // used until the segment is given a shared one
	blockSz int64       // record bytes per block (the first block's)

	lastEnd atomic.Int64 // where the last ReadAt ended
	ahead   atomic.Bool  // a read-ahead is running

	mu     sync.Mutex // orders starting a read-ahead and close
	closed atomic.Bool
	wg     sync.WaitGroup // the read-ahead goroutine
}

// privateCacheSize bounds the cache of a segment no log shares one with
// (tools opening a single segment): room for a read-ahead window and the
// blocks being read.
const privateCacheSize = 4 * readAheadBlocks * ZBlockSize

// readAheadBlocks is how many blocks a sequential reader has decompressed
// ahead of it: one Reader chunk's worth.
const readAheadBlocks = readChunk / ZBlockSize

func newZReader(s *Segment, z *zmap) *zReader {
	r := &zReader{s: s, z: z, private: NewBlockCache(privateCacheSize), blockSz: z.end - HeaderSize}
	if len(z.starts) > 1 {
		r.blockSz = z.starts[1] - z.starts[0]
	}
	return r
}

// cache returns the cache blocks go through: the shared one, unless there
// is none (or it is disabled), then the segment's own small one.
func (r *zReader) cache() *BlockCache {
	if c := r.s.cache.Load(); c != nil && c.limit > 0 {
		return c
	}
	return r.private
}

var zdecoders = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(2*MaxZBlock), zstd.WithDecoderMaxWindow(MaxZBlock))
	if err != nil {
		panic(err) // only invalid options fail
	}
	return d
}}

// block returns the decompressed records of block i, which the caller must
// not modify.
func (r *zReader) block(i int) ([]byte, error) {
	return r.cache().get(blockKey{r: r, block: i}, func() ([]byte, error) { return r.decompress(i) })
}

// decompress reads, checks and decompresses block i. Any failure is
// corruption naming the block's frame.
func (r *zReader) decompress(i int) ([]byte, error) {
	p, err := r.s.readFrame(r.z.phys[i], r.z.plen[i], KindZBlock, nil)
	if err != nil {
		return nil, err
	}
	want := r.z.end - r.z.starts[i]
	if i+1 < len(r.z.starts) {
		want = r.z.starts[i+1] - r.z.starts[i]
	}
	d := zdecoders.Get().(*zstd.Decoder)
	out, err := d.DecodeAll(p, make([]byte, 0, want))
	zdecoders.Put(d)
	if err != nil || int64(len(out)) != want {
		if err == nil {
			err = fmt.Errorf("holds %d record bytes, the zmap says %d", len(out), want)
		}
		return nil, &CorruptError{File: r.s.Name, Offset: r.z.phys[i], Reason: "compressed block: " + err.Error()}
	}
	return out, nil
}

// ReadAt reads logical record bytes.
func (r *zReader) ReadAt(p []byte, off int64) (int, error) {
	if off < HeaderSize {
		return 0, errors.New("evlog/segment: read before the records")
	}
	// A sequential reader (Reader) reads chunks of at least a block, each
	// starting where the previous one ended or a partial frame before:
	// have the blocks after this read decompressed while it uses them.
	// Reads of single events (a stream's postings) never start one.
	if prev := r.lastEnd.Load(); int64(len(p)) >= r.blockSz && off <= prev && off >= prev-int64(len(p)) {
		next := sort.Search(len(r.z.starts), func(i int) bool { return r.z.starts[i] >= off+int64(len(p)) })
		r.readAhead(next)
	}
	r.lastEnd.Store(off + int64(len(p)))
	return r.z.readAt(p, off, r.block)
}

// readAt reads the logical record bytes at off into p, from the blocks
// block decompresses (by index in z).
func (z *zmap) readAt(p []byte, off int64, block func(i int) ([]byte, error)) (int, error) {
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= z.end {
			return n, io.EOF
		}
		i := sort.Search(len(z.starts), func(i int) bool { return z.starts[i] > pos }) - 1
		b, err := block(i)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], b[pos-z.starts[i]:])
	}
	return n, nil
}

// readAhead decompresses, in the background, the blocks from first on
// that the cache does not hold, up to two Reader chunks' worth (if no
// read-ahead is running).
func (r *zReader) readAhead(first int) {
	to := min(first+2*readAheadBlocks, len(r.z.starts))
	if first >= to || r.cache().limit < 2*readAheadBlocks*r.blockSz || !r.ahead.CompareAndSwap(false, true) {
		return // nothing to read ahead, or no room to keep what it would
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() {
		r.ahead.Store(false)
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer r.ahead.Store(false)
		for i := first; i < to && !r.closed.Load(); i++ {
			if !r.cache().cached(blockKey{r: r, block: i}) {
				// A failure is not cached: the reader reaching the block
				// decompresses it again and reports it.
				r.block(i)
			}
		}
	}()
}

// close stops the read-ahead and drops the segment's blocks.
func (r *zReader) close() {
	r.mu.Lock()
	r.closed.Store(true)
	r.mu.Unlock()
	r.wg.Wait()
	r.cache().drop(r)
	r.private.drop(r)
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
			s.zr = newZReader(s, z)
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
