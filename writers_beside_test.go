package evlog

import (
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

// besideChecker runs every read path of the library at an instant of a
// writer's life (see TestReadersAtEveryOpOfMoreWriters). The writer
// records what it acknowledged with acked; mayMiss says which
// acknowledged seqs may legitimately read as gone (deleted, truncated,
// tombstoned or expired streams).
type besideChecker struct {
	t        *testing.T
	mem      *vfs.Mem
	rfs      vfs.FS // read-only, and counting the mutations it is asked for
	ropts    Options
	warns    warnRecorder
	follower *Log
	// next pulls the next event of a read-only Subscribe started by
	// follow (tail -f); subPrev is the seq it yielded last.
	next    func() (Envelope, error, bool)
	subPrev uint64

	mu       sync.Mutex // guards what follows
	streamOf map[uint64]string
	acked    uint64
	mayMiss  func(seq uint64, stream string) bool
	instants int
	// mutations counts the mutating operations (and locks) the readers
	// asked of their FS: each is a defect, even if refused.
	mutations atomic.Int64
}

func newBesideChecker(t *testing.T, mem *vfs.Mem, mayMiss func(uint64, string) bool) *besideChecker {
	c := &besideChecker{t: t, mem: mem, warns: newWarnRecorder(), streamOf: map[uint64]string{}, mayMiss: mayMiss}
	c.ropts = Options{Logger: slog.New(c.warns)}
	c.rfs = vfs.NewFaulty(vfs.ReadOnly(mem), func(op vfs.Op) error {
		if op.Kind.Mutating() || op.Kind == vfs.OpLock {
			c.mutations.Add(1)
			t.Errorf("a reader asked to %v", op)
		}
		return nil
	})
	return c
}

// follow opens the follower whose Refresh runs at every instant.
func (c *besideChecker) follow() {
	c.t.Helper()
	l, err := openFS(c.rfs, c.ropts, true)
	if err != nil {
		c.t.Fatal(err)
	}
	c.follower = l
	c.t.Cleanup(func() { l.Close() })
	sopts := c.ropts
	sopts.FollowInterval = time.Millisecond
	s, err := openFS(c.rfs, sopts, true)
	if err != nil {
		c.t.Fatal(err)
	}
	next, stop := iter.Pull2(s.Subscribe(c.t.Context(), 1))
	c.next = next
	c.t.Cleanup(func() { stop(); s.Close() })
}

// subscribed pulls the follower's subscription up to the last
// acknowledged seq that may not read as gone (c.mu held).
func (c *besideChecker) subscribedLocked(fail func(string, ...any)) {
	var target uint64
	for s := c.acked; s > c.subPrev; s-- {
		if st, ok := c.streamOf[s]; ok && !c.mayMiss(s, st) {
			target = s
			break
		}
	}
	for c.subPrev < target {
		e, err, ok := c.next()
		if !ok || err != nil {
			fail("Subscribe ended: %v", err)
			c.subPrev = 1 << 62
			return
		}
		for s := c.subPrev + 1; s < e.Seq; s++ {
			if st, ok := c.streamOf[s]; ok && !c.mayMiss(s, st) {
				fail("Subscribe: seq %d (stream %s) not yielded", s, st)
			}
		}
		if e.Seq <= c.subPrev {
			fail("Subscribe: seq %d after %d", e.Seq, c.subPrev)
		}
		c.subPrev = e.Seq
	}
}

// appended records the acknowledged append of n events to stream ending
// at pos.
func (c *besideChecker) appended(stream string, pos Position, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := pos.Seq - uint64(n) + 1; s <= pos.Seq; s++ {
		c.streamOf[s] = stream
	}
	c.acked = max(c.acked, pos.Seq)
}

// check runs the readers before op.
func (c *besideChecker) check(op vfs.Op) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	ctx := t.Context()
	c.instants++
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("before %v: "+format, append([]any{op}, args...)...)
	}
	// served checks that what reads (an iterator over events) serves
	// acknowledged events in seq order, none missing that may not be,
	// and at least up to what was acknowledged.
	served := func(what string, events func(yield func(Envelope, error) bool), last uint64) {
		var prev uint64
		missing := uint64(1)
		for e, err := range events {
			if err != nil {
				fail("%s: %v", what, err)
				return
			}
			if e.Seq <= prev {
				fail("%s: seq %d after %d", what, e.Seq, prev)
				return
			}
			for ; missing < e.Seq; missing++ {
				if s, ok := c.streamOf[missing]; ok && !c.mayMiss(missing, s) {
					fail("%s: seq %d (stream %s) not served", what, missing, s)
					return
				}
			}
			if s, ok := c.streamOf[e.Seq]; ok && s != e.Stream {
				fail("%s: seq %d of stream %s, want %s", what, e.Seq, e.Stream, s)
			}
			prev, missing = e.Seq, e.Seq+1
		}
		if last < c.acked {
			fail("%s: serves up to seq %d, %d acknowledged", what, last, c.acked)
		}
	}
	readAPIs := func(what string, r *Log) {
		served(what+": Events", r.Events(ctx, 1), r.LastSeq())
		served(what+": Range", r.Range(ctx, 1, r.LastSeq()), r.LastSeq())
		served(what+": RangeBorrowed", r.RangeBorrowed(ctx, 1, r.LastSeq()), r.LastSeq())
		for s, err := range r.Streams(ctx, "") {
			if err != nil {
				fail("%s: Streams: %v", what, err)
				break
			}
			var fwd, bwd []uint64
			for e, err := range r.Stream(ctx, s.Stream, 1) {
				if err != nil {
					fail("%s: Stream %s: %v", what, s.Stream, err)
					break
				}
				fwd = append(fwd, e.Seq)
			}
			for e, err := range r.StreamBackward(ctx, s.Stream, 0) {
				if err != nil {
					fail("%s: StreamBackward %s: %v", what, s.Stream, err)
					break
				}
				bwd = append(bwd, e.Seq)
			}
			slices.Reverse(bwd)
			if !slices.Equal(fwd, bwd) {
				fail("%s: stream %s: forward %v, backward (reversed) %v", what, s.Stream, fwd, bwd)
			}
			if _, err := r.StreamVersion(ctx, s.Stream); err != nil {
				fail("%s: StreamVersion %s: %v", what, s.Stream, err)
			}
			if _, err := r.DeletedBefore(ctx, s.Stream); err != nil {
				fail("%s: DeletedBefore %s: %v", what, s.Stream, err)
			}
		}
		for _, cat := range []string{"s", "old", "a"} {
			for _, err := range r.Category(ctx, cat, 1) {
				if err != nil {
					fail("%s: Category %s: %v", what, cat, err)
					break
				}
			}
		}
		for _, err := range r.EventsFiltered(ctx, 1, Filter{StreamPrefixes: []string{"s-"}, Types: []string{"t1"}}) {
			if err != nil {
				fail("%s: EventsFiltered: %v", what, err)
				break
			}
		}
		if _, err := r.SeqAt(ctx, t0.Add(time.Minute)); err != nil {
			fail("%s: SeqAt: %v", what, err)
		}
		if _, err := r.Segments(); err != nil {
			fail("%s: Segments: %v", what, err)
		}
		if _, err := r.Subscriptions(); err != nil {
			fail("%s: Subscriptions: %v", what, err)
		}
		if _, err := r.Deletions(ctx); err != nil {
			fail("%s: Deletions: %v", what, err)
		}
		if _, err := r.LastDeletionSeq(ctx); err != nil {
			fail("%s: LastDeletionSeq: %v", what, err)
		}
		_ = r.Stats()
		if store, err := r.Snapshots(); err != nil {
			fail("%s: Snapshots: %v", what, err)
		} else if metas, err := store.List(""); err != nil {
			fail("%s: snapshot List: %v", what, err)
		} else {
			for _, m := range metas {
				if _, err := store.Load(ctx, m); err != nil {
					fail("%s: snapshot Load %s: %v", what, m.File, err)
				}
			}
		}
	}
	if r, err := openFS(c.rfs, c.ropts, true); err != nil {
		fail("read-only open: %v", err)
	} else {
		readAPIs("read-only open", r)
		r.Close()
	}
	if c.follower != nil {
		if err := c.follower.Refresh(); err != nil {
			fail("Refresh: %v", err)
		} else {
			readAPIs("Refresh", c.follower)
		}
	}
	rep, err := verifyFS(ctx, c.rfs)
	if err != nil || rep.Corrupt() {
		fail("Verify: %v %v", rep.Findings, err)
	}
	if c.next != nil {
		c.subscribedLocked(fail)
	}
	for _, w := range c.warns.take() {
		fail("a reader warned: %s", w)
	}
}

// TestReadersAtEveryOpOfMoreWriters is TestReadersAtEveryWriterOp for
// the writers it leaves out: truncations and tombstones and the
// compactions that redact them, retention and the compaction that
// removes expired events, the upgrade of a version 1 log, the deletion
// of a subscription, the removal of a snapshot and the cleaning of
// abandoned snapshot temporaries, and the recovery of a torn tail. The
// writer stops before each of its file operations; every read API of a
// read-only open, Refresh of a reader opened before, and Verify run
// there. None may fail, warn or report damage, none may ask its FS for a
// change, and each serves every acknowledged event that has not been
// deleted, in seq order.
func TestReadersAtEveryOpOfMoreWriters(t *testing.T) {
	type scenario struct {
		name    string
		opts    Options
		mayMiss func(seq uint64, stream string) bool
		// setup prepares mem unarmed; run then writes armed.
		setup func(t *testing.T, mem *vfs.Mem, c *besideChecker, wfs vfs.FS)
		run   func(t *testing.T, c *besideChecker, wfs vfs.FS, arm func())
	}
	ctx := t.Context()
	appendTo := func(t *testing.T, c *besideChecker, l *Log, streams ...string) {
		t.Helper()
		for i, s := range streams {
			evs := []Envelope{{Type: []string{"t1", "t2"}[i%2], Data: make([]byte, 150)}, {Type: "t1", Data: make([]byte, 10)}}
			pos, err := l.Append(ctx, s, ExpectAny, evs...)
			if err != nil {
				t.Fatal(err)
			}
			c.appended(s, pos, len(evs))
		}
	}
	many := func(n int, streams ...string) []string {
		var out []string
		for i := range n {
			out = append(out, streams[i%len(streams)])
		}
		return out
	}
	base := Options{SegmentSize: MinSegmentSize, Clock: fakeClock(t0, time.Millisecond)}
	withRetention := base
	withRetention.Retention = map[string]Retention{"old": {MaxCount: 2}}
	// truncated is the version below which stream a-1 is truncated.
	const truncated = 4
	scenarios := []scenario{
		{
			name: "truncate, tombstone and compact",
			opts: base,
			mayMiss: func(seq uint64, s string) bool {
				return s == "b-1" || s == "a-1" // their versions are checked below
			},
			run: func(t *testing.T, c *besideChecker, wfs vfs.FS, arm func()) {
				w := openMem(t, wfs, base)
				defer w.Close()
				appendTo(t, c, w, many(12, "a-1", "b-1", "s-1")...)
				c.follow()
				arm()
				if _, err := w.TruncateStream(ctx, "a-1", truncated); err != nil {
					t.Fatal(err)
				}
				if _, err := w.TombstoneStream(ctx, "b-1"); err != nil {
					t.Fatal(err)
				}
				appendTo(t, c, w, many(6, "a-1", "s-1")...)
				if _, err := w.Compact(ctx, CompactOptions{TargetSize: 3 * MinSegmentSize}); err != nil {
					t.Fatal(err)
				}
				appendTo(t, c, w, many(3, "s-2")...)
				if _, err := w.Compact(ctx, CompactOptions{TargetSize: 4 * MinSegmentSize, Compress: true}); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:    "retention and compact",
			opts:    withRetention,
			mayMiss: func(_ uint64, s string) bool { return strings.HasPrefix(s, "old-") },
			run: func(t *testing.T, c *besideChecker, wfs vfs.FS, arm func()) {
				w := openMem(t, wfs, withRetention)
				defer w.Close()
				appendTo(t, c, w, many(12, "old-1", "s-1", "old-2")...)
				c.follow()
				arm()
				appendTo(t, c, w, many(6, "old-1", "s-1")...)
				if _, err := w.Compact(ctx, CompactOptions{TargetSize: 3 * MinSegmentSize}); err != nil {
					t.Fatal(err)
				}
				appendTo(t, c, w, many(3, "old-2")...)
				if _, err := w.Compact(ctx, CompactOptions{TargetSize: 4 * MinSegmentSize, Compress: true}); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:    "upgrade of a version 1 log",
			opts:    base,
			mayMiss: func(uint64, string) bool { return false },
			setup: func(t *testing.T, mem *vfs.Mem, c *besideChecker, _ vfs.FS) {
				for _, e := range v1Log(t, mem, 5) {
					c.appended(e.Stream, Position{Seq: e.Seq}, 1)
				}
			},
			run: func(t *testing.T, c *besideChecker, wfs vfs.FS, arm func()) {
				c.follow()
				arm()
				w := openMem(t, wfs, base)
				defer w.Close()
				appendTo(t, c, w, many(8, "s-1", "s-2")...)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:    "recovery of a torn tail",
			opts:    base,
			mayMiss: func(uint64, string) bool { return false },
			setup: func(t *testing.T, mem *vfs.Mem, c *besideChecker, wfs vfs.FS) {
				w := openMem(t, wfs, base)
				appendTo(t, c, w, many(5, "s-1", "s-2")...)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				// A batch a crash left half written.
				names, err := mem.List()
				if err != nil {
					t.Fatal(err)
				}
				slices.Sort(names)
				var newest string
				for _, n := range names {
					if strings.HasSuffix(n, segment.Ext) {
						newest = n
					}
				}
				f, err := mem.OpenReadWrite(newest)
				if err != nil {
					t.Fatal(err)
				}
				size, _ := f.Size()
				if _, err := f.Seek(size, io.SeekStart); err != nil {
					t.Fatal(err)
				}
				frame := segment.AppendEventFrame(nil, &event.Envelope{Seq: 11, Stream: "s-1", Version: 6, Type: "t1", Time: t0, Data: make([]byte, 40)})
				if _, err := f.Write(frame[:len(frame)/2]); err != nil {
					t.Fatal(err)
				}
				f.Close()
			},
			run: func(t *testing.T, c *besideChecker, wfs vfs.FS, arm func()) {
				c.follow()
				arm()
				w := openMem(t, wfs, base)
				defer w.Close()
				if w.Recovery().TornTail == nil {
					t.Fatal("the writer's open repaired no torn tail")
				}
				appendTo(t, c, w, many(3, "s-1")...)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name:    "subscriptions deleted, snapshots removed and temporaries cleaned",
			opts:    base,
			mayMiss: func(uint64, string) bool { return false },
			run: func(t *testing.T, c *besideChecker, wfs vfs.FS, arm func()) {
				w := openMem(t, wfs, base)
				defer w.Close()
				appendTo(t, c, w, many(6, "s-1", "s-2")...)
				store, err := w.Snapshots()
				if err != nil {
					t.Fatal(err)
				}
				var saved []snapshot.Meta
				for _, seq := range []uint64{4, 8} {
					m, err := store.Save(ctx, snapshot.Meta{Name: "stats", LogID: w.LogID(), Seq: seq, Time: t0}, []byte("state"))
					if err != nil {
						t.Fatal(err)
					}
					saved = append(saved, m)
				}
				c.follow()
				arm()
				for _, name := range []string{"sub-1", "sub-2"} {
					sub, err := w.Subscription(name, Filter{})
					if err != nil {
						t.Fatal(err)
					}
					if err := sub.Ack(ctx, 3); err != nil {
						t.Fatal(err)
					}
					sub.Close()
				}
				if err := w.DeleteSubscription("sub-1"); err != nil {
					t.Fatal(err)
				}
				if err := store.Remove(ctx, saved[0]); err != nil {
					t.Fatal(err)
				}
				if err := store.CleanTemps(); err != nil {
					t.Fatal(err)
				}
				appendTo(t, c, w, many(2, "s-1")...)
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			c := newBesideChecker(t, mem, sc.mayMiss)
			var armed atomic.Bool
			wfs := vfs.NewFaulty(mem, func(op vfs.Op) error {
				if armed.Load() && (op.Kind.Mutating() || op.Kind == vfs.OpLock) {
					c.check(op)
				}
				return nil
			})
			if sc.setup != nil {
				sc.setup(t, mem, c, wfs)
			}
			sc.run(t, c, wfs, func() { armed.Store(true) })
			armed.Store(false)
			c.check(vfs.Op{Kind: vfs.OpLock, Name: "(the end)", Index: -1})
			if n := c.mutations.Load(); n > 0 {
				t.Errorf("readers asked their FS for %d changes", n)
			}
			t.Logf("readers ran at %d instants of the writer; the subscription yielded up to seq %d of %d", c.instants, c.subPrev, c.acked)
		})
	}
}

// TestReadAPIsInterleavedWithWriter is TestReadersInterleavedWithWriter
// for the read APIs of a log opened read-only before the writer moves on:
// the writer (appending, rolling, deleting and truncating streams, acking
// and deleting subscriptions, compacting, saving and pruning snapshots)
// stops before each of its file operations, and at the reader's k-th file
// operation inside one read API takes m more. No read API may fail or
// warn.
func TestReadAPIsInterleavedWithWriter(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	g := newWriterGate()
	wfs := g.fs(ctx, mem)
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
			stream := fmt.Sprintf("s-%d", i%4)
			switch {
			case i%29 == 28:
				_, err = w.Compact(ctx, CompactOptions{TargetSize: 4 * MinSegmentSize, Compress: i%58 == 57})
			case i%17 == 16:
				_, _, err = w.DeleteStream(ctx, stream)
			case i%19 == 18:
				_, err = w.TruncateStream(ctx, stream, 2)
			case i%11 == 10:
				var sub *Subscription
				if sub, err = w.Subscription(fmt.Sprintf("sub-%d", i%3), Filter{}); err == nil {
					err = sub.Ack(ctx, w.LastSeq())
					sub.Close()
				}
				if err == nil && i%3 == 0 {
					err = w.DeleteSubscription(fmt.Sprintf("sub-%d", (i+1)%3))
				}
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
				_, err = w.Append(ctx, stream, ExpectAny, Envelope{Type: "t", Data: make([]byte, 300)}, Envelope{Type: "t1"})
			}
			if err != nil && !errors.Is(err, ErrStreamDeleted) {
				t.Error(err)
				return
			}
		}
	})
	defer g.stop()
	advance := g.advance
	for range 40 {
		advance()
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
	drain := func(seq func(yield func(Envelope, error) bool)) error {
		for _, err := range seq {
			if err != nil {
				return err
			}
		}
		return nil
	}
	apis := []struct {
		name string
		run  func(r *Log) error
	}{
		{"Events", func(r *Log) error { return drain(r.Events(ctx, 1)) }},
		{"Streams and Stream", func(r *Log) error {
			for s, err := range r.Streams(ctx, "") {
				if err != nil {
					return err
				}
				if err := drain(r.Stream(ctx, s.Stream, 1)); err != nil {
					return fmt.Errorf("Stream %s: %w", s.Stream, err)
				}
			}
			return nil
		}},
		{"StreamBackward", func(r *Log) error { return drain(r.StreamBackward(ctx, "s-1", 0)) }},
		{"Category", func(r *Log) error { return drain(r.Category(ctx, "s", 1)) }},
		{"EventsFiltered", func(r *Log) error {
			return drain(r.EventsFiltered(ctx, 1, Filter{StreamPrefixes: []string{"s-2"}, Types: []string{"t1"}}))
		}},
		{"SeqAt", func(r *Log) error { _, err := r.SeqAt(ctx, time.Now()); return err }},
		{"Segments", func(r *Log) error { _, err := r.Segments(); return err }},
		{"Subscriptions", func(r *Log) error { _, err := r.Subscriptions(); return err }},
		{"Deletions", func(r *Log) error { _, err := r.Deletions(ctx); return err }},
		{"DeletedBefore", func(r *Log) error { _, err := r.DeletedBefore(ctx, "s-3"); return err }},
		{"snapshots", func(r *Log) error {
			store, err := r.Snapshots()
			if err != nil {
				return err
			}
			for c, err := range store.Candidates("stats", r.LastSeq()) {
				if err != nil {
					return err
				}
				_ = c
			}
			return nil
		}},
		{"Refresh and Events", func(r *Log) error {
			if err := r.Refresh(); err != nil {
				return err
			}
			return drain(r.Events(ctx, 1))
		}},
	}
	const runs = 1200
	for i := range runs {
		api := apis[i%len(apis)]
		r, err := openFS(rfs, ropts, true)
		if err != nil {
			t.Fatal(err)
		}
		ops.Store(0)
		at.Store(int64(1 + (i/len(apis))%12))
		m.Store(int64(1 + (i/(12*len(apis)))%8))
		err = api.run(r)
		ops.Store(-1 << 40)
		r.Close()
		if err != nil {
			t.Fatalf("%s, the writer let through %d operations at the reader's operation %d: %v", api.name, m.Load(), at.Load(), err)
		}
		for _, msg := range warns.take() {
			t.Errorf("%s, the writer let through %d operations at the reader's operation %d: a reader warned: %s", api.name, m.Load(), at.Load(), msg)
		}
		advance()
		if t.Failed() {
			break
		}
	}
}

// TestReadersAtEveryPieceOfAWrite: a write reaches a reader in another
// process in pieces. The writer's writes are split in pieces of 13 bytes
// (a frame header, a commit frame, a durability mark, a segment header
// and footer, a checkpoint, a subscription and a snapshot file each
// partly written), and the readers run between every two pieces, over
// appends, rolls, a subscription's acks, a deletion, compactions,
// snapshot saves and a prune, and Close. None may fail, warn or report
// damage: a partly written batch or file of a live writer is not a torn
// tail nor corruption.
func TestReadersAtEveryPieceOfAWrite(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	c := newBesideChecker(t, mem, func(_ uint64, s string) bool { return s == "gone-1" })
	var armed atomic.Bool
	wfs := vfs.SplitWrites{FS: vfs.NewFaulty(mem, func(op vfs.Op) error {
		if armed.Load() && op.Kind == vfs.OpWrite {
			c.check(op)
		}
		return nil
	}), N: 13}
	opts := Options{SegmentSize: MinSegmentSize, Clock: fakeClock(t0, time.Millisecond)}
	w := openMem(t, wfs, opts)
	defer func() { w.Close() }()
	n := 0
	appendN := func(batches int) {
		t.Helper()
		for range batches {
			stream := []string{"s-1", "s-2", "gone-1"}[n%3]
			n++
			evs := []Envelope{{Type: "t1", Data: make([]byte, 150)}, {Type: "t2", Data: make([]byte, 10)}}
			pos, err := w.Append(ctx, stream, ExpectAny, evs...)
			if err != nil {
				t.Fatal(err)
			}
			c.appended(stream, pos, len(evs))
		}
	}
	appendN(2)
	c.follow()
	armed.Store(true)
	appendN(14) // rolls
	sub, err := w.Subscription("sub-1", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Ack(ctx, 3); err != nil {
		t.Fatal(err)
	}
	sub.Close()
	if _, _, err := w.DeleteStream(ctx, "gone-1"); err != nil {
		t.Fatal(err)
	}
	appendN(3)
	if _, err := w.Compact(ctx, CompactOptions{TargetSize: 3 * MinSegmentSize, Compress: true}); err != nil {
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
	appendN(2)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	armed.Store(false)
	c.check(vfs.Op{Kind: vfs.OpLock, Name: "(the end)", Index: -1})
	t.Logf("readers ran at %d instants of the writer", c.instants)
}
