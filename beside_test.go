package evlog

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// TestReadOnlyBesideWriter: read-only opens, Refreshes and Verifies run in
// a loop while a writer appends with tiny segments (rolling all the time)
// and compacts: none may report a state the writer passes through as an
// error, and each sees a contiguous committed prefix.
func TestReadOnlyBesideWriter(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	w := openMem(t, mem, Options{SegmentSize: MinSegmentSize, Sync: SyncNever})
	defer w.Close()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() {
		defer stop() // the readers stop when the writer is done
		// 1,000 batches, about 125 rolls and as many compactions: as many
		// reader rounds as 3,000 gave (10 to 50, with the scheduler),
		// which read a log a third the size.
		for i := range 1000 {
			evs := make([]Envelope, 5)
			for j := range evs {
				evs[j] = Envelope{Type: "t", Data: make([]byte, 80)}
			}
			if _, err := w.Append(ctx, fmt.Sprintf("s-%d", i%7), ExpectAny, evs...); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for i := 0; wctx.Err() == nil; i++ {
			if _, err := w.Compact(ctx, CompactOptions{TargetSize: 64 << 10, Compress: i%2 == 1}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	ro := vfs.ReadOnly(mem)
	rounds := 0
	for round := 0; wctx.Err() == nil || round < 3; round++ {
		rounds++
		r, err := openFS(ro, Options{}, true)
		if err != nil {
			t.Errorf("round %d: read-only open beside the writer: %v", round, err)
			continue
		}
		for range 3 {
			if err := r.Refresh(); err != nil {
				t.Errorf("round %d: Refresh beside the writer: %v", round, err)
			}
		}
		want := uint64(1)
		for e, err := range r.Events(ctx, 1) {
			if err != nil {
				t.Errorf("round %d: reading beside the writer: %v", round, err)
				break
			}
			if e.Seq != want {
				t.Errorf("round %d: seq %d, want %d", round, e.Seq, want)
				break
			}
			want++
		}
		r.Close()
		rep, err := besideWriter(ro, func(*segment.Dir) (VerifyReport, error) { return verifyFS(ctx, ro) },
			func(r VerifyReport, err error) bool { return err != nil || r.Corrupt() })
		if err != nil || rep.Corrupt() {
			t.Errorf("round %d: verify beside the writer: %v %v", round, rep.Findings, err)
		}
	}
	wg.Wait()
	t.Logf("%d rounds of read-only opens beside the writer", rounds)
}

// TestReadOnlyServesOnlyDurable: a reader in another process (a read-only
// log on the same files) never serves a batch before the writer's fsync of
// it returned, under SyncAlways: here the writer is held inside that fsync.
// Under SyncNever, which acknowledges appends once written, it serves every
// committed batch. A read-only log's DurableSeq is what it serves.
func TestReadOnlyServesOnlyDurable(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	var armed atomic.Bool
	inSync, release := make(chan struct{}), make(chan struct{})
	hold := func(op vfs.Op) error {
		if armed.Load() && op.Kind == vfs.OpSync && strings.Contains(op.Name, ".seg") {
			armed.Store(false)
			close(inSync)
			<-release
		}
		return nil
	}
	w, err := openFS(vfs.NewFaulty(mem, hold), Options{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // before Close, also when the test fails
	ev := Envelope{Type: "t", Data: []byte{0xc0}}
	for range 3 {
		if _, err := w.Append(ctx, "s", ExpectAny, ev); err != nil {
			t.Fatal(err)
		}
	}
	armed.Store(true)
	appended := make(chan error, 1)
	go func() {
		_, err := w.Append(ctx, "s", ExpectAny, ev, ev)
		appended <- err
	}()
	<-inSync // seqs 4 and 5 are written and committed, their fsync not done
	r, err := openFS(vfs.ReadOnly(mem), Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, d := r.LastSeq(), r.DurableSeq(); got != 3 || d != 3 {
		t.Fatalf("a reader beside a writer inside its fsync serves up to seq %d (durable %d), want 3", got, d)
	}
	unblock()
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	if got, d := r.LastSeq(), r.DurableSeq(); got != 5 || d != 5 {
		t.Fatalf("after the fsync: reader at seq %d (durable %d), want 5", got, d)
	}

	// SyncNever acknowledges appends once written: its readers serve every
	// committed batch, durable or not (doc.go says so).
	mem2 := vfs.NewMem()
	w2 := openMem(t, mem2, Options{Sync: SyncNever})
	defer w2.Close()
	for range 4 {
		if _, err := w2.Append(ctx, "s", ExpectAny, ev); err != nil {
			t.Fatal(err)
		}
	}
	r2, err := openFS(vfs.ReadOnly(mem2), Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if got := r2.LastSeq(); got != 4 {
		t.Fatalf("SyncNever: a reader serves up to seq %d, want every committed one (4)", got)
	}
}

// TestReadOnlyFreshSegmentStrict: before a segment's first mark, its
// header's strict flag decides: a reader beside a SyncAlways writer held
// inside the fsync of the very first batch of a new log serves nothing.
func TestReadOnlyFreshSegmentStrict(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	var armed atomic.Bool
	inSync, release := make(chan struct{}), make(chan struct{})
	w, err := openFS(vfs.NewFaulty(mem, func(op vfs.Op) error {
		if armed.Load() && op.Kind == vfs.OpSync && strings.Contains(op.Name, ".seg") {
			armed.Store(false)
			close(inSync)
			<-release
		}
		return nil
	}), Options{}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	armed.Store(true)
	appended := make(chan error, 1)
	go func() {
		_, err := w.Append(ctx, "s", ExpectAny, Envelope{Type: "t"})
		appended <- err
	}()
	<-inSync
	r, err := openFS(vfs.ReadOnly(mem), Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := r.LastSeq(); got != 0 {
		t.Fatalf("a reader serves seq %d of a fresh segment before its first fsync returned, want 0", got)
	}
	unblock()
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	if err := r.Refresh(); err != nil || r.LastSeq() != 1 {
		t.Fatalf("after the fsync: reader at seq %d (%v), want 1", r.LastSeq(), err)
	}
}

// rollStorm lists a log directory as a reader beside a writer rolling
// faster than it reads may: every other listing (the first, third, …)
// misses the newest segment, as if taken just before the writer created
// it — while the segment before it is already sealed when the reader
// opens it.
type rollStorm struct {
	vfs.FS
	hide  string
	calls atomic.Int64
}

func (r *rollStorm) ReadDir() ([]vfs.DirEntry, error) {
	entries, err := r.FS.ReadDir()
	if err != nil || r.calls.Add(1)%2 == 0 {
		return entries, err
	}
	var out []vfs.DirEntry
	for _, e := range entries {
		if e.Name != r.hide {
			out = append(out, e)
		}
	}
	return out, nil
}

// TestReadOnlyOpenBesideRollStorm: a read-only open whose listing misses
// the segment a roll just created finds the segment before it sealed
// with no successor. That is a state every roll passes through (the new
// segment is created, then the old one sealed), not damage: the reader
// serves the log through the sealed segment. It used to retry, and fail
// with errDirChanging when every attempt met a roll (TestLoadKilled on a
// tmpfs, where 4 KiB segments roll every few hundred µs).
func TestReadOnlyOpenBesideRollStorm(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	w := openMem(t, mem, Options{SegmentSize: MinSegmentSize, Sync: SyncNever})
	for i := 0; len(segmentFiles(t, mem)) < 3; i++ {
		if _, err := w.Append(ctx, "s", ExpectAny, Envelope{Type: "t", Data: make([]byte, 200)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Append(ctx, "s", ExpectAny, Envelope{Type: "t", Data: make([]byte, 200)}); err != nil {
		t.Fatal(err)
	}
	segs, err := w.Segments()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	newest, sealed := segs[len(segs)-1], segs[len(segs)-2]
	if newest.Sealed || !sealed.Sealed || newest.Events == 0 {
		t.Fatalf("want a sealed segment, then the active one holding events: %+v", segs)
	}

	fsys := &rollStorm{FS: vfs.ReadOnly(mem), hide: newest.File}
	r, err := openFS(fsys, Options{}, true)
	if err != nil {
		t.Fatalf("read-only open while the newest segment is missing from every other listing: %v", err)
	}
	defer r.Close()
	if got := r.LastSeq(); got != sealed.LastSeq {
		t.Errorf("the reader serves through seq %d, want %d (the sealed segment's last)", got, sealed.LastSeq)
	}
	for i, e := range readAll(t, r) {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
}

// segmentFiles returns the names of the segment files of fsys.
func segmentFiles(t *testing.T, fsys vfs.FS) []string {
	t.Helper()
	d, err := segment.ReadDir(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return segmentNames(d)
}
