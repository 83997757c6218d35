package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/replay"
)

// evlog under SyncAlways, driven through its typed view: AppendBatch of
// TypedLog.Request parts, TypedLog.Append, Events, Range, Stream, SeqAt.
func init() {
	register(&Contestant{
		Name:       "evlog",
		Order:      1,
		Durability: "Options{Sync: SyncAlways}: Append/AppendBatch return only after an fsync(2) (os.File.Sync) of the active segment covering the batch; concurrent appenders share fsyncs (group commit).",
		Open: func(dir string, writers int) (Store, error) {
			return openEvlog(dir)
		},
		DiskBytes: func(dir string) (int64, error) { return dirBytes(dir, ".seg") },
		Compact:   compactEvlog,
	})
}

// compactEvlog is the hook for `evlogctl compact`: it reopens the closed
// log in dir, runs Log.Compact with Compress (what `evlogctl compact
// -compress` does: merge sealed segments and zstd-compress their records;
// the active segment is never touched) and returns the *.seg bytes after.
func compactEvlog(dir string) (int64, error) {
	l, err := evlog.Open(dir, evlog.Options{Sync: evlog.SyncAlways})
	if err != nil {
		return 0, err
	}
	_, err = l.Compact(context.Background(), evlog.CompactOptions{Compress: true})
	if err = errors.Join(err, l.Close()); err != nil {
		return 0, err
	}
	return dirBytes(dir, ".seg")
}

// foldSubject and foldSpec are the workload-4 fold as a replay subject:
// snapshots of it let evlog answer "state at t" from the newest snapshot
// at or before t plus the events after it.
var foldSubject = replay.Subject{Name: "bench/items", SchemaVersion: 1}

var foldCodec = evlog.NewCodec[Payload](nil)

var foldSpec = replay.Spec[Fold, evlog.Event[Payload]]{
	Init:   func() Fold { return Fold{} },
	Decode: foldCodec.Decode,
	Fold:   func(f Fold, e evlog.Event[Payload]) Fold { f.add(&e.Data); return f },
}

// snapshotEvery is how many events apart the fold's snapshots are (fewer
// on small logs, so that a quick run still has ten).
func snapshotEvery(last uint64) uint64 { return min(100_000, max(last/10, 1)) }

// ensureSnapshots takes the fold's snapshots once (a deployment takes them
// as the log grows; this setup is not part of any timing).
func (s *evlogStore) ensureSnapshots() error {
	last := s.l.LastSeq()
	snaps, err := s.l.Snapshots()
	if err != nil || last == 0 {
		return err
	}
	if have, err := snaps.List(foldSubject.Name); err != nil || len(have) > 0 {
		return err
	}
	every := snapshotEvery(last)
	for seq := every; seq <= last; seq += every {
		res, err := replay.State(s.ctx, s.l, snaps, foldSubject, replay.AtSeq(seq), foldSpec, replay.Options{})
		if err != nil {
			return err
		}
		if _, _, err := replay.Save(s.ctx, snaps, s.l.LogID(), foldSubject, foldSpec, res); err != nil {
			return err
		}
	}
	return nil
}

type evlogStore struct {
	ctx   context.Context
	l     *evlog.Log
	t     *evlog.TypedLog[Payload]
	parts []evlog.Batch[Payload]
	tevs  []evlog.Event[Payload]
}

func openEvlog(dir string) (*evlogStore, error) {
	l, err := evlog.Open(dir, evlog.Options{Sync: evlog.SyncAlways})
	if err != nil {
		return nil, err
	}
	s := &evlogStore{ctx: context.Background(), l: l, t: evlog.Typed[Payload](l)}
	// Reopened on a written log (the read workloads): take the fold's
	// snapshots now, untimed, as a deployment would have taken them while
	// the log grew.
	if err := s.ensureSnapshots(); err != nil {
		return nil, errors.Join(err, l.Close())
	}
	return s, nil
}

// AppendBatch appends the batch atomically with one typed AppendBatch:
// one part per run of consecutive events of the same stream (the log
// order, and so the recorded times, must stay as given).
func (s *evlogStore) AppendBatch(evs []Ev) error {
	s.parts = s.parts[:0]
	if cap(s.tevs) < len(evs) {
		s.tevs = make([]evlog.Event[Payload], len(evs))
	}
	tevs := s.tevs[:len(evs)]
	for i := 0; i < len(evs); {
		j := i + 1
		for j < len(evs) && evs[j].Stream == evs[i].Stream {
			j++
		}
		for k := i; k < j; k++ {
			tevs[k] = evlog.Event[Payload]{Type: EventType, Time: evs[k].Time, Data: evs[k].Data}
		}
		s.parts = append(s.parts, evlog.Batch[Payload]{Stream: evs[i].Stream, Expect: evlog.ExpectAny, Events: tevs[i:j]})
		i = j
	}
	pos, err := s.t.AppendBatch(s.ctx, s.parts)
	if err != nil {
		return err
	}
	// The data set's versions are precomputed: check evlog agrees.
	k := 0
	for i, p := range s.parts {
		k += len(p.Events)
		if want := evs[k-1].Version; pos[i].Version != want {
			return fmt.Errorf("evlog assigned version %d to the last event of %q in this batch, the data set says %d", pos[i].Version, p.Stream, want)
		}
	}
	return nil
}

func (s *evlogStore) Append(e *Ev) error {
	// Time left zero: stamped by the log's clock (concurrent writers'
	// explicit times could go backwards in seq order).
	_, err := s.t.Append(s.ctx, e.Stream, evlog.ExpectAny, evlog.Event[Payload]{Type: EventType, Data: e.Data})
	return err
}

func (s *evlogStore) ReadAll(fn func(seq uint64, p *Payload)) (int, error) {
	n := 0
	for ev, err := range s.t.Events(s.ctx, 0) {
		if err != nil {
			return n, err
		}
		n++
		p := ev.Data // only the payload escapes, as with the other contestants
		fn(ev.Seq, &p)
	}
	return n, nil
}

// StateAt answers from the newest snapshot of the fold at or before t and
// the events after it.
func (s *evlogStore) StateAt(t time.Time) (Fold, error) {
	snaps, err := s.l.Snapshots()
	if err != nil {
		return nil, err
	}
	res, err := replay.State(s.ctx, s.l, snaps, foldSubject, replay.AtTime(t), foldSpec, replay.Options{})
	return res.State, err
}

func (s *evlogStore) LoadStream(stream string) (int, error) {
	n := 0
	for _, err := range s.t.Stream(s.ctx, stream, 0) {
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Stats summarises the writer's group commit and fsyncs (reported in the
// notes of the single-append rows).
func (s *evlogStore) Stats() string {
	st := s.l.Stats()
	if st.Groups == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f appends/group, %d fsyncs, fsync p50≤%v p99≤%v",
		float64(st.Appends)/float64(st.Groups), st.Fsyncs, st.FsyncQuantile(0.5), st.FsyncQuantile(0.99))
}

func (s *evlogStore) Close() error { return s.l.Close() }
