package evlogcli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evlog/evlog/segment"
)

// TestSalvageCompressedDamagedTrailer: a compressed segment (compact
// --compress) whose trailer is damaged is salvaged by finding its blocks
// without the trailer and the block map it locates: every event is
// copied, none is reported lost, not one gap for the whole segment.
func TestSalvageCompressedDamagedTrailer(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "log")
	makeLog(t, dir, false) // 150 events, the first 120 compacted and compressed
	damaged := damageCompressedSegment(t, dir, func(b []byte) {
		b[len(b)-segment.TrailerSize+9] ^= 0xff // the records end field
	})
	out := filepath.Join(t.TempDir(), "salvaged")
	r := run1(t, "salvage", dir, out)
	checkNoPanic(t, []string{"salvage"}, r)
	if r.code != 0 || !strings.Contains(r.stdout, "copied 150 events (seqs 1..150)") {
		t.Fatalf("salvage of a log whose compressed segment %s has a damaged trailer: exit %d, want 0 with every event copied:\n%s%s",
			damaged, r.code, r.stdout, r.stderr)
	}
}

// damageCompressedSegment applies damage to the bytes of the first
// compressed segment of the log in dir (makeLog's: 120 events compacted
// and compressed), writes them back and returns the file's name.
func damageCompressedSegment(t *testing.T, dir string, damage func(b []byte)) string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range segs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		h, err := segment.DecodeHeader(b[:segment.HeaderSize])
		if err != nil || h.Flags&segment.FlagCompressed == 0 {
			continue
		}
		damage(b)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return filepath.Base(p)
	}
	t.Fatal("makeLog wrote no compressed segment")
	return ""
}
