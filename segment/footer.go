package segment

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"sort"
)

// Footer layout (see doc.go): the frames after RecordsEnd are
//
//	postings frame × streams   (uvarint count, then count × (Δoffset, length) uvarints)
//	block frame × ⌈streams/16⌉ (entries sorted by (hash, name))
//	ID table frame             (version 3, optional: u32 count, then count ×
//	                            (IDHash u64, seq u64) sorted by (hash, seq))
//	summary frame              (sparse index, block directory, bloom filter;
//	                            version 3: ID table offset u64, length u32)
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
//
// A header of version 3 or later gets the ID table (when every event
// carrying an ID was indexed and the table fits in a frame).
func (x *Index) AppendFooterAt(dst []byte, header [HeaderSize]byte, recordsEnd, footerStart int64) ([]byte, Trailer) {
	return x.appendFooter(dst, header, recordsEnd, footerStart, le.Uint16(header[hdrVersionOff:]), true, 1)
}

// appendFooter writes the footer of format version (3 and later: with
// the ID table reference in the summary, and, if ids, the table; 4 and
// later: with the name blocks and their directory).
//
// It is on the writer's path (every checkpoint and every seal encodes the
// whole index), so it plans first (the streams sorted by hash and by name
// with radix sorts, the ID table sorted, every frame's size computed),
// grows dst once to the footer's size, and then encodes each frame
// straight into dst. Its output is byte for byte that of the reference
// encoder in footer_ref_test.go (the differential tests check it). It
// does not modify x.
//
// When dst has not the room for the footer, it is grown to headroom times
// the footer's size (see AppendCheckpoint).
func (x *Index) appendFooter(dst []byte, header [HeaderSize]byte, recordsEnd, footerStart int64, version uint16, ids bool, headroom int) ([]byte, Trailer) {
	if x.base != nil {
		panic("evlog/segment: AppendFooter of an index with a checkpoint under it (Materialize it first)")
	}
	pl := x.planFooter(version, ids)
	start := len(dst)
	if cap(dst)-len(dst) < pl.size {
		dst = slices.Grow(dst, max(headroom, 1)*pl.size)
	}
	off := func() int64 { return footerStart + int64(len(dst)-start) }
	ss := pl.streams

	// Postings frames, in hash order.
	for i := range ss {
		f := len(dst)
		dst = append(dst, zeroFrameHeader[:]...)
		dst = appendPostings(dst, ss[i].sp.Posts, int(ss[i].postLen)-FrameHeaderSize)
		dst = endFrame(dst, f, KindPostings)
		ss[i].postOff, ss[i].postLen = footerStart+int64(f-start), uint32(len(dst)-f)
	}

	blocks := make([]summaryBlock, 0, (len(ss)+blockStride-1)/blockStride)
	for lo := 0; lo < len(ss); lo += blockStride {
		hi := min(lo+blockStride, len(ss))
		f := len(dst)
		dst = append(dst, zeroFrameHeader[:]...)
		for i := lo; i < hi; i++ {
			dst = appendBlockEntry(dst, ss[i].hash, ss[i].name, ss[i].sp, ss[i].postOff, ss[i].postLen)
		}
		dst = endFrame(dst, f, KindBlock)
		blocks = append(blocks, summaryBlock{hash: ss[lo].hash, off: footerStart + int64(f-start), len: uint32(len(dst) - f)})
	}

	// Version 4: the same entries again, in name order, in blocks of
	// nameStride, so that a name prefix is found by binary search over the
	// directory's first names.
	var names []nameRef
	if pl.byName != nil {
		names = make([]nameRef, 0, (len(ss)+nameStride-1)/nameStride)
		for lo := 0; lo < len(pl.byName); lo += nameStride {
			hi := min(lo+nameStride, len(pl.byName))
			f := len(dst)
			dst = append(dst, zeroFrameHeader[:]...)
			for _, k := range pl.byName[lo:hi] {
				s := &ss[k.val]
				dst = appendBlockEntry(dst, s.hash, s.name, s.sp, s.postOff, s.postLen)
			}
			dst = endFrame(dst, f, KindNames)
			names = append(names, nameRef{first: ss[pl.byName[lo].val].name, off: footerStart + int64(f-start), len: uint32(len(dst) - f)})
		}
	}

	var idsOff int64
	var idsLen uint32
	if pl.ids != nil {
		f := len(dst)
		dst = append(dst, zeroFrameHeader[:]...)
		dst = le.AppendUint32(dst, uint32(len(pl.ids)))
		for _, e := range pl.ids {
			dst = le.AppendUint64(dst, e.key)
			dst = le.AppendUint64(dst, e.val)
		}
		dst = endFrame(dst, f, KindIDs)
		idsOff, idsLen = footerStart+int64(f-start), uint32(len(dst)-f)
	}

	t := Trailer{
		RecordsEnd: recordsEnd,
		SummaryOff: off(),
		Count:      uint32(x.Count),
		LastSeq:    x.LastSeq,
		FirstTime:  x.FirstTime,
		LastTime:   x.LastTime,
		NewStreams: uint32(x.NewStreams),
	}
	f := len(dst)
	dst = append(dst, zeroFrameHeader[:]...)
	dst = le.AppendUint32(dst, uint32(len(x.sparse)))
	for _, s := range x.sparse {
		dst = le.AppendUint64(dst, s.Seq)
		dst = le.AppendUint64(dst, uint64(s.Off))
		dst = le.AppendUint64(dst, uint64(s.Time))
	}
	dst = le.AppendUint32(dst, uint32(len(blocks)))
	for _, b := range blocks {
		dst = le.AppendUint64(dst, b.hash)
		dst = le.AppendUint64(dst, uint64(b.off))
		dst = le.AppendUint32(dst, b.len)
	}
	dst = le.AppendUint32(dst, uint32(len(ss)))
	nb := bloomBytes(len(ss))
	dst = le.AppendUint32(dst, uint32(nb*8))
	dst = append(dst, make([]byte, nb)...)
	bl := bloom(dst[len(dst)-nb:])
	clear(bl) // dst may be a reused buffer
	for i := range ss {
		bl.add(ss[i].hash)
	}
	if version >= 3 {
		dst = le.AppendUint64(dst, uint64(idsOff))
		dst = le.AppendUint32(dst, idsLen)
	}
	if version >= 4 {
		dst = le.AppendUint32(dst, uint32(len(names)))
		for _, nb := range names {
			dst = le.AppendUint64(dst, uint64(nb.off))
			dst = le.AppendUint32(dst, nb.len)
			dst = le.AppendUint16(dst, uint16(len(nb.first)))
			dst = append(dst, nb.first...)
		}
	}
	dst = endFrame(dst, f, KindSummary)
	t.SummaryLen = uint32(len(dst) - f)
	tb := t.Encode(header)
	return append(dst, tb[:]...), t
}

var zeroFrameHeader [FrameHeaderSize]byte

// footerStream is a stream as the footer encoder lays it out.
type footerStream struct {
	hash    uint64
	name    string
	sp      *StreamPostings
	postOff int64  // the postings frame's offset (set as it is written)
	postLen uint32 // and size, header included
}

// footerPlan is what appendFooter computes before it writes a byte.
type footerPlan struct {
	streams []footerStream // in (hash, name) order
	byName  []keyed        // version 4: val indexes streams, in name order
	ids     []keyed        // the ID table (key: IDHash, val: seq), sorted; nil: none
	size    int            // the footer's size in bytes, trailer included
}

// planFooter orders the index's streams and IDs for a footer of format
// version (ids: with the ID table, if the index has one that fits) and
// computes the footer's exact size. (Sizing the postings takes a pass over
// them, but a bound would have the writer touch, and so fault in, pages it
// never uses: that costs more.)
func (x *Index) planFooter(version uint16, ids bool) footerPlan {
	n := len(x.streams)
	var pl footerPlan
	// The streams in (hash, name) order: a radix sort of (hash, index)
	// pairs; equal hashes (rare) are ordered by name. The one pass over
	// the map also sums the sizes and finds the prefix all names share.
	type nameSP struct {
		name string
		sp   *StreamPostings
		post uint32 // the postings frame's size
	}
	unsorted := make([]nameSP, 0, n)
	keys := make([]keyed, 0, n)
	size := 0
	entries := 0 // the size of all stream entries
	var first string
	skip := 0 // the length of the prefix all names share
	for name, sp := range x.streams {
		keys = append(keys, keyed{key: streamHash(name), val: uint64(len(unsorted))})
		post := FrameHeaderSize + postingsSize(sp.Posts)
		unsorted = append(unsorted, nameSP{name: name, sp: sp, post: uint32(post)})
		size += post
		entries += entFixedSize + len(name)
		if len(unsorted) == 1 {
			first, skip = name, len(name)
		} else {
			skip = commonPrefixLen(first[:skip], name)
		}
	}
	// sortKeyed sorts into either buffer; spare is then the other.
	tmp := make([]keyed, n)
	sorted := sortKeyed(keys, tmp, func(a, b keyed) int { return cmp.Compare(unsorted[a.val].name, unsorted[b.val].name) })
	spare := tmp
	if n > 0 && &sorted[0] == &tmp[0] {
		spare = keys
	}
	keys = sorted
	ss := make([]footerStream, n)
	for i, k := range keys {
		u := &unsorted[k.val]
		ss[i] = footerStream{hash: k.key, name: u.name, sp: u.sp, postLen: u.post}
	}
	pl.streams = ss
	nblocks := (n + blockStride - 1) / blockStride
	size += nblocks*FrameHeaderSize + entries

	// The name order: a radix sort of the 8 bytes of each name past the
	// prefix all names share; equal keys are ordered by the whole name.
	if version >= 4 {
		by := keys[:0] // keys is spent; reuse it
		for i := range ss {
			by = append(by, keyed{key: nameKey(ss[i].name, skip), val: uint64(i)})
		}
		pl.byName = sortKeyed(by, spare, func(a, b keyed) int { return cmp.Compare(ss[a.val].name, ss[b.val].name) })
		if pl.byName == nil {
			pl.byName = []keyed{} // version 4 even without streams
		}
		size += (n+nameStride-1)/nameStride*FrameHeaderSize + entries
		for lo := 0; lo < n; lo += nameStride {
			size += nbFixedSize + len(ss[pl.byName[lo].val].name)
		}
		size += 4
	}

	// The ID table, sorted by (hash, seq): the list is in seq order and
	// the radix sort stable, but equal hashes are ordered by seq anyway.
	if version >= 3 && ids && !x.idsLost && x.ids.len() > 0 && 4+x.ids.len()*idEntrySize <= MaxFramePayload {
		all := make([]keyed, 0, x.ids.len())
		for _, c := range x.ids.chunks {
			for _, e := range c {
				all = append(all, keyed{key: e.Hash, val: e.Seq})
			}
		}
		pl.ids = sortKeyed(all, make([]keyed, len(all)), func(a, b keyed) int { return cmp.Compare(a.val, b.val) })
		size += FrameHeaderSize + 4 + len(all)*idEntrySize
	}

	size += FrameHeaderSize + 4 + len(x.sparse)*sparseSize + 4 + nblocks*blkSize + 4 + 4 + bloomBytes(n)
	if version >= 3 {
		size += 12
	}
	pl.size = size + TrailerSize
	return pl
}

// postingsSize returns the size of the postings frame payload of posts.
func postingsSize(posts []Posting) int {
	n := uvarintLen(uint64(len(posts)))
	prev := int64(0)
	for _, po := range posts {
		n += uvarintLen(uint64(po.Off-prev)) + uvarintLen(uint64(po.Len))
		prev = po.Off
	}
	return n
}

// maxPosting is the size of the longest posting: two uvarints, of an
// int64 delta and a uint32 length.
const maxPosting = binary.MaxVarintLen64 + 5

// appendPostings appends the postings frame payload of posts, of size
// bytes (postingsSize): their count, then each posting's offset delta and
// length, as uvarints. A segment's worth of postings is most of a
// checkpoint's bytes, so the uvarints of up to three bytes (nearly all
// deltas and lengths) are written inline, into room reserved up front
// (with maxPosting bytes to spare, which the footer's later frames have
// reserved in dst already). Should size be short, it finishes with
// appends.
func appendPostings(dst []byte, posts []Posting, size int) []byte {
	n := len(dst)
	room := size + maxPosting
	dst = slices.Grow(dst, room)[:n+room]
	b := dst[n:]
	i := binary.PutUvarint(b, uint64(len(posts)))
	prev := int64(0)
	for k, po := range posts {
		if len(b)-i < maxPosting {
			// Out of room (size was short): append the rest.
			dst = dst[:n+i]
			for _, po := range posts[k:] {
				dst = binary.AppendUvarint(dst, uint64(po.Off-prev))
				dst = binary.AppendUvarint(dst, uint64(po.Len))
				prev = po.Off
			}
			return dst
		}
		// Inline (a call per uvarint costs as much as writing it): the
		// offset delta, usually of 1 to 3 bytes, then the length,
		// usually of 1 or 2.
		switch d := uint64(po.Off - prev); {
		case d < 1<<7:
			b[i] = byte(d)
			i++
		case d < 1<<14:
			_ = b[i+1]
			b[i] = byte(d) | 0x80
			b[i+1] = byte(d >> 7)
			i += 2
		case d < 1<<21:
			_ = b[i+2]
			b[i] = byte(d) | 0x80
			b[i+1] = byte(d>>7) | 0x80
			b[i+2] = byte(d >> 14)
			i += 3
		default:
			i += binary.PutUvarint(b[i:], d)
		}
		switch l := uint64(po.Len); {
		case l < 1<<7:
			b[i] = byte(l)
			i++
		case l < 1<<14:
			_ = b[i+1]
			b[i] = byte(l) | 0x80
			b[i+1] = byte(l >> 7)
			i += 2
		default:
			i += binary.PutUvarint(b[i:], l)
		}
		prev = po.Off
	}
	return dst[:n+i]
}

// uvarintLen returns the size of v as a uvarint.
func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// appendBlockEntry appends a stream block entry (the layout of both stream and
// name blocks) to p.
func appendBlockEntry(p []byte, hash uint64, name string, sp *StreamPostings, postOff int64, postLen uint32) []byte {
	var e [entFixedSize]byte
	le.PutUint64(e[entHashOff:], hash)
	le.PutUint64(e[entFirstVerOff:], sp.FirstVersion)
	le.PutUint32(e[entCountOff:], uint32(len(sp.Posts)))
	le.PutUint64(e[entPostOffOff:], uint64(postOff))
	le.PutUint32(e[entPostLenOff:], postLen)
	le.PutUint16(e[entNameLenOff:], uint16(len(name)))
	return append(append(p, e[:]...), name...)
}

// nameRef is a name block's entry in the summary's name-block directory.
type nameRef struct {
	first string // the name of the block's first entry
	off   int64
	len   uint32
}

// Summary is the decoded summary frame of a sealed segment: what a reader
// keeps in memory to seek by seq or time and to find a stream's entry.
type Summary struct {
	Sparse     []SparseEntry
	NumStreams int
	blocks     []summaryBlock
	bloom      bloom
	// idsOff and idsLen locate the ID table frame (version 3; 0: none).
	idsOff int64
	idsLen uint32
	// names is the name-block directory (version 4), in name order;
	// hasNames tells a version 4 summary (even of no streams) from an
	// older one.
	names    []nameRef
	hasNames bool
}

// HasIDTable reports whether the segment's footer holds an ID table.
func (s *Summary) HasIDTable() bool { return s.idsLen != 0 }

type summaryBlock struct {
	hash uint64
	off  int64
	len  uint32
}

// DecodeSummary decodes a summary frame payload. footerStart and footerEnd
// bound the offsets it may reference; count is the segment's event count.
// The summary is of format version 2 (or 1).
func DecodeSummary(p []byte, recordsEnd, footerEnd int64, count int) (*Summary, error) {
	return decodeSummary(p, recordsEnd, recordsEnd, footerEnd, count, 2)
}

// decodeSummary decodes a summary whose sparse offsets lie below
// logicalEnd and whose block frames lie in [recordsEnd, footerEnd).
func decodeSummary(p []byte, logicalEnd, recordsEnd, footerEnd int64, count int, version uint16) (*Summary, error) {
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
	if version >= 3 {
		s.idsOff, s.idsLen = int64(r.u64()), r.u32()
		if s.idsOff == 0 && s.idsLen == 0 {
			// no ID table
		} else if s.idsOff < recordsEnd || s.idsOff > footerEnd || int64(s.idsLen) > footerEnd-s.idsOff || s.idsLen < FrameHeaderSize+4 || int64(s.idsLen) > FrameHeaderSize+MaxFramePayload {
			return nil, fmt.Errorf("summary: ID table at %d+%d out of range", s.idsOff, s.idsLen)
		}
	}
	if version >= 4 {
		n = r.u32()
		if want := (s.NumStreams + nameStride - 1) / nameStride; int64(n) != int64(want) || !r.fits(n, nbFixedSize+1) {
			return nil, fmt.Errorf("summary: %d name blocks for %d streams", n, s.NumStreams)
		}
		s.names, s.hasNames = make([]nameRef, n), true
		for i := range s.names {
			b := nameRef{off: int64(r.u64()), len: r.u32()}
			first := r.take(int(r.u16()))
			if r.err != nil {
				break
			}
			if len(first) == 0 || b.off < recordsEnd || b.off > footerEnd || int64(b.len) > footerEnd-b.off || b.len < FrameHeaderSize ||
				(i > 0 && string(first) <= s.names[i-1].first) {
				return nil, fmt.Errorf("summary: name block %d at %d+%d out of order or range", i, b.off, b.len)
			}
			b.first = string(first)
			s.names[i] = b
		}
	}
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

// lookupEntry finds a stream's entry through a summary (of a sealed
// segment or a checkpoint): the bloom filter answers most misses from
// memory; otherwise it reads, with read, the stream blocks whose hash
// range may hold it. A malformed block is reported by corrupt at the
// block's offset.
func lookupEntry(sum *Summary, stream string, read func(summaryBlock) ([]byte, error), corrupt func(off int64, err error) error, recordsEnd, footerEnd int64) (StreamEntry, bool, error) {
	if !sum.MayContain(stream) {
		return StreamEntry{}, false, nil
	}
	h := streamHash(stream)
	for _, b := range sum.blockCandidates(h) {
		p, err := read(b)
		if err != nil {
			return StreamEntry{}, false, err
		}
		e, ok, err := findEntry(p, h, stream, recordsEnd, footerEnd)
		if err != nil {
			return StreamEntry{}, false, corrupt(b.off, err)
		}
		if ok {
			return e, true, nil
		}
	}
	return StreamEntry{}, false, nil
}

// findEntry looks for the stream in a block frame payload.
func findEntry(p []byte, h uint64, name string, recordsEnd, footerEnd int64) (found StreamEntry, ok bool, err error) {
	err = eachBlockEntry(p, recordsEnd, footerEnd, false, func(eh uint64, nm []byte, e StreamEntry) (bool, error) {
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

// eachBlockEntry decodes the entries of a stream block frame payload (or,
// byName, of a name block: version 4) in order, checking each (hashes not
// decreasing, or names increasing; fields in range: postings within
// [recordsEnd, footerEnd]), and calls fn with each until fn says stop or
// fails. name aliases p.
func eachBlockEntry(p []byte, recordsEnd, footerEnd int64, byName bool, fn func(hash uint64, name []byte, e StreamEntry) (stop bool, err error)) error {
	r := binReader{b: p}
	prev := uint64(0)
	var prevName []byte
	for r.off < len(r.b) && r.err == nil {
		eh := r.u64()
		e := StreamEntry{FirstVersion: r.u64(), Count: r.u32(), PostOff: int64(r.u64()), PostLen: r.u32()}
		nl := int(r.u16())
		nm := r.take(nl)
		if r.err != nil {
			break
		}
		if e.FirstVersion == 0 || e.Count == 0 || nl == 0 || e.PostOff < recordsEnd || e.PostOff > footerEnd || int64(e.PostLen) > footerEnd-e.PostOff {
			return fmt.Errorf("stream block: entry %q malformed", nm)
		}
		if byName && prevName != nil && string(nm) <= string(prevName) {
			return fmt.Errorf("name block: entry %q out of order", nm)
		}
		if !byName && eh < prev {
			return fmt.Errorf("stream block: entry %q out of order", nm)
		}
		prev, prevName = eh, nm
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

// decodeIDs decodes an ID table frame payload of a segment holding count
// events with seqs in [first, last]: entries sorted by (hash, seq), each
// seq in range, at most count of them.
func decodeIDs(p []byte, first, last uint64, count int, dst []IDEntry) ([]IDEntry, error) {
	r := binReader{b: p}
	n := r.u32()
	if !r.fits(n, idEntrySize) || uint64(n)*idEntrySize != uint64(len(p)-r.off) || int64(n) > int64(count) {
		return nil, fmt.Errorf("ID table: %d entries in %d bytes for %d events", n, len(p), count)
	}
	dst = slices.Grow(dst[:0], int(n))
	for i := range int(n) {
		e := IDEntry{Hash: r.u64(), Seq: r.u64()}
		if e.Seq < first || e.Seq > last {
			return nil, fmt.Errorf("ID table: entry %d has seq %d, outside %d..%d", i, e.Seq, first, last)
		}
		if i > 0 {
			if pe := dst[i-1]; e.Hash < pe.Hash || (e.Hash == pe.Hash && e.Seq <= pe.Seq) {
				return nil, fmt.Errorf("ID table: entry %d out of order", i)
			}
		}
		dst = append(dst, e)
	}
	return dst, nil
}
