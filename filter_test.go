package evlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// filterCases are the filters the model tests run.
var filterCases = []Filter{
	{},
	{Categories: []string{"cart"}},
	{StreamPrefixes: []string{"inv-1"}},
	{Types: []string{"a"}},
	{Categories: []string{"cart"}, Types: []string{"b", "c"}},
	{StreamPrefixes: []string{"user-", "inv-"}},
	{Categories: []string{"nosuch"}},
	{StreamPrefixes: []string{"cart"}}, // "cart", "cart-*" and "cartography-*"
}

// filterStreams are the streams of appendFilterWork: categories, a stream
// named like a category, one sharing its prefix.
func filterStream(rng *rand.Rand) string {
	switch rng.IntN(6) {
	case 0:
		return "cart"
	case 1:
		return fmt.Sprintf("cartography-%d", rng.IntN(3))
	case 2, 3:
		return fmt.Sprintf("cart-%d", rng.IntN(20))
	case 4:
		return fmt.Sprintf("inv-%d", rng.IntN(30))
	}
	return fmt.Sprintf("user-%d", rng.IntN(200))
}

// appendFilterWork appends n events in batches of 1..4 and fails the test
// on error.
func appendFilterWork(t testing.TB, l *Log, rng *rand.Rand, n int) {
	t.Helper()
	for n > 0 {
		k := min(n, 1+rng.IntN(4))
		var reqs []AppendRequest
		for range k {
			reqs = append(reqs, AppendRequest{Stream: filterStream(rng), Expect: ExpectAny, Events: []Envelope{{
				Type: []string{"a", "b", "c"}[rng.IntN(3)], Data: bytes.Repeat([]byte{'x'}, rng.IntN(200)),
			}}})
		}
		if _, err := l.AppendBatch(t.Context(), reqs); err != nil {
			t.Fatal(err)
		}
		n -= k
	}
}

// modelFilter filters all the events of l: what a filtered read must give.
func modelFilter(all []Envelope, f Filter, from uint64) []Envelope {
	var out []Envelope
	for _, e := range all {
		if e.Seq >= from && f.Match(&e) {
			out = append(out, e)
		}
	}
	return out
}

func collectFiltered(t testing.TB, l *Log, from uint64, f Filter) []Envelope {
	t.Helper()
	var out []Envelope
	for e, err := range l.EventsFiltered(t.Context(), from, f) {
		if err != nil {
			t.Fatalf("EventsFiltered(%d, %+v): %v", from, f, err)
		}
		out = append(out, e)
	}
	return out
}

// checkFilteredReads compares every filtered read of l from several seqs
// against the model.
func checkFilteredReads(t *testing.T, l *Log, stage string) {
	t.Helper()
	all := readAll(t, l)
	last := l.LastSeq()
	for _, f := range filterCases {
		for _, from := range []uint64{0, 2, last/2 + 1, last, last + 1} {
			want, got := modelFilter(all, f, from), collectFiltered(t, l, from, f)
			if envsEqual(want, got) {
				continue
			}
			if d := cmp.Diff(want, got, envCmp...); d != "" {
				t.Fatalf("%s: EventsFiltered(from %d, %+v) differs from the model (-want +got):\n%s", stage, from, f, d)
			}
		}
	}
}

// TestEventsFilteredModel: a filtered read yields exactly the matching
// events of an unfiltered one, from any seq, across rolls, a compaction
// (plain and compressed) and appends into the active segment.
func TestEventsFilteredModel(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprint("compress=", compress), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 8))
			mem := vfs.NewMem()
			l := openMem(t, mem, Options{SegmentSize: MinSegmentSize})
			defer l.Close()
			appendFilterWork(t, l, rng, 600)
			if segs, _ := l.Segments(); len(segs) < 5 {
				t.Fatalf("%d segments, want several", len(segs))
			}
			checkFilteredReads(t, l, "after rolls")
			if _, err := l.Compact(t.Context(), CompactOptions{TargetSize: 1 << 20, Compress: compress}); err != nil {
				t.Fatal(err)
			}
			checkFilteredReads(t, l, "after compaction")
			appendFilterWork(t, l, rng, 30) // into the active segment
			checkFilteredReads(t, l, "after more appends")
			l.Close()
			r, err := openFS(vfs.ReadOnly(mem), Options{}, true)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			checkFilteredReads(t, r, "read-only")
		})
	}
}

// TestSubscribeFilteredModel: a filtered subscription started before the
// appends yields exactly the filtered sequence of the whole log — history,
// then live appends across rolls and a compaction — with no gap and no
// duplicate, on the writer's log and on a read-only log following it from
// another goroutine (virtual time: the follow interval costs nothing).
func TestSubscribeFilteredModel(t *testing.T) {
	for _, readOnly := range []bool{false, true} {
		t.Run(fmt.Sprint("readOnly=", readOnly), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				rng := rand.New(rand.NewPCG(9, 10))
				mem := vfs.NewMem()
				w := openMem(t, mem, Options{SegmentSize: MinSegmentSize})
				defer w.Close()
				appendFilterWork(t, w, rng, 150) // history
				src := w
				if readOnly {
					r, err := openFS(vfs.ReadOnly(mem), Options{FollowInterval: 20 * time.Millisecond}, true)
					if err != nil {
						t.Fatal(err)
					}
					defer r.Close()
					src = r
				}
				const total = 700
				type result struct {
					got []Envelope
					err error
				}
				results := make([]chan result, len(filterCases))
				sctx, cancel := context.WithCancel(ctx)
				defer cancel()
				for i, f := range filterCases {
					results[i] = make(chan result, 1)
					go func() {
						var res result
						for e, err := range src.SubscribeFiltered(sctx, 1, f) {
							if err != nil {
								res.err = err
								break
							}
							res.got = append(res.got, e)
						}
						results[i] <- res
					}()
				}
				appendFilterWork(t, w, rng, 300) // live, several rolls
				synctest.Wait()
				if _, err := w.Compact(ctx, CompactOptions{TargetSize: 1 << 20}); err != nil {
					t.Fatal(err)
				}
				appendFilterWork(t, w, rng, total-450)
				// Let every subscription catch up, then stop them.
				if readOnly {
					time.Sleep(time.Second) // virtual: many follow intervals
				}
				synctest.Wait()
				cancel()
				all := readAll(t, w)
				if len(all) != total {
					t.Fatalf("log holds %d events, want %d", len(all), total)
				}
				for i, f := range filterCases {
					res := <-results[i]
					if !errors.Is(res.err, context.Canceled) {
						t.Fatalf("filter %+v: subscription ended with %v, want context.Canceled", f, res.err)
					}
					if want := modelFilter(all, f, 1); envsEqual(want, res.got) {
						continue
					} else if d := cmp.Diff(want, res.got, envCmp...); d != "" {
						t.Fatalf("filter %+v: subscription differs from the model (-want +got):\n%s", f, d)
					}
				}
			})
		})
	}
}

func TestFilterValidate(t *testing.T) {
	for _, f := range []Filter{
		{Categories: []string{"a-b"}},
		{Categories: []string{""}},
		{StreamPrefixes: []string{""}},
		{Types: []string{""}},
	} {
		if err := f.Validate(); !errors.Is(err, ErrInvalidFilter) {
			t.Errorf("%+v: Validate = %v, want ErrInvalidFilter", f, err)
		}
		l := openMem(t, vfs.NewMem(), Options{})
		for _, err := range l.EventsFiltered(t.Context(), 1, f) {
			if !errors.Is(err, ErrInvalidFilter) {
				t.Errorf("%+v: EventsFiltered yields %v, want ErrInvalidFilter", f, err)
			}
		}
		l.Close()
	}
	if err := (Filter{Categories: []string{"cart"}, StreamPrefixes: []string{"x"}, Types: []string{"t"}}).Validate(); err != nil {
		t.Fatal(err)
	}
}
