package segment

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// Salvage of a compressed segment whose block directory cannot be used: its
// trailer (which locates the zmap) or its zmap frame is damaged or missing.
// Every zblock frame carries its own checksum and decompresses on its own,
// and the blocks lie back to back from HeaderSize, so Salvage finds them
// without the map: it walks the frames from HeaderSize, checking each
// block's frame and decompressing it (capped like every block read), and
// after bytes that are not a valid block it looks, byte by byte, for the
// next one. The blocks found give a logical view of the records like the
// zmap's, in which each damaged region is one block that cannot be read;
// Salvage then reads the frames of that view as usual, so only the frames
// with bytes in damage are lost.
//
// Where the walk ends:
//
//   - at the trailer's records end, when the trailer is valid (the zmap
//     behind it is damaged);
//   - otherwise at the first valid footer frame (the zmap, or a later one
//     when the zmap is damaged) or at the end of the file.
//
// A valid zmap frame right where the walk ends, consistent with its own
// offset, is the segment's block directory after all and is used (a
// damaged trailer alone loses nothing). Without it, the logical size of a
// damaged region is not known: it is taken to be one block's record bytes
// (those of the largest intact block), so the logical offsets Salvage
// reports after it are estimates. And without it or a valid trailer,
// nothing proves that the blocks found are all the segment held: Salvage
// reports a last gap, of length 0, at the logical end of what it found.

// salvageScanned salvages the compressed segment of size bytes in ra
// without its block directory; t is its trailer when sealed (valid); why
// says why the directory cannot be used. claimedEnd, when > 0, is the
// records end an unverified trailer states (one whose checksum cannot be
// checked because it covers a damaged header): it never bounds the walk,
// but blocks found from HeaderSize that end exactly there are all the
// segment held (two independent records agree).
func salvageScanned(ctx context.Context, ra io.ReaderAt, size int64, t Trailer, sealed bool, claimedEnd int64, why string, opt *SalvageOptions) error {
	v, err := scanView(ctx, ra, opt.Name, size, t, sealed)
	if err != nil {
		return err
	}
	if !v.complete && claimedEnd > 0 && v.stop == claimedEnd {
		v.complete = true // damage after it is the footer's, not records'
	}
	s := &salvager{ra: v.zr, opt: opt, z: v.zr.z}
	if err := s.frames(ctx, HeaderSize, v.zr.z.end, v.zr.z.end); err != nil {
		return err
	}
	if v.complete {
		return nil
	}
	return opt.gap(&Gap{Offset: v.zr.z.end, Bad: v.zr.z.end, Reason: fmt.Sprintf(
		"%s%s; the valid compressed blocks end at file offset %d and nothing proves they are all the segment held: any records after them are lost",
		why, v.damage, v.stop)})
}

// scannedView is the logical view of a compressed segment's records
// found by scanning for its blocks.
type scannedView struct {
	zr       *zscanReader
	stop     int64  // the file offset where the blocks found end
	complete bool   // a valid trailer or zmap proves the blocks found are all
	damage   string // damage after the last block found ("" if none)
}

// scanView finds the blocks of the compressed segment of size bytes in
// ra (see above); t is its trailer when sealed (valid).
func scanView(ctx context.Context, ra io.ReaderAt, name string, size int64, t Trailer, sealed bool) (*scannedView, error) {
	bound := size
	if sealed {
		bound = t.RecordsEnd
	}
	found, stop, err := scanZBlocks(ctx, ra, bound)
	if err != nil {
		return nil, err
	}
	v := &scannedView{zr: &zscanReader{ra: ra, name: name}, stop: stop, complete: sealed && stop == t.RecordsEnd}
	if z, ok := zmapAt(ra, stop, size); ok {
		v.zr.z, v.complete = z, true
		return v, nil
	}
	if n := len(found); !v.complete && n > 0 && found[n-1].bad != "" {
		// Damage with no block after it: where the records end is not
		// known, so it is part of the last gap, not a lost block.
		last := found[n-1]
		v.damage = fmt.Sprintf("; at file offset %d: %s", last.phys, last.bad)
		found, v.stop = found[:n-1], last.phys
	}
	v.zr.z, v.zr.bad = zmapOf(found)
	return v, nil
}

// zfound is a block, or a damaged region, found by scanZBlocks.
type zfound struct {
	phys, plen int64
	n          int64  // record bytes (0 for a damaged region)
	bad        string // why the region is not a block ("": a block)
}

// scanZBlocks walks the zblock frames of a compressed segment from
// HeaderSize up to bound, as described above, and returns them with the
// damaged regions between them, and the physical offset where the walk
// ended.
func scanZBlocks(ctx context.Context, ra io.ReaderAt, bound int64) ([]zfound, int64, error) {
	var (
		r     Reader
		found []zfound
	)
	r.Reset(ra, HeaderSize, bound)
	q := int64(HeaderSize)
	for q < bound {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		b, footer, err := zblockAt(&r, q)
		if err != nil {
			return nil, 0, err
		}
		if footer {
			break
		}
		if b.bad == "" {
			found = append(found, b)
			q += b.plen
			continue
		}
		next, err := resyncZBlock(ctx, &r, q+1, bound)
		if err != nil {
			return nil, 0, err
		}
		b.plen = next - q
		found = append(found, b)
		q = next
	}
	return found, q, nil
}

// zblockAt reads the frame at q: a block that decompresses (bad == ""),
// a footer frame (footer: the records end at q), or anything else (bad
// says why it is not a block). Errors are ra's.
func zblockAt(r *Reader, q int64) (b zfound, footer bool, err error) {
	b.phys = q
	r.seek(q)
	f, err := r.Next()
	if fe, ok := errors.AsType[*FrameError](err); ok {
		b.bad = "zblock frame: " + fe.Reason
		return b, false, nil
	}
	if err != nil {
		return b, false, err
	}
	switch f.Kind {
	case KindZBlock:
		out, err := decompressZBlock(f.Payload, -1)
		if err != nil {
			b.bad = "compressed block: " + err.Error()
			return b, false, nil
		}
		b.plen, b.n = f.Size(), int64(len(out))
		return b, false, nil
	case KindZMap, KindPostings, KindBlock, KindNames, KindIDs, KindSummary:
		return b, true, nil
	}
	b.bad = fmt.Sprintf("%s frame among the compressed blocks", f.Kind)
	return b, false, nil
}

// resyncZBlock returns the first offset in [from, bound) where a block
// that decompresses or a footer frame starts, or bound. A plausible frame
// header (kind and length) is checked before the frame itself.
func resyncZBlock(ctx context.Context, r *Reader, from, bound int64) (int64, error) {
	for q := from; q+FrameHeaderSize <= bound; q++ {
		if (q-from)%(1<<20) == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		r.seek(q)
		h, err := r.window(FrameHeaderSize)
		if err != nil {
			return 0, err
		}
		switch Kind(h[frameKindOff]) {
		case KindZBlock, KindZMap, KindPostings, KindBlock, KindNames, KindIDs, KindSummary:
		default:
			continue
		}
		if n := int64(le.Uint32(h[frameLenOff:])); n == 0 || n > bound-q-FrameHeaderSize || n > MaxFramePayload {
			continue
		}
		b, footer, err := zblockAt(r, q)
		if err != nil {
			return 0, err
		}
		if footer || b.bad == "" {
			return q, nil
		}
	}
	return bound, nil
}

// zmapAt returns the zmap frame at off if it is valid and describes
// blocks ending exactly there.
func zmapAt(ra io.ReaderAt, off, size int64) (*zmap, bool) {
	if off >= size {
		return nil, false
	}
	r := NewReader(ra, off, size)
	f, err := r.Next()
	if err != nil || f.Kind != KindZMap {
		return nil, false
	}
	z, err := decodeZMap(f.Payload, off)
	return z, err == nil
}

// zmapOf makes a block directory of the blocks and damaged regions found
// (a damaged region counts as a block of the largest intact block's
// record bytes), with the reasons of the damaged ones by index.
func zmapOf(found []zfound) (*zmap, map[int]string) {
	blockLen := int64(0)
	for _, b := range found {
		blockLen = max(blockLen, b.n)
	}
	if blockLen == 0 {
		blockLen = ZBlockSize
	}
	z := &zmap{}
	bad := map[int]string{}
	logical := int64(HeaderSize)
	for i, b := range found {
		z.starts = append(z.starts, logical)
		z.phys = append(z.phys, b.phys)
		n := b.n
		if b.bad != "" {
			bad[i], n = b.bad, blockLen
			z.plen = append(z.plen, 0) // never read
		} else {
			z.plen = append(z.plen, uint32(b.plen))
		}
		logical += n
	}
	z.end = logical
	return z, bad
}

// decompressZBlock decompresses a zblock frame's payload, with the
// decoder's window and output capped; the block must hold 1 to MaxZBlock
// record bytes, exactly want when want >= 0.
func decompressZBlock(p []byte, want int64) ([]byte, error) {
	var dst []byte
	if want > 0 && want <= MaxZBlock {
		dst = make([]byte, 0, want)
	}
	d := zdecoders.Get().(*zstd.Decoder)
	out, err := d.DecodeAll(p, dst)
	zdecoders.Put(d)
	switch {
	case err != nil:
		return nil, err
	case len(out) == 0 || len(out) > MaxZBlock:
		return nil, fmt.Errorf("holds %d record bytes (1 to %d allowed)", len(out), MaxZBlock)
	case want >= 0 && int64(len(out)) != want:
		return nil, fmt.Errorf("holds %d record bytes, the block map says %d", len(out), want)
	}
	return out, nil
}

// zscanReader is the logical view of a compressed segment's records
// through a block directory found by Salvage (not the zReader of an open
// Segment). A block that cannot be read is corruption naming its frame's
// file offset. It keeps the last few blocks it decompressed.
type zscanReader struct {
	ra    io.ReaderAt
	name  string
	z     *zmap
	bad   map[int]string // damaged regions found by the scan
	cache [4]struct {
		i int
		b []byte
	}
	next int // cache slot to reuse next
}

func (r *zscanReader) block(i int) ([]byte, error) {
	if reason, ok := r.bad[i]; ok {
		return nil, &CorruptError{File: r.name, Offset: r.z.phys[i], Reason: reason}
	}
	for _, c := range r.cache {
		if c.b != nil && c.i == i {
			return c.b, nil
		}
	}
	p, err := readFrameAt(r.ra, r.name, r.z.phys[i], r.z.plen[i], KindZBlock, nil)
	if err != nil {
		return nil, err
	}
	want := r.z.end - r.z.starts[i]
	if i+1 < len(r.z.starts) {
		want = r.z.starts[i+1] - r.z.starts[i]
	}
	out, err := decompressZBlock(p, want)
	if err != nil {
		return nil, &CorruptError{File: r.name, Offset: r.z.phys[i], Reason: "compressed block: " + err.Error()}
	}
	r.cache[r.next].i, r.cache[r.next].b = i, out
	r.next = (r.next + 1) % len(r.cache)
	return out, nil
}

// ReadAt reads logical record bytes.
func (r *zscanReader) ReadAt(p []byte, off int64) (int, error) {
	if off < HeaderSize {
		return 0, errors.New("evlog/segment: read before the records")
	}
	return r.z.readAt(p, off, r.block)
}

// headerEvidence is what a segment file whose header does not verify
// shows about how its records are stored (see headerless).
type headerEvidence struct {
	compressed bool
	// t is the trailer, with its records end at a valid zmap frame, when
	// sealed; claimedEnd the records end an unverified trailer states.
	t          Trailer
	sealed     bool
	claimedEnd int64
	// why is the evidence when compressed; otherwise, when not "", why it
	// cannot be told whether the segment is compressed.
	why string
}

// headerless decides, for the segment of size bytes in ra whose header
// does not verify (so its compressed flag cannot be trusted), whether it
// is compressed, from what the file itself proves. The first frame at
// HeaderSize is written by the writer, never by a payload:
//
//   - a zblock frame there that checksums and decompresses: compressed;
//   - a valid event, commit, mark or footer frame there: not compressed;
//   - otherwise (damage at HeaderSize), a valid zmap frame placing blocks
//     contiguously from HeaderSize up to itself, found at the records end
//     the trailer states or where the blocks found by scanning end:
//     compressed;
//   - otherwise, if the scan finds valid compressed blocks further on,
//     the evidence is ambiguous (why says so; a payload may hold bytes
//     shaped like a block, and frames may lie verbatim inside a block):
//     the records are one gap;
//   - otherwise not compressed.
//
// The trailer's checksum covers the header, so with a damaged header it
// cannot be checked: its records end is used only where a valid zmap
// frame confirms it (bounding the walk) or where the blocks found end
// (claimedEnd). Errors are ra's or ctx's.
func headerless(ctx context.Context, ra io.ReaderAt, size int64) (headerEvidence, error) {
	var e headerEvidence
	if size <= HeaderSize {
		return e, nil
	}
	if size >= HeaderSize+TrailerSize {
		var tb [TrailerSize]byte
		if err := readFull(ra, tb[:], size-TrailerSize); err != nil {
			return e, err
		}
		if string(tb[trlMagicOff:trlMagicOff+len(trailerMagic)]) == trailerMagic {
			if end := int64(le.Uint64(tb[trlRecordsEndOff:])); end > HeaderSize && end <= size-TrailerSize {
				e.claimedEnd = end
			}
		}
	}
	var r Reader
	r.Reset(ra, HeaderSize, size)
	r.seek(HeaderSize)
	f, err := r.Next()
	first := ""
	if fe, ok := errors.AsType[*FrameError](err); ok {
		first = fe.Reason
	} else if err != nil {
		return e, err
	}
	if first == "" {
		switch f.Kind {
		case KindEvent, KindCommit, KindMark, KindPostings, KindBlock, KindNames, KindIDs, KindSummary, KindZMap:
			return e, nil // read on frame by frame, as an uncompressed segment
		case KindZBlock:
			b, _, err := zblockAt(&r, HeaderSize)
			if err != nil {
				return e, err
			}
			if b.bad == "" {
				e.compressed, e.why = true, fmt.Sprintf("a valid compressed block at file offset %d", HeaderSize)
				return e, nil
			}
			first = b.bad
		default:
			first = fmt.Sprintf("%s frame", f.Kind)
		}
	}
	// Damage at HeaderSize: a block map proves the segment compressed.
	if e.claimedEnd > 0 {
		if _, ok := zmapAt(ra, e.claimedEnd, size); ok {
			e.compressed, e.sealed, e.t.RecordsEnd = true, true, e.claimedEnd
			e.why = fmt.Sprintf("a valid block map at file offset %d, where the trailer says the records end", e.claimedEnd)
			return e, nil
		}
	}
	found, stop, err := scanZBlocks(ctx, ra, size)
	if err != nil {
		return e, err
	}
	intact, at := 0, int64(-1)
	for _, b := range found {
		if b.bad == "" {
			if intact++; at < 0 {
				at = b.phys
			}
		}
	}
	if intact == 0 {
		return e, nil
	}
	if _, ok := zmapAt(ra, stop, size); ok {
		e.compressed, e.sealed, e.t.RecordsEnd = true, true, stop
		e.why = fmt.Sprintf("a valid block map at file offset %d, where the compressed blocks found end", stop)
		return e, nil
	}
	e.why = fmt.Sprintf("bad header and no valid frame at file offset %d (%s): cannot tell whether the segment is compressed "+
		"(%d valid compressed blocks from file offset %d, but no valid block map proves it); its records are not read",
		HeaderSize, first, intact, at)
	return e, nil
}
