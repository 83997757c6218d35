package evlog

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// TestAckFsyncs counts the fsyncs of the active segment an Ack costs
// under SyncAlways when no fsync has yet made durable the mark that lets a
// reader in another process serve its seq (the mark after the last
// group). Alone, that is one fsync: the price of the guarantee (see
// Subscription.Ack). Queued beside appends, though, the Ack needs none of
// its own: the fsync of any group written after that mark makes it
// durable. The writer took the Ack's Sync in queue order, fsyncing the
// group staged before it and then the mark that group's flush had just
// written: one fsync more than needed per Ack on a busy log.
//
// The writer is held (a synctest bubble: where it is held is the test's
// choice, not the scheduler's) while the Ack and one append queue behind
// it; their order in the queue is the scheduler's, and either must give
// the counts below.
func TestAckFsyncs(t *testing.T) {
	for _, tc := range []struct {
		name string
		// held is what the writer is busy with while the Ack and the
		// append queue: "" nothing (no append either), "fsync" a group's
		// fsync, "failing write" a group's write, which then fails for
		// lack of space (no fsync at all).
		held string
		want int64 // segment fsyncs from the hold on
	}{
		{"alone", "", 1},
		{"behind a group's fsync", "fsync", 2},          // the held group's, the queued append's
		{"behind a failing append", "failing write", 1}, // the queued append's
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				mem := vfs.NewMem()
				var hold atomic.Bool
				var syncs atomic.Int64 // of segments (a new one counts under its temporary name)
				release := make(chan struct{})
				fsys := vfs.NewFaulty(mem, func(op vfs.Op) error {
					if op.Kind == vfs.OpSync && strings.HasSuffix(strings.TrimSuffix(op.Name, segment.TempExt), segment.Ext) {
						syncs.Add(1)
					}
					switch {
					case !strings.HasSuffix(strings.TrimSuffix(op.Name, segment.TempExt), segment.Ext):
					case tc.held == "fsync" && op.Kind == vfs.OpSync && hold.CompareAndSwap(true, false):
						<-release
					case tc.held == "failing write" && isSegmentWrite(op) && op.Len > segment.MarkFrameSize && hold.CompareAndSwap(true, false):
						<-release
						return vfs.ENOSPC(op.Name)
					}
					return nil
				})
				l := openMem(t, fsys, Options{Sync: SyncAlways})
				defer l.Close()
				sub, err := l.Subscription("sub", Filter{})
				if err != nil {
					t.Fatal(err)
				}
				appendN(t, l, "s", 2) // the second group's mark is not durable
				n := l.LastSeq()
				if l.servedAfterPowerLoss(n) {
					t.Fatal("the last group's mark is durable already: the test does not test what it claims")
				}
				syncs.Store(0)

				appendErr := make(chan error, 2)
				appendOne := func() {
					_, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "e"})
					appendErr <- err
				}
				if tc.held != "" {
					hold.Store(true)
					go appendOne()
					synctest.Wait() // the writer is held
				}
				type acked struct {
					err      error
					afterAck *vfs.Mem // a power loss right after the Ack returned
				}
				ackDone := make(chan acked, 1)
				go func() {
					err := sub.Ack(context.WithoutCancel(ctx), n)
					ackDone <- acked{err, mem.CrashClone(vfs.DropUnsynced, rand.New(rand.NewPCG(1, 2)))}
				}()
				if tc.held != "" {
					go appendOne()
					synctest.Wait() // the Ack and the append are queued
					close(release)
					for range 2 {
						<-appendErr // the held one may fail for lack of space
					}
				}
				a := <-ackDone
				if a.err != nil {
					t.Fatalf("Ack: %v", a.err)
				}
				if got := syncs.Load(); got != tc.want {
					t.Errorf("%d fsyncs of the segment, want %d", got, tc.want)
				}
				ro, err := openFS(vfs.ReadOnly(a.afterAck), Options{Sync: SyncAlways}, true)
				if err != nil {
					t.Fatal(err)
				}
				defer ro.Close()
				if got := ro.LastSeq(); got < n {
					t.Errorf("after a power loss right after the Ack, a read-only open serves up to seq %d; the Ack was of %d", got, n)
				}
			})
		})
	}
}
