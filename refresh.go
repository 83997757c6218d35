package evlog

import (
	"github.com/evlog/evlog/segment"
)

// Refresh makes a log opened with OpenReadOnly see what the writer (in
// another process) has committed since Open or the last Refresh: new
// batches in the newest segment are scanned incrementally; after a roll the
// segment list is reloaded. On a writer's log it does nothing (a writer's
// reads are always current). Safe for concurrent use.
func (l *Log) Refresh() error {
	if !l.readOnly {
		return nil
	}
	l.refreshMu.Lock()
	defer l.refreshMu.Unlock()
	v, pub, err := l.acquire()
	if err != nil {
		return err
	}
	defer v.unref()
	dir, err := segment.ReadDir(l.fs)
	if err != nil {
		return err
	}
	newest, _ := dir.Newest()
	if n := len(v.segs); n > 0 && v.active != nil && v.segs[n-1].Name == newest.Name {
		cur := v.segs[n-1]
		size, err := l.fs.Stat(cur.Name)
		if err != nil {
			return err
		}
		if size <= pub.end {
			return nil
		}
		opts := segment.ScanOptions{File: cur.Name, Continue: v.active, CollectInfos: true}
		sr, err := segment.Scan(cur.File(), cur.Header, size, opts)
		if err != nil {
			return err
		}
		if sr, err = durablePrefix(cur.Segment, cur.Name, sr, opts); err != nil {
			return err
		}
		x, infos := sr.Index, sr.Infos
		if len(infos) == 0 {
			return nil
		}
		l.mu.Lock()
		newStreams := uint64(0)
		for _, e := range infos {
			v.active.Add(e)
			if e.Version == 1 {
				newStreams++
			}
		}
		v.active.End = x.End
		last := infos[len(infos)-1]
		l.pub = published{seq: last.Seq, time: last.Time, end: x.End, streams: l.pub.streams + newStreams}
		l.setDurableLocked(last.Seq) // a reader serves only durable batches
		l.broadcastLocked()
		l.mu.Unlock()
		return nil
	}
	// The segment list changed (a roll, a compaction): reload it.
	rec, err := recoverBesideWriter(l.fs, l.logger)
	if err != nil {
		return err
	}
	segs := make([]*segHandle, len(rec.segs))
	for i, s := range rec.segs {
		segs[i] = l.segHandle(s)
	}
	nv := newView(segs, rec.active)
	l.mu.Lock()
	old := l.v
	l.v, l.pub, l.logID = nv, initialPublished(segs, rec.active), rec.logID
	l.setDurableLocked(l.pub.seq) // a reader serves only durable batches
	l.broadcastLocked()
	l.mu.Unlock()
	old.unref()
	return nil
}

// broadcastLocked wakes everything waiting for new events; l.mu is held.
func (l *Log) broadcastLocked() {
	close(l.notify)
	l.notify = make(chan struct{})
}
