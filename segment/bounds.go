package segment

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrTooLarge is matched by Extent.Fits's error: a segment holding those
// events would exceed a bound of the format (a footer frame or the zmap
// past MaxFramePayload, more than 2^32-1 events), and readers would refuse
// it. Compaction cuts its outputs before that; SealedWriter.Seal refuses
// to seal such a segment (compaction then leaves that group out).
var ErrTooLarge = errors.New("evlog/segment: segment would exceed a bound of the format")

// Extent bounds what a sealed segment's events take in the per-segment
// structures of a segment that holds them (see docs/FORMAT.md, "Bounds of
// a segment"). It is an upper bound: Merge of two extents bounds a
// segment holding the events of both, as compaction writes it.
type Extent struct {
	Events   uint64 // events
	Records  int64  // logical (uncompressed) record bytes after the header
	Streams  uint64 // stream entries (a stream in two merged segments counts twice)
	Postings int64  // payload bytes of the largest postings frame of one stream
	NameLen  int    // the longest stream name
}

// Extent returns the extent of the sealed segment s, from its trailer,
// its summary, its zmap (compressed) and its stream blocks (never its
// events). A damaged footer is a *CorruptError naming the file.
func (s *Segment) Extent() (Extent, error) {
	if !s.Sealed {
		return Extent{}, corruptf(s.Name, s.Size, "not sealed")
	}
	_, end, err := s.Records()
	if err != nil {
		return Extent{}, err
	}
	sum, err := s.Summary()
	if err != nil {
		return Extent{}, err
	}
	e := Extent{Events: uint64(s.Trailer.Count), Records: end - HeaderSize, Streams: uint64(sum.NumStreams)}
	err = s.StreamEntries(func(name string, se StreamEntry) error {
		e.Postings = max(e.Postings, int64(se.PostLen)-FrameHeaderSize)
		e.NameLen = max(e.NameLen, len(name))
		return nil
	})
	return e, err
}

// extent returns the exact extent of the segment x would seal into (x has
// no checkpoint under it: a SealedWriter's index).
func (x *Index) extent() Extent {
	e := Extent{Events: uint64(x.Count), Records: x.End - HeaderSize, Streams: uint64(len(x.streams)), NameLen: x.maxName}
	for _, sp := range x.streams {
		e.Postings = max(e.Postings, int64(postingsSize(sp.Posts)))
	}
	return e
}

// Merge returns the extent of a segment holding the events of e and then
// those of o. Each stream's postings merge into one frame: the postings
// keep their encoding (their offsets shift together; dropped mark frames
// only shrink the deltas) except o's first, whose delta may grow to
// binary.MaxVarintLen64 bytes, and the two counts become one uvarint no
// longer than both.
func (e Extent) Merge(o Extent) Extent {
	return Extent{
		Events:   e.Events + o.Events,
		Records:  e.Records + o.Records,
		Streams:  e.Streams + o.Streams,
		Postings: e.Postings + o.Postings + binary.MaxVarintLen64,
		NameLen:  max(e.NameLen, o.NameLen),
	}
}

// Fits returns nil if a segment of extent e (compressed: its records in
// zblocks of ZBlockSize) stays within every bound readers accept: at most
// 2^32-1 events (the trailer's count), and every frame that grows with
// the segment within MaxFramePayload — each stream's postings, the
// stream and name blocks, the summary (sparse index, block directory,
// bloom filter, name directory) and the zmap. (The ID table needs no
// bound: a segment whose table would not fit is written without one.)
// Otherwise its error matches ErrTooLarge and names the bound.
func (e Extent) Fits(compressed bool) error {
	limit := footerFrameLimit.Load()
	if e.Events > math.MaxUint32 {
		return fmt.Errorf("%w: %d events, the limit is %d", ErrTooLarge, e.Events, uint64(math.MaxUint32))
	}
	streams := int64(e.Streams)
	entry := int64(entFixedSize + e.NameLen)
	summary := 4 + sparseSize*ceilDiv(int64(e.Events), SparseInterval) +
		4 + blkSize*ceilDiv(streams, blockStride) +
		4 + 4 + int64(bloomBytes(int(streams))) +
		sumIDsSize +
		4 + (nbFixedSize+int64(e.NameLen))*ceilDiv(streams, nameStride)
	check := []struct {
		what string
		size int64
	}{
		{"the postings of one stream", e.Postings},
		{"a stream block", min(blockStride, streams) * entry},
		{"a name block", min(nameStride, streams) * entry},
		{"the summary", summary},
	}
	if compressed {
		check = append(check, struct {
			what string
			size int64
		}{"the zmap", 4 + zmEntrySize*ceilDiv(e.Records, ZBlockSize)})
	}
	for _, c := range check {
		if c.size > limit {
			return fmt.Errorf("%w: %s would take %d bytes, the frame limit is %d", ErrTooLarge, c.what, c.size, limit)
		}
	}
	return nil
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
