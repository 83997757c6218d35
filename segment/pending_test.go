package segment

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/evlog/evlog/event"
)

// TestBeginEndEventFrame: a frame whose data is appended between
// BeginEventFrame and EndEventFrame is byte-identical to AppendEventFrame's,
// at every bin header width, after other frames in the buffer.
func TestBeginEndEventFrame(t *testing.T) {
	for _, n := range []int{0, 1, 255, 256, 65535, 65536, 70_000} {
		data := bytes.Repeat([]byte{0xa5}, n)
		e := event.Envelope{Seq: 7, Stream: "s", Version: 3, Type: "t", SchemaVersion: 1, ID: "id",
			Time: time.Unix(0, 12345), Meta: map[string]string{"k": "v", "a": "b"}, Data: data}
		prefix := AppendCommitFrame(nil, Commit{FirstSeq: 1, Count: 1})
		want := AppendEventFrame(bytes.Clone(prefix), &e)

		got, p := BeginEventFrame(bytes.Clone(prefix), &e)
		got = append(got, data...)
		got = EndEventFrame(got, p)
		if !bytes.Equal(got, want) {
			t.Errorf("data of %d bytes: BeginEventFrame/EndEventFrame differ from AppendEventFrame", n)
		}
		if len(want)-len(prefix) != EncodedSize(&e) {
			t.Errorf("data of %d bytes: frame is %d bytes, EncodedSize says %d", n, len(want)-len(prefix), EncodedSize(&e))
		}
		e.Data = nil
		if EncodedSize(&e)-DataSize(0)+DataSize(n) != len(want)-len(prefix) {
			t.Errorf("data of %d bytes: DataSize disagrees with EncodedSize", n)
		}
	}
}

// TestIndexAddBatch: AddBatch builds the index Add builds, event by event
// (compared through the footers they write), with runs of one stream and
// streams interleaved, over several sparse intervals.
func TestIndexAddBatch(t *testing.T) {
	var events []EventInfo
	versions := map[string]uint64{}
	off := int64(HeaderSize)
	for i := range 3*SparseInterval + 7 {
		s := []string{"a", "b", "c"}[(i/5)%3]
		if i%11 == 0 {
			s = "x-" + string(rune('a'+i%7))
		}
		versions[s]++
		events = append(events, EventInfo{Seq: uint64(100 + i), Stream: s, Version: versions[s], Time: int64(1000 + i), Off: off, Len: 40})
		off += 40
	}
	one, batch := NewIndex(100), NewIndex(100)
	for _, e := range events {
		one.Add(e)
	}
	batch.AddBatch(events[:10])
	batch.AddBatch(events[10:])
	// As the writer adds: each chunk's events carry the Postings an
	// earlier AddBatch set for their stream (nil for a stream not added
	// yet), which AddBatch uses instead of looking the stream up.
	hinted := NewIndex(100)
	known := map[string]*StreamPostings{}
	for c := range slices.Chunk(events, 7) {
		chunk := slices.Clone(c)
		for i := range chunk {
			chunk[i].Postings = known[chunk[i].Stream]
		}
		hinted.AddBatch(chunk)
		for _, e := range chunk {
			if e.Postings == nil || e.Postings != hinted.streams[e.Stream] {
				t.Fatalf("event %d: AddBatch set Postings %p, the index's entry is %p", e.Seq, e.Postings, hinted.streams[e.Stream])
			}
			known[e.Stream] = e.Postings
		}
	}
	one.End, batch.End, hinted.End = off, off, off
	var hdr [HeaderSize]byte
	a, _ := one.AppendFooter(nil, hdr)
	for name, x := range map[string]*Index{"AddBatch": batch, "AddBatch with Postings": hinted} {
		b, _ := x.AppendFooter(nil, hdr)
		if !bytes.Equal(a, b) || one.Count != x.Count || one.NewStreams != x.NewStreams || one.FirstTime != x.FirstTime {
			t.Fatalf("%s built a different index than Add", name)
		}
	}
}

// TestIndexSlabPostings: postings lists whose arrays are cut from the
// index's slab keep their own postings while many streams grow in turn
// (each growth cuts a new array next to the others'), past several slabs
// and past slabMaxCap, with AddBatch and Add mixed.
func TestIndexSlabPostings(t *testing.T) {
	const streams = 300
	x := NewIndex(1)
	want := map[string][]Posting{}
	versions := map[string]uint64{}
	seq, off := uint64(1), int64(HeaderSize)
	next := func(s string, n uint32) EventInfo {
		versions[s]++
		e := EventInfo{Seq: seq, Stream: s, Version: versions[s], Time: int64(seq), Off: off, Len: n}
		want[s] = append(want[s], Posting{Off: off, Len: n})
		seq++
		off += int64(n)
		return e
	}
	for round := range 130 { // past slabMaxCap (64)
		var batch []EventInfo
		for i := range streams {
			s := fmt.Sprintf("s-%d", i)
			// Stream i gets 1 + i%3 events per round: lists of
			// different lengths, growing at different rounds.
			for range 1 + i%3 {
				batch = append(batch, next(s, uint32(40+i)))
			}
		}
		if round%2 == 0 {
			x.AddBatch(batch)
		} else {
			for _, e := range batch {
				x.Add(e)
			}
		}
	}
	for s, w := range want {
		got, ok, err := x.Stream(s)
		if err != nil || !ok {
			t.Fatalf("Stream(%q): ok %v, err %v", s, ok, err)
		}
		if got.FirstVersion != 1 || !slices.Equal(got.Posts, w) {
			t.Fatalf("stream %q: %d postings from version %d, want the %d added", s, len(got.Posts), got.FirstVersion, len(w))
		}
	}
}
