package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
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
			return openEvlog[EncPayload](dir)
		},
		DiskBytes: func(dir string) (int64, error) { return dirBytes(dir, ".seg") },
		Compact:   compactEvlog,
		CtlState:  ctlState,
	})
	register(&Contestant{
		Name:       "evlog-plain",
		Order:      1,
		Durability: "as evlog; the payload type has no CustomEncoder, so the typed view encodes it by reflection.",
		Open: func(dir string, writers int) (Store, error) {
			return openEvlog[Payload](dir)
		},
		Workloads: []string{WBatch1, WBatchMulti},
		NAReason:  "the same engine as evlog; this row differs only in the payload's encoder (appends)",
	})
}

// evlogPayload is the typed view's payload: EncPayload (a hand-written
// msgpack.CustomEncoder) for "evlog", Payload (reflection) for
// "evlog-plain". Both encode to the same bytes (TestEncPayloadBytes).
type evlogPayload interface{ Payload | EncPayload }

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

var foldSpec = replay.Spec[ItemCounts, evlog.Event[Payload]]{
	Init:   func() ItemCounts { return ItemCounts{} },
	Decode: foldCodec.Decode,
	Fold:   func(f ItemCounts, e evlog.Event[Payload]) ItemCounts { f.add(&e.Data); return f },
}

// snapshotEvery is how many events apart the fold's snapshots are (fewer
// on small logs, so that a quick run still has ten).
func snapshotEvery(last uint64) uint64 { return min(100_000, max(last/10, 1)) }

// ensureSnapshots takes the fold's snapshots once (a deployment takes them
// as the log grows; this setup is not part of any timing).
func (s *evlogStore[T]) ensureSnapshots() error {
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

type evlogStore[T evlogPayload] struct {
	ctx   context.Context
	l     *evlog.Log
	t     *evlog.TypedLog[T]
	parts []evlog.Batch[T]
	tevs  []evlog.Event[T]
}

func openEvlog[T evlogPayload](dir string) (*evlogStore[T], error) {
	l, err := evlog.Open(dir, evlog.Options{Sync: evlog.SyncAlways})
	if err != nil {
		return nil, err
	}
	return &evlogStore[T]{ctx: context.Background(), l: l, t: evlog.Typed[T](l)}, nil
}

// PrepareReads takes the fold's snapshots, untimed, when the suite has
// reopened a written log for the read workloads, as a deployment would
// have taken them while the log grew.
func (s *evlogStore[T]) PrepareReads() error { return s.ensureSnapshots() }

// AppendBatch appends the batch atomically with one typed AppendBatch:
// one part per run of consecutive events of the same stream (the log
// order, and so the recorded times, must stay as given).
func (s *evlogStore[T]) AppendBatch(evs []Ev) error {
	s.parts = s.parts[:0]
	if cap(s.tevs) < len(evs) {
		s.tevs = make([]evlog.Event[T], len(evs))
	}
	tevs := s.tevs[:len(evs)]
	for i := 0; i < len(evs); {
		j := i + 1
		for j < len(evs) && evs[j].Stream == evs[i].Stream {
			j++
		}
		for k := i; k < j; k++ {
			tevs[k] = evlog.Event[T]{Type: EventType, Time: evs[k].Time, Data: T(evs[k].Data)}
		}
		s.parts = append(s.parts, evlog.Batch[T]{Stream: evs[i].Stream, Expect: evlog.ExpectAny, Events: tevs[i:j]})
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

func (s *evlogStore[T]) Append(e *Ev) error {
	// Time left zero: stamped by the log's clock (concurrent writers'
	// explicit times could go backwards in seq order).
	_, err := s.t.Append(s.ctx, e.Stream, evlog.ExpectAny, evlog.Event[T]{Type: EventType, Data: T(e.Data)})
	return err
}

func (s *evlogStore[T]) ReadAll(fn func(seq uint64, p *Payload)) (int, error) {
	n := 0
	for ev, err := range s.t.Events(s.ctx, 0) {
		if err != nil {
			return n, err
		}
		n++
		p := Payload(ev.Data) // only the payload escapes, as with the other contestants
		fn(ev.Seq, &p)
	}
	return n, nil
}

// StateAt answers from the newest snapshot of the fold at or before t and
// the events after it.
func (s *evlogStore[T]) StateAt(t time.Time) (ItemCounts, error) {
	snaps, err := s.l.Snapshots()
	if err != nil {
		return nil, err
	}
	res, err := replay.State(s.ctx, s.l, snaps, foldSubject, replay.AtTime(t), foldSpec, replay.Options{})
	return res.State, err
}

func (s *evlogStore[T]) LoadStream(stream string) (int, error) {
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
func (s *evlogStore[T]) Stats() string {
	st := s.l.Stats()
	if st.Groups == 0 {
		return ""
	}
	return fmt.Sprintf("%.1f appends/group, %d fsyncs, fsync p50≤%v p99≤%v",
		float64(st.Appends)/float64(st.Groups), st.Fsyncs, st.FsyncQuantile(0.5), st.FsyncQuantile(0.99))
}

func (s *evlogStore[T]) Close() error { return s.l.Close() }

// ctlSnapshotEvery is how many events apart workload 10's snapshots are:
// every 100k events (issue 17's setting: at 2M events that is n/20), and
// n/20 on smaller logs so that a quick run still has 19.
func ctlSnapshotEvery(n int) int { return max(min(n/20, 100_000), 1) }

// ctlState is workload 10 for evlog: write a log of e.n events (workload
// 8's shape: batches of 1,000 over 1,000 streams) with `evlogctl snapshot`
// run after every ctlSnapshotEvery(n) events but the last interval's,
// close it, then time `evlogctl state --at T` (T three quarters into the
// last interval) and the same with --no-snapshot, e.reps times each,
// alternating. It returns the two medians in seconds.
func ctlState(e *ctlEnv) (with, without float64, err error) {
	every := ctlSnapshotEvery(e.n)
	last := (e.n - 1) / every * every // the newest snapshot's seq
	st, err := openEvlog[EncPayload](e.dir)
	if err != nil {
		return 0, 0, err
	}
	evs := make([]Ev, 0, 1000)
	for i := 0; i < e.n; {
		end := min(i+1000, e.n)
		if next := (i/every + 1) * every; next <= last && next < end {
			end = next
		}
		evs = evs[:0]
		for j := i; j < end; j++ {
			evs = append(evs, Ev{})
			typedEvent(WBatchMulti, j, 1000, &evs[len(evs)-1])
		}
		if err := st.AppendBatch(evs); err != nil {
			return 0, 0, errors.Join(err, st.Close())
		}
		i = end
		if i%every == 0 && i <= last {
			// The snapshot process reads what the open writer committed.
			if out, err := exec.Command(e.bin, "snapshot", e.dir).CombinedOutput(); err != nil {
				return 0, 0, errors.Join(fmt.Errorf("evlogctl snapshot at %d events: %w: %s", i, err, out), st.Close())
			}
		}
	}
	if err := st.Close(); err != nil {
		return 0, 0, err
	}
	idx := last + 3*(e.n-last)/4 // event index of T
	t := baseTime.Add(time.Duration(idx) * time.Millisecond)
	want := uint64(idx + 1)
	var ws, wos []float64
	for range e.reps {
		d, err := runCtlState(e.bin, e.dir, t, false, want, uint64(last))
		if err != nil {
			return 0, 0, err
		}
		ws = append(ws, d.Seconds())
		if d, err = runCtlState(e.bin, e.dir, t, true, want, 0); err != nil {
			return 0, 0, err
		}
		wos = append(wos, d.Seconds())
	}
	return median(ws), median(wos), nil
}
