package segment

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
)

func TestVerify(t *testing.T) {
	img, sealed, tr := sealedImage(t, 21)
	n := len(img.batches)
	name := FormatFileName(1, 0)
	s, _ := openMem(t, name, sealed)
	x, err := Verify(s, math.MinInt64)
	if err != nil {
		t.Fatalf("Verify of a good segment: %v", err)
	}
	if diff := indexDiff(img.index(n), x); diff != "" {
		t.Errorf("Verify's index (-want +got):\n%s", diff)
	}
	if _, err := Verify(s, img.batches[0].events[0].Time.UnixNano()+1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Verify with a later previous time: %v", err)
	}

	// A footer that disagrees with the records, though every frame and the
	// trailer checksum are valid.
	stream := img.batches[0].events[0].Stream
	refooter := func(mut func(x *Index)) []byte {
		x := img.index(n)
		mut(x)
		file, _ := seal(x, img.h, img.data[HeaderSize:])
		return file
	}
	tests := []struct {
		name string
		file []byte
	}{
		{"stream first version", refooter(func(x *Index) { x.streams[stream].FirstVersion++ })},
		{"posting at another event", refooter(func(x *Index) {
			p := x.streams[stream].Posts
			p[0] = Posting{Off: img.frames[len(img.frames)-2].off, Len: uint32(img.frames[len(img.frames)-2].end - img.frames[len(img.frames)-2].off)}
			slices.SortFunc(p, func(a, b Posting) int { return int(a.Off - b.Off) })
		})},
		{"stream missing", refooter(func(x *Index) { delete(x.streams, stream) })},
		{"sparse time", refooter(func(x *Index) { x.sparse[0].Time-- })},
		{"new streams", refooter(func(x *Index) { x.NewStreams-- })},
		{"time range", refooter(func(x *Index) { x.LastTime++ })},
		{"record byte flipped", func() []byte { b := bytes.Clone(sealed); b[HeaderSize+FrameHeaderSize+3] ^= 1; return b }()},
		{"footer byte flipped", func() []byte { b := bytes.Clone(sealed); b[tr.RecordsEnd+FrameHeaderSize] ^= 1; return b }()},
	}
	for _, tt := range tests {
		mem := vfs.NewMem()
		if err := mem.WriteFile(name, tt.file); err != nil {
			t.Fatal(err)
		}
		s, err := Open(mem, name)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s: Open: %v", tt.name, err)
			}
			continue
		}
		_, err = Verify(s, math.MinInt64)
		ce, ok := errors.AsType[*CorruptError](err)
		if !ok || !errors.Is(err, ErrCorrupt) || ce.File != name || ce.Offset < HeaderSize || ce.Offset > int64(len(tt.file)) {
			t.Errorf("%s: Verify = %v, want a CorruptError naming %s and an offset in the file", tt.name, err, name)
		}
		s.Close()
	}
	// An unsealed segment does not verify.
	u, _ := openMem(t, name, img.data)
	if _, err := Verify(u, math.MinInt64); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Verify of an unsealed segment: %v", err)
	}
}

// Scan can resume after an index of the segment's first batches and
// returns just the events appended since.
func TestScanContinue(t *testing.T) {
	rng := newRand(t)
	bs := genBatches(rng, 7, genOptions{batches: 12, maxBatch: 5, streams: 4, maxData: 20, syncEvery: 2})
	img := buildImage(testHeader(7), bs)
	full := img.index(len(bs))
	for k := range len(bs) + 1 {
		start := int64(HeaderSize)
		if k > 0 {
			start = img.end[k-1]
		}
		base, tail, err := scanBytes(img.data[:start], img.h, ScanOptions{File: scanFile})
		if err != nil || tail != nil {
			t.Fatalf("prefix scan to batch %d: %v %+v", k, err, tail)
		}
		res, err := Scan(bytes.NewReader(img.data), img.h, int64(len(img.data)), ScanOptions{File: scanFile, Continue: base, CollectInfos: true})
		x, tail, infos := res.Index, res.Tail, res.Infos
		if err != nil || tail != nil {
			t.Fatalf("resumed at batch %d: %v %+v", k, err, tail)
		}
		// The new index holds exactly the later events.
		want := NewIndex(base.LastSeq + 1)
		want.LastSeq, want.End = base.LastSeq, base.End
		var wantInfos []EventInfo
		for _, f := range img.frames {
			if f.batch < k {
				continue
			}
			if f.kind == KindCommit {
				want.End = f.end
				continue
			}
			e := img.batches[f.batch].events[f.event]
			info := EventInfo{Seq: e.Seq, Stream: e.Stream, Version: e.Version, Time: e.Time.UnixNano(), Off: f.off, Len: uint32(f.end - f.off), ID: e.ID}
			want.Add(info)
			wantInfos = append(wantInfos, info)
		}
		if diff := indexDiff(want, x); diff != "" {
			t.Errorf("resumed at batch %d: index (-want +got):\n%s", k, diff)
		}
		if !slices.Equal(wantInfos, infos) {
			t.Errorf("resumed at batch %d: Infos %v, want %v", k, infos, wantInfos)
		}
		if x.End != full.End || base.Count+x.Count != full.Count {
			t.Errorf("resumed at batch %d: %d+%d events to %d, full scan %d to %d", k, base.Count, x.Count, x.End, full.Count, full.End)
		}
	}
	// Resuming checks continuity with the earlier index: time and versions.
	k := 6
	base, _, _ := scanBytes(img.data[:img.end[k-1]], img.h, ScanOptions{File: scanFile})
	resume := func(mut func(bs []batch)) error {
		bs2 := slices.Clone(bs)
		for i := range bs2 {
			bs2[i].events = slices.Clone(bs2[i].events)
		}
		mut(bs2)
		img2 := buildImage(testHeader(7), bs2)
		_, _, err := scanBytes(img2.data, img2.h, ScanOptions{File: scanFile, Continue: base})
		return err
	}
	err := resume(func(bs []batch) { bs[k].events[0].Time = time.Unix(0, base.LastTime-1).UTC() })
	wantCorrupt(t, err, scanFile, img.start[k])
	// The first later event of a stream the earlier index holds, with a
	// version that does not follow.
	seen := map[string]bool{}
	for _, f := range img.frames {
		if f.batch < k || f.kind != KindEvent {
			continue
		}
		e := img.batches[f.batch].events[f.event]
		if seen[e.Stream] {
			continue
		}
		seen[e.Stream] = true
		if lastVer(base, e.Stream) == 0 {
			continue
		}
		err := resume(func(bs []batch) { bs[f.batch].events[f.event].Version += 2 })
		wantCorrupt(t, err, scanFile, f.off)
		return
	}
	t.Fatal("setup: no later event continues a stream of the earlier index")
}

// TestVerifyIDTable: a version 3 footer's ID table holds exactly the
// records' IDs; Verify rejects a table that differs from them, though its
// frame and every checksum are valid, and a version 2 footer has none.
func TestVerifyIDTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	bs := genBatches(rng, 1, genOptions{batches: 20, maxBatch: 8, streams: 6, maxData: 50, syncEvery: 2})
	h := testHeaderV2(1)
	h.Version = 3
	img := buildImage(h, bs)
	n := len(img.batches)
	name := FormatFileName(1, 0)
	refooter := func(mut func(x *Index)) []byte {
		x := img.index(n)
		mut(x)
		file, _ := seal(x, img.h, img.data[HeaderSize:])
		return file
	}
	good := refooter(func(*Index) {})
	s, _ := openMem(t, name, good)
	if _, err := Verify(s, math.MinInt64); err != nil {
		t.Fatalf("Verify of a good segment: %v", err)
	}
	ids, ok, err := s.IDTable(nil)
	if err != nil || !ok || len(ids) == 0 || len(ids) != img.index(n).ids.len() {
		t.Fatalf("IDTable = %d entries, %v, %v; want the %d IDs of the records", len(ids), ok, err, img.index(n).ids.len())
	}
	tests := []struct {
		name string
		file []byte
	}{
		{"an ID missing", refooter(func(x *Index) { x.ids = idListOf(x.ids.all()[1:]) })},
		{"another seq", refooter(func(x *Index) {
			ids := x.ids.all()
			ids[0].Seq = x.LastSeq + x.BaseSeq - ids[0].Seq
			x.ids = idListOf(ids)
		})},
		{"another hash", refooter(func(x *Index) {
			ids := x.ids.all()
			ids[len(ids)-1].Hash ^= 1
			x.ids = idListOf(ids)
		})},
	}
	for _, tc := range tests {
		s, _ := openMem(t, name, tc.file)
		_, err := Verify(s, math.MinInt64)
		if ce, ok := errors.AsType[*CorruptError](err); !ok || ce.File != name {
			t.Errorf("%s: Verify = %v, want a CorruptError naming %s", tc.name, err, name)
		}
	}
	// A table entry whose seq is outside the segment is refused when read.
	bad := refooter(func(x *Index) {
		ids := x.ids.all()
		ids[0].Seq = x.LastSeq + 1
		x.ids = idListOf(ids)
	})
	s, _ = openMem(t, name, bad)
	if _, _, err := s.IDTable(nil); !errors.Is(err, ErrCorrupt) {
		t.Errorf("IDTable of a table with a seq past the segment: %v, want ErrCorrupt", err)
	}

	// Version 2: no table.
	h2 := testHeaderV2(1)
	img2 := buildImage(h2, bs)
	file, _ := seal(img2.index(n), img2.h, img2.data[HeaderSize:])
	s2, _ := openMem(t, name, file)
	if ids, ok, err := s2.IDTable(nil); ok || err != nil || ids != nil {
		t.Errorf("IDTable of a version 2 segment = %v, %v, %v; want none", ids, ok, err)
	}
	if _, err := Verify(s2, math.MinInt64); err != nil {
		t.Errorf("Verify of a version 2 segment: %v", err)
	}
}

// idListOf returns the idList holding es.
func idListOf(es []IDEntry) idList {
	var l idList
	for _, e := range es {
		l.add(e)
	}
	return l
}
