package segment

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestEachStream: a sealed segment's EachStream and the in-memory index's
// agree on every stream with the prefix, with the entries Lookup returns;
// a damaged block frame is a CorruptError at that frame.
func TestEachStream(t *testing.T) {
	img, sealed, _ := sealedImage(t, 5)
	name := FormatFileName(1, 0)
	s, _ := openMem(t, name, sealed)
	x := img.index(len(img.batches))
	for _, prefix := range []string{"", "order-", "order-1", "nosuch"} {
		var fromFile []string
		err := s.EachStream(prefix, func(n string, e StreamEntry) error {
			want, ok, err := s.Lookup(n)
			if !ok || err != nil || want != e {
				t.Errorf("%q: EachStream entry %+v, Lookup %+v %v %v", n, e, want, ok, err)
			}
			fromFile = append(fromFile, n)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var fromIndex []string
		if err := x.EachStream(prefix, func(n string, sp StreamPostings) { fromIndex = append(fromIndex, n) }); err != nil {
			t.Fatal(err)
		}
		slices.Sort(fromFile)
		slices.Sort(fromIndex)
		if d := cmp.Diff(fromIndex, fromFile); d != "" {
			t.Errorf("prefix %q: file vs index (-index +file):\n%s", prefix, d)
		}
		for _, n := range fromFile {
			if !strings.HasPrefix(n, prefix) {
				t.Errorf("prefix %q: got %q", prefix, n)
			}
		}
		if prefix == "" && len(fromFile) != x.Streams() {
			t.Errorf("%d streams, want %d", len(fromFile), x.Streams())
		}
	}
	sum, err := s.Summary()
	if err != nil {
		t.Fatal(err)
	}
	if sum.BlockBytes() <= 0 {
		t.Fatalf("BlockBytes = %d", sum.BlockBytes())
	}
	off := sum.blocks[len(sum.blocks)-1].off
	bad := bytes.Clone(sealed)
	bad[off+FrameHeaderSize+3] ^= 0x10
	s, _ = openMem(t, name, bad)
	wantCorrupt(t, s.EachStream("", func(string, StreamEntry) error { return nil }), name, off)
}
