package evlog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// catStreams are the streams of the category tests: categories sharing
// prefixes ("inv" and "inventory"), ids holding the separator, a bare
// stream named like a category, and streams of no category.
var catStreams = []string{
	"inv-a", "inv-b", "inv-a-b", "inv-2026-11-25", "inv-", "inventory-a", "inventory-inv-a",
	"inv", "invoice", "wallet-a", "wallet-inv-a", "x",
}

var catNames = []string{"inv", "inventory", "wallet", "invoice", "x", "nothing"}

// modelCategory is what Category(name, from) must yield: the events of the
// streams named name + "-" + anything, in seq order.
func modelCategory(all []Envelope, name string, from uint64) []Envelope {
	var out []Envelope
	for _, e := range all {
		if e.Seq >= from && strings.HasPrefix(e.Stream, name+"-") {
			out = append(out, e)
		}
	}
	return out
}

func readCategory(t *testing.T, l *Log, name string, from uint64) []Envelope {
	t.Helper()
	var out []Envelope
	for e, err := range l.Category(t.Context(), name, from) {
		if err != nil {
			t.Fatalf("Category(%q, %d): %v", name, from, err)
		}
		out = append(out, e)
	}
	return out
}

// checkCategories compares every category, from several seqs, with the
// model computed from all of l's events.
func checkCategories(t *testing.T, rng *rand.Rand, l *Log, when string) {
	t.Helper()
	all := readAll(t, l)
	froms := []uint64{0, 1, uint64(len(all)), uint64(len(all) + 1)}
	for range 4 {
		froms = append(froms, uint64(rng.IntN(len(all)+2)))
	}
	for _, name := range catNames {
		for _, from := range froms {
			want := modelCategory(all, name, from)
			if got := readCategory(t, l, name, from); !envsEqual(want, got) {
				t.Fatalf("%s: Category(%q, %d) (-model +log):\n%s", when, name, from, cmp.Diff(want, got, envCmp...))
			}
		}
	}
}

// Category against the model, across sealed, compacted (plain and
// compressed) and active segments, read by the writer and by a read-only
// log beside it.
func TestCategoryModel(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			ctx := t.Context()
			rng := rand.New(rand.NewPCG(seed, 13))
			mem := vfs.NewMem()
			l := openMem(t, mem, crashOpts(SyncAlways))
			defer l.Close()
			checkCategories(t, rng, l, "empty log")
			tm := t0
			for step := range 12 {
				for range 40 {
					var reqs []AppendRequest
					for range 1 + rng.IntN(3) {
						r := AppendRequest{Stream: catStreams[rng.IntN(len(catStreams))], Expect: ExpectAny}
						for range 1 + rng.IntN(4) {
							tm = tm.Add(time.Duration(rng.IntN(3)) * time.Millisecond)
							r.Events = append(r.Events, Envelope{Type: "t", Time: tm, Data: fmt.Appendf(nil, "\xa4%04d", rng.IntN(10000))})
						}
						reqs = append(reqs, r)
					}
					if _, err := l.AppendBatch(ctx, reqs); err != nil {
						t.Fatal(err)
					}
				}
				checkCategories(t, rng, l, fmt.Sprintf("step %d", step))
				if step%4 == 3 {
					if _, err := l.Compact(ctx, CompactOptions{TargetSize: 64 << 10, Compress: step%8 == 7}); err != nil {
						t.Fatal(err)
					}
					checkCategories(t, rng, l, fmt.Sprintf("step %d, compacted", step))
				}
			}
			segs, err := l.Segments()
			if err != nil {
				t.Fatal(err)
			}
			if len(segs) < 3 {
				t.Fatalf("%d segments: the test wants sealed, compacted and active ones", len(segs))
			}
			ro, err := openFS(mem, crashOpts(SyncAlways), true)
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			checkCategories(t, rng, ro, "read-only")
		})
	}
}

func TestCategoryInvalidName(t *testing.T) {
	l := openMem(t, vfs.NewMem(), Options{})
	defer l.Close()
	if _, err := l.Append(t.Context(), "a-b", ExpectAny, Envelope{Type: "t"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "a-", "a-b", "tab\t", "\xff"} {
		n := 0
		for _, err := range l.Category(t.Context(), name, 1) {
			n++
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Category(%q): %v, want ErrInvalid", name, err)
			}
		}
		if n != 1 {
			t.Errorf("Category(%q) yielded %d values, want one error", name, n)
		}
	}
}

// Breaking out of a Category iteration stops it; a closed log is an error.
func TestCategoryStopAndClosed(t *testing.T) {
	l := openMem(t, vfs.NewMem(), Options{})
	for i := range 10 {
		if _, err := l.Append(t.Context(), fmt.Sprint("c-", i%3), ExpectAny, Envelope{Type: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, err := range l.Category(t.Context(), "c", 1) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	l.Close()
	for _, err := range l.Category(t.Context(), "c", 1) {
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Category on a closed log: %v, want ErrClosed", err)
		}
	}
}

// Category reads the footers' stream blocks and the category's frames,
// never the other events: a sealed segment without a stream of the
// category is read no further than its footer.
func TestCategoryReadsOnlyIndexesAndItsFrames(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	fsys := vfs.NewCounting(mem)
	l := openMem(t, fsys, Options{SegmentSize: MinSegmentSize})
	defer l.Close()
	data := []byte("\xb0sixteen bytes..")
	appendN := func(prefix string, n int) {
		for i := range n {
			if _, err := l.Append(ctx, fmt.Sprint(prefix, i%7), ExpectAny, Envelope{Type: "t", Data: data}); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN("other-", 300)
	appendN("target-", 3)
	appendN("other-", 300)
	appendN("target-", 2) // in the active segment
	segs, err := l.Segments()
	if err != nil {
		t.Fatal(err)
	}
	if len(segs) < 4 {
		t.Fatalf("%d segments, want at least 4", len(segs))
	}
	fsys.Reset()
	if got := readCategory(t, l, "target", 1); len(got) != 5 {
		t.Fatalf("Category(target) yielded %d events, want 5", len(got))
	}
	read := map[string]int64{}
	for _, info := range segs {
		read[info.File] = fsys.File(info.File).BytesRead
	}
	var withTarget, without int
	for _, info := range segs {
		s, err := segment.Open(mem, info.File)
		if err != nil {
			t.Fatal(err)
		}
		read := read[info.File]
		holds := false
		for e, err := range l.Events(ctx, s.FirstSeq()) {
			if err != nil {
				t.Fatal(err)
			}
			if s.Sealed && e.Seq > s.Trailer.LastSeq {
				break
			}
			holds = holds || strings.HasPrefix(e.Stream, "target-")
		}
		switch {
		case !s.Sealed:
			// The active segment: only the two frames, from the index.
			if read > 2*128 {
				t.Errorf("active %s: read %d bytes for two events", info.File, read)
			}
		case !holds:
			without++
			if footer := s.Size - s.Trailer.RecordsEnd; read > footer {
				t.Errorf("%s holds no stream of the category, but %d bytes of it were read (its footer is %d)", info.File, read, footer)
			}
		default:
			withTarget++
			if footer := s.Size - s.Trailer.RecordsEnd; read > footer+3*128 {
				t.Errorf("%s: read %d bytes, more than its footer (%d) and three events", info.File, read, footer)
			}
		}
		s.Close()
	}
	if withTarget == 0 || without < 2 {
		t.Fatalf("segments with the category: %d, without: %d; the test needs both", withTarget, without)
	}
}
