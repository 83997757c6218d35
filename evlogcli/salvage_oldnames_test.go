package evlogcli

import (
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
