package aggregate

import (
	"fmt"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
)

// TestSnapshotMarksBounded: the per-instance snapshot bookkeeping stays
// bounded however many instances a long-running repository touches (the
// state cache is bounded by CacheSize); it used to keep an entry for
// every instance ever executed.
func TestSnapshotMarksBounded(t *testing.T) {
	l, err := evlog.Open(t.TempDir(), evlog.Options{Sync: evlog.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	def := Definition[int, event.Envelope]{Category: "c", Apply: func(n int, _ event.Envelope) int { return n + 1 }}
	r := NewRepository(l, snaps, def, Codec[event.Envelope](RawCodec{}), Options{SnapshotEvery: 100, CacheSize: 8})
	defer r.Close()
	const instances = 3 * maxSnapMarks
	for i := range instances {
		if _, err := r.Execute(t.Context(), fmt.Sprint(i), func(int) ([]event.Envelope, error) { return []event.Envelope{{Type: "e"}}, nil }); err != nil {
			t.Fatal(err)
		}
	}
	r.mu.Lock()
	n := len(r.lastSnap)
	r.mu.Unlock()
	if n > maxSnapMarks {
		t.Fatalf("%d snapshot marks after %d instances, want at most %d", n, instances, maxSnapMarks)
	}
}
