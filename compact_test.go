package evlog

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// observe returns everything a reader can see: all events, every stream,
// and SeqAt at every event time.
func observe(t *testing.T, l *Log) string {
	t.Helper()
	all := readAll(t, l)
	var out strings.Builder // not +=: that copies the text so far for every line, quadratic
	fmt.Fprintf(&out, "%d events\n", len(all))
	streams := map[string]bool{}
	streamOf := map[uint64]string{} // by seq (deleted events read as gone: seqs have holes)
	for _, e := range all {
		fmt.Fprintf(&out, "%d %s %d %s %s %x %v\n", e.Seq, e.Stream, e.Version, e.Type, e.Time.Format("15:04:05.000000000"), e.Data, e.Meta)
		streams[e.Stream] = true
		streamOf[e.Seq] = e.Stream
	}
	for _, s := range slices.Sorted(maps.Keys(streams)) {
		for e, err := range l.Stream(t.Context(), s, 2) {
			if err != nil {
				t.Fatal(err)
			}
			if streamOf[e.Seq] != s {
				t.Fatalf("Stream(%s) returned seq %d of %q", s, e.Seq, streamOf[e.Seq])
			}
		}
		v, err := l.StreamVersion(t.Context(), s)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "stream %s v%d\n", s, v)
	}
	for i := 0; i < len(all); i += 7 {
		seq, err := l.SeqAt(t.Context(), all[i].Time)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&out, "at %s: %d\n", all[i].Time.Format("15:04:05.000000000"), seq)
	}
	return out.String()
}

func TestCompact(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprint("compress=", compress), func(t *testing.T) {
			ctx := t.Context()
			mem := vfs.NewMem()
			l := openMem(t, mem, crashOpts(SyncAlways))
			if err := runWorkload(ctx, l, genWorkload(21, 300)); err != nil {
				t.Fatal(err)
			}
			before := observe(t, l)
			segsBefore, _ := l.Segments()
			if len(segsBefore) < 11 {
				t.Fatalf("%d segments, want at least 11", len(segsBefore))
			}
			rep, err := l.Compact(ctx, CompactOptions{TargetSize: 1 << 20, Compress: compress})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", rep)
			if rep.SegmentsAfter != 2 || len(rep.Groups) != 1 || len(rep.Groups[0].Inputs) != len(segsBefore)-1 {
				t.Fatalf("compacted %d segments into %d (groups %v), want all sealed ones into one", rep.SegmentsBefore, rep.SegmentsAfter, rep.Groups)
			}
			if compress && rep.BytesAfter >= rep.BytesBefore {
				t.Fatalf("compression grew the log: %d -> %d bytes", rep.BytesBefore, rep.BytesAfter)
			}
			if d := cmp.Diff(before, observe(t, l)); d != "" {
				t.Fatalf("reads differ after compaction (-before +after):\n%s", d)
			}
			// Appends continue; a reopened log reads the same; verify is clean.
			if _, err := l.Append(ctx, "after", ExpectNoStream, Envelope{Type: "t", Time: t0.AddDate(0, 0, 1)}); err != nil {
				t.Fatal(err)
			}
			before = observe(t, l)
			l.Close()
			names, _ := mem.List()
			t.Log(names)
			rep2, err := verifyFS(ctx, vfs.ReadOnly(mem))
			if err != nil || len(rep2.Findings) != 0 {
				t.Fatalf("verify after compaction: %v %v", rep2.Findings, err)
			}
			l = openMem(t, mem, crashOpts(SyncAlways))
			defer l.Close()
			if d := cmp.Diff(before, observe(t, l)); d != "" {
				t.Fatalf("reads differ after reopening (-before +after):\n%s", d)
			}
		})
	}
}

// TestCompactCrash kills a compaction at every mutating operation under
// every crash model: the log reads the same afterwards, and compacting
// again completes the job.
func TestCompactCrash(t *testing.T) {
	t.Parallel()
	bad := compactCrashLoop(t, func(f vfs.FS) vfs.FS { return f })
	for _, b := range bad[:min(len(bad), 10)] {
		t.Error(b)
	}
	if len(bad) > 10 {
		t.Errorf("… and %d more violations", len(bad)-10)
	}
}

// TestCompactCrashHasTeeth: the compaction crash loop catches a
// compaction whose output is not durable when it replaces its inputs
// (file fsyncs acknowledged without being done, directory fsyncs done).
func TestCompactCrashHasTeeth(t *testing.T) {
	t.Parallel()
	bad := compactCrashLoop(t, func(f vfs.FS) vfs.FS { return vfs.NoSync{FS: f, Files: vfs.AnyFile} })
	if len(bad) == 0 {
		t.Fatal("the compaction crash loop found no violation: it has no teeth")
	}
	t.Logf("%d violations, e.g. %s", len(bad), bad[0])
}

// compactCrashLoop compacts (and compresses) a log, through wrap, crashed
// at each of the compaction's mutating ops, and returns the violations:
// a reopened log that does not read as before, or that a second
// compaction does not finish.
func compactCrashLoop(t *testing.T, wrap func(vfs.FS) vfs.FS) []string {
	t.Helper()
	ctx := t.Context()
	opts := crashOpts(SyncAlways)
	base := vfs.NewMem()
	l := openMem(t, base, opts)
	if err := runWorkload(ctx, l, genWorkload(22, 120)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	return compactCrashLoopOn(t, compactCrashCase{base: base, opts: opts, target: 1 << 20, segmentsAfter: 2}, wrap)
}

// compactCrashCase is a log to crash compactions of.
type compactCrashCase struct {
	base   *vfs.Mem // the log, closed
	opts   Options
	target int64 // CompactOptions.TargetSize (with Compress)
	// segmentsAfter is the number of segments once a compaction after
	// the crash finished the job (0: not checked).
	segmentsAfter int
	// leftOut are the segments every compaction must leave out (and so
	// never change or remove), crashed or not.
	leftOut []string
}

// compactCrashLoopOn is compactCrashLoop on the log of c.
func compactCrashLoopOn(t *testing.T, c compactCrashCase, wrap func(vfs.FS) vfs.FS) []string {
	t.Helper()
	ctx := t.Context()
	copts := CompactOptions{TargetSize: c.target, Compress: true}
	l := openMem(t, c.base.Clone(), c.opts)
	want := observe(t, l)
	l.Close()
	keep := map[string][]byte{}
	for _, name := range c.leftOut {
		data, err := c.base.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		keep[name] = data
	}
	probe := c.base.Clone()
	l = openMem(t, wrap(probe), c.opts)
	ops0 := probe.Ops()
	rep, err := l.Compact(ctx, copts)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if msg := checkLeftOut(rep, c.leftOut); msg != "" {
		t.Fatalf("compaction without a crash: %s", msg)
	}
	total := probe.Ops() - ops0
	var bad []string
	for k := range total + 1 {
		mem := c.base.Clone()
		l := openMem(t, wrap(mem), c.opts)
		mem.CrashAt(mem.Ops() + k)
		l.Compact(ctx, copts)
		l.Close()
		var states crashStates
		for _, model := range vfs.CrashModels() {
			after := mem.CrashClone(model, rand.New(rand.NewPCG(uint64(k), uint64(model))))
			if states.checked(after) {
				continue // the same files as under a model before: that check stands for this one
			}
			msg := ""
			for name, data := range keep {
				if got, err := after.ReadFile(name); err != nil || !bytes.Equal(got, data) {
					msg = fmt.Sprintf("%s, which compaction leaves out, was changed or removed (%v)", name, err)
				}
			}
			if msg == "" {
				msg = checkCompactRecovered(t, wrap(after), after, c, want)
			}
			if msg != "" {
				bad = append(bad, fmt.Sprintf("k=%d/%d %v: %s", k, total, model, msg))
			}
		}
	}
	t.Logf("crashed compaction at each of %d ops", total+1)
	return bad
}

// checkLeftOut checks that the groups of rep left out are exactly those of
// the segments leftOut, each alone ("" if so).
func checkLeftOut(rep CompactReport, leftOut []string) string {
	var got []string
	for _, g := range rep.Groups {
		if g.LeftOut != nil {
			if !errors.Is(g.LeftOut, segment.ErrTooLarge) || g.Committed {
				return fmt.Sprintf("group %v left out with %v (committed %v)", g.Inputs, g.LeftOut, g.Committed)
			}
			got = append(got, g.Inputs...)
		}
	}
	if d := cmp.Diff(leftOut, got, cmpopts.EquateEmpty()); d != "" {
		return fmt.Sprintf("segments left out (-want +got):\n%s", d)
	}
	return ""
}

// checkCompactRecovered reopens a log whose compaction crashed (mem,
// seen through fsys) and checks that it reads as want, that a second open
// changes no file, and that it reads as want after compacting it again
// ("" if so).
func checkCompactRecovered(t *testing.T, fsys vfs.FS, mem *vfs.Mem, c compactCrashCase, want string) string {
	ctx := t.Context()
	l, err := openFS(fsys, c.opts, false)
	if err != nil {
		return fmt.Sprintf("reopen: %v", err)
	}
	if err := l.Close(); err != nil {
		return fmt.Sprintf("closing the reopened log: %v", err)
	}
	files := memFiles(mem)
	l, err = openFS(fsys, c.opts, false)
	if err != nil {
		return fmt.Sprintf("second open: %v", err)
	}
	defer l.Close()
	if now := memFiles(mem); !maps.EqualFunc(files, now, bytes.Equal) {
		return fmt.Sprintf("a second open changed the files: %v -> %v", slices.Sorted(maps.Keys(files)), slices.Sorted(maps.Keys(now)))
	}
	for _, err := range l.RangeBorrowed(ctx, 1, math.MaxUint64) {
		if err != nil {
			return fmt.Sprintf("reading: %v", err)
		}
	}
	if d := cmp.Diff(want, observe(t, l)); d != "" {
		return fmt.Sprintf("reads differ after a crashed compaction (-want +got):\n%s", d)
	}
	rep, err := l.Compact(ctx, CompactOptions{TargetSize: c.target, Compress: true})
	if err != nil || c.segmentsAfter != 0 && rep.SegmentsAfter != c.segmentsAfter {
		return fmt.Sprintf("re-running compaction: %+v %v", rep, err)
	}
	if msg := checkLeftOut(rep, c.leftOut); msg != "" {
		return "re-running compaction: " + msg
	}
	if d := cmp.Diff(want, observe(t, l)); d != "" {
		return fmt.Sprintf("reads differ after completing the compaction:\n%s", d)
	}
	return ""
}

// TestCompactBesideAppends compacts while appenders and readers run.
func TestCompactBesideAppends(t *testing.T) {
	ctx := t.Context()
	l := openMem(t, vfs.NewMem(), Options{SegmentSize: MinSegmentSize})
	defer l.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var evs []Envelope
				for j := range 3 {
					evs = append(evs, Envelope{Type: "t", Data: []byte{0x93, byte(w), byte(i), byte(3*16 + j)}})
				}
				if _, err := l.Append(ctx, fmt.Sprintf("w%d-%d", w, i%7), ExpectAny, evs...); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := checkWholeBatches(ctx, l); err != nil {
				t.Error(err)
				return
			}
		}
	})
	// Compact until three compactions merged something. The appenders
	// keep sealing segments, so this ends on any machine; the deadline only
	// turns a hang into a failure.
	compactions := 0
	deadline := time.Now().Add(2 * time.Minute)
	for i := 0; compactions < 3 && time.Now().Before(deadline) && !t.Failed(); i++ {
		rep, err := l.Compact(ctx, CompactOptions{TargetSize: 64 << 10, Compress: i%2 == 1})
		if err != nil {
			t.Error(err)
			break
		}
		if len(rep.Groups) > 0 {
			compactions++
		}
	}
	if compactions < 3 {
		t.Errorf("only %d compactions ran beside the appends", compactions)
	}
	close(stop)
	wg.Wait()
	if err := checkWholeBatches(ctx, l); err != nil {
		t.Fatal(err)
	}
}

// TestCompactStrayFiles: compaction never writes over an existing file and
// never loses events to a file whose name and header disagree. corrupt
// places a stray file in the directory, before the writer opens the log or
// while it runs.
func TestCompactStrayFiles(t *testing.T) {
	cases := []struct {
		name string
		// corrupt adds a stray file; it returns its name.
		corrupt   func(t *testing.T, mem *vfs.Mem, segs []string) string
		afterOpen bool // place it after Open (beside the running writer)
	}{
		{"copy of the first segment under the next generation, before Open", func(t *testing.T, mem *vfs.Mem, segs []string) string {
			data, _ := mem.ReadFile(segs[0])
			mem.WriteFile(segment.FormatFileName(1, 1), data)
			return segment.FormatFileName(1, 1)
		}, false},
		{"copy of a middle segment under the next generation, before Open", func(t *testing.T, mem *vfs.Mem, segs []string) string {
			data, _ := mem.ReadFile(segs[1])
			base, _, _ := segment.ParseFileName(segs[1])
			mem.WriteFile(segment.FormatFileName(base, 1), data)
			return segment.FormatFileName(base, 1)
		}, false},
		{"a file under the output's name, beside the writer", func(t *testing.T, mem *vfs.Mem, segs []string) string {
			data, _ := mem.ReadFile(segs[0])
			mem.WriteFile(segment.FormatFileName(1, 1), data)
			return segment.FormatFileName(1, 1)
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			mem := vfs.NewMem()
			l := openMem(t, mem, crashOpts(SyncAlways))
			if err := runWorkload(ctx, l, genWorkload(3, 150)); err != nil {
				t.Fatal(err)
			}
			want := readAll(t, l)
			segs, err := l.Segments()
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range segs {
				names = append(names, s.File)
			}
			if len(names) < 4 {
				t.Fatalf("%d segments, want at least 4", len(names))
			}
			var stray string
			var strayData []byte
			if tc.afterOpen {
				stray = tc.corrupt(t, mem, names)
				strayData, _ = mem.ReadFile(stray)
			} else {
				l.Close()
				stray = tc.corrupt(t, mem, names)
				strayData, _ = mem.ReadFile(stray)
				l, err = openFS(mem, crashOpts(SyncAlways), false)
				if err != nil && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("open: %v", err)
				}
			}
			if err == nil {
				_, cerr := l.Compact(ctx, CompactOptions{TargetSize: 1 << 20})
				if tc.afterOpen && cerr == nil {
					t.Errorf("compact succeeded with a file under its output's name")
				}
				l.Close()
			}
			// The stray file is untouched, and once it is removed every
			// event is still there.
			if got, err := mem.ReadFile(stray); err != nil || !bytes.Equal(got, strayData) {
				t.Errorf("the stray file %s was replaced or removed (%v)", stray, err)
			}
			mem.Remove(stray)
			l = openMem(t, mem, crashOpts(SyncAlways))
			defer l.Close()
			if d := cmp.Diff(want, readAll(t, l), envCmp...); d != "" {
				t.Fatalf("events (-want +got):\n%s", d)
			}
		})
	}
}
