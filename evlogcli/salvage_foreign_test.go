package evlogcli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/segment"
)

// sealedBases returns the first seqs of dir's segments but the newest, by
// their names.
func sealedBases(t *testing.T, dir string) []uint64 {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*"+segment.Ext))
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, p := range segs[:len(segs)-1] {
		base, _, ok := segment.ParseFileName(filepath.Base(p))
		if !ok {
			t.Fatalf("%s: not a segment name", p)
		}
		out = append(out, base)
	}
	return out
}

// salvagedEvent is what salvage keeps of an event (seqs and versions are
// assigned afresh).
type salvagedEvent struct {
	Stream, Type string
	Data         []byte
	Time         int64
}

func logEvents(t *testing.T, dir string) []salvagedEvent {
	t.Helper()
	l, err := evlog.OpenReadOnly(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out []salvagedEvent
	for ev, err := range l.Events(t.Context(), 1) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, salvagedEvent{ev.Stream, ev.Type, ev.Data, ev.Time.UnixNano()})
	}
	return out
}

// TestSalvageForeignSegment: a segment of another log in the directory,
// named so that it sorts among the log's own, is never copied into the new
// log, whether its header is intact or damaged (then its log ID cannot be
// read from it): the new log holds exactly the log's events, and the
// foreign file is reported as one gap covering it. The log's own
// segments with a damaged header are still copied (the control rows).
func TestSalvageForeignSegment(t *testing.T) {
	t.Parallel()
	fs := newForeignLogs(t)
	logA, logB, basesB, mid, beyond := fs.logA, fs.logB, fs.basesB, fs.mid, fs.beyond
	want := logEvents(t, logA)
	collides := placement{from: logB, base: mid, asBase: mid, asGen: 1, foreign: true}
	// Seqs 1..120 are A's; B's segment's beyond them, under a name among
	// A's. Nothing in a zeroed header or in the file tells whose they
	// are: they may be the log's, so they are reported lost.
	beyondFit := placement{from: logB, base: beyond, asBase: mid + 1, foreign: true}
	own := placement{from: logA, base: mid, asBase: mid}
	flip, zero := flipHeader, zeroHeader
	for _, tc := range []struct {
		name    string
		place   placement
		corrupt func([]byte) // the header; nil: intact
		// lostUnknown: nothing tells whose the segment is, and its seqs
		// are not A's: they are reported lost.
		lostUnknown bool
	}{
		{name: "foreign/intact header/colliding", place: collides},
		{name: "foreign/intact header/beyond", place: beyondFit},
		{name: "foreign/created time/colliding", place: collides, corrupt: flip(48)},
		{name: "foreign/created time/beyond", place: beyondFit, corrupt: flip(48)},
		{name: "foreign/log ID/colliding", place: collides, corrupt: flip(20)},
		{name: "foreign/log ID/beyond", place: beyondFit, corrupt: flip(20), lostUnknown: true},
		{name: "foreign/zeroed/colliding", place: collides, corrupt: zero},
		{name: "foreign/zeroed/beyond", place: beyondFit, corrupt: zero, lostUnknown: true},
		{name: "own/created time", place: own, corrupt: flip(48)},
		{name: "own/log ID", place: own, corrupt: flip(20)},
		{name: "own/zeroed", place: own, corrupt: zero},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := tc.place
			dir, name, b := withSegment(t, logA, p, tc.corrupt)
			modes := []bool{false, true} // --skip-damaged
			if !p.foreign {
				// Without --skip-damaged the copy stops at the log's own
				// damaged header (the first damage), as ever.
				modes = modes[1:]
			}
			for _, skip := range modes {
				out := filepath.Join(t.TempDir(), "new")
				args := []string{"salvage", dir, out, "--format", "json"}
				if skip {
					args = append(args, "--skip-damaged")
				}
				r := run1(t, args...)
				var rep salvageReport
				if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
					t.Fatalf("%q: exit %d, not a JSON report: %v\n%s%s", args, r.code, err, r.stdout, r.stderr)
				}
				var gaps []gapJSON
				for _, g := range rep.Gaps {
					if g.File == name {
						g.Reason = ""
						gaps = append(gaps, g)
					}
				}
				wantGaps := []gapJSON{{File: name, Offset: 0, Length: segment.HeaderSize}} // the header, read on
				if p.foreign {
					wantGaps = []gapJSON{{File: name, Offset: 0, Length: int64(len(b))}} // the whole file, not copied
				}
				if tc.corrupt == nil && !p.foreign {
					wantGaps = nil
				}
				if diff := cmp.Diff(wantGaps, gaps); diff != "" {
					t.Errorf("%q: gaps reported in %s (-want +got):\n%s\n%s", args, name, diff, r.stdout)
				}
				var lost []seqRange
				for _, l := range rep.Lost {
					lost = append(lost, seqRange{From: l.From, To: l.To})
				}
				wantCode := 0
				var wantLost []seqRange
				if tc.lostUnknown {
					wantCode = 1
					last := basesB[slices.Index(basesB, beyond)+1] - 1
					wantLost = []seqRange{{From: beyond, To: last}}
				}
				if r.code != wantCode || rep.Complete != (wantCode == 0) {
					t.Errorf("%q: exit %d (complete %v), want %d\n%s%s", args, r.code, rep.Complete, wantCode, r.stdout, r.stderr)
				}
				if diff := cmp.Diff(wantLost, lost); diff != "" {
					t.Errorf("%q: lost seqs (-want +got):\n%s\n%s", args, diff, r.stdout)
				}
				if diff := cmp.Diff(want, logEvents(t, out)); diff != "" {
					t.Errorf("%q: the new log's events are not log A's (-want +got):\n%s\n%s", args, diff, r.stdout)
				}
			}
		})
	}
}

// foreignLogs are two logs, A and B, that differ in their events'
// streams, not in their layout: B's segments start at the same seqs as
// A's, and run beyond A's last seq 120.
type foreignLogs struct {
	logA, logB     string
	basesA, basesB []uint64 // the first seqs of their sealed segments
	mid            uint64   // a sealed segment of A in the middle (and one of B)
	beyond         uint64   // a sealed segment of B wholly beyond A's events
}

func newForeignLogs(t *testing.T) foreignLogs {
	t.Helper()
	tmp := t.TempDir()
	fs := foreignLogs{logA: filepath.Join(tmp, "a"), logB: filepath.Join(tmp, "b")}
	mustRun(t, "load", fs.logA, "--count", "120", "--size", "40", "--batch", "6", "--streams", "4", "--segment-size", "4096")
	mustRun(t, "load", fs.logB, "--count", "240", "--size", "40", "--batch", "6", "--streams", "5", "--segment-size", "4096")
	fs.basesA, fs.basesB = sealedBases(t, fs.logA), sealedBases(t, fs.logB)
	if len(fs.basesA) < 3 {
		t.Fatalf("log A has sealed segments at %v: want at least 3", fs.basesA)
	}
	fs.mid = fs.basesA[len(fs.basesA)/2]
	for _, b := range fs.basesB {
		if b > 120 {
			fs.beyond = b
			break
		}
	}
	if !slices.Contains(fs.basesB, fs.mid) || fs.beyond == 0 {
		t.Fatalf("log B's sealed segments start at %v: want one at %d and one after seq 120", fs.basesB, fs.mid)
	}
	return fs
}

// placement is a segment copied into log A's directory.
type placement struct {
	from    string // log holding the segment
	base    uint64 // its first seq there
	asBase  uint64 // the name it gets in A's directory
	asGen   uint64
	foreign bool
}

// flipHeader flips a bit of the header byte at off; zeroHeader zeroes the
// header.
func flipHeader(off int) func([]byte) {
	return func(b []byte) { b[off] ^= 0x01 }
}

func zeroHeader(b []byte) { clear(b[:segment.HeaderSize]) }

// withSegment returns a copy of logA's directory holding the segment p
// places in it, its header changed by corrupt (nil: intact), with the
// file's name and contents.
func withSegment(t *testing.T, logA string, p placement, corrupt func([]byte)) (dir, name string, b []byte) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "log")
	if err := os.CopyFS(dir, os.DirFS(logA)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(p.from, segment.FormatFileName(p.base, 0)))
	if err != nil {
		t.Fatal(err)
	}
	if corrupt != nil {
		corrupt(b)
	}
	name = segment.FormatFileName(p.asBase, p.asGen)
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, name, b
}
