package aggregate_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/snapshot"
)

// gappyLog is a memLog whose events are not at every seq: the seqs it
// lacks read as gone (expired), up to last.
type gappyLog struct {
	memLog
	last uint64
}

func (g *gappyLog) LastSeq() uint64 { return g.last }

// TestRepositoryUnfoldedCap: an instance folded from the first event
// records the holes in its stream's history as Instance.Unfolded, and its
// snapshots as Meta.Unfolded, at most snapshot.MaxUnfolded ranges. At the
// cap every hole is recorded; one more is left out (counted as possibly
// folded: a deletion then reports it rather than refolding without it),
// never merged into a range that would claim folded events unfolded.
func TestRepositoryUnfoldedCap(t *testing.T) {
	for _, holes := range []int{snapshot.MaxUnfolded, snapshot.MaxUnfolded + 1} {
		t.Run(fmt.Sprint(holes), func(t *testing.T) {
			// Version and seq 2i for i = 1..holes: a hole at each odd seq.
			l := &gappyLog{last: uint64(2 * holes)}
			for i := 1; i <= holes; i++ {
				v := uint64(2 * i)
				l.events = append(l.events, event.Envelope{Stream: "hot-x", Version: v, Seq: v, Type: "e", Time: time.Unix(int64(i), 0).UTC()})
			}
			store, err := snapshot.Open(vfs.NewMem(), snapshot.Options{})
			if err != nil {
				t.Fatal(err)
			}
			r := aggregate.NewRepository(l, store, kindsDef("hot"), aggregate.Codec[event.Envelope](aggregate.RawCodec{}), aggregate.Options{})
			inst, err := r.Load(t.Context(), "x")
			if err != nil {
				t.Fatal(err)
			}
			var want []snapshot.SeqRange
			for i := range min(holes, snapshot.MaxUnfolded) {
				want = append(want, snapshot.SeqRange{From: uint64(2*i + 1), To: uint64(2*i + 1)})
			}
			if diff := cmp.Diff(want, inst.Unfolded.Slice()); diff != "" {
				t.Errorf("Instance.Unfolded after %d holes (-want +got):\n%s", holes, diff)
			}
			if got := inst.State["e"]; got != holes {
				t.Errorf("state folded %d events, want %d", got, holes)
			}
			if err := r.Snapshot(t.Context(), "x"); err != nil {
				t.Fatal(err)
			}
			snaps, err := store.List(r.Subject("x").Name)
			if err != nil || len(snaps) != 1 {
				t.Fatalf("snapshots %v, %v; want one", snaps, err)
			}
			if diff := cmp.Diff(want, snaps[0].Unfolded.Slice()); diff != "" {
				t.Errorf("Meta.Unfolded of the snapshot after %d holes (-want +got):\n%s", holes, diff)
			}
		})
	}
}
