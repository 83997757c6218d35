package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// The raw reader reads a log's segments frame by frame, without the log's
// indexes and without any of its checks beyond each frame's checksum and
// each batch's commit frame, so that it can read past damage: dump falls
// back to it when the log cannot be opened (to print the valid prefix),
// and salvage uses it to copy what is still readable. It only reads (it is
// given a read-only FS).
//
// A batch counts only when all its event frames are valid, their seqs are
// consecutive and a valid commit frame matching them follows: exactly what
// a writer acknowledged. Anything else is a gap. After a bad frame the
// reader resynchronises: it looks, byte by byte, for the next offset where
// a valid frame starts.

// Frame header layout (docs/FORMAT.md, "Frames"): CRC32C u32 over the
// rest of the frame, payload length u32, kind u8.
const (
	frameCRCOff  = 0
	frameLenOff  = 4
	frameKindOff = 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// rawBatch is one complete, committed batch.
type rawBatch struct {
	file   string
	offset int64 // of its first frame
	events []evlog.Envelope
}

// rawGap is a region of a segment file from which no complete batch could
// be read.
type rawGap struct {
	file   string
	offset int64 // where the region starts (the start of a broken batch)
	bad    int64 // the first invalid frame (what verify and dump report)
	length int64
	reason string
	// torn: an invalid suffix of the newest segment that nothing after it
	// records as durable (segment.ProvesDurable): not corruption (verify
	// calls it a torn tail).
	torn bool
	// whole: the whole file is unreadable by the raw reader.
	whole bool
	// firstSeq..lastSeq are the seqs of the event frames seen inside the
	// gap (complete but uncommitted, or in a file that cannot be read frame
	// by frame); 0 when none was seen.
	firstSeq, lastSeq uint64
}

func (g *rawGap) seen(seq uint64) {
	if g.firstSeq == 0 || seq < g.firstSeq {
		g.firstSeq = seq
	}
	g.lastSeq = max(g.lastSeq, seq)
}

// rawVisitor receives what the raw reader finds, in file order. Returning
// errStop ends the scan without an error.
type rawVisitor struct {
	batch func(*rawBatch) error
	gap   func(*rawGap) error
}

var errStop = errors.New("stop")

// scanRaw reads every live segment of fsys in log order.
func scanRaw(ctx context.Context, fsys vfs.FS, v rawVisitor) error {
	files, err := rawSegments(fsys)
	if err != nil {
		return err
	}
	// A torn tail can only be in the newest segment, or in the one before
	// it when a crash during a roll left a newest segment without a batch.
	tornOK := map[string]bool{}
	if n := len(files); n > 0 {
		tornOK[files[n-1]] = true
		if n > 1 && !anyCommit(fsys, files[n-1]) {
			tornOK[files[n-2]] = true
		}
	}
	for _, name := range files {
		err := scanRawFile(ctx, fsys, name, tornOK[name], v)
		if errors.Is(err, errStop) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// rawSegments lists the live segment files in log order, by the
// directory rules of package segment (segment.Resolve): regular files
// only, leaving out those superseded by a valid compacted segment. Stray
// copies and segments of other logs stay in the list (the raw reader
// reports what it finds in them; verify names them).
func rawSegments(fsys vfs.FS) ([]string, error) {
	dir, err := segment.ReadDir(fsys)
	if err != nil {
		return nil, err
	}
	files, err := segment.OpenSegments(fsys, dir.Segments)
	if err != nil {
		return nil, err
	}
	defer segment.CloseSegments(files)
	live, _, _ := segment.Resolve(files)
	out := make([]string, len(live))
	for i, f := range live {
		out[i] = f.Name
	}
	return out, nil
}

// anyCommit reports whether the file holds at least one valid commit frame.
func anyCommit(fsys vfs.FS, name string) bool {
	f, err := fsys.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return false
	}
	ok, err := segment.HasCommit(f, segment.HeaderSize, size)
	return err == nil && ok
}

// rawFile is one segment file being read.
type rawFile struct {
	name       string
	f          io.ReaderAt
	win        window
	torn       bool // a torn tail is possible in this file
	hdr        segment.Header
	compressed bool // reading the logical view of a compressed segment
	dec        segment.Decoder
	visit      rawVisitor
}

// scanRawFile reads one segment file.
func scanRawFile(ctx context.Context, fsys vfs.FS, name string, tornOK bool, v rawVisitor) error {
	f, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return err
	}
	r := &rawFile{name: name, f: f, win: window{ra: f, size: size}, torn: tornOK, visit: v}
	if size < segment.HeaderSize {
		return v.gap(&rawGap{file: name, length: size, whole: true, torn: tornOK,
			reason: fmt.Sprintf("file is %d bytes, shorter than the %d-byte header", size, segment.HeaderSize)})
	}
	hb, err := r.win.get(0, segment.HeaderSize)
	if err != nil {
		return err
	}
	hdrBytes := slices.Clone(hb)
	end := size
	h, herr := segment.DecodeHeader(hdrBytes)
	if herr != nil {
		// The records may be intact: report the header and read on.
		g := &rawGap{file: name, length: segment.HeaderSize, reason: "bad header: " + herr.Error(), torn: tornOK && size <= segment.HeaderSize}
		r.hdr.Version = 1 // no mark key: durability is judged by commit frames
		if err := v.gap(g); err != nil {
			return err
		}
	} else {
		r.hdr = h
		var tb []byte
		sealed := false
		var t segment.Trailer
		if size >= segment.HeaderSize+segment.TrailerSize {
			if tb, err = r.win.get(size-segment.TrailerSize, segment.TrailerSize); err != nil {
				return err
			}
			var terr error
			t, sealed, terr = segment.DecodeTrailer(tb, hdrBytes, h, size)
			sealed = sealed && terr == nil
		}
		if h.Flags&segment.FlagCompressed != 0 {
			return scanCompressed(ctx, fsys, name, size, h, t, sealed, v)
		}
		if sealed {
			end = t.RecordsEnd
			r.torn = false // a sealed segment ends cleanly
		}
	}
	return r.frames(ctx, segment.HeaderSize, end, size)
}

// scanCompressed reads a segment compaction compressed, through its
// logical view of the records (the same frames as in an uncompressed
// segment; offsets are logical). A damaged compressed block ends what
// can be read of the file.
func scanCompressed(ctx context.Context, fsys vfs.FS, name string, size int64, h segment.Header, t segment.Trailer, sealed bool, v rawVisitor) error {
	whole := &rawGap{file: name, length: size, whole: true}
	if sealed && t.Count > 0 {
		whole.firstSeq, whole.lastSeq = h.BaseSeq, t.LastSeq
	}
	if !sealed {
		whole.reason = "compressed segment without a valid trailer: its records cannot be located"
		return v.gap(whole)
	}
	sg, err := segment.Open(fsys, name)
	if err != nil {
		whole.reason = err.Error()
		if ce, ok := errors.AsType[*segment.CorruptError](err); ok {
			whole.reason = ce.Reason
		}
		return v.gap(whole)
	}
	defer sg.Close()
	ra, end, err := sg.Records()
	if err != nil {
		whole.reason = "compressed segment: " + err.Error()
		if ce, ok := errors.AsType[*segment.CorruptError](err); ok {
			whole.reason = "compressed segment: " + ce.Reason
		}
		return v.gap(whole)
	}
	r := &rawFile{name: name, win: window{ra: ra, size: end}, visit: v, compressed: true}
	return r.frames(ctx, segment.HeaderSize, end, end)
}

// frames reads the frames in [off, end) (size is the file's size).
func (r *rawFile) frames(ctx context.Context, off, end, size int64) error {
	var (
		pending    []evlog.Envelope
		pendingOff int64 = -1
		gap        *rawGap
		env        evlog.Envelope
		n          int
		lastSeq    uint64 // of the last committed batch
	)
	// damage starts (or extends) a gap at the invalid frame at; the pending
	// batch joins it. It returns errTorn when the gap is a torn tail, which
	// ends the file. damageAt with written says the frame at is whole (it
	// checksums) but its content is invalid: never a torn tail.
	var damageAt func(at int64, reason string, written bool) error
	damage := func(at int64, reason string) error { return damageAt(at, reason, false) }
	damageAt = func(at int64, reason string, written bool) error {
		if gap == nil {
			start := at
			if pendingOff >= 0 {
				start = pendingOff
			}
			gap = &rawGap{file: r.name, offset: start, bad: at, reason: reason}
			// A frame that checksums was written whole: what it holds is
			// damage, never a torn write (as recovery and verify say).
			if r.torn && !written {
				// The rule recovery applies (segment.Scan).
				if off, _, err := segment.ProvesDurable(r.f, r.hdr, at, size, lastSeq); err == nil && off < 0 {
					gap.torn, gap.length = true, size-start
				}
			}
		}
		for _, e := range pending {
			gap.seen(e.Seq)
		}
		pending, pendingOff = pending[:0], -1
		if gap.torn {
			return errTorn
		}
		return nil
	}
	endGap := func(at int64) error {
		if gap == nil {
			return nil
		}
		g := gap
		gap = nil
		if !g.torn {
			g.length = at - g.offset
		}
		return r.visit.gap(g)
	}
	err := func() error {
		for off < end {
			if n++; n%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			kind, payload, reason, err := r.frameAt(off, end)
			if err != nil {
				return err
			}
			if reason != "" {
				if err := damage(off, reason); err != nil {
					return err
				}
				if off, err = r.resync(ctx, off+1, end); err != nil {
					return err
				}
				continue
			}
			size := int64(segment.FrameHeaderSize + len(payload))
			switch kind {
			case segment.KindEvent:
				if err := r.dec.Decode(payload, &env); err != nil {
					if err := damageAt(off, "undecodable event: "+err.Error(), true); err != nil {
						return err
					}
					break
				}
				if len(pending) > 0 && env.Seq != pending[len(pending)-1].Seq+1 {
					if err := damage(off, fmt.Sprintf("event seq %d follows %d in a batch", env.Seq, pending[len(pending)-1].Seq)); err != nil {
						return err
					}
				}
				if gap != nil && len(pending) == 0 {
					gap.seen(env.Seq) // counted back out if its batch completes
				}
				if len(pending) == 0 {
					pendingOff = off
				}
				ev := env
				ev.Data = slices.Clone(env.Data)
				pending = append(pending, ev)
			case segment.KindCommit:
				c, cerr := segment.DecodeCommit(payload)
				if cerr != nil || len(pending) == 0 || c.FirstSeq != pending[0].Seq || int(c.Count) != len(pending) {
					if err := damage(off, "commit frame does not match the events before it"); err != nil {
						return err
					}
					break
				}
				if gap != nil {
					unseen(gap, pending)
				}
				if err := endGap(pendingOff); err != nil {
					return err
				}
				b := &rawBatch{file: r.name, offset: pendingOff, events: pending}
				lastSeq = pending[len(pending)-1].Seq
				pending, pendingOff = nil, -1
				if err := r.visit.batch(b); err != nil {
					return err
				}
			case segment.KindMark:
				// Records an fsync; between batches it carries no events.
				if _, merr := segment.DecodeMark(payload, off); merr != nil || len(pending) > 0 {
					if err := damage(off, "mark frame inside a batch or malformed"); err != nil {
						return err
					}
					break
				}
			default:
				// The footer of a segment whose trailer is missing or
				// damaged: the records end here.
				end = off
				continue
			}
			off += size
		}
		if len(pending) > 0 {
			if err := damage(pendingOff, "incomplete batch (no commit frame)"); err != nil {
				return err
			}
		}
		return endGap(end)
	}()
	if errors.Is(err, errTorn) {
		return r.visit.gap(gap)
	}
	if ce, ok := errors.AsType[*segment.CorruptError](err); ok && r.compressed {
		// A damaged compressed block: nothing more of this file can be
		// read.
		if gap == nil {
			start := off
			if pendingOff >= 0 {
				start = pendingOff
			}
			gap = &rawGap{file: r.name, offset: start, bad: off, reason: fmt.Sprintf("%s (at file offset %d)", ce.Reason, ce.Offset)}
		}
		for _, e := range pending {
			gap.seen(e.Seq)
		}
		gap.length = end - gap.offset
		return r.visit.gap(gap)
	}
	return err
}

// errTorn ends a file's scan at a torn tail.
var errTorn = errors.New("torn tail")

// unseen takes a completed batch's seqs back out of the gap's range (they
// were noted in case the batch would not complete).
func unseen(g *rawGap, batch []evlog.Envelope) {
	first, last := batch[0].Seq, batch[len(batch)-1].Seq
	switch {
	case g.firstSeq >= first && g.lastSeq <= last:
		g.firstSeq, g.lastSeq = 0, 0
	case g.lastSeq <= last && g.lastSeq >= first:
		g.lastSeq = first - 1
	}
}

// frameAt reads the frame at off. A frame that is not valid gives a
// reason (and no error); err is for read failures.
func (r *rawFile) frameAt(off, end int64) (segment.Kind, []byte, string, error) {
	rest := end - off
	if rest < segment.FrameHeaderSize {
		return 0, nil, fmt.Sprintf("%d bytes left, a frame header needs %d", rest, segment.FrameHeaderSize), nil
	}
	h, err := r.win.get(off, segment.FrameHeaderSize)
	if err != nil {
		return 0, nil, "", err
	}
	n := int64(binary.LittleEndian.Uint32(h[frameLenOff:]))
	kind := segment.Kind(h[frameKindOff])
	switch {
	case n > segment.MaxFramePayload:
		return 0, nil, fmt.Sprintf("frame length %d exceeds the limit %d", n, segment.MaxFramePayload), nil
	case n > rest-segment.FrameHeaderSize:
		return 0, nil, fmt.Sprintf("frame of %d bytes runs past the end (%d bytes left)", n, rest-segment.FrameHeaderSize), nil
	}
	b, err := r.win.get(off, segment.FrameHeaderSize+int(n))
	if err != nil {
		return 0, nil, "", err
	}
	if got, want := crc32.Checksum(b[frameLenOff:], castagnoli), binary.LittleEndian.Uint32(b[frameCRCOff:]); got != want {
		return 0, nil, fmt.Sprintf("checksum mismatch (stored %08x, computed %08x)", want, got), nil
	}
	if kind < segment.KindEvent || kind > segment.KindMark {
		return 0, nil, fmt.Sprintf("unknown frame kind %d", kind), nil
	}
	return kind, b[segment.FrameHeaderSize:], "", nil
}

// resync returns the first offset in [from, end) where a valid frame
// starts, or end. Cheap tests on the frame header (a known kind, a
// plausible length, an event payload that opens with a msgpack array)
// come before the checksum, so scanning garbage costs little per byte.
func (r *rawFile) resync(ctx context.Context, from, end int64) (int64, error) {
	for q := from; q+segment.FrameHeaderSize <= end; q++ {
		if (q-from)%(1<<20) == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		h, err := r.win.get(q, min(segment.FrameHeaderSize+1, int(end-q)))
		if err != nil {
			return 0, err
		}
		kind := segment.Kind(h[frameKindOff])
		n := int64(binary.LittleEndian.Uint32(h[frameLenOff:]))
		if n > end-q-segment.FrameHeaderSize || n > segment.MaxFramePayload {
			continue
		}
		switch kind {
		case segment.KindEvent:
			if n == 0 || len(h) <= segment.FrameHeaderSize || !arrayOfNine(h[segment.FrameHeaderSize]) {
				continue
			}
		case segment.KindCommit:
			if n != int64(segment.CommitFrameSize-segment.FrameHeaderSize) {
				continue
			}
		case segment.KindMark:
			if n != int64(segment.MarkFrameSize-segment.FrameHeaderSize) {
				continue
			}
		case segment.KindPostings, segment.KindBlock, segment.KindSummary, segment.KindZBlock, segment.KindZMap:
			if n == 0 {
				continue
			}
		default:
			continue
		}
		_, _, reason, err := r.frameAt(q, end)
		if err != nil {
			return 0, err
		}
		if reason == "" {
			return q, nil
		}
	}
	return end, nil
}

// arrayOfNine reports whether b opens a msgpack array of at least nine
// elements (an event envelope).
func arrayOfNine(b byte) bool { return b >= 0x99 && b <= 0x9f || b == 0xdc || b == 0xdd }

// window serves reads of a file through a buffer, so that scanning frame
// by frame (and byte by byte when resynchronising) costs few system calls.
type window struct {
	ra   io.ReaderAt
	size int64
	buf  []byte
	off  int64 // file offset of buf[0]
	n    int   // valid bytes in buf
}

const windowSize = 1 << 20

// get returns the n bytes at off; off+n must not exceed the file size. The
// slice is valid until the next call.
func (w *window) get(off int64, n int) ([]byte, error) {
	if off >= w.off && off+int64(n) <= w.off+int64(w.n) {
		i := int(off - w.off)
		return w.buf[i : i+n], nil
	}
	want := max(n, windowSize)
	if len(w.buf) < want {
		w.buf = make([]byte, want)
	}
	fill := int(min(int64(len(w.buf)), w.size-off))
	if fill < n {
		return nil, fmt.Errorf("reading %d bytes at offset %d: the file is %d bytes", n, off, w.size)
	}
	m, err := w.ra.ReadAt(w.buf[:fill], off)
	if m < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the file shrank under us
		}
		w.n = 0
		return nil, err
	}
	w.off, w.n = off, m
	return w.buf[:n], nil
}
