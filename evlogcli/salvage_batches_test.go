package evlogcli

import (
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evlog/evlog/segment"
)

// TestSalvageWholeBatches: a committed batch (seqs 1001..2000, in a sealed
// segment) holds an event whose frame checksums but does not decode.
// salvage copies whole committed batches only — seqs 1..1000, not the 227
// readable events of the damaged batch — and reports the damage as
// corruption (exit 1), never as a torn tail.
func TestSalvageWholeBatches(t *testing.T) {
	for _, tc := range []struct {
		name      string
		base, bad uint64 // the damaged segment's first seq, the undecodable event
		copied    string
	}{
		{"sealed segment", 1001, 1228, "copied 1000 events (seqs 1..1000)"},
		{"newest segment", 2001, 2228, "copied 2000 events (seqs 1..2000)"},
	} {
		t.Run(tc.name, func(t *testing.T) { salvageUndecodable(t, tc.base, tc.bad, tc.copied) })
	}
}

func salvageUndecodable(t *testing.T, base, bad uint64, copied string) {
	dir := filepath.Join(t.TempDir(), "log")
	if r := run1(t, "load", dir, "--count", "3000", "--batch", "1000", "--size", "60", "--segment-size", "16384"); r.code != 0 {
		t.Fatalf("load: %s", r.stderr)
	}
	// Find seq 1228's frame and make its payload undecodable, with a valid
	// frame checksum.
	name := segment.FormatFileName(base, 0)
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	off, seq := int64(segment.HeaderSize), base-1
	for {
		n := int64(binary.LittleEndian.Uint32(b[off+4:]))
		if segment.Kind(b[off+8]) == segment.KindEvent {
			if seq++; seq == bad {
				p := b[off+segment.FrameHeaderSize : off+segment.FrameHeaderSize+n]
				p[0] = 0xc1 // never used by msgpack
				binary.LittleEndian.PutUint32(b[off:], crc32.Checksum(b[off+4:off+segment.FrameHeaderSize+n], crc32.MakeTable(crc32.Castagnoli)))
				break
			}
		}
		off += segment.FrameHeaderSize + n
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "salvaged")
	r := run1(t, "salvage", dir, out)
	if r.code != 1 {
		t.Fatalf("salvage: exit %d, want 1 (events lost)\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stdout, "torn-tail") {
		t.Errorf("salvage called a committed, undecodable batch a torn tail:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, copied) {
		t.Errorf("salvage did not copy exactly the whole batches before the damage:\n%s", r.stdout)
	}
	if d := run1(t, "dump", out, "--format", "jsonl"); d.code != 0 || uint64(len(splitLines(d.stdout))) != base-1 {
		t.Errorf("the salvaged log: exit %d, %d events, want %d", d.code, len(splitLines(d.stdout)), base-1)
	}
	if v := run1(t, "verify", dir); v.code != 1 {
		t.Errorf("verify of a log with a committed, undecodable event: exit %d, want 1\n%s", v.code, v.stdout)
	}
}
