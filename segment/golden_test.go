package segment

import (
	"bytes"
	stdcmp "cmp"
	"errors"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
)

// Golden segment files, one directory per format version. The files of
// every version ever released stay here and must keep decoding to the
// envelopes below; the files of the current version must also be what the
// current encoder writes, byte for byte, so that any change of the format
// is noticed (it needs a new FormatVersion). Regenerate the current
// version's files with
//
//	go test ./segment -run 'TestGolden|TestFuzzSeedCorpora' -update
//
// only when the format change is intended.

// goldenTime is the recorded time of the first golden event.
var goldenTime = time.Date(2024, 5, 17, 10, 30, 0, 0, time.UTC)

// mpMap encodes a msgpack map of string keys to string or uint values: the
// payload (Data) of a golden event. Written by hand so that the golden
// files do not depend on a msgpack library's choices.
func mpMap(kv ...any) []byte {
	b := appendMapLen(nil, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		b = appendStr(b, kv[i].(string))
		switch v := kv[i+1].(type) {
		case string:
			b = appendStr(b, v)
		case int:
			b = appendUint(b, uint64(v))
		}
	}
	return b
}

func goldenEnv(seq uint64, stream string, version uint64, typ string, sv uint32, id string, ms int, meta map[string]string, data []byte) event.Envelope {
	return event.Envelope{Seq: seq, Stream: stream, Version: version, Type: typ, SchemaVersion: sv, ID: id,
		Time: goldenTime.Add(time.Duration(ms) * time.Millisecond), Meta: meta, Data: data}
}

// goldenSealedBatches are the batches of testdata/v1/sealed.seg: a few
// streams, meta (nil, empty, several entries), IDs of several sizes, a
// payload over 255 bytes, events with equal times, and a group commit
// (batches 2 and 3 fsynced together).
func goldenSealedBatches() []batch {
	long := bytes.Repeat([]byte("0123456789"), 30)
	return []batch{
		{sync: true, events: []event.Envelope{
			goldenEnv(1, "cart-1", 1, "cart_created", 1, "req-0001", 0, map[string]string{"correlation": "c-1", "user": "alice"}, mpMap("currency", "EUR")),
			goldenEnv(2, "user-alice", 1, "user_registered", 2, "", 1, nil, mpMap("email", "alice@example.com")),
		}},
		{sync: true, events: []event.Envelope{
			goldenEnv(3, "cart-1", 2, "item_added", 1, "req-0002", 2, map[string]string{"correlation": "c-1"}, mpMap("sku", "A-1", "qty", 2)),
		}},
		{sync: false, events: []event.Envelope{
			goldenEnv(4, "cart-2", 1, "cart_created", 1, "", 2, map[string]string{}, nil),
			goldenEnv(5, "cart-2", 2, "item_added", 1, "", 3, nil, mpMap("sku", "B-7", "qty", 1)),
			goldenEnv(6, "cart-1", 3, "item_removed", 1, "", 4, nil, mpMap("sku", "A-1")),
		}},
		{sync: true, events: []event.Envelope{
			goldenEnv(7, "user-alice", 2, "email_changed", 3, strings.Repeat("idempotency-key-", 3), 5,
				map[string]string{"causation": "cmd-17", "correlation": "c-9", "user-agent": "evlog-test/1.0"}, mpMap("email", "alice@example.org")),
		}},
		{sync: true, events: []event.Envelope{
			goldenEnv(8, "cart-1", 4, "checked_out", 1, "req-0003", 6, nil, mpMap("total", 4250, "note", string(long))),
			goldenEnv(9, "cart-2", 3, "abandoned", 1, "", 7, nil, nil),
		}},
	}
}

// goldenTornBatches are the batches of testdata/v1/torn.seg, the newest
// segment after the sealed one. Its file ends in the middle of a fourth
// batch: seq 13 complete, seq 14 cut inside its frame, no commit.
func goldenTornBatches() []batch {
	return []batch{
		{sync: true, events: []event.Envelope{
			goldenEnv(10, "cart-3", 1, "cart_created", 1, "", 10, nil, mpMap("currency", "USD")),
			goldenEnv(11, "cart-1", 5, "reopened", 1, "req-0004", 11, map[string]string{"correlation": "c-1"}, nil),
		}},
		{sync: true, events: []event.Envelope{
			goldenEnv(12, "cart-3", 2, "item_added", 1, "", 12, nil, mpMap("sku", "C-3", "qty", 5)),
		}},
		{sync: false, events: []event.Envelope{
			goldenEnv(13, "cart-3", 3, "item_added", 1, "", 13, nil, mpMap("sku", "C-4", "qty", 1)),
			goldenEnv(14, "cart-3", 4, "item_removed", 1, "", 14, nil, mpMap("sku", "C-3")),
		}},
	}
}

var goldenLogID = LogID{0x65, 0x76, 0x6c, 0x6f, 0x67, 0x2d, 0x67, 0x6f, 0x6c, 0x64, 0x65, 0x6e, 0x2d, 0x76, 0x31, 0x00}

// goldenMarkKey is the mark key of the version 2 golden files.
var goldenMarkKey = [8]byte{0x67, 0x6f, 0x6c, 0x64, 0x2d, 0x6b, 0x65, 0x79}

// goldenHeader is the header of the current version's golden files. In
// version 2 the batches written with sync are followed by a mark frame.
func goldenHeader(base uint64) Header {
	return Header{Version: FormatVersion, LogID: goldenLogID, BaseSeq: base, Created: goldenTime.Add(-time.Second), MarkKey: goldenMarkKey}
}

// goldenFiles returns the current encoder's version of the golden files.
func goldenFiles() map[string][]byte {
	sealed := buildImage(goldenHeader(1), goldenSealedBatches())
	sealedFile, _ := seal(sealed.index(len(sealed.batches)), sealed.h, sealed.data[HeaderSize:])

	torn := buildImage(goldenHeader(10), goldenTornBatches())
	// The last batch was being written: its first event is complete, the
	// second is cut 7 bytes into its payload, the commit is missing.
	second := torn.frames[len(torn.frames)-2]
	tornFile := torn.data[:second.off+FrameHeaderSize+7]
	return map[string][]byte{"sealed.seg": sealedFile, "torn.seg": tornFile, "compressed.seg": goldenCompressed(sealed)}
}

// goldenCompressed is compressed.seg: the records of sealed.seg rewritten
// by compaction's writer as a compressed segment of generation 1, in
// blocks of 256 record bytes so that the golden file has several zblocks
// and events that straddle them.
func goldenCompressed(sealed *segImage) []byte {
	h := goldenHeader(1)
	h.Generation, h.Flags = 1, FlagCompressed
	var out bytes.Buffer
	w := NewSealedWriter(&out, h, true)
	w.zblockSize = goldenZBlock
	x := sealed.index(len(sealed.batches))
	res, err := Scan(bytes.NewReader(sealed.data), sealed.h, x.End, ScanOptions{Strict: true, CollectInfos: true})
	if err != nil {
		panic(err)
	}
	infos := res.Infos
	if err := w.AppendRecords(bytes.NewReader(sealed.data[HeaderSize:x.End]), infos, make([]byte, 4096)); err != nil {
		panic(err)
	}
	if err := w.Seal(); err != nil {
		panic(err)
	}
	return out.Bytes()
}

// goldenZBlock is the zblock size of compressed.seg (compaction: ZBlockSize).
const goldenZBlock = 256

// TestGoldenCompressed: the compressed golden segment of the current
// version decodes, through its logical view, to the events of sealed.seg,
// its index finds every stream, and it verifies.
func TestGoldenCompressed(t *testing.T) {
	dir := filepath.Join("testdata", "v"+strconv.Itoa(FormatVersion))
	data, err := os.ReadFile(filepath.Join(dir, "compressed.seg"))
	if err != nil {
		t.Fatalf("%v (generate the golden files with -update)", err)
	}
	mem := vfs.NewMem()
	if err := mem.WriteFile("compressed.seg", data); err != nil {
		t.Fatal(err)
	}
	s, err := Open(mem, "compressed.seg")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Sealed || s.Header.Flags&FlagCompressed == 0 || s.Header.Generation != 1 {
		t.Fatalf("compressed.seg: sealed %v, header %+v", s.Sealed, s.Header)
	}
	ra, end, err := s.Records()
	if err != nil {
		t.Fatal(err)
	}
	want := flatten(goldenSealedBatches())
	if d := cmp.Diff(want, decodeAll(t, ra, end), bytesOpt); d != "" {
		t.Errorf("compressed.seg events (-want +got):\n%s", d)
	}
	if _, err := Verify(s, math.MinInt64); err != nil {
		t.Errorf("Verify(compressed.seg): %v", err)
	}
	z, err := s.loadZMap()
	if err != nil || len(z.starts) < 3 {
		t.Fatalf("compressed.seg zmap: %d blocks, %v; want several", len(z.starts), err)
	}
	for _, e := range want {
		se, ok, err := s.Lookup(e.Stream)
		if !ok || err != nil {
			t.Fatalf("Lookup(%q) = %v, %v", e.Stream, ok, err)
		}
		if se.FirstVersion != 1 {
			t.Errorf("Lookup(%q): first version %d", e.Stream, se.FirstVersion)
		}
	}
}

// goldenVersion describes the golden files of one format version and what
// they must decode to.
type goldenVersion struct {
	dir           string
	sealed, torn  []batch
	tornCommitted int  // batches of torn.seg that are committed
	ids           bool // sealed.seg has an ID table (version 3)
	names         bool // sealed.seg has name blocks (version 4)
}

func goldenVersions() []goldenVersion {
	return []goldenVersion{
		{dir: "testdata/v1", sealed: goldenSealedBatches(), torn: goldenTornBatches(), tornCommitted: 2},
		{dir: "testdata/v2", sealed: goldenSealedBatches(), torn: goldenTornBatches(), tornCommitted: 2},
		{dir: "testdata/v3", sealed: goldenSealedBatches(), torn: goldenTornBatches(), tornCommitted: 2, ids: true},
		{dir: "testdata/v4", sealed: goldenSealedBatches(), torn: goldenTornBatches(), tornCommitted: 2, ids: true, names: true},
	}
}

func TestGoldenUpToDate(t *testing.T) {
	dir := filepath.Join("testdata", "v"+strconv.Itoa(FormatVersion))
	for name, want := range goldenFiles() {
		path := filepath.Join(dir, name)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s (%d bytes)", path, len(want))
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (generate the golden files with -update)", err)
		}
		if !bytes.Equal(got, want) {
			i := 0
			for i < min(len(got), len(want)) && got[i] == want[i] {
				i++
			}
			t.Errorf("%s: the current encoder writes %d bytes that differ from the golden file's %d at offset %d.\n"+
				"The segment format changed: that needs a new FormatVersion (and new golden files next to the old ones,\n"+
				"which must keep decoding), or, before any release, regenerating them with -update.", path, len(want), len(got), i)
		}
	}
}

// decodeAll reads every event frame of [HeaderSize, end) and decodes it.
func decodeAll(t *testing.T, ra io.ReaderAt, end int64) []event.Envelope {
	t.Helper()
	r := NewReader(ra, HeaderSize, end)
	var dec Decoder
	var out []event.Envelope
	for {
		f, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("reading frames: %v", err)
		}
		if f.Kind != KindEvent {
			continue
		}
		var e event.Envelope
		if err := dec.Decode(f.Payload, &e); err != nil {
			t.Fatalf("decoding the event at %d: %v", f.Offset, err)
		}
		out = append(out, e.Clone())
	}
}

func flatten(bs []batch) []event.Envelope {
	var out []event.Envelope
	for _, b := range bs {
		for _, e := range b.events {
			out = append(out, decoded(e))
		}
	}
	return out
}

func TestGoldenDecode(t *testing.T) {
	for _, v := range goldenVersions() {
		t.Run(v.dir, func(t *testing.T) {
			mem := vfs.NewMem()
			for _, name := range []string{"sealed.seg", "torn.seg"} {
				data, err := os.ReadFile(filepath.Join(v.dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if err := mem.WriteFile(name, data); err != nil {
					t.Fatal(err)
				}
			}
			wantSealed := flatten(v.sealed)
			last := wantSealed[len(wantSealed)-1]

			// The sealed segment.
			s, err := Open(mem, "sealed.seg")
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if !s.Sealed || s.Header.BaseSeq != 1 || s.Header.LogID != goldenLogID {
				t.Fatalf("sealed.seg: Sealed %v, header %+v", s.Sealed, s.Header)
			}
			newStreams := 0
			for _, e := range wantSealed {
				if e.Version == 1 {
					newStreams++
				}
			}
			tr := s.Trailer
			if tr.Count != uint32(len(wantSealed)) || tr.LastSeq != last.Seq || tr.FirstTime != goldenTime.UnixNano() ||
				tr.LastTime != last.Time.UnixNano() || tr.NewStreams != uint32(newStreams) {
				t.Errorf("sealed.seg trailer %+v", tr)
			}
			if got := decodeAll(t, s.File(), tr.RecordsEnd); !cmp.Equal(wantSealed, got, bytesOpt) {
				t.Errorf("sealed.seg events (-want +got):\n%s", cmp.Diff(wantSealed, got, bytesOpt))
			}
			x, tail, err := split(Scan(s.File(), s.Header, tr.RecordsEnd, ScanOptions{File: "sealed.seg", Strict: true}))
			if err != nil || tail != nil || x.Count != len(wantSealed) || x.End != tr.RecordsEnd {
				t.Fatalf("strict Scan of sealed.seg: %v, tail %+v", err, tail)
			}
			if _, err := Verify(s, math.MinInt64); err != nil {
				t.Errorf("Verify(sealed.seg): %v", err)
			}
			sum, err := s.Summary()
			if err != nil {
				t.Fatal(err)
			}
			if len(sum.Sparse) != 1 || sum.Sparse[0] != (SparseEntry{Seq: 1, Off: HeaderSize, Time: goldenTime.UnixNano()}) {
				t.Errorf("sealed.seg sparse index %+v", sum.Sparse)
			}
			// Version 3 footers hold the events' IDs; older ones none.
			var wantIDs []IDEntry
			if v.ids {
				for _, e := range wantSealed {
					if e.ID != "" {
						wantIDs = append(wantIDs, IDEntry{Hash: IDHash(e.ID), Seq: e.Seq})
					}
				}
				slices.SortFunc(wantIDs, func(a, b IDEntry) int {
					if a.Hash != b.Hash {
						return stdcmp.Compare(a.Hash, b.Hash)
					}
					return stdcmp.Compare(a.Seq, b.Seq)
				})
			}
			if ids, ok, err := s.IDTable(nil); err != nil || ok != v.ids || !slices.Equal(ids, wantIDs) {
				t.Errorf("sealed.seg IDTable = %+v, %v, %v; want %+v, %v", ids, ok, err, wantIDs, v.ids)
			}
			byStream := map[string][]event.Envelope{}
			for _, e := range wantSealed {
				byStream[e.Stream] = append(byStream[e.Stream], e)
			}
			if sum.NumStreams != len(byStream) {
				t.Errorf("sealed.seg: %d streams, want %d", sum.NumStreams, len(byStream))
			}
			var er EventReader
			var dec Decoder
			for _, stream := range slices.Sorted(maps.Keys(byStream)) {
				want := byStream[stream]
				e, ok, err := s.Lookup(stream)
				if !ok || err != nil || e.FirstVersion != want[0].Version || int(e.Count) != len(want) {
					t.Fatalf("Lookup(%q) = %+v, %v, %v", stream, e, ok, err)
				}
				posts, err := s.Postings(e, nil)
				if err != nil {
					t.Fatal(err)
				}
				var got []event.Envelope
				err = er.Read(s.File(), s.Name, posts, func(_ int64, p []byte) error {
					var env event.Envelope
					if err := dec.Decode(p, &env); err != nil {
						return err
					}
					got = append(got, env.Clone())
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got, bytesOpt); diff != "" {
					t.Errorf("stream %q (-want +got):\n%s", stream, diff)
				}
			}
			if _, ok, err := s.Lookup("cart-404"); ok || err != nil {
				t.Errorf("Lookup of an absent stream: %v, %v", ok, err)
			}
			// Version 4 footers hold the entries in name order too; a
			// prefix query answers from them (in name order) or, before,
			// from every stream block (in hash order).
			if sum.hasNames != v.names || (v.names && len(sum.names) != 1) {
				t.Errorf("sealed.seg: name index %v with %d blocks, want %v", sum.hasNames, len(sum.names), v.names)
			}
			for _, prefix := range []string{"", "cart-", "cart-2", "user-", "c", "d", "zzz", "cart-404"} {
				got, err := s.StreamsWithPrefix(prefix, nil)
				if err != nil {
					t.Fatalf("StreamsWithPrefix(%q): %v", prefix, err)
				}
				var names []string
				for _, e := range got {
					names = append(names, e.Name)
					if le, ok, _ := s.Lookup(e.Name); !ok || le != e.StreamEntry {
						t.Errorf("StreamsWithPrefix(%q): %q entry %+v, Lookup says %+v", prefix, e.Name, e.StreamEntry, le)
					}
				}
				if !v.names {
					slices.Sort(names)
				}
				var want []string
				for _, stream := range slices.Sorted(maps.Keys(byStream)) {
					if strings.HasPrefix(stream, prefix) {
						want = append(want, stream)
					}
				}
				if !slices.Equal(names, want) {
					t.Errorf("StreamsWithPrefix(%q) = %q, want %q", prefix, names, want)
				}
			}

			// The torn newest segment.
			u, err := Open(mem, "torn.seg")
			if err != nil {
				t.Fatal(err)
			}
			defer u.Close()
			wantTorn := flatten(v.torn)
			committed := flatten(v.torn[:v.tornCommitted])
			if u.Sealed || u.Header.BaseSeq != wantTorn[0].Seq {
				t.Fatalf("torn.seg: Sealed %v, header %+v", u.Sealed, u.Header)
			}
			x, tail, err = split(Scan(u.File(), u.Header, u.Size, ScanOptions{File: "torn.seg", PrevTime: time.Unix(0, tr.LastTime)}))
			if err != nil || tail == nil {
				t.Fatalf("Scan of torn.seg: %v, tail %+v", err, tail)
			}
			pending := wantTorn[len(committed) : len(wantTorn)-1] // complete but uncommitted
			if x.Count != len(committed) || tail.Offset != x.End || tail.Size != u.Size-x.End || tail.Events != len(pending) ||
				tail.FirstSeq != pending[0].Seq || tail.LastSeq != pending[len(pending)-1].Seq || tail.BadOffset <= tail.Offset {
				t.Errorf("torn.seg: %d committed events, tail %+v", x.Count, tail)
			}
			if got := decodeAll(t, u.File(), x.End); !cmp.Equal(committed, got, bytesOpt) {
				t.Errorf("torn.seg committed events (-want +got):\n%s", cmp.Diff(committed, got, bytesOpt))
			}
			if got := decodeAll(t, u.File(), tail.BadOffset); !cmp.Equal(wantTorn[:len(wantTorn)-1], got, bytesOpt) {
				t.Errorf("torn.seg complete events (-want +got):\n%s", cmp.Diff(wantTorn[:len(wantTorn)-1], got, bytesOpt))
			}
			if _, _, err := split(Scan(u.File(), u.Header, u.Size, ScanOptions{File: "torn.seg", Strict: true})); !errors.Is(err, ErrCorrupt) {
				t.Errorf("strict Scan of torn.seg: %v, want corruption", err)
			}
		})
	}
}
