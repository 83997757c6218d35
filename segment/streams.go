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
	read := func(b summaryBlock) ([]byte, error) { return s.readFrame(b.off, b.len, KindBlock, nil) }
	return footerEntries(s.Name, sum, read, s.Trailer.RecordsEnd, s.Trailer.SummaryOff, func(_ int64, e *namedEntry) error {
		return fn(e.name, e.StreamEntry)
	})
}

// footerEntries walks the stream blocks of a footer (a sealed segment's or a
// checkpoint's) whose summary is sum, checking them against the block
// directory (each block's first hash, its count of entries, the order of
// all entries by (hash, name), each name's hash, their total against the
// summary's count of streams); recordsEnd and summaryOff bound the
// postings offsets. It decodes each block whole (blockEntries) before it
// calls fn with the block's offset and each of its entries, so fn never
// sees an entry of a block that fails. Its own errors are
// *CorruptErrors naming file and the block's offset; fn's error is
// returned as it is.
//
// It is the one walker of stream blocks: StreamEntries, the checkpoint's
// streamNames and Verify share it.
func footerEntries(file string, sum *Summary, read func(summaryBlock) ([]byte, error), recordsEnd, summaryOff int64, fn func(blockOff int64, e *namedEntry) error) error {
	seen := 0
	var prevHash uint64
	var prevName string
	var entries []namedEntry
	for bi, b := range sum.blocks {
		p, err := read(b)
		if err != nil {
			return err
		}
		entries, err = blockEntries(p, recordsEnd, summaryOff, false, entries)
		if err != nil {
			return &CorruptError{File: file, Offset: b.off, Reason: err.Error()}
		}
		if len(entries) == 0 || entries[0].hash != b.hash || (bi < len(sum.blocks)-1 && len(entries) != blockStride) {
			return corruptf(file, b.off, "stream block %d does not match the block directory", bi)
		}
		for i := range entries {
			e := &entries[i]
			if seen > 0 && (e.hash < prevHash || e.hash == prevHash && e.name <= prevName) {
				return corruptf(file, b.off, "stream block entries out of order at %q", e.name)
			}
			if streamHash(e.name) != e.hash {
				return corruptf(file, b.off, "stream block entry for %q has another stream's hash", e.name)
			}
			prevHash, prevName = e.hash, e.name
			seen++
			if err := fn(b.off, e); err != nil {
				return err
			}
		}
	}
	if seen != sum.NumStreams {
		return corruptf(file, summaryOff, "stream blocks hold %d entries, the summary says %d streams", seen, sum.NumStreams)
	}
	return nil
}

// streamNames returns the names of the checkpoint's streams that start
// with prefix (and maybe others: callers filter), read from its name
// blocks covering prefix (checkpoint version 2) or from all its stream
// blocks (version 1). A damaged checkpoint answers from a scan of the
// segment, as everywhere.
func (c *Checkpoint) streamNames(prefix string) ([]string, error) {
	var names []string
	err := func() error {
		sum, err := c.Summary()
		if err != nil {
			return err
		}
		if sum.hasNames {
			es, err := namesWithPrefix(c.f, c.Name, sum, prefix, CheckpointHeaderSize, c.Trailer.SummaryOff, nil)
			for _, e := range es {
				names = append(names, e.Name)
			}
			return err
		}
		read := func(b summaryBlock) ([]byte, error) { return readFrameAt(c.f, c.Name, b.off, b.len, KindBlock, nil) }
		return footerEntries(c.Name, sum, read, CheckpointHeaderSize, c.Trailer.SummaryOff, func(_ int64, e *namedEntry) error {
			names = append(names, e.name)
			return nil
		})
	}()
	if c.damaged(err) {
		x, err := c.rescue()
		if err != nil {
			return nil, err
		}
		names = names[:0]
		for name := range x.streams {
			names = append(names, name)
		}
		return names, nil
	}
	return names, err
}
