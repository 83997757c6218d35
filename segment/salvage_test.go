package segment

import (
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/event"
)

// salvaged is one thing Salvage reported, in a form tests compare: a batch
// (its seq range) or a gap.
type salvaged struct {
	Batch             bool
	Offset, Bad       int64
	Length            int64
	Torn, Whole       bool
	FirstSeq, LastSeq uint64
	Reason            string // a gap's reason (tests compare a prefix)
	events            []event.Envelope
	offsets           []int64 // Batch.Offsets
}

// salvageAll runs Salvage on data and returns what it reported.
func salvageAll(t testing.TB, data []byte, tornOK bool) []salvaged {
	t.Helper()
	var out []salvaged
	err := Salvage(context.Background(), bytes.NewReader(data), int64(len(data)), SalvageOptions{
		Name:   fuzzSegName,
		TornOK: tornOK,
		Batch: func(b *Batch) error {
			out = append(out, salvaged{Batch: true, Offset: b.Offset, FirstSeq: b.Events[0].Seq, LastSeq: b.Events[len(b.Events)-1].Seq, events: b.Events, offsets: b.Offsets})
			return nil
		},
		Gap: func(g *Gap) error {
			out = append(out, salvaged{Offset: g.Offset, Bad: g.Bad, Length: g.Length, Torn: g.Torn, Whole: g.Whole, FirstSeq: g.FirstSeq, LastSeq: g.LastSeq, Reason: g.Reason})
			return nil
		},
	})
	if err != nil {
		t.Fatalf("Salvage: %v", err)
	}
	return out
}

func TestSalvage(t *testing.T) {
	img := buildImage(goldenHeader(1), goldenSealedBatches())
	golden := goldenFiles()
	// 5 batches: seqs 1-2, 3, 4-6, 7, 8-9; marks after all but the third.
	eventFrame := func(b, e int) frameInfo {
		for _, f := range img.frames {
			if f.batch == b && f.event == e && f.kind == KindEvent {
				return f
			}
		}
		panic("no such frame")
	}
	batchItem := func(b int) salvaged {
		evs := img.batches[b].events
		return salvaged{Batch: true, Offset: img.start[b], FirstSeq: evs[0].Seq, LastSeq: evs[len(evs)-1].Seq}
	}
	batches := func(bs ...int) []salvaged {
		var out []salvaged
		for _, b := range bs {
			out = append(out, batchItem(b))
		}
		return out
	}
	with := func(items []salvaged, at int, g salvaged) []salvaged {
		return slices.Insert(slices.Clone(items), at, g)
	}
	all := batches(0, 1, 2, 3, 4)
	size := int64(len(img.data))
	b1 := eventFrame(1, 0)
	b4e1 := eventFrame(4, 1)

	tests := []struct {
		name    string
		corrupt func(d []byte) []byte
		tornOK  bool // the newest segment
		want    []salvaged
	}{
		{"clean", nil, true, all},
		{"flipped byte mid-batch", func(d []byte) []byte {
			d[b1.off+FrameHeaderSize+3] ^= 0x40
			return d
		}, true, with(batches(0, 2, 3, 4), 1, salvaged{Offset: img.start[1], Bad: b1.off, Length: img.start[2] - img.start[1], Reason: "checksum mismatch"})},
		{"flipped byte in the last batch of the newest segment, no mark after it", func(d []byte) []byte {
			d[b4e1.off+FrameHeaderSize+3] ^= 0x40
			return d[:img.cend[4]]
		}, true, with(batches(0, 1, 2, 3), 4, salvaged{Offset: img.start[4], Bad: b4e1.off, Length: img.cend[4] - img.start[4], Torn: true, FirstSeq: 8, LastSeq: 8, Reason: "checksum mismatch"})},
		{"flipped byte in the last batch of the newest segment, a mark proves it durable", func(d []byte) []byte {
			d[b4e1.off+FrameHeaderSize+3] ^= 0x40
			return d
		}, true, with(batches(0, 1, 2, 3), 4, salvaged{Offset: img.start[4], Bad: b4e1.off, Length: size - img.start[4], FirstSeq: 8, LastSeq: 8, Reason: "checksum mismatch"})},
		{"flipped byte in the last batch of an older segment", func(d []byte) []byte {
			d[b4e1.off+FrameHeaderSize+3] ^= 0x40
			return d
		}, false, with(batches(0, 1, 2, 3), 4, salvaged{Offset: img.start[4], Bad: b4e1.off, Length: size - img.start[4], FirstSeq: 8, LastSeq: 8, Reason: "checksum mismatch"})},
		{"truncated tail", func(d []byte) []byte { return d[:img.start[4]+20] },
			true, with(batches(0, 1, 2, 3), 4, salvaged{Offset: img.start[4], Bad: img.start[4], Length: 20, Torn: true, Reason: "frame of"})},
		{"truncated tail of an older segment", func(d []byte) []byte { return d[:img.start[4]+20] },
			false, with(batches(0, 1, 2, 3), 4, salvaged{Offset: img.start[4], Bad: img.start[4], Length: 20, Reason: "frame of"})},
		{"truncated after complete events", func(d []byte) []byte { return d[:b4e1.end] },
			true, with(batches(0, 1, 2, 3), 4, salvaged{Offset: img.start[4], Bad: img.start[4], Length: b4e1.end - img.start[4], Torn: true, FirstSeq: 8, LastSeq: 9, Reason: "incomplete batch"})},
		{"garbage between batches (a mark overwritten)", func(d []byte) []byte {
			for i := img.cend[1]; i < img.end[1]; i++ {
				d[i] = 0xab
			}
			return d
		}, true, with(all, 2, salvaged{Offset: img.cend[1], Bad: img.cend[1], Length: img.end[1] - img.cend[1], Reason: "frame length"})},
		{"garbage inserted between batches", func(d []byte) []byte {
			return slices.Insert(d, int(img.start[2]), bytes.Repeat([]byte{0xab}, 100)...)
		}, false, append(with(batches(0, 1), 2, salvaged{Offset: img.start[2], Bad: img.start[2], Length: 100, Reason: "frame length"}), shifted(batches(2, 3, 4), 100)...)},
		{"undecodable but checksummed event: never torn", func(d []byte) []byte {
			bad := AppendFrame(nil, KindEvent, bytes.Repeat([]byte{0xc1}, int(b4e1.end-b4e1.off-FrameHeaderSize)))
			copy(d[b4e1.off:], bad)
			return d[:img.cend[4]] // no mark after it proves it durable
		}, true, with(batches(0, 1, 2, 3), 4, salvaged{Offset: img.start[4], Bad: b4e1.off, Length: img.cend[4] - img.start[4], FirstSeq: 8, LastSeq: 8, Reason: "undecodable event"})},
		{"bad header: the records are read on", func(d []byte) []byte {
			d[20] ^= 0xff
			return d
		}, true, append([]salvaged{{Length: HeaderSize, Reason: "bad header"}}, all...)},
		{"shorter than a header", func(d []byte) []byte { return d[:10] },
			true, []salvaged{{Length: 10, Whole: true, Torn: true, Reason: "file is 10 bytes"}}},
		{"sealed golden", func([]byte) []byte { return bytes.Clone(golden["sealed.seg"]) }, false, all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := bytes.Clone(img.data)
			if tt.corrupt != nil {
				data = tt.corrupt(data)
			}
			got := salvageAll(t, data, tt.tornOK)
			for i := range got {
				if i < len(tt.want) && !got[i].Batch && strings.HasPrefix(got[i].Reason, tt.want[i].Reason) {
					got[i].Reason = tt.want[i].Reason
				}
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(salvaged{}), cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".events" || p.Last().String() == ".offsets" }, cmp.Ignore())); diff != "" {
				t.Errorf("Salvage (-want +got):\n%s", diff)
			}
			checkSalvagedEvents(t, img, got)
			checkSalvaged(t, bytes.NewReader(data), int64(len(data)), tt.tornOK, got)
		})
	}
}

// shifted moves batches by d bytes.
func shifted(items []salvaged, d int64) []salvaged {
	for i := range items {
		items[i].Offset += d
	}
	return items
}

// checkSalvagedEvents checks that every salvaged event is the event written.
func checkSalvagedEvents(t *testing.T, img *segImage, got []salvaged) {
	t.Helper()
	want := map[uint64][]byte{}
	for _, e := range img.envelopes(len(img.batches)) {
		want[e.Seq] = AppendEnvelope(nil, &e)
	}
	for _, it := range got {
		for _, e := range it.events {
			if g := AppendEnvelope(nil, &e); !bytes.Equal(g, want[e.Seq]) {
				t.Errorf("salvaged event seq %d differs from the one written", e.Seq)
			}
		}
	}
}

// TestSalvageCompressed: a compressed segment is read through its logical
// view; a damaged block loses the frames with bytes in it, and a compressed
// segment without a valid trailer is read by finding its blocks.
func TestSalvageCompressed(t *testing.T) {
	img := buildImage(goldenHeader(1), goldenSealedBatches())
	comp := goldenFiles()["compressed.seg"]
	got := salvageAll(t, comp, false)
	var seqs []uint64
	for _, it := range got {
		if !it.Batch {
			t.Fatalf("gap in the golden compressed segment: %+v", it)
		}
		for _, e := range it.events {
			seqs = append(seqs, e.Seq)
		}
	}
	if want := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(seqs, want) {
		t.Fatalf("seqs %v, want %v", seqs, want)
	}
	checkSalvagedEvents(t, img, got)

	// A flipped byte in the first zblock's payload: a gap from the start,
	// then the batches of the blocks after it
	// (TestSalvageCompressedPastDamagedBlock tries every block).
	bad := bytes.Clone(comp)
	bad[HeaderSize+FrameHeaderSize+10] ^= 0xff
	got = salvageAll(t, bad, false)
	if len(got) < 2 || got[0].Batch || got[0].Offset != HeaderSize || !strings.Contains(got[0].Reason, "zblock frame checksum mismatch") || !got[len(got)-1].Batch || got[len(got)-1].LastSeq != 9 {
		t.Fatalf("damaged first zblock: %+v", got)
	}
	checkSalvagedEvents(t, img, got)
	// A flipped byte in the last zblock: the batches before it are read
	// (the Reader's read ahead meets the damaged block early, but reports
	// it only to a read that needs its bytes).
	sg, err := open(&readerAtFile{ra: bytes.NewReader(comp), size: int64(len(comp))}, "c.seg")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sg.Records(); err != nil {
		t.Fatal(err)
	}
	z := sg.zr.z
	last := len(z.phys) - 1
	bad = bytes.Clone(comp)
	bad[z.phys[last]+FrameHeaderSize+5] ^= 0xff
	got = salvageAll(t, bad, false)
	seqs = nil
	for _, it := range got[:len(got)-1] {
		if !it.Batch {
			t.Fatalf("damaged last zblock: a gap before the end: %+v", got)
		}
		for _, e := range it.events {
			seqs = append(seqs, e.Seq)
		}
	}
	g := got[len(got)-1]
	if g.Batch || g.Offset <= HeaderSize || g.Offset+g.Length != z.end || !strings.Contains(g.Reason, "zblock frame checksum mismatch") ||
		len(seqs) == 0 || !slices.Equal(seqs, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}[:len(seqs)]) {
		t.Fatalf("damaged last zblock (logical %d..%d): %+v", z.starts[last], z.end, got)
	}
	checkSalvagedEvents(t, img, got)

	// No trailer: the blocks are found without it, and the zmap after
	// them proves they are all (TestSalvageCompressedWithoutBlockMap).
	got = salvageAll(t, comp[:len(comp)-TrailerSize], true)
	seqs = nil
	for _, it := range got {
		if !it.Batch {
			t.Fatalf("compressed without a trailer: a gap: %+v", got)
		}
		for _, e := range it.events {
			seqs = append(seqs, e.Seq)
		}
	}
	if want := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(seqs, want) {
		t.Fatalf("compressed without a trailer: seqs %v, want %v", seqs, want)
	}
}

// TestSalvageStops: an error of a callback ends Salvage and is returned
// unchanged, even one that looks like corruption.
func TestSalvageStops(t *testing.T) {
	img := buildImage(goldenHeader(1), goldenSealedBatches())
	stop := &CorruptError{File: "x", Reason: "from the callback"}
	calls := 0
	err := Salvage(t.Context(), bytes.NewReader(img.data), int64(len(img.data)), SalvageOptions{
		Batch: func(*Batch) error { calls++; return stop },
	})
	if err != stop || calls != 1 {
		t.Fatalf("Salvage = %v after %d calls, want the callback's error after 1", err, calls)
	}
	// A read error is returned.
	rerr := errors.New("disk on fire")
	if err := Salvage(t.Context(), errReaderAt{rerr}, int64(len(img.data)), SalvageOptions{}); !errors.Is(err, rerr) {
		t.Fatalf("Salvage of an unreadable file = %v, want %v", err, rerr)
	}
}

// FuzzSalvage: Salvage never panics and allocates boundedly on any bytes;
// every batch it reports is committed in the file (its event frames,
// read again by the Reader, decode to its events, and a matching commit
// frame follows them); batches and gaps come in file order without
// overlap and within the records; only the newest segment has torn
// tails, and one ends the file; and what it reads of the newest segment
// is a prefix of what it reads of the same bytes as an older segment.
func FuzzSalvage(f *testing.F) {
	f.Fuzz(func(t *testing.T, header, body []byte) {
		data := append(slices.Clip(header), body...)
		var newest, older []salvaged
		checkAlloc(t, maxFuzzAlloc, func() {
			newest = salvageAll(t, data, true)
			older = salvageAll(t, data, false)
		})
		records, end := io.ReaderAt(bytes.NewReader(data)), int64(len(data))
		if len(data) >= HeaderSize {
			if h, err := DecodeHeader(data[:HeaderSize]); err == nil && h.Flags&FlagCompressed != 0 {
				var (
					tr     Trailer
					sealed bool
				)
				records = nil
				if s, err := open(&readerAtFile{ra: bytes.NewReader(data), size: end}, fuzzSegName); err == nil {
					tr, sealed = s.Trailer, s.Sealed
					if ra, e, err := s.Records(); err == nil && sealed {
						records, end = ra, e
					}
				}
				if records == nil {
					// Salvage finds the blocks without the zmap.
					v, err := scanView(t.Context(), bytes.NewReader(data), fuzzSegName, end, tr, sealed)
					if err != nil {
						t.Fatal(err)
					}
					records, end = v.zr, v.zr.z.end
				}
			}
		}
		for _, run := range []struct {
			tornOK bool
			got    []salvaged
		}{{true, newest}, {false, older}} {
			checkSalvaged(t, records, max(end, int64(len(data))), run.tornOK, run.got)
		}
		var nb, ob []salvaged
		for _, it := range newest {
			if it.Batch {
				nb = append(nb, it)
			}
		}
		for _, it := range older {
			if it.Batch {
				ob = append(ob, it)
			}
		}
		if len(nb) > len(ob) || !sameSalvaged(nb, ob[:len(nb)]) {
			t.Fatalf("batches of the newest segment are not a prefix of those of an older one (-newest +older):\n%s",
				cmp.Diff(nb, ob[:min(len(nb), len(ob))], cmp.AllowUnexported(salvaged{})))
		}
	})
}

// sameSalvaged reports whether a and b report the same things, events and
// offsets included. FuzzSalvage compares with it rather than cmp.Equal,
// which was three quarters of each execution's CPU time; cmp.Diff only
// explains a difference. TestSameSalvaged keeps it in step with the fields
// of salvaged and event.Envelope.
func sameSalvaged(a, b []salvaged) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := &a[i], &b[i]
		if x.Batch != y.Batch || x.Offset != y.Offset || x.Bad != y.Bad || x.Length != y.Length ||
			x.Torn != y.Torn || x.Whole != y.Whole || x.FirstSeq != y.FirstSeq || x.LastSeq != y.LastSeq ||
			x.Reason != y.Reason || !slices.Equal(x.offsets, y.offsets) || len(x.events) != len(y.events) {
			return false
		}
		for k := range x.events {
			if !sameEnvelope(&x.events[k], &y.events[k]) {
				return false
			}
		}
	}
	return true
}

// TestSameSalvaged: sameSalvaged tells apart reports that differ in any
// field, of the report or of one of its events, and compares every field
// there is.
func TestSameSalvaged(t *testing.T) {
	if n := reflect.TypeFor[salvaged]().NumField(); n != 11 {
		t.Fatalf("salvaged has %d fields, sameSalvaged and this test know 11", n)
	}
	if n := reflect.TypeFor[event.Envelope]().NumField(); n != 9 {
		t.Fatalf("event.Envelope has %d fields, sameEnvelope and this test know 9", n)
	}
	img := buildImage(goldenHeader(1), goldenSealedBatches())
	got := salvageAll(t, img.data, true)
	if len(got) < 2 || len(got[0].events) == 0 {
		t.Fatalf("golden image salvaged as %+v", got)
	}
	got = append(got, salvaged{Offset: 1, Bad: 2, Length: 3, Torn: true, Whole: true, FirstSeq: 4, LastSeq: 5, Reason: "r"})
	clone := func() []salvaged {
		c := slices.Clone(got)
		for i := range c {
			c[i].offsets = slices.Clone(c[i].offsets)
			c[i].events = slices.Clone(c[i].events)
			for k := range c[i].events {
				c[i].events[k] = c[i].events[k].Clone()
			}
		}
		return c
	}
	if !sameSalvaged(got, clone()) {
		t.Fatal("a report differs from its copy")
	}
	g := len(got) - 1 // the gap
	ev := func(c []salvaged) *event.Envelope { return &c[0].events[0] }
	changes := map[string]func(c []salvaged) []salvaged{
		"one fewer":     func(c []salvaged) []salvaged { return c[:len(c)-1] },
		"Batch":         func(c []salvaged) []salvaged { c[g].Batch = true; return c },
		"Offset":        func(c []salvaged) []salvaged { c[g].Offset++; return c },
		"Bad":           func(c []salvaged) []salvaged { c[g].Bad++; return c },
		"Length":        func(c []salvaged) []salvaged { c[g].Length++; return c },
		"Torn":          func(c []salvaged) []salvaged { c[g].Torn = false; return c },
		"Whole":         func(c []salvaged) []salvaged { c[g].Whole = false; return c },
		"FirstSeq":      func(c []salvaged) []salvaged { c[g].FirstSeq++; return c },
		"LastSeq":       func(c []salvaged) []salvaged { c[g].LastSeq++; return c },
		"Reason":        func(c []salvaged) []salvaged { c[g].Reason += "!"; return c },
		"offsets":       func(c []salvaged) []salvaged { c[0].offsets[1]++; return c },
		"events":        func(c []salvaged) []salvaged { c[0].events = c[0].events[1:]; return c },
		"Seq":           func(c []salvaged) []salvaged { ev(c).Seq++; return c },
		"Stream":        func(c []salvaged) []salvaged { ev(c).Stream += "!"; return c },
		"Version":       func(c []salvaged) []salvaged { ev(c).Version++; return c },
		"Type":          func(c []salvaged) []salvaged { ev(c).Type += "!"; return c },
		"SchemaVersion": func(c []salvaged) []salvaged { ev(c).SchemaVersion++; return c },
		"ID":            func(c []salvaged) []salvaged { ev(c).ID += "!"; return c },
		"Time":          func(c []salvaged) []salvaged { ev(c).Time = ev(c).Time.Add(1); return c },
		"Meta":          func(c []salvaged) []salvaged { ev(c).Meta = map[string]string{"k": "v"}; return c },
		"Data":          func(c []salvaged) []salvaged { ev(c).Data = append(ev(c).Data, 0); return c },
	}
	if want := 1 + 11 + 9; len(changes) != want { // fewer items, each field of an item, each of an event
		t.Fatalf("%d changes, want %d", len(changes), want)
	}
	for name, change := range changes {
		if sameSalvaged(got, change(clone())) {
			t.Errorf("a report with a different %s is the same", name)
		}
	}
}

// sameEnvelope reports whether e and f are the same event.
func sameEnvelope(e, f *event.Envelope) bool {
	return e.Seq == f.Seq && e.Stream == f.Stream && e.Version == f.Version && e.Type == f.Type &&
		e.SchemaVersion == f.SchemaVersion && e.ID == f.ID && e.Time.Equal(f.Time) &&
		maps.Equal(e.Meta, f.Meta) && bytes.Equal(e.Data, f.Data)
}

// checkSalvaged checks what Salvage reported for a file whose records are
// ra (the logical view of a compressed segment) and end before end.
func checkSalvaged(t *testing.T, ra io.ReaderAt, end int64, tornOK bool, got []salvaged) {
	t.Helper()
	var (
		prev int64 // end of the previous batch or gap
		dec  Decoder
		r    Reader
	)
	for i, it := range got {
		if it.Offset < prev {
			t.Fatalf("item %d %+v starts before the end of the previous one (%d)", i, it, prev)
		}
		if !it.Batch {
			if it.Length < 0 || it.Offset+it.Length > end || it.Bad < it.Offset || (it.Bad > it.Offset+it.Length && !it.Whole) || it.Reason == "" {
				t.Fatalf("gap %d %+v out of bounds (records end at %d)", i, it, end)
			}
			if it.Torn && !tornOK {
				t.Fatalf("torn gap %+v in a segment that cannot have a torn tail", it)
			}
			if it.Torn && i != len(got)-1 {
				t.Fatalf("torn gap %+v is not the last thing in the file: %+v", it, got[i+1:])
			}
			if (it.FirstSeq == 0) != (it.LastSeq == 0) || it.FirstSeq > it.LastSeq {
				t.Fatalf("gap %+v: bad seq range", it)
			}
			prev = it.Offset + it.Length
			continue
		}
		if len(it.events) == 0 || it.Offset < HeaderSize {
			t.Fatalf("batch %d %+v: empty or before the records", i, it)
		}
		r.Reset(ra, it.Offset, end)
		var env event.Envelope
		for k, want := range it.events {
			fr, err := r.Next()
			if err != nil || fr.Kind != KindEvent {
				t.Fatalf("batch at %d: event %d is not an event frame: %v", it.Offset, k, err)
			}
			if len(it.offsets) != len(it.events)+1 || it.offsets[k] != fr.Offset {
				t.Fatalf("batch at %d: event %d's frame is at %d, Offsets say %v", it.Offset, k, fr.Offset, it.offsets)
			}
			if err := dec.Decode(fr.Payload, &env); err != nil {
				t.Fatalf("batch at %d: event %d does not decode: %v", it.Offset, k, err)
			}
			if !bytes.Equal(AppendEnvelope(nil, &env), AppendEnvelope(nil, &want)) || (k > 0 && want.Seq != it.events[k-1].Seq+1) {
				t.Fatalf("batch at %d: event %d (seq %d) differs from the file or does not follow its predecessor", it.Offset, k, want.Seq)
			}
		}
		fr, err := r.Next()
		if err != nil || fr.Kind != KindCommit || it.offsets[len(it.events)] != fr.Offset {
			t.Fatalf("batch at %d: no commit frame after its events where Offsets %v say: %v", it.Offset, it.offsets, err)
		}
		c, err := DecodeCommit(fr.Payload)
		if err != nil || c.FirstSeq != it.events[0].Seq || int(c.Count) != len(it.events) {
			t.Fatalf("batch at %d: commit %+v, %v does not match its %d events from seq %d", it.Offset, c, err, len(it.events), it.events[0].Seq)
		}
		prev = r.Offset()
	}
}
