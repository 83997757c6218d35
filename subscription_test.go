package evlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog/internal/vfs"
)

func appendSeq(t testing.TB, l *Log, n int) {
	t.Helper()
	for i := range n {
		stream := []string{"cart-1", "inv-1", "cart-2"}[i%3]
		if _, err := l.Append(t.Context(), stream, ExpectAny, Envelope{Type: "t"}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSubscriptionResumesAfterAck: a restart resumes right after the last
// acknowledged event; events handed over but not acknowledged come again
// (at least once); the listing shows position and lag.
func TestSubscriptionResumesAfterAck(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{Clock: fakeClock(t0, time.Second)})
	appendSeq(t, l, 12)
	f := Filter{Categories: []string{"cart"}}
	sub, err := l.Subscription("billing", f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Subscription("billing", f); !errors.Is(err, ErrSubscriptionInUse) {
		t.Fatalf("second open: %v, want ErrSubscriptionInUse", err)
	}
	var seen []uint64
	for e, err := range sub.Events(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, e.Seq)
		if e.Seq <= 5 {
			if err := sub.Ack(ctx, e.Seq); err != nil {
				t.Fatal(err)
			}
		}
		if e.Seq >= 8 {
			break // 6, 7 and 9 handed over, not acknowledged
		}
	}
	if d := cmp.Diff([]uint64{1, 3, 4, 6, 7, 9}, seen); d != "" {
		t.Fatalf("first run (-want +got):\n%s", d)
	}
	if err := sub.Ack(ctx, 99); !errors.Is(err, ErrAckBeyondEnd) {
		t.Fatalf("Ack past the end: %v", err)
	}
	if err := sub.Ack(ctx, 2); err != nil || sub.Position() != 4 {
		t.Fatalf("Ack(2) after Ack(4): %v, position %d, want no change (4)", err, sub.Position())
	}
	// A restart: the process dies (nothing closed) and the machine keeps
	// only what was fsynced.
	after := mem.CrashClone(vfs.DropUnsynced, rand.New(rand.NewPCG(1, 2)))
	l.Close()
	sub.Close()
	l = openMem(t, after, Options{})
	defer l.Close()
	infos, err := l.Subscriptions()
	if err != nil {
		t.Fatal(err)
	}
	want := []SubscriptionInfo{{Name: "billing", Filter: f, Position: 4, Updated: t0.Add(15 * time.Second), Lag: 8}}
	if d := cmp.Diff(want, infos, cmpopts.EquateEmpty()); d != "" {
		t.Fatalf("Subscriptions (-want +got):\n%s", d)
	}
	sub, err = l.Subscription("billing", f)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for e, err := range sub.Events(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != 6 {
			t.Fatalf("resumed at seq %d, want 6 (right after the acknowledged 4, skipping non-matching 5)", e.Seq)
		}
		break
	}
	// Delete: in use fails; closed, it goes.
	if err := l.DeleteSubscription("billing"); !errors.Is(err, ErrSubscriptionInUse) {
		t.Fatalf("delete in use: %v", err)
	}
	sub.Close()
	if err := l.DeleteSubscription("billing"); err != nil {
		t.Fatal(err)
	}
	if infos, err := l.Subscriptions(); err != nil || len(infos) != 0 {
		t.Fatalf("after delete: %v %v", infos, err)
	}
}

func TestSubscriptionNames(t *testing.T) {
	l := openMem(t, vfs.NewMem(), Options{})
	defer l.Close()
	for _, name := range []string{"", ".hidden", "a/b", "a b", string(make([]byte, 101))} {
		if _, err := l.Subscription(name, Filter{}); !errors.Is(err, ErrSubscriptionName) {
			t.Errorf("%q: %v, want ErrSubscriptionName", name, err)
		}
	}
	if _, err := l.Subscription("ok", Filter{Categories: []string{"a-b"}}); !errors.Is(err, ErrInvalidFilter) {
		t.Errorf("bad filter: %v", err)
	}
}

// TestSubscriptionDamagedFile: a damaged position file is an error naming
// it, never position 0 (which would silently replay everything) — and the
// other files of the directory (recovery, Verify) ignore it.
func TestSubscriptionDamagedFile(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{})
	appendSeq(t, l, 3)
	sub, err := l.Subscription("s", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Ack(ctx, 2); err != nil {
		t.Fatal(err)
	}
	sub.Close()
	l.Close()
	f, err := mem.OpenReadWrite("s" + SubscriptionExt)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Seek(subPosOff, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte{0xff}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	l = openMem(t, mem, Options{}) // recovery ignores position files
	defer l.Close()
	if _, err := l.Subscription("s", Filter{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged position file: %v, want ErrCorrupt", err)
	}
	if _, err := l.Subscriptions(); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("listing a damaged position file: %v, want ErrCorrupt", err)
	}
	rep, err := verifyFS(ctx, vfs.ReadOnly(mem))
	if err != nil || len(rep.Findings) != 0 {
		t.Fatalf("verify with a position file: %v %v", rep.Findings, err)
	}
}

// subCrashLoop appends events, then acknowledges them one by one through
// a subscription, crashing at every mutating op k; after each crash, under
// every crash model, the stored position is readable (never torn), at
// least the last acknowledged seq and at most the last one attempted, and
// the subscription resumes right after it; once DeleteSubscription has
// returned, the subscription stays deleted.
func subCrashLoop(t *testing.T, wrap func(vfs.FS) vfs.FS) []string {
	ctx := t.Context()
	const events = 12
	// deleting: DeleteSubscription was called; deleted: it returned nil.
	var deleting bool
	run := func(fsys vfs.FS) (acked, tried uint64, deleted bool, err error) {
		deleting = false
		l, err := openFS(fsys, Options{}, false)
		if err != nil {
			return 0, 0, false, err
		}
		defer l.Close()
		for range events {
			if _, err := l.Append(ctx, "cart-1", ExpectAny, Envelope{Type: "t"}); err != nil {
				return 0, 0, false, err
			}
		}
		sub, err := l.Subscription("s", Filter{Categories: []string{"cart"}})
		if err != nil {
			return 0, 0, false, err
		}
		defer sub.Close()
		for e, err := range sub.Events(ctx) {
			if err != nil {
				return acked, tried, false, err
			}
			tried = e.Seq
			if err := sub.Ack(ctx, e.Seq); err != nil {
				return acked, tried, false, err
			}
			acked = e.Seq
			if e.Seq == events {
				break
			}
		}
		sub.Close()
		deleting = true
		if err := l.DeleteSubscription("s"); err != nil {
			return acked, tried, false, err
		}
		return acked, tried, true, nil
	}
	probe := vfs.NewMem()
	if _, _, _, err := run(wrap(probe)); err != nil {
		t.Fatal(err)
	}
	total := probe.Ops()
	var bad []string
	for k := range total + 1 {
		mem := vfs.NewMem()
		mem.CrashAt(k)
		acked, tried, deleted, _ := run(wrap(mem))
		for _, model := range vfs.CrashModels() {
			after := mem.CrashClone(model, rand.New(rand.NewPCG(uint64(k), uint64(model))))
			l, err := openFS(after, Options{}, false)
			if err != nil {
				bad = append(bad, fmt.Sprintf("k=%d model=%v: reopen: %v", k, model, err))
				continue
			}
			sub, err := l.Subscription("s", Filter{Categories: []string{"cart"}})
			switch {
			case err != nil:
				bad = append(bad, fmt.Sprintf("k=%d model=%v: the position file: %v", k, model, err))
			case deleted && sub.Position() != 0:
				bad = append(bad, fmt.Sprintf("k=%d model=%v: position %d after an acknowledged DeleteSubscription", k, model, sub.Position()))
			case deleted, deleting && sub.Position() == 0:
			case sub.Position() < acked:
				bad = append(bad, fmt.Sprintf("k=%d model=%v: position %d went back past the acknowledged %d", k, model, sub.Position(), acked))
			case sub.Position() > tried:
				bad = append(bad, fmt.Sprintf("k=%d model=%v: position %d, beyond any Ack (%d)", k, model, sub.Position(), tried))
			case sub.Position() < l.LastSeq():
				for e, err := range sub.Events(ctx) {
					if err != nil {
						bad = append(bad, fmt.Sprintf("k=%d model=%v: resuming: %v", k, model, err))
					} else if e.Seq != sub.Position()+1 {
						bad = append(bad, fmt.Sprintf("k=%d model=%v: resumed at %d, want %d", k, model, e.Seq, sub.Position()+1))
					}
					break
				}
			}
			if sub != nil {
				sub.Close()
			}
			l.Close()
		}
	}
	t.Logf("crashed at each of %d ops under %d models", total+1, len(vfs.CrashModels()))
	return bad
}

func TestSubscriptionCrash(t *testing.T) {
	bad := subCrashLoop(t, func(f vfs.FS) vfs.FS { return f })
	for _, b := range bad[:min(len(bad), 10)] {
		t.Error(b)
	}
}

// TestSubscriptionCrashHasTeeth: without the position file's fsync, or
// the directory's, the crash loop finds a torn file or a position gone back.
func TestSubscriptionCrashHasTeeth(t *testing.T) {
	for _, tc := range []struct {
		name string
		wrap func(vfs.FS) vfs.FS
	}{
		{"no directory fsync", func(f vfs.FS) vfs.FS { return vfs.NoSync{FS: f, Dirs: true} }},
		{"no file fsync", func(f vfs.FS) vfs.FS { return vfs.NoSync{FS: f, Files: isSubTemp} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := subCrashLoop(t, tc.wrap)
			if len(bad) == 0 {
				t.Fatal("the crash loop found no violation: it has no teeth")
			}
			t.Logf("%d violations, e.g. %s", len(bad), bad[0])
		})
	}
}

// TestSubscriptionReadOnlyFollows: a durable subscription on a read-only
// log follows the writer by itself and its position stays the writer's to
// store (Ack fails with ErrReadOnly).
func TestSubscriptionReadOnlyFollows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		mem := vfs.NewMem()
		w := openMem(t, mem, Options{SegmentSize: MinSegmentSize})
		defer w.Close()
		appendSeq(t, w, 3)
		r, err := openFS(vfs.ReadOnly(mem), Options{}, true) // default FollowInterval
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		sub, err := r.Subscription("ro", Filter{StreamPrefixes: []string{"inv-"}})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		done := make(chan []uint64)
		go func() {
			var got []uint64
			sctx, cancel := context.WithTimeout(ctx, time.Hour)
			defer cancel()
			for e, err := range sub.Events(sctx) {
				if err != nil {
					t.Error(err)
					break
				}
				got = append(got, e.Seq)
				if e.Seq == 299 {
					break
				}
			}
			done <- got
		}()
		appendSeq(t, w, 297) // rolls
		got := <-done
		want := []uint64{}
		for s := uint64(2); s <= 300; s += 3 {
			want = append(want, s)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("read-only subscription (-want +got):\n%s", d)
		}
		if err := sub.Ack(ctx, 2); !errors.Is(err, ErrReadOnly) {
			t.Fatalf("Ack on a read-only log: %v, want ErrReadOnly", err)
		}
	})
}

// TestSubscriptionAckSyncsTheLog: under SyncNever an Ack makes the events
// up to its seq durable first, so that a power loss cannot keep a position
// ahead of the log (whose lost seqs, appended again, would be skipped).
func TestSubscriptionAckSyncsTheLog(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{Sync: SyncNever})
	appendSeq(t, l, 5)
	sub, err := l.Subscription("s", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Ack(ctx, 5); err != nil {
		t.Fatal(err)
	}
	after := mem.CrashClone(vfs.DropUnsynced, rand.New(rand.NewPCG(3, 4)))
	sub.Close()
	l.Close()
	l = openMem(t, after, Options{})
	defer l.Close()
	if l.LastSeq() < 5 {
		t.Fatalf("after the power loss the log ends at %d, before the acknowledged 5", l.LastSeq())
	}
	if _, err := l.Subscription("s", Filter{}); err != nil {
		t.Fatal(err)
	}
}

// TestSubscriptionAheadOfLog: a position beyond the log's end (a log
// restored to an earlier point) is refused, not silently skipping seqs.
func TestSubscriptionAheadOfLog(t *testing.T) {
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{})
	appendSeq(t, l, 2)
	if err := l.writeSubscription("s", 9, t0, Filter{}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Subscription("s", Filter{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("position ahead of the log: %v, want ErrCorrupt", err)
	}
}

// TestSubscriptionFilterTooLargeToStore: a filter whose encoding exceeds
// what a position file holds is refused when the subscription is opened,
// not by every Ack after the events were consumed. '<' is escaped by JSON
// as six bytes, so the filter's own bytes may be well under the limit.
func TestSubscriptionFilterTooLargeToStore(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name string
		f    Filter
	}{
		{"many types", Filter{Types: slices.Repeat([]string{strings.Repeat("t", 100)}, 700)}},
		{"escaped bytes", Filter{StreamPrefixes: []string{strings.Repeat("<", 12<<10)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := openMem(t, vfs.NewMem(), Options{})
			defer l.Close()
			appendSeq(t, l, 2)
			sub, err := l.Subscription("s", tc.f)
			if err == nil {
				ackErr := sub.Ack(ctx, 1)
				sub.Close()
				t.Fatalf("Subscription accepted a filter it cannot store (Ack: %v)", ackErr)
			}
			if !errors.Is(err, ErrInvalidFilter) {
				t.Fatalf("Subscription: %v, want ErrInvalidFilter", err)
			}
		})
	}
}

// isSubTemp accepts subscription temporaries: a NoSync skipping only their
// fsyncs (the log's own stay) loses what is the position's.
func isSubTemp(name string) bool { return strings.HasSuffix(name, ".sub.tmp") }
