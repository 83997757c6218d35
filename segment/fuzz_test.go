package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
)

// The fuzz targets are deterministic and fast; their seed corpora under
// testdata/fuzz are generated from the golden files (TestFuzzSeedCorpora
// -update) and run by every `go test`. Fuzz with e.g.
//
//	go test ./segment -run '^$' -fuzz FuzzScan -fuzztime 1m -fuzzminimizetime 100x
//
// (without -fuzzminimizetime, minimizing each new input of kilobytes
// stops the fuzzing for up to a minute: docs/TESTING.md, "Fuzz targets").

// maxFuzzAlloc bounds the heap allocation for one fuzz input.
const maxFuzzAlloc = 256 << 20

// checkAlloc runs f and fails if it allocates more than limit bytes.
func checkAlloc(t *testing.T, limit uint64, f func()) {
	t.Helper()
	if got := allocOnce(f); got > limit { // once: an input may be slow, and the limit is far above any noise
		t.Fatalf("allocated %d bytes for one input (limit %d)", got, limit)
	}
}

func FuzzReader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAlloc(t, maxFuzzAlloc, func() {
			r := NewReader(bytes.NewReader(data), 0, int64(len(data)))
			off := int64(0)
			for {
				fr, err := r.Next()
				if errors.Is(err, io.EOF) {
					if off != int64(len(data)) {
						t.Fatalf("io.EOF at %d of %d bytes", off, len(data))
					}
					return
				}
				if err != nil {
					fe, ok := errors.AsType[*FrameError](err)
					if !ok {
						t.Fatalf("Next: %v, want a *FrameError", err)
					}
					if fe.Offset != off || r.Offset() != off {
						t.Fatalf("FrameError at %d, Reader at %d, frames tile the input up to %d", fe.Offset, r.Offset(), off)
					}
					rest := int64(len(data)) - off
					if fe.Truncated && rest >= FrameHeaderSize && int64(le.Uint32(data[off+frameLenOff:])) <= rest-FrameHeaderSize {
						t.Fatalf("FrameError at %d says truncated, but its %d-byte payload fits in the %d bytes left", off, le.Uint32(data[off+frameLenOff:]), rest)
					}
					return
				}
				// The frames tile the input, each checksummed and known.
				end := off + fr.Size()
				if fr.Offset != off || end > int64(len(data)) || !fr.Kind.valid() || len(fr.Payload) > MaxFramePayload {
					t.Fatalf("frame %+v at %d (of %d bytes)", fr.Kind, fr.Offset, len(data))
				}
				raw := data[off:end]
				if crc(raw[frameLenOff:]) != le.Uint32(raw[frameCRCOff:]) || int(le.Uint32(raw[frameLenOff:])) != len(fr.Payload) ||
					Kind(raw[frameKindOff]) != fr.Kind || !bytes.Equal(raw[FrameHeaderSize:], fr.Payload) {
					t.Fatalf("frame at %d does not match the input bytes", off)
				}
				off = end
			}
		})
	})
}

func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte) {
		var dec Decoder
		var e event.Envelope
		var err error
		checkAlloc(t, maxFuzzAlloc, func() { err = dec.Decode(payload, &e) })
		if err != nil {
			return
		}
		// What decodes is a valid envelope, but for the characters of its
		// names: reads never check those (docs/FORMAT.md, "Names": a log
		// written before the rule still reads), so they are replaced by
		// as many valid bytes before the check.
		ve := e
		for _, name := range []*string{&ve.Stream, &ve.Type} {
			if !event.ValidName(*name) {
				*name = strings.Repeat("x", len(*name))
			}
		}
		if err := ve.ValidateFields(); err != nil || e.Seq == 0 || e.Version == 0 || e.SchemaVersion == 0 || e.Time.Location() != time.UTC {
			t.Fatalf("decoded an invalid envelope %+v: %v", e, err)
		}
		if len(e.Data) > 0 && !aliases(e.Data, payload) {
			t.Fatal("Data does not alias the payload")
		}
		// Re-encoding and decoding again gives the same envelope, and the
		// encoding is a fixed point.
		re := AppendEnvelope(nil, &e)
		if EncodedSize(&e) != FrameHeaderSize+len(re) {
			t.Fatalf("EncodedSize %d, frame %d", EncodedSize(&e), FrameHeaderSize+len(re))
		}
		var dec2 Decoder
		var e2 event.Envelope
		if err := dec2.Decode(re, &e2); err != nil {
			t.Fatalf("re-encoded envelope does not decode: %v", err)
		}
		if diff := cmp.Diff(e, e2, bytesOpt); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
		if !bytes.Equal(AppendEnvelope(nil, &e2), re) {
			t.Fatal("encoding is not a fixed point")
		}
	})
}

// fuzzSegName is the file name FuzzScan uses.
const fuzzSegName = "00000000000000000001-00000000.seg"

func FuzzScan(f *testing.F) {
	f.Fuzz(func(t *testing.T, header, body []byte) {
		file := append(slices.Clip(header), body...)
		mem := vfs.NewMem()
		if err := mem.WriteFile(fuzzSegName, file); err != nil {
			t.Fatal(err)
		}
		checkAlloc(t, maxFuzzAlloc, func() { fuzzScanFile(t, mem) })
	})
}

func mustCorrupt(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: %v, want an error matching ErrCorrupt", what, err)
	}
	if _, ok := errors.AsType[*CorruptError](err); !ok {
		t.Fatalf("%s: %v is not a *CorruptError", what, err)
	}
}

func fuzzScanFile(t *testing.T, mem *vfs.Mem) {
	s, err := Open(mem, fuzzSegName)
	if err != nil {
		mustCorrupt(t, "Open", err)
		return
	}
	defer s.Close()
	if s.Sealed {
		// Everything a sealed segment's footer says is either rejected as
		// corruption or consistent enough to use.
		x, tail, err := split(Scan(s.File(), s.Header, s.Trailer.RecordsEnd, ScanOptions{File: fuzzSegName, Strict: true}))
		if err != nil {
			mustCorrupt(t, "strict Scan", err)
		} else if tail != nil {
			t.Fatalf("strict Scan returned a tail %+v", tail)
		} else {
			checkIndexReadable(t, s.File(), x)
		}
		sum, err := s.Summary()
		if err != nil {
			mustCorrupt(t, "Summary", err)
			return
		}
		// The stream catalogue's and the ID index's inputs: the footer's
		// stream entries and ID table, each either corruption or sane.
		entries := map[string]StreamEntry{}
		if err := s.StreamEntries(func(name string, e StreamEntry) error {
			if _, dup := entries[name]; dup || name == "" || e.FirstVersion == 0 || e.Count == 0 {
				t.Fatalf("StreamEntries: %q %+v (listed before: %v)", name, e, dup)
			}
			entries[name] = e
			return nil
		}); err != nil {
			mustCorrupt(t, "StreamEntries", err)
			entries = nil
		} else if len(entries) != sum.NumStreams {
			t.Fatalf("StreamEntries listed %d streams, the summary says %d", len(entries), sum.NumStreams)
		}
		if ids, ok, err := s.IDTable(nil); err != nil {
			mustCorrupt(t, "IDTable", err)
		} else if ok {
			for i, e := range ids {
				if e.Seq < s.Header.BaseSeq || e.Seq > s.Trailer.LastSeq || i >= int(s.Trailer.Count) ||
					(i > 0 && (e.Hash < ids[i-1].Hash || e.Hash == ids[i-1].Hash && e.Seq <= ids[i-1].Seq)) {
					t.Fatalf("ID table entry %d %+v out of order or outside seqs %d..%d", i, e, s.Header.BaseSeq, s.Trailer.LastSeq)
				}
			}
		}
		if x != nil {
			for name := range x.streams {
				_ = sum.MayContain(name)
				e, ok, err := s.Lookup(name)
				if err != nil {
					mustCorrupt(t, "Lookup", err)
					continue
				}
				if ok {
					if _, err := s.Postings(e, nil); err != nil {
						mustCorrupt(t, "Postings", err)
					}
				}
			}
		}
		if vx, err := Verify(s, math.MinInt64); err != nil {
			mustCorrupt(t, "Verify", err)
		} else {
			// A verified footer locates every stream's events, and lists
			// exactly its streams.
			if entries != nil && len(entries) != len(vx.streams) {
				t.Fatalf("verified segment: StreamEntries lists %d streams, the records hold %d", len(entries), len(vx.streams))
			}
			for name, sp := range vx.streams {
				if e, ok := entries[name]; entries != nil && (!ok || e.FirstVersion != sp.FirstVersion || int(e.Count) != len(sp.Posts)) {
					t.Fatalf("verified segment: StreamEntries has %q as %+v, %v; the records v%d, %d events", name, e, ok, sp.FirstVersion, len(sp.Posts))
				}
				e, ok, err := s.Lookup(name)
				if !ok || err != nil {
					t.Fatalf("verified segment: Lookup(%q) = %v, %v", name, ok, err)
				}
				posts, err := s.Postings(e, nil)
				if err != nil || !slices.Equal(posts, sp.Posts) {
					t.Fatalf("verified segment: Postings(%q) = %v, %v; want %v", name, posts, err, sp.Posts)
				}
			}
		}
		return
	}
	x, tail, err := split(Scan(s.File(), s.Header, s.Size, ScanOptions{File: fuzzSegName}))
	if err != nil {
		mustCorrupt(t, "Scan", err)
		return
	}
	if tail == nil {
		if x.End != s.Size {
			t.Fatalf("no tail, but the index ends at %d of %d", x.End, s.Size)
		}
	} else if tail.Offset != x.End || tail.Offset > s.Size || tail.Size != s.Size-tail.Offset ||
		tail.BadOffset < tail.Offset || tail.BadOffset > s.Size || (tail.Events == 0) != (tail.FirstSeq == 0) ||
		(tail.Events > 0 && (tail.FirstSeq != x.LastSeq+1 || tail.LastSeq != tail.FirstSeq+uint64(tail.Events)-1)) {
		t.Fatalf("index to %d (seq %d) in %d bytes, tail %+v", x.End, x.LastSeq, s.Size, *tail)
	}
	checkIndexReadable(t, s.File(), x)
	// Strict mode accepts exactly the clean case.
	sx, stail, err := split(Scan(s.File(), s.Header, s.Size, ScanOptions{File: fuzzSegName, Strict: true}))
	switch {
	case tail != nil && err == nil:
		t.Fatalf("strict Scan accepts what has a torn tail %+v", tail)
	case tail != nil:
		mustCorrupt(t, "strict Scan", err)
	case err != nil || stail != nil || !sameIndex(x, sx) && !cmp.Equal(x, sx, indexOpts):
		t.Fatalf("strict Scan of a clean segment: %v, %+v", err, stail)
	}
}

// checkIndexReadable re-reads every indexed event through its postings.
func checkIndexReadable(t *testing.T, ra io.ReaderAt, x *Index) {
	t.Helper()
	var er EventReader
	var dec Decoder
	n := 0
	for name, sp := range x.streams {
		v := sp.FirstVersion
		err := er.Read(ra, fuzzSegName, sp.Posts, func(off int64, p []byte) error {
			var e event.Envelope
			if err := dec.Decode(p, &e); err != nil {
				return err
			}
			if e.Stream != name || e.Version != v || e.Seq < x.BaseSeq || e.Seq > x.LastSeq {
				return fmt.Errorf("event at %d: %q v%d seq %d, want %q v%d", off, e.Stream, e.Version, e.Seq, name, v)
			}
			v++
			n++
			return nil
		})
		if err != nil {
			t.Fatalf("re-reading stream %q: %v", name, err)
		}
	}
	if n != x.Count || x.LastSeq-x.BaseSeq+1 != uint64(x.Count) {
		t.Fatalf("index of %d events (seqs %d..%d) locates %d", x.Count, x.BaseSeq, x.LastSeq, n)
	}
}

func FuzzSummary(f *testing.F) {
	f.Fuzz(func(t *testing.T, p []byte, recordsEnd, footerEnd int64, count uint32, stream string) {
		checkAlloc(t, 64*uint64(len(p))+1<<20, func() {
			for _, version := range []uint16{3, 4} {
				if sum, err := decodeSummary(p, recordsEnd, recordsEnd, footerEnd, int(count), version); err == nil {
					checkNames(t, sum, recordsEnd, footerEnd, stream)
				}
			}
			if sum, err := DecodeSummary(p, recordsEnd, footerEnd, int(count)); err == nil {
				if len(sum.Sparse) != (int(count)+SparseInterval-1)/SparseInterval || sum.NumStreams > int(count) ||
					len(sum.blocks) != (sum.NumStreams+blockStride-1)/blockStride {
					t.Fatalf("summary of %d events: %d sparse entries, %d streams in %d blocks", count, len(sum.Sparse), sum.NumStreams, len(sum.blocks))
				}
				for i, e := range sum.Sparse {
					if e.Off < HeaderSize || e.Off >= recordsEnd || (i > 0 && e.Off <= sum.Sparse[i-1].Off) {
						t.Fatalf("sparse entry %d %+v out of [%d, %d)", i, e, HeaderSize, recordsEnd)
					}
				}
				for _, b := range sum.blocks {
					if b.off < recordsEnd || b.off > footerEnd || int64(b.len) > footerEnd-b.off || b.len < FrameHeaderSize {
						t.Fatalf("block %+v out of [%d, %d]", b, recordsEnd, footerEnd)
					}
				}
				h := streamHash(stream)
				for _, b := range sum.blockCandidates(h) {
					if !slices.Contains(sum.blocks, b) {
						t.Fatalf("candidate block %+v is not in the directory", b)
					}
				}
				_ = sum.MayContain(stream)
			}
			if e, ok, err := findEntry(p, streamHash(stream), stream, recordsEnd, footerEnd); err == nil && ok {
				if e.FirstVersion == 0 || e.Count == 0 || e.PostOff < recordsEnd || e.PostOff > footerEnd || int64(e.PostLen) > footerEnd-e.PostOff {
					t.Fatalf("entry %+v out of [%d, %d]", e, recordsEnd, footerEnd)
				}
			}
			for _, byName := range []bool{false, true} {
				if es, err := blockEntries(p, recordsEnd, footerEnd, byName, nil); err == nil {
					for i, e := range es {
						if e.FirstVersion == 0 || e.Count == 0 || e.name == "" || e.PostOff < recordsEnd || e.PostOff > footerEnd || int64(e.PostLen) > footerEnd-e.PostOff ||
							(i > 0 && (byName && e.name <= es[i-1].name || !byName && e.hash < es[i-1].hash)) {
							t.Fatalf("block entry %d %+v (by name: %v) out of order or [%d, %d]", i, e, byName, recordsEnd, footerEnd)
						}
					}
				}
			}
			if dst, err := nameEntries(p, stream, stream, recordsEnd, footerEnd, nil); err == nil {
				for i, e := range dst {
					if !strings.HasPrefix(e.Name, stream) || streamHash(e.Name) == 0 || (i > 0 && e.Name <= dst[i-1].Name) ||
						e.PostOff < recordsEnd || e.PostOff > footerEnd || int64(e.PostLen) > footerEnd-e.PostOff {
						t.Fatalf("name entry %d %+v: prefix %q, out of order or range", i, e, stream)
					}
				}
			}
			if posts, err := decodePostings(p, count, recordsEnd, nil); err == nil {
				if len(posts) != int(count) {
					t.Fatalf("%d postings, want %d", len(posts), count)
				}
				for i, po := range posts {
					if po.Off < HeaderSize || po.Len < FrameHeaderSize || po.Off+int64(po.Len) > recordsEnd || (i > 0 && po.Off <= posts[i-1].Off) {
						t.Fatalf("posting %d %+v out of [%d, %d)", i, po, HeaderSize, recordsEnd)
					}
				}
			}
		})
	})
}

// checkNames checks the name-block directory of a decoded summary: in
// range, in order, and the blocks a prefix query reads a run of it.
func checkNames(t *testing.T, sum *Summary, recordsEnd, footerEnd int64, prefix string) {
	t.Helper()
	if sum.hasNames && len(sum.names) != (sum.NumStreams+nameStride-1)/nameStride {
		t.Fatalf("%d name blocks for %d streams", len(sum.names), sum.NumStreams)
	}
	for i, b := range sum.names {
		if b.off < recordsEnd || b.off > footerEnd || int64(b.len) > footerEnd-b.off || b.len < FrameHeaderSize || b.first == "" ||
			(i > 0 && b.first <= sum.names[i-1].first) {
			t.Fatalf("name block %d %+v out of order or [%d, %d]", i, b, recordsEnd, footerEnd)
		}
	}
	lo, hi := sum.nameRange(prefix)
	if lo < 0 || hi < lo || hi > len(sum.names) {
		t.Fatalf("nameRange(%q) = [%d, %d) of %d blocks", prefix, lo, hi, len(sum.names))
	}
}

// Seed corpora.

// corpusFile encodes values in the format of Go's fuzzing corpus files.
func corpusFile(vals ...any) []byte {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case int64:
			fmt.Fprintf(&b, "int64(%d)\n", v)
		case uint32:
			fmt.Fprintf(&b, "uint32(%d)\n", v)
		default:
			panic(fmt.Sprintf("corpusFile: %T", v))
		}
	}
	return []byte(b.String())
}

// fuzzSeeds returns the seed corpus files, by target and name, derived
// from the golden files.
func fuzzSeeds() map[string]map[string][]byte {
	golden := goldenFiles()
	sealed, torn := golden["sealed.seg"], golden["torn.seg"]
	seeds := map[string]map[string][]byte{"FuzzReader": {}, "FuzzDecode": {}, "FuzzScan": {}, "FuzzSummary": {}, "FuzzForgedMarks": {}, "FuzzSalvage": {}}
	add := func(target, name string, vals ...any) { seeds[target][name] = corpusFile(vals...) }

	// FuzzForgedMarks: payloads imitating commit and mark frames.
	for name, p := range forgerySeeds() {
		add("FuzzForgedMarks", name, p)
	}

	// FuzzReader: the frame sequences of the golden files, and edge cases.
	add("FuzzReader", "golden-sealed-frames", sealed[HeaderSize:len(sealed)-TrailerSize])
	add("FuzzReader", "golden-torn-frames", torn[HeaderSize:])
	add("FuzzReader", "empty", []byte{})
	add("FuzzReader", "zeros", make([]byte, 32))
	add("FuzzReader", "huge-length", []byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0})
	add("FuzzReader", "unknown-kind", AppendFrame(nil, 0x63, []byte("payload")))
	add("FuzzReader", "commit", AppendCommitFrame(nil, Commit{FirstSeq: 1, Count: 1, DurableEnd: HeaderSize}))

	// FuzzDecode: every golden event payload, plus forward-compatible and
	// hostile variants.
	for _, file := range []struct {
		name string
		data []byte
	}{{"sealed", sealed}, {"torn", torn}} {
		r := NewReader(bytes.NewReader(file.data), HeaderSize, int64(len(file.data)))
		for {
			fr, err := r.Next()
			if err != nil {
				break
			}
			if fr.Kind == KindEvent {
				add("FuzzDecode", fmt.Sprintf("golden-%s-%d", file.name, fr.Offset), bytes.Clone(fr.Payload))
			}
		}
	}
	extra := append(mpArr(11, envFields()...), 0x81, 0xa1, 'k', 0x92, 0x01, 0xc0, 0xd4, 0x01, 0x02)
	add("FuzzDecode", "extra-fields", extra)
	add("FuzzDecode", "array32-bomb", []byte{mpArray32, 0xff, 0xff, 0xff, 0xff, 0x01})
	add("FuzzDecode", "deep-extra", append(mpArr(10, envFields()...), deepArray(40)...))

	// FuzzScan: the golden files, whole and cut, and with garbage.
	add("FuzzScan", "golden-sealed", sealed[:HeaderSize], sealed[HeaderSize:])
	add("FuzzScan", "golden-torn", torn[:HeaderSize], torn[HeaderSize:])
	add("FuzzScan", "golden-sealed-records", sealed[:HeaderSize], sealed[HeaderSize:goldenRecordsEnd(sealed)])
	add("FuzzScan", "golden-sealed-no-trailer", sealed[:HeaderSize], sealed[HeaderSize:len(sealed)-TrailerSize])
	add("FuzzScan", "golden-torn-zeros", torn[:HeaderSize], append(bytes.Clone(torn[HeaderSize:]), make([]byte, 600)...))
	add("FuzzScan", "header-only", sealed[:HeaderSize], []byte{})
	add("FuzzScan", "short-header", sealed[:HeaderSize/2], []byte{})

	// FuzzSalvage: the golden files, and damage it reads past.
	comp := golden["compressed.seg"]
	records := sealed[HeaderSize:goldenRecordsEnd(sealed)]
	flipped := bytes.Clone(records)
	flipped[len(flipped)/2] ^= 0x40
	garbage := slices.Concat(records[:len(records)/3], bytes.Repeat([]byte{0xab}, 40), records[len(records)/3:])
	badHeader := bytes.Clone(sealed[:HeaderSize])
	badHeader[20] ^= 0xff
	add("FuzzSalvage", "golden-sealed", sealed[:HeaderSize], sealed[HeaderSize:])
	add("FuzzSalvage", "golden-torn", torn[:HeaderSize], torn[HeaderSize:])
	add("FuzzSalvage", "golden-compressed", comp[:HeaderSize], comp[HeaderSize:])
	add("FuzzSalvage", "golden-compressed-no-trailer", comp[:HeaderSize], comp[HeaderSize:len(comp)-TrailerSize])
	add("FuzzSalvage", "golden-sealed-records", sealed[:HeaderSize], records)
	add("FuzzSalvage", "flipped-byte", sealed[:HeaderSize], flipped)
	add("FuzzSalvage", "garbage-between", sealed[:HeaderSize], garbage)
	add("FuzzSalvage", "bad-header", badHeader, records)
	add("FuzzSalvage", "short", sealed[:HeaderSize/2], []byte{})
	// Compressed segments whose blocks Salvage must find without their
	// block map (the cases of TestSalvageCompressedWithoutBlockMap and
	// ...Hostile), so that the fuzzer starts in that scan.
	z := compressedZMap(comp)
	zmapOff := z.phys[len(z.phys)-1] + int64(z.plen[len(z.plen)-1])
	mid := len(z.phys) / 2
	flip := func(data []byte, offs ...int64) []byte {
		bad := bytes.Clone(data)
		for _, off := range offs {
			bad[off] ^= 0xff
		}
		return bad
	}
	addComp := func(name string, data []byte) { add("FuzzSalvage", name, data[:HeaderSize], data[HeaderSize:]) }
	addComp("compressed-trailer-damaged", flip(comp, int64(len(comp))-TrailerSize+9))
	addComp("compressed-zmap-damaged", flip(comp, zmapOff+FrameHeaderSize+5))
	addComp("compressed-cut-in-zmap", comp[:zmapOff+FrameHeaderSize+4])
	addComp("compressed-zmap-and-block-damaged", flip(comp, zmapOff+FrameHeaderSize+5, z.phys[mid]+FrameHeaderSize+3))
	addComp("compressed-cut-in-block", comp[:z.phys[mid]+int64(z.plen[mid])/2])
	addComp("compressed-garbage-between-blocks", slices.Concat(comp[:z.phys[mid]], bytes.Repeat([]byte{0xab}, 40), comp[z.phys[mid]:len(comp)-TrailerSize]))
	// Blocks of hostile zstd frames after the header of a compressed
	// segment, alone or before the golden segment's genuine blocks.
	ch := goldenHeader(1)
	ch.Generation, ch.Flags = 1, FlagCompressed
	chb := ch.Encode()
	zblock := func(payload []byte) []byte { return AppendFrame(nil, KindZBlock, payload) }
	blocks := comp[z.phys[0]:zmapOff]
	for name, body := range map[string][]byte{
		"zblock-claims-4GiB":             zblock(zstdFrame(4<<30, []byte("hostile"))),
		"zblock-claims-max-uint64":       zblock(zstdFrame(^uint64(0), []byte("hostile"))),
		"zblock-claims-over-MaxZBlock":   zblock(zstdFrame(2*MaxZBlock, bytes.Repeat([]byte{1}, 64))),
		"zblock-empty":                   zblock(zstdFrame(0, nil)),
		"zblock-plausible-headers":       bytes.Repeat([]byte{0, 0, 0, 0, 0, 0, 1, 0, byte(KindZBlock)}, 64),
		"zblock-valid-after-garbage":     slices.Concat(bytes.Repeat([]byte{0xff}, 100), comp[z.phys[0]:z.phys[0]+int64(z.plen[0])]),
		"zblock-claims-4GiB-then-golden": slices.Concat(zblock(zstdFrame(4<<30, []byte("hostile"))), blocks),
	} {
		add("FuzzSalvage", name, chb[:], body)
	}

	// FuzzSummary: the golden footer's summary, blocks and postings.
	s, err := Open(memWith("s.seg", sealed), "s.seg")
	if err != nil {
		panic(err)
	}
	defer s.Close()
	tr := s.Trailer
	sumPayload := sealed[tr.SummaryOff+FrameHeaderSize : tr.SummaryOff+int64(tr.SummaryLen)]
	add("FuzzSummary", "golden-summary", sumPayload, tr.RecordsEnd, tr.SummaryOff, tr.Count, "cart-1")
	sum, err := s.Summary()
	if err != nil {
		panic(err)
	}
	for i, b := range sum.blocks {
		add("FuzzSummary", fmt.Sprintf("golden-block-%d", i), sealed[b.off+FrameHeaderSize:b.off+int64(b.len)], tr.RecordsEnd, tr.SummaryOff, tr.Count, "cart-2")
	}
	for i, b := range sum.names {
		add("FuzzSummary", fmt.Sprintf("golden-names-%d", i), sealed[b.off+FrameHeaderSize:b.off+int64(b.len)], tr.RecordsEnd, tr.SummaryOff, tr.Count, "cart-")
	}
	for _, stream := range []string{"cart-1", "user-alice"} {
		e, _, err := s.Lookup(stream)
		if err != nil {
			panic(err)
		}
		add("FuzzSummary", "golden-postings-"+stream, sealed[e.PostOff+FrameHeaderSize:e.PostOff+int64(e.PostLen)], tr.RecordsEnd, tr.SummaryOff, e.Count, stream)
	}
	return seeds
}

// compressedZMap returns the block map of an intact compressed segment.
func compressedZMap(comp []byte) *zmap {
	sg, err := open(&readerAtFile{ra: bytes.NewReader(comp), size: int64(len(comp))}, "c.seg")
	if err != nil {
		panic(err)
	}
	defer sg.Close()
	if _, _, err := sg.Records(); err != nil {
		panic(err)
	}
	return sg.zr.z
}

func memWith(name string, data []byte) *vfs.Mem {
	m := vfs.NewMem()
	if err := m.WriteFile(name, data); err != nil {
		panic(err)
	}
	return m
}

func goldenRecordsEnd(sealed []byte) int64 {
	return int64(le.Uint64(sealed[len(sealed)-TrailerSize+trlRecordsEndOff:]))
}

// TestFuzzSeedCorpora keeps the committed seed corpora in step with the
// golden files (regenerate with -update).
func TestFuzzSeedCorpora(t *testing.T) {
	for target, files := range fuzzSeeds() {
		dir := filepath.Join("testdata", "fuzz", target)
		for name, want := range files {
			path := filepath.Join(dir, name)
			if *update {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s is missing or stale (regenerate with -update): %v", path, err)
			}
		}
	}
}
