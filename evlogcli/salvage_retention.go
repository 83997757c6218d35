package evlogcli

import (
	"fmt"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/copyhook"
	"github.com/evlog/evlog/segment"
)

// Salvage and recorded retention (docs/FORMAT.md, "Recorded retention"):
// salvage copies the log's retention records, so that the new log applies
// the same retention. A record whose frame checksums but whose Data does
// not decode to valid settings is damage, reported as a deletion
// marker's is: a gap naming its file and frame offset, and its seq lost
// (without --skip-damaged copying stops there). Its settings cannot be
// known, and the new log cannot hold it (an append refuses it), so salvage
// writes a record of no retention in its place (replaceRetention): from
// there on the new log hides no event by retention until a later good
// record, copied after it, sets retention again. Not the last good record
// before it: the damaged record replaced those settings, maybe with looser
// ones, and applying them could hide events the damaged log's writer
// showed; no retention never hides more than any settings would. The
// user sets the retention they want by opening the new log's writer with
// Options.Retention.

// decodesRawRetention reports whether data, a retention record's Data read
// frame by frame from a possibly damaged log, decodes to valid settings
// as evlog reads them (and as an append copying the record into the new
// log requires): the root package's own rule, through copyhook.
func decodesRawRetention(data []byte) bool { return copyhook.DecodesRetention(data) }

// badRetentionGap returns the gap of the retention record ev, at offset
// off of file, whose frame ends at end, when its Data does not decode;
// nil when it does.
func badRetentionGap(ev *evlog.Envelope, file string, off, end int64) *rawGap {
	if decodesRawRetention(ev.Data) {
		return nil
	}
	return &rawGap{file: file, Gap: segment.Gap{Offset: off, Bad: off, Length: end - off,
		Reason:   fmt.Sprintf("retention record at seq %d does not decode: the new log records no retention in its place (set it by opening the new log's writer with Options.Retention)", ev.Seq),
		FirstSeq: ev.Seq, LastSeq: ev.Seq}}
}

// replaceRetention handles ev, a retention record whose Data does not
// decode (its gap g): it reports the damage and writes a record of no
// retention in its place, at its time (see above), copied or not.
func (s *salvager) replaceRetention(ev evlog.Envelope, g *rawGap) {
	s.gap(g)
	s.lastTime = max(s.lastTime, ev.Time.UnixNano())
	s.buf.add(evlog.Envelope{Stream: evlog.RetentionStream, Type: evlog.TypeRetention, Time: ev.Time, Data: copyhook.NoRetention()})
	s.bufReplaced++
	if !s.copying {
		return // finish reports the seqs from this one on as lost
	}
	s.lost(seqRange{From: ev.Seq, To: ev.Seq, Reason: "a retention record that does not decode: the new log records no retention in its place"})
	s.pending = nil
	s.next = ev.Seq + 1
}
