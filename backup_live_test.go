package evlog

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// appendUntil runs n writers appending small batches to l until stop is
// closed; acked holds the highest seq acknowledged so far.
func appendUntil(t testing.TB, l *Log, n int, stop <-chan struct{}, acked *atomic.Uint64) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				evs := []Envelope{{Type: "a", Data: []byte{0xa1, 'x'}}, {Type: "b"}}
				pos, err := l.Append(context.Background(), fmt.Sprintf("w%d-%d", w, i%7), ExpectAny, evs...)
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				for {
					cur := acked.Load()
					if pos.Seq <= cur || acked.CompareAndSwap(cur, pos.Seq) {
						break
					}
				}
			}
		})
	}
	return &wg
}

// stopIfWritersFailed ends the test if an appendUntil writer failed (the
// writers' count would never reach what the test waits for): it stops the
// other writers and waits for them first, so that none logs after the
// test.
func stopIfWritersFailed(t *testing.T, stop chan struct{}, wg *sync.WaitGroup) {
	t.Helper()
	if t.Failed() {
		close(stop)
		wg.Wait()
		t.FailNow()
	}
}

// restoredEvents restores the backup in bdir and returns the restored
// log's events.
func restoredEvents(t *testing.T, bdir string) []Envelope {
	t.Helper()
	rdir := filepath.Join(t.TempDir(), "r")
	if _, err := Restore(t.Context(), bdir, rdir, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	return logEvents(t, rdir)
}

// Backups taken while 4 writers append at full speed, by the writer's own
// Log and by a read-only one beside it, hold every event up to their S
// (at least every append acknowledged before the backup started), and
// nothing else.
func TestBackupBesideWriters(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l, err := Open(dir, Options{SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	stop := make(chan struct{})
	var acked atomic.Uint64
	wg := appendUntil(t, l, 4, stop, &acked)
	ro, err := OpenReadOnly(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	type taken struct {
		dir      string
		seq, min uint64
	}
	var backups []taken
	for i := range 6 {
		for acked.Load() < uint64(2000*(i+1)) {
			stopIfWritersFailed(t, stop, wg)
			runtime.Gosched()
		}
		src, name := l, "writer"
		if i%2 == 1 {
			if err := ro.Refresh(); err != nil {
				t.Fatal(err)
			}
			src, name = ro, "reader"
		}
		min := acked.Load()
		if src == ro {
			min = ro.LastSeq()
		}
		bdir := filepath.Join(t.TempDir(), name)
		res, err := src.Backup(t.Context(), bdir, BackupOptions{NoLink: i%3 == 0})
		if err != nil {
			t.Fatal(err)
		}
		backups = append(backups, taken{bdir, res.Seq, min})
	}
	close(stop)
	wg.Wait()
	all := readAll(t, l)
	for _, b := range backups {
		if b.seq < b.min {
			t.Errorf("%s: backup at seq %d, but seq %d was acknowledged before it started", b.dir, b.seq, b.min)
		}
		if got := restoredEvents(t, b.dir); !envsEqual(got, all[:b.seq]) {
			t.Errorf("%s: the restored log (%d events) is not the source's first %d", b.dir, len(got), b.seq)
		}
	}
}

// FollowBackup keeps up with 4 writers and, once they stop, catches up
// with the source's end. The writers roll 16 segments while it makes its
// passes; the smallest segment size makes that take about 1,200 events
// rather than 20,000 (the count that once gave the same rolls, and most of
// the test's time under load).
func TestFollowBackupCatchesUp(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l, err := Open(dir, Options{SegmentSize: MinSegmentSize})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	stop := make(chan struct{})
	var acked atomic.Uint64
	wg := appendUntil(t, l, 4, stop, &acked)
	bdir := filepath.Join(t.TempDir(), "follow")
	ctx, cancel := context.WithCancel(t.Context())
	passes := make(chan BackupResult, 1000)
	done := make(chan error, 1)
	go func() {
		done <- FollowBackup(ctx, dir, bdir, FollowOptions{Interval: 5 * time.Millisecond, OnPass: func(r BackupResult, err error) {
			if err == nil {
				select {
				case passes <- r:
				default:
				}
			}
		}})
	}()
	// Let it make passes while the writers run, over 16 rolls.
	segments := func() int {
		m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
		if err != nil {
			t.Fatal(err)
		}
		return len(m)
	}
	guard := time.After(4 * time.Minute) // a hang guard for both waits, not a bound
	for n := 0; n < 5 || segments() < 17; {
		stopIfWritersFailed(t, stop, wg)
		select {
		case <-passes:
			n++
		case err := <-done:
			t.Fatalf("FollowBackup returned %v", err)
		case <-guard:
			close(stop)
			wg.Wait()
			t.Fatalf("%d passes, %d segments at seq %d: the writers never made 16 rolls", n, segments(), l.LastSeq())
		}
	}
	close(stop)
	wg.Wait()
	final := l.LastSeq()
	t.Logf("%d events in %d segments", final, segments())
	for caught := false; !caught; {
		select {
		case r := <-passes:
			caught = r.Seq == final
		case <-guard:
			t.Fatalf("the follower never reached seq %d", final)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st, err := ReadBackupStatus(bdir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Seq != final || st.LagEvents != 0 || st.SourceErr != "" {
		t.Fatalf("status %+v, want seq %d and no lag", st, final)
	}
	if got := restoredEvents(t, bdir); !envsEqual(got, readAll(t, l)) {
		t.Fatalf("the followed backup (%d events) differs from the source", len(got))
	}
}
