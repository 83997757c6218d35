package replay_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

var seedFlag = flag.Uint64("replay.seed", 0, "seed of the randomised tests (0: random, logged)")

// testSeed returns the seed of a randomised test, logged so that a failure
// can be replayed with -replay.seed.
func testSeed(t testing.TB) uint64 {
	t.Helper()
	s := *seedFlag
	if s == 0 {
		s = rand.Uint64()
	}
	t.Logf("seed %d (rerun with -replay.seed=%d)", s, s)
	return s
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

// t0 is where the test clocks start.
var t0 = time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)

// item is the typed payload of the test events.
type item struct {
	Name string `msgpack:"name"`
	Qty  int    `msgpack:"qty"`
}

func encodeItem(tb testing.TB, it item) []byte {
	tb.Helper()
	b, err := msgpack.Marshal(it)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// stats is a whole-log fold. Its Digest is order-sensitive, so a skipped,
// repeated or reordered event changes the state, not just the counters.
type stats struct {
	Events   int            `msgpack:"events"`
	ByType   map[string]int `msgpack:"by_type"`
	ByStream map[string]int `msgpack:"by_stream"`
	LastSeq  uint64         `msgpack:"last_seq"`
	Digest   uint64         `msgpack:"digest"`
}

func newStats() stats {
	return stats{ByType: map[string]int{}, ByStream: map[string]int{}}
}

func foldStats(s stats, e event.Envelope) stats {
	if s.ByType == nil {
		s.ByType = map[string]int{}
	}
	if s.ByStream == nil {
		s.ByStream = map[string]int{}
	}
	s.Events++
	s.ByType[e.Type]++
	s.ByStream[e.Stream]++
	s.LastSeq = e.Seq
	s.Digest = digest(s.Digest, e)
	return s
}

// digest chains an event into h.
func digest(h uint64, e event.Envelope) uint64 {
	f := fnv.New64a()
	var b [8]byte
	for _, v := range []uint64{h, e.Seq, e.Version, uint64(e.Time.UnixNano()), uint64(e.SchemaVersion)} {
		binary.LittleEndian.PutUint64(b[:], v)
		f.Write(b[:])
	}
	fmt.Fprintf(f, "%q %q %q %q", e.Stream, e.Type, e.ID, e.Data)
	return f.Sum64()
}

// statsSpec folds raw envelopes; its state is (de)serialised with msgpack
// (the default).
var statsSpec = replay.Spec[stats, event.Envelope]{
	Init:   newStats,
	Decode: replay.Raw,
	Fold:   foldStats,
}

// statsSpecNoCopy is statsSpec read without copying payloads: foldStats
// digests Data but keeps nothing of it.
var statsSpecNoCopy = replay.Spec[stats, event.Envelope]{
	Init:   newStats,
	Decode: replay.Raw,
	Fold:   foldStats,
	NoCopy: true,
}

// statsSubject is the whole-log subject at its current schema version.
var statsSubject = replay.Subject{Name: "stats", SchemaVersion: 2}

// cart is a stream (aggregate) fold over typed events.
type cart struct {
	Version uint64         `msgpack:"version"`
	Qty     map[string]int `msgpack:"qty"`
	Log     []string       `msgpack:"log"` // every event, in order
}

func foldCart(c cart, e evlog.Event[item]) cart {
	if c.Qty == nil {
		c.Qty = map[string]int{}
	}
	c.Version = e.Version
	switch e.Type {
	case "removed":
		c.Qty[e.Data.Name] -= e.Data.Qty
	default:
		c.Qty[e.Data.Name] += e.Data.Qty
	}
	c.Log = append(c.Log, fmt.Sprintf("%d/%d %s %s %d %d", e.Seq, e.Version, e.Type, e.Data.Name, e.Data.Qty, e.Time.UnixNano()))
	return c
}

// cartSpec decodes typed events and (de)serialises its state with its own
// functions, to exercise both paths of Spec.
var cartSpec = replay.Spec[cart, evlog.Event[item]]{
	Decode: func(e event.Envelope) (evlog.Event[item], error) { return evlog.Decode[item](e, nil) },
	Fold:   foldCart,
	EncodeState: func(c cart) ([]byte, error) {
		return msgpack.Marshal(&c)
	},
	DecodeState: func(b []byte) (cart, error) {
		var c cart
		err := msgpack.Unmarshal(b, &c)
		return c, err
	},
}

func cartSubject(stream string) replay.Subject {
	return replay.Subject{Name: "cart/" + stream, SchemaVersion: 1, Scope: replay.Scope{Stream: stream}}
}

// stateCmp compares states, treating nil and empty maps and slices alike.
var stateCmp = cmpopts.EquateEmpty()

// sameState reports whether the states a and b are equal as
// cmp.Equal(a, b, stateCmp) sees them, with a direct check of the states
// the tests fold (stats, cart) first: cmp was a fifth of the CPU of
// TestStateMatchesReference under -race. Other types go to cmp, and so
// do states the direct check finds different.
func sameState[S any](a, b S) bool {
	switch x := any(a).(type) {
	case stats:
		y := any(b).(stats)
		if x.Events == y.Events && x.LastSeq == y.LastSeq && x.Digest == y.Digest &&
			maps.Equal(x.ByType, y.ByType) && maps.Equal(x.ByStream, y.ByStream) {
			return true
		}
	case cart:
		y := any(b).(cart)
		if x.Version == y.Version && maps.Equal(x.Qty, y.Qty) && slices.Equal(x.Log, y.Log) {
			return true
		}
	}
	return cmp.Equal(a, b, stateCmp)
}

// refStats folds events[:n] with an independent loop.
func refStats(events []event.Envelope, n int) stats {
	s := newStats()
	for _, e := range events[:n] {
		s = foldStats(s, e)
	}
	return s
}

// refCart folds the events of stream among events[:n].
func refCart(t testing.TB, events []event.Envelope, stream string, n int) cart {
	t.Helper()
	var c cart
	for _, e := range events[:n] {
		if e.Stream != stream {
			continue
		}
		var it item
		if err := msgpack.Unmarshal(e.Data, &it); err != nil {
			t.Fatalf("decoding event %d: %v", e.Seq, err)
		}
		c = foldCart(c, evlog.Event[item]{Seq: e.Seq, Stream: e.Stream, Version: e.Version, Type: e.Type,
			SchemaVersion: e.SchemaVersion, ID: e.ID, Time: e.Time, Meta: e.Meta, Data: it})
	}
	return c
}

// cutAtTime returns how many events were recorded at or before tm.
func cutAtTime(events []event.Envelope, tm time.Time) int {
	n := 0
	for _, e := range events {
		if e.Time.After(tm) {
			break
		}
		n++
	}
	return n
}

// readAll returns every event of l.
func readAll(t testing.TB, l *evlog.Log) []event.Envelope {
	t.Helper()
	var out []event.Envelope
	for e, err := range l.Events(t.Context(), 1) {
		if err != nil {
			t.Fatalf("reading the log: %v", err)
		}
		out = append(out, e)
	}
	return out
}

// openRW opens a writer, closed at the end of the test.
func openRW(t testing.TB, dir string, opts evlog.Options) *evlog.Log {
	t.Helper()
	l, err := evlog.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// openRO opens dir read-only, closed at the end of the test.
func openRO(t testing.TB, dir string, opts evlog.Options) *evlog.Log {
	t.Helper()
	l, err := evlog.OpenReadOnly(dir, opts)
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func snapshots(t testing.TB, l *evlog.Log) *snapshot.Store {
	t.Helper()
	s, err := l.Snapshots()
	if err != nil {
		t.Fatalf("Snapshots: %v", err)
	}
	return s
}

// rawStore opens a snapshot store on dir without the log's guards, to
// write snapshots the log itself would refuse.
func rawStore(t testing.TB, dir string) *snapshot.Store {
	t.Helper()
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fsys.Close() })
	s, err := snapshot.Open(fsys, snapshot.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// saveStats snapshots the whole-log state after events[:n] under subj.
func saveStats(t testing.TB, saver replay.Saver, logID [16]byte, subj replay.Subject, events []event.Envelope, n int) snapshot.Meta {
	t.Helper()
	res := replay.Result[stats]{State: refStats(events, n), Seq: events[n-1].Seq, Time: events[n-1].Time}
	m, ok, err := replay.Save(t.Context(), saver, logID, subj, statsSpec, res)
	if err != nil || !ok {
		t.Fatalf("saving %s at seq %d: ok=%v, %v", subj.Name, n, ok, err)
	}
	return m
}

// saveCart snapshots stream's state after events[:n], anchored at the
// stream's last event among them; ok is false when the stream has none.
// A snapshot already there (another n with the same anchor) is kept.
func saveCart(t testing.TB, saver replay.Saver, logID [16]byte, stream string, events []event.Envelope, n int) (snapshot.Meta, bool) {
	t.Helper()
	c := refCart(t, events, stream, n)
	res := replay.Result[cart]{State: c}
	for _, e := range slices.Backward(events[:n]) {
		if e.Stream == stream {
			res.Seq, res.Time, res.Version = e.Seq, e.Time, e.Version
			break
		}
	}
	m, ok, err := replay.Save(t.Context(), saver, logID, cartSubject(stream), cartSpec, res)
	switch {
	case errors.Is(err, snapshot.ErrExists):
		return snapshot.Meta{}, false
	case err != nil:
		t.Fatalf("saving cart/%s at seq %d: %v", stream, res.Seq, err)
	}
	return m, ok
}

// dirHashes returns a digest of every file in dir (name, size, mode,
// modification time and content), to show that a read path modified
// nothing.
// backdate sets the access and modification times of dir's entries to a
// moment long past, so that dirHashes shows an entry a read path touches
// afterwards whatever the timestamp granularity of the file system.
func backdate(t testing.TB, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	past := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	for _, de := range ents {
		if err := os.Chtimes(filepath.Join(dir, de.Name()), past, past); err != nil {
			t.Fatal(err)
		}
	}
}

func dirHashes(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range ents {
		p := filepath.Join(dir, de.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		var sum [32]byte
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			sum = sha256.Sum256(b)
		}
		out[de.Name()] = fmt.Sprintf("%v %d %d %x", fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), sum)
	}
	return out
}

// captureLog is a slog handler recording the messages it receives.
type captureLog struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (c *captureLog) Enabled(context.Context, slog.Level) bool { return true }
func (c *captureLog) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, r.Clone())
	return nil
}
func (c *captureLog) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *captureLog) WithGroup(string) slog.Handler      { return c }

// warnings returns the warning messages received, with their "file"
// attribute.
func (c *captureLog) warnings() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.recs {
		if r.Level < slog.LevelWarn {
			continue
		}
		file := ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "file" {
				file = a.Value.String()
			}
			return true
		})
		out = append(out, r.Message+" file="+file)
	}
	return out
}

// appendItems appends n events to stream with explicit payloads, in one
// batch, and returns their positions' last seq.
func appendItems(t testing.TB, l *evlog.Log, stream string, tm time.Time, its ...item) uint64 {
	t.Helper()
	evs := make([]event.Envelope, len(its))
	for i, it := range its {
		typ := "added"
		if it.Qty < 0 {
			typ, it.Qty = "removed", -it.Qty
		}
		evs[i] = event.Envelope{Type: typ, Time: tm, Data: encodeItem(t, it)}
	}
	pos, err := l.Append(t.Context(), stream, evlog.ExpectAny, evs...)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return pos.Seq
}

// randomLog is a log built by buildRandomLog, closed, with what was read
// back from it.
type randomLog struct {
	dir     string
	logID   [16]byte
	events  []event.Envelope
	streams []string
}

var itemNames = []string{"sword", "shield", "potion", "map"}

// buildRandomLog appends about n events to a new log in dir, in batches of
// one to three streams, with a wall clock that stands still or steps back
// now and then (the log clamps it) and explicit times equal to the last
// recorded one now and then. Before it returns, it calls snap (if not nil)
// with the open writer and the events read back from it, and closes the
// log.
func buildRandomLog(t testing.TB, rng *rand.Rand, dir string, n int, snap func(l *evlog.Log, events []event.Envelope)) randomLog {
	t.Helper()
	var (
		clockMu  sync.Mutex
		clockRng = newRand(rng.Uint64())
		clk      = t0
	)
	clock := func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		switch r := clockRng.IntN(10); {
		case r < 2: // the wall clock steps back
			clk = clk.Add(-time.Duration(clockRng.IntN(5_000_000)+1) * time.Nanosecond)
		case r < 4: // stands still
		default:
			clk = clk.Add(time.Duration(clockRng.IntN(3_000_000)+1) * time.Nanosecond)
		}
		return clk
	}
	segSize := []int64{evlog.MinSegmentSize, 16 << 10, 1 << 20}[rng.IntN(3)]
	l := openRW(t, dir, evlog.Options{Clock: clock, SegmentSize: segSize, Sync: evlog.SyncNever})
	streams := []string{"cart-1", "cart-2", "cart-3", "inventory", "user-7"}[:2+rng.IntN(4)]
	for appended := 0; appended < n; {
		var batch []evlog.AppendRequest
		explicit := time.Time{}
		switch rng.IntN(8) {
		case 0: // exactly the last recorded time
			explicit = l.LastTime()
			if explicit.IsZero() {
				explicit = t0
			}
		case 1:
			explicit = l.LastTime().Add(time.Duration(rng.IntN(2)) * time.Microsecond)
			if l.LastSeq() == 0 {
				explicit = t0
			}
		}
		first := rng.IntN(len(streams))
		for p := range 1 + rng.IntN(min(3, len(streams))) {
			req := evlog.AppendRequest{Stream: streams[(first+p)%len(streams)], Expect: evlog.ExpectAny}
			for range 1 + rng.IntN(4) {
				it := item{Name: itemNames[rng.IntN(len(itemNames))], Qty: 1 + rng.IntN(5)}
				typ := "added"
				if rng.IntN(3) == 0 {
					typ = "removed"
				}
				e := event.Envelope{Type: typ, Time: explicit, Data: encodeItem(t, it)}
				if rng.IntN(5) == 0 {
					e.ID = fmt.Sprintf("id-%d", appended)
				}
				if rng.IntN(7) == 0 {
					e.Meta = map[string]string{"correlation": fmt.Sprint(rng.IntN(100))}
				}
				req.Events = append(req.Events, e)
				appended++
			}
			batch = append(batch, req)
		}
		if _, err := l.AppendBatch(t.Context(), batch); err != nil {
			t.Fatalf("AppendBatch: %v", err)
		}
	}
	events := readAll(t, l)
	if snap != nil {
		snap(l, events)
	}
	rl := randomLog{dir: dir, logID: l.LogID(), events: events, streams: streams}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return rl
}
