package evlog

import (
	"context"
	"strings"

	"github.com/evlog/evlog/snapshot"
)

// Derived state over events that expire. Retention is recorded in the log
// (Options.Retention, retention.go) and every process applies it: an
// expired event reads as gone, but a snapshot or checkpoint that folded it
// is how its effect is kept (docs/FORMAT.md, "Deletion and retention"). So replay
// anchors a snapshot on its last event as recorded, expired or not
// (AnchorEvent), and the latest version of a stream subject counts the
// versions retention hides (retainedBefore, through DeletedBefore).

// AnchorEvent returns the event at seq as recorded, whether it reads as
// gone or not — expired by retention, deleted, or redacted by compaction
// (which keeps its seq, stream, version and time) — without its Data,
// Meta and ID, and its anchor: snapshot.AnchorOf the whole event, 0 when
// the log no longer holds all of it (a placeholder Compact left in its
// place). found is false when the log has no event at seq (0 or beyond
// its last visible one). It implements replay.Anchors, with which replay
// checks a snapshot's last event: one deleted since is caught before
// (replay.Deletions), one expired must still anchor the snapshot. The
// payload of a gone event is never returned, only its digest.
func (l *Log) AnchorEvent(ctx context.Context, seq uint64) (e Envelope, anchor uint64, found bool, err error) {
	if seq == 0 {
		return Envelope{}, 0, false, nil
	}
	err = l.inView(ctx, func(v *view, pub published) error {
		return l.scanAllIn(ctx, v, pub, seq, seq, func(x *Envelope) error {
			if x.Seq == seq {
				e = Envelope{Seq: x.Seq, Stream: x.Stream, Version: x.Version, Type: x.Type, SchemaVersion: x.SchemaVersion, Time: x.Time}
				if x.Type != TypeRedacted {
					anchor = snapshot.AnchorOf(*x)
				}
				found = true
			}
			return nil
		})
	})
	return e, anchor, found, err
}

// retainedBefore returns the version of stream below which its events
// read as gone by retention in (v, pub) (0: none): by MaxCount, the
// versions before the newest MaxCount; by MaxAge, every version when the
// newest one has expired (an older one recorded later may still read,
// but the stream's version is then what a state of its visible events
// stands at).
func (l *Log) retainedBefore(ctx context.Context, v *view, pub published, stream string) (uint64, error) {
	vis, err := l.newVisibility(ctx, v, pub)
	if err != nil {
		return 0, err
	}
	r, ok := vis.retention(stream)
	if !ok {
		return 0, nil
	}
	cur, err := l.streamVersionIn(v, pub, stream)
	if err != nil || cur == 0 {
		return 0, err
	}
	var before uint64
	if r.MaxCount > 0 && cur > uint64(r.MaxCount) {
		before = cur - uint64(r.MaxCount) + 1
	}
	if r.MaxAge > 0 {
		expired := false
		err := l.scanStreamIn(ctx, v, pub, stream, cur, 0, func(e *Envelope) error {
			if e.Version == cur {
				expired = e.Time.UnixNano() < vis.now-int64(r.MaxAge)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		if expired {
			before = cur + 1
		}
	}
	return before, nil
}

// FirstExpired returns the seq of the first event with seq in [from, to]
// of a stream for which in returns true (system streams excluded) that
// reads as gone other than by a deletion marker (found false: none):
// expired by the retention the log records, or a placeholder Compact left
// in its place whose deletion the markers do not explain (retention since
// changed, or an older evlog's process-only retention). Such an event's effect is held only by
// the snapshots that folded it. It reads every event of the range (the
// payloads of gone ones are never returned). It implements
// replay.Expirations.
func (l *Log) FirstExpired(ctx context.Context, from, to uint64, in func(stream string) bool) (seq uint64, found bool, err error) {
	if to == 0 || to < from {
		return 0, false, nil
	}
	err = l.inView(ctx, func(v *view, pub published) error {
		vis, err := l.newVisibility(ctx, v, pub)
		if err != nil {
			return err
		}
		return l.scanAllIn(ctx, v, pub, from, to, func(e *Envelope) error {
			if strings.HasPrefix(e.Stream, SystemStreamPrefix) || !in(e.Stream) {
				return nil
			}
			if st, ok := vis.t.m[e.Stream]; ok && (st.tomb || e.Version < st.before) {
				return nil // deleted: its effect is to go
			}
			if vis.gone(e) {
				seq, found = e.Seq, true
				return errStop
			}
			return vis.err
		})
	})
	if err == errStop {
		err = nil
	}
	if err == nil && !found {
		seq = 0
	}
	return seq, found, err
}
