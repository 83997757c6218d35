package evlog

import (
	"context"
	"fmt"

	"github.com/evlog/evlog/segment"
)

// The writer's index of the IDs in the log (see dedupe.go): built from the
// sealed segments' ID tables and the records of the rest, then kept up to
// date as groups stage and commit.

// idIndex maps the IDs of the log's events (the last window of them) to
// their seqs, by segment.IDHash (the hash of the sealed segments' ID
// tables): committed entries in an idSet, the staged
// group's in staged. A hash hit is a candidate, confirmed by reading the
// event. Owned by the writer (the holder of writer.busy).
type idIndex struct {
	set idSet
	// staged lists the IDs entered by the staged group, in seq order.
	staged []stagedID
	window uint64   // 0: the whole log
	cands  []uint64 // scratch
	// hashes holds the hashes of the IDs of the events of req (0 for
	// events without an ID), in order, as dedupe computed them: stage
	// enters them without hashing again. nil req: none.
	hashes []uint64
	req    *request
}

type stagedID struct {
	h, seq uint64
	id     string
}

func (x *idIndex) hash(id string) uint64 { return segment.IDHash(id) }

// inWindow reports whether seq is within the window of a log whose last
// committed seq is last (staged seqs are).
func (x *idIndex) inWindow(seq, last uint64) bool {
	return x.window == 0 || seq+x.window > last
}

// has reports whether an entry (committed or staged) may have hash h.
func (x *idIndex) has(h uint64) bool { return x.set.mayContain(h) }

// appendSeqs appends the seqs of the entries with hash h, committed and
// staged.
func (x *idIndex) appendSeqs(dst []uint64, h uint64) []uint64 {
	dst = x.set.appendSeqs(dst, h)
	for _, e := range x.staged {
		if e.h == h {
			dst = append(dst, e.seq)
		}
	}
	return dst
}

// stage enters id, whose hash is h (of the staged event seq); false if
// an event staged before it holds the same ID (dedupe found none in the
// log before staging, so it is one of the same append).
func (x *idIndex) stage(id string, h, seq uint64) bool {
	if x.set.add(h, x.staged) {
		for _, e := range x.staged {
			if e.h == h && e.id == id {
				return false
			}
		}
	}
	x.staged = append(x.staged, stagedID{h, seq, id})
	return true
}

// unstage removes the IDs staged from mark on (their filter bits stay
// until the filter is rebuilt).
func (x *idIndex) unstage(mark int) {
	clear(x.staged[mark:])
	x.staged = x.staged[:mark]
}

// commit keeps the staged IDs (their group is written; last is its last
// seq) and drops those that left the window.
func (x *idIndex) commit(last uint64) {
	var keep func(uint64) bool
	if x.window != 0 {
		keep = func(seq uint64) bool { return x.inWindow(seq, last) }
	}
	for _, e := range x.staged {
		x.set.insert(e.h, e.seq, keep)
	}
	clear(x.staged)
	x.staged = x.staged[:0]
}

// buildIDs reads the IDs of the events in the window into a new index:
// from the ID tables of the sealed segments that have one (their footers,
// not their records), and by reading the events of the others (the
// active segment, and segments written before format version 3).
func (w *writer) buildIDs() (*idIndex, error) {
	x := &idIndex{window: uint64(w.opts.DedupeWindow)}
	from := uint64(1)
	if x.window != 0 && w.lastSeq > x.window {
		from = w.lastSeq - x.window + 1
	}
	if w.lastSeq >= from {
		if err := w.indexIDs(x, from); err != nil {
			return nil, fmt.Errorf("evlog: indexing the log's event IDs: %w", err)
		}
	}
	x.set.rebuild(nil)
	return x, nil
}

// indexIDs enters the IDs of the events from seq from to w.lastSeq into x.
func (w *writer) indexIDs(x *idIndex, from uint64) error {
	l := w.l
	l.mu.RLock()
	v := l.v
	v.ref()
	l.mu.RUnlock()
	defer v.unref()
	var ids []segment.IDEntry
	scanFrom := uint64(0) // > 0: a run of segments without a table to read, from there
	for i, s := range v.segs {
		last := w.lastSeq
		if i+1 < len(v.segs) {
			last = v.segs[i+1].FirstSeq() - 1
		}
		if last < from || s.FirstSeq() > w.lastSeq {
			continue
		}
		if s.Sealed {
			var (
				ok  bool
				err error
			)
			if ids, ok, err = s.IDTable(ids); err != nil {
				return err
			}
			if ok {
				if scanFrom > 0 {
					if err := w.scanIDs(x, scanFrom, s.FirstSeq()-1); err != nil {
						return err
					}
					scanFrom = 0
				}
				for _, e := range ids {
					if e.Seq >= from && e.Seq <= w.lastSeq {
						x.set.insert(e.Hash, e.Seq, nil)
					}
				}
				continue
			}
		}
		if scanFrom == 0 {
			scanFrom = max(from, s.FirstSeq())
		}
	}
	if scanFrom > 0 {
		return w.scanIDs(x, scanFrom, w.lastSeq)
	}
	return nil
}

// scanIDs enters the IDs of the events from seq from to to into x, read
// from the records.
func (w *writer) scanIDs(x *idIndex, from, to uint64) error {
	if from > to {
		return nil
	}
	return w.scan(from, to, func(e *Envelope) error {
		if e.ID != "" {
			x.set.insert(x.hash(e.ID), e.Seq, nil)
		}
		return nil
	})
}

// scan is Log.scan for the writer's own reads: they see every committed
// event, also while Close drains the queue (Log.scan fails with ErrClosed
// once Close began), and also the events that read as gone (deleted,
// truncated or expired, not yet compacted), so that a retry of an append
// deleted since is still recognised instead of written again.
func (w *writer) scan(from, to uint64, fn func(e *Envelope) error) error {
	l := w.l
	l.mu.RLock()
	v, pub := l.v, l.pub
	v.ref()
	l.mu.RUnlock()
	defer v.unref()
	return l.scanAllIn(context.Background(), v, pub, from, to, fn)
}

// idHash returns the hash of id, the ID of event k (counting from 0 across
// parts) of r: the one dedupe computed, if it did for r.
func (x *idIndex) idHash(r *request, k int, id string) uint64 {
	if x.req == r && k < len(x.hashes) {
		return x.hashes[k]
	}
	return x.hash(id)
}
