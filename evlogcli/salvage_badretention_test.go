package evlogcli

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/copyhook"
)

// TestSalvageNamesBadRetention: a retention record whose frame checksums
// but whose Data does not decode is damage, reported as a deletion
// marker's is (TestSalvageNamesBadMarker): salvage completes, with a gap
// naming the segment file and the record frame's offset and the record's
// seq lost; without --skip-damaged copying stops there. The new log
// records no retention in its place: the damaged record's settings cannot
// be known, and the last good record before it may be stricter (here it
// keeps 2 events of r-1 where the damaged one keeps 5), so applying it
// would hide events the damaged log's writer showed; no retention hides
// none. NEWDIR opens and verifies clean.
func TestSalvageNamesBadRetention(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "log")
	appendUnderRetentions(t, dir, []retentionRun{
		{map[string]evlog.Retention{"r": {MaxCount: 2}}, 3}, // seq 1 the record, 2..4 r-1
		{map[string]evlog.Retention{"r": {MaxCount: 5}}, 1}, // seq 5 the record (damaged below), 6 r-1
	})
	file, off := patchEventData(t, dir, evlog.RetentionStream, 5)

	tests := []struct {
		args     []string
		copied   int
		lost     []seqRange
		versions []uint64 // of r-1 in the new log
	}{
		{nil, 4, []seqRange{{From: 5, To: 6}}, []uint64{1, 2, 3}},
		{[]string{"--skip-damaged"}, 5, []seqRange{{From: 5, To: 5}}, []uint64{1, 2, 3, 4}},
	}
	for _, tc := range tests {
		for _, format := range []string{"json", "text"} {
			t.Run(fmt.Sprint(tc.args, format), func(t *testing.T) {
				dst := filepath.Join(t.TempDir(), "salvaged")
				args := append([]string{"salvage", dir, dst, "--format", format}, tc.args...)
				r := run1(t, args...)
				checkNoPanic(t, args, r)
				if r.code != 1 {
					t.Fatalf("exit %d, want 1 (a record lost):\n%s%s", r.code, r.stdout, r.stderr)
				}
				if format == "text" {
					want := fmt.Sprintf("gap %s %d ", file, off)
					if !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "retention record at seq 5") {
						t.Errorf("the report does not name the record (%q, seq 5):\n%s", want, r.stdout)
					}
				} else {
					checkOneGapReport(t, r, tc.copied, file, off, tc.lost)
				}
				// Run again into its complete output, salvage only reports
				// (salvage_again.go): the record of no retention is what it
				// writes.
				if again := run1(t, args...); again.code != r.code || again.stdout != r.stdout {
					t.Errorf("salvage again: exit %d, want %d; stdout:\n%s\nwant:\n%s%s", again.code, r.code, again.stdout, r.stdout, again.stderr)
				}
				if v := run1(t, "verify", dst); v.code != 0 {
					t.Errorf("verify NEWDIR: exit %d\n%s%s", v.code, v.stdout, v.stderr)
				}
				n, err := evlog.OpenReadOnly(dst, evlog.Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer n.Close()
				got, _, err := n.RecordedRetention(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 0 {
					t.Errorf("the new log records retention %v, want none", got)
				}
				var vers []uint64
				for e, err := range n.Stream(ctx, "r-1", 1) {
					if err != nil {
						t.Fatal(err)
					}
					vers = append(vers, e.Version)
				}
				if d := cmp.Diff(tc.versions, vers); d != "" {
					t.Errorf("versions of r-1 in the new log (-want +got):\n%s", d)
				}
			})
		}
	}
}

// TestDecodesRawRetentionAgrees: salvage's check of a retention record's
// Data (decodesRawRetention, the root package's rule through copyhook)
// accepts exactly what the new log accepts from a copy of the record, so that a record it keeps never fails the
// salvage ("writing the new log") and one it replaces is one the new log
// could not hold.
func TestDecodesRawRetentionAgrees(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	mp := func(v any) []byte {
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	type m = map[string]any
	tests := []struct {
		name string
		ok   bool // the new log accepts it
		data []byte
	}{
		{"settings", true, mp(m{"categories": m{"r": m{"max_count": 2, "max_age": int64(time.Hour)}}})},
		{"none", true, mp(m{"categories": m{}})},
		{"no retention record data", true, copyhook.NoRetention()},
		{"nil", false, nil},
		{"not msgpack", false, []byte{0xc1}},
		{"trailing bytes", false, append(mp(m{"categories": m{}}), 0)},
		{"negative count", false, mp(m{"categories": m{"r": m{"max_count": -1}}})},
		{"count out of range", false, mp(m{"categories": m{"r": m{"max_count": int64(1) << 40}}})},
		{"empty entry", false, mp(m{"categories": m{"r": m{}}})},
		{"not a category", false, mp(m{"categories": m{"r-1": m{"max_count": 1}}})},
		{"not a map", false, mp([]int{1})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			l, err := evlog.Open(t.TempDir(), evlog.Options{Sync: evlog.SyncNever, Clock: func() time.Time { return testEpoch }})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			_, err = copyhook.AppendBatch(ctx, l, []evlog.AppendRequest{{Stream: evlog.RetentionStream,
				Events: []evlog.Envelope{{Type: evlog.TypeRetention, Time: testEpoch, Data: tc.data}}}})
			if (err == nil) != tc.ok {
				t.Fatalf("the new log's append returns %v, want accepted %v", err, tc.ok)
			}
			if got := decodesRawRetention(tc.data); got != tc.ok {
				t.Errorf("decodesRawRetention %v, but the new log's append returns %v", got, err)
			}
		})
	}
}

// retentionRun is one writer of appendUnderRetentions: opened with ret (a
// retention record, when it differs from the one before), it appends
// events events of stream r-1.
type retentionRun struct {
	ret    map[string]evlog.Retention
	events int
}

// appendUnderRetentions writes the log in dir with one writer per run, in
// turn, at testEpoch.
func appendUnderRetentions(t *testing.T, dir string, runs []retentionRun) {
	t.Helper()
	for _, o := range runs {
		l, err := evlog.Open(dir, evlog.Options{Sync: evlog.SyncNever, Clock: func() time.Time { return testEpoch }, Retention: o.ret})
		if err != nil {
			t.Fatal(err)
		}
		for range o.events {
			if _, err := l.Append(t.Context(), "r-1", evlog.ExpectAny, evlog.Envelope{Type: "t", Data: mpStr("x")}); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
