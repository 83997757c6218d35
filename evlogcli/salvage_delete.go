package evlogcli

import (
	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
)

// Salvage and stream deletion (see evlog's docs/FORMAT.md, "Deletion and
// retention"): salvage copies the events that read as visible. Deletion
// markers (events of evlog's system streams) and the placeholders Compact
// leaves of deleted events are not copied — the new log has no deletions,
// and its streams are numbered from the events copied.

// deletedHole is called, on the path that copies through the source log
// (which reads cleanly), before each event: a seq hole there is events
// that read as gone (deleted), never damage, so it is skipped, not
// reported as lost.
func (s *salvager) deletedHole(ev evlog.Envelope) {
	if s.copying && ev.Seq > s.next && s.next > 0 {
		s.next = ev.Seq
	}
}

// notCopied reports whether ev, about to be copied, is one salvage does
// not copy (a system event or a placeholder), and then counts it as
// handled.
func (s *salvager) notCopied(ev evlog.Envelope) bool {
	if !event.IsSystemStream(ev.Stream) && ev.Type != evlog.TypeRedacted {
		return false
	}
	s.pending = nil
	s.lastTime = ev.Time.UnixNano()
	s.next = ev.Seq + 1
	return true
}
