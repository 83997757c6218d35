package evlogcli

import (
	"bytes"
	"fmt"
	"time"

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
	s.wroteRetention(ev.Seq, copyhook.NoRetention())
	if !s.copying {
		return // finish reports the seqs from this one on as lost
	}
	s.lost(seqRange{From: ev.Seq, To: ev.Seq, Reason: "a retention record that does not decode: the new log records no retention in its place"})
	s.pending = nil
	s.next = ev.Seq + 1
}

// The retention NEWDIR ends with. Retention applies the newest record to
// the whole log, so NEWDIR must not end with settings stricter than the
// ones the damaged log's writer applied: a default salvage stops at the
// first damage, and the retention records after it (a looser MaxCount,
// say) are not copied, so NEWDIR would keep applying an earlier, stricter
// record, hiding events DIR showed (and a compact of NEWDIR would destroy
// them). So salvage notes every retention record it reads, copied or not
// (noteRetention), and whether damage was read after the last one
// (retUnsure: a gap, a seq hole, a segment left out that may be the
// log's), and settleRetention ends NEWDIR with:
//   - nothing more when NEWDIR's last record is DIR's last readable one
//     and no damage follows it;
//   - else a copy of the settings of DIR's last readable record (read,
//     not copied: after the damage) when no damage follows it: NEWDIR's
//     events are a subset of DIR's, so the settings DIR's writer applied
//     hide none that DIR showed;
//   - else a record of no retention: damage after DIR's last readable
//     record may hold a later record, whose settings cannot be known and
//     may keep more events (so may the record itself, when it does not
//     decode or is of a kind this evlog does not know); no retention
//     never hides an event.
// Either written record is reported (salvageReport.Retention and a text
// line) and not counted as copied; the operator sets the retention they
// want by opening NEWDIR's writer with Options.Retention.

// salvageRetentionJSON is salvage's report of the retention record written at
// the end of NEWDIR (settleRetention).
type salvageRetentionJSON struct {
	// Seq is DIR's seq of its last readable retention record (0: none).
	Seq uint64 `json:"seq"`
	// None: NEWDIR ends with a record of no retention; otherwise with a
	// copy of the settings of record Seq.
	None   bool   `json:"none"`
	Reason string `json:"reason"`
}

// noteRetention notes ev, an event of DIR's retention stream read (in
// seq order), once it has been handled.
func (s *salvager) noteRetention(ev evlog.Envelope) {
	if s.srcRet == nil || ev.Seq > s.srcRet.Seq {
		s.srcRet = &evlog.Envelope{Seq: ev.Seq, Type: ev.Type, Data: ev.Data}
		s.retUnsure = false
	}
}

// wroteRetention notes that the last retention record written to NEWDIR
// so far is one of the settings data, for DIR's record at seq.
func (s *salvager) wroteRetention(seq uint64, data []byte) {
	s.outRetSeq, s.outRetData = seq, data
}

// settleRetention buffers, at the end of NEWDIR, the retention record
// that keeps NEWDIR from ending with settings stricter than DIR's (see
// above), when one is needed.
func (s *salvager) settleRetention() {
	if s.srcRet == nil {
		return // none read: NEWDIR records none either
	}
	none := copyhook.NoRetention()
	want, reason := s.srcRet.Data, fmt.Sprintf("NEWDIR ends with the settings of DIR's last readable retention record (seq %d), which was not copied: not those of an earlier record, which may hide events DIR showed", s.srcRet.Seq)
	switch {
	case s.retUnsure:
		want, reason = none, fmt.Sprintf("damage after DIR's last readable retention record (seq %d) may hide a later record, whose settings may keep more events: NEWDIR records no retention at its end; set the retention you want by opening NEWDIR's writer with Options.Retention", s.srcRet.Seq)
	case s.srcRet.Seq == s.outRetSeq:
		return // NEWDIR ends with it (or with no retention in its place)
	case s.srcRet.Type != evlog.TypeRetention || !decodesRawRetention(s.srcRet.Data):
		want, reason = none, fmt.Sprintf("DIR's last readable retention record (seq %d), not copied, gives settings this salvage cannot apply: NEWDIR records no retention at its end; set the retention you want by opening NEWDIR's writer with Options.Retention", s.srcRet.Seq)
	}
	if s.outRetSeq == 0 && bytes.Equal(want, none) || s.outRetSeq != 0 && bytes.Equal(want, s.outRetData) {
		return // NEWDIR applies those settings already
	}
	s.buf.add(evlog.Envelope{Stream: evlog.RetentionStream, Type: evlog.TypeRetention, Time: time.Unix(0, s.lastTime).UTC(), Data: want})
	s.bufReplaced++
	s.wroteRetention(s.srcRet.Seq, want)
	s.rep.Retention = &salvageRetentionJSON{Seq: s.srcRet.Seq, None: bytes.Equal(want, none), Reason: reason}
	s.rep.lines = append(s.rep.lines, "retention: "+reason)
}
