package segment

// StreamEntries calls fn with every stream entry in the sealed segment's
// footer, in footer order (by stream hash, then name), reading each stream
// block once; it never reads an event frame. It checks the blocks against
// the summary's block directory (first hashes, order, count, each name's
// hash): a mismatch is a *CorruptError naming the block. fn's error ends
// the listing and is returned.
func (s *Segment) StreamEntries(fn func(name string, e StreamEntry) error) error {
	sum, err := s.Summary()
	if err != nil {
		return err
	}
	seen := 0
	var prevHash uint64
	var prevName string
	for bi, b := range sum.blocks {
		p, err := s.readFrame(b.off, b.len, KindBlock, nil)
		if err != nil {
			return err
		}
		entries, err := parseBlock(p, s.Trailer.RecordsEnd, s.Trailer.SummaryOff)
		if err != nil {
			return &CorruptError{File: s.Name, Offset: b.off, Reason: err.Error()}
		}
		if len(entries) == 0 || entries[0].hash != b.hash || (bi < len(sum.blocks)-1 && len(entries) != blockStride) {
			return corruptf(s.Name, b.off, "stream block %d does not match the block directory", bi)
		}
		for _, e := range entries {
			if seen > 0 && (e.hash < prevHash || e.hash == prevHash && e.name <= prevName) {
				return corruptf(s.Name, b.off, "stream block entries out of order at %q", e.name)
			}
			if streamHash(e.name) != e.hash {
				return corruptf(s.Name, b.off, "stream block entry for %q has another stream's hash", e.name)
			}
			prevHash, prevName = e.hash, e.name
			seen++
			if err := fn(e.name, e.StreamEntry); err != nil {
				return err
			}
		}
	}
	if seen != sum.NumStreams {
		return corruptf(s.Name, s.Trailer.SummaryOff, "stream blocks hold %d entries, the summary says %d streams", seen, sum.NumStreams)
	}
	return nil
}

// EachStream calls fn with every stream of the index and its postings, in
// no particular order. The postings slices are never modified afterwards
// (see Index); the caller holds whatever lock guards the index.
func (x *Index) EachStream(fn func(name string, sp StreamPostings)) {
	for name, sp := range x.streams {
		fn(name, *sp)
	}
}
