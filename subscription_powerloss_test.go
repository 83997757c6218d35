package evlog

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// TestSubscriptionAckMakesTheMarkDurable: a position acknowledged by the
// writer must not run past what a reader in another process serves after
// a power loss right after the Ack. Under SyncAlways the acknowledged
// events are durable, but the mark recording that (written after the
// last group's fsync) becomes durable only with the next fsync, and a
// read-only open (evlogctl subscriptions, verify) serves only what a
// durable mark records (docs/FORMAT.md, reader rule 9): an Ack that did
// not fsync the mark left a position past the end of the log such a
// reader serves.
func TestSubscriptionAckMakesTheMarkDurable(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncNever, SyncInterval(time.Hour)} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) {
			mem := vfs.NewMem()
			opts := Options{Sync: mode}
			l := openMem(t, mem, opts)
			defer l.Close()
			appendN(t, l, "s", 3) // three groups: the marks of the first two are durable
			n := l.LastSeq()
			sub, err := l.Subscription("sub", Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if err := sub.Ack(t.Context(), n); err != nil {
				t.Fatal(err)
			}
			lost := mem.CrashClone(vfs.DropUnsynced, rand.New(rand.NewPCG(1, 2)))
			ro, err := openFS(vfs.ReadOnly(lost), opts, true)
			if err != nil {
				t.Fatalf("read-only open after the power loss: %v", err)
			}
			defer ro.Close()
			infos, err := ro.Subscriptions()
			if err != nil {
				t.Fatalf("read-only Subscriptions after the power loss: %v", err)
			}
			type seen struct {
				Name     string
				Position uint64
				LastSeq  uint64
			}
			var got []seen
			for _, s := range infos {
				got = append(got, seen{s.Name, s.Position, ro.LastSeq()})
			}
			if diff := cmp.Diff([]seen{{"sub", n, n}}, got); diff != "" {
				t.Errorf("after the power loss a read-only open lists (-want +got):\n%s", diff)
			}
		})
	}
}
