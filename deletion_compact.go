package evlog

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/evlog/evlog/segment"
)

// What Compact does for deletion and retention (see deletion.go): a
// sealed segment holding an event that reads as gone and is not a
// placeholder yet is rewritten (alone, or merged with its neighbours as
// usual), each gone event replaced by a redacted placeholder: same seq,
// stream, version, time, schema version and ID, type TypeRedacted, no
// Meta or Data (placeholderOf). Seqs, versions and every index stay as
// they were; the payloads are gone from the disk once the inputs are
// removed.

// needsRedaction reports whether the sealed segment s holds an event
// that vis says is gone and that is not a placeholder yet. It looks the
// deleted streams and the retention categories up in s's footer first,
// and reads s's records only when one may hold such an event.
func (vis *visibility) needsRedaction(ctx context.Context, s *segHandle) (bool, error) {
	if len(vis.t.m) == 0 && len(vis.ret) == 0 {
		return false, nil
	}
	candidate := false
	for stream, st := range vis.t.m {
		e, ok, err := s.Lookup(stream)
		if err != nil {
			return false, err
		}
		if ok && (st.tomb || e.FirstVersion < st.before) {
			candidate = true
			break
		}
	}
	if !candidate {
		for cat, r := range vis.ret {
			if r.MaxAge > 0 && s.Trailer.FirstTime >= vis.now-int64(r.MaxAge) && r.MaxCount == 0 {
				continue // every event of s is recent enough
			}
			entries, err := s.StreamsWithPrefix(cat+CategorySeparator, nil)
			if err != nil {
				return false, err
			}
			for _, e := range entries {
				if vis.goneVersion(e.Name, e.FirstVersion) || r.MaxAge > 0 && s.Trailer.FirstTime < vis.now-int64(r.MaxAge) {
					candidate = true
					break
				}
			}
			if vis.err != nil {
				return false, vis.err
			}
			if candidate {
				break
			}
		}
	}
	if !candidate {
		return false, nil
	}
	found, n := false, 0
	err := eachRecord(s, func(f segment.Frame, e *Envelope) error {
		if e != nil && e.Type != TypeRedacted && vis.gone(e) {
			found = true
			return errStop
		}
		if n++; n%ctxCheckEvery == 0 {
			return ctx.Err()
		}
		return nil
	})
	if err == errStop {
		err = nil
	}
	if err == nil {
		err = vis.err
	}
	return found, err
}

// eachRecord calls fn with every record frame of the sealed segment s,
// in order, and for event frames the decoded envelope (nil otherwise;
// valid during the call only).
func eachRecord(s *segHandle, fn func(f segment.Frame, e *Envelope) error) error {
	ra, end, err := s.Records()
	if err != nil {
		return err
	}
	var (
		r   segment.Reader
		dec segment.Decoder
		env Envelope
	)
	r.Reset(ra, segment.HeaderSize, end)
	for {
		f, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return corruptFrame(err, s.Name, env.Seq)
		}
		if f.Kind != segment.KindEvent {
			if err := fn(f, nil); err != nil {
				return err
			}
			continue
		}
		if err := dec.Decode(f.Payload, &env); err != nil {
			return &segment.CorruptError{File: s.Name, Offset: f.Offset, Seq: env.Seq, Reason: err.Error()}
		}
		if err := fn(f, &env); err != nil {
			return err
		}
	}
}

// redactChunk bounds the records appendRedacted holds in memory at once
// (more only for a single batch that is larger).
const redactChunk = 1 << 20

// appendRedacted appends the records of the sealed segment s (checked by
// the caller with a strict Scan) to w, with every event vis says is gone
// replaced by its placeholder; mark frames are dropped (as
// SegmentWriter.AppendRecords drops them). prevTime is the recorded time
// of the event before s. It works in runs of whole batches of about
// redactChunk bytes, each checked (a strict Scan) before it is appended,
// so that its memory does not grow with the segment (a compressed one
// can hold far more record bytes than its size on disk).
func appendRedacted(w *segment.SealedWriter, s *segHandle, vis *visibility, prevTime int64, buf []byte) error {
	chunk := make([]byte, segment.HeaderSize, segment.HeaderSize+redactChunk)
	first := uint64(0) // seq of the chunk's first event
	flush := func() error {
		if first == 0 {
			return nil
		}
		// The chunk's commits keep the durable ends of the input (as
		// AppendRecords keeps them): check it as part of the compacted
		// segment it becomes, a generation above 0.
		h := s.Header
		h.Generation, h.BaseSeq = max(h.Generation, 1), first
		sr, err := segment.Scan(bytes.NewReader(chunk), h, int64(len(chunk)), segment.ScanOptions{File: s.Name + " (redacted)", Strict: true, PrevTime: time.Unix(0, prevTime), CollectInfos: true})
		if err != nil {
			return fmt.Errorf("evlog: compact: the redacted records of %s do not scan (nothing was replaced): %w", s.Name, err)
		}
		if sr.Index.Count > 0 {
			prevTime = sr.Index.LastTime
		}
		if err := w.AppendRecords(bytes.NewReader(chunk[segment.HeaderSize:]), sr.Infos, buf); err != nil {
			return err
		}
		chunk, first = chunk[:segment.HeaderSize], 0
		return nil
	}
	err := eachRecord(s, func(f segment.Frame, e *Envelope) error {
		if e != nil && first == 0 {
			first = e.Seq
		}
		switch {
		case f.Kind == segment.KindMark:
		case e != nil && e.Type != TypeRedacted && vis.gone(e):
			p := placeholderOf(e)
			chunk = segment.AppendEventFrame(chunk, &p)
		default:
			chunk = segment.AppendFrame(chunk, f.Kind, f.Payload)
		}
		if vis.err != nil {
			return vis.err
		}
		if f.Kind == segment.KindCommit && len(chunk) >= redactChunk {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}
