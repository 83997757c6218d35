package evlog

import (
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// TestDedupeRetryAfterDelete: a retry of an append whose events were
// deleted since (the client never saw the first acknowledgement) is still
// a retry while the events are in the files: it writes nothing and returns
// the original position, so a retry never resurrects deleted events.
// Deletion hides events from readers, not from the ID check.
func TestDedupeRetryAfterDelete(t *testing.T) {
	ctx := t.Context()
	for _, reopen := range []bool{false, true} {
		mem := vfs.NewMem()
		l := openMem(t, mem, Options{})
		evs := []Envelope{idEv("a", "t", 'a'), idEv("b", "t", 'b')}
		p1, err := l.Append(ctx, "cart-1", ExpectNoStream, evs...)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := l.DeleteStream(ctx, "cart-1"); err != nil {
			t.Fatal(err)
		}
		if reopen { // the ID index is built after the deletion
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openMem(t, mem, Options{})
		}
		last := l.LastSeq()
		p2, err := l.Append(ctx, "cart-1", ExpectAny, evs...)
		if err != nil {
			t.Fatalf("reopen=%v: retry after delete: %v", reopen, err)
		}
		if p2.Seq != p1.Seq || l.LastSeq() != last {
			t.Errorf("reopen=%v: retry after delete returned seq %d (first append: %d) and the log grew from %d to %d: the deleted events were written again", reopen, p2.Seq, p1.Seq, last, l.LastSeq())
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
