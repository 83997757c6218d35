package evlog

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

// Streams, StreamBackward, Category and EventsFiltered see the streams of a checkpointed active
// segment (reopened after Close: its index is the checkpoint's, read on
// use) as well as those appended since.
func TestStreamsWithCheckpointedActiveSegment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	appendTo := func(l *Log, stream string, n int) {
		for range n {
			if _, err := l.Append(t.Context(), stream, ExpectAny, Envelope{Type: "e"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 30 {
		appendTo(l, fmt.Sprintf("old-%02d", i), 2)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendTo(l, "old-03", 1) // continues a checkpointed stream
	appendTo(l, "new-01", 2)
	want := map[string]uint64{"new-01": 2}
	for i := range 30 {
		want[fmt.Sprintf("old-%02d", i)] = 2
	}
	want["old-03"] = 3
	for _, src := range []*Log{l, mustReadOnly(t, dir)} {
		got := map[string]uint64{}
		for s, err := range src.Streams(t.Context(), "") {
			if err != nil {
				t.Fatal(err)
			}
			got[s.Stream] = s.Version
		}
		if len(got) != len(want) {
			t.Fatalf("read-only %v: Streams lists %d streams, want %d: %v", src.ReadOnly(), len(got), len(want), got)
		}
		for s, v := range want {
			if got[s] != v {
				t.Fatalf("read-only %v: stream %s at version %d, want %d", src.ReadOnly(), s, got[s], v)
			}
		}
		var vers []uint64
		for e, err := range src.StreamBackward(t.Context(), "old-03", 0) {
			if err != nil {
				t.Fatal(err)
			}
			vers = append(vers, e.Version)
		}
		if !slices.Equal(vers, []uint64{3, 2, 1}) {
			t.Fatalf("read-only %v: old-03 backward: %v", src.ReadOnly(), vers)
		}
		n := 0
		for e, err := range src.Category(t.Context(), "old", 1) {
			if err != nil {
				t.Fatal(err)
			}
			if e.Stream[:4] != "old-" {
				t.Fatalf("Category(old) yielded %s", e.Stream)
			}
			n++
		}
		if n != 61 {
			t.Fatalf("read-only %v: Category(old) yielded %d events, want 61", src.ReadOnly(), n)
		}
		n = 0
		for _, err := range src.EventsFiltered(t.Context(), 1, Filter{StreamPrefixes: []string{"old-0"}}) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 21 {
			t.Fatalf("read-only %v: EventsFiltered(old-0) yielded %d events, want 21", src.ReadOnly(), n)
		}
	}
}

func mustReadOnly(t *testing.T, dir string) *Log {
	t.Helper()
	l, err := OpenReadOnly(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
