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

// oldLog writes, with the segment API, a log of one version 1 segment
// holding events, each its own committed batch (events an older evlog
// accepted, which an append may refuse now), and returns its directory.
// The frame of events[damage] (none if damage < 0) has a byte flipped.
func oldLog(t *testing.T, events []event.Envelope, damage int) string {
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
	h := segment.Header{Version: 1, LogID: segment.LogID{0x01, 15: 0x5a}, BaseSeq: 1, Created: testEpoch}
	f, _, err := segment.Create(fsys, h)
	if err != nil {
		t.Fatal(err)
	}
	var buf []byte
	durable := int64(segment.HeaderSize)
	for i := range events {
		buf = segment.AppendEventFrame(buf[:0], &events[i])
		if i == damage {
			buf[len(buf)-1] ^= 0xff
		}
		buf = segment.AppendCommitFrame(buf, segment.Commit{FirstSeq: events[i].Seq, Count: 1, DurableEnd: durable})
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
		durable += int64(len(buf))
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSalvageCopiesOldReservedTypes: an older evlog accepted event types
// starting with "$", reserved for evlog since; salvage copies such events
// of an old log as they are (they are the user's data), through the log
// and frame by frame, instead of failing on the reservation, which still
// holds for appends to the new log.
func TestSalvageCopiesOldReservedTypes(t *testing.T) {
	t.Parallel()
	at := func(i int) time.Time { return testEpoch.Add(time.Duration(i) * time.Second) }
	events := []event.Envelope{
		{Seq: 1, Stream: "order-1", Version: 1, Type: "placed", SchemaVersion: 1, Time: at(1), Data: mpStr("a")},
		{Seq: 2, Stream: "order-1", Version: 2, Type: "$cancelled", SchemaVersion: 1, ID: "req-2", Time: at(2), Meta: map[string]string{"by": "ops"}, Data: mpStr("b")},
		{Seq: 3, Stream: "order-2", Version: 1, Type: "$deleted", SchemaVersion: 2, Time: at(3), Data: mpStr("c")},
		{Seq: 4, Stream: "order-2", Version: 2, Type: "shipped", SchemaVersion: 1, Time: at(4), Data: mpStr("d")},
		{Seq: 5, Stream: "order-3", Version: 1, Type: "$placed", SchemaVersion: 1, Time: at(5), Data: mpStr("e")},
	}
	tests := []struct {
		name   string
		damage int // the event whose frame is damaged (-1: none)
		args   []string
		code   int
	}{
		// An undamaged old log is copied through the log.
		{"through the log", -1, nil, 0},
		// A damaged one frame by frame: all but the damaged event.
		{"frame by frame", 2, []string{"--skip-damaged"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := oldLog(t, events, tc.damage)
			want := slices.Clone(events)
			if tc.damage >= 0 {
				want = slices.Delete(want, tc.damage, tc.damage+1)
			}
			out := filepath.Join(t.TempDir(), "salvaged")
			args := append([]string{"salvage", dir, out}, tc.args...)
			r := run1(t, args...)
			checkNoPanic(t, args, r)
			if r.code != tc.code || !strings.Contains(r.stdout, fmt.Sprintf("copied %d events", len(want))) {
				t.Fatalf("salvage of an old log with $-prefixed event types: exit %d, want %d:\n%s%s", r.code, tc.code, r.stdout, r.stderr)
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
			// The reservation still holds for appends.
			if _, err := l.Append(t.Context(), "order-3", evlog.ExpectAny, evlog.Envelope{Type: "$cancelled", Data: mpStr("f")}); !errors.Is(err, evlog.ErrInvalid) {
				t.Errorf("append of a $-prefixed type to the salvaged log: %v, want ErrInvalid", err)
			}
		})
	}
}
