package segment

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
)

func benchEnvelope(payload int) event.Envelope {
	return event.Envelope{Seq: 123456, Stream: "orders-42", Version: 17, Type: "item_added", SchemaVersion: 1,
		Time: time.Unix(0, t0).UTC(), Data: dataN(payload)}
}

func BenchmarkEncode(b *testing.B) {
	for _, payload := range []int{100} {
		b.Run(fmt.Sprintf("payload=%d", payload), func(b *testing.B) {
			e := benchEnvelope(payload)
			e.ID = "req-0001"
			buf := make([]byte, 0, 4096)
			b.SetBytes(int64(EncodedSize(&e)))
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendEventFrame(buf[:0], &e)
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	for _, payload := range []int{100} {
		b.Run(fmt.Sprintf("payload=%d", payload), func(b *testing.B) {
			e := benchEnvelope(payload)
			p := AppendEnvelope(nil, &e)
			var dec Decoder
			var got event.Envelope
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				if err := dec.Decode(p, &got); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCRC(b *testing.B) {
	for _, size := range []int{128, 4096} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			p := dataN(size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var sink uint32
			for b.Loop() {
				sink += crc(p)
			}
			_ = sink
		})
	}
}

// benchSegment returns the records of a segment of n events (payloads of
// 100 bytes, 1000 streams, batches of up to 16 events).
func benchSegment(n int) *segImage {
	rng := rand.New(rand.NewPCG(42, 42))
	var bs []batch
	seq, tm := uint64(1), t0
	vers := map[string]uint64{}
	for seq <= uint64(n) {
		var bt batch
		for range min(1+rng.IntN(16), n-int(seq)+1) {
			stream := fmt.Sprintf("orders-%d", rng.IntN(1000))
			vers[stream]++
			bt.events = append(bt.events, event.Envelope{Seq: seq, Stream: stream, Version: vers[stream], Type: "item_added",
				SchemaVersion: 1, Time: time.Unix(0, tm).UTC(), Data: dataN(100)})
			seq++
			tm += 1000
		}
		bt.sync = true
		bs = append(bs, bt)
	}
	return buildImage(testHeader(1), bs)
}

func BenchmarkScan(b *testing.B) {
	for _, n := range []int{100_000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			img := benchSegment(n)
			ra := bytes.NewReader(img.data)
			b.SetBytes(int64(len(img.data)))
			b.ReportAllocs()
			iters := 0
			start := time.Now()
			for b.Loop() {
				x, tail, err := split(Scan(ra, img.h, int64(len(img.data)), ScanOptions{}))
				if err != nil || tail != nil || x.Count != n {
					b.Fatal(err, tail)
				}
				iters++
			}
			b.ReportMetric(float64(n*iters)/time.Since(start).Seconds(), "events/s")
		})
	}
}

func BenchmarkReader(b *testing.B) {
	for _, n := range []int{100_000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			img := benchSegment(n)
			ra := bytes.NewReader(img.data)
			b.SetBytes(int64(len(img.data)))
			b.ReportAllocs()
			var r Reader
			iters := 0
			start := time.Now()
			for b.Loop() {
				r.Reset(ra, HeaderSize, int64(len(img.data)))
				for {
					_, err := r.Next()
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				iters++
			}
			b.ReportMetric(float64(n*iters)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// benchIndex returns an index of streams streams with 5 events each.
func benchIndex(streams int) *Index {
	x := NewIndex(1)
	off := int64(HeaderSize)
	for i := range streams * 5 {
		x.Add(EventInfo{Seq: 1 + uint64(i), Stream: fmt.Sprintf("orders-%d", i%streams), Version: 1 + uint64(i/streams), Time: t0 + int64(i), Off: off, Len: 140})
		off += 140
	}
	x.End = off
	return x
}

// footerIndex returns the index of a segment of events events (frames of
// 140 bytes) spread round-robin over streams streams, every event carrying
// an ID: what the writer holds when it checkpoints or seals.
func footerIndex(streams, events int) *Index {
	x := NewIndex(1)
	off := int64(HeaderSize)
	names := make([]string, streams)
	for i := range names {
		names[i] = fmt.Sprintf("orders-%d", i)
	}
	for i := range events {
		x.Add(EventInfo{Seq: 1 + uint64(i), Stream: names[i%streams], Version: 1 + uint64(i/streams), Time: t0 + int64(i), Off: off, Len: 140,
			ID: fmt.Sprintf("req-%d", i)})
		off += 140
	}
	x.End = off
	return x
}

// BenchmarkFooter measures the footer encoder at the sizes the writer sees
// (a 64 MiB segment holds about 250k events of ~140 bytes once, at the
// seal, and half of it at the mid-segment checkpoint): kind=seal is a
// current-version footer with its ID table, kind=checkpoint a checkpoint
// file (no ID table), encoded into a new buffer or (checkpoint-reused)
// into the last one, as the writer does.
func BenchmarkFooter(b *testing.B) {
	for _, sz := range []struct{ streams, events int }{{10_000, 50_000}, {1, 250_000}, {1000, 250_000}, {100_000, 250_000}} {
		var x *Index // built on first use: only for the sizes run
		index := func() *Index {
			if x == nil {
				x = footerIndex(sz.streams, sz.events)
			}
			return x
		}
		h := testHeader(1)
		h.Version = FormatVersion
		hb := h.Encode()
		b.Run(fmt.Sprintf("kind=seal/streams=%d/events=%d", sz.streams, sz.events), func(b *testing.B) {
			x := index()
			var buf []byte
			buf, _ = x.AppendFooter(buf, hb)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				buf, _ = x.AppendFooter(buf[:0], hb)
			}
		})
		b.Run(fmt.Sprintf("kind=checkpoint/streams=%d/events=%d", sz.streams, sz.events), func(b *testing.B) {
			x := index()
			data := EncodeCheckpoint(h, hb, x, x.End, 0)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				data = EncodeCheckpoint(h, hb, x, x.End, 0)
			}
			_ = data
		})
		// As the writer does: one buffer for every checkpoint.
		b.Run(fmt.Sprintf("kind=checkpoint-reused/streams=%d/events=%d", sz.streams, sz.events), func(b *testing.B) {
			x := index()
			data := AppendCheckpoint(nil, h, hb, x, x.End, 0)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				data = AppendCheckpoint(data, h, hb, x, x.End, 0)
			}
		})
	}
}

func BenchmarkLookup(b *testing.B) {
	for _, streams := range []int{10_000} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			x := benchIndex(streams)
			file, _ := seal(x, testHeader(1), nil)
			mem := vfs.NewMem()
			if err := mem.WriteFile("s.seg", file); err != nil {
				b.Fatal(err)
			}
			s, err := Open(mem, "s.seg")
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var posts []Posting
			b.ReportAllocs()
			for b.Loop() {
				e, ok, err := s.Lookup("orders-4242")
				if !ok || err != nil {
					b.Fatal(ok, err)
				}
				if posts, err = s.Postings(e, posts); err != nil || len(posts) != 5 {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkIndexAddBatch: indexing a segment's worth of 1,000-event
// batches as the writer does, the events of one batch in one stream
// (streams=1, 100 streams in turn) or each in its own (streams=1000,
// 10k streams in all).
func BenchmarkIndexAddBatch(b *testing.B) {
	const batches, per = 300, 1000
	for _, streams := range []int{1, 1000} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			names := make([]string, 10_000)
			for i := range names {
				names[i] = fmt.Sprintf("s-%d", i)
			}
			versions := map[string]uint64{}
			all := make([][]EventInfo, batches)
			off := int64(HeaderSize)
			for i := range all {
				for j := range per {
					s := names[i%100]
					if streams > 1 {
						s = names[(i*per+j)%len(names)]
					}
					versions[s]++
					all[i] = append(all[i], EventInfo{Seq: uint64(i*per + j + 1), Stream: s, Version: versions[s], Time: int64(i), Off: off, Len: 200})
					off += 200
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				x := NewIndex(1)
				for _, batch := range all {
					x.AddBatch(batch)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batches*per), "ns/event")
		})
	}
}
