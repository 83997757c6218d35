package segment

import (
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// PrefixEntry is the index entry of one stream whose name has a given
// prefix (see Segment.StreamsWithPrefix).
type PrefixEntry struct {
	Name string
	StreamEntry
}

// maxBlockRead bounds the bytes StreamsWithPrefix (and EachStream) read at once: adjacent
// block frames are fetched together up to this size.
const maxBlockRead = 1 << 20

// StreamsWithPrefix returns the index entries of the sealed segment's
// streams whose names start with prefix, appended to dst. It reads footer
// blocks — never an event frame — coalescing adjacent block frames into
// reads of up to 1 MiB. In a segment of format version 4 it reads only
// the name blocks whose name range meets the prefix (found by binary
// search over the summary's name-block directory) and returns the entries
// in name order: its cost is proportional to the streams matching, plus
// one block. In older segments it reads every stream block and returns
// the entries in hash order: its cost is proportional to the segment's
// number of streams. Never to its events. Each matching entry's hash is
// checked against its name.
func (s *Segment) StreamsWithPrefix(prefix string, dst []PrefixEntry) ([]PrefixEntry, error) {
	sum, err := s.Summary()
	if err != nil {
		return dst, err
	}
	recEnd, footEnd := s.Trailer.RecordsEnd, s.Trailer.SummaryOff
	if sum.hasNames {
		return namesWithPrefix(s.f, s.Name, sum, prefix, recEnd, footEnd, dst)
	}
	frames := make([]frameRef, 0, len(sum.blocks))
	for _, b := range sum.blocks {
		frames = append(frames, frameRef{b.off, b.len})
	}
	err = eachFrame(s.f, s.Name, frames, KindBlock, func(p []byte, off int64) error {
		var err error
		dst, err = prefixEntries(p, prefix, recEnd, footEnd, dst)
		return err
	})
	return dst, err
}

// namesWithPrefix reads the name blocks of a version 4 footer (a sealed
// segment's or a checkpoint's, in file f) that may hold names starting
// with prefix and appends those entries to dst, in name order.
func namesWithPrefix(f io.ReaderAt, file string, sum *Summary, prefix string, recordsEnd, summaryOff int64, dst []PrefixEntry) ([]PrefixEntry, error) {
	lo, hi := sum.nameRange(prefix)
	frames := make([]frameRef, 0, hi-lo)
	for _, b := range sum.names[lo:hi] {
		frames = append(frames, frameRef{b.off, b.len})
	}
	k := lo
	err := eachFrame(f, file, frames, KindNames, func(p []byte, off int64) error {
		var err error
		dst, err = nameEntries(p, prefix, sum.names[k].first, recordsEnd, summaryOff, dst)
		k++
		return err
	})
	return dst, err
}

// frameRef locates a footer frame (header included).
type frameRef struct {
	off int64
	len uint32
}

// eachFrame reads the frames of the kind, in order, coalescing adjacent
// ones into reads of up to maxBlockRead bytes, checks each and calls fn
// with its payload (valid during the call only). fn's error is reported
// as corruption of the frame.
func eachFrame(f io.ReaderAt, file string, frames []frameRef, kind Kind, fn func(p []byte, off int64) error) error {
	var buf []byte
	for i := 0; i < len(frames); {
		if frames[i].len > FrameHeaderSize+MaxFramePayload {
			return corruptf(file, frames[i].off, "%s frame length %d out of range", kind, frames[i].len)
		}
		// A run of adjacent frames, read at once.
		j, n := i+1, int64(frames[i].len)
		for j < len(frames) && frames[j].off == frames[j-1].off+int64(frames[j-1].len) && n+int64(frames[j].len) <= maxBlockRead {
			n += int64(frames[j].len)
			j++
		}
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		b := buf[:n]
		if _, err := f.ReadAt(b, frames[i].off); err != nil {
			if errors.Is(err, io.EOF) {
				return corruptf(file, frames[i].off, "%s frames run past the end of the file", kind)
			}
			return fmt.Errorf("evlog/segment: reading %s: %w", file, err)
		}
		for k := i; k < j; k++ {
			fr := b[:frames[k].len]
			b = b[frames[k].len:]
			p, err := checkFrame(fr, kind, file, frames[k].off)
			if err != nil {
				return err
			}
			if err := fn(p, frames[k].off); err != nil {
				return &CorruptError{File: file, Offset: frames[k].off, Reason: err.Error()}
			}
		}
		i = j
	}
	return nil
}

// nameRange returns the name blocks [lo, hi) that may hold names starting
// with prefix: names are sorted, so those form one run, which starts in
// the last block whose first name is at most prefix (or the first block)
// and ends before the first block whose first name is above prefix
// without starting with it (a first block like that: no block).
func (s *Summary) nameRange(prefix string) (lo, hi int) {
	n := len(s.names)
	lo = sort.Search(n, func(i int) bool { return s.names[i].first > prefix })
	if lo > 0 {
		lo--
	}
	hi = lo + sort.Search(n-lo, func(i int) bool {
		f := s.names[lo+i].first
		return f > prefix && !strings.HasPrefix(f, prefix)
	})
	return lo, hi
}

// PrefixBlockBytes returns the bytes of the footer blocks
// Segment.StreamsWithPrefix reads for prefix.
func (s *Summary) PrefixBlockBytes(prefix string) int64 {
	if !s.hasNames {
		return s.BlockBytes()
	}
	lo, hi := s.nameRange(prefix)
	var n int64
	for _, b := range s.names[lo:hi] {
		n += int64(b.len)
	}
	return n
}

// prefixEntries appends the entries of a block frame payload whose names
// start with prefix to dst.
func prefixEntries(p []byte, prefix string, recordsEnd, footerEnd int64, dst []PrefixEntry) ([]PrefixEntry, error) {
	err := eachBlockEntry(p, recordsEnd, footerEnd, false, func(eh uint64, nm []byte, e StreamEntry) (bool, error) {
		if !strings.HasPrefix(string(nm), prefix) { // no allocation
			return false, nil
		}
		name := string(nm)
		if streamHash(name) != eh {
			return false, fmt.Errorf("stream block: entry %q does not match its hash", nm)
		}
		dst = append(dst, PrefixEntry{Name: name, StreamEntry: e})
		return false, nil
	})
	return dst, err
}

// nameEntries appends the entries of a name block frame payload (whose
// first name the directory says is first) whose names start with prefix
// to dst. It stops at the first name past the prefix's range.
func nameEntries(p []byte, prefix, first string, recordsEnd, footerEnd int64, dst []PrefixEntry) ([]PrefixEntry, error) {
	seen := false
	err := eachBlockEntry(p, recordsEnd, footerEnd, true, func(eh uint64, nm []byte, e StreamEntry) (bool, error) {
		if !seen && string(nm) != first {
			return true, fmt.Errorf("name block: first entry %q, the directory says %q", nm, first)
		}
		seen = true
		if !strings.HasPrefix(string(nm), prefix) {
			return string(nm) > prefix, nil // past the range: stop
		}
		name := string(nm)
		if streamHash(name) != eh {
			return false, fmt.Errorf("name block: entry %q does not match its hash", nm)
		}
		dst = append(dst, PrefixEntry{Name: name, StreamEntry: e})
		return false, nil
	})
	if err == nil && !seen {
		err = fmt.Errorf("name block: empty")
	}
	return dst, err
}

// ActivePrefixEntry is one stream of an in-memory Index whose name has a
// given prefix.
type ActivePrefixEntry struct {
	Name string
	StreamPostings
}

// StreamsWithPrefix returns the streams of the index whose names start
// with prefix, appended to dst, in no particular order. Their Posts slices
// are never modified afterwards (see Index), so they may be used after the
// caller releases the lock guarding the index. The cost is proportional
// to the number of streams in the index.
func (x *Index) StreamsWithPrefix(prefix string, dst []ActivePrefixEntry) ([]ActivePrefixEntry, error) {
	err := x.EachStream(prefix, func(name string, sp StreamPostings) {
		dst = append(dst, ActivePrefixEntry{Name: name, StreamPostings: sp})
	})
	return dst, err
}
