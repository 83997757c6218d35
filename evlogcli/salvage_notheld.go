package evlogcli

import (
	"context"
	"fmt"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/vfs"
)

// Events salvage reads but the new log cannot hold: user events of a
// stream whose name starts with "$$", which an evlog before stream
// deletion accepted and which is reserved for evlog's system streams
// since (an append refuses it). Each is reported as a lost seq naming its segment file,
// event frame offset and why, so the salvage is not complete (exit 1);
// salvage goes on with the events after it.

// notHeld reports ev, read but not copied, as lost for reason. Read
// frame by frame its location is s.at; through the log it is found
// afterwards (locateNotHeld).
func (s *salvager) notHeld(ev evlog.Envelope, reason string) {
	r := seqRange{From: ev.Seq, To: ev.Seq, Reason: reason}
	if s.at.seq == ev.Seq {
		r.File, r.Offset = s.at.file, s.at.off
	}
	s.lost(r)
	s.notHeldAt = append(s.notHeldAt, notHeldRef{lost: len(s.rep.Lost) - 1, line: len(s.rep.lines) - 1})
}

// rawLoc is the location of the event being handled when salvage reads
// frame by frame.
type rawLoc struct {
	seq  uint64
	file string
	off  int64
}

// notHeldRef points at the report entries of an event notHeld reported.
type notHeldRef struct{ lost, line int }

// locateNotHeld fills in the segment file and frame offset of the events
// notHeld reported without them (read through the log), reading src's
// segments frame by frame once, and rewrites their text lines.
func (s *salvager) locateNotHeld(ctx context.Context, src string) error {
	want := map[uint64]*seqRange{}
	for _, ref := range s.notHeldAt {
		if r := &s.rep.Lost[ref.lost]; r.File == "" {
			want[r.From] = r
		}
	}
	if len(want) > 0 {
		fsys, err := vfs.OpenOS(src)
		if err != nil {
			return err
		}
		defer fsys.Close()
		err = scanRaw(ctx, vfs.ReadOnly(fsys), rawVisitor{
			batch: func(b *rawBatch) error {
				for i, ev := range b.Events {
					if r := want[ev.Seq]; r != nil && r.File == "" {
						r.File, r.Offset = b.file, b.Offsets[i]
					}
				}
				return nil
			},
			gap:   func(*rawGap) error { return nil },
			owned: true,
		})
		if err != nil {
			return err
		}
	}
	for _, ref := range s.notHeldAt {
		s.rep.lines[ref.line] = notHeldLine(s.rep.Lost[ref.lost])
	}
	return nil
}

// notHeldLine is the text report's line of an event notHeld reported.
func notHeldLine(r seqRange) string {
	if r.File == "" {
		return fmt.Sprintf("lost %s (%s)", r, r.Reason)
	}
	return fmt.Sprintf("lost %s (%s %d: %s)", r, r.File, r.Offset, r.Reason)
}
