package segment

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/evlog/evlog/event"
)

// Tail describes the invalid suffix of the newest segment that recovery
// truncates: an incomplete batch, a torn frame, or garbage after the last
// commit, none of it recorded as durable (no mark after it records an
// fsync beyond its start).
//
// That is not the same as never acknowledged: under SyncNever and
// SyncInterval appends are acknowledged before they are fsynced, and a
// power loss can take the mark recording the last fsync with it (see
// Durable). A torn tail is what recovery cannot prove was durable.
type Tail struct {
	Offset    int64  // end of the committed data: the tail starts here
	Size      int64  // bytes from Offset to the end of the file
	BadOffset int64  // the first invalid frame (== Offset + complete uncommitted frames)
	Events    int    // complete event frames of the incomplete batch
	FirstSeq  uint64 // their seqs (0 when Events == 0)
	LastSeq   uint64
	// Durable is the durable end recorded by the last mark before the
	// tail (HeaderSize if none): bytes before it were fsynced. Committed
	// data between Durable and Offset is kept but was not recorded as
	// durable either.
	Durable int64
	Reason  string
}

// ScanOptions configures Scan. The zero value scans a whole segment that
// may end in a torn tail, with no bound from an earlier segment.
type ScanOptions struct {
	// File is the segment's base name, for errors.
	File string
	// Strict is set for segments that must end cleanly (sealed segments and
	// any segment but the newest): then any invalid frame or incomplete
	// batch is corruption. Otherwise an invalid suffix is a torn tail when
	// no valid commit after it records a durable end beyond its start.
	Strict bool
	// PrevTime is the recorded time of the event before this segment's
	// first, which no event of it may precede (zero: no earlier event).
	PrevTime time.Time
	// Continue, when set, is the index of the segment's frames up to its
	// End: the scan resumes there (to pick up what a writer in another
	// process appended since) and returns only the new events.
	Continue *Index
	// CollectInfos makes Scan return every committed event it scans, in
	// seq order, in ScanResult.Infos.
	CollectInfos bool
	// Checkpoint, when set (and Continue is not), is a checkpoint of the
	// segment (see OpenCheckpoint): the scan starts at its end, and the
	// index returned has it under it (see NewIndexFrom). Infos holds only
	// the events after it.
	Checkpoint *Checkpoint
}

// ScanResult is what Scan found.
type ScanResult struct {
	// Index indexes the committed events (with ScanOptions.Continue, only
	// those after it).
	Index *Index
	// Tail is the torn tail, nil when the data ends exactly after a commit
	// or mark frame (always nil with ScanOptions.Strict).
	Tail *Tail
	// Infos lists the committed events scanned, in seq order, when
	// ScanOptions.CollectInfos is set.
	Infos []EventInfo
}

// Scan reads the frames in [HeaderSize, end) of a segment with header h and
// returns the index of its committed events, and the torn tail, if any.
// Errors match ErrCorrupt (as a *CorruptError) or come from ra.
func Scan(ra io.ReaderAt, h Header, end int64, opt ScanOptions) (ScanResult, error) {
	var res ScanResult
	var infos *[]EventInfo
	if opt.CollectInfos {
		infos = &res.Infos
	}
	x, tail, err := scan(ra, h, end, opt, infos)
	if err != nil {
		return ScanResult{}, err
	}
	res.Index, res.Tail = x, tail
	return res, nil
}

// scan is Scan, appending the committed events to *infos when infos is
// not nil.
func scan(ra io.ReaderAt, h Header, end int64, opt ScanOptions, infos *[]EventInfo) (*Index, *Tail, error) {
	x := NewIndex(h.BaseSeq)
	start := int64(HeaderSize)
	var (
		dec     Decoder
		env     event.Envelope
		pending []EventInfo
		vers    = make(map[string]uint64)
		prevT   = int64(math.MinInt64)
		next    = h.BaseSeq
		base    = opt.Continue
		ckpt    *Checkpoint
	)
	if !opt.PrevTime.IsZero() {
		prevT = opt.PrevTime.UnixNano()
	}
	if base == nil && opt.Checkpoint != nil {
		ckpt = opt.Checkpoint
		x = NewIndexFrom(ckpt)
		next, start = x.LastSeq+1, x.End
		prevT = max(prevT, x.LastTime)
	}
	if base != nil {
		// Resume: the new events continue the old index's seqs, times and
		// stream versions; x collects only them.
		x = &Index{BaseSeq: base.LastSeq + 1, LastSeq: base.LastSeq, End: base.End, Durable: base.Durable, Marked: base.Marked, Strict: base.Strict, streams: make(map[string]*StreamPostings)}
		next, start = base.LastSeq+1, base.End
		if base.Count > 0 {
			prevT = base.LastTime
		}
	}
	r := NewReader(ra, start, end)
	corrupt := func(off int64, format string, args ...any) error {
		return &CorruptError{File: opt.File, Offset: off, Seq: x.LastSeq, Reason: fmt.Sprintf(format, args...)}
	}
	for {
		f, err := r.Next()
		if err == io.EOF {
			if len(pending) == 0 {
				return x, nil, nil
			}
			if opt.Strict {
				return nil, nil, corrupt(pending[0].Off, "segment ends with an incomplete batch of %d events", len(pending))
			}
			return x, tailOf(x, pending, end, end, "incomplete batch (no commit frame)"), nil
		}
		if fe, ok := errors.AsType[*FrameError](err); ok {
			if opt.Strict {
				return nil, nil, corrupt(fe.Offset, "%s", fe.Reason)
			}
			return finishTail(ra, h, x, pending, fe.Offset, end, fe.Reason, opt.File)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("evlog/segment: reading %s: %w", opt.File, err)
		}
		switch f.Kind {
		case KindEvent:
			if err := dec.Decode(f.Payload, &env); err != nil {
				return nil, nil, corrupt(f.Offset, "%v", err)
			}
			if env.Seq != next {
				return nil, nil, corrupt(f.Offset, "event seq %d, want %d", env.Seq, next)
			}
			t := env.Time.UnixNano()
			if t < prevT {
				return nil, nil, corrupt(f.Offset, "event seq %d recorded at %d, before the previous event (%d)", env.Seq, t, prevT)
			}
			last, ok := vers[env.Stream]
			if !ok && (base != nil || x.base != nil) {
				// Not seen by this scan: look in what it resumes.
				prior, err := cmp.Or(base, x), error(nil)
				if last, err = prior.LastVersion(env.Stream); err != nil {
					return nil, nil, err
				}
				ok = last > 0
			}
			if ok && env.Version != last+1 {
				return nil, nil, corrupt(f.Offset, "event seq %d is version %d of stream %q, want %d", env.Seq, env.Version, env.Stream, last+1)
			}
			vers[env.Stream] = env.Version
			pending = append(pending, EventInfo{Seq: env.Seq, Stream: env.Stream, Version: env.Version, Time: t, Off: f.Offset, Len: uint32(f.Size()), ID: env.ID})
			next++
			prevT = t
		case KindCommit:
			c, err := DecodeCommit(f.Payload)
			if err != nil {
				return nil, nil, corrupt(f.Offset, "%v", err)
			}
			if len(pending) == 0 || c.FirstSeq != pending[0].Seq || int(c.Count) != len(pending) {
				return nil, nil, corrupt(f.Offset, "commit of seqs %d+%d does not match the %d events before it", c.FirstSeq, c.Count, len(pending))
			}
			// A compacted segment (generation > 0) holds commit frames
			// copied from other files, whose durable ends refer to those.
			if c.DurableEnd > f.Offset && h.Generation == 0 {
				return nil, nil, corrupt(f.Offset, "commit claims durable end %d beyond itself", c.DurableEnd)
			}
			for _, e := range pending {
				x.Add(e)
			}
			if infos != nil {
				*infos = append(*infos, pending...)
			}
			pending = pending[:0]
			x.End = f.Offset + f.Size()
		case KindMark:
			if len(pending) > 0 {
				return nil, nil, corrupt(f.Offset, "mark frame inside a batch of %d events", len(pending))
			}
			d, err := DecodeMark(f.Payload, f.Offset)
			if err != nil {
				return nil, nil, corrupt(f.Offset, "%v", err)
			}
			x.End = f.Offset + f.Size()
			x.Durable = max(x.Durable, d)
			x.Marked, x.Strict = true, MarkStrict(f.Payload)
		default:
			// Footer frames: the segment was being sealed.
			if opt.Strict {
				return nil, nil, corrupt(f.Offset, "%s frame among the records", f.Kind)
			}
			return finishTail(ra, h, x, pending, f.Offset, end, "incomplete footer (the segment was being sealed)", opt.File)
		}
	}
}

func tailOf(x *Index, pending []EventInfo, bad, end int64, reason string) *Tail {
	t := &Tail{Offset: x.End, Size: end - x.End, BadOffset: bad, Events: len(pending), Durable: x.Durable, Reason: reason}
	if len(pending) > 0 {
		t.FirstSeq, t.LastSeq = pending[0].Seq, pending[len(pending)-1].Seq
	}
	return t
}

// finishTail decides whether the invalid data at bad is a torn tail or
// corruption: it is corruption when ProvesDurable finds a record after it
// that bad had been fsynced, and a torn tail otherwise.
func finishTail(ra io.ReaderAt, h Header, x *Index, pending []EventInfo, bad, end int64, reason, file string) (*Index, *Tail, error) {
	off, why, err := ProvesDurable(ra, h, bad, end, x.LastSeq)
	if err != nil {
		return nil, nil, fmt.Errorf("evlog/segment: reading %s: %w", file, err)
	}
	if off >= 0 {
		return nil, nil, &CorruptError{File: file, Offset: bad, Seq: x.LastSeq,
			Reason: fmt.Sprintf("%s, but %s at offset %d records that it had been made durable", reason, why, off)}
	}
	return x, tailOf(x, pending, bad, end, reason), nil
}

// ProvesDurable looks in (bad, end) of a segment with header h for a
// record proving that the invalid data at bad had been fsynced — the rule
// that tells corruption from a torn tail. It returns the record's offset
// and a description of it, or -1.
//
// Version 2: a mark frame (see mark.go) whose durable end is beyond bad
// and whose tag matches. Its frame boundary cannot be proven (bad breaks
// the chain of frames), hence the search; but a valid tag needs the
// header's mark key, which no event payload contains, so bytes inside a
// payload cannot pass for a mark. Commit frames prove nothing in version 2.
//
// Version 1 (no marks): a commit frame after bad that claims a durable end
// beyond bad but not beyond itself, for seqs after lastSeq, the last
// committed one. Bytes inside an event payload can imitate such a commit;
// then a torn tail is reported as corruption (Open refuses instead of
// truncating). Version 2 segments are immune.
func ProvesDurable(ra io.ReaderAt, h Header, bad, end int64, lastSeq uint64) (int64, string, error) {
	if h.Version >= 2 {
		off, p, err := findFrameAfter(ra, bad+1, end, KindMark, markPayloadSize, func(at int64, p []byte) bool {
			d, ok := VerifyMark(h, p, at)
			return ok && d > bad
		})
		if off < 0 || err != nil {
			return -1, "", err
		}
		return off, fmt.Sprintf("a mark (fsynced through %d)", le.Uint64(p[markDurableEndOff:])&^markStrictBit), nil
	}
	var c Commit
	off, _, err := findFrameAfter(ra, bad+1, end, KindCommit, commitPayloadSize, func(at int64, p []byte) bool {
		var err error
		c, err = DecodeCommit(p)
		return err == nil && c.DurableEnd > bad && c.DurableEnd <= at && c.FirstSeq > lastSeq
	})
	if off < 0 || err != nil {
		return -1, "", err
	}
	return off, fmt.Sprintf("a valid commit (seqs %d+%d, durable through %d)", c.FirstSeq, c.Count, c.DurableEnd), nil
}

// HasCommit reports whether a valid commit frame starts in [from, end).
func HasCommit(ra io.ReaderAt, from, end int64) (bool, error) {
	off, _, err := findFrameAfter(ra, from, end, KindCommit, commitPayloadSize, func(_ int64, p []byte) bool {
		_, err := DecodeCommit(p)
		return err == nil
	})
	return off >= 0, err
}

// findFrameAfter returns the offset and payload of the first frame of the
// kind with a payload of size bytes and a valid checksum that starts in
// [from, end) and for which match is true, or -1. The payload aliases a
// buffer valid until the next call.
func findFrameAfter(ra io.ReaderAt, from, end int64, kind Kind, size int, match func(at int64, payload []byte) bool) (int64, []byte, error) {
	var pat [5]byte // the frame's length and kind fields
	le.PutUint32(pat[:4], uint32(size))
	pat[4] = byte(kind)
	frameSize := FrameHeaderSize + size
	if from >= end {
		return -1, nil, nil
	}
	buf := make([]byte, min(readChunk, end-from)+int64(frameSize))
	for base := from; base < end; base += readChunk {
		n := int(min(int64(len(buf)), end-base))
		if m, err := ra.ReadAt(buf[:n], base); m < n {
			if err == nil || errors.Is(err, io.EOF) {
				return -1, nil, nil // the file shrank under us: nothing more to see
			}
			return -1, nil, err
		}
		b := buf[:n]
		// Frames start 4 bytes before the pattern.
		for i := 0; ; {
			j := bytes.Index(b[i:], pat[:])
			if j < 0 {
				break
			}
			p := i + j - frameLenOff
			i += j + 1
			if p < 0 || p >= readChunk || p+frameSize > len(b) {
				continue // starts before the window or in the next one
			}
			fr := b[p : p+frameSize]
			if crc(fr[frameLenOff:]) != le.Uint32(fr[frameCRCOff:]) {
				continue
			}
			if match(base+int64(p), fr[FrameHeaderSize:]) {
				return base + int64(p), fr[FrameHeaderSize:], nil
			}
		}
	}
	return -1, nil, nil
}
