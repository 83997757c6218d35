package segment

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// BlockBytes returns the total size of the segment's stream block frames:
// what EachStream reads.
func (s *Summary) BlockBytes() int64 {
	var n int64
	for _, b := range s.blocks {
		n += int64(b.len)
	}
	return n
}

// EachStream calls fn with the name and entry of every stream of a sealed
// segment whose name starts with prefix ("" for all), in block order (by
// hash, not by name). It reads every stream block frame of the footer (see
// Summary.BlockBytes) — names are hashed, so a prefix cannot be looked up —
// but no postings and no events. name is valid only during the call.
func (s *Segment) EachStream(prefix string, fn func(name string, e StreamEntry) error) error {
	sum, err := s.Summary()
	if err != nil {
		return err
	}
	// Blocks are written back to back: read runs of them in one go.
	var buf []byte
	for i := 0; i < len(sum.blocks); {
		j, n := i+1, int64(sum.blocks[i].len)
		for j < len(sum.blocks) && sum.blocks[j].off == sum.blocks[j-1].off+int64(sum.blocks[j-1].len) && n+int64(sum.blocks[j].len) <= maxCoalesce {
			n += int64(sum.blocks[j].len)
			j++
		}
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		run := buf[:n]
		if _, err := s.f.ReadAt(run, sum.blocks[i].off); err != nil {
			if errors.Is(err, io.EOF) {
				return corruptf(s.Name, sum.blocks[i].off, "stream block frame runs past the end of the file")
			}
			return fmt.Errorf("evlog/segment: reading %s: %w", s.Name, err)
		}
		for _, b := range sum.blocks[i:j] {
			p, err := checkFrame(run[:b.len], KindBlock, s.Name, b.off)
			if err != nil {
				return err
			}
			run = run[b.len:]
			if err := eachEntry(p, prefix, s.Trailer.RecordsEnd, s.Trailer.SummaryOff, fn); err != nil {
				if _, ok := err.(*entryError); ok {
					return &CorruptError{File: s.Name, Offset: b.off, Reason: err.Error()}
				}
				return err
			}
		}
		i = j
	}
	return nil
}

// entryError is a malformed block entry (as opposed to fn's error).
type entryError struct{ reason string }

func (e *entryError) Error() string { return e.reason }

// eachEntry calls fn for every entry of a block frame payload whose name
// starts with prefix.
func eachEntry(p []byte, prefix string, recordsEnd, footerEnd int64, fn func(name string, e StreamEntry) error) error {
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
			return &entryError{fmt.Sprintf("stream block: entry %q malformed", nm)}
		}
		prev = eh
		if strings.HasPrefix(string(nm), prefix) {
			if err := fn(string(nm), e); err != nil {
				return err
			}
		}
	}
	if r.err != nil {
		return &entryError{fmt.Sprintf("stream block: %v", r.err)}
	}
	return nil
}

// EachStream calls fn with every stream of the index whose name starts
// with prefix ("" for all) and its postings, in no particular order. The
// postings slices are never modified afterwards (see Index); the caller
// holds the lock guarding x. With a checkpoint under the index, its
// streams are read from the checkpoint's stream blocks (errors come from
// that) and merged with what was added since.
func (x *Index) EachStream(prefix string, fn func(name string, sp StreamPostings)) error {
	if x.base == nil {
		for name, sp := range x.streams {
			if strings.HasPrefix(name, prefix) {
				fn(name, *sp)
			}
		}
		return nil
	}
	names, err := x.base.streamNames()
	if err != nil {
		return err
	}
	seen := make(map[string]bool, len(names))
	for _, name := range names {
		seen[name] = true
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		sp, ok, err := x.Stream(name)
		if err != nil {
			return err
		}
		if ok {
			fn(name, sp)
		}
	}
	for name, sp := range x.streams {
		if !seen[name] && strings.HasPrefix(name, prefix) {
			fn(name, *sp)
		}
	}
	return nil
}
