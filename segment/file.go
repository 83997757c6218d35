package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/evlog/evlog/internal/vfs"
)

// Segment is one segment file opened for reading. Open reads only its
// header and, for a sealed segment, its trailer; the summary (sparse index,
// stream block directory, bloom filter) is read on first use and cached.
//
// A Segment is safe for concurrent use. Its file handle stays open until
// Close.
type Segment struct {
	Name        string
	Header      Header
	HeaderBytes [HeaderSize]byte
	Size        int64 // file size when opened
	Sealed      bool  // the trailer is present and valid
	Trailer     Trailer

	f vfs.File

	mu      sync.Mutex
	summary *Summary
	sumErr  error
	bloom   bloom    // a copy of the summary's bloom filter, kept by MayContain until Summary decodes the summary
	zr      *zReader // compressed segments: the logical view of the records
	zErr    error
	cache   atomic.Pointer[BlockCache] // shared by the log's segments (nil: one of its own)
	ckpt    *Checkpoint                // the checkpoint recovery used, closed with s
}

// SetBlockCache makes a compressed segment keep its decompressed blocks in
// c, which other segments may share; without it, a segment has a small
// cache of its own.
func (s *Segment) SetBlockCache(c *BlockCache) { s.cache.Store(c) }

// Open opens segment name of fsys and reads its header and trailer. A
// missing or invalid header is reported as a *CorruptError (Offset 0). A
// trailer that is present and checksummed but inconsistent is corruption;
// an absent trailer just means the segment is not sealed.
func Open(fsys vfs.FS, name string) (*Segment, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	s, err := open(f, name)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func open(f vfs.File, name string) (*Segment, error) {
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	s := &Segment{Name: name, Size: size, f: f}
	if size < HeaderSize {
		return nil, &CorruptError{File: name, Offset: 0, Reason: fmt.Sprintf("file is %d bytes, shorter than the %d-byte header", size, HeaderSize)}
	}
	if _, err := f.ReadAt(s.HeaderBytes[:], 0); err != nil {
		return nil, fmt.Errorf("evlog/segment: reading %s: %w", name, err)
	}
	if s.Header, err = DecodeHeader(s.HeaderBytes[:]); err != nil {
		return nil, &CorruptError{File: name, Offset: 0, Reason: err.Error()}
	}
	if size >= HeaderSize+TrailerSize {
		var tb [TrailerSize]byte
		if _, err := f.ReadAt(tb[:], size-TrailerSize); err != nil {
			return nil, fmt.Errorf("evlog/segment: reading %s: %w", name, err)
		}
		t, ok, err := DecodeTrailer(tb[:], s.HeaderBytes[:], s.Header, size)
		if err != nil {
			return nil, &CorruptError{File: name, Offset: size - TrailerSize, Reason: err.Error()}
		}
		s.Sealed, s.Trailer = ok, t
	}
	return s, nil
}

// CurrentSize returns the size of the segment's open file now: more than
// Size when a live writer appended since it was opened.
func (s *Segment) CurrentSize() (int64, error) { return s.f.Size() }

// File returns the segment's open file, for reading with ReadAt.
func (s *Segment) File() io.ReaderAt { return s.f }

// HeldSize returns the size the file s holds has now (Size is its size
// when s was opened): it grows while a writer appends to it, and stays
// when the name is renamed over to another file.
func (s *Segment) HeldSize() (int64, error) { return s.f.Size() }

// Close closes the file handle (and that of the checkpoint attached by
// AttachCheckpoint, if any).
func (s *Segment) Close() error {
	s.mu.Lock()
	zr, c := s.zr, s.ckpt
	s.ckpt = nil
	s.mu.Unlock()
	if zr != nil {
		zr.close()
	}
	if c != nil {
		return errors.Join(s.f.Close(), c.Close())
	}
	return s.f.Close()
}

// FirstSeq returns the seq of the segment's first event.
func (s *Segment) FirstSeq() uint64 { return s.Header.BaseSeq }

// Summary returns the sealed segment's decoded summary, reading it on first
// use.
func (s *Segment) Summary() (*Summary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.summary != nil || s.sumErr != nil {
		return s.summary, s.sumErr
	}
	if !s.Sealed {
		return nil, fmt.Errorf("evlog/segment: %s is not sealed", s.Name)
	}
	t := s.Trailer
	logicalEnd := t.RecordsEnd
	if s.Header.Flags&FlagCompressed != 0 {
		s.mu.Unlock()
		_, end, err := s.Records()
		s.mu.Lock()
		if err != nil {
			s.sumErr = err
			return nil, err
		}
		logicalEnd = end
	}
	p, err := s.readFrame(t.SummaryOff, t.SummaryLen, KindSummary, nil)
	if err == nil {
		s.summary, err = decodeSummary(p, logicalEnd, t.RecordsEnd, t.SummaryOff, int(t.Count), s.Header.Version)
		s.bloom = nil // the summary's own serves
		if err != nil {
			err = &CorruptError{File: s.Name, Offset: t.SummaryOff, Seq: s.Header.BaseSeq - 1, Reason: err.Error()}
		}
	}
	if errors.Is(err, ErrCorrupt) {
		s.sumErr = err // corruption stays; an I/O error is retried next time
	}
	return s.summary, err
}

// IDTable returns the entries of the sealed segment's ID table, sorted by
// (hash, seq), in dst's storage; ok is false when the segment has none
// (format version 1 or 2, or a footer written without it). It reads the
// summary (on first use) and the table's frame, nothing else.
func (s *Segment) IDTable(dst []IDEntry) (ids []IDEntry, ok bool, err error) {
	sum, err := s.Summary()
	if err != nil {
		return nil, false, err
	}
	if !sum.HasIDTable() {
		return nil, false, nil
	}
	p, err := s.readFrame(sum.idsOff, sum.idsLen, KindIDs, nil)
	if err != nil {
		return nil, false, err
	}
	t := s.Trailer
	ids, err = decodeIDs(p, s.Header.BaseSeq, t.LastSeq, int(t.Count), dst)
	if err != nil {
		return nil, false, &CorruptError{File: s.Name, Offset: sum.idsOff, Seq: s.Header.BaseSeq - 1, Reason: err.Error()}
	}
	return ids, true, nil
}

// readFrame reads the frame of size n at off, checks it and returns its
// payload (in buf if it is large enough).
func (s *Segment) readFrame(off int64, n uint32, kind Kind, buf []byte) ([]byte, error) {
	return readFrameAt(s.f, s.Name, off, n, kind, buf)
}

// checkFrame checks that b holds exactly one valid frame of the kind.
func checkFrame(b []byte, kind Kind, file string, off int64) ([]byte, error) {
	if int(le.Uint32(b[frameLenOff:]))+FrameHeaderSize != len(b) {
		return nil, corruptf(file, off, "%s frame length %d does not match the index (%d)", kind, le.Uint32(b[frameLenOff:]), len(b)-FrameHeaderSize)
	}
	if got, want := crc(b[frameLenOff:]), le.Uint32(b[frameCRCOff:]); got != want {
		return nil, corruptf(file, off, "%s frame checksum mismatch (stored %08x, computed %08x)", kind, want, got)
	}
	if Kind(b[frameKindOff]) != kind {
		return nil, corruptf(file, off, "frame kind %s, the index says %s", Kind(b[frameKindOff]), kind)
	}
	return b[FrameHeaderSize:], nil
}

// MayContain reports whether the sealed segment may hold events of the
// stream, by its summary's bloom filter: false is certain. It uses the
// summary if Summary has decoded it; otherwise it reads the summary frame
// into *buf (grown as needed: the caller reuses it across segments),
// verifies its checksum and reads the bloom filter in place, without
// decoding the rest of the summary (the sparse index, the block and
// name directories); it keeps a copy of the bloom filter alone (10 bits
// per stream) for its later calls. A look-up that misses in most
// segments, such as the deletion stream's at every open and every
// rebuild of the deletion table, then costs one reused buffer and each
// segment's filter instead of every segment's decoded summary. The frame
// is read again if Summary is called later: keeping the whole frame
// instead would touch fresh memory for every segment, which costs a
// one-shot process more than the second read (measured on a 10M-event
// log: 260 more page faults, 3 ms). A summary
// whose layout does not reach a well-formed bloom filter is decoded by
// Summary, whose error (naming file and offset) is returned.
func (s *Segment) MayContain(stream string, buf *[]byte) (bool, error) {
	s.mu.Lock()
	sum, sumErr, kept, sealed := s.summary, s.sumErr, s.bloom, s.Sealed
	s.mu.Unlock()
	switch {
	case sum != nil:
		return sum.MayContain(stream), nil
	case kept != nil:
		return kept.mayContain(streamHash(stream)), nil
	case sumErr != nil:
		return false, sumErr
	case !sealed:
		return false, fmt.Errorf("evlog/segment: %s is not sealed", s.Name)
	}
	if n := int(s.Trailer.SummaryLen); cap(*buf) < n && n <= FrameHeaderSize+MaxFramePayload {
		*buf = make([]byte, n)
	}
	p, err := s.readFrame(s.Trailer.SummaryOff, s.Trailer.SummaryLen, KindSummary, *buf)
	if err != nil {
		return false, err
	}
	if b, ok := summaryBloom(p); ok && len(b) > 0 {
		b = bytes.Clone(b) // p is the caller's buffer
		s.mu.Lock()
		if s.summary == nil {
			s.bloom = b
		}
		s.mu.Unlock()
		return b.mayContain(streamHash(stream)), nil
	}
	if sum, err = s.Summary(); err != nil {
		return false, err
	}
	return sum.MayContain(stream), nil
}

// summaryBloom returns the bloom filter of summary frame payload p,
// skipping what precedes it with decodeSummary's bounds checks; ok is
// false when p is malformed before the bloom filter ends.
func summaryBloom(p []byte) (b bloom, ok bool) {
	r := binReader{b: p}
	n := r.u32()
	if !r.fits(n, sparseSize) {
		return nil, false
	}
	r.take(int(n) * sparseSize)
	n = r.u32()
	if !r.fits(n, blkSize) {
		return nil, false
	}
	r.take(int(n) * blkSize)
	r.u32() // streams
	bits := r.u32()
	if bits%8 != 0 || !r.fits(bits/8, 1) {
		return nil, false
	}
	b = bloom(r.take(int(bits / 8)))
	return b, r.err == nil
}

// Lookup finds a stream's entry in a sealed segment. It reads (at most) the
// stream blocks that may hold it; the bloom filter answers most misses from
// memory.
func (s *Segment) Lookup(stream string) (StreamEntry, bool, error) {
	sum, err := s.Summary()
	if err != nil {
		return StreamEntry{}, false, err
	}
	read := func(b summaryBlock) ([]byte, error) { return s.readFrame(b.off, b.len, KindBlock, nil) }
	corrupt := func(off int64, err error) error { return &CorruptError{File: s.Name, Offset: off, Reason: err.Error()} }
	return lookupEntry(sum, stream, read, corrupt, s.Trailer.RecordsEnd, s.Trailer.SummaryOff)
}

// Postings reads the postings of a stream entry.
func (s *Segment) Postings(e StreamEntry, dst []Posting) ([]Posting, error) {
	p, err := s.readFrame(e.PostOff, e.PostLen, KindPostings, nil)
	if err != nil {
		return nil, err
	}
	_, logicalEnd, err := s.Records()
	if err != nil {
		return nil, err
	}
	posts, err := decodePostings(p, e.Count, logicalEnd, dst)
	if err != nil {
		return nil, &CorruptError{File: s.Name, Offset: e.PostOff, Reason: err.Error()}
	}
	return posts, nil
}

// EventReader reads event frames located by postings, coalescing adjacent
// frames into one read. It keeps its buffer between calls; it is not safe
// for concurrent use.
type EventReader struct {
	buf []byte
}

// maxCoalesce bounds the bytes fetched by one coalesced read.
const maxCoalesce = 1 << 20

// Read calls fn with the payload of each event frame in posts, in order.
// The payload is valid only during the call. Frames are checked (length,
// checksum, kind) before fn sees them.
func (er *EventReader) Read(ra io.ReaderAt, file string, posts []Posting, fn func(off int64, payload []byte) error) error {
	for i := 0; i < len(posts); {
		if posts[i].Len < FrameHeaderSize {
			return corruptf(file, posts[i].Off, "indexed frame of %d bytes is shorter than a frame header", posts[i].Len)
		}
		// Coalesce a run of adjacent frames.
		j, n := i+1, int64(posts[i].Len)
		for j < len(posts) && posts[j].Len >= FrameHeaderSize && posts[j].Off == posts[j-1].Off+int64(posts[j-1].Len) && n+int64(posts[j].Len) <= maxCoalesce {
			n += int64(posts[j].Len)
			j++
		}
		if int64(cap(er.buf)) < n {
			er.buf = make([]byte, n)
		}
		b := er.buf[:n]
		if _, err := ra.ReadAt(b, posts[i].Off); err != nil {
			if errors.Is(err, io.EOF) {
				return corruptf(file, posts[i].Off, "indexed event frame runs past the end of the file")
			}
			return fmt.Errorf("evlog/segment: reading %s: %w", file, err)
		}
		for k := i; k < j; k++ {
			fr := b[:posts[k].Len]
			b = b[posts[k].Len:]
			p, err := checkFrame(fr, KindEvent, file, posts[k].Off)
			if err != nil {
				return err
			}
			if err := fn(posts[k].Off, p); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// SeekSeq returns the offset of a frame at or before the event with seq,
// using the sparse index (HeaderSize if seq precedes every entry).
func SeekSeq(sparse []SparseEntry, seq uint64) int64 {
	lo, hi := 0, len(sparse) // find the last entry with Seq <= seq
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if sparse[m].Seq <= seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return HeaderSize
	}
	return sparse[lo-1].Off
}

// SeekTime returns the offset of the last sparse entry whose time is at or
// before t (unix ns), and ok=false when even the first event is after t.
func SeekTime(sparse []SparseEntry, t int64) (int64, bool) {
	lo, hi := 0, len(sparse)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if sparse[m].Time <= t {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return 0, false
	}
	return sparse[lo-1].Off, true
}

// TornSeal makes s an unsealed segment: its trailer, though valid, is not
// trusted. Recovery calls it when it cannot rule out that the seal was
// torn — a crash before the seal's fsync completed can leave the trailer
// on disk without all of the footer before it — and the footer does not
// verify. Read as unsealed, the footer is a torn tail after the records,
// which a writer truncates before sealing the segment again.
func (s *Segment) TornSeal() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Sealed, s.Trailer, s.summary, s.sumErr, s.bloom = false, Trailer{}, nil, nil, nil
}
