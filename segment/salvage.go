package segment

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
)

// Salvage reads a segment file frame by frame, past damage, without its
// index and without any check beyond what makes each frame valid (the
// Reader's: length bounds, checksum, known kind) and each batch committed.
// It is what tools use to read a log that cannot be opened (evlogctl dump
// prints the valid prefix, evlogctl salvage copies what is still readable).
// It only reads.
//
// A batch counts only when all its event frames are valid and decode,
// their seqs are consecutive and a valid commit frame matching them
// follows: exactly what a writer acknowledged. Anything else is a gap.
// After a bad frame Salvage resynchronises: it looks, byte by byte, for the
// next offset where a valid frame starts.

// Batch is one complete, committed batch found by Salvage.
type Batch struct {
	// Offset is the offset of its first frame (a logical offset in a
	// compressed segment, see Segment.Records).
	Offset int64
	// Events are the batch's events, in seq order; the caller owns them.
	Events []event.Envelope
	// Offsets[i] is the offset of the frame of Events[i] (logical in a
	// compressed segment), and Offsets[len(Events)] that of the commit
	// frame: event i's frame is Offsets[i+1]-Offsets[i] bytes.
	Offsets []int64
}

// Gap is a region of a segment file from which no complete batch could be
// read.
type Gap struct {
	Offset int64 // where the region starts (the start of a broken batch)
	Bad    int64 // the first invalid frame (what verify and dump report)
	// Length is the region's size; 0 for the last gap of a compressed
	// segment whose end nothing proves (see Salvage).
	Length int64
	Reason string
	// Torn: an invalid suffix of the newest segment that nothing after it
	// records as durable (ProvesDurable): not corruption (recovery
	// truncates it, verify calls it a torn tail). A frame that checksums
	// but holds invalid content was written whole: never torn.
	Torn bool
	// Whole: the whole file cannot be read frame by frame.
	Whole bool
	// FirstSeq..LastSeq are the seqs of the event frames seen inside the
	// gap (complete but uncommitted, or in a file that cannot be read frame
	// by frame); 0 when none was seen.
	FirstSeq, LastSeq uint64
}

func (g *Gap) seen(seq uint64) {
	if g.FirstSeq == 0 || seq < g.FirstSeq {
		g.FirstSeq = seq
	}
	g.LastSeq = max(g.LastSeq, seq)
}

// unseen takes a completed batch's seqs back out of the gap's range (they
// were noted in case the batch would not complete).
func (g *Gap) unseen(batch []event.Envelope) {
	first, last := batch[0].Seq, batch[len(batch)-1].Seq
	switch {
	case g.FirstSeq >= first && g.LastSeq <= last:
		g.FirstSeq, g.LastSeq = 0, 0
	case g.LastSeq <= last && g.LastSeq >= first:
		g.LastSeq = first - 1
	}
}

// SalvageOptions configures Salvage.
type SalvageOptions struct {
	// Name is the file's base name, for messages.
	Name string
	// TornOK says the file may end in a torn tail: it is the newest
	// segment (or the one before it when the newest holds no commit and
	// no mark).
	TornOK bool
	// Batch and Gap receive what Salvage finds, in file order; an error
	// they return ends Salvage, which returns it unchanged. Either may be
	// nil.
	Batch func(*Batch) error
	Gap   func(*Gap) error
}

// visitError carries an error of a SalvageOptions callback out of Salvage.
type visitError struct{ err error }

func (e *visitError) Error() string { return e.err.Error() }

// errTorn ends a file's salvage at a torn tail.
var errTorn = errors.New("evlog/segment: torn tail")

// Salvage reads the segment file ra of size bytes and reports its committed
// batches and damaged regions, in file order, through opt. Batches and gaps
// tile the file's records: each gap starts where the previous batch or gap
// ended, except that a region of valid frames that carry no events (marks)
// belongs to neither. A file whose header is damaged is reported as a gap
// at offset 0 of HeaderSize bytes and read on (its records may be
// intact): as a compressed segment when the file proves it is one (a
// valid compressed block at HeaderSize, or a valid block map placing the
// blocks from there; see headerless), else as a version 1 segment, except
// that valid compressed blocks further on without such proof make the
// records one gap whose reason says it cannot be told how they are
// stored. Seqs then come from the frames alone, never from the damaged
// header; a compressed segment is
// read through its logical view, and a damaged compressed block loses only
// the frames with bytes in it: the blocks are compressed independently, so
// reading resynchronises in the block after it. A compressed segment
// whose trailer or block map (zmap) cannot be used is read through the
// blocks found by scanning for them (salvage_zscan.go): its offsets after
// a damaged block are then estimates, and a last gap of length 0 at the
// logical end reports that records after the blocks found may be lost
// when nothing proves they are all. Errors are ra's, ctx's, or
// a callback's.
func Salvage(ctx context.Context, ra io.ReaderAt, size int64, opt SalvageOptions) error {
	err := salvage(ctx, ra, size, &opt)
	if ve, ok := errors.AsType[*visitError](err); ok {
		return ve.err
	}
	return err
}

func (o *SalvageOptions) gap(g *Gap) error {
	if o.Gap == nil {
		return nil
	}
	if err := o.Gap(g); err != nil {
		return &visitError{err}
	}
	return nil
}

func (o *SalvageOptions) batch(b *Batch) error {
	if o.Batch == nil {
		return nil
	}
	if err := o.Batch(b); err != nil {
		return &visitError{err}
	}
	return nil
}

// readFull reads len(b) bytes at off.
func readFull(ra io.ReaderAt, b []byte, off int64) error {
	n, err := ra.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF // the file shrank under us
	}
	return err
}

func salvage(ctx context.Context, ra io.ReaderAt, size int64, opt *SalvageOptions) error {
	if size < HeaderSize {
		return opt.gap(&Gap{Length: size, Whole: true, Torn: opt.TornOK,
			Reason: fmt.Sprintf("file is %d bytes, shorter than the %d-byte header", size, HeaderSize)})
	}
	s := &salvager{ra: ra, torn: opt.TornOK, opt: opt}
	var hb [HeaderSize]byte
	if err := readFull(ra, hb[:], 0); err != nil {
		return err
	}
	end := size
	h, herr := DecodeHeader(hb[:])
	if herr != nil {
		// The records may be intact: report the header and read on, as
		// the file itself shows them to be stored (headerless).
		s.hdr.Version = 1 // no mark key: durability is judged by commit frames
		if err := opt.gap(&Gap{Length: HeaderSize, Reason: "bad header: " + herr.Error(), Torn: opt.TornOK && size <= HeaderSize}); err != nil {
			return err
		}
		e, err := headerless(ctx, ra, size)
		if err != nil {
			return err
		}
		switch {
		case e.compressed:
			return salvageScanned(ctx, ra, size, e.t, e.sealed, e.claimedEnd, "compressed segment with a damaged header ("+e.why+")", opt)
		case e.why != "":
			return opt.gap(&Gap{Offset: HeaderSize, Bad: HeaderSize, Length: size - HeaderSize, Whole: true, Reason: e.why})
		}
	} else {
		s.hdr = h
		sealed := false
		var t Trailer
		if size >= HeaderSize+TrailerSize {
			var tb [TrailerSize]byte
			if err := readFull(ra, tb[:], size-TrailerSize); err != nil {
				return err
			}
			var terr error
			t, sealed, terr = DecodeTrailer(tb[:], hb[:], h, size)
			sealed = sealed && terr == nil
		}
		if h.Flags&FlagCompressed != 0 {
			return salvageCompressed(ctx, ra, size, h, t, sealed, opt)
		}
		if sealed {
			end = t.RecordsEnd
			s.torn = false // a sealed segment ends cleanly
		}
	}
	return s.frames(ctx, HeaderSize, end, size)
}

// salvageCompressed reads a segment compaction compressed, through its
// logical view of the records (the same frames as in an uncompressed
// segment; offsets are logical). Without a valid trailer or block map it
// finds the blocks by scanning (salvageScanned).
func salvageCompressed(ctx context.Context, ra io.ReaderAt, size int64, h Header, t Trailer, sealed bool, opt *SalvageOptions) error {
	if !sealed {
		return salvageScanned(ctx, ra, size, t, false, 0, "compressed segment without a valid trailer", opt)
	}
	sg, err := open(&readerAtFile{ra: ra, size: size}, opt.Name)
	if err != nil {
		return salvageScanned(ctx, ra, size, t, false, 0, "compressed segment: "+reasonOf(err), opt)
	}
	defer sg.Close() // stops its read-ahead before ra goes back to the caller
	rec, end, err := sg.Records()
	if err != nil {
		return salvageScanned(ctx, ra, size, t, true, 0, "compressed segment: "+reasonOf(err), opt)
	}
	s := &salvager{ra: rec, opt: opt, z: sg.zr.z}
	return s.frames(ctx, HeaderSize, end, end)
}

// reasonOf is the reason of a *CorruptError, or err's message.
func reasonOf(err error) string {
	if ce, ok := errors.AsType[*CorruptError](err); ok {
		return fmt.Sprintf("%s (at file offset %d)", ce.Reason, ce.Offset)
	}
	return err.Error()
}

// salvager reads the frames of one segment file.
type salvager struct {
	ra   io.ReaderAt // the records (the logical view of a compressed segment)
	torn bool        // a torn tail is possible in this file
	hdr  Header
	// z is the block directory of a compressed segment (nil: not
	// compressed): a damaged block loses the frames that have bytes in
	// it, and reading goes on in the block after it.
	z   *zmap
	opt *SalvageOptions
	r   Reader // frame validation: the normal reader's
	dec Decoder
}

// frames reads the frames in [off, end) (size is the file's size).
func (s *salvager) frames(ctx context.Context, off, end, size int64) error {
	var (
		pending    []event.Envelope
		offsets    []int64 // of the pending events' frames
		pendingOff int64   = -1
		gap        *Gap
		env        event.Envelope
		n          int
		lastSeq    uint64 // of the last committed batch
	)
	s.r.Reset(s.ra, off, end)
	// damageAt starts (or extends) a gap at the invalid frame at; the
	// pending batch joins it. It returns errTorn when the gap is a torn
	// tail, which ends the file. written says the frame at is whole (it
	// checksums) but its content is invalid: never a torn tail.
	damageAt := func(at int64, reason string, written bool) error {
		if gap == nil {
			start := at
			if pendingOff >= 0 {
				start = pendingOff
			}
			gap = &Gap{Offset: start, Bad: at, Reason: reason}
			if s.torn && !written {
				// The rule recovery applies (Scan).
				if off, _, err := ProvesDurable(s.ra, s.hdr, at, size, lastSeq); err == nil && off < 0 {
					gap.Torn, gap.Length = true, size-start
				}
			}
		}
		for _, e := range pending {
			gap.seen(e.Seq)
		}
		pending, offsets, pendingOff = pending[:0], offsets[:0], -1
		if gap.Torn {
			return errTorn
		}
		return nil
	}
	damage := func(at int64, reason string) error { return damageAt(at, reason, false) }
	endGap := func(at int64) error {
		if gap == nil {
			return nil
		}
		g := gap
		gap = nil
		if !g.Torn {
			g.Length = at - g.Offset
		}
		return s.opt.gap(g)
	}
	err := func() error {
		for off < end {
			if n++; n%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			s.r.seek(off)
			f, err := s.r.Next()
			if next, reason, ok := s.pastBlock(err); ok {
				// A damaged compressed block under the frame at off.
				if err := damage(off, reason); err != nil {
					return err
				}
				if off, err = s.resync(ctx, max(next, off+1), end); err != nil {
					return err
				}
				continue
			}
			if fe, ok := errors.AsType[*FrameError](err); ok {
				if err := damage(off, fe.Reason); err != nil {
					return err
				}
				if off, err = s.resync(ctx, off+1, end); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			switch f.Kind {
			case KindEvent:
				if err := s.dec.Decode(f.Payload, &env); err != nil {
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
				offsets = append(offsets, off)
			case KindCommit:
				c, cerr := DecodeCommit(f.Payload)
				if cerr != nil || len(pending) == 0 || c.FirstSeq != pending[0].Seq || int(c.Count) != len(pending) {
					if err := damage(off, "commit frame does not match the events before it"); err != nil {
						return err
					}
					break
				}
				if gap != nil {
					gap.unseen(pending)
				}
				if err := endGap(pendingOff); err != nil {
					return err
				}
				b := &Batch{Offset: pendingOff, Events: pending, Offsets: append(offsets, off)}
				lastSeq = pending[len(pending)-1].Seq
				pending, offsets, pendingOff = nil, nil, -1
				if err := s.opt.batch(b); err != nil {
					return err
				}
			case KindMark:
				// Records an fsync; between batches it carries no events.
				if _, merr := DecodeMark(f.Payload, off); merr != nil || len(pending) > 0 {
					if err := damage(off, "mark frame inside a batch or malformed"); err != nil {
						return err
					}
				}
			default:
				// The footer of a segment whose trailer is missing or
				// damaged: the records end here.
				end = off
				continue
			}
			off += f.Size()
		}
		if len(pending) > 0 {
			if err := damage(pendingOff, "incomplete batch (no commit frame)"); err != nil {
				return err
			}
		}
		return endGap(end)
	}()
	if errors.Is(err, errTorn) {
		return s.opt.gap(gap)
	}
	return err
}

// pastBlock reports whether err is the damage of a block of a compressed
// segment, and then the logical offset where the block after it starts
// (the end of the records after the last block) and the damage's
// description: the blocks are compressed independently, so the frames
// after it can still be read.
func (s *salvager) pastBlock(err error) (next int64, reason string, ok bool) {
	ce, ok := errors.AsType[*CorruptError](err)
	if !ok || s.z == nil {
		return 0, "", false
	}
	for i, p := range s.z.phys {
		if p == ce.Offset {
			next = s.z.end
			if i+1 < len(s.z.starts) {
				next = s.z.starts[i+1]
			}
			return next, fmt.Sprintf("%s (at file offset %d)", ce.Reason, ce.Offset), true
		}
	}
	return 0, "", false
}

// resync returns the first offset in [from, end) where a valid frame
// starts, or end. Cheap tests on the frame header (a known kind, a
// plausible length, an event payload that opens with a msgpack array)
// come before the Reader's full validation, so scanning garbage costs
// little per byte.
func (s *salvager) resync(ctx context.Context, from, end int64) (int64, error) {
	for q := from; q+FrameHeaderSize <= end; q++ {
		if (q-from)%(1<<20) == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		s.r.seek(q)
		h, err := s.r.window(min(FrameHeaderSize+1, int(end-q)))
		if next, _, ok := s.pastBlock(err); ok {
			q = max(q, next-1) // on in the block after the damaged one
			continue
		}
		if err != nil {
			return 0, err
		}
		kind := Kind(h[frameKindOff])
		n := int64(le.Uint32(h[frameLenOff:]))
		if n > end-q-FrameHeaderSize || n > MaxFramePayload {
			continue
		}
		switch kind {
		case KindEvent:
			if n == 0 || len(h) <= FrameHeaderSize || !arrayOfNine(h[FrameHeaderSize]) {
				continue
			}
		case KindCommit:
			if n != commitPayloadSize {
				continue
			}
		case KindMark:
			if n != markPayloadSize {
				continue
			}
		case KindPostings, KindBlock, KindNames, KindIDs, KindSummary, KindZBlock, KindZMap:
			if n == 0 {
				continue
			}
		default:
			continue
		}
		_, err = s.r.Next()
		if _, ok := errors.AsType[*FrameError](err); ok {
			continue
		}
		if _, _, ok := s.pastBlock(err); ok {
			continue // a frame with bytes in a damaged block: not one to read
		}
		if err != nil {
			return 0, err
		}
		return q, nil
	}
	return end, nil
}

// arrayOfNine reports whether b opens a msgpack array of at least nine
// elements (an event envelope).
func arrayOfNine(b byte) bool { return b >= 0x99 && b <= 0x9f || b == 0xdc || b == 0xdd }

// readerAtFile serves a read-only vfs.File from an io.ReaderAt, so that a
// Segment can be opened on bytes that are not a file of a vfs.FS.
type readerAtFile struct {
	ra   io.ReaderAt
	size int64
}

var errReaderAtFile = errors.New("evlog/segment: not supported by a read-only view")

func (f *readerAtFile) ReadAt(p []byte, off int64) (int, error) { return f.ra.ReadAt(p, off) }
func (f *readerAtFile) Size() (int64, error)                    { return f.size, nil }
func (f *readerAtFile) Close() error                            { return nil }
func (f *readerAtFile) Read([]byte) (int, error)                { return 0, errReaderAtFile }
func (f *readerAtFile) Write([]byte) (int, error)               { return 0, errReaderAtFile }
func (f *readerAtFile) Seek(int64, int) (int64, error)          { return 0, errReaderAtFile }
func (f *readerAtFile) Sync() error                             { return errReaderAtFile }
func (f *readerAtFile) Truncate(int64) error                    { return errReaderAtFile }

var _ vfs.File = (*readerAtFile)(nil)
