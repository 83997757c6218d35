package evlog

import (
	"context"
	"strings"
	"sync/atomic"

	"github.com/vmihailenco/msgpack/v5"
)

// tombstones is the writer's set of tombstoned streams: those of the
// deletion table when the writer first needed it, plus the tombstones it
// staged since. The writer checks it while sequencing each append, so an
// append sequenced after a tombstone fails with ErrStreamDeleted even
// when both are in one group commit (Log.checkNotDeleted, before the
// append is queued, only sees committed tombstones). Only the writer
// goroutine uses it.
type tombstones struct {
	loaded bool
	set    map[string]uint64 // stream -> seq of its tombstone
	// none is set while the set is loaded and empty, for the appenders'
	// own check (Log.checkAppendDeleted), which then has nothing to look
	// up: cleared before a tombstone is staged, so before it can commit.
	none atomic.Bool
}

// check fails with a *StreamDeletedError when stream is tombstoned.
func (t *tombstones) check(w *writer, stream string) error {
	if t.loaded && len(t.set) == 0 || strings.HasPrefix(stream, SystemStreamPrefix) {
		return nil
	}
	if !t.loaded {
		if err := t.load(w); err != nil {
			return err
		}
	}
	if seq, ok := t.set[stream]; ok {
		return &StreamDeletedError{Stream: stream, Seq: seq}
	}
	return nil
}

// load reads the tombstones of the committed log.
func (t *tombstones) load(w *writer) error {
	l := w.l
	l.mu.RLock()
	v, pub := l.v, l.pub
	v.ref()
	l.mu.RUnlock()
	defer v.unref()
	tab, err := l.deletionsAt(context.Background(), v, pub)
	if err != nil {
		return err
	}
	t.set = make(map[string]uint64)
	for s, st := range tab.m {
		if st.tomb {
			t.set[s] = st.seq
		}
	}
	t.loaded = true
	t.none.Store(len(t.set) == 0)
	return nil
}

// staged notes the tombstones of r, just staged. A group that then fails
// either stops the writer for good or, out of space with nothing of it
// written, is undone by unstage.
func (t *tombstones) staged(w *writer, r *request) {
	if r.src != nil {
		return // typed batches never write system streams
	}
	for i, req := range r.batch {
		if req.Stream != DeletionsStream {
			continue
		}
		for j := range req.Events {
			if req.Events[j].Type != TypeTombstone {
				continue
			}
			// Load the committed ones first (this one is not among them);
			// on failure the next check loads and fails.
			if !t.loaded && t.load(w) != nil {
				return
			}
			t.none.Store(false)
			var mk marker
			if msgpack.Unmarshal(req.Events[j].Data, &mk) == nil && mk.Stream != "" {
				last := w.infos[w.partLast[r.part0+i]].Seq
				t.set[mk.Stream] = last - uint64(len(req.Events)-1-j)
			}
		}
	}
}

// unstage forgets the tombstones staged in a group that failed without
// stopping the writer (out of space, nothing of it written): they were
// never committed, so their streams stay writable. The committed ones are
// loaded again at the next check.
func (t *tombstones) unstage() {
	if !t.loaded || t.none.Load() {
		return // none committed, none staged
	}
	t.loaded, t.set = false, nil
	t.none.Store(false) // until loaded again: appenders check the committed table
}
