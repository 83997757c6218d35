package evlog

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/testhook"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// leftOutOpts are the options of the logs of leftOutLog.
func leftOutOpts() Options {
	return Options{SegmentSize: 32 << 10, Sync: SyncAlways, Clock: fakeClock(t0, 0), MaxClockSkew: NoClockSkewLimit}
}

// leftOutLog builds in mem (closed on return) a log whose first sealed
// segment, big, was written while the frame limit was the real one (as
// an older release, or this one before the writer rolled at a bound,
// wrote it), and whose redaction would take its postings past the limit
// the test then sets (until the test ends): as low as what they take, so
// that the segment still reads. Smaller segments follow, appended after
// that (rolled at the lowered bound). Stream "bbbbbbb-1", which has
// events in every segment, is deleted.
func leftOutLog(t *testing.T, mem *vfs.Mem) (big string) {
	t.Helper()
	ctx := t.Context()
	l := openMem(t, mem, leftOutOpts())
	// Three streams whose names make an event frame some 41 bytes: every
	// postings delta is a one-byte uvarint, which two placeholders in
	// between (8 bytes longer each) make a two-byte one.
	streams := []string{"aaaaaaa-1", "bbbbbbb-1", "ccccccc-1"}
	appendN := func(n int) {
		t.Helper()
		var batch []AppendRequest
		for i := range n {
			batch = append(batch, AppendRequest{Stream: streams[i%len(streams)], Expect: ExpectAny, Events: []Envelope{{Type: "e"}}})
			if len(batch) == 60 || i == n-1 {
				if _, err := l.AppendBatch(ctx, batch); err != nil {
					t.Fatal(err)
				}
				batch = nil
			}
		}
	}
	appendN(900)
	l.Close()
	ext := extents(t, mem)
	if len(ext) != 1 {
		t.Fatalf("%d sealed segments, want 1: %v", len(ext), ext)
	}
	for name, e := range ext {
		big = name
		t.Cleanup(testhook.SetFrameLimit(e.Postings))
		t.Logf("%s: extent %+v; frame limit now %d", name, e, e.Postings)
	}
	l = openMem(t, mem, leftOutOpts())
	defer l.Close()
	appendN(250) // rolls at the lowered bound: small sealed segments
	deleteStreams("bbbbbbb-1")(t, l)
	return big
}

// TestCompactLeftOut: a sealed segment whose redaction would take it past
// a bound of the format (written before the writer rolled at the bounds,
// or by an older release, with events smaller than a placeholder) cannot
// be rewritten as one segment. Compaction must leave it out, say so, and
// compact the rest of the log (redacting the deleted events of the other
// segments), instead of failing on it at every run; the segment is left
// as it is, and the log reads the same.
func TestCompactLeftOut(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	big := leftOutLog(t, mem)
	bigData, err := mem.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	l := openMem(t, mem, leftOutOpts())
	defer l.Close()
	want := readAll(t, l)
	for i := range 4 {
		rep, err := l.Compact(ctx, CompactOptions{TargetSize: 1 << 20})
		if err != nil {
			t.Fatalf("compaction %d: %v", i, err)
		}
		t.Logf("compaction %d: %d -> %d segments, groups %+v", i, rep.SegmentsBefore, rep.SegmentsAfter, rep.Groups)
		var leftOut []string
		committed := 0
		for _, g := range rep.Groups {
			if g.LeftOut == nil {
				if g.Committed {
					committed++
				}
				continue
			}
			leftOut = append(leftOut, g.Inputs...)
			lo, ok := errors.AsType[*CompactLeftOutError](g.LeftOut)
			if !ok || !errors.Is(g.LeftOut, segment.ErrTooLarge) || !lo.Redact || g.Committed {
				t.Errorf("compaction %d: group %v left out with %v (committed %v), want a redacting *CompactLeftOutError matching segment.ErrTooLarge", i, g.Inputs, g.LeftOut, g.Committed)
			}
		}
		if diff := cmp.Diff([]string{big}, leftOut); diff != "" {
			t.Errorf("compaction %d: segments left out (-want +got):\n%s", i, diff)
		}
		// The rest of the log is compacted: the first time, the small
		// segments (holding deleted events too) are merged and redacted.
		if i == 0 && committed == 0 {
			t.Errorf("compaction %d committed no group: the left-out segment blocked the rest", i)
		}
		// Once the rest is merged as far as it goes, only the left-out
		// segment is planned (and left out again), with no error.
		if i == 3 && len(rep.Groups) != 1 {
			t.Errorf("compaction %d planned %d groups, want only the left-out one", i, len(rep.Groups))
		}
		if names, _ := mem.List(); slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, segment.TempExt) }) {
			t.Errorf("compaction %d left a temporary: %v", i, names)
		}
		if diff := envsDiffExact(want, readAll(t, l)); diff != "" {
			t.Fatalf("compaction %d: events changed (-want +got):\n%s", i, diff)
		}
		if got, err := mem.ReadFile(big); err != nil || !bytes.Equal(got, bigData) {
			t.Fatalf("compaction %d: %s was changed or removed (%v)", i, big, err)
		}
		vrep, err := verifyFS(ctx, vfs.ReadOnly(mem))
		if err != nil || vrep.Corrupt() {
			t.Fatalf("compaction %d: verify: %+v, %v", i, vrep, err)
		}
	}
}

// TestCompactLeftOutCrash: the compaction crash loop (every mutating op,
// every crash model) on a log with a segment compaction leaves out: the
// group left out (its temporary written, refused at sealing, removed) and
// the groups committed after it. The log reads the same afterwards, the
// left-out segment is never changed or removed, and compacting again
// leaves out that segment alone and finishes the rest. Not parallel: it
// lowers the frame limit.
func TestCompactLeftOutCrash(t *testing.T) {
	mem := vfs.NewMem()
	big := leftOutLog(t, mem)
	bad := compactCrashLoopOn(t, compactCrashCase{base: mem, opts: leftOutOpts(), target: 1 << 20, leftOut: []string{big}}, func(f vfs.FS) vfs.FS { return f })
	for _, b := range bad[:min(len(bad), 10)] {
		t.Error(b)
	}
	if len(bad) > 10 {
		t.Errorf("… and %d more violations", len(bad)-10)
	}
}

// TestCompactLeftOutCrashHasTeeth: on the log of TestCompactLeftOutCrash,
// the crash loop catches compactions whose outputs are not durable when
// they replace their inputs (file fsyncs acknowledged without being
// done): the groups after the left-out one are inside the loop.
func TestCompactLeftOutCrashHasTeeth(t *testing.T) {
	mem := vfs.NewMem()
	big := leftOutLog(t, mem)
	bad := compactCrashLoopOn(t, compactCrashCase{base: mem, opts: leftOutOpts(), target: 1 << 20, leftOut: []string{big}}, func(f vfs.FS) vfs.FS { return vfs.NoSync{FS: f, Files: vfs.AnyFile} })
	if len(bad) == 0 {
		t.Fatal("the compaction crash loop found no violation: it has no teeth")
	}
	t.Logf("%d violations, e.g. %s", len(bad), bad[0])
}
