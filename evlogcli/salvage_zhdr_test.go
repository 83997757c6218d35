package evlogcli

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestSalvageCompressedDamagedHeader: a compressed segment (compact
// --compress) whose header is damaged, so that its compressed flag cannot
// be trusted, is recognised as compressed from its blocks and salvaged
// through them: with --skip-damaged every event is copied and none is
// reported lost; the header itself is a gap at offset 0.
func TestSalvageCompressedDamagedHeader(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "log")
	makeLog(t, dir, false) // 150 events, the first 120 compacted and compressed
	damaged := damageCompressedSegment(t, dir, func(b []byte) {
		b[10] ^= 0x01 // the flags: the compressed bit cleared, the checksum fails
	})
	out := filepath.Join(t.TempDir(), "salvaged")
	r := run1(t, "salvage", dir, out, "--skip-damaged")
	checkNoPanic(t, []string{"salvage"}, r)
	if r.code != 0 || !strings.Contains(r.stdout, "copied 150 events (seqs 1..150)") ||
		!strings.Contains(r.stdout, "gap "+damaged+" 0 64 bad header: ") || strings.Contains(r.stdout, "lost ") {
		t.Fatalf("salvage --skip-damaged of a log whose compressed segment %s has a damaged header: exit %d, want 0 with every event copied and the header reported:\n%s%s",
			damaged, r.code, r.stdout, r.stderr)
	}
}
