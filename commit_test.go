package evlog

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// syncGate is an FS whose segment files' Sync, once armed, waits for a
// release; other operations, reads included, go on meanwhile (a
// vfs.Faulty hook would hold them all).
type syncGate struct {
	vfs.FS
	mu      sync.Mutex
	next    chan struct{}
	holding chan struct{}
}

func (g *syncGate) arm() (release func()) {
	ch := make(chan struct{})
	g.mu.Lock()
	g.next = ch
	g.mu.Unlock()
	return sync.OnceFunc(func() { close(ch) })
}

func (g *syncGate) Create(name string) (vfs.File, error) {
	f, err := g.FS.Create(name)
	return g.wrap(name, f, err)
}

func (g *syncGate) OpenReadWrite(name string) (vfs.File, error) {
	f, err := g.FS.OpenReadWrite(name)
	return g.wrap(name, f, err)
}

func (g *syncGate) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(strings.TrimSuffix(name, segment.TempExt), segment.Ext) {
		return f, err
	}
	return gatedFile{f, g}, nil
}

type gatedFile struct {
	vfs.File
	g *syncGate
}

func (f gatedFile) Sync() error {
	f.g.mu.Lock()
	ch := f.g.next
	f.g.next = nil
	f.g.mu.Unlock()
	if ch != nil {
		f.g.holding <- struct{}{}
		<-ch
	}
	return f.File.Sync()
}

// TestGroupUnseenUntilFsynced: under SyncAlways the writer adds a group
// to the active index while its fsync runs (commit.go). Until the fsync
// returns, no read path may show any of it: not the new version of a
// stream, not a new stream, not the events, not the statistics.
func TestGroupUnseenUntilFsynced(t *testing.T) {
	ctx := t.Context()
	g := &syncGate{FS: vfs.NewMem(), holding: make(chan struct{}, 1)}
	l := openMem(t, g, Options{Sync: SyncAlways, Clock: fakeClock(t0, 0)})
	defer l.Close()
	tl := Typed[delPayload](l)
	if _, err := tl.Append(ctx, "cart-1", ExpectNoStream, Event[delPayload]{Type: "added", Data: delPayload{N: 1}}); err != nil {
		t.Fatal(err)
	}
	before := readEveryWay(t, l, "cart-1")
	stats := l.Stats()

	release := g.arm()
	defer release()
	type result struct {
		pos []Position
		err error
	}
	// A group large enough for the writer to index it while it fsyncs
	// (asyncIndexEvents).
	cart2 := make([]Event[delPayload], asyncIndexEvents)
	for i := range cart2 {
		cart2[i] = Event[delPayload]{Type: "added", Data: delPayload{N: i}}
	}
	done := make(chan result, 1)
	go func() {
		pos, err := tl.AppendBatch(ctx, []Batch[delPayload]{
			{Stream: "cart-1", Expect: ExpectVersion(1), Events: []Event[delPayload]{{Type: "added", Data: delPayload{N: 2}}}},
			{Stream: "cart-2", Expect: ExpectNoStream, Events: cart2},
			{Stream: "order-9", Expect: ExpectNoStream, Events: []Event[delPayload]{{Type: "placed", Data: delPayload{N: 5}}}},
		})
		done <- result{pos, err}
	}()
	select {
	case <-g.holding:
	case r := <-done:
		t.Fatalf("AppendBatch returned (%v, %v) without an fsync", r.pos, r.err)
	}
	// The group is written and its fsync is held: wait until the index
	// holds it, so that a read path that does not stop at the published
	// end would show it.
	for guard := time.Now().Add(time.Minute); !indexHolds(l, "order-9"); runtime.Gosched() {
		if time.Now().After(guard) {
			t.Fatal("the index does not hold the group while its fsync runs")
		}
	}
	if diff := cmp.Diff(before, readEveryWay(t, l, "cart-1"), cmp.AllowUnexported(seen{})); diff != "" {
		t.Errorf("while the group's fsync runs, the reads changed (-before +during):\n%s", diff)
	}
	for _, s := range []string{"cart-2", "order-9"} {
		if v, err := l.StreamVersion(ctx, s); err != nil || v != 0 {
			t.Errorf("StreamVersion(%s) while the fsync runs = %d, %v; want 0", s, v, err)
		}
	}
	if got := l.Stats(); got.Events != stats.Events || got.Streams != stats.Streams || got.Bytes != stats.Bytes {
		t.Errorf("Stats while the fsync runs: events %d streams %d bytes %d; want %d %d %d", got.Events, got.Streams, got.Bytes, stats.Events, stats.Streams, stats.Bytes)
	}
	select {
	case r := <-done:
		t.Fatalf("AppendBatch returned (%v, %v) before its fsync did", r.pos, r.err)
	default:
	}

	release()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	n := uint64(len(cart2))
	want := []Position{{Seq: 2, Version: 2, Time: t0}, {Seq: 2 + n, Version: n, Time: t0}, {Seq: 3 + n, Version: 1, Time: t0}}
	if diff := cmp.Diff(want, r.pos); diff != "" {
		t.Errorf("positions (-want +got):\n%s", diff)
	}
	after := readEveryWay(t, l, "cart-1")
	wantEvents := []string{"cart-1/1", "cart-1/2"}
	for v := range n {
		wantEvents = append(wantEvents, fmt.Sprintf("cart-2/%d", v+1))
	}
	if diff := cmp.Diff(append(wantEvents, "order-9/1"), after.events); diff != "" {
		t.Errorf("events after the fsync (-want +got):\n%s", diff)
	}
}

// indexHolds reports whether l's active index has an event of stream,
// published or not.
func indexHolds(l *Log, stream string) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	v, err := l.v.active.LastVersion(stream)
	return err == nil && v > 0
}
