package segment

// idChunk is how many entries one chunk of an idList holds (64 KiB).
const idChunk = 4096

// idList is the (IDHash, seq) list of an index's events carrying an ID, in
// seq order, kept in fixed-size chunks: appending never copies what is
// already there. A growing slice would copy and re-allocate its entries
// about four times over as the active segment fills (Go grows large
// slices by a quarter), which cost the writer about an eighth of its CPU
// on batches of IDs. Owned by the index's writer; the zero value is empty.
type idList struct {
	chunks [][]IDEntry
	n      int
}

// add appends e.
func (l *idList) add(e IDEntry) {
	if k := len(l.chunks); k == 0 || len(l.chunks[k-1]) == idChunk {
		l.chunks = append(l.chunks, make([]IDEntry, 0, idChunk))
	}
	last := &l.chunks[len(l.chunks)-1]
	*last = append(*last, e)
	l.n++
}

// len returns the number of entries.
func (l *idList) len() int { return l.n }

// all returns a new slice holding every entry, in order.
func (l *idList) all() []IDEntry {
	out := make([]IDEntry, 0, l.n)
	for _, c := range l.chunks {
		out = append(out, c...)
	}
	return out
}
