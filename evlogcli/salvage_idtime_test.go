package evlogcli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
)

// TestSalvageNamesEarlierTime: an event recorded before the event copied
// last (a hand-made log: evlog's writer never records a time going
// backwards, and evlog's open refuses such a log, so salvage reads it
// frame by frame) cannot be copied: the new log's times never go
// backwards. Here it is seq 2, a gone event whose ID salvage keeps as a
// placeholder, or an ordinary event. It was not skipped silently, but it
// was reported without its segment file, frame offset or (without
// --skip-damaged) why: "lost 2..4" and "readable 2..4" only. It is
// reported as a lost seq naming its file, event frame offset and why
// (exit 1); without --skip-damaged copying stops after it, with
// --skip-damaged it goes on.
func TestSalvageNamesEarlierTime(t *testing.T) {
	t.Parallel()
	at := func(i int) time.Time { return testEpoch.Add(time.Duration(i) * time.Second) }
	events := []event.Envelope{
		{Seq: 1, Stream: "order-1", Version: 1, Type: "placed", SchemaVersion: 1, Time: at(2), Data: mpStr("a")},
		{Seq: 2, Stream: "order-2", Version: 1, Type: evlog.TypeRedacted, SchemaVersion: 1, ID: "req-2", Time: at(1)},
		{Seq: 3, Stream: "order-1", Version: 2, Type: "shipped", SchemaVersion: 1, Time: at(3), Data: mpStr("c")},
		{Seq: 4, Stream: "order-3", Version: 1, Type: "placed", SchemaVersion: 1, Time: at(4), Data: mpStr("d")},
	}
	plain := slices.Clone(events)
	plain[1] = event.Envelope{Seq: 2, Stream: "order-2", Version: 1, Type: "placed", SchemaVersion: 1, Time: at(1), Data: mpStr("b")}
	tests := []struct {
		name   string
		events []event.Envelope
		damage int // the event whose frame is damaged (-1: none)
		args   []string
		copied int
		after  []seqRange // lost after seq 2
	}{
		{"placeholder", events, -1, nil, 1, []seqRange{{From: 3, To: 4}}},
		{"placeholder/skip-damaged", events, 3, []string{"--skip-damaged"}, 2, nil}, // seq 4 a torn tail
		{"event", plain, -1, nil, 1, []seqRange{{From: 3, To: 4}}},
		{"event/skip-damaged", plain, -1, []string{"--skip-damaged"}, 3, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := oldLog(t, tc.events, tc.damage)
			file, off := filepath.Base(mustGlob1(t, filepath.Join(dir, "*.seg"))), frameOffsets(t, dir)[2]
			for _, format := range []string{"json", "text"} {
				args := append([]string{"salvage", dir, filepath.Join(t.TempDir(), "salvaged"), "--format", format}, tc.args...)
				r := run1(t, args...)
				checkNoPanic(t, args, r)
				if r.code != 1 {
					t.Errorf("exit %d, want 1:\n%s%s", r.code, r.stdout, r.stderr)
				}
				if format == "text" {
					if want := fmt.Sprintf("lost 2..2 (%s %d: ", file, off); !strings.Contains(r.stdout, want) {
						t.Errorf("the report does not name seq 2's frame (%q):\n%s", want, r.stdout)
					}
					continue
				}
				var rep salvageReport
				if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
					t.Fatalf("%v:\n%s%s", err, r.stdout, r.stderr)
				}
				if rep.Complete || rep.Copied != tc.copied {
					t.Errorf("complete %v, copied %d; want false, %d:\n%s", rep.Complete, rep.Copied, tc.copied, r.stdout)
				}
				want := append([]seqRange{{From: 2, To: 2, File: file, Offset: off}}, tc.after...)
				if d := cmp.Diff(want, rep.Lost, cmpopts.IgnoreFields(seqRange{}, "Reason")); d != "" {
					t.Errorf("lost (-want +got):\n%s\n%s", d, r.stdout)
				}
				if len(rep.Lost) > 0 && !strings.Contains(rep.Lost[0].Reason, "recorded before") {
					t.Errorf("seq 2's reason %q does not say why:\n%s", rep.Lost[0].Reason, r.stdout)
				}
			}
		})
	}
}

// mustGlob1 returns the one file matching pattern.
func mustGlob1(t *testing.T, pattern string) string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) != 1 {
		t.Fatalf("%s: %q, %v", pattern, m, err)
	}
	return m[0]
}

// TestSalvageEarlierTimeAfterDamage: with --skip-damaged, damage (seq 2)
// then an event recorded before the event copied last (seq 3), the log's
// last. Seq 3 was reported lost, naming its frame, but the damage before
// it stayed pending, as if its end were not known, so the report also
// said "lost 4..?": an unknown number of events after the log's last,
// which never existed (an operator would look for them in a backup). The
// event read at seq 3 ends the damage as a copied one does: lost are seqs
// 2 and 3, nothing after.
func TestSalvageEarlierTimeAfterDamage(t *testing.T) {
	t.Parallel()
	at := func(i int) time.Time { return testEpoch.Add(time.Duration(i) * time.Second) }
	events := []event.Envelope{
		{Seq: 1, Stream: "order-1", Version: 1, Type: "placed", SchemaVersion: 1, Time: at(2), Data: mpStr("a")},
		{Seq: 2, Stream: "order-2", Version: 1, Type: "placed", SchemaVersion: 1, Time: at(3), Data: mpStr("b")},
		{Seq: 3, Stream: "order-1", Version: 2, Type: "shipped", SchemaVersion: 1, Time: at(1), Data: mpStr("c")},
	}
	dir := oldLog(t, events, 1) // seq 2's frame damaged
	file := filepath.Base(mustGlob1(t, filepath.Join(dir, "*.seg")))
	args := []string{"salvage", dir, filepath.Join(t.TempDir(), "salvaged"), "--skip-damaged", "--format", "json"}
	r := run1(t, args...)
	checkNoPanic(t, args, r)
	var rep salvageReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 1 {
		t.Fatalf("exit %d (want 1), %v:\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if len(rep.Gaps) != 1 {
		t.Fatalf("gaps %+v, want seq 2's frame:\n%s", rep.Gaps, r.stdout)
	}
	// Seq 3's frame follows the damaged one.
	want := []seqRange{{From: 2, To: 2}, {From: 3, To: 3, File: file, Offset: rep.Gaps[0].Offset + rep.Gaps[0].Length}}
	if d := cmp.Diff(want, rep.Lost, cmpopts.IgnoreFields(seqRange{}, "Reason")); d != "" || rep.Copied != 1 || rep.Complete {
		t.Errorf("copied %d, complete %v (want 1, false); lost (-want +got):\n%s\n%s", rep.Copied, rep.Complete, d, r.stdout)
	}
}
