package evlog

import "github.com/evlog/evlog/segment"

// The publish protocol: how the log's shared state changes, in one place.
//
// The state readers see is l.v (the view: the segments, and the active
// segment's index), l.pub (the published state: the last visible seq and
// where the visible frames end), l.notify (closed and replaced when events
// become visible) and l.durableSeq with l.durableCh (closed and replaced
// when durableSeq grows, or to make WaitDurable look at the writer's
// failure). Only the methods in this file assign them, and every one of
// them runs with l.mu held for writing (the Locked suffix): the writer
// goroutine, Compact, Refresh, Open and Close call them.
//
// Readers take l.mu for reading and see a consistent instant: acquire
// returns the view and the published state together, and every event up
// to pub.seq is in that view. Within one publish the order is: the active
// index is extended (by the caller, under the same lock), then pub, then
// durableSeq, then the waiters are woken; a waiter woken by notify or
// durableCh rereads the state under l.mu, so it never sees a seq it was
// woken for that is not yet visible, nor a durableSeq beyond pub.seq. A
// view replaced by swapViewLocked is released at once; readers that took
// a reference keep its segments open until they release it.

// published is the state readers may see: everything up to seq, which in
// the active segment ends at end.
type published struct {
	seq     uint64 // last visible seq (0: empty log)
	time    int64  // its recorded time, unix ns
	end     int64  // end of the visible frames in the newest segment
	streams uint64 // number of streams with visible events
}

// initialPublished is the published state of a freshly loaded segment
// list: the sealed segments' trailers, then the active index.
func initialPublished(segs []*segHandle, active *segment.Index) published {
	var p published
	for _, s := range segs {
		if s.Sealed {
			p.seq = s.Trailer.LastSeq
			p.streams += uint64(s.Trailer.NewStreams)
			if s.Trailer.Count > 0 {
				p.time = s.Trailer.LastTime
			}
		}
	}
	if active != nil {
		p.end = active.End
		p.streams += uint64(active.NewStreams)
		if active.Count > 0 {
			p.seq, p.time = active.LastSeq, active.LastTime
		}
	}
	return p
}

// acquire returns the current view (referenced: call unref) and the
// published state, or ErrClosed.
func (l *Log) acquire() (*view, published, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, published{}, ErrClosed
	}
	l.v.ref()
	return l.v, l.pub, nil
}

// loadLocked installs a freshly loaded segment list (Open, and Refresh
// after a roll or compaction): a new view, the published state its
// segments give, every event of it durable (a writer fsyncs what recovery
// kept before appending; a reader serves only durable batches), and the
// waiters woken.
func (l *Log) loadLocked(segs []*segHandle, active *segment.Index) {
	l.swapViewLocked(segs, active)
	p := initialPublished(segs, active)
	l.commitLocked(p, p.seq)
}

// swapViewLocked replaces the view (a new segment, a seal, a compaction,
// a materialized active index) and releases the old one. It publishes no
// event: the caller keeps pub consistent with the new view.
func (l *Log) swapViewLocked(segs []*segHandle, active *segment.Index) {
	old := l.v
	l.v = newView(segs, active)
	if old != nil {
		old.unref()
	}
}

// commitLocked publishes p (new events, already added to the active index)
// and wakes the readers waiting for them. durable is the seq up to which
// they are durable now (0, or a seq not beyond the durable one: no change).
func (l *Log) commitLocked(p published, durable uint64) {
	l.pub = p
	l.setDurableLocked(durable)
	l.broadcastLocked()
}

// setEndLocked moves the end of the visible frames of the newest segment
// without publishing events (a mark frame, a new empty segment): nobody is
// woken.
func (l *Log) setEndLocked(end int64) {
	l.pub.end = end
}

// setDurableLocked advances durableSeq and wakes WaitDurable.
func (l *Log) setDurableLocked(seq uint64) {
	if seq > l.durableSeq {
		l.durableSeq = seq
		l.wakeDurableLocked()
	}
}

// wakeDurableLocked wakes WaitDurable without advancing durableSeq (the
// writer failed: the waiters see it).
func (l *Log) wakeDurableLocked() {
	close(l.durableCh)
	l.durableCh = make(chan struct{})
}

// broadcastLocked wakes everything waiting for new events.
func (l *Log) broadcastLocked() {
	close(l.notify)
	l.notify = make(chan struct{})
}

// closeLocked is the last publish (Close, once the writer stopped): the
// view is released and every waiter woken for good.
func (l *Log) closeLocked() {
	l.v.unref()
	close(l.notify)
	close(l.durableCh)
}
