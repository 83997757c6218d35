package evlogcli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// TestSalvageMarkedSuccessorNotTorn: a writer closed right after a roll
// leaves a newest segment holding only a mark, written once the seal of
// the segment before it was fsynced. Damage at the end of that sealed
// segment is then damage to durable, acknowledged events, never a torn
// tail: salvage must not report the copy complete (as recovery and verify
// refuse to take it for one).
func TestSalvageMarkedSuccessorNotTorn(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "log")
	l, err := evlog.Open(dir, evlog.Options{SegmentSize: evlog.MinSegmentSize, Sync: evlog.SyncAlways})
	if err != nil {
		t.Fatal(err)
	}
	var segs []evlog.SegmentInfo
	for i := 0; len(segs) < 2; i++ {
		if _, err := l.Append(ctx, "s", evlog.ExpectAny, evlog.Envelope{Type: "t", Time: time.Unix(0, 0), Data: bytes.Repeat([]byte{byte(i)}, 100)}); err != nil {
			t.Fatal(err)
		}
		if segs, err = l.Segments(); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	old, newest := segs[0], segs[1]
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	ns, err := segment.Open(fsys, newest.File)
	if err != nil {
		t.Fatal(err)
	}
	nh := ns.Header
	ns.Close()
	nb, err := os.ReadFile(filepath.Join(dir, newest.File))
	if err != nil {
		t.Fatal(err)
	}
	nb = segment.AppendMarkFrame(nb[:segment.HeaderSize:segment.HeaderSize], nh, segment.HeaderSize, true)
	if err := os.WriteFile(filepath.Join(dir, newest.File), nb, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, segment.CheckpointName(newest.File))); err != nil {
		t.Fatal(err)
	}
	os2, err := segment.Open(fsys, old.File)
	if err != nil {
		t.Fatal(err)
	}
	recEnd := os2.Trailer.RecordsEnd
	os2.Close()
	ob, err := os.ReadFile(filepath.Join(dir, old.File))
	if err != nil {
		t.Fatal(err)
	}
	clear(ob[min(len(ob)-vfs.SectorSize, int(recEnd)-64):]) // the last sector, reaching into the records
	if err := os.WriteFile(filepath.Join(dir, old.File), ob, 0o600); err != nil {
		t.Fatal(err)
	}

	r := run1(t, "salvage", dir, filepath.Join(t.TempDir(), "new"), "--format", "json")
	var rep salvageReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("salvage: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if rep.Complete {
		t.Errorf("salvage reports the copy complete (%d of the %d acknowledged events copied; gaps %+v)", rep.Copied, old.Events, rep.Gaps)
	}
	for _, g := range rep.Gaps {
		if g.File == old.File && g.Torn {
			t.Errorf("salvage reports the damage in %s at %d as a torn tail", g.File, g.Offset)
		}
	}
}
