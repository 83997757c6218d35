package evlog

import (
	"fmt"
	"strings"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// bigLog writes nseg+ sealed segments of events spread over nstreams
// streams on a Mem and returns it closed.
func bigLog(t *testing.T, events, nstreams int) *vfs.Mem {
	t.Helper()
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{SegmentSize: 64 << 10, Sync: SyncNever})
	ctx := t.Context()
	for i := 0; i < events; i += 100 {
		var batch []AppendRequest
		for j := i; j < i+100 && j < events; j++ {
			batch = append(batch, AppendRequest{Stream: fmt.Sprintf("s-%d", j%nstreams), Expect: ExpectAny,
				Events: []Envelope{{Type: "load", Data: []byte("\xa8payload!")}}})
		}
		if _, err := l.AppendBatch(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return mem
}

// TestOpenReadsNoSealedRecords proves, through the byte counters, that
// opening a log reads only the header and trailer of sealed segments.
func TestOpenReadsNoSealedRecords(t *testing.T) {
	mem := bigLog(t, 20000, 500)
	c := vfs.NewCounting(mem)
	l := openMem(t, c, Options{SegmentSize: 64 << 10})
	defer l.Close()
	names, _ := mem.List()
	sealed := 0
	for _, n := range names[:len(names)-2] { // all but LOCK and the active segment
		if !strings.HasSuffix(n, segment.Ext) {
			continue
		}
		sealed++
		if got := c.File(n).BytesRead; got > segment.HeaderSize+segment.TrailerSize {
			t.Errorf("Open read %d bytes of sealed segment %s, want at most %d (header and trailer)", got, n, segment.HeaderSize+segment.TrailerSize)
		}
	}
	if sealed < 10 {
		t.Fatalf("only %d sealed segments: the test needs more", sealed)
	}
}

// TestStreamReadCost proves that reading one stream reads at most about
// twice that stream's bytes, plus the per-segment index look-ups.
func TestStreamReadCost(t *testing.T) {
	const events, streams = 30000, 300
	mem := bigLog(t, events, streams)
	c := vfs.NewCounting(mem)
	l := openMem(t, c, Options{SegmentSize: 64 << 10})
	defer l.Close()
	ctx := t.Context()
	// Warm the per-segment summaries (sparse index and bloom filter), which
	// every stream read shares, then measure one stream.
	for range l.Stream(ctx, "s-1", 1) {
	}
	c.Reset()
	var streamBytes int64
	n := 0
	for e, err := range l.Stream(ctx, "s-7", 1) {
		if err != nil {
			t.Fatal(err)
		}
		streamBytes += int64(segment.EncodedSize(&e))
		n++
	}
	if n != events/streams {
		t.Fatalf("read %d events, want %d", n, events/streams)
	}
	total := c.Total()
	segs := l.Stats().Segments
	// Per sealed segment: one stream block (at most 16 entries of ~40
	// bytes) and one postings frame.
	indexBudget := int64(segs) * (16*48 + 2*segment.FrameHeaderSize + 64)
	t.Logf("stream bytes %d, read %d bytes in %d reads over %d segments (index budget %d)", streamBytes, total.BytesRead, total.Reads, segs, indexBudget)
	if total.BytesRead > 2*streamBytes+indexBudget {
		t.Fatalf("reading one stream read %d bytes; its events are %d bytes (budget 2x + %d for indexes)", total.BytesRead, streamBytes, indexBudget)
	}
}
