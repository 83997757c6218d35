package evlogcli

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/segment"
)

// logWithBadMarker returns a log whose deletion marker (deleting stream
// del-1) checksums but does not decode: its Data's first byte is 0xc1,
// never valid msgpack (a writer bug, or a hostile file with a recomputed
// checksum). It returns the segment file's name and the marker frame's
// offset.
func logWithBadMarker(t *testing.T) (dir, file string, off int64) {
	t.Helper()
	ctx := context.Background()
	dir = filepath.Join(t.TempDir(), "log")
	l, err := evlog.Open(dir, evlog.Options{Sync: evlog.SyncNever, Clock: func() time.Time { return testEpoch }})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"del-1", "keep-1"} {
		for range 2 {
			if _, err := l.Append(ctx, s, evlog.ExpectAny, evlog.Envelope{Type: "t", Data: mpStr(s)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, _, err := l.DeleteStream(ctx, "del-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "keep-1", evlog.ExpectAny, evlog.Envelope{Type: "t", Data: mpStr("after")}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	file, off = patchEventData(t, dir, evlog.DeletionsStream, 0)
	return dir, file, off
}

// patchEventData makes the Data of the event of stream at seq (0: its
// first event) in the log in dir (closed) invalid msgpack: its first byte becomes 0xc1, never
// valid, and the frame's checksum is recomputed, so that the frame
// checksums but its Data does not decode (a writer bug, or a hostile
// file). It removes the checkpoints (which would find the segment's
// bytes changed: the event was written so, not damaged after the
// checkpoint) and returns the segment file's name and the frame's offset.
func patchEventData(t *testing.T, dir, stream string, seq uint64) (file string, off int64) {
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
		r := segment.NewReader(bytes.NewReader(b), segment.HeaderSize, int64(len(b)))
		var dec segment.Decoder
		for {
			f, err := r.Next()
			if err != nil {
				break
			}
			var ev event.Envelope
			if f.Kind != segment.KindEvent || dec.Decode(f.Payload, &ev) != nil || ev.Stream != stream || (seq != 0 && ev.Seq != seq) {
				continue
			}
			i := bytes.Index(f.Payload, ev.Data)
			if i < 0 {
				t.Fatalf("the Data of the %s event is not in its frame", stream)
			}
			fb := b[f.Offset : f.Offset+f.Size()]
			fb[segment.FrameHeaderSize+i] = 0xc1
			binary.LittleEndian.PutUint32(fb, crc32.Checksum(fb[4:], crc32.MakeTable(crc32.Castagnoli)))
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			ckpts, _ := filepath.Glob(filepath.Join(dir, "*.ckpt"))
			for _, c := range ckpts {
				if err := os.Remove(c); err != nil {
					t.Fatal(err)
				}
			}
			return filepath.Base(p), f.Offset
		}
	}
	t.Fatalf("no event of %s at seq %d found", stream, seq)
	return "", 0
}

// TestSalvageNamesBadMarker: a deletion marker that checksums but does
// not decode is damage, reported like any other: a gap naming the segment
// file and the marker frame's offset, and its seq lost (what it deleted
// cannot be known, so its events may be copied back). Without
// --skip-damaged copying stops there.
func TestSalvageNamesBadMarker(t *testing.T) {
	t.Parallel()
	dir, file, off := logWithBadMarker(t)
	// seqs: 1, 2 del-1; 3, 4 keep-1; 5 the marker; 6 keep-1.
	tests := []struct {
		args   []string
		copied int
		lost   []seqRange
	}{
		{nil, 4, []seqRange{{From: 5, To: 6}}},
		{[]string{"--skip-damaged"}, 5, []seqRange{{From: 5, To: 5}}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.args), func(t *testing.T) {
			args := append([]string{"salvage", dir, filepath.Join(t.TempDir(), "salvaged"), "--format", "json"}, tc.args...)
			r := run1(t, args...)
			checkNoPanic(t, args, r)
			if r.code != 1 {
				t.Errorf("exit %d, want 1:\n%s%s", r.code, r.stdout, r.stderr)
			}
			checkOneGapReport(t, r, tc.copied, file, off, tc.lost)
		})
	}
}

// checkOneGapReport checks salvage's JSON report in r: incomplete, copied
// events copied, one gap at file and off, and the lost seq ranges lost.
func checkOneGapReport(t *testing.T, r result, copied int, file string, off int64, lost []seqRange) {
	t.Helper()
	var rep salvageReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("exit %d: %v:\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if rep.Complete || rep.Copied != copied {
		t.Errorf("complete %v, copied %d; want false, %d:\n%s", rep.Complete, rep.Copied, copied, r.stdout)
	}
	var gaps []gapJSON
	for _, g := range rep.Gaps {
		gaps = append(gaps, gapJSON{File: g.File, Offset: g.Offset})
	}
	if d := cmp.Diff([]gapJSON{{File: file, Offset: off}}, gaps); d != "" {
		t.Errorf("gaps (-want +got):\n%s\n%s", d, r.stdout)
	}
	var got []seqRange
	for _, l := range rep.Lost {
		got = append(got, seqRange{From: l.From, To: l.To})
	}
	if d := cmp.Diff(lost, got); d != "" {
		t.Errorf("lost (-want +got):\n%s\n%s", d, r.stdout)
	}
}
