package segment

import (
	"errors"
	"fmt"
	"io"
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
// streams whose names start with prefix, appended to dst, in the footer's
// order (by name hash). It reads the footer's stream blocks — never an
// event frame — coalescing adjacent block frames into reads of up to
// 1 MiB: its cost is proportional to the segment's number of streams, not
// its events. Each matching entry's hash is checked against its name.
func (s *Segment) StreamsWithPrefix(prefix string, dst []PrefixEntry) ([]PrefixEntry, error) {
	sum, err := s.Summary()
	if err != nil {
		return dst, err
	}
	var buf []byte
	blocks := sum.blocks
	for i := 0; i < len(blocks); {
		if blocks[i].len > FrameHeaderSize+MaxFramePayload {
			return dst, corruptf(s.Name, blocks[i].off, "%s frame length %d out of range", KindBlock, blocks[i].len)
		}
		// A run of adjacent block frames, read at once.
		j, n := i+1, int64(blocks[i].len)
		for j < len(blocks) && blocks[j].off == blocks[j-1].off+int64(blocks[j-1].len) && n+int64(blocks[j].len) <= maxBlockRead {
			n += int64(blocks[j].len)
			j++
		}
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		b := buf[:n]
		if _, err := s.f.ReadAt(b, blocks[i].off); err != nil {
			if errors.Is(err, io.EOF) {
				return dst, corruptf(s.Name, blocks[i].off, "stream block frames run past the end of the file")
			}
			return dst, fmt.Errorf("evlog/segment: reading %s: %w", s.Name, err)
		}
		for k := i; k < j; k++ {
			fr := b[:blocks[k].len]
			b = b[blocks[k].len:]
			p, err := checkFrame(fr, KindBlock, s.Name, blocks[k].off)
			if err != nil {
				return dst, err
			}
			if dst, err = prefixEntries(p, prefix, s.Trailer.RecordsEnd, s.Trailer.SummaryOff, dst); err != nil {
				return dst, &CorruptError{File: s.Name, Offset: blocks[k].off, Reason: err.Error()}
			}
		}
		i = j
	}
	return dst, nil
}

// prefixEntries appends the entries of a block frame payload whose names
// start with prefix to dst.
func prefixEntries(p []byte, prefix string, recordsEnd, footerEnd int64, dst []PrefixEntry) ([]PrefixEntry, error) {
	err := eachBlockEntry(p, recordsEnd, footerEnd, func(eh uint64, nm []byte, e StreamEntry) (bool, error) {
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
