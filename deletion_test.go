package evlog

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/internal/vfs"
)

// delPayload is the payload of the deletion tests' events.
type delPayload struct{ N int }

// appendDelN appends n events to stream, each with a msgpack payload naming
// the stream and its index.
func appendDelN(t *testing.T, l *Log, stream string, n int) {
	t.Helper()
	for i := range n {
		data, _ := msgpack.Marshal(delPayload{N: i})
		if _, err := l.Append(t.Context(), stream, ExpectAny, Envelope{Type: "t", Data: data}); err != nil {
			t.Fatal(err)
		}
	}
}

// seen is what every read path yields, as "stream/version" strings.
type seen struct {
	events, filtered, category, subscribe, typed []string
	stream, backward, typedStream                []string
	streams                                      []string // "stream v=V before=B"
}

func collect[V any](t *testing.T, it iter.Seq2[V, error], key func(V) string) []string {
	t.Helper()
	var out []string
	for v, err := range it {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, key(v))
	}
	return out
}

func envKey(e Envelope) string { return fmt.Sprintf("%s/%d", e.Stream, e.Version) }

// readEveryWay reads l through every read path; stream is the stream the
// stream reads look at.
func readEveryWay(t *testing.T, l *Log, stream string) seen {
	t.Helper()
	ctx := t.Context()
	tl := Typed[delPayload](l)
	user := func(s []string) []string { // the user events (not the markers)
		var out []string
		for _, k := range s {
			if len(k) < 2 || k[:2] != SystemStreamPrefix {
				out = append(out, k)
			}
		}
		return out
	}
	var s seen
	s.events = user(collect(t, l.Events(ctx, 1), envKey))
	s.filtered = collect(t, l.EventsFiltered(ctx, 1, Filter{StreamPrefixes: []string{"cart-", "order-"}}), envKey)
	s.category = collect(t, l.Category(ctx, "cart", 1), envKey)
	last := l.pub.seq
	sctx, cancel := guarded(ctx)
	for e, err := range l.Subscribe(sctx, 1) {
		if err != nil {
			t.Fatalf("Subscribe(1) up to seq %d: %v", last, hungErr(sctx, err))
		}
		s.subscribe = append(s.subscribe, envKey(e))
		if e.Seq == last {
			break
		}
	}
	cancel()
	s.subscribe = user(s.subscribe)
	s.typed = collect(t, tl.Events(ctx, 1), func(e Event[delPayload]) string {
		return fmt.Sprintf("%s/%d", e.Stream, e.Version)
	})
	s.stream = collect(t, l.Stream(ctx, stream, 0), envKey)
	s.backward = collect(t, l.StreamBackward(ctx, stream, 0), envKey)
	s.typedStream = collect(t, tl.Stream(ctx, stream, 0), func(e Event[delPayload]) string {
		return fmt.Sprintf("%s/%d", e.Stream, e.Version)
	})
	s.streams = user(collect(t, l.Streams(ctx, ""), func(si StreamInfo) string {
		return fmt.Sprintf("%s v=%d before=%d", si.Stream, si.Version, si.TruncatedBefore)
	}))
	return s
}

func keys(stream string, from, to int) []string {
	var out []string
	for v := from; v <= to; v++ {
		out = append(out, fmt.Sprintf("%s/%d", stream, v))
	}
	return out
}

func reverse(s []string) []string {
	if s == nil {
		return nil
	}
	out := make([]string, len(s))
	for i, k := range s {
		out[len(s)-1-i] = k
	}
	return out
}

// TestDeleteReadPaths: soft delete, truncate and tombstone read as gone
// at once on every read path, on the writer, beside it (read-only, after
// Refresh) and after a compaction; the markers are ordinary events.
func TestDeleteReadPaths(t *testing.T) {
	for _, tc := range []struct {
		name   string
		del    func(t *testing.T, l *Log)
		cart   []string // what remains of cart-1 (5 events, then more)
		before uint64
		after  func(t *testing.T, l *Log) // writes after the deletion
	}{
		{
			name: "soft", del: func(t *testing.T, l *Log) {
				pos, v, err := l.DeleteStream(t.Context(), "cart-1")
				if err != nil || v != 5 || pos.Seq == 0 {
					t.Fatalf("DeleteStream = %+v, %d, %v", pos, v, err)
				}
			},
			after: func(t *testing.T, l *Log) {
				// Written again from its next version.
				if p, err := l.Append(t.Context(), "cart-1", ExpectVersion(5), Envelope{Type: "t", Data: []byte{0x80}}); err != nil || p.Version != 6 {
					t.Fatalf("append after soft delete = %+v, %v", p, err)
				}
			},
			cart: keys("cart-1", 6, 6), before: 6,
		},
		{
			name: "truncate", del: func(t *testing.T, l *Log) {
				if _, err := l.TruncateStream(t.Context(), "cart-1", 4); err != nil {
					t.Fatal(err)
				}
			},
			cart: keys("cart-1", 4, 5), before: 4,
		},
		{
			name: "tombstone", del: func(t *testing.T, l *Log) {
				if _, err := l.TombstoneStream(t.Context(), "cart-1"); err != nil {
					t.Fatal(err)
				}
			},
			after: func(t *testing.T, l *Log) {
				_, err := l.Append(t.Context(), "cart-1", ExpectAny, Envelope{Type: "t"})
				if de, ok := errors.AsType[*StreamDeletedError](err); !ok || de.Stream != "cart-1" || !errors.Is(err, ErrStreamDeleted) {
					t.Fatalf("append to a tombstoned stream: %v, want a *StreamDeletedError", err)
				}
				_, err = Typed[delPayload](l).Append(t.Context(), "cart-1", ExpectAny, Event[delPayload]{Type: "t"})
				if !errors.Is(err, ErrStreamDeleted) {
					t.Fatalf("typed append to a tombstoned stream: %v, want ErrStreamDeleted", err)
				}
				if _, _, err := l.DeleteStream(t.Context(), "cart-1"); !errors.Is(err, ErrStreamDeleted) {
					t.Fatalf("soft delete of a tombstoned stream: %v, want ErrStreamDeleted", err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			l := openMem(t, mem, Options{SegmentSize: MinSegmentSize, Sync: SyncNever})
			defer l.Close()
			appendDelN(t, l, "cart-1", 5)
			appendDelN(t, l, "cart-2", 3)
			appendDelN(t, l, "order-1", 2)
			ro, err := openFS(vfs.ReadOnly(mem), Options{}, true)
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			before := readEveryWay(t, ro, "cart-1")
			if len(before.stream) != 5 {
				t.Fatalf("before deleting, cart-1 reads %v", before.stream)
			}
			tc.del(t, l)
			if tc.after != nil {
				tc.after(t, l)
			}
			if err := l.Sync(t.Context()); err != nil {
				t.Fatal(err)
			}
			others := append(keys("cart-2", 1, 3), keys("order-1", 1, 2)...)
			wantAll := append(append([]string(nil), tc.cart...), others...)
			sortKeys := func(s []string) []string { // seq order: cart-1 after the others when rewritten
				var a, b []string
				for _, k := range s {
					if len(k) > 6 && k[:7] == "cart-1/" {
						a = append(a, k)
					} else {
						b = append(b, k)
					}
				}
				if tc.name == "soft" {
					return append(b, a...)
				}
				return append(a, b...)
			}
			wantCart := append([]string(nil), tc.cart...)
			wantStreams := []string{"cart-2 v=3 before=0", "order-1 v=2 before=0"}
			switch {
			case tc.name == "soft":
				wantStreams = append([]string{"cart-1 v=6 before=6"}, wantStreams...)
			case len(tc.cart) > 0:
				wantStreams = append([]string{fmt.Sprintf("cart-1 v=5 before=%d", tc.before)}, wantStreams...)
			}
			want := seen{
				events: sortKeys(wantAll), filtered: sortKeys(wantAll), subscribe: sortKeys(wantAll), typed: sortKeys(wantAll),
				category: sortKeys(append(append([]string(nil), tc.cart...), keys("cart-2", 1, 3)...)),
				stream:   wantCart, backward: reverse(wantCart), typedStream: wantCart,
				streams: wantStreams,
			}
			check := func(what string, l *Log) {
				t.Helper()
				if diff := cmp.Diff(want, readEveryWay(t, l, "cart-1"), cmp.AllowUnexported(seen{})); diff != "" {
					t.Errorf("%s (-want +got):\n%s", what, diff)
				}
			}
			check("writer", l)
			if err := ro.Refresh(); err != nil {
				t.Fatal(err)
			}
			check("read-only beside the writer, after Refresh", ro)
			ro2, err := openFS(vfs.ReadOnly(mem), Options{}, true)
			if err != nil {
				t.Fatal(err)
			}
			check("read-only opened after", ro2)
			ro2.Close()
			if _, err := l.Compact(t.Context(), CompactOptions{}); err != nil {
				t.Fatal(err)
			}
			check("after Compact", l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openMem(t, mem, Options{SegmentSize: MinSegmentSize, Sync: SyncNever})
			check("reopened", l)
		})
	}
}

// TestDeleteReserved: system streams and types cannot be appended to, and
// invalid truncations and retention options are refused.
func TestDeleteReserved(t *testing.T) {
	ctx := t.Context()
	l := openMem(t, vfs.NewMem(), Options{})
	defer l.Close()
	appendDelN(t, l, "a-1", 2)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"system stream", func() error {
			_, err := l.Append(ctx, DeletionsStream, ExpectAny, Envelope{Type: TypeTombstone})
			return err
		}()},
		{"system type", func() error {
			_, err := l.Append(ctx, "a-1", ExpectAny, Envelope{Type: TypeRedacted})
			return err
		}()},
		{"typed system type", func() error {
			_, err := Typed[delPayload](l).Append(ctx, "a-1", ExpectAny, Event[delPayload]{Type: "$x"})
			return err
		}()},
		{"truncate beyond the end", func() error { _, err := l.TruncateStream(ctx, "a-1", 4); return err }()},
		{"truncate before 0", func() error { _, err := l.TruncateStream(ctx, "a-1", 0); return err }()},
		{"delete a system stream", func() error { _, err := l.TombstoneStream(ctx, DeletionsStream); return err }()},
		{"retention negative", Options{Retention: map[string]Retention{"a": {MaxCount: -1}}}.Validate()},
		{"retention empty", Options{Retention: map[string]Retention{"a": {}}}.Validate()},
		{"retention not a category", Options{Retention: map[string]Retention{"a-b": {MaxCount: 1}}}.Validate()},
	} {
		if !errors.Is(tc.err, ErrInvalid) && !(tc.name[:9] == "retention" && tc.err != nil) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, tc.err)
		}
	}
	if v, err := l.StreamVersion(ctx, DeletionsStream); err != nil || v != 0 {
		t.Errorf("the refused appends wrote %d markers (%v)", v, err)
	}
	if pos, v, err := l.DeleteStream(ctx, "nope-1"); err != nil || pos.Seq != 0 || v != 0 {
		t.Errorf("deleting a stream without events = %+v, %d, %v; want nothing written", pos, v, err)
	}
}

// TestRetention: MaxCount and MaxAge per category read as gone at once,
// other categories untouched.
func TestRetention(t *testing.T) {
	ctx := t.Context()
	now := t0
	clock := func() time.Time { return now }
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{Clock: clock, Sync: SyncNever})
	for i := range 6 {
		now = t0.Add(time.Duration(i) * time.Hour)
		for _, s := range []string{"log-1", "keep-1", "aged-1"} {
			if _, err := l.Append(ctx, s, ExpectAny, Envelope{Type: "t"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	l.Close()
	now = t0.Add(5*time.Hour + 30*time.Minute)
	l = openMem(t, mem, Options{Clock: clock, Sync: SyncNever, Retention: map[string]Retention{"log": {MaxCount: 2}, "aged": {MaxAge: 2 * time.Hour}}})
	defer l.Close()
	got := map[string][]string{}
	for _, s := range []string{"log-1", "keep-1", "aged-1"} {
		got[s] = collect(t, l.Stream(ctx, s, 0), envKey)
	}
	got["events"] = collect(t, l.Events(ctx, 1), envKey)
	got["streams"] = collect(t, l.Streams(ctx, ""), func(si StreamInfo) string { return fmt.Sprintf("%s %d", si.Stream, si.TruncatedBefore) })
	// Now is 5h30: the 2h window of "aged" starts at 3h30, so aged-1 keeps
	// versions 5 and 6 (recorded at 4h and 5h).
	want := map[string][]string{
		"log-1": keys("log-1", 5, 6), "keep-1": keys("keep-1", 1, 6), "aged-1": keys("aged-1", 5, 6),
		// The reopen recorded the retention: an event of RetentionStream.
		"events":  append(keys("keep-1", 1, 4), "log-1/5", "keep-1/5", "aged-1/5", "log-1/6", "keep-1/6", "aged-1/6", RetentionStream+"/1"),
		"streams": {RetentionStream + " 0", "aged-1 0", "keep-1 0", "log-1 5"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("retention (-want +got):\n%s", diff)
	}
}

// memBytes returns the total size of mem's files and whether any holds
// needle.
func memBytes(t *testing.T, mem *vfs.Mem, needle []byte) (int64, bool) {
	t.Helper()
	names, err := mem.List()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	found := false
	for _, n := range names {
		b, err := mem.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		total += int64(len(b))
		found = found || bytes.Contains(b, needle)
	}
	return total, found
}

// TestDeleteCompactRemovesPayloads: after a deletion, Compact rewrites
// the segments holding gone events as placeholders (plain and compressed
// segments, a lone segment too): the payloads are physically gone, the
// directory shrinks, every read returns what it returned before Compact,
// and a second Compact has nothing left to redact.
func TestDeleteCompactRemovesPayloads(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprintf("compress=%v", compress), func(t *testing.T) {
			ctx := t.Context()
			mem := vfs.NewMem()
			l := openMem(t, mem, Options{SegmentSize: MinSegmentSize, Sync: SyncNever})
			defer l.Close()
			secret := bytes.Repeat([]byte("SECRET-PAYLOAD-"), 20)
			keep := bytes.Repeat([]byte("kept-payload-"), 20)
			for i := range 60 {
				for _, s := range []string{"user-1", "user-2"} {
					p := keep
					if s == "user-1" {
						p = secret
					}
					data, _ := msgpack.Marshal(map[string]any{"i": i, "p": string(p)})
					if _, err := l.Append(ctx, s, ExpectAny, Envelope{Type: "t", Data: data}); err != nil {
						t.Fatal(err)
					}
				}
			}
			if compress {
				if _, err := l.Compact(ctx, CompactOptions{Compress: true, TargetSize: MinSegmentSize}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := l.TombstoneStream(ctx, "user-1"); err != nil {
				t.Fatal(err)
			}
			if err := l.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			// Seal the segment holding the marker and the last events.
			l.Close()
			l = openMem(t, mem, Options{SegmentSize: MinSegmentSize, Sync: SyncNever})
			appendDelN(t, l, "other-1", 40)
			before := readAll(t, l)
			sizeBefore, _ := memBytes(t, mem, nil)
			if !compress {
				if _, found := memBytes(t, mem, []byte("SECRET-PAYLOAD-")); !found {
					t.Fatal("the deleted payload is not on disk before Compact: the test cannot tell")
				}
			}
			rep, err := l.Compact(ctx, CompactOptions{Compress: compress, TargetSize: 2 * MinSegmentSize})
			if err != nil {
				t.Fatal(err)
			}
			redacted := 0
			for _, g := range rep.Groups {
				if g.Redact {
					redacted++
				}
			}
			if redacted == 0 {
				t.Fatalf("Compact redacted nothing: %+v", rep)
			}
			if diff := envsDiff(before, readAll(t, l)); diff != "" {
				t.Errorf("reads changed across Compact (-before +after):\n%s", diff)
			}
			sizeAfter, found := memBytes(t, mem, []byte("SECRET-PAYLOAD-"))
			if found {
				t.Error("a deleted payload is still on disk after Compact")
			}
			if sizeAfter >= sizeBefore {
				t.Errorf("the directory did not shrink: %d bytes before Compact, %d after", sizeBefore, sizeAfter)
			}
			if _, found := memBytes(t, mem, []byte("kept-payload-")); !found && !compress {
				t.Error("a kept payload is gone")
			}
			rep, err = l.Compact(ctx, CompactOptions{Compress: compress, TargetSize: 2 * MinSegmentSize})
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range rep.Groups {
				if g.Redact {
					t.Errorf("a second Compact redacts again: %+v", g)
				}
			}
			// The placeholders keep seqs and versions: the stream's
			// version, the seqs of the survivors and Verify are intact.
			if v, err := l.StreamVersion(ctx, "user-1"); err != nil || v != 60 {
				t.Errorf("StreamVersion(user-1) = %d, %v after Compact, want 60", v, err)
			}
			l.Close()
			l = openMem(t, mem, Options{SegmentSize: MinSegmentSize, Sync: SyncNever})
			if diff := envsDiff(before, readAll(t, l)); diff != "" {
				t.Errorf("reads changed after reopening (-before +after):\n%s", diff)
			}
		})
	}
}

// TestRetentionCompact: Compact removes the payloads of events beyond
// retention (MaxCount and MaxAge) and keeps the others; reads are the
// same before and after.
func TestRetentionCompact(t *testing.T) {
	ctx := t.Context()
	now := t0
	clock := func() time.Time { return now }
	mem := vfs.NewMem()
	opts := Options{Clock: clock, Sync: SyncNever, SegmentSize: MinSegmentSize}
	l := openMem(t, mem, opts)
	for i := range 40 {
		now = t0.Add(time.Duration(i) * time.Minute)
		for _, s := range []string{"count-1", "age-1", "keep-1"} {
			if _, err := l.Append(ctx, s, ExpectAny, Envelope{Type: "t", Data: fmt.Appendf(nil, "<%s/%03d>%080d", s, i+1, 0)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	l.Close()
	now = t0.Add(40 * time.Minute)
	opts.Retention = map[string]Retention{"count": {MaxCount: 5}, "age": {MaxAge: 10 * time.Minute}}
	l = openMem(t, mem, opts)
	defer l.Close()
	for range 2 { // seal the segment holding our last events
		if _, err := l.Append(ctx, "pad-1", ExpectAny, Envelope{Type: "t", Data: make([]byte, MinSegmentSize)}); err != nil {
			t.Fatal(err)
		}
	}
	before := readAll(t, l)
	if _, err := l.Compact(ctx, CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	if diff := envsDiff(before, readAll(t, l)); diff != "" {
		t.Errorf("reads changed across Compact (-before +after):\n%s", diff)
	}
	kept := map[string]int{}
	for _, e := range before {
		kept[e.Stream]++
	}
	// Now is 40m: "age" keeps what was recorded at 30m or later, versions
	// 31..40 (recorded at 30m..39m).
	// The reopen recorded the retention: an event of RetentionStream.
	if want := map[string]int{"count-1": 5, "age-1": 10, "keep-1": 40, "pad-1": 2, RetentionStream: 1}; !cmp.Equal(want, kept) {
		t.Errorf("visible events per stream %v, want %v", kept, want)
	}
	for v := 1; v <= 40; v++ {
		for _, tc := range []struct {
			stream string
			gone   bool
		}{{"count-1", v <= 35}, {"age-1", v <= 30}, {"keep-1", false}} {
			_, found := memBytes(t, mem, fmt.Appendf(nil, "<%s/%03d>", tc.stream, v))
			if found == tc.gone {
				t.Errorf("%s/%d: on disk %v after Compact, want %v", tc.stream, v, found, !tc.gone)
			}
		}
	}
}

// TestDeleteLiveSubscribe: a subscriber (on the writer, and following it
// read-only) that read a stream's events before they were deleted keeps
// them read, then sees the marker and only what follows; nothing is
// yielded twice and no visible event is skipped.
func TestDeleteLiveSubscribe(t *testing.T) {
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{Sync: SyncNever})
	defer l.Close()
	ctx := t.Context()
	appendDelN(t, l, "a-1", 3)
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	ro, err := openFS(vfs.ReadOnly(mem), Options{FollowInterval: time.Millisecond}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	want := []string{"a-1/1", "a-1/2", "a-1/3", DeletionsStream + "/1", "a-1/4", "b-1/1"}
	type result struct {
		got []string
		err error
	}
	subscribe := func(sl *Log, read3 chan<- struct{}, out chan<- result) {
		var r result
		sctx, cancel := guarded(ctx)
		defer cancel()
		for e, err := range sl.Subscribe(sctx, 1) {
			if err != nil {
				r.err = hungErr(sctx, err)
				break
			}
			r.got = append(r.got, envKey(e))
			if len(r.got) == 3 {
				read3 <- struct{}{}
			}
			if e.Stream == "b-1" {
				break
			}
		}
		out <- r
	}
	read3 := make(chan struct{}, 2)
	out := make(chan result, 2)
	go subscribe(l, read3, out)
	go subscribe(ro, read3, out)
	for range 2 {
		select {
		case <-read3:
		case r := <-out: // a subscription ended before its third event
			t.Fatalf("a subscription ended after %v: %v", r.got, r.err)
		}
	}
	if _, _, err := l.DeleteStream(ctx, "a-1"); err != nil {
		t.Fatal(err)
	}
	appendDelN(t, l, "a-1", 1)
	appendDelN(t, l, "b-1", 1)
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		r := <-out
		if r.err != nil {
			t.Fatal(r.err)
		}
		if diff := cmp.Diff(want, r.got); diff != "" {
			t.Errorf("live subscription across a deletion (-want +got):\n%s", diff)
		}
	}
}

// TestDeleteBackupRestore: deletions are events, so a backup carries them
// and the restored log reads (and refuses appends) as the source did; a
// point-in-time restore to before the deletion has the events back (the
// backup holds them: erasure must cover backups).
func TestDeleteBackupRestore(t *testing.T) {
	ctx := t.Context()
	dir, bdir := t.TempDir(), t.TempDir()
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendDelN(t, l, "a-1", 5)
	appendDelN(t, l, "b-1", 4)
	last := l.LastSeq()
	if _, err := l.TombstoneStream(ctx, "a-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.TruncateStream(ctx, "b-1", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Backup(ctx, bdir, BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		opts  RestoreOptions
		want  []string
		tombs bool
	}{
		{"whole", RestoreOptions{}, keys("b-1", 3, 4), true},
		{"before the deletions", RestoreOptions{ToSeq: last}, append(keys("a-1", 1, 5), keys("b-1", 1, 4)...), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rdir := t.TempDir() + "/r"
			if _, err := Restore(ctx, bdir, rdir, tc.opts); err != nil {
				t.Fatal(err)
			}
			r, err := Open(rdir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			var got []string
			for _, s := range []string{"a-1", "b-1"} {
				got = append(got, collect(t, r.Stream(ctx, s, 0), envKey)...)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("restored log reads (-want +got):\n%s", diff)
			}
			_, err = r.Append(ctx, "a-1", ExpectAny, Envelope{Type: "t"})
			if tc.tombs != errors.Is(err, ErrStreamDeleted) {
				t.Errorf("append to a-1 in the restored log: %v (tombstoned: %v)", err, tc.tombs)
			}
		})
	}
}

// TestRetentionOptionsCopied: the log keeps its own copy of
// Options.Retention; changing the caller's map later changes nothing.
func TestRetentionOptionsCopied(t *testing.T) {
	ret := map[string]Retention{"log": {MaxCount: 1}}
	l := openMem(t, vfs.NewMem(), Options{Retention: ret})
	defer l.Close()
	appendDelN(t, l, "log-1", 3)
	ret["log"] = Retention{MaxCount: 3}
	if got := collect(t, l.Stream(t.Context(), "log-1", 0), envKey); !cmp.Equal(keys("log-1", 3, 3), got) {
		t.Errorf("log-1 reads %v after the caller changed its map, want only version 3", got)
	}
}

// TestAppendTombstoneFastPath: appenders skip the deletion table while
// the writer knows the log holds no tombstone; the first tombstone ends
// that, so an append to the tombstoned stream — even a retry, which the
// writer's ID check would otherwise answer with the original positions —
// fails with ErrStreamDeleted before it is queued, raw and typed, also
// after reopening.
func TestAppendTombstoneFastPath(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{})
	retry := []AppendRequest{{Stream: "a-1", Expect: ExpectAny, Events: []Envelope{idEv("i1", "t", 1)}}}
	if _, err := l.AppendBatch(ctx, retry); err != nil {
		t.Fatal(err)
	}
	appendDelN(t, l, "b-1", 2) // the writer has loaded its (empty) tombstone set
	if !l.w.tombs.none.Load() {
		t.Fatal("the writer does not know the log holds no tombstone: the test checks nothing")
	}
	if _, err := l.TombstoneStream(ctx, "a-1"); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if _, err := l.AppendBatch(ctx, retry); !errors.Is(err, ErrStreamDeleted) {
			t.Errorf("%s: retry of an append to a tombstoned stream: %v, want ErrStreamDeleted", when, err)
		}
		if _, err := Typed[delPayload](l).Append(ctx, "a-1", ExpectAny, Event[delPayload]{ID: "i1", Type: "t"}); !errors.Is(err, ErrStreamDeleted) {
			t.Errorf("%s: typed append to a tombstoned stream: %v, want ErrStreamDeleted", when, err)
		}
	}
	check("same session")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openMem(t, mem, Options{})
	defer l.Close()
	check("after reopen")
}
