package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
)

// holeClock is a settable clock for the retention cases (set only
// between appends, by the test's goroutine).
type holeClock struct{ now time.Time }

func (c *holeClock) Now() time.Time { return c.now }

// holeCase is a file log with holes: events appended round robin to
// "a-1", "b-1", "c-1" (seq 1 in a-1), then build makes some read as gone
// (and may append more); with compact, Compact then replaces the gone
// events of sealed segments by placeholders.
type holeCase struct {
	name    string
	opts    func(c *holeClock) evlog.Options
	events  int // appended round robin to a-1, b-1, c-1 before build
	build   func(t *testing.T, l *evlog.Log, c *holeClock)
	compact bool
	// wantSeq is the first seq HolesError must name; marker whether it is
	// a deletion marker.
	wantSeq uint64
	marker  bool
}

func holeCases() []holeCase {
	plain := func(*holeClock) evlog.Options { return evlog.Options{SegmentSize: evlog.MinSegmentSize} }
	del := func(stream string) func(t *testing.T, l *evlog.Log, c *holeClock) {
		return func(t *testing.T, l *evlog.Log, _ *holeClock) {
			if _, _, err := l.DeleteStream(t.Context(), stream); err != nil {
				t.Fatal(err)
			}
		}
	}
	trunc := func(stream string, before uint64) func(t *testing.T, l *evlog.Log, c *holeClock) {
		return func(t *testing.T, l *evlog.Log, _ *holeClock) {
			if _, err := l.TruncateStream(t.Context(), stream, before); err != nil {
				t.Fatal(err)
			}
		}
	}
	tomb := func(stream string) func(t *testing.T, l *evlog.Log, c *holeClock) {
		return func(t *testing.T, l *evlog.Log, _ *holeClock) {
			if _, err := l.TombstoneStream(t.Context(), stream); err != nil {
				t.Fatal(err)
			}
		}
	}
	// keep appends events to a-1 after the deletion, so the hole is not
	// at the end.
	then := func(f func(t *testing.T, l *evlog.Log, c *holeClock), keep int) func(t *testing.T, l *evlog.Log, c *holeClock) {
		return func(t *testing.T, l *evlog.Log, c *holeClock) {
			f(t, l, c)
			for i := range keep {
				if _, err := l.Append(t.Context(), "a-1", evlog.ExpectAny, event.Envelope{Type: "later", Data: fmt.Appendf(nil, "later %d", i)}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	var cs []holeCase
	for _, compact := range []bool{false, true} {
		cs = append(cs,
			// b-1 holds seqs 2, 5, 8, ...: holes in the middle, the
			// marker at the end.
			holeCase{name: "deleted middle", opts: plain, events: 60, build: then(del("b-1"), 5), compact: compact, wantSeq: 2},
			// a-1 holds seq 1: a hole at the start.
			holeCase{name: "deleted start", opts: plain, events: 60, build: then(del("a-1"), 0), compact: compact, wantSeq: 1},
			holeCase{name: "truncated", opts: plain, events: 60, build: then(trunc("c-1", 10), 5), compact: compact, wantSeq: 3},
			holeCase{name: "tombstoned", opts: plain, events: 60, build: then(tomb("b-1"), 5), compact: compact, wantSeq: 2},
			// MaxCount 5 of category "a": a-1's older events expire.
			// In these three retention cases the writer's Open has
			// recorded the settings at seq 1 ($$retention), which Copy
			// refuses first; their holes come after it.
			holeCase{name: "retention count", opts: func(*holeClock) evlog.Options {
				return evlog.Options{SegmentSize: evlog.MinSegmentSize, Retention: map[string]evlog.Retention{"a": {MaxCount: 5}}}
			}, events: 60, compact: compact, wantSeq: 1, marker: true},
			// MaxAge of category "c": everything of c-1 expires, its
			// last event the log's last: a hole at the end.
			holeCase{name: "retention age at end", opts: func(c *holeClock) evlog.Options {
				return evlog.Options{SegmentSize: evlog.MinSegmentSize, Clock: c.Now, Retention: map[string]evlog.Retention{"c": {MaxAge: time.Hour}}}
			}, events: 60, build: func(t *testing.T, l *evlog.Log, c *holeClock) { c.now = c.now.Add(2 * time.Hour) }, compact: compact, wantSeq: 1, marker: true},
		)
	}
	// (Its events are in the unsealed segment, which Compact leaves.)
	cs = append(cs,
		// MaxAge of category "z", whose events are the log's last:
		// a hole at the end only, no marker after it.
		holeCase{name: "retention age only at end", opts: func(c *holeClock) evlog.Options {
			return evlog.Options{SegmentSize: evlog.MinSegmentSize, Clock: c.Now, Retention: map[string]evlog.Retention{"z": {MaxAge: time.Hour}}}
		}, events: 60, build: func(t *testing.T, l *evlog.Log, c *holeClock) {
			for i := range 3 {
				if _, err := l.Append(t.Context(), "z-1", evlog.ExpectAny, event.Envelope{Type: "t", Data: fmt.Appendf(nil, "secret z %d", i)}); err != nil {
					t.Fatal(err)
				}
			}
			c.now = c.now.Add(2 * time.Hour)
		}, wantSeq: 1, marker: true},
	)
	// A deletion marker that hides nothing (a tombstone of a stream that
	// never had an event) is a hole too: JetStream would not refuse the
	// appends to it that the file log refuses.
	cs = append(cs, holeCase{name: "marker alone", opts: plain, events: 6, build: then(tomb("z-1"), 3), wantSeq: 7, marker: true})
	// A log recording retention settings ($$retention, at seq 1: the
	// writer's Open records them), nothing expired yet: a JetStream log
	// would never apply them, so the copy would keep for ever what the
	// file log lets expire.
	cs = append(cs, holeCase{name: "retention recorded, nothing expired", opts: func(*holeClock) evlog.Options {
		return evlog.Options{SegmentSize: evlog.MinSegmentSize, Retention: map[string]evlog.Retention{"a": {MaxCount: 1000}}}
	}, events: 6, wantSeq: 1, marker: true})
	return cs
}

func buildHoleLog(t *testing.T, hc holeCase) *evlog.Log {
	t.Helper()
	ctx := t.Context()
	clock := &holeClock{now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}
	l, err := evlog.Open(t.TempDir(), hc.opts(clock))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	pad := strings.Repeat("x", 300) // several segments, so Compact has sealed ones
	for i := range hc.events {
		stream := []string{"a-1", "b-1", "c-1"}[i%3]
		if _, err := l.Append(ctx, stream, evlog.ExpectAny, event.Envelope{Type: "t", ID: fmt.Sprint("id-", i), Data: fmt.Appendf(nil, "secret %d %s", i, pad)}); err != nil {
			t.Fatal(err)
		}
	}
	if hc.build != nil {
		hc.build(t, l, clock)
	}
	if hc.compact {
		rep, err := l.Compact(ctx, evlog.CompactOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Groups) == 0 {
			t.Fatalf("Compact compacted nothing: %+v", rep)
		}
	}
	return l
}

// checkHoleCopy checks what a user needs of Copy from a source with
// holes: a refusal before anything is appended, with a *HolesError
// naming the first hole; never success with seqs renumbered, never a
// failure half way; and no payload of a gone event in the target.
func checkHoleCopy(t *testing.T, dst *evjs.Log, src *evlog.Log, hc holeCase, rep evjs.CopyReport, err error) {
	t.Helper()
	if err == nil {
		got, want := readAll(t, dst), readAll(t, src)
		t.Fatalf("Copy of a source with holes succeeded (%+v); the target ends at seq %d; its events differ from the source's (-source +target):\n%s", rep, dst.LastSeq(), cmp.Diff(want, got))
	}
	if n := dst.LastSeq(); n != 0 {
		t.Errorf("Copy failed with %v after appending %d events: it must refuse before appending anything", err, n)
	}
	var he *evjs.HolesError
	if !errors.As(err, &he) || !errors.Is(err, evjs.ErrHoles) {
		t.Fatalf("Copy error %v (%T): want a *HolesError matching ErrHoles", err, err)
	}
	if he.Seq != hc.wantSeq || he.Marker != hc.marker || he.Last != src.LastSeq() {
		t.Errorf("HolesError %+v: want Seq %d, Marker %v, Last %d", he, hc.wantSeq, hc.marker, src.LastSeq())
	}
}

// TestCopyHoles copies file logs with every kind of hole in their seqs
// (deleted, truncated, tombstoned, expired by count and by age; before
// and after Compact; at the start, in the middle and at the end; a lone
// deletion marker) to JetStream: Copy refuses each up front with a
// *HolesError, appending nothing.
func TestCopyHoles(t *testing.T) {
	s := startServer(t)
	js := connect(t, s.ClientURL())
	for _, hc := range holeCases() {
		name := hc.name
		if hc.compact {
			name += " compacted"
		}
		t.Run(name, func(t *testing.T) {
			src := buildHoleLog(t, hc)
			dst := openLog(t, js, evjs.Config{Replicas: 1})
			ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
			defer cancel()
			rep, err := evjs.Copy(ctx, dst, src, nil)
			checkHoleCopy(t, dst, src, hc, rep, err)
		})
	}
}

// TestCopyResumeAfterDeletion resumes a copy whose source has had a
// stream deleted and compacted since the first run: Copy refuses with a
// *HolesError saying the target holds events copied earlier, and copies
// nothing more (it used to fail with "event N is missing" or a checksum
// gap, or carry on).
func TestCopyResumeAfterDeletion(t *testing.T) {
	ctx := t.Context()
	hc := holeCase{opts: func(*holeClock) evlog.Options { return evlog.Options{SegmentSize: evlog.MinSegmentSize} }, events: 60}
	src := buildHoleLog(t, hc)
	s := startServer(t)
	dst := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1})
	if _, err := evjs.Copy(ctx, dst, src, nil); err != nil {
		t.Fatal(err)
	}
	copied := dst.LastSeq()
	for i := range 5 {
		if _, err := src.Append(ctx, "a-1", evlog.ExpectAny, event.Envelope{Type: "later", Data: fmt.Appendf(nil, "later %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := src.DeleteStream(ctx, "b-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Compact(ctx, evlog.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := evjs.Copy(ctx, dst, src, nil)
	var he *evjs.HolesError
	if !errors.As(err, &he) || !errors.Is(err, evjs.ErrHoles) {
		t.Fatalf("resumed Copy: %v (%T), want a *HolesError", err, err)
	}
	if he.Seq != 2 || he.Resumed != copied {
		t.Errorf("HolesError %+v: want Seq 2, Resumed %d", he, copied)
	}
	if n := dst.LastSeq(); n != copied {
		t.Errorf("the refused resume took the target from %d to %d events", copied, n)
	}
}
