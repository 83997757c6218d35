package segment

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Verify checks a sealed segment completely: every frame of its records
// (as Scan does in strict mode), then its footer against those records —
// the trailer's totals, the sparse index, every stream block entry and
// every postings list, the bloom filter, the ID table (version 3) and the
// name blocks (version 4: each entry equal to its stream block entry, in
// name order, matching the summary's directory). It returns the records'
// index.
// prevTime is the recorded time of the event before the segment (unix ns).
// Every error matches ErrCorrupt and names the file and offset.
func Verify(s *Segment, prevTime int64) (*Index, error) {
	if !s.Sealed {
		return nil, corruptf(s.Name, s.Size, "not sealed")
	}
	t := s.Trailer
	ra, end, err := s.Records()
	if err != nil {
		return nil, err
	}
	res, err := Scan(ra, s.Header, end, ScanOptions{File: s.Name, Strict: true, PrevTime: time.Unix(0, prevTime)})
	if err != nil {
		return nil, err
	}
	x := res.Index
	trl := s.Size - TrailerSize
	switch {
	case x.End != end:
		return nil, corruptf(s.Name, x.End, "records end at %d, the trailer says %d", x.End, end)
	case x.Count != int(t.Count) || x.LastSeq != t.LastSeq || x.NewStreams != int(t.NewStreams):
		return nil, corruptf(s.Name, trl, "trailer says %d events to seq %d (%d new streams), the records hold %d to seq %d (%d)",
			t.Count, t.LastSeq, t.NewStreams, x.Count, x.LastSeq, x.NewStreams)
	case x.Count > 0 && (x.FirstTime != t.FirstTime || x.LastTime != t.LastTime):
		return nil, corruptf(s.Name, trl, "trailer time range [%d, %d], the records span [%d, %d]", t.FirstTime, t.LastTime, x.FirstTime, x.LastTime)
	}
	sum, err := s.Summary()
	if err != nil {
		return nil, err
	}
	if !slices.Equal(sum.Sparse, x.sparse) {
		return nil, corruptf(s.Name, t.SummaryOff, "sparse index differs from the records")
	}
	if sum.NumStreams != len(x.streams) {
		return nil, corruptf(s.Name, t.SummaryOff, "summary lists %d streams, the records hold %d", sum.NumStreams, len(x.streams))
	}
	var posts []Posting
	var byName map[string]namedEntry // version 4: what the name blocks must repeat
	if sum.hasNames {
		byName = make(map[string]namedEntry, len(x.streams))
	}
	read := func(b summaryBlock) ([]byte, error) { return s.readFrame(b.off, b.len, KindBlock, nil) }
	// footerEntries checks the blocks against the directory, their order,
	// each name's hash and their count (the summary's, checked above
	// against the records).
	err = footerEntries(s.Name, sum, read, t.RecordsEnd, t.SummaryOff, func(blockOff int64, e *namedEntry) error {
		sp := x.streams[e.name]
		if sp == nil || sp.FirstVersion != e.FirstVersion || len(sp.Posts) != int(e.Count) {
			return corruptf(s.Name, blockOff, "stream block entry for %q does not match the records", e.name)
		}
		var err error
		if posts, err = s.Postings(e.StreamEntry, posts); err != nil {
			return err
		}
		if !slices.Equal(posts, sp.Posts) {
			return corruptf(s.Name, e.PostOff, "postings of stream %q differ from the records", e.name)
		}
		if !sum.bloom.mayContain(e.hash) {
			return corruptf(s.Name, t.SummaryOff, "bloom filter misses stream %q", e.name)
		}
		if byName != nil {
			byName[e.name] = *e
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if byName != nil {
		if err := verifyNames(s, sum, byName); err != nil {
			return nil, err
		}
	}
	ids, ok, err := s.IDTable(nil)
	if err != nil {
		return nil, err
	}
	if ok {
		want := x.ids.all()
		slices.SortFunc(want, func(a, b IDEntry) int { return cmp.Or(cmp.Compare(a.Hash, b.Hash), cmp.Compare(a.Seq, b.Seq)) })
		if !slices.Equal(ids, want) {
			return nil, corruptf(s.Name, sum.idsOff, "ID table (%d entries) differs from the records' IDs (%d)", len(ids), len(want))
		}
	}
	return x, nil
}

// verifyNames checks the name blocks of a version 4 footer against the
// stream blocks' entries (already checked against the records): every
// stream once, in name order, in blocks of nameStride (the last one
// fewer) whose first names the directory holds, each entry equal to the
// stream block's.
func verifyNames(s *Segment, sum *Summary, want map[string]namedEntry) error {
	t := s.Trailer
	seen := 0
	prev := ""
	for bi, b := range sum.names {
		p, err := s.readFrame(b.off, b.len, KindNames, nil)
		if err != nil {
			return err
		}
		n := 0
		err = eachBlockEntry(p, t.RecordsEnd, t.SummaryOff, true, func(eh uint64, nm []byte, e StreamEntry) (bool, error) {
			name := string(nm)
			switch w, ok := want[name]; {
			case n == 0 && name != b.first:
				return true, fmt.Errorf("name block %d begins with %q, the directory says %q", bi, name, b.first)
			case seen > 0 && name <= prev:
				return true, fmt.Errorf("name block entries out of order at %q", name)
			case !ok || w.hash != eh || w.StreamEntry != e:
				return true, fmt.Errorf("name block entry for %q does not match the stream blocks", name)
			}
			prev = name
			n++
			seen++
			return false, nil
		})
		if err == nil && (n == 0 || (bi < len(sum.names)-1 && n != nameStride)) {
			err = fmt.Errorf("name block %d holds %d entries, want %d", bi, n, nameStride)
		}
		if err != nil {
			return &CorruptError{File: s.Name, Offset: b.off, Reason: err.Error()}
		}
	}
	if seen != len(want) {
		return corruptf(s.Name, t.SummaryOff, "name blocks hold %d entries, the stream blocks %d", seen, len(want))
	}
	return nil
}

type namedEntry struct {
	StreamEntry
	hash uint64
	name string
}

// blockEntries decodes every entry of a block frame payload (of a stream
// block, or, byName, of a name block) into dst (reused), checking each as
// eachBlockEntry does: the one decoder of block entries.
func blockEntries(p []byte, recordsEnd, footerEnd int64, byName bool, dst []namedEntry) ([]namedEntry, error) {
	dst = dst[:0]
	err := eachBlockEntry(p, recordsEnd, footerEnd, byName, func(h uint64, nm []byte, e StreamEntry) (bool, error) {
		dst = append(dst, namedEntry{StreamEntry: e, hash: h, name: string(nm)})
		return false, nil
	})
	return dst, err
}
