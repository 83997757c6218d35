package evlog

import "time"

// The commit step of a written group: adding its events to the active
// index and building its requests' positions. Under SyncAlways it runs on
// another goroutine while the writer waits for the group's fsync (that
// wait is otherwise idle CPU on the appenders' path); under the other
// modes, inline.

// asyncIndexEvents is the smallest group indexAsync takes: a smaller one
// is indexed in a few µs, less than handing it to another goroutine
// costs; and with many appenders, whose small groups these are, that
// goroutine waits behind the appenders the last group released, which
// delays the group's acknowledgement (64 appenders of one event each
// lost 8% of their throughput).
const asyncIndexEvents = 256

// indexAsync runs index (under l.mu) and positions on a new goroutine and
// returns a channel closed when they are done. The writer must not touch
// the group's staging state (infos, infoSV, partLast, group) until then:
// the goroutine owns it meanwhile.
func (w *writer) indexAsync() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.l.mu.Lock()
		w.index()
		w.l.mu.Unlock()
		w.positions()
	}()
	return done
}

// index adds the staged group to the active index. The caller holds l.mu.
// Events beyond the published end are invisible to readers, who read the
// index only up to a published end (read_stream.go, filter.go, …).
func (w *writer) index() {
	w.idx.AddBatch(w.infos)
	for i, sv := range w.infoSV { // AddBatch set every Postings
		sv.sp, sv.in = w.infos[i].Postings, w.idx
	}
}

// positions sets each request of the group to the positions of its parts'
// last events, as the append returns them.
func (w *writer) positions() {
	for _, r := range w.group {
		parts := w.partLast[r.part0:]
		if r.src != nil {
			parts = parts[:r.src.parts()]
		} else {
			parts = parts[:len(r.batch)]
		}
		pos := make([]Position, len(parts))
		for i, k := range parts {
			e := &w.infos[k]
			pos[i] = Position{Seq: e.Seq, Version: e.Version, Time: time.Unix(0, e.Time).UTC()}
		}
		r.pos = pos
	}
}
