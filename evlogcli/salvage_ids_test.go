package evlogcli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/segment"
)

// TestSalvageKeepsPlaceholderIDs: an append with event IDs, its stream
// deleted (and compacted: placeholders keep the IDs), then salvaged: a
// client's retry of that append against NEWDIR must write nothing, as
// it writes nothing against DIR (TestDedupeRetryAfterRedaction). Salvage
// dropped the gone events' IDs, so the retry wrote the events again.
// The deleted data never reaches NEWDIR. Through the log (DIR reads
// cleanly) and frame by frame (DIR damaged after them).
func TestSalvageKeepsPlaceholderIDs(t *testing.T) {
	const secret = "SECRET-CART-PAYLOAD"
	for _, compact := range []bool{true, false} {
		for _, damaged := range []bool{false, true} {
			t.Run(fmt.Sprintf("compacted=%v/damaged=%v", compact, damaged), func(t *testing.T) {
				ctx := t.Context()
				dir := filepath.Join(t.TempDir(), "log")
				l, err := evlog.Open(dir, evlog.Options{SegmentSize: evlog.MinSegmentSize})
				if err != nil {
					t.Fatal(err)
				}
				defer func() { l.Close() }()
				evs := []evlog.Envelope{{ID: "order-a", Type: "t", Data: mpStr(secret)}, {ID: "order-b", Type: "t", Data: mpStr("b")}}
				if _, err := l.Append(ctx, "cart-1", evlog.ExpectNoStream, evs...); err != nil {
					t.Fatal(err)
				}
				if _, _, err := l.DeleteStream(ctx, "cart-1"); err != nil {
					t.Fatal(err)
				}
				// Seal the segment holding them, then (damaged) one more
				// sealed segment to damage.
				var bigSeq uint64
				for _, n := range []int{evlog.MinSegmentSize, 0, evlog.MinSegmentSize, 0} {
					p, err := l.Append(ctx, "pad-1", evlog.ExpectAny, evlog.Envelope{Type: "t", Data: make([]byte, n)})
					if err != nil {
						t.Fatal(err)
					}
					if n > 0 {
						bigSeq = p.Seq
					}
				}
				if compact {
					if _, err := l.Compact(ctx, evlog.CompactOptions{}); err != nil {
						t.Fatal(err)
					}
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				args := []string{"salvage", dir, filepath.Join(t.TempDir(), "salvaged")}
				if damaged {
					segs, err := filepath.Glob(filepath.Join(dir, fmt.Sprintf("%020d-*%s", bigSeq, segment.Ext)))
					if err != nil || len(segs) != 1 {
						t.Fatalf("the segment of seq %d: %q, %v", bigSeq, segs, err)
					}
					flipByte(t, segs[0], segment.HeaderSize+200)
					args = append(args, "--skip-damaged")
				}
				r := run1(t, args...)
				if want := map[bool]int{false: 0, true: 1}[damaged]; r.code != want {
					t.Fatalf("salvage: exit %d, want %d\n%s%s", r.code, want, r.stdout, r.stderr)
				}
				out := args[2]
				ents, _ := os.ReadDir(out)
				for _, e := range ents {
					if b, _ := os.ReadFile(filepath.Join(out, e.Name())); bytes.Contains(b, []byte(secret)) {
						t.Errorf("NEWDIR's %s holds the deleted event's data", e.Name())
					}
				}
				n, err := evlog.Open(out, evlog.Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer n.Close()
				for ev, err := range n.Events(ctx, 1) {
					if err != nil {
						t.Fatal(err)
					}
					if ev.Stream == "cart-1" {
						t.Errorf("NEWDIR serves %+v of the deleted stream", ev)
					}
				}
				before := n.LastSeq()
				if _, err := n.Append(ctx, "cart-1", evlog.ExpectNoStream, evs...); err != nil {
					t.Fatalf("the retry against NEWDIR: %v", err)
				}
				if after := n.LastSeq(); after != before {
					t.Errorf("the retry of a deleted append against the salvaged log wrote %d events (seqs %d..%d), want none: salvage lost the gone events' IDs", after-before, before+1, after)
				}
			})
		}
	}
}
