package jetstream

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/evlog/evlog/event"
)

// Header names. Values that may hold arbitrary bytes (type, ID, meta) are
// escaped (see escape), so no header ever carries a CR, LF or a byte the
// protocol could mangle; the stream name travels in the subject.
const (
	hdrVersion = "Evlog-Version"
	hdrType    = "Evlog-Type"
	hdrSchema  = "Evlog-Schema"
	hdrID      = "Evlog-Id"
	hdrTime    = "Evlog-Time" // Unix nanoseconds, set by the appending client
	hdrMeta    = "Evlog-Meta" // escaped key ":" escaped value, "," separated, sorted
)

// subject returns the subject of stream.
func (l *Log) subject(stream string) string { return l.prefix + escape(stream) }

// encode builds the message of e (Stream, Version and Time set), with its
// Nats-Msg-Id.
func (l *Log) encode(e *event.Envelope, msgID string) *nats.Msg {
	m := nats.NewMsg(l.subject(e.Stream))
	h := m.Header
	h.Set(hdrVersion, strconv.FormatUint(e.Version, 10))
	h.Set(hdrType, escape(e.Type))
	h.Set(hdrSchema, strconv.FormatUint(uint64(e.SchemaVersion), 10))
	h.Set(hdrID, escape(e.ID))
	h.Set(hdrTime, strconv.FormatInt(e.Time.UnixNano(), 10))
	if len(e.Meta) > 0 {
		var b strings.Builder
		for i, k := range slices.Sorted(maps.Keys(e.Meta)) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(escape(k))
			b.WriteByte(':')
			b.WriteString(escape(e.Meta[k]))
		}
		h.Set(hdrMeta, b.String())
	}
	h.Set("Nats-Msg-Id", escape(msgID))
	m.Data = e.Data
	return m
}

// decode rebuilds the envelope stored as message seq. data is used as it
// is (the caller passes a buffer it owns).
func (l *Log) decode(subject string, seq uint64, h nats.Header, data []byte) (event.Envelope, error) {
	bad := func(format string, args ...any) (event.Envelope, error) {
		return event.Envelope{}, fmt.Errorf("evlog/jetstream: message %d of %s is not an evlog event: %s", seq, l.streamName, fmt.Sprintf(format, args...))
	}
	tok, ok := strings.CutPrefix(subject, l.prefix)
	if !ok {
		return bad("subject %.80q", subject)
	}
	stream, err := unescape(tok)
	if err != nil {
		return bad("subject: %v", err)
	}
	e := event.Envelope{Seq: seq, Stream: stream}
	if e.Version, err = strconv.ParseUint(h.Get(hdrVersion), 10, 64); err != nil || e.Version == 0 {
		return bad("version %q", h.Get(hdrVersion))
	}
	if e.Type, err = unescape(h.Get(hdrType)); err != nil || e.Type == "" {
		return bad("type %q", h.Get(hdrType))
	}
	sv, err := strconv.ParseUint(h.Get(hdrSchema), 10, 32)
	if err != nil {
		return bad("schema version %q", h.Get(hdrSchema))
	}
	e.SchemaVersion = uint32(sv)
	if e.ID, err = unescape(h.Get(hdrID)); err != nil {
		return bad("ID: %v", err)
	}
	ns, err := strconv.ParseInt(h.Get(hdrTime), 10, 64)
	if err != nil {
		return bad("time %q", h.Get(hdrTime))
	}
	e.Time = time.Unix(0, ns).UTC()
	if mh := h.Get(hdrMeta); mh != "" {
		e.Meta = map[string]string{}
		for kv := range strings.SplitSeq(mh, ",") {
			k, v, ok := strings.Cut(kv, ":")
			if !ok {
				return bad("meta %.80q", mh)
			}
			if k, err = unescape(k); err != nil {
				return bad("meta: %v", err)
			}
			if e.Meta[k], err = unescape(v); err != nil {
				return bad("meta: %v", err)
			}
		}
	}
	if len(data) > 0 {
		e.Data = data
	}
	return e, nil
}

// newID returns a random Nats-Msg-Id for events appended without an ID.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}
