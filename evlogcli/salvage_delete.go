package evlogcli

import (
	"context"
	"fmt"
	"math"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// Salvage and stream deletion (see evlog's docs/FORMAT.md, "Deletion and
// retention"): salvage copies the events that read as visible. Deletion
// markers (events of evlog's system streams) are not copied — the new
// log has no deletions, and its streams are numbered from the events
// copied — and the events that read as gone are not either, except that
// each of them with an ID (a placeholder Compact left, or a deleted event)
// is copied as its placeholder (salvager.placeholder), so that the ID
// still answers a retry against the new log. Through the source
// log (which reads cleanly) the log hides deleted events; frame by frame
// (a damaged log), salvage first folds every readable marker (rawGone)
// and leaves out the events they delete, wherever the marker lies; dump's
// frame-by-frame fallback (dumpRaw) prints what it reads the same way,
// and stops at a marker that does not decode (damage: rawGone.bad).

// deletedHole is called, on the path that copies through the source log
// (which reads cleanly), before each event (and with seq MaxUint64 after
// the last): a seq hole there is events that read as gone (deleted),
// never damage, so it is skipped, not reported as lost; the placeholders
// of those of them that carry an ID (s.kept, read by rawKept) are
// copied first.
func (s *salvager) deletedHole(ctx context.Context, ev evlog.Envelope) error {
	for len(s.kept) > 0 && s.kept[0].Seq < ev.Seq {
		if s.copying && s.kept[0].Seq >= s.next {
			s.placeholder(s.kept[0])
			if err := s.flushFull(ctx); err != nil {
				return err
			}
		}
		s.kept = s.kept[1:]
	}
	if s.copying && ev.Seq > s.next && s.next > 0 && ev.Seq != math.MaxUint64 {
		s.next = ev.Seq
	}
	return nil
}

// keepsID reports whether ev, an event salvage does not copy, is one
// whose ID it carries into the new log as a placeholder: a user event
// with an ID that reads as gone (a placeholder Compact left, or an event
// a deletion marker deletes).
func keepsID(ev *evlog.Envelope, gone goneStreams) bool {
	return ev.ID != "" && !event.IsSystemStream(ev.Stream) && (ev.Type == evlog.TypeRedacted || gone.has(*ev))
}

// placeholder appends the placeholder of ev (an event keepsID accepts)
// to the new log, as Compact would leave it: its stream, schema version,
// time and ID, type evlog.TypeRedacted, no meta or data. The new log's
// readers never yield it; its dedupe index reads its ID, so that a
// client's retry of the append that wrote ev writes nothing against the
// new log either, as against DIR. Not counted as copied.
func (s *salvager) placeholder(ev evlog.Envelope) {
	t := ev.Time.UnixNano()
	if t < s.lastTime {
		// The new log cannot hold it in this place. Never reached today
		// (event checks every event's time first, and evlog's open
		// refuses a log whose times go backwards), but never silent.
		s.backwards(ev)
		return
	}
	s.lastTime = t
	s.buf.add(evlog.Envelope{Stream: ev.Stream, Type: evlog.TypeRedacted, SchemaVersion: ev.SchemaVersion, Time: ev.Time, ID: ev.ID})
	s.bufPlaceholders++
}

// rawKept returns, in seq order, the events of the complete batches of
// fsys that keepsID accepts (gone folds fsys's markers): what the source
// log, read through evlog, hides.
func rawKept(ctx context.Context, fsys vfs.FS, gone goneStreams) ([]evlog.Envelope, error) {
	var out []evlog.Envelope
	err := scanRaw(ctx, fsys, rawVisitor{
		batch: func(b *rawBatch) error {
			for _, ev := range b.Events {
				if keepsID(&ev, gone) && (len(out) == 0 || ev.Seq > out[len(out)-1].Seq) {
					out = append(out, evlog.Envelope{Seq: ev.Seq, Stream: ev.Stream, SchemaVersion: ev.SchemaVersion, Time: ev.Time, ID: ev.ID})
				}
			}
			return nil
		},
		gap:   func(*rawGap) error { return nil },
		owned: true,
	})
	return out, err
}

// notCopied reports whether ev, about to be copied, is one salvage does
// not copy (a system event other than a retention record that decodes,
// a placeholder,
// or, read frame by frame, an
// event a marker deletes), and then counts it as handled, buffering its
// placeholder when it carries an ID (keepsID). A deletion
// marker that does not decode is damage: a gap naming its file and
// offset, and its seq lost (what it deletes cannot be known); without
// --skip-damaged copying stops there.
func (s *salvager) notCopied(ev evlog.Envelope) bool {
	if !event.IsSystemStream(ev.Stream) && ev.Type != evlog.TypeRedacted && !s.gone.has(ev) {
		return false
	}
	if ev.Stream == evlog.RetentionStream && ev.Type == evlog.TypeRetention {
		g, bad := s.gone.badRet[ev.Seq]
		if !bad {
			// Copied: the new log keeps the log's retention.
			s.wroteRetention(ev.Seq, ev.Data) // salvage_retention.go
			return false
		}
		s.replaceRetention(ev, g) // salvage_retention.go
		return true
	}
	if ev.Stream != evlog.DeletionsStream && event.IsSystemStream(ev.Stream) {
		s.notHeld(ev, fmt.Sprintf("stream %q: names starting with %q are reserved for evlog's system streams (an evlog before stream deletion accepted it for user events, or a later evlog wrote it): the new log cannot hold it",
			ev.Stream, evlog.SystemStreamPrefix))
	}
	if keepsID(&ev, s.gone) {
		s.placeholder(ev)
	}
	if g, ok := s.gone.bad[ev.Seq]; ok {
		s.gap(g)
		if !s.copying {
			return true // finish reports the seqs from this one on as lost
		}
		s.lost(seqRange{From: ev.Seq, To: ev.Seq, Reason: "a deletion marker that does not decode: the events it deletes cannot be known"})
	}
	s.pending = nil
	s.lastTime = max(s.lastTime, ev.Time.UnixNano())
	s.next = ev.Seq + 1
	return true
}

// goneStreams is the fold of the deletion markers read frame by frame:
// per stream, the versions below before read as gone, and every version
// of a tombstoned one; and the markers that do not decode.
type goneStreams struct {
	m map[string]struct {
		before uint64
		tomb   bool
	}
	// bad holds, by seq, the gap of each marker (of a type evlog knows)
	// whose frame checksums but whose Data does not decode: its frame.
	bad map[uint64]*rawGap
	// badRet holds the same for the retention records (salvage only;
	// salvage_retention.go).
	badRet map[uint64]*rawGap
}

// has reports whether ev reads as gone by the markers.
func (g goneStreams) has(ev evlog.Envelope) bool {
	st, ok := g.m[ev.Stream]
	return ok && (st.tomb || ev.Version < st.before)
}

// rawGone folds the deletion markers of every complete batch of the
// segments of fsys that can be read, and finds the retention records
// there whose Data does not decode.
func rawGone(ctx context.Context, fsys vfs.FS) (goneStreams, error) {
	g := goneStreams{m: map[string]struct {
		before uint64
		tomb   bool
	}{}, bad: map[uint64]*rawGap{}, badRet: map[uint64]*rawGap{}}
	err := scanRaw(ctx, fsys, rawVisitor{
		batch: func(b *rawBatch) error {
			for i, ev := range b.Events {
				if ev.Stream == evlog.RetentionStream && ev.Type == evlog.TypeRetention {
					if bg := badRetentionGap(&ev, b.file, b.Offsets[i], b.Offsets[i+1]); bg != nil {
						g.badRet[ev.Seq] = bg
					}
					continue
				}
				if ev.Stream != evlog.DeletionsStream {
					continue
				}
				switch ev.Type {
				case evlog.TypeDeleted, evlog.TypeTruncate, evlog.TypeTombstone:
				default:
					continue // a later version's marker: not ours to decode
				}
				mk, ok := decodeRawMarker(ev.Data)
				if !ok {
					off := b.Offsets[i]
					g.bad[ev.Seq] = &rawGap{file: b.file, Gap: segment.Gap{Offset: off, Bad: off, Length: b.Offsets[i+1] - off,
						Reason: fmt.Sprintf("deletion marker at seq %d (%s) does not decode", ev.Seq, ev.Type), FirstSeq: ev.Seq, LastSeq: ev.Seq}}
					continue
				}
				st := g.m[mk.Stream]
				switch ev.Type {
				case evlog.TypeDeleted, evlog.TypeTruncate:
					st.before = max(st.before, mk.Before)
				case evlog.TypeTombstone:
					st.tomb = true
				}
				g.m[mk.Stream] = st
			}
			return nil
		},
		gap:   func(*rawGap) error { return nil },
		owned: true,
	})
	return g, err
}

// rawMarker is a deletion marker's Data: msgpack {stream, before}.
type rawMarker struct {
	Stream string `msgpack:"stream"`
	Before uint64 `msgpack:"before,omitempty"`
}

// decodeRawMarker decodes a deletion marker's Data, read frame by frame
// from a possibly damaged log: false if it is not one evlog writes
// (rawGone reports it as damage). The
// depth check comes first: msgpack/v5 skips unknown fields recursively,
// and a hostile nesting would exhaust the stack.
func decodeRawMarker(data []byte) (rawMarker, bool) {
	var mk rawMarker
	if segment.CheckMsgpack(data) != nil || msgpack.Unmarshal(data, &mk) != nil || mk.Stream == "" {
		return rawMarker{}, false
	}
	return mk, true
}

// srcKept is rawKept of the segments in src (read-only), with the
// deletion markers there folded.
func srcKept(ctx context.Context, src string) ([]evlog.Envelope, error) {
	fsys, err := vfs.OpenOS(src)
	if err != nil {
		return nil, err
	}
	defer fsys.Close()
	ro := vfs.ReadOnly(fsys)
	gone, err := rawGone(ctx, ro)
	if err != nil {
		return nil, err
	}
	return rawKept(ctx, ro, gone)
}
