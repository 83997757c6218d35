package evlog

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

// rollPause holds a writer inside a roll: the new segment created, the old
// one about to be sealed (the seal's write). w writes through the FS it
// returns; arm it before the append that rolls.
type rollPause struct {
	armed   atomic.Bool
	created atomic.Value // the new segment's name, once renamed into place
	paused  chan struct{}
	resume  chan struct{}
	once    sync.Once
}

func newRollPause() *rollPause {
	return &rollPause{paused: make(chan struct{}), resume: make(chan struct{})}
}

func (p *rollPause) inject(op vfs.Op) error {
	if !p.armed.Load() {
		return nil
	}
	switch {
	case op.Kind == vfs.OpRename && strings.HasSuffix(op.NewName, segment.Ext):
		p.created.Store(op.NewName)
	case op.Kind == vfs.OpWrite && p.created.Load() != nil && strings.TrimSuffix(op.Name, segment.TempExt) != p.created.Load():
		// The seal (a segment's file keeps the temporary's name it was
		// created under).
		p.armed.Store(false)
		close(p.paused)
		<-p.resume
	}
	return nil
}

func (p *rollPause) release() { p.once.Do(func() { close(p.resume) }) }

// TestReadersBesideSealAndAppend: a reader lists the directory in the
// middle of a roll (segment N+1 created, N not yet sealed) and opens N
// unsealed; before it opens N+1 the writer seals N and appends a batch to
// N+1. The listing is the same before and after (N and N+1): only the
// files' contents moved on. A read-only open, Refresh and Verify must not
// report that as "a segment that is not the newest but is not sealed".
func TestReadersBesideSealAndAppend(t *testing.T) {
	ctx := t.Context()
	type reader struct {
		name string
		// run reads beside the writer; acked is the last seq
		// acknowledged when it starts.
		run func(fsys vfs.FS, follower *Log, acked uint64) error
	}
	for _, r := range []reader{
		{"open", func(fsys vfs.FS, _ *Log, acked uint64) error {
			l, err := openFS(fsys, Options{}, true)
			if err != nil {
				return err
			}
			defer l.Close()
			return servesPrefix(t, l, acked)
		}},
		{"refresh", func(_ vfs.FS, l *Log, acked uint64) error {
			if err := l.Refresh(); err != nil {
				return err
			}
			return servesPrefix(t, l, acked)
		}},
		{"verify", func(fsys vfs.FS, _ *Log, _ uint64) error {
			rep, err := besideWriter(fsys, func(*segment.Dir) (VerifyReport, error) { return verifyFS(ctx, fsys) },
				func(r VerifyReport, err error) bool { return err != nil || r.Corrupt() })
			if err == nil && rep.Corrupt() {
				return &segment.CorruptError{File: rep.Findings[0].File, Reason: rep.Findings[0].Reason}
			}
			return err
		}},
	} {
		t.Run(r.name, func(t *testing.T) {
			mem := vfs.NewMem()
			p := newRollPause()
			w, err := openFS(vfs.NewFaulty(mem, p.inject), Options{SegmentSize: MinSegmentSize}, false)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			defer p.release()
			ev := Envelope{Type: "t", Data: make([]byte, 200)}
			for w.LastSeq() < 10 || len(w.v.segs) < 2 {
				if _, err := w.Append(ctx, "s", ExpectAny, ev); err != nil {
					t.Fatal(err)
				}
			}
			// Fill the active segment up to the batch that rolls.
			first := w.v.segs[len(w.v.segs)-1].Name
			// The reader's FS calls onOpen before each file it opens.
			var onOpen atomic.Pointer[func(name string)]
			rfs := vfs.NewFaulty(vfs.ReadOnly(mem), func(op vfs.Op) error {
				if f := onOpen.Load(); f != nil && op.Kind == vfs.OpOpen {
					(*f)(op.Name)
				}
				return nil
			})
			var follower *Log
			if r.name == "refresh" {
				if follower, err = openFS(rfs, Options{}, true); err != nil {
					t.Fatal(err)
				}
				defer follower.Close()
			}
			var appended chan error
			var acked uint64
			for {
				acked = w.LastSeq()
				p.armed.Store(true)
				appended = make(chan error, 1)
				go func() {
					_, err := w.Append(ctx, "s", ExpectAny, ev)
					appended <- err
				}()
				select {
				case <-p.paused:
				case err := <-appended:
					p.armed.Store(false)
					if err != nil {
						t.Fatal(err)
					}
					if w.v.segs[len(w.v.segs)-1].Name == first {
						continue // no roll yet
					}
					t.Fatalf("rolled without pausing (after seq %d)", acked)
				}
				break
			}
			next := p.created.Load().(string)
			var once sync.Once
			f := func(name string) {
				if name != next {
					return
				}
				once.Do(func() {
					// The reader has opened N, unsealed: let the writer
					// seal it and append to N+1.
					p.release()
					if err := <-appended; err != nil {
						t.Error(err)
					}
					if _, err := w.Append(ctx, "s", ExpectAny, ev); err != nil {
						t.Error(err)
					}
				})
			}
			onOpen.Store(&f)
			if err := r.run(rfs, follower, acked); err != nil {
				t.Fatalf("%s beside a writer sealing N and appending to N+1: %v", r.name, err)
			}
		})
	}
}

// servesPrefix checks that l serves seqs 1..LastSeq in order, and at least
// up to acked.
func servesPrefix(t *testing.T, l *Log, acked uint64) error {
	t.Helper()
	want := uint64(1)
	for e, err := range l.Events(t.Context(), 1) {
		if err != nil {
			return err
		}
		if e.Seq != want {
			return fmt.Errorf("served seq %d, want %d", e.Seq, want)
		}
		want++
	}
	if last := want - 1; last < acked || last != l.LastSeq() {
		return fmt.Errorf("served seqs 1..%d (LastSeq %d), acknowledged %d", last, l.LastSeq(), acked)
	}
	return nil
}

// warnRecorder is a slog handler keeping the messages of warnings.
type warnRecorder struct {
	mu   *sync.Mutex
	msgs *[]string
}

func newWarnRecorder() warnRecorder { return warnRecorder{mu: new(sync.Mutex), msgs: new([]string)} }

func (h warnRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h warnRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool { msg += " " + a.String(); return true })
	*h.msgs = append(*h.msgs, msg)
	return nil
}
func (h warnRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h warnRecorder) WithGroup(string) slog.Handler      { return h }

func (h warnRecorder) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := *h.msgs
	*h.msgs = nil
	return out
}

// TestReadersAtEveryWriterOp pauses a writer before each of its file
// operations — appends over checkpoints and rolls, a durable
// subscription's acks, a stream's deletion and the compaction that
// redacts it, snapshot saves and a prune, Close (the final checkpoint), a
// second writer's recovery — and at each instant runs the readers: a
// read-only open (events, streams, filtered events, a stream, SeqAt,
// segments, subscriptions, snapshots, deletions), Refresh of a reader
// opened at the start, and Verify. None may fail, warn or report damage,
// none may modify anything (they read through vfs.ReadOnly), and each
// serves at least what was acknowledged.
func TestReadersAtEveryWriterOp(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	ro := vfs.ReadOnly(mem)
	warns := newWarnRecorder()
	ropts := Options{Logger: slog.New(warns)}
	var (
		mu       sync.Mutex // guards streamOf and the instants' count
		streamOf = map[uint64]string{}
		acked    atomic.Uint64
		instants int
		follower *Log
	)
	const gone = "gone-1" // the stream deleted, whose events may read as gone
	check := func(op vfs.Op) {
		mu.Lock()
		defer mu.Unlock()
		instants++
		fail := func(format string, args ...any) {
			t.Helper()
			t.Errorf("before %v: "+format, append([]any{op}, args...)...)
		}
		want := acked.Load()
		served := func(what string, l *Log) {
			var prev uint64
			missing := uint64(1)
			for e, err := range l.Events(ctx, 1) {
				if err != nil {
					fail("%s: Events: %v", what, err)
					return
				}
				if e.Seq <= prev {
					fail("%s: seq %d after %d", what, e.Seq, prev)
					return
				}
				for ; missing < e.Seq; missing++ {
					if s, ok := streamOf[missing]; ok && s != gone {
						fail("%s: seq %d (stream %s) not served", what, missing, s)
						return
					}
				}
				prev, missing = e.Seq, e.Seq+1
			}
			if l.LastSeq() < want {
				fail("%s: serves up to seq %d, %d acknowledged", what, l.LastSeq(), want)
			}
		}
		r, err := openFS(ro, ropts, true)
		if err != nil {
			fail("read-only open: %v", err)
		} else {
			served("read-only open", r)
			for s, err := range r.Streams(ctx, "") {
				if err != nil {
					fail("Streams: %v", err)
					break
				}
				for _, err := range r.Stream(ctx, s.Stream, 1) {
					if err != nil {
						fail("Stream %s: %v", s.Stream, err)
						break
					}
				}
			}
			for _, err := range r.EventsFiltered(ctx, 1, Filter{StreamPrefixes: []string{"s-2"}, Types: []string{"t1"}}) {
				if err != nil {
					fail("EventsFiltered: %v", err)
					break
				}
			}
			if _, err := r.SeqAt(ctx, t0.Add(time.Minute)); err != nil {
				fail("SeqAt: %v", err)
			}
			if _, err := r.Segments(); err != nil {
				fail("Segments: %v", err)
			}
			if _, err := r.Subscriptions(); err != nil {
				fail("Subscriptions: %v", err)
			}
			if _, err := r.Deletions(ctx); err != nil {
				fail("Deletions: %v", err)
			}
			if store, err := r.Snapshots(); err != nil {
				fail("Snapshots: %v", err)
			} else if metas, err := store.List(""); err != nil {
				fail("snapshot List: %v", err)
			} else {
				for _, m := range metas {
					if _, err := store.Load(ctx, m); err != nil {
						fail("snapshot Load %s: %v", m.File, err)
					}
				}
			}
			r.Close()
		}
		if follower != nil {
			if err := follower.Refresh(); err != nil {
				fail("Refresh: %v", err)
			} else {
				served("Refresh", follower)
			}
		}
		rep, err := verifyFS(ctx, ro)
		if err != nil || rep.Corrupt() {
			fail("Verify: %v %v", rep.Findings, err)
		}
		for _, w := range warns.take() {
			fail("a reader warned: %s", w)
		}
	}
	var armed atomic.Bool
	fsys := vfs.NewFaulty(mem, func(op vfs.Op) error {
		// Lock too: a snapshot's Save locks its temporary (creating it)
		// before it creates it.
		if armed.Load() && (op.Kind.Mutating() || op.Kind == vfs.OpLock) {
			check(op)
		}
		return nil
	})
	wopts := Options{SegmentSize: MinSegmentSize, Clock: fakeClock(t0, time.Millisecond)}
	w := openMem(t, fsys, wopts)
	defer func() { w.Close() }()
	n := 0
	appendN := func(l *Log, batches int) {
		t.Helper()
		for range batches {
			stream := []string{"s-1", "s-2", gone}[n%3]
			typ := []string{"t1", "t2"}[n%2]
			n++
			evs := []Envelope{{Type: typ, Data: make([]byte, 150)}, {Type: typ, Data: make([]byte, 10)}}
			pos, err := l.Append(ctx, stream, ExpectAny, evs...)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			for s := pos.Seq - uint64(len(evs)) + 1; s <= pos.Seq; s++ {
				streamOf[s] = stream
			}
			mu.Unlock()
			acked.Store(pos.Seq)
		}
	}
	appendN(w, 2)
	var err error
	if follower, err = openFS(ro, ropts, true); err != nil {
		t.Fatal(err)
	}
	defer follower.Close()
	armed.Store(true)
	appendN(w, 30) // checkpoints and rolls
	sub, err := w.Subscription("sub-1", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{3, 9} {
		if err := sub.Ack(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	sub.Close()
	if _, _, err := w.DeleteStream(ctx, gone); err != nil {
		t.Fatal(err)
	}
	appendN(w, 6)
	if _, err := w.Compact(ctx, CompactOptions{TargetSize: 3 * MinSegmentSize}); err != nil {
		t.Fatal(err)
	}
	store, err := w.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{10, 20} {
		if _, err := store.Save(ctx, snapshot.Meta{Name: "stats", LogID: w.LogID(), Seq: seq, Time: t0}, []byte("state")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Prune(ctx, "stats", snapshot.PrunePolicy{KeepLast: 1}); err != nil {
		t.Fatal(err)
	}
	appendN(w, 3)
	if _, err := w.Compact(ctx, CompactOptions{TargetSize: 4 * MinSegmentSize, Compress: true}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openMem(t, fsys, wopts) // recovery, beside the readers
	appendN(w, 3)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openMem(t, fsys, wopts) // from the checkpoint Close wrote
	appendN(w, 8)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	armed.Store(false)
	check(vfs.Op{Kind: vfs.OpLock, Name: "(the end)"})
	t.Logf("readers ran at %d instants of the writer", instants)
}

// pruneOnVisit is a snapshot store whose Candidates has the writer's
// store remove each candidate right after listing it: a prune beside the
// reader, between its listing and its load.
type pruneOnVisit struct {
	*snapshot.Store
	writer *snapshot.Store
	t      *testing.T
}

func (p pruneOnVisit) Candidates(name string, maxSeq uint64) iter.Seq2[snapshot.Candidate, error] {
	return func(yield func(snapshot.Candidate, error) bool) {
		for c, err := range p.Store.Candidates(name, maxSeq) {
			if err == nil {
				if err := p.writer.Remove(p.t.Context(), c.Meta); err != nil {
					p.t.Fatal(err)
				}
			}
			if !yield(c, err) {
				return
			}
		}
	}
}

// TestReplayPlanBesideSnapshotWriter: a reader planning a replay (evlogctl
// state) beside a writer that saves and prunes snapshots. A snapshot the
// writer saved after the reader opened the log claims a seq beyond the
// reader's view of it; a snapshot the writer pruned after the reader
// listed it is gone when loaded. Neither is damage: the plan must not
// record them as fallbacks (nor warn), and must still serve the state at
// the end of the reader's view.
func TestReplayPlanBesideSnapshotWriter(t *testing.T) {
	ctx := t.Context()
	subj := replay.Subject{Name: "stats", SchemaVersion: 1}
	for _, tc := range []struct {
		name       string
		prune, del bool
	}{{"saved after the reader opened", false, false}, {"pruned after the reader listed it", true, false},
		{"saved after the reader opened, after a deletion", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			w := openMem(t, mem, Options{})
			defer w.Close()
			wstore, err := w.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			save := func(seq uint64) {
				t.Helper()
				var tm time.Time
				for e, err := range w.Range(ctx, seq, seq) {
					if err != nil {
						t.Fatal(err)
					}
					tm = e.Time
				}
				if _, err := wstore.Save(ctx, snapshot.Meta{Name: subj.Name, SchemaVersion: 1, LogID: w.LogID(), Seq: seq, Time: tm}, []byte("state")); err != nil {
					t.Fatal(err)
				}
			}
			for _, stream := range []string{"a", "a", "s", "s"} {
				if _, err := w.Append(ctx, stream, ExpectAny, Envelope{Type: "t"}); err != nil {
					t.Fatal(err)
				}
			}
			save(2) // its last event is of stream a, which stays
			warns := newWarnRecorder()
			r, err := openFS(vfs.ReadOnly(mem), Options{}, true)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var snaps replay.Snapshots
			if snaps, err = r.Snapshots(); err != nil {
				t.Fatal(err)
			}
			if tc.prune {
				snaps = pruneOnVisit{Store: snaps.(*snapshot.Store), writer: wstore, t: t}
			} else {
				// The writer moves on and snapshots past the reader's view.
				if tc.del {
					if _, _, err := w.DeleteStream(ctx, "s"); err != nil {
						t.Fatal(err)
					}
				}
				for range 3 {
					if _, err := w.Append(ctx, "s", ExpectAny, Envelope{Type: "t"}); err != nil {
						t.Fatal(err)
					}
				}
				save(6)
			}
			p, err := replay.MakePlan(ctx, r, snaps, subj, replay.Latest(), replay.Options{Logger: slog.New(warns)})
			if err != nil {
				t.Fatal(err)
			}
			if tc.del {
				// The plan reads the view refreshed past the deletion of
				// stream s: the snapshot at seq 2 folded its events.
				if len(p.Fallbacks) != 1 || p.Fallbacks[0].Seq != 2 || p.Snapshot != nil {
					t.Errorf("a plan past a deletion: snapshot %+v, fallbacks %+v; want none, the one at seq 2", p.Snapshot, p.Fallbacks)
				}
				return
			}
			if len(p.Fallbacks) > 0 || len(warns.take()) > 0 {
				t.Errorf("a plan beside a writer reports fallbacks: %+v", p.Fallbacks)
			}
			if p.ToSeq != 4 {
				t.Errorf("plan to seq %d, want 4 (the reader's view)", p.ToSeq)
			}
			if !tc.prune && (p.Snapshot == nil || p.Snapshot.Seq != 2) {
				t.Errorf("plan from snapshot %+v, want the one at seq 2", p.Snapshot)
			}
		})
	}
}

// TestReadersBesideRacingCheckpoint: a reader opens the active segment,
// then, before it opens the segment's checkpoint, the writer appends and
// checkpoints past the size the reader took (Close writes the final
// checkpoint). A read-only open and Verify must take that for what it is,
// a state a live writer passes through: no warning, no finding, and the
// open serves at least what was acknowledged when it started.
func TestReadersBesideRacingCheckpoint(t *testing.T) {
	ctx := t.Context()
	for _, name := range []string{"open", "verify"} {
		t.Run(name, func(t *testing.T) {
			mem := vfs.NewMem()
			w := openMem(t, mem, Options{})
			for range 3 {
				if _, err := w.Append(ctx, "s", ExpectAny, Envelope{Type: "t", Data: make([]byte, 100)}); err != nil {
					t.Fatal(err)
				}
			}
			acked := w.LastSeq()
			ckpt := segment.CheckpointName(w.v.segs[len(w.v.segs)-1].Name)
			var once sync.Once
			rfs := vfs.NewFaulty(vfs.ReadOnly(mem), func(op vfs.Op) error {
				if op.Kind == vfs.OpOpen && op.Name == ckpt {
					once.Do(func() {
						if _, err := w.Append(ctx, "s", ExpectAny, Envelope{Type: "t"}); err != nil {
							t.Error(err)
						}
						if err := w.Close(); err != nil {
							t.Error(err)
						}
					})
				}
				return nil
			})
			warns := newWarnRecorder()
			if name == "open" {
				r, err := openFS(rfs, Options{Logger: slog.New(warns)}, true)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				if err := servesPrefix(t, r, acked); err != nil {
					t.Error(err)
				}
			} else {
				rep, err := verifyFS(ctx, rfs)
				if err != nil || len(rep.Findings) > 0 {
					t.Errorf("Verify beside a checkpoint written after the segment was opened: %v %v", rep.Findings, err)
				}
			}
			if w := warns.take(); len(w) > 0 {
				t.Errorf("a reader warned of a checkpoint written after it opened the segment: %q", w)
			}
			if _, err := mem.Stat(ckpt); err != nil {
				t.Fatalf("the writer wrote no checkpoint: %v", err)
			}
		})
	}
}

// TestRefreshBesideUpgradeOfEmptySegment: a reader follows a log whose
// only segment is an empty one of format version 1; a writer opens it and
// replaces that segment, under the same name, by a version 2 one (an
// atomic rename), then appends. The reader's Refresh must see the appends
// (it must not go on reading the replaced file).
func TestRefreshBesideUpgradeOfEmptySegment(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	v1Log(t, mem, 0)
	r, err := openFS(vfs.ReadOnly(mem), Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w := openMem(t, mem, Options{})
	defer w.Close()
	for range 3 {
		if _, err := w.Append(ctx, "s", ExpectAny, Envelope{Type: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	if err := servesPrefix(t, r, 3); err != nil {
		t.Error(err)
	}
}

// TestReadersInterleavedWithWriter interleaves a reader's file operations
// with a writer's: the writer (appending, rolling, sealing, checkpointing,
// compacting, saving and pruning snapshots) stops before each of its file
// operations; a read-only open, a follower's Refresh, Verify or a replay
// plan (evlogctl state) runs, and
// at its k-th file operation (opens, reads, listings, stats) lets the
// writer take m more. k, m and the writer's position vary over the runs.
// No reader may fail, warn or report damage, and each serves at least
// what was acknowledged when it started.
func TestReadersInterleavedWithWriter(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	g := newWriterGate()
	wfs := g.fs(ctx, mem)
	var acked atomic.Uint64
	g.start(t, func() {
		w, err := openFS(wfs, Options{SegmentSize: MinSegmentSize}, false)
		if err != nil {
			t.Error(err)
			return
		}
		defer w.Close()
		store, err := w.Snapshots()
		if err != nil {
			t.Error(err)
			return
		}
		for i := 0; !g.stopped(); i++ {
			switch {
			case i%23 == 22:
				_, err = w.Compact(ctx, CompactOptions{TargetSize: 4 * MinSegmentSize, Compress: i%46 == 45})
			case i%13 == 12:
				seq := w.LastSeq()
				var tm time.Time
				for e, rerr := range w.Range(ctx, seq, seq) {
					tm, err = e.Time, rerr
				}
				if err == nil {
					_, err = store.Save(ctx, snapshot.Meta{Name: "stats", LogID: w.LogID(), Seq: seq, Time: tm}, []byte("state"))
				}
				if err == nil {
					_, err = store.Prune(ctx, "stats", snapshot.PrunePolicy{KeepLast: 1})
				}
			default:
				var pos Position
				pos, err = w.Append(ctx, fmt.Sprintf("s-%d", i%3), ExpectAny, Envelope{Type: "t", Data: make([]byte, 300)}, Envelope{Type: "t"})
				acked.Store(pos.Seq)
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	})
	defer g.stop()
	advance := g.advance
	for range 40 {
		advance() // a first batch
	}
	warns := newWarnRecorder()
	ropts := Options{Logger: slog.New(warns)}
	var ops, at, m atomic.Int64
	rfs := vfs.NewFaulty(vfs.ReadOnly(mem), func(op vfs.Op) error {
		if ops.Add(1) == at.Load() {
			for range m.Load() {
				advance()
			}
		}
		return nil
	})
	follower, err := openFS(rfs, ropts, true)
	if err != nil {
		t.Fatal(err)
	}
	defer follower.Close()
	readers := []struct {
		name string
		run  func(acked uint64) error
	}{
		{"open", func(acked uint64) error {
			r, err := openFS(rfs, ropts, true)
			if err != nil {
				return err
			}
			defer r.Close()
			return servesPrefix(t, r, acked)
		}},
		{"refresh", func(acked uint64) error {
			if err := follower.Refresh(); err != nil {
				return err
			}
			return servesPrefix(t, follower, acked)
		}},
		{"verify", func(uint64) error {
			rep, err := besideWriter(rfs, func(*segment.Dir) (VerifyReport, error) { return verifyFS(ctx, rfs) },
				func(r VerifyReport, err error) bool { return err != nil || r.Corrupt() })
			if err == nil && rep.Corrupt() {
				err = fmt.Errorf("findings %v", rep.Findings)
			}
			return err
		}},
		{"replay plan", func(uint64) error { // evlogctl state
			r, err := openFS(rfs, ropts, true)
			if err != nil {
				return err
			}
			defer r.Close()
			store, err := r.Snapshots()
			if err != nil {
				return err
			}
			p, err := replay.MakePlan(ctx, r, store, replay.Subject{Name: "stats"}, replay.Latest(), replay.Options{Logger: ropts.Logger})
			if err == nil && len(p.Fallbacks) > 0 {
				err = fmt.Errorf("fallbacks %+v", p.Fallbacks)
			}
			return err
		}},
	}
	// Each reader at one of its first 25 operations, letting 1 to 8 of
	// the writer's through; the writer moves on by one more after each
	// run, so that the runs meet it in every phase of its segments.
	const runs = 800
	for i := range runs {
		r := readers[i%len(readers)]
		ops.Store(0)
		at.Store(int64(1 + (i/4)%25))
		m.Store(int64(1 + (i/100)%8))
		if err := r.run(acked.Load()); err != nil {
			t.Fatalf("%s, the writer let through %d operations at the reader's operation %d: %v", r.name, m.Load(), at.Load(), err)
		}
		for _, msg := range warns.take() {
			t.Errorf("%s, the writer let through %d operations at the reader's operation %d: a reader warned: %s", r.name, m.Load(), at.Load(), msg)
		}
		advance()
		if t.Failed() {
			break
		}
	}
}

// writerGate runs a writer on a goroutine of its own and stops it before
// each of its mutating file operations until the test lets it through
// (advance): where the writer is when a reader runs is the test's choice,
// never the scheduler's.
type writerGate struct {
	stopping               atomic.Bool
	reached, proceed, done chan struct{}
}

func newWriterGate() *writerGate {
	return &writerGate{reached: make(chan struct{}), proceed: make(chan struct{}), done: make(chan struct{})}
}

// fs returns fsys behind the gate (once the gate is stopping, or ctx
// done, operations pass).
func (g *writerGate) fs(ctx context.Context, fsys vfs.FS) vfs.FS {
	return vfs.NewFaulty(fsys, func(op vfs.Op) error {
		if op.Kind.Mutating() && !g.stopping.Load() {
			select {
			case g.reached <- struct{}{}:
			case <-ctx.Done():
			}
			select {
			case <-g.proceed:
			case <-ctx.Done():
			}
		}
		return nil
	})
}

// start runs writer, which writes through fs and loops until stopped,
// and waits until it stops before its first file operation.
func (g *writerGate) start(t *testing.T, writer func()) {
	t.Helper()
	go func() {
		defer close(g.done)
		writer()
	}()
	select {
	case <-g.reached:
	case <-g.done:
		t.Fatal("the writer ended")
	}
}

// stopped reports whether the writer should end its loop.
func (g *writerGate) stopped() bool { return g.stopping.Load() }

// advance lets the writer through one file operation and waits until it
// stops before the next one (or ends).
func (g *writerGate) advance() {
	select {
	case g.proceed <- struct{}{}:
	case <-g.done:
		return
	}
	select {
	case <-g.reached:
	case <-g.done:
	}
}

// stop lets the writer through and waits for it to end.
func (g *writerGate) stop() {
	g.stopping.Store(true)
	select {
	case g.proceed <- struct{}{}:
	case <-g.done:
	}
	<-g.done
}
