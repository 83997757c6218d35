package evlog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// compressedMemLog writes a log of several segments, with stream "agg"
// spread over it, and compresses its sealed segments; it returns the FS
// and the names of the compressed segments.
func compressedMemLog(t *testing.T) (*vfs.Mem, []string) {
	t.Helper()
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{Sync: SyncNever, SegmentSize: 256 << 10})
	tl := Typed[sizedPayload](l)
	ctx := t.Context()
	// Payloads that do not compress much: a block is tens of KiB on disk.
	rng := rand.New(rand.NewPCG(3, 4))
	sized := func(n int) sizedPayload {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		return sizedPayload{N: n, Fill: string(b)}
	}
	for i := range 50 {
		parts := []Batch[sizedPayload]{{Stream: "agg", Expect: ExpectAny, Events: []Event[sizedPayload]{{Type: "t", Data: sized(i)}}}}
		for j := range 99 {
			parts = append(parts, Batch[sizedPayload]{Stream: fmt.Sprintf("s-%d", j), Expect: ExpectAny, Events: []Event[sizedPayload]{{Type: "t", Data: sized(150)}}})
		}
		if _, err := tl.AppendBatch(ctx, parts); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Compact(ctx, CompactOptions{Compress: true}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	names, _ := mem.List()
	var comp []string
	for _, n := range names {
		if !strings.HasSuffix(n, ".seg") {
			continue
		}
		s, err := segment.Open(mem, n)
		if err != nil {
			t.Fatal(err)
		}
		if s.Header.Flags&segment.FlagCompressed != 0 {
			comp = append(comp, n)
		}
		s.Close()
	}
	if len(comp) < 2 {
		t.Fatalf("%d compressed segments, want several", len(comp))
	}
	return mem, comp
}

// TestBlockCacheLog: the readers of a log share its block cache: a stream
// read a second time (by another iteration) reads nothing from the
// compressed segments; a full scan stays within BlockCacheSize.
func TestBlockCacheLog(t *testing.T) {
	mem, comp := compressedMemLog(t)
	ctx := t.Context()
	readAgg := func(l *Log) {
		t.Helper()
		n := 0
		for e, err := range l.Stream(ctx, "agg", 1) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; e.Version != uint64(n) {
				t.Fatalf("agg event %d has version %d", n, e.Version)
			}
		}
		if n != 50 {
			t.Fatalf("read %d events of agg, want 50", n)
		}
	}
	cnt := vfs.NewCounting(mem)
	l, err := openFS(cnt, Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	readAgg(l)
	cnt.Reset()
	readAgg(l)
	for _, name := range comp {
		// The stream's postings are read again (a few hundred bytes),
		// its blocks (compressed, over 10 KiB each) must not be.
		if got := cnt.File(name).BytesRead; got > 1024 {
			t.Errorf("reading agg again read %d bytes of %s: its blocks were not cached", got, name)
		}
	}
	l.Close()

	const limit = 100_000 // one block and a half
	l, err = openFS(mem, Options{BlockCacheSize: limit}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := len(readAll(t, l)); got != 5000 {
		t.Fatalf("scan read %d events, want 5000", got)
	}
	readAgg(l)
	if got := l.blocks.Size(); got > limit || got == 0 {
		t.Fatalf("block cache holds %d bytes; want some, at most BlockCacheSize %d", got, limit)
	}
}

// TestBlockCacheLogDamagedBlock: a damaged block of a compressed segment
// is corruption naming the file and the block's offset, every time it is
// read: it is not cached as good.
func TestBlockCacheLogDamagedBlock(t *testing.T) {
	mem, comp := compressedMemLog(t)
	name := comp[len(comp)-1]
	data := readMemFile(t, mem, name)
	data[segment.HeaderSize+segment.FrameHeaderSize+100] ^= 0x10 // in the first zblock
	if err := mem.WriteFile(name, data); err != nil {
		t.Fatal(err)
	}
	l, err := openFS(mem, Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for try := range 2 {
		var err error
		for _, err = range l.Events(t.Context(), 1) {
			if err != nil {
				break
			}
		}
		ce, ok := errors.AsType[*segment.CorruptError](err)
		if !ok || !errors.Is(err, ErrCorrupt) || ce.File != name || ce.Offset != segment.HeaderSize {
			t.Fatalf("scan %d: %v; want corruption of %s at offset %d", try, err, name, segment.HeaderSize)
		}
	}
}
