package evlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// Recorded retention: the settings are a record in the log, so every
// process applies the ones the log records (retention.go).

// retPayload is version v of stream's payload: it names both, so the
// bytes on disk tell which event they belong to.
func retPayload(stream string, v int) []byte {
	return fmt.Appendf(nil, "\xa5RETAIN<%s/%03d>", stream, v)
}

// appendRet appends n events to stream, each with retPayload.
func appendRet(t *testing.T, l *Log, stream string, from, n int) {
	t.Helper()
	for v := from; v < from+n; v++ {
		if _, err := l.Append(t.Context(), stream, ExpectAny, Envelope{Type: "tick", Data: retPayload(stream, v)}); err != nil {
			t.Fatal(err)
		}
	}
}

// versionsOf returns the versions of stream l reads.
func versionsOf(t *testing.T, l *Log, stream string) []uint64 {
	t.Helper()
	var out []uint64
	for e, err := range l.Stream(t.Context(), stream, 1) {
		if err != nil {
			t.Fatalf("reading %s: %v", stream, err)
		}
		out = append(out, e.Version)
	}
	return out
}

// openReader opens fsys read-only with opts, as a reader in another
// process does (it shares nothing with the writer but the files).
func openReader(t *testing.T, fsys vfs.FS, opts Options) *Log {
	t.Helper()
	l, err := openFS(vfs.ReadOnly(fsys), opts, true)
	if err != nil {
		t.Fatalf("read-only open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestRetentionReaderSeesWriterView: a reader opened without
// Options.Retention reads what the writer with retention reads.
func TestRetentionReaderSeesWriterView(t *testing.T) {
	mem := vfs.NewMem()
	w := openMem(t, mem, Options{Retention: map[string]Retention{"r": {MaxCount: 2}}})
	defer w.Close()
	appendRet(t, w, "r-1", 1, 5)
	appendRet(t, w, "s-1", 1, 3)
	r := openReader(t, mem, Options{})
	for _, s := range []string{"r-1", "s-1"} {
		if d := cmp.Diff(versionsOf(t, w, s), versionsOf(t, r, s)); d != "" {
			t.Errorf("stream %s: the reader reads other versions than the writer (-writer +reader):\n%s", s, d)
		}
	}
	if got := versionsOf(t, r, "r-1"); !cmp.Equal(got, []uint64{4, 5}) {
		t.Errorf("reader reads versions %v of r-1, want [4 5]", got)
	}
}

// TestRetentionWriterReopenedWithNil: a writer reopened with a nil
// Options.Retention keeps applying the recorded settings.
func TestRetentionWriterReopenedWithNil(t *testing.T) {
	mem := vfs.NewMem()
	w := openMem(t, mem, Options{Retention: map[string]Retention{"r": {MaxCount: 2}}})
	appendRet(t, w, "r-1", 1, 5)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openMem(t, mem, Options{})
	defer w.Close()
	appendRet(t, w, "r-1", 6, 1)
	if got := versionsOf(t, w, "r-1"); !cmp.Equal(got, []uint64{5, 6}) {
		t.Errorf("writer reopened with nil Retention reads versions %v of r-1, want [5 6]", got)
	}
}

// TestRetentionChangeSeenAfterRefresh: a writer opened with other
// settings records them, and a reader picks them up at its next Refresh.
func TestRetentionChangeSeenAfterRefresh(t *testing.T) {
	mem := vfs.NewMem()
	w := openMem(t, mem, Options{Retention: map[string]Retention{"r": {MaxCount: 3}}})
	appendRet(t, w, "r-1", 1, 5)
	r := openReader(t, mem, Options{})
	if got := versionsOf(t, r, "r-1"); !cmp.Equal(got, []uint64{3, 4, 5}) {
		t.Errorf("before the change: reader reads versions %v, want [3 4 5]", got)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openMem(t, mem, Options{Retention: map[string]Retention{"r": {MaxCount: 1}}})
	defer w.Close()
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	if got := versionsOf(t, r, "r-1"); !cmp.Equal(got, []uint64{5}) {
		t.Errorf("after the change and Refresh: reader reads versions %v, want [5]", got)
	}
	// An empty non-nil map records no retention.
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = openMem(t, mem, Options{Retention: map[string]Retention{}})
	if err := r.Refresh(); err != nil {
		t.Fatal(err)
	}
	if got := versionsOf(t, r, "r-1"); !cmp.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Errorf("after recording no retention: reader reads versions %v, want all 5", got)
	}
}

// TestRetentionCompactByNilWriter: a writer opened with a nil
// Options.Retention compacts by the recorded settings: the payloads of
// the events they hide leave the files.
func TestRetentionCompactByNilWriter(t *testing.T) {
	mem := vfs.NewMem()
	opts := Options{SegmentSize: MinSegmentSize, Retention: map[string]Retention{"r": {MaxCount: 2}}}
	w := openMem(t, mem, opts)
	appendRet(t, w, "r-1", 1, 60) // several segments
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	opts.Retention = nil
	w = openMem(t, mem, opts)
	defer w.Close()
	if _, err := w.Compact(t.Context(), CompactOptions{TargetSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	names, err := mem.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		data, err := mem.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		for v := 1; v <= 30; v++ { // hidden, and in sealed segments compaction rewrites
			if bytes.Contains(data, retPayload("r-1", v)) {
				t.Errorf("%s still holds the payload of r-1 version %d, which the recorded retention hides", n, v)
			}
		}
	}
}

// TestRetentionBackupRestoreKeepsSettings: a restored log applies the
// settings of the log it was backed up from.
func TestRetentionBackupRestoreKeepsSettings(t *testing.T) {
	src, bak, dst := filepath.Join(t.TempDir(), "log"), filepath.Join(t.TempDir(), "bak"), filepath.Join(t.TempDir(), "restored")
	w, err := Open(src, Options{Retention: map[string]Retention{"r": {MaxCount: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	appendRet(t, w, "r-1", 1, 5)
	if _, err := w.Backup(t.Context(), bak, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(t.Context(), bak, dst, RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReadOnly(dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := versionsOf(t, r, "r-1"); !cmp.Equal(got, []uint64{4, 5}) {
		t.Errorf("restored log reads versions %v of r-1, want [4 5]", got)
	}
}

// TestRetentionReadOnlyMismatch: a read-only open given settings other
// than the recorded ones is refused; the same settings, or nil, open.
func TestRetentionReadOnlyMismatch(t *testing.T) {
	mem := vfs.NewMem()
	rec := map[string]Retention{"r": {MaxCount: 2}}
	w := openMem(t, mem, Options{Retention: rec})
	defer w.Close()
	appendRet(t, w, "r-1", 1, 3)
	for _, tc := range []struct {
		name  string
		given map[string]Retention
		fail  bool
	}{
		{"nil", nil, false},
		{"same", map[string]Retention{"r": {MaxCount: 2}}, false},
		{"other count", map[string]Retention{"r": {MaxCount: 3}}, true},
		{"none", map[string]Retention{}, true},
		{"other category", map[string]Retention{"r": {MaxCount: 2}, "s": {MaxCount: 1}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := openFS(vfs.ReadOnly(mem), Options{Retention: tc.given}, true)
			if err == nil {
				l.Close()
			}
			if !tc.fail {
				if err != nil {
					t.Fatalf("read-only open: %v", err)
				}
				return
			}
			me, ok := errors.AsType[*RetentionMismatchError](err)
			if !ok || !errors.Is(err, ErrRetentionMismatch) {
				t.Fatalf("read-only open: %v, want a *RetentionMismatchError", err)
			}
			if d := cmp.Diff(rec, me.Recorded); d != "" {
				t.Errorf("Recorded (-want +got):\n%s", d)
			}
		})
	}
}

// TestRetentionRecord: the record is an event of RetentionStream that
// RecordedRetention reads; a writer given the recorded settings again
// records nothing; applications cannot append to the stream.
func TestRetentionRecord(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	rec := map[string]Retention{"r": {MaxCount: 2}, "u": {MaxAge: 3600e9}}
	w := openMem(t, mem, Options{Retention: map[string]Retention{}}) // none recorded: nothing to record
	if w.LastSeq() != 0 {
		t.Errorf("an empty Retention on a log recording none wrote %d events", w.LastSeq())
	}
	w.Close()
	w = openMem(t, mem, Options{Retention: rec})
	got, seq, err := w.RecordedRetention(ctx)
	if err != nil || seq != 1 || !cmp.Equal(got, rec) {
		t.Fatalf("RecordedRetention = %v, %d, %v; want %v, 1", got, seq, err, rec)
	}
	if _, err := w.Append(ctx, RetentionStream, ExpectAny, Envelope{Type: "x"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("append to %s: %v, want ErrInvalid", RetentionStream, err)
	}
	w.Close()
	w = openMem(t, mem, Options{Retention: map[string]Retention{"u": {MaxAge: 3600e9}, "r": {MaxCount: 2}}})
	defer w.Close()
	if w.LastSeq() != 1 {
		t.Errorf("reopening with the recorded settings wrote a record: last seq %d, want 1", w.LastSeq())
	}
	for e, err := range w.Events(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Stream != RetentionStream || e.Type != TypeRetention {
			t.Errorf("event %d is %s/%s, want the record", e.Seq, e.Stream, e.Type)
		}
	}
}

// retentionOpenCrashLoop opens a writer with new settings on a copy of a
// log recording old ones, crashing at each mutating op k of that Open
// (and Close) under every crash model, and checks that the log then
// opens, holds every event, and records either the old or the new
// settings — the new ones if Open and Close returned. wrap wraps the FS
// the crashing writer sees. It returns the violations.
func retentionOpenCrashLoop(t *testing.T, wrap func(vfs.FS) vfs.FS) []string {
	t.Helper()
	ctx := t.Context()
	oldRet := map[string]Retention{"r": {MaxCount: 3}}
	newRet := map[string]Retention{"r": {MaxCount: 1}, "u": {MaxCount: 2}}
	base := vfs.NewMem()
	opts := Options{SegmentSize: MinSegmentSize, Retention: oldRet, Clock: fakeClock(t0, 1)}
	w := openMem(t, base, opts)
	appendRet(t, w, "r-1", 1, 30)
	appendRet(t, w, "u-1", 1, 3)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	opts.Retention = newRet
	opts.Clock = fakeClock(t0.Add(time1), 1)
	probe := base.Clone()
	w = openMem(t, wrap(probe), opts)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	total := probe.Ops()
	if total == 0 {
		t.Fatal("recording the new settings wrote nothing")
	}
	bad := eachCrashPoint(t, total, func(k int, checked *atomic.Int64) []string {
		var bad []string
		mem := base.Clone()
		mem.CrashAt(k)
		done := false
		opts := opts
		opts.Clock = fakeClock(t0.Add(time1), 1) // each crash point its own: they run in parallel
		if l, err := openFS(wrap(mem), opts, false); err == nil {
			done = l.Close() == nil
		}
		if done && k < total {
			bad = append(bad, fmt.Sprintf("k=%d: the crash went unnoticed", k))
		}
		var states crashStates
		for _, model := range vfs.CrashModels() {
			after := mem.CrashClone(model, rand.New(rand.NewPCG(uint64(k), uint64(model))))
			if !states.checked(after) {
				if msg := checkRetentionRecovered(ctx, after, oldRet, newRet, done); msg != "" {
					bad = append(bad, fmt.Sprintf("k=%d/%d model=%v: %s", k, total, model, msg))
				}
			}
			checked.Add(1)
		}
		return bad
	})
	t.Logf("crashed at each of %d ops under %d models", total+1, len(vfs.CrashModels()))
	return bad
}

// checkRetentionRecovered opens fsys with a nil Retention and checks the
// recorded settings (oldRet, or newRet; newRet when done) and the events.
func checkRetentionRecovered(ctx context.Context, fsys vfs.FS, oldRet, newRet map[string]Retention, done bool) string {
	l, err := openFS(fsys, Options{}, false)
	if err != nil {
		return fmt.Sprintf("reopen failed: %v", err)
	}
	defer l.Close()
	got, _, err := l.RecordedRetention(ctx)
	switch {
	case err != nil:
		return fmt.Sprintf("reading the recorded retention: %v", err)
	case done && !cmp.Equal(got, newRet):
		return fmt.Sprintf("Open recorded %v and returned, the log records %v after the crash", newRet, got)
	case !cmp.Equal(got, newRet) && !cmp.Equal(got, oldRet):
		return fmt.Sprintf("the log records %v: neither the old %v nor the new %v", got, oldRet, newRet)
	}
	for s, n := range map[string]uint64{"r-1": 30, "u-1": 3} {
		if v, err := l.StreamVersion(ctx, s); err != nil || v != n {
			return fmt.Sprintf("stream %s at version %d (%v), want %d", s, v, err, n)
		}
		keep := n
		if c := got[s[:1]].MaxCount; c > 0 {
			keep = min(n, uint64(c))
		}
		var want []uint64
		for v := n - keep + 1; v <= n; v++ {
			want = append(want, v)
		}
		var vers []uint64
		for e, err := range l.Stream(ctx, s, 1) {
			if err != nil {
				return fmt.Sprintf("reading %s: %v", s, err)
			}
			vers = append(vers, e.Version)
		}
		if !cmp.Equal(vers, want) {
			return fmt.Sprintf("stream %s reads versions %v under %v, want %v", s, vers, got, want)
		}
	}
	return ""
}

// time1 is a second: the crashing Open's clock runs after the workload's.
const time1 = 1e9

// TestRetentionOpenCrash: a crash while Open records new settings leaves
// the old or the new ones (the new ones once Open returned), never a
// broken log.
func TestRetentionOpenCrash(t *testing.T) {
	t.Parallel()
	bad := retentionOpenCrashLoop(t, func(f vfs.FS) vfs.FS { return f })
	for _, b := range bad[:min(len(bad), 10)] {
		t.Error(b)
	}
	if len(bad) > 10 {
		t.Errorf("… and %d more violations", len(bad)-10)
	}
}

// TestRetentionOpenCrashHasTeeth: the loop catches an Open that returns
// before its record is durable.
func TestRetentionOpenCrashHasTeeth(t *testing.T) {
	t.Parallel()
	bad := retentionOpenCrashLoop(t, func(f vfs.FS) vfs.FS { return vfs.NoSync{FS: f, Dirs: true, Files: vfs.AnyFile} })
	if len(bad) == 0 {
		t.Fatal("the retention open crash loop found no violation: it has no teeth")
	}
	t.Logf("%d violations, e.g. %s", len(bad), bad[0])
}

// TestRetentionBadRecord: a retention record that checksums but does not
// decode to valid settings fails every read of the log with a
// *CorruptError naming its segment and frame offset, and Verify reports
// it there.
func TestRetentionBadRecord(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"not msgpack", []byte{0xc1}},
		{"negative count", mustEncodeRetention(t, map[string]Retention{"r": {MaxCount: -1}})},
		{"bad category", mustEncodeRetention(t, map[string]Retention{"a-b": {MaxCount: 1}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			mem := vfs.NewMem()
			w := openMem(t, mem, Options{})
			appendRet(t, w, "r-1", 1, 2)
			batch := []AppendRequest{{Stream: RetentionStream, Expect: ExpectAny, Events: []Envelope{{Type: TypeRetention, Data: tc.data}}}}
			size, n, ids, err := w.checkBatch(batch)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.w.submit(ctx, &request{batch: batch, size: size, events: n, noIDs: !ids, done: make(chan struct{})}); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			r := openReader(t, mem, Options{})
			var rerr error
			for _, err := range r.Stream(ctx, "r-1", 1) {
				if err != nil {
					rerr = err
					break
				}
			}
			ce, ok := errors.AsType[*CorruptError](rerr)
			if !ok || !errors.Is(rerr, ErrCorrupt) || ce.File == "" || ce.Offset == 0 {
				t.Fatalf("reading beside a bad retention record: %v, want a *CorruptError naming the file and offset", rerr)
			}
			rep, err := verifyFS(ctx, vfs.ReadOnly(mem))
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Findings) != 1 || rep.Findings[0].Kind != FindingCorrupt || rep.Findings[0].File != ce.File || rep.Findings[0].Offset != ce.Offset {
				t.Errorf("Verify findings %+v, want one corrupt finding at %s offset %d", rep.Findings, ce.File, ce.Offset)
			}
		})
	}
}

func mustEncodeRetention(t *testing.T, r map[string]Retention) []byte {
	t.Helper()
	b, err := encodeRetention(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
