package evlog

import (
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// TestCompactRedactsOnlyOnDurableWord: Compact physically redacts durable
// events because of a deletion marker or of newer versions (retention's
// MaxCount); under SyncNever those may still be only in the page cache. A
// power loss right after the compaction must not leave the durable events
// redacted while what made them gone is lost: after recovery, either the
// marker (and the newer versions) survived, or the events still read.
func TestCompactRedactsOnlyOnDurableWord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ret  map[string]Retention
		// gone makes versions of stream "a-1" read as gone, without a Sync.
		gone func(t *testing.T, l *Log)
		// want is the versions of "a-1" that must read after a crash that
		// drops everything gone wrote; kept after one that keeps it.
		want, kept []uint64
	}{
		{"delete", nil, func(t *testing.T, l *Log) {
			if _, _, err := l.DeleteStream(t.Context(), "a-1"); err != nil {
				t.Fatal(err)
			}
		}, []uint64{1, 2, 3, 4}, nil},
		{"tombstone", nil, func(t *testing.T, l *Log) {
			if _, err := l.TombstoneStream(t.Context(), "a-1"); err != nil {
				t.Fatal(err)
			}
		}, []uint64{1, 2, 3, 4}, nil},
		{"retention MaxCount", map[string]Retention{"a": {MaxCount: 2}}, func(t *testing.T, l *Log) {
			if _, err := l.Append(t.Context(), "a-1", ExpectVersion(4), Envelope{Type: "t"}, Envelope{Type: "t"}); err != nil {
				t.Fatal(err)
			}
		}, []uint64{3, 4}, []uint64{5, 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			mem := vfs.NewMem()
			opts := crashOpts(SyncNever)
			opts.Retention = tc.ret
			l := openMem(t, mem, opts)
			defer l.Close()
			for v := range 4 {
				if _, err := l.Append(ctx, "a-1", ExpectAny, Envelope{Type: "t", Data: fmt.Appendf(nil, "<a-1/%03d>", v+1)}); err != nil {
					t.Fatal(err)
				}
			}
			// Seal the segment holding a-1's events, and make them durable.
			if _, err := l.Append(ctx, "pad-1", ExpectAny, Envelope{Type: "t", Data: make([]byte, MinSegmentSize)}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Append(ctx, "pad-1", ExpectAny, Envelope{Type: "t"}); err != nil {
				t.Fatal(err)
			}
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			tc.gone(t, l)
			rep, err := l.Compact(ctx, CompactOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(rep.Groups, func(g CompactGroup) bool { return g.Redact }) {
				t.Fatalf("Compact redacted nothing: %+v", rep.Groups)
			}
			crashed := mem.CrashClone(vfs.DropUnsynced, nil)
			r := openMem(t, crashed, opts)
			defer r.Close()
			var got []uint64
			for e, err := range r.Stream(ctx, "a-1", 1) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, e.Version)
			}
			dels, err := r.Deletions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.want; len(dels) > 0 || r.LastSeq() > 6 {
				if want = tc.kept; !cmp.Equal(want, got) {
					t.Errorf("after a crash keeping what made them gone, a-1 reads versions %v, want %v", got, want)
				}
			} else if !cmp.Equal(want, got) {
				t.Errorf("after a crash losing what made them gone, a-1 reads versions %v, want %v: durable events were redacted", got, want)
			}
		})
	}
}
