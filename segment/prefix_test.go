package segment

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// StreamsWithPrefix on a sealed segment finds exactly the streams the
// in-memory index finds, with the same postings, for prefixes matching
// none, some or all of them; damage to a block is corruption.
func TestStreamsWithPrefix(t *testing.T) {
	x := NewIndex(1)
	off := int64(HeaderSize)
	names := []string{"a-1", "a-2", "a-2-x", "ab-1", "a", "b-1", "b-a-1"}
	for i := range 40 * len(names) { // more streams than one block holds
		name := names[i%len(names)]
		if i >= len(names) {
			name = fmt.Sprint(name, "-", i%37)
		}
		last, _ := x.LastVersion(name)
		x.Add(EventInfo{Seq: uint64(i + 1), Stream: name, Version: last + 1, Time: int64(i), Off: off, Len: 20})
		off += 20
	}
	x.End = off
	file, _ := seal(x, testHeader(1), nil)
	s, _ := openMem(t, FormatFileName(1, 0), file)
	byName := func(a, b string) int { return strings.Compare(a, b) }
	for _, prefix := range []string{"", "a-", "a-2", "b-", "ab-", "c-", "a-2-x-3"} {
		var want []string
		wantPosts := map[string][]Posting{}
		active, err := x.StreamsWithPrefix(prefix, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range active {
			want = append(want, e.Name)
			wantPosts[e.Name] = e.Posts
		}
		got, err := s.StreamsWithPrefix(prefix, nil)
		if err != nil {
			t.Fatalf("prefix %q: %v", prefix, err)
		}
		var gotNames []string
		for _, e := range got {
			if !strings.HasPrefix(e.Name, prefix) {
				t.Errorf("prefix %q: found %q", prefix, e.Name)
			}
			gotNames = append(gotNames, e.Name)
			posts, err := s.Postings(e.StreamEntry, nil)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(wantPosts[e.Name], posts); d != "" {
				t.Errorf("prefix %q, stream %q: postings (-index +footer):\n%s", prefix, e.Name, d)
			}
		}
		slices.SortFunc(want, byName)
		slices.SortFunc(gotNames, byName)
		if d := cmp.Diff(want, gotNames); d != "" {
			t.Errorf("prefix %q: streams (-index +footer):\n%s", prefix, d)
		}
	}

	// Damage in the stream blocks (between the postings and the summary).
	sum, err := s.Summary()
	if err != nil {
		t.Fatal(err)
	}
	at := sum.blocks[len(sum.blocks)/2].off + FrameHeaderSize + 3
	bad := slices.Clone(file)
	bad[at] ^= 0x40
	s2, _ := openMem(t, FormatFileName(1, 0), bad)
	if _, err := s2.StreamsWithPrefix("a-", nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped byte at %d: %v, want ErrCorrupt", at, err)
	}
}
