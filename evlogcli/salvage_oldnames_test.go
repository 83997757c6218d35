package evlogcli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// oldLogVersion is oldLog for a segment of format version 1 or 2 (the
// versions written before the name rule, docs/FORMAT.md "Names"): each
// event is its own committed batch, followed in version 2 by the mark
// frame a writer leaves after an fsync. The frame of events[damage] (none
// if damage < 0) has a byte flipped.
func oldLogVersion(t *testing.T, version uint16, events []event.Envelope, damage int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "old")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	f, hb, err := segment.Create(fsys, segment.Header{Version: version, LogID: segment.LogID{0x02, 15: 0x6e}, BaseSeq: 1, Created: testEpoch})
	if err != nil {
		t.Fatal(err)
	}
	h, err := segment.DecodeHeader(hb[:])
	if err != nil {
		t.Fatal(err)
	}
	var buf []byte
	end, durable := int64(segment.HeaderSize), int64(segment.HeaderSize)
	for i := range events {
		buf = segment.AppendEventFrame(buf[:0], &events[i])
		if i == damage {
			buf[len(buf)-1] ^= 0xff
		}
		buf = segment.AppendCommitFrame(buf, segment.Commit{FirstSeq: events[i].Seq, Count: 1, DurableEnd: durable})
		if version >= 2 {
			durable = end + int64(len(buf))
			buf = segment.AppendMarkFrame(buf, h, durable, false)
		} else {
			durable = end + int64(len(buf))
		}
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
		end += int64(len(buf))
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSalvageCopiesOldNames: evlog versions before the name rule (segment
// format versions 1 and 2) stored stream names and event types holding
// any bytes — control characters, line separators, bidirectional
// formatting characters, invalid UTF-8 — within the length limits, which
// always applied. They are the user's data: salvage copies such events
// as they are, through the log and frame by frame, instead of failing
// with ErrInvalid on the first one; appends to the new log keep refusing
// such names.
func TestSalvageCopiesOldNames(t *testing.T) {
	t.Parallel()
	at := func(i int) time.Time { return testEpoch.Add(time.Duration(i) * time.Second) }
	names := []string{
		"tab\tname", "new\nline", "nul\x00byte", "cr\rlf", "esc\x1b[2J", "del\x7f",
		"c1\u0085", "ls\u2028", "ps\u2029", "rlo\u202eevil", "lri\u2066", "alm\u061c",
		"bad utf-8 \xff", "truncated \xe2\x82", "surrogate \xed\xa0\x80",
	}
	var events []event.Envelope
	seq := uint64(0)
	add := func(stream, typ string, version uint64) {
		seq++
		events = append(events, event.Envelope{Seq: seq, Stream: stream, Version: version, Type: typ, SchemaVersion: 1, Time: at(int(seq)), Data: mpStr(fmt.Sprint(seq))})
	}
	add("order-1", "placed", 1)
	for i, n := range names {
		add("order-"+n, "placed", 1)   // in the stream
		add("order-1", n, uint64(i+2)) // in the type
		add(n, "t\t"+n, 1)             // in both
	}
	add("order-1", "shipped", uint64(len(names)+2))
	tests := []struct {
		name    string
		version uint16
		damage  int // the event whose frame is damaged (-1: none)
		args    []string
		code    int
	}{
		{"v1 through the log", 1, -1, nil, 0},
		{"v2 through the log", 2, -1, nil, 0},
		// A damaged log frame by frame: all but the damaged event.
		{"v1 frame by frame", 1, 0, []string{"--skip-damaged"}, 1},
		{"v2 frame by frame", 2, 0, []string{"--skip-damaged"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := oldLogVersion(t, tc.version, events, tc.damage)
			want := slices.Clone(events)
			if tc.damage >= 0 {
				want = slices.Delete(want, tc.damage, tc.damage+1)
			}
			out := filepath.Join(t.TempDir(), "salvaged")
			args := append([]string{"salvage", dir, out}, tc.args...)
			r := run1(t, args...)
			checkNoPanic(t, args, r)
			if r.code != tc.code || !strings.Contains(r.stdout, fmt.Sprintf("copied %d events", len(want))) {
				t.Fatalf("salvage of a version %d log with names from before the name rule: exit %d, want %d:\n%s%s", tc.version, r.code, tc.code, r.stdout, r.stderr)
			}
			l, err := evlog.Open(out, evlog.Options{Sync: evlog.SyncNever})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var got []evlog.Envelope
			for ev, err := range l.Events(t.Context(), 1) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, ev)
			}
			// Seqs and versions are assigned afresh by the new log.
			ignore := cmpopts.IgnoreFields(evlog.Envelope{}, "Seq", "Version")
			if d := cmp.Diff(want, got, ignore, cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(0)); d != "" {
				t.Errorf("salvaged events (-want +got):\n%s", d)
			}
			// Every stream reads by its name.
			for _, n := range names {
				var types []string
				for ev, err := range l.Stream(t.Context(), n, 1) {
					if err != nil {
						t.Fatal(err)
					}
					types = append(types, ev.Type)
				}
				if d := cmp.Diff([]string{"t\t" + n}, types); d != "" {
					t.Errorf("stream %q of the salvaged log (-want +got):\n%s", n, d)
				}
			}
			// The name rule still holds for appends.
			if _, err := l.Append(t.Context(), names[0], evlog.ExpectAny, evlog.Envelope{Type: "t", Data: mpStr("f")}); !errors.Is(err, evlog.ErrInvalid) {
				t.Errorf("append to stream %q of the salvaged log: %v, want ErrInvalid", names[0], err)
			}
			if _, err := l.Append(t.Context(), "order-1", evlog.ExpectAny, evlog.Envelope{Type: names[1], Data: mpStr("f")}); !errors.Is(err, evlog.ErrInvalid) {
				t.Errorf("append of type %q to the salvaged log: %v, want ErrInvalid", names[1], err)
			}
		})
	}
}

// TestSalvageReportsOldSystemStreamNames: an evlog before stream deletion
// (segment format versions 1 and 2) accepted user streams whose names
// start with "$$", reserved for evlog's system streams since. The new log
// cannot hold them (an append refuses them; its readers would take them
// for system events), so salvage copies everything else and reports each
// such event as lost — seq, segment file, frame offset and why — with exit
// status 1, instead of leaving it out silently as a system event.
func TestSalvageReportsOldSystemStreamNames(t *testing.T) {
	t.Parallel()
	at := func(i int) time.Time { return testEpoch.Add(time.Duration(i) * time.Second) }
	events := []event.Envelope{
		{Seq: 1, Stream: "order-1", Version: 1, Type: "placed", SchemaVersion: 1, Time: at(1), Data: mpStr("a")},
		{Seq: 2, Stream: "$$mine", Version: 1, Type: "t", SchemaVersion: 1, Time: at(2), Data: mpStr("b")},
		{Seq: 3, Stream: "order-1", Version: 2, Type: "shipped", SchemaVersion: 1, Time: at(3), Data: mpStr("c")},
		{Seq: 4, Stream: "$$mine", Version: 2, Type: "t", SchemaVersion: 1, Time: at(4), Data: mpStr("d")},
		{Seq: 5, Stream: "order-2", Version: 1, Type: "placed", SchemaVersion: 1, Time: at(5), Data: mpStr("e")},
	}
	tests := []struct {
		name    string
		version uint16
		damage  int
		args    []string
		copied  []uint64 // source seqs
		lost    []seqRange
	}{
		{"v1 through the log", 1, -1, nil, []uint64{1, 3, 5}, []seqRange{{From: 2, To: 2}, {From: 4, To: 4}}},
		{"v2 through the log", 2, -1, nil, []uint64{1, 3, 5}, []seqRange{{From: 2, To: 2}, {From: 4, To: 4}}},
		{"v2 frame by frame", 2, 2, []string{"--skip-damaged"}, []uint64{1, 5}, []seqRange{{From: 2, To: 2}, {From: 3, To: 3}, {From: 4, To: 4}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := oldLogVersion(t, tc.version, events, tc.damage)
			// Offsets from an undamaged copy (a flipped byte moves none).
			offs := frameOffsets(t, oldLogVersion(t, tc.version, events, -1))
			out := filepath.Join(t.TempDir(), "salvaged")
			args := append([]string{"salvage", dir, out, "--format", "json"}, tc.args...)
			r := run1(t, args...)
			checkNoPanic(t, args, r)
			var rep salvageReport
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("exit %d: %v:\n%s%s", r.code, err, r.stdout, r.stderr)
			}
			if r.code != 1 || rep.Complete || rep.Copied != len(tc.copied) {
				t.Errorf("exit %d, complete %v, copied %d; want 1, false, %d:\n%s%s", r.code, rep.Complete, rep.Copied, len(tc.copied), r.stdout, r.stderr)
			}
			var lost []seqRange
			for _, l := range rep.Lost {
				if l.File == "" && l.Reason == "" { // a damaged frame's loss
					lost = append(lost, seqRange{From: l.From, To: l.To})
					continue
				}
				if l.From != l.To || l.File != segment.FormatFileName(1, 0) || l.Offset != offs[l.From] || !strings.Contains(l.Reason, `"$$mine"`) {
					t.Errorf("lost %+v: want one seq, file %s, offset %d, a reason naming the stream", l, segment.FormatFileName(1, 0), offs[l.From])
				}
				lost = append(lost, seqRange{From: l.From, To: l.To})
			}
			if d := cmp.Diff(tc.lost, lost); d != "" {
				t.Errorf("lost (-want +got):\n%s\n%s", d, r.stdout)
			}
			// The text report names them too.
			rt := run1(t, append([]string{"salvage", dir, filepath.Join(t.TempDir(), "salvaged")}, tc.args...)...)
			for _, seq := range []uint64{2, 4} {
				want := fmt.Sprintf("lost %d..%d (%s %d: stream \"$$mine\"", seq, seq, segment.FormatFileName(1, 0), offs[seq])
				if !strings.Contains(rt.stdout, want) {
					t.Errorf("text report lacks %q:\n%s", want, rt.stdout)
				}
			}
			l, err := evlog.Open(out, evlog.Options{Sync: evlog.SyncNever})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var got []string
			for ev, err := range l.Events(t.Context(), 1) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, string(ev.Data))
			}
			var want []string
			for _, seq := range tc.copied {
				want = append(want, string(events[seq-1].Data))
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("salvaged events' data (-want +got):\n%s", d)
			}
		})
	}
}

// frameOffsets returns, by seq, the offset of each event frame of the one
// segment of dir.
func frameOffsets(t *testing.T, dir string) map[uint64]int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, segment.FormatFileName(1, 0)))
	if err != nil {
		t.Fatal(err)
	}
	offs := map[uint64]int64{}
	r := segment.NewReader(bytes.NewReader(b), segment.HeaderSize, int64(len(b)))
	var dec segment.Decoder
	for {
		f, err := r.Next()
		if err != nil {
			break
		}
		var ev event.Envelope
		if f.Kind == segment.KindEvent && dec.Decode(f.Payload, &ev) == nil {
			offs[ev.Seq] = f.Offset
		}
	}
	return offs
}
