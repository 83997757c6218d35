package evlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// TestBadMarkerNamesFileAndOffset: a deletion marker that checksums but
// does not decode is corruption named like any other: a
// *segment.CorruptError with the segment file and the marker frame's
// offset (and the seq before it), not the marker's seq alone.
func TestBadMarkerNamesFileAndOffset(t *testing.T) {
	mem, want := memLogWithBadMarker(t, 0)
	for _, readOnly := range []bool{true, false} {
		l, err := openFS(mem, Options{}, readOnly)
		if err != nil {
			t.Fatalf("readOnly=%v: %v", readOnly, err)
		}
		_, err = readAllErr(l)
		l.Close()
		ce, ok := errors.AsType[*segment.CorruptError](err)
		if !ok || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("readOnly=%v: reading past the marker: %v, want a *segment.CorruptError", readOnly, err)
		}
		got := segment.CorruptError{File: ce.File, Offset: ce.Offset, Seq: ce.Seq}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("readOnly=%v: %v: (-want +got):\n%s", readOnly, err, d)
		}
	}
}

// memLogWithBadMarker returns a log in memory whose deletion marker
// (deleting stream del-1) checksums but does not decode: its Data's first
// byte is 0xc1, never valid msgpack (a writer bug, or a hostile file with
// a recomputed checksum). Seqs: 1, 2 del-1; 3, 4 keep-1; 5 the marker;
// then after events of about 2 KiB in keep-1, enough to seal the marker's
// segment when after >= 2 (SegmentSize is MinSegmentSize). want names the
// marker's segment, the marker frame's offset and the seq before it.
func memLogWithBadMarker(t *testing.T, after int) (*vfs.Mem, segment.CorruptError) {
	t.Helper()
	ctx := t.Context()
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{Sync: SyncNever, Clock: fakeClock(t0, 0), SegmentSize: MinSegmentSize})
	for _, s := range []string{"del-1", "keep-1"} {
		if _, err := l.Append(ctx, s, ExpectAny, Envelope{Type: "t"}, Envelope{Type: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	mpos, _, err := l.DeleteStream(ctx, "del-1")
	if err != nil {
		t.Fatal(err)
	}
	for range after {
		if _, err := l.Append(ctx, "keep-1", ExpectAny, Envelope{Type: "t", Data: append([]byte{0xda, 0x07, 0xd0}, bytes.Repeat([]byte("x"), 2000)...)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The marker's Data gets 0xc1 (never valid msgpack) as its first byte,
	// and its frame a recomputed checksum: written so, not damaged after.
	names, err := mem.List()
	if err != nil {
		t.Fatal(err)
	}
	var want segment.CorruptError
	for _, name := range names {
		if strings.HasSuffix(name, ".ckpt") {
			if err := mem.Remove(name); err != nil { // it would find the bytes changed
				t.Fatal(err)
			}
			continue
		}
		if !strings.HasSuffix(name, ".seg") {
			continue
		}
		b, err := mem.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		r := segment.NewReader(bytes.NewReader(b), segment.HeaderSize, int64(len(b)))
		var dec segment.Decoder
		for {
			f, err := r.Next()
			if err != nil {
				break
			}
			var ev Envelope
			if f.Kind != segment.KindEvent || dec.Decode(f.Payload, &ev) != nil || ev.Seq != mpos.Seq {
				continue
			}
			fb := b[f.Offset : f.Offset+f.Size()]
			fb[segment.FrameHeaderSize+bytes.Index(f.Payload, ev.Data)] = 0xc1
			binary.LittleEndian.PutUint32(fb, crc32.Checksum(fb[4:], crc32.MakeTable(crc32.Castagnoli)))
			want = segment.CorruptError{File: name, Offset: f.Offset, Seq: mpos.Seq - 1} // Seq: the last valid event before it
		}
		if want.File == name {
			if err := mem.WriteFile(name, b); err != nil {
				t.Fatal(err)
			}
		}
	}
	if want.File == "" {
		t.Fatal("the marker was not found")
	}
	return mem, want
}
