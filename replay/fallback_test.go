package replay_test

import (
	"encoding/binary"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// fixture is a closed log of fixtureEvents events over streams "a" and
// "b", recorded one millisecond apart, with usable snapshots of the whole
// log (at goodSeq) and of stream "a" (at its last event at or before
// goodSeq).
type fixture struct {
	dir    string
	logID  [16]byte
	events []event.Envelope
}

const (
	fixtureEvents = 120
	goodSeq       = 40
	badSeq        = 90 // where the cases put the newer, unusable snapshot
)

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	l := openRW(t, dir, evlog.Options{SegmentSize: evlog.MinSegmentSize, Sync: evlog.SyncNever})
	for i := range fixtureEvents {
		stream := "a"
		if i%3 == 1 {
			stream = "b"
		}
		qty := 1 + i%4
		if i%5 == 4 {
			qty = -1
		}
		appendItems(t, l, stream, t0.Add(time.Duration(i)*time.Millisecond), item{Name: itemNames[i%len(itemNames)], Qty: qty})
	}
	f := fixture{dir: dir, logID: l.LogID(), events: readAll(t, l)}
	store := snapshots(t, l)
	saveStats(t, store, f.logID, statsSubject, f.events, goodSeq)
	if _, ok := saveCart(t, store, f.logID, "a", f.events, goodSeq); !ok {
		t.Fatal("no snapshot of stream a")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

// clone copies the fixture's directory into a new one.
func (f fixture) clone(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir(f.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range ents {
		b, err := os.ReadFile(filepath.Join(f.dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, de.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f.dir = dir
	return f
}

// lastOf returns the seq of stream's last event at or before seq.
func (f fixture) lastOf(stream string, seq int) int {
	for s := seq; s > 0; s-- {
		if f.events[s-1].Stream == stream {
			return s
		}
	}
	return 0
}

// editFile applies edit to the bytes of file in dir.
func editFile(t *testing.T, dir, file string, edit func([]byte) []byte) {
	t.Helper()
	p := filepath.Join(dir, file)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, edit(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// resealSnapshot recomputes a snapshot file's header and file checksums
// (see snapshot/doc.go), so an edit of a field is not caught by them.
func resealSnapshot(b []byte) []byte {
	h := int(binary.LittleEndian.Uint32(b[12:]))
	binary.LittleEndian.PutUint32(b[h-4:], crc32.Checksum(b[:h-4], castagnoli))
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
	return b
}

func snapHeaderLen(b []byte) int { return int(binary.LittleEndian.Uint32(b[12:])) }

// TestFallback covers each kind of unusable snapshot: replay falls back to
// the older usable one, reports the fallback (in the plan and through the
// logger), computes the same state as a full replay, and modifies nothing
// on the read path (the log is opened read-only).
func TestFallback(t *testing.T) {
	const beyondEnd = "seq beyond the end of the log"
	base := newFixture(t)
	other := newOtherLog(t)
	saveAt := func(seq int) func(t *testing.T, f fixture) string {
		return func(t *testing.T, f fixture) string {
			return saveStats(t, rawStore(t, f.dir), f.logID, statsSubject, f.events, seq).File
		}
	}
	statsWith := func(edit func([]byte) []byte) func(t *testing.T, f fixture) string {
		return func(t *testing.T, f fixture) string {
			file := saveAt(badSeq)(t, f)
			editFile(t, f.dir, file, edit)
			return file
		}
	}
	tests := []struct {
		name    string
		subject replay.Subject
		// bad adds the unusable snapshot, newer than the usable one, and
		// returns its file name.
		bad func(t *testing.T, f fixture) string
	}{
		{"payload byte flipped", statsSubject, statsWith(func(b []byte) []byte {
			b[snapHeaderLen(b)+(len(b)-snapHeaderLen(b)-4)/2] ^= 0x10
			return b
		})},
		{"file checksum flipped", statsSubject, statsWith(func(b []byte) []byte { b[len(b)-1] ^= 1; return b })},
		{"header byte flipped", statsSubject, statsWith(func(b []byte) []byte { b[50] ^= 0x01; return b })},
		{"header checksum flipped", statsSubject, statsWith(func(b []byte) []byte { b[snapHeaderLen(b)-2] ^= 0x80; return b })},
		{"truncated to half", statsSubject, statsWith(func(b []byte) []byte { return b[:len(b)/2] })},
		{"truncated by one byte", statsSubject, statsWith(func(b []byte) []byte { return b[:len(b)-1] })},
		{"one byte appended", statsSubject, statsWith(func(b []byte) []byte { return append(b, 0) })},
		{"zero-length", statsSubject, statsWith(func(b []byte) []byte { return nil })},
		{"format version 4", statsSubject, statsWith(func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[8:], 4)
			return resealSnapshot(b)
		})},
		{"unknown flag", statsSubject, statsWith(func(b []byte) []byte {
			binary.LittleEndian.PutUint16(b[10:], 1)
			return resealSnapshot(b)
		})},
		{"stale schema version", statsSubject, func(t *testing.T, f fixture) string {
			subj := statsSubject
			subj.SchemaVersion--
			res := replay.Result[stats]{State: stats{Events: -1}, Seq: badSeq, Time: f.events[badSeq-1].Time}
			m, _, err := replay.Save(t.Context(), rawStore(t, f.dir), f.logID, subj, statsSpec, res)
			if err != nil {
				t.Fatal(err)
			}
			return m.File
		}},
		{"another log's snapshot", statsSubject, func(t *testing.T, f fixture) string {
			// The other log's snapshot at the same seq, under the name
			// this log's would have.
			file := snapshot.FormatFileName(statsSubject.Name, badSeq)
			b, err := os.ReadFile(filepath.Join(other, file))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(f.dir, file), b, 0o644); err != nil {
				t.Fatal(err)
			}
			return file
		}},
		{beyondEnd, statsSubject, func(t *testing.T, f fixture) string {
			last := f.events[len(f.events)-1]
			m, err := rawStore(t, f.dir).Save(t.Context(), snapshot.Meta{Name: statsSubject.Name, LogID: f.logID, Seq: last.Seq + 50,
				Time: last.Time.Add(time.Second), SchemaVersion: statsSubject.SchemaVersion}, []byte{0x80})
			if err != nil {
				t.Fatal(err)
			}
			return m.File
		}},
		{"time differs from its last event's", statsSubject, func(t *testing.T, f fixture) string {
			res := replay.Result[stats]{State: refStats(f.events, badSeq), Seq: badSeq, Time: f.events[badSeq-1].Time.Add(time.Millisecond / 2)}
			m, _, err := replay.Save(t.Context(), rawStore(t, f.dir), f.logID, statsSubject, statsSpec, res)
			if err != nil {
				t.Fatal(err)
			}
			return m.File
		}},
		{"stream snapshot: payload byte flipped", cartSubject("a"), func(t *testing.T, f fixture) string {
			m, ok := saveCart(t, rawStore(t, f.dir), f.logID, "a", f.events, badSeq)
			if !ok {
				t.Fatal("not saved")
			}
			editFile(t, f.dir, m.File, func(b []byte) []byte { b[len(b)-6] ^= 4; return b })
			return m.File
		}},
		{"stream snapshot: anchored at another stream's event", cartSubject("a"), func(t *testing.T, f fixture) string {
			seq := f.lastOf("b", badSeq)
			res := replay.Result[cart]{State: refCart(t, f.events, "a", seq), Seq: uint64(seq), Time: f.events[seq-1].Time}
			m, _, err := replay.Save(t.Context(), rawStore(t, f.dir), f.logID, cartSubject("a"), cartSpec, res)
			if err != nil {
				t.Fatal(err)
			}
			return m.File
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := base.clone(t)
			bad := tt.bad(t, f)
			// Leftover temporaries: a read path must not clean them up.
			for _, tmp := range []string{snapshot.FormatFileName("stats", 7) + ".tmp", "00000000000000000099-00000000.seg.tmp"} {
				if err := os.WriteFile(filepath.Join(f.dir, tmp), []byte("leftover"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			backdate(t, f.dir)
			before := dirHashes(t, f.dir)

			var logLog, replayLog captureLog
			ro := openRO(t, f.dir, evlog.Options{Logger: slog.New(&logLog)})
			store := snapshots(t, ro)
			opts := replay.Options{Logger: slog.New(&replayLog)}
			targets := []target{{replay.Latest(), fixtureEvents, "latest"}, {replay.AtSeq(badSeq + 5), badSeq + 5, "seq 95"},
				{replay.AtTime(f.events[badSeq].Time), badSeq + 1, "time of seq 91"}}
			if tt.name == beyondEnd {
				// Only the latest target is at or after its seq.
				targets = targets[:1]
			}
			for _, tg := range targets {
				switch tt.subject.Stream {
				case "":
					checkFallback(t, ro, store, tt.subject, statsSpec, tg, goodSeq, bad, opts, refStats(f.events, tg.cut))
				default:
					checkFallback(t, ro, store, tt.subject, cartSpec, tg, f.lastOf("a", goodSeq), bad, opts, refCart(t, f.events, "a", tg.cut))
				}
			}
			if w := replayLog.warnings(); !slices.ContainsFunc(w, func(s string) bool { return strings.HasSuffix(s, "file="+bad) }) {
				t.Errorf("no warning about %s through replay.Options.Logger; got %q (the log's logger got %q)", bad, w, logLog.warnings())
			}
			if err := ro.Close(); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, dirHashes(t, f.dir)); diff != "" {
				t.Errorf("the read path modified the directory (-before +after):\n%s", diff)
			}
		})
	}
}

// checkFallback checks that the state at tg uses the snapshot at useSeq,
// reports bad among the fallbacks, and equals want and a full replay.
func checkFallback[S, E any](t *testing.T, src *evlog.Log, store *snapshot.Store, subj replay.Subject, spec replay.Spec[S, E], tg target, useSeq int, bad string, opts replay.Options, want S) {
	t.Helper()
	ctx := t.Context()
	p, err := replay.MakePlan(ctx, src, store, subj, tg.t, opts)
	if err != nil {
		t.Fatalf("%s: MakePlan: %v", tg.desc, err)
	}
	if p.Snapshot == nil || p.Snapshot.Seq != uint64(useSeq) {
		t.Errorf("%s: plan uses snapshot %v, want the one at seq %d", tg.desc, p.Snapshot, useSeq)
	}
	i := slices.IndexFunc(p.Fallbacks, func(f replay.Fallback) bool { return f.File == bad })
	switch {
	case i < 0:
		t.Errorf("%s: the unusable snapshot %s is not reported: fallbacks %+v", tg.desc, bad, p.Fallbacks)
	case p.Fallbacks[i].Reason == "":
		t.Errorf("%s: fallback %+v has no reason", tg.desc, p.Fallbacks[i])
	default:
		t.Logf("%s: fallback reason: %s", tg.desc, p.Fallbacks[i].Reason)
	}
	got, err := replay.Run(ctx, src, p, spec)
	if err != nil {
		t.Fatalf("%s: Run: %v", tg.desc, err)
	}
	full, err := replay.State(ctx, src, store, subj, tg.t, spec, replay.Options{NoSnapshot: true})
	if err != nil {
		t.Fatalf("%s: full replay: %v", tg.desc, err)
	}
	if diff := cmp.Diff(want, got.State, stateCmp); diff != "" {
		t.Errorf("%s: state differs from the reference (-want +got):\n%s", tg.desc, diff)
	}
	if diff := cmp.Diff(full.State, got.State, stateCmp); diff != "" {
		t.Errorf("%s: state differs from a full replay (-full +got):\n%s", tg.desc, diff)
	}
	if got.Seq != full.Seq || !got.Time.Equal(full.Time) {
		t.Errorf("%s: result ends at seq %d (%v), a full replay at %d (%v)", tg.desc, got.Seq, got.Time, full.Seq, full.Time)
	}
}

// newOtherLog builds another log (another log ID, other events) with a
// snapshot of the whole log at badSeq, and returns its directory.
func newOtherLog(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	l := openRW(t, dir, evlog.Options{Sync: evlog.SyncNever})
	for i := range fixtureEvents {
		appendItems(t, l, "z", t0.Add(time.Duration(i)*time.Millisecond), item{Name: "other", Qty: 7})
	}
	saveStats(t, snapshots(t, l), l.LogID(), statsSubject, readAll(t, l), badSeq)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}
