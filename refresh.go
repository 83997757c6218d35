package evlog

import (
	"github.com/evlog/evlog/segment"
)

// Refresh makes a log opened with OpenReadOnly see what the writer (in
// another process) has committed since Open or the last Refresh: new
// batches in the newest segment are scanned incrementally; after a roll the
// segment list is reloaded (and after the newest segment was replaced
// under its name). On a writer's log it does nothing (a writer's
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
	// A restore writing into the directory (the reader opened it empty,
	// or before the restore's files): not a log until it completes.
	if err := restoreMarked(dir.Other); err != nil {
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
		// The file held only grows: held shorter than the name's, it is
		// no longer the file under the name (an empty segment replaced
		// by one of the current format version, under the same name,
		// and appended to): reload.
		held, err := cur.HeldSize()
		if err != nil {
			return err
		}
		if held < size {
			return l.reload()
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
		if x.End <= v.active.End {
			return nil
		}
		l.mu.Lock()
		// The marks scanned too, even with no event after them: the next
		// Refresh continues from this index and judges the unmarked tail
		// by its durable end and the strictness of its last mark, as a
		// fresh open would.
		v.active.End, v.active.Durable = x.End, x.Durable
		v.active.Marked, v.active.Strict = x.Marked, x.Strict
		if len(infos) == 0 {
			l.setEndLocked(x.End) // a mark alone
			l.mu.Unlock()
			return nil
		}
		newStreams := uint64(0)
		for _, e := range infos {
			v.active.Add(e)
			if e.Version == 1 {
				newStreams++
			}
		}
		last := infos[len(infos)-1]
		// A reader serves only durable batches.
		l.commitLocked(published{seq: last.Seq, time: last.Time, end: x.End, streams: l.pub.streams + newStreams}, last.Seq)
		l.mu.Unlock()
		return nil
	}
	// The segment list changed (a roll, a compaction): reload it.
	return l.reload()
}

// reload reloads a read-only log's view from the directory (l's
// refreshMu held).
func (l *Log) reload() error {
	rec, err := recoverBesideWriter(l.fs, l.logger)
	if err != nil {
		return err
	}
	segs := make([]*segHandle, len(rec.segs))
	for i, s := range rec.segs {
		segs[i] = l.segHandle(s)
	}
	l.mu.Lock()
	l.logID = rec.logID
	l.loadLocked(segs, rec.active)
	l.mu.Unlock()
	return nil
}
