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
	seen := 0
	var prevHash uint64
	var prevName string
	var posts []Posting
	var byName map[string]namedEntry // version 4: what the name blocks must repeat
	if sum.hasNames {
		byName = make(map[string]namedEntry, len(x.streams))
	}
	for bi, b := range sum.blocks {
		p, err := s.readFrame(b.off, b.len, KindBlock, nil)
		if err != nil {
			return nil, err
		}
		entries, err := parseBlock(p, t.RecordsEnd, t.SummaryOff)
		if err != nil {
			return nil, &CorruptError{File: s.Name, Offset: b.off, Reason: err.Error()}
		}
		if len(entries) == 0 || entries[0].hash != b.hash || (bi < len(sum.blocks)-1 && len(entries) != blockStride) {
			return nil, corruptf(s.Name, b.off, "stream block %d does not match the block directory", bi)
		}
		for _, e := range entries {
			if seen > 0 && (e.hash < prevHash || e.hash == prevHash && e.name <= prevName) {
				return nil, corruptf(s.Name, b.off, "stream block entries out of order at %q", e.name)
			}
			prevHash, prevName = e.hash, e.name
			seen++
			sp := x.streams[e.name]
			if sp == nil || streamHash(e.name) != e.hash || sp.FirstVersion != e.FirstVersion || len(sp.Posts) != int(e.Count) {
				return nil, corruptf(s.Name, b.off, "stream block entry for %q does not match the records", e.name)
			}
			if posts, err = s.Postings(e.StreamEntry, posts); err != nil {
				return nil, err
			}
			if !slices.Equal(posts, sp.Posts) {
				return nil, corruptf(s.Name, e.PostOff, "postings of stream %q differ from the records", e.name)
			}
			if !sum.bloom.mayContain(e.hash) {
				return nil, corruptf(s.Name, t.SummaryOff, "bloom filter misses stream %q", e.name)
			}
			if byName != nil {
				byName[e.name] = e
			}
		}
	}
	if seen != len(x.streams) {
		return nil, corruptf(s.Name, t.SummaryOff, "stream blocks hold %d entries, the records %d streams", seen, len(x.streams))
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

// parseBlock decodes every entry of a block frame payload.
func parseBlock(p []byte, recordsEnd, footerEnd int64) ([]namedEntry, error) {
	r := binReader{b: p}
	var out []namedEntry
	for r.off < len(r.b) {
		h := r.u64()
		e := StreamEntry{FirstVersion: r.u64(), Count: r.u32(), PostOff: int64(r.u64()), PostLen: r.u32()}
		nm := r.take(int(r.u16()))
		if r.err != nil {
			return nil, fmt.Errorf("stream block: truncated entry")
		}
		if e.FirstVersion == 0 || e.Count == 0 || len(nm) == 0 || e.PostOff < recordsEnd || e.PostOff > footerEnd || int64(e.PostLen) > footerEnd-e.PostOff {
			return nil, fmt.Errorf("stream block: entry %q malformed", nm)
		}
		out = append(out, namedEntry{StreamEntry: e, hash: h, name: string(nm)})
	}
	return out, nil
}
