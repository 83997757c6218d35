package evlog

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/replay"
)

// TestSnapshotSaveMakesTheMarkDurable: a snapshot saved through the
// writer's store must be served, after a power loss right after the
// Save, by a reader in another process (OpenReadOnly), not only by a
// writer's Open. Under SyncAlways such a reader serves only what a
// durable mark records (docs/FORMAT.md, reader rule 9), and the mark of
// the last group is durable only with the next fsync: a Save that did
// not fsync the mark left a snapshot beyond the end of the log the
// reader serves ("claims seq 3, beyond the end of the log (2)"), which
// verify reports as corruption and every plan refuses until a writer
// reopens the log.
func TestSnapshotSaveMakesTheMarkDurable(t *testing.T) {
	for _, mode := range []SyncMode{SyncAlways, SyncNever, SyncInterval(time.Hour)} {
		for _, beside := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/SnapshotWriter=%v", mode, beside), func(t *testing.T) {
				mem := vfs.NewMem()
				opts := Options{Sync: mode}
				l := openMem(t, mem, opts)
				defer l.Close()
				appendN(t, l, "s", 3) // three groups: the marks of the first two are durable
				n := l.LastSeq()
				if beside {
					w := snapshotWriterOn(t, mem, opts)
					defer w.Close()
					saveSnap(t, w.Log(), w.Snapshots(), n)
				} else {
					saveSnap(t, l, mustSnapshots(t, l), n)
				}
				lost := mem.CrashClone(vfs.DropUnsynced, rand.New(rand.NewPCG(1, 2)))
				ro, err := openFS(vfs.ReadOnly(lost), opts, true)
				if err != nil {
					t.Fatalf("read-only open after the power loss: %v", err)
				}
				defer ro.Close()
				if got := ro.LastSeq(); got < n {
					t.Errorf("after the power loss a read-only open serves up to seq %d, before the snapshot's %d", got, n)
				}
				p, err := replay.MakePlan(t.Context(), ro, mustSnapshots(t, ro), replay.Subject{Name: "s"}, replay.Latest(), replay.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if p.Snapshot == nil || p.Snapshot.Seq != n {
					t.Errorf("a read-only plan starts from snapshot %v (fallbacks %+v), want the one at seq %d", p.Snapshot, p.Fallbacks, n)
				}
			})
		}
	}
}
