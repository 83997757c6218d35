package evlog

import (
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
)

// retentionCrashCase is a log, closed, whose compaction redacts events
// beyond Options.Retention (MaxCount for one category, MaxAge for
// another), for the compaction crash loop.
func retentionCrashCase(t *testing.T) compactCrashCase {
	t.Helper()
	opts := crashOpts(SyncAlways)
	now := t0.Add(time.Hour + 100*time.Millisecond) // the workload's events span about 0.3s from t0
	opts.Clock = func() time.Time { return now }
	opts.Retention = map[string]Retention{"cart": {MaxCount: 3}, "user": {MaxAge: time.Hour}}
	base := vfs.NewMem()
	l := openMem(t, base, opts)
	if err := runWorkload(t.Context(), l, genWorkload(23, 120)); err != nil {
		t.Fatal(err)
	}
	// The case has teeth only if compaction redacts: events of both
	// categories read as gone, and some of each stay.
	for _, s := range []string{"cart-1", "user-7"} {
		v, err := l.StreamVersion(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, err := range l.Stream(t.Context(), s, 1) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n == 0 || uint64(n) == v {
			t.Fatalf("stream %s: %d of %d versions read: retention must hide some and keep some", s, n, v)
		}
	}
	l.Close()
	return compactCrashCase{base: base, opts: opts, target: 1 << 20, segmentsAfter: 2}
}

// TestRetentionCompactCrash kills a compaction that redacts events beyond
// retention at every mutating op under every crash model: the log reads
// the same afterwards (no event retention keeps is lost or changed, none
// it hides comes back), and compacting again finishes the job.
func TestRetentionCompactCrash(t *testing.T) {
	t.Parallel()
	c := retentionCrashCase(t)
	rep := compactOnce(t, c)
	if !rep {
		t.Fatal("the compaction redacts nothing: the loop would not test redaction")
	}
	bad := compactCrashLoopOn(t, c, func(f vfs.FS) vfs.FS { return f })
	for _, b := range bad[:min(len(bad), 10)] {
		t.Error(b)
	}
	if len(bad) > 10 {
		t.Errorf("… and %d more violations", len(bad)-10)
	}
}

// TestRetentionCompactCrashHasTeeth: the loop catches a redacting
// compaction whose output is not durable when it replaces its inputs.
func TestRetentionCompactCrashHasTeeth(t *testing.T) {
	t.Parallel()
	bad := compactCrashLoopOn(t, retentionCrashCase(t), func(f vfs.FS) vfs.FS { return vfs.NoSync{FS: f, Files: vfs.AnyFile} })
	if len(bad) == 0 {
		t.Fatal("the retention compaction crash loop found no violation: it has no teeth")
	}
	t.Logf("%d violations, e.g. %s", len(bad), bad[0])
}

// compactOnce compacts a copy of c's log as the loop does and reports
// whether a group redacted.
func compactOnce(t *testing.T, c compactCrashCase) bool {
	t.Helper()
	l := openMem(t, c.base.Clone(), c.opts)
	defer l.Close()
	rep, err := l.Compact(t.Context(), CompactOptions{TargetSize: c.target, Compress: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range rep.Groups {
		if g.Redact {
			return true
		}
	}
	return false
}
