package segment

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
	"sort"
)

// Posting locates one event frame: its offset and its size (header
// included), so a stream read fetches exactly its frames.
type Posting struct {
	Off int64
	Len uint32
}

// SparseEntry is one entry of a segment's sparse index: every
// SparseInterval-th event's seq, frame offset and recorded time.
type SparseEntry struct {
	Seq  uint64
	Off  int64
	Time int64 // unix ns
}

// SparseInterval is how many events apart the sparse index entries are.
// Seeking by seq or time reads at most this many frames past an entry.
const SparseInterval = 256

// StreamPostings is one stream's events within one segment.
type StreamPostings struct {
	FirstVersion uint64
	Posts        []Posting
}

// Index is the index of one segment's events: per-stream postings, a sparse
// seq/time index and the segment's totals. The active segment keeps one in
// memory (built by scanning at open, extended on every append); sealing
// encodes it into the segment's footer.
//
// An Index is not safe for concurrent use; the log guards it. Slices
// returned by Stream and Sparse are never modified afterwards (appends go
// past their length), so a reader may keep using them without the lock.
type Index struct {
	BaseSeq    uint64
	Count      int
	LastSeq    uint64 // BaseSeq-1 while empty
	FirstTime  int64
	LastTime   int64
	NewStreams int
	End        int64 // offset just past the last committed frame (or mark)
	// Durable is the largest durable end recorded by a mark frame among
	// the frames indexed (HeaderSize when none): the file was fsynced up
	// to it. Scan sets it; the writer keeps it current.
	Durable int64
	// Marked says a mark was indexed; Strict is the strict flag of the
	// last one (its writer acknowledges appends only once durable).
	Marked, Strict bool
	streams        map[string]*StreamPostings
	sparse         []SparseEntry
	// base, when set, is a checkpoint indexing the events before base.End:
	// the counters above include its events, streams and sparse only
	// what was added after it (see NewIndexFrom).
	base *Checkpoint
}

// NewIndexFrom returns the index of a segment's events as far as the
// checkpoint c indexes them (up to c.End, which it proves durable). Events
// added later are kept in memory; c's postings are read on use, so
// building it reads nothing.
func NewIndexFrom(c *Checkpoint) *Index {
	t := c.Trailer
	return &Index{
		BaseSeq: c.baseSeq, Count: int(t.Count), LastSeq: t.LastSeq, FirstTime: t.FirstTime, LastTime: t.LastTime,
		NewStreams: int(t.NewStreams), End: c.End, Durable: c.End, Marked: c.Marked, Strict: c.Strict,
		streams: make(map[string]*StreamPostings), base: c,
	}
}

// Base returns the checkpoint under the index (nil if none).
func (x *Index) Base() *Checkpoint { return x.base }

// Materialize returns an index holding everything x holds wholly in
// memory: x itself when no checkpoint is under it, else a new index with
// the checkpoint's postings read in. x is not modified.
func (x *Index) Materialize() (*Index, error) {
	if x.base == nil {
		return x, nil
	}
	y := *x
	y.base, y.sparse, y.streams = nil, nil, make(map[string]*StreamPostings, x.base.Streams+len(x.streams))
	if err := x.base.load(&y); err != nil {
		return nil, err
	}
	y.sparse = append(y.sparse, x.sparse...)
	for name, sp := range x.streams {
		if b := y.streams[name]; b != nil {
			if b.FirstVersion+uint64(len(b.Posts)) != sp.FirstVersion {
				return nil, corruptf(x.base.seg, sp.Posts[0].Off, "stream %q is at version %d before offset %d and continues at version %d", name, b.FirstVersion+uint64(len(b.Posts))-1, x.base.End, sp.FirstVersion)
			}
			b.Posts = append(b.Posts, sp.Posts...)
			continue
		}
		y.streams[name] = &StreamPostings{FirstVersion: sp.FirstVersion, Posts: sp.Posts}
	}
	return &y, nil
}

// NewIndex returns the empty index of a segment whose first seq is baseSeq.
func NewIndex(baseSeq uint64) *Index {
	return &Index{BaseSeq: baseSeq, LastSeq: baseSeq - 1, End: HeaderSize, Durable: HeaderSize, streams: make(map[string]*StreamPostings)}
}

// EventInfo is what the index records of one event.
type EventInfo struct {
	Seq     uint64
	Stream  string
	Version uint64
	Time    int64 // unix ns
	Off     int64 // frame offset
	Len     uint32
	// Postings, when set, is the stream's entry in the index the event
	// is added to, as AddBatch left it there (AddBatch sets it on every
	// event it adds): AddBatch then does not look the stream up. It must
	// be nil, or that index's own entry for Stream.
	Postings *StreamPostings
}

// Add records one committed event. Events must be added in seq order,
// starting at BaseSeq; the caller has checked that.
func (x *Index) Add(e EventInfo) {
	if x.Count == 0 {
		x.FirstTime = e.Time
	}
	if x.Count%SparseInterval == 0 {
		x.sparse = append(x.sparse, SparseEntry{Seq: e.Seq, Off: e.Off, Time: e.Time})
	}
	x.Count++
	x.LastSeq = e.Seq
	x.LastTime = e.Time
	if e.Version == 1 {
		x.NewStreams++
	}
	sp := x.streams[e.Stream]
	if sp == nil {
		sp = &StreamPostings{FirstVersion: e.Version}
		x.streams[e.Stream] = sp
	}
	sp.Posts = append(sp.Posts, Posting{Off: e.Off, Len: e.Len})
}

// AddBatch adds events in order, as Add does one by one, looking each run
// of consecutive events of one stream up once (not at all when the run's
// first event carries its Postings), and sets every event's Postings.
func (x *Index) AddBatch(events []EventInfo) {
	var (
		sp   *StreamPostings
		last string
	)
	for i := range events {
		e := &events[i]
		if x.Count == 0 {
			x.FirstTime = e.Time
		}
		if x.Count%SparseInterval == 0 {
			x.sparse = append(x.sparse, SparseEntry{Seq: e.Seq, Off: e.Off, Time: e.Time})
		}
		x.Count++
		x.LastSeq = e.Seq
		x.LastTime = e.Time
		if e.Version == 1 {
			x.NewStreams++
		}
		if sp == nil || e.Stream != last {
			last = e.Stream
			if sp = e.Postings; sp == nil {
				if sp = x.streams[last]; sp == nil {
					sp = &StreamPostings{FirstVersion: e.Version}
					x.streams[last] = sp
				}
			}
			// Room for the whole run at once: a batch of one new
			// stream grows its postings once, not log2(run) times.
			run := 1
			for i+run < len(events) && events[i+run].Stream == last {
				run++
			}
			sp.Posts = slices.Grow(sp.Posts, run)
		}
		sp.Posts = append(sp.Posts, Posting{Off: e.Off, Len: e.Len})
		e.Postings = sp
	}
}

// Stream returns the stream's postings in this segment (ok false if none):
// the checkpoint's, read from its file, followed by those added since.
// Errors come from reading the checkpoint.
func (x *Index) Stream(name string) (StreamPostings, bool, error) {
	sp := x.streams[name]
	if x.base == nil {
		if sp == nil {
			return StreamPostings{}, false, nil
		}
		return *sp, true, nil
	}
	b, ok, err := x.base.stream(name)
	if err != nil {
		return StreamPostings{}, false, err
	}
	if !ok {
		if sp == nil {
			return StreamPostings{}, false, nil
		}
		return *sp, true, nil
	}
	if sp != nil {
		if n := b.FirstVersion + uint64(len(b.Posts)); sp.FirstVersion != n {
			return StreamPostings{}, false, corruptf(x.base.seg, sp.Posts[0].Off, "stream %q is at version %d before offset %d and continues at version %d", name, n-1, x.base.End, sp.FirstVersion)
		}
		b.Posts = append(b.Posts[:len(b.Posts):len(b.Posts)], sp.Posts...)
	}
	return b, true, nil
}

// LastVersion returns the version of the stream's last event in this
// segment, or 0. Errors come from reading the checkpoint.
func (x *Index) LastVersion(name string) (uint64, error) {
	if sp := x.streams[name]; sp != nil {
		return sp.FirstVersion + uint64(len(sp.Posts)) - 1, nil
	}
	if x.base == nil {
		return 0, nil
	}
	return x.base.lastVersion(name)
}

// Streams returns the number of distinct streams in the segment. With a
// checkpoint under the index it is only a lower bound (the streams of the
// checkpoint or of the events added since, whichever are more).
func (x *Index) Streams() int {
	if x.base != nil {
		return max(x.base.Streams, len(x.streams))
	}
	return len(x.streams)
}

// Sparse returns the sparse index. With a checkpoint under the index it is
// a new slice (the checkpoint's summary is read on first use).
func (x *Index) Sparse() ([]SparseEntry, error) {
	if x.base == nil {
		return x.sparse, nil
	}
	s, err := x.base.sparse()
	if err != nil {
		return nil, err
	}
	out := make([]SparseEntry, 0, len(s)+len(x.sparse))
	return append(append(out, s...), x.sparse...), nil
}

// Footer layout (see doc.go): the frames after RecordsEnd are
//
//	postings frame × streams   (uvarint count, then count × (Δoffset, length) uvarints)
//	block frame × ⌈streams/16⌉ (entries sorted by (hash, name))
//	summary frame              (sparse index, block directory, bloom filter)
//	trailer                    (64 bytes)

// AppendFooter appends the footer frames and the trailer of a segment whose
// header is header and whose records end at x.End to dst, which will be
// written at offset x.End. It returns the extended slice and the trailer.
func (x *Index) AppendFooter(dst []byte, header [HeaderSize]byte) ([]byte, Trailer) {
	return x.AppendFooterAt(dst, header, x.End, x.End)
}

// AppendFooterAt is AppendFooter for a footer written at file offset
// footerStart, in a segment whose records (physically) end at recordsEnd.
// In a compressed segment the index's offsets are logical (offsets in the
// uncompressed records) while the footer's own are physical.
func (x *Index) AppendFooterAt(dst []byte, header [HeaderSize]byte, recordsEnd, footerStart int64) ([]byte, Trailer) {
	if x.base != nil {
		panic("evlog/segment: AppendFooter of an index with a checkpoint under it (Materialize it first)")
	}
	start := len(dst)
	off := func() int64 { return footerStart + int64(len(dst)-start) }

	// The streams in (hash, name) order, each hashed and looked up once.
	type stream struct {
		hash uint64
		name string
		sp   *StreamPostings
	}
	streams := make([]stream, 0, len(x.streams))
	// Room for the footer up front (postings take at most 2 uvarints of
	// 10 bytes each, usually far less): no regrowing a segment's worth of
	// postings while it is built.
	size := len(x.sparse)*24 + 4*TrailerSize
	for name, sp := range x.streams {
		streams = append(streams, stream{hash: streamHash(name), name: name, sp: sp})
		size += 2*FrameHeaderSize + entFixedSize + len(name) + 10 + len(sp.Posts)*8
	}
	dst = slices.Grow(dst, size)
	slices.SortFunc(streams, func(a, b stream) int {
		if c := cmp.Compare(a.hash, b.hash); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})

	type postRef struct {
		off int64
		len uint32
	}
	refs := make([]postRef, len(streams))
	var p []byte
	for i := range streams {
		sp := streams[i].sp
		p = binary.AppendUvarint(p[:0], uint64(len(sp.Posts)))
		prev := int64(0)
		for _, po := range sp.Posts {
			p = binary.AppendUvarint(p, uint64(po.Off-prev))
			p = binary.AppendUvarint(p, uint64(po.Len))
			prev = po.Off
		}
		refs[i] = postRef{off: off()}
		dst = AppendFrame(dst, KindPostings, p)
		refs[i].len = uint32(off() - refs[i].off)
	}

	type blockRef struct {
		hash uint64
		off  int64
		len  uint32
	}
	var blocks []blockRef
	for lo := 0; lo < len(streams); lo += blockStride {
		hi := min(lo+blockStride, len(streams))
		p = p[:0]
		for i := lo; i < hi; i++ {
			sp := streams[i].sp
			var e [entFixedSize]byte
			le.PutUint64(e[entHashOff:], streams[i].hash)
			le.PutUint64(e[entFirstVerOff:], sp.FirstVersion)
			le.PutUint32(e[entCountOff:], uint32(len(sp.Posts)))
			le.PutUint64(e[entPostOffOff:], uint64(refs[i].off))
			le.PutUint32(e[entPostLenOff:], refs[i].len)
			le.PutUint16(e[entNameLenOff:], uint16(len(streams[i].name)))
			p = append(append(p, e[:]...), streams[i].name...)
		}
		b := blockRef{hash: streams[lo].hash, off: off()}
		dst = AppendFrame(dst, KindBlock, p)
		b.len = uint32(off() - b.off)
		blocks = append(blocks, b)
	}

	p = le.AppendUint32(p[:0], uint32(len(x.sparse)))
	for _, s := range x.sparse {
		p = le.AppendUint64(p, s.Seq)
		p = le.AppendUint64(p, uint64(s.Off))
		p = le.AppendUint64(p, uint64(s.Time))
	}
	p = le.AppendUint32(p, uint32(len(blocks)))
	for _, b := range blocks {
		p = le.AppendUint64(p, b.hash)
		p = le.AppendUint64(p, uint64(b.off))
		p = le.AppendUint32(p, b.len)
	}
	p = le.AppendUint32(p, uint32(len(streams)))
	bloom := newBloom(len(streams))
	for i := range streams {
		bloom.add(streams[i].hash)
	}
	p = le.AppendUint32(p, uint32(len(bloom)*8))
	p = append(p, bloom...)

	t := Trailer{
		RecordsEnd: recordsEnd,
		SummaryOff: off(),
		Count:      uint32(x.Count),
		LastSeq:    x.LastSeq,
		FirstTime:  x.FirstTime,
		LastTime:   x.LastTime,
		NewStreams: uint32(x.NewStreams),
	}
	dst = AppendFrame(dst, KindSummary, p)
	t.SummaryLen = uint32(off() - t.SummaryOff)
	tb := t.Encode(header)
	return append(dst, tb[:]...), t
}

// Summary is the decoded summary frame of a sealed segment: what a reader
// keeps in memory to seek by seq or time and to find a stream's entry.
type Summary struct {
	Sparse     []SparseEntry
	NumStreams int
	blocks     []summaryBlock
	bloom      bloom
}

type summaryBlock struct {
	hash uint64
	off  int64
	len  uint32
}

// DecodeSummary decodes a summary frame payload. footerStart and footerEnd
// bound the offsets it may reference; count is the segment's event count.
func DecodeSummary(p []byte, recordsEnd, footerEnd int64, count int) (*Summary, error) {
	return decodeSummary(p, recordsEnd, recordsEnd, footerEnd, count)
}

// decodeSummary decodes a summary whose sparse offsets lie below
// logicalEnd and whose block frames lie in [recordsEnd, footerEnd).
func decodeSummary(p []byte, logicalEnd, recordsEnd, footerEnd int64, count int) (*Summary, error) {
	r := binReader{b: p}
	s := &Summary{}
	n := r.u32()
	if !r.fits(n, sparseSize) {
		return nil, fmt.Errorf("summary: %d sparse entries do not fit", n)
	}
	if want := (count + SparseInterval - 1) / SparseInterval; int(n) != want {
		return nil, fmt.Errorf("summary: %d sparse entries, want %d for %d events", n, want, count)
	}
	s.Sparse = make([]SparseEntry, n)
	for i := range s.Sparse {
		e := SparseEntry{Seq: r.u64(), Off: int64(r.u64()), Time: int64(r.u64())}
		if e.Off < HeaderSize || e.Off >= logicalEnd || (i > 0 && (e.Seq <= s.Sparse[i-1].Seq || e.Off <= s.Sparse[i-1].Off || e.Time < s.Sparse[i-1].Time)) {
			return nil, fmt.Errorf("summary: sparse entry %d (seq %d, offset %d) out of order or range", i, e.Seq, e.Off)
		}
		s.Sparse[i] = e
	}
	n = r.u32()
	if !r.fits(n, blkSize) {
		return nil, fmt.Errorf("summary: %d blocks do not fit", n)
	}
	s.blocks = make([]summaryBlock, n)
	for i := range s.blocks {
		b := summaryBlock{hash: r.u64(), off: int64(r.u64()), len: r.u32()}
		if b.off < recordsEnd || b.off > footerEnd || int64(b.len) > footerEnd-b.off || b.len < FrameHeaderSize || (i > 0 && b.hash < s.blocks[i-1].hash) {
			return nil, fmt.Errorf("summary: block %d at %d+%d out of order or range", i, b.off, b.len)
		}
		s.blocks[i] = b
	}
	s.NumStreams = int(r.u32())
	if want := (s.NumStreams + blockStride - 1) / blockStride; len(s.blocks) != want || s.NumStreams > count {
		return nil, fmt.Errorf("summary: %d streams in %d blocks and %d events", s.NumStreams, len(s.blocks), count)
	}
	bits := r.u32()
	if bits%8 != 0 || !r.fits(bits/8, 1) {
		return nil, fmt.Errorf("summary: bloom filter of %d bits does not fit", bits)
	}
	s.bloom = bloom(r.take(int(bits / 8)))
	if r.err != nil || len(r.b) != r.off {
		return nil, fmt.Errorf("summary: malformed (%d trailing bytes)", len(r.b)-r.off)
	}
	return s, nil
}

// MayContain reports whether the segment may hold events of the stream.
func (s *Summary) MayContain(stream string) bool { return s.bloom.mayContain(streamHash(stream)) }

// blockCandidates returns the blocks that may hold the entry of a stream
// with hash h, in order.
func (s *Summary) blockCandidates(h uint64) []summaryBlock {
	// Entries are sorted by hash, and a block's first hash is its smallest.
	// Entries of hash h lie in the last block whose first hash is < h, and
	// in the blocks whose first hash is == h.
	i := sort.Search(len(s.blocks), func(i int) bool { return s.blocks[i].hash >= h })
	j := i
	for j < len(s.blocks) && s.blocks[j].hash == h {
		j++
	}
	if i > 0 {
		i--
	}
	return s.blocks[i:j]
}

// StreamEntry is a stream's entry in a sealed segment's block.
type StreamEntry struct {
	FirstVersion uint64
	Count        uint32
	PostOff      int64
	PostLen      uint32
}

// findEntry looks for the stream in a block frame payload.
func findEntry(p []byte, h uint64, name string, recordsEnd, footerEnd int64) (found StreamEntry, ok bool, err error) {
	err = eachBlockEntry(p, recordsEnd, footerEnd, func(eh uint64, nm []byte, e StreamEntry) (bool, error) {
		if eh == h && string(nm) == name {
			found, ok = e, true
			return true, nil
		}
		return eh > h, nil // entries are in hash order: past it, it is absent
	})
	if err != nil || !ok {
		return StreamEntry{}, false, err
	}
	return found, true, nil
}

// eachBlockEntry decodes the entries of a stream block frame payload in
// order, checking each (hashes not decreasing, fields in range: postings
// within [recordsEnd, footerEnd]), and calls fn with each until fn says
// stop or fails. name aliases p.
func eachBlockEntry(p []byte, recordsEnd, footerEnd int64, fn func(hash uint64, name []byte, e StreamEntry) (stop bool, err error)) error {
	r := binReader{b: p}
	prev := uint64(0)
	for r.off < len(r.b) && r.err == nil {
		eh := r.u64()
		e := StreamEntry{FirstVersion: r.u64(), Count: r.u32(), PostOff: int64(r.u64()), PostLen: r.u32()}
		nl := int(r.u16())
		nm := r.take(nl)
		if r.err != nil {
			break
		}
		if eh < prev || e.FirstVersion == 0 || e.Count == 0 || nl == 0 || e.PostOff < recordsEnd || e.PostOff > footerEnd || int64(e.PostLen) > footerEnd-e.PostOff {
			return fmt.Errorf("stream block: entry %q malformed", nm)
		}
		prev = eh
		if stop, err := fn(eh, nm, e); stop || err != nil {
			return err
		}
	}
	if r.err != nil {
		return fmt.Errorf("stream block: %w", r.err)
	}
	return nil
}

// decodePostings decodes a postings frame payload holding count postings,
// each within [HeaderSize, recordsEnd).
func decodePostings(p []byte, count uint32, recordsEnd int64, dst []Posting) ([]Posting, error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n != uint64(count) || n > uint64(len(p)) {
		return nil, fmt.Errorf("postings: count %d, want %d", n, count)
	}
	p = p[k:]
	prev := int64(0)
	dst = slices.Grow(dst[:0], int(n))
	for i := range n {
		d, k1 := binary.Uvarint(p)
		if k1 <= 0 {
			return nil, fmt.Errorf("postings: entry %d malformed", i)
		}
		l, k2 := binary.Uvarint(p[k1:])
		if k2 <= 0 {
			return nil, fmt.Errorf("postings: entry %d malformed", i)
		}
		p = p[k1+k2:]
		off := prev + int64(d)
		if (i > 0 && d == 0) || d > uint64(recordsEnd) || off < HeaderSize || l < FrameHeaderSize || l > FrameHeaderSize+MaxFramePayload || off+int64(l) > recordsEnd {
			return nil, fmt.Errorf("postings: entry %d (offset %d, length %d) out of range", i, off, l)
		}
		dst = append(dst, Posting{Off: off, Len: uint32(l)})
		prev = off
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("postings: %d trailing bytes", len(p))
	}
	return dst, nil
}

// binReader reads little-endian fixed-size fields; after the first short
// read every call returns zero and err is set.
type binReader struct {
	b   []byte
	off int
	err error
}

func (r *binReader) take(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.b)-r.off {
		r.err = errShort
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *binReader) u16() uint16 {
	if p := r.take(2); p != nil {
		return le.Uint16(p)
	}
	return 0
}

func (r *binReader) u32() uint32 {
	if p := r.take(4); p != nil {
		return le.Uint32(p)
	}
	return 0
}

func (r *binReader) u64() uint64 {
	if p := r.take(8); p != nil {
		return le.Uint64(p)
	}
	return 0
}

// fits reports whether n items of size bytes each fit in what is left.
func (r *binReader) fits(n uint32, size int) bool {
	return r.err == nil && uint64(n)*uint64(size) <= uint64(len(r.b)-r.off)
}

// bloom is a bloom filter over stream hashes (double hashing).
type bloom []byte

func newBloom(keys int) bloom {
	bits := max(64, keys*bloomBitsPerKey)
	return make(bloom, (bits+7)/8)
}

func (b bloom) add(h uint64) {
	m := uint64(len(b) * 8)
	h1, h2 := h&0xffffffff, h>>32|1
	for i := range uint64(bloomProbes) {
		bit := (h1 + i*h2) % m
		b[bit/8] |= 1 << (bit % 8)
	}
}

func (b bloom) mayContain(h uint64) bool {
	m := uint64(len(b) * 8)
	if m == 0 {
		return false
	}
	h1, h2 := h&0xffffffff, h>>32|1
	for i := range uint64(bloomProbes) {
		bit := (h1 + i*h2) % m
		if b[bit/8]&(1<<(bit%8)) == 0 {
			return false
		}
	}
	return true
}

// FirstSeq returns the seq of the segment's first event.
func (x *Index) FirstSeq() uint64 { return x.BaseSeq }
