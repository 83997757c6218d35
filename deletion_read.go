package evlog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/segment"
)

// What readers see of deletions and retention (see deletion.go): the
// deletion table folded from DeletionsStream's markers, and the visibility
// filters every read path applies.

// marker is the payload of a deletion marker.
type marker struct {
	Stream string `msgpack:"stream"`
	Before uint64 `msgpack:"before,omitempty"`
}

// decodeMarker decodes a deletion marker's Data (untrusted bytes from
// disk): one msgpack value nested at most segment.MaxPayloadDepth deep
// (msgpack/v5 skips unknown fields recursively: deeper nesting would
// exhaust the stack), naming a stream.
func decodeMarker(data []byte) (marker, error) {
	if err := segment.CheckMsgpack(data); err != nil {
		return marker{}, err
	}
	var mk marker
	if err := msgpack.Unmarshal(data, &mk); err != nil {
		return marker{}, err
	}
	if mk.Stream == "" {
		return marker{}, errors.New("it names no stream")
	}
	return mk, nil
}

// badMarker returns the corruption of deletion marker e, whose Data does
// not decode (err): every read of the log fails with it, as it cannot tell
// what the marker deletes. File and Offset are left to the caller, which
// knows the marker's frame.
func badMarker(e *Envelope, err error) *segment.CorruptError {
	return &segment.CorruptError{Seq: e.Seq - 1, Reason: fmt.Sprintf("deletion marker at seq %d (%s) does not decode: %v", e.Seq, e.Type, err)}
}

// delState is one stream's entry of the deletion table.
type delState struct {
	before uint64 // versions below it are gone
	tomb   bool   // every version is gone
	kind   string // type of the last marker
	seq    uint64 // seq of the last marker
}

// deletionTable is the fold of DeletionsStream up to seq. It is immutable
// once published.
type deletionTable struct {
	seq     uint64 // every marker with seq <= seq is folded
	version uint64 // version of DeletionsStream folded
	last    uint64 // seq of the newest marker (0: none)
	unknown uint64 // seq of the newest marker of a type not interpreted (0: none)
	m       map[string]delState
}

// deletions guards the log's current deletion table.
type deletions struct {
	mu sync.Mutex
	t  *deletionTable
}

// deletionsAt returns a deletion table holding at least every marker
// visible in (v, pub).
func (l *Log) deletionsAt(ctx context.Context, v *view, pub published) (*deletionTable, error) {
	l.dels.mu.Lock()
	defer l.dels.mu.Unlock()
	t := l.dels.t
	if t == nil {
		t = &deletionTable{}
	}
	if t.seq >= pub.seq {
		return t, nil
	}
	nt := &deletionTable{seq: pub.seq, version: t.version, last: t.last, unknown: t.unknown, m: t.m}
	cloned := false
	err := l.scanStreamIn(ctx, v, pub, DeletionsStream, t.version+1, t.seq, func(e *Envelope) error {
		if !cloned {
			nt.m, cloned = maps.Clone(t.m), true
			if nt.m == nil {
				nt.m = make(map[string]delState)
			}
		}
		nt.version, nt.last = e.Version, e.Seq
		switch e.Type {
		case TypeDeleted, TypeTruncate, TypeTombstone:
		default:
			// A later version's marker: not ours to interpret, nor to
			// decode (its Data may have another shape). It may have
			// deleted events of any stream (LastDeletionIn).
			nt.unknown = e.Seq
			return nil
		}
		mk, err := decodeMarker(e.Data)
		if err != nil {
			return badMarker(e, err) // scanStreamIn names the file and the frame's offset
		}
		st := nt.m[mk.Stream]
		if e.Type == TypeTombstone {
			st.tomb = true
		} else {
			st.before = max(st.before, mk.Before)
		}
		st.kind, st.seq = e.Type, e.Seq
		nt.m[mk.Stream] = st
		return nil
	})
	if err != nil {
		return nil, err
	}
	l.dels.t = nt
	return nt, nil
}

// visibility decides which events read as gone: deleted, truncated,
// beyond retention, or redacted placeholders.
type visibility struct {
	l    *Log
	ctx  context.Context
	v    *view
	pub  published
	t    *deletionTable
	ret  map[string]Retention
	now  int64
	vers map[string]uint64 // stream versions, for MaxCount
	err  error
}

// newVisibility returns the visibility of the events of (v, pub).
func (l *Log) newVisibility(ctx context.Context, v *view, pub published) (*visibility, error) {
	t, err := l.deletionsAt(ctx, v, pub)
	if err != nil {
		return nil, err
	}
	rt, err := l.retentionAt(ctx, v, pub) // retention.go: the log's, not the process's
	if err != nil {
		return nil, err
	}
	ret, err := rt.settings()
	if err != nil {
		return nil, err
	}
	vis := &visibility{l: l, ctx: ctx, v: v, pub: pub, t: t, ret: ret}
	if len(vis.ret) > 0 {
		vis.now = l.opts.Clock().UnixNano()
	}
	return vis, nil
}

// goneVersion reports whether version ver of stream reads as gone, by the
// deletion table and MaxCount (not MaxAge, which needs the event's time).
func (vis *visibility) goneVersion(stream string, ver uint64) bool {
	if st, ok := vis.t.m[stream]; ok && (st.tomb || ver < st.before) {
		return true
	}
	if r, ok := vis.retention(stream); ok && r.MaxCount > 0 {
		cur, ok := vis.vers[stream]
		if !ok {
			var err error
			cur, err = vis.l.streamVersionIn(vis.v, vis.pub, stream)
			if err != nil {
				vis.err = err
				return false
			}
			if vis.vers == nil {
				vis.vers = make(map[string]uint64)
			}
			vis.vers[stream] = cur
		}
		if cur > uint64(r.MaxCount) && ver <= cur-uint64(r.MaxCount) {
			return true
		}
	}
	return false
}

func (vis *visibility) retention(stream string) (Retention, bool) {
	if len(vis.ret) == 0 {
		return Retention{}, false
	}
	cat, _, ok := strings.Cut(stream, CategorySeparator)
	if !ok {
		return Retention{}, false
	}
	r, ok := vis.ret[cat]
	return r, ok
}

// gone reports whether e reads as gone.
func (vis *visibility) gone(e *Envelope) bool {
	if e.Type == TypeRedacted {
		return true
	}
	if len(vis.t.m) == 0 && len(vis.ret) == 0 {
		return false
	}
	if vis.goneVersion(e.Stream, e.Version) {
		return true
	}
	if r, ok := vis.retention(e.Stream); ok && r.MaxAge > 0 && e.Time.UnixNano() < vis.now-int64(r.MaxAge) {
		return true
	}
	return false
}

// hideGone returns fn skipping the events of (v, pub) that read as gone.
func (l *Log) hideGone(ctx context.Context, v *view, pub published, fn func(*Envelope) error) (func(*Envelope) error, error) {
	vis, err := l.newVisibility(ctx, v, pub)
	if err != nil {
		return nil, err
	}
	return func(e *Envelope) error {
		if vis.gone(e) {
			return vis.err
		}
		return fn(e)
	}, nil
}

// hideGoneStreams returns fn for Streams: streams whose every event reads
// as gone are skipped, truncated ones carry TruncatedBefore.
func (l *Log) hideGoneStreams(ctx context.Context, v *view, pub published, fn func(StreamInfo) error) (func(StreamInfo) error, error) {
	vis, err := l.newVisibility(ctx, v, pub)
	if err != nil {
		return nil, err
	}
	if len(vis.t.m) == 0 && len(vis.ret) == 0 {
		return fn, nil
	}
	return func(si StreamInfo) error {
		before := uint64(0)
		if st, ok := vis.t.m[si.Stream]; ok {
			if st.tomb {
				return nil
			}
			before = st.before
		}
		if r, ok := vis.retention(si.Stream); ok {
			if r.MaxCount > 0 && si.Version > uint64(r.MaxCount) {
				before = max(before, si.Version-uint64(r.MaxCount)+1)
			}
			if r.MaxAge > 0 && si.LastTime.UnixNano() < vis.now-int64(r.MaxAge) {
				return nil // its last event is beyond MaxAge: all are
			}
		}
		if before > si.Version {
			return nil
		}
		if before > 1 {
			si.TruncatedBefore = before
		}
		return fn(si)
	}, nil
}

// skipSystem returns fn skipping the events of system streams (typed
// views: their payloads are not the view's type).
func skipSystem(fn func(*Envelope) error) func(*Envelope) error {
	return func(e *Envelope) error {
		if strings.HasPrefix(e.Stream, SystemStreamPrefix) {
			return nil
		}
		return fn(e)
	}
}

// hideGoneStream is hideGone for a read of one stream from version from:
// a tombstoned stream returns a nil fn (nothing to read), and from moves
// past the deleted versions. The gone events of a stream are always its
// first ones (deletions and retention cut a prefix), so a backward read
// ends at the first gone event it meets.
func (l *Log) hideGoneStream(ctx context.Context, v *view, pub published, stream string, from uint64, fn func(*Envelope) error, backward bool) (uint64, func(*Envelope) error, error) {
	vis, err := l.newVisibility(ctx, v, pub)
	if err != nil {
		return 0, nil, err
	}
	if st, ok := vis.t.m[stream]; ok {
		if st.tomb {
			return 0, nil, nil
		}
		if !backward {
			from = max(from, st.before)
		}
	}
	return from, func(e *Envelope) error {
		if vis.gone(e) {
			if vis.err == nil && backward {
				return errStop
			}
			return vis.err
		}
		return fn(e)
	}, nil
}
