package evlogcli

import (
	"fmt"
	"slices"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/segment"
)

// stats is the state of the built-in "stats" fold: what snapshot, state
// and verify --replay compute. It counts the events of every stream and
// type; Streams[s].Version is the stream's last version.
type stats struct {
	Seq     uint64                 `msgpack:"seq" json:"seq"`
	Events  uint64                 `msgpack:"events" json:"events"`
	Streams map[string]streamStats `msgpack:"streams" json:"streams"`
	Types   map[string]uint64      `msgpack:"types" json:"types"`
}

// streamStats is one stream's entry in stats.
type streamStats struct {
	Count   uint64 `msgpack:"count" json:"count"`
	Version uint64 `msgpack:"version" json:"version"`
}

// statsSubject names the stats fold's snapshots. Bump SchemaVersion when
// the state's shape or the fold changes: snapshots of another version are
// ignored.
var statsSubject = replay.Subject{Name: "stats", SchemaVersion: 1}

// statsSpec is the stats fold over raw envelopes, with a deterministic
// msgpack encoding of the state (map keys sorted, compact integers), so
// that equal states give byte-identical snapshots.
var statsSpec = replay.Spec[stats, evlog.Envelope]{
	Init:        newStats,
	Decode:      replay.Raw,
	Fold:        foldStats,
	EncodeState: encodeStats,
	DecodeState: decodeStats,
	// foldStats keeps only the stream and type names, never Data.
	NoCopy: true,
}

func newStats() stats {
	return stats{Streams: map[string]streamStats{}, Types: map[string]uint64{}}
}

// foldStats folds one event into s. Its maps are the replay's own (Init
// and DecodeState make fresh ones), so it updates them in place rather
// than copying them per event.
func foldStats(s stats, e evlog.Envelope) stats {
	s.Seq = e.Seq
	s.Events++
	st := s.Streams[e.Stream]
	st.Count++
	st.Version = e.Version
	s.Streams[e.Stream] = st
	s.Types[e.Type]++
	return s
}

// encodeStats encodes s as the msgpack map msgpack.Marshal would write for
// the struct, but with every map's keys sorted, so that equal states give
// equal bytes (and snapshots of equal size).
func encodeStats(s stats) ([]byte, error) {
	b := make([]byte, 0, 64+len(s.Streams)*24+len(s.Types)*16)
	b = mpAppendLen(b, 4, 0x80, 0xde)
	b = mpAppendUint(mpAppendStr(b, "seq"), s.Seq)
	b = mpAppendUint(mpAppendStr(b, "events"), s.Events)
	b = mpAppendLen(mpAppendStr(b, "streams"), len(s.Streams), 0x80, 0xde)
	for _, k := range sortedKeys(s.Streams) {
		st := s.Streams[k]
		b = mpAppendLen(mpAppendStr(b, k), 2, 0x80, 0xde)
		b = mpAppendUint(mpAppendStr(b, "count"), st.Count)
		b = mpAppendUint(mpAppendStr(b, "version"), st.Version)
	}
	b = mpAppendLen(mpAppendStr(b, "types"), len(s.Types), 0x80, 0xde)
	for _, k := range sortedKeys(s.Types) {
		b = mpAppendUint(mpAppendStr(b, k), s.Types[k])
	}
	return b, nil
}

// decodeStats decodes a stats state: the msgpack map of the struct's
// fields that encodeStats (or msgpack.Marshal) writes. It decodes field by
// field over the bytes (statsIn) rather than by reflection or the msgpack
// library's Decoder: a one-shot "evlogctl state" decodes one snapshot,
// and reflection's first-use setup, then the Decoder's per-key calls and
// strings, were most of that work. Unknown fields are skipped and nil maps
// read as empty, as with msgpack.Unmarshal; a map's length is only a hint
// bounded by the input's size, never trusted for allocation.
//
// The state is untrusted bytes from disk: it is checked first
// (segment.CheckMsgpack: one well-formed value, at most 32 deep), so that
// skipping a value never recurses deeper.
func decodeStats(b []byte) (stats, error) {
	if err := segment.CheckMsgpack(b); err != nil {
		return stats{}, err
	}
	r := &statsIn{mpDec{b: b}}
	s := stats{}
	err := r.fields(func(key []byte) (err error) {
		switch string(key) {
		case "seq":
			s.Seq, err = r.u64()
		case "events":
			s.Events, err = r.u64()
		case "streams":
			s.Streams, err = strMap(r, len(b), (*statsIn).streamStats)
		case "types":
			s.Types, err = strMap(r, len(b), (*statsIn).u64)
		default:
			err = r.skip()
		}
		return err
	})
	if err != nil {
		return stats{}, err
	}
	if s.Streams == nil {
		s.Streams = map[string]streamStats{}
	}
	if s.Types == nil {
		s.Types = map[string]uint64{}
	}
	return s, nil
}

// statsDiff describes the first difference between a (a snapshot) and b
// (a replay of the events), or returns "" when they are equal.
func statsDiff(a, b stats) string {
	switch {
	case a.Seq != b.Seq:
		return fmt.Sprintf("seq %d, the events say %d", a.Seq, b.Seq)
	case a.Events != b.Events:
		return fmt.Sprintf("%d events, the events say %d", a.Events, b.Events)
	case len(a.Streams) != len(b.Streams):
		return fmt.Sprintf("%d streams, the events say %d", len(a.Streams), len(b.Streams))
	case len(a.Types) != len(b.Types):
		return fmt.Sprintf("%d types, the events say %d", len(a.Types), len(b.Types))
	}
	for _, k := range sortedKeys(a.Streams) {
		if x, y := a.Streams[k], b.Streams[k]; x != y {
			return fmt.Sprintf("stream %q count %d version %d, the events say count %d version %d", k, x.Count, x.Version, y.Count, y.Version)
		}
	}
	for _, k := range sortedKeys(a.Types) {
		if x, y := a.Types[k], b.Types[k]; x != y {
			return fmt.Sprintf("type %q count %d, the events say %d", k, x, y)
		}
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
