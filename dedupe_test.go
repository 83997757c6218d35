package evlog

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/synctest"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

func idEv(id, typ string, data byte) Envelope {
	return Envelope{ID: id, Type: typ, Data: []byte{0xa1, data}}
}

// TestDedupeRules checks the idempotent-append rules: a retry of an
// append in the log writes nothing and returns its positions; any other
// use of a known ID fails with ErrDuplicateID and writes nothing.
func TestDedupeRules(t *testing.T) {
	// Every case starts from a log holding, at seqs 1-3:
	// s: a, b (IDs "a", "b"), then other: c (ID "c").
	type want struct {
		pos    []Position // nil: a *DuplicateIDError
		dupID  string
		origSq uint64
		last   uint64 // the log's last seq afterwards
	}
	cases := []struct {
		name  string
		batch []AppendRequest
		want  want
	}{
		{"full retry", []AppendRequest{{Stream: "s", Expect: ExpectNoStream, Events: []Envelope{idEv("a", "t", 'a'), idEv("b", "t", 'b')}}},
			want{pos: []Position{{Seq: 2, Version: 2}}, last: 3}},
		{"full retry, ExpectAny", []AppendRequest{{Stream: "s", Expect: ExpectAny, Events: []Envelope{idEv("a", "t", 'a'), idEv("b", "t", 'b')}}},
			want{pos: []Position{{Seq: 2, Version: 2}}, last: 3}},
		{"retry of a multi-stream batch", []AppendRequest{
			{Stream: "s", Events: []Envelope{idEv("a", "t", 'a'), idEv("b", "t", 'b')}},
			{Stream: "other", Events: []Envelope{idEv("c", "t", 'c')}}},
			want{pos: []Position{{Seq: 2, Version: 2}, {Seq: 3, Version: 1}}, last: 3}},
		{"retry of one event", []AppendRequest{{Stream: "other", Events: []Envelope{idEv("c", "t", 'c')}}},
			want{pos: []Position{{Seq: 3, Version: 1}}, last: 3}},
		{"schema version 1 explicit", []AppendRequest{{Stream: "other", Events: []Envelope{{ID: "c", Type: "t", SchemaVersion: 1, Data: []byte{0xa1, 'c'}}}}},
			want{pos: []Position{{Seq: 3, Version: 1}}, last: 3}},
		{"partial overlap", []AppendRequest{{Stream: "s", Events: []Envelope{idEv("b", "t", 'b'), idEv("new", "t", 'n')}}},
			want{dupID: "b", origSq: 2, last: 3}},
		{"partial overlap, event without ID", []AppendRequest{{Stream: "s", Events: []Envelope{idEv("a", "t", 'a'), idEv("", "t", 'n')}}},
			want{dupID: "a", origSq: 1, last: 3}},
		{"same ID, other stream", []AppendRequest{{Stream: "x", Events: []Envelope{idEv("c", "t", 'c')}}},
			want{dupID: "c", origSq: 3, last: 3}},
		{"same ID, other data", []AppendRequest{{Stream: "other", Events: []Envelope{idEv("c", "t", 'X')}}},
			want{dupID: "c", origSq: 3, last: 3}},
		{"same ID, other type", []AppendRequest{{Stream: "other", Events: []Envelope{idEv("c", "u", 'c')}}},
			want{dupID: "c", origSq: 3, last: 3}},
		{"same ID, other meta", []AppendRequest{{Stream: "other", Events: []Envelope{{ID: "c", Type: "t", Meta: map[string]string{"k": "v"}, Data: []byte{0xa1, 'c'}}}}},
			want{dupID: "c", origSq: 3, last: 3}},
		{"same ID, other schema version", []AppendRequest{{Stream: "other", Events: []Envelope{{ID: "c", Type: "t", SchemaVersion: 2, Data: []byte{0xa1, 'c'}}}}},
			want{dupID: "c", origSq: 3, last: 3}},
		{"other order", []AppendRequest{{Stream: "s", Events: []Envelope{idEv("b", "t", 'b'), idEv("a", "t", 'a')}}},
			want{dupID: "a", origSq: 1, last: 3}},
		{"known ID twice in the batch", []AppendRequest{{Stream: "other", Events: []Envelope{idEv("c", "t", 'c'), idEv("c", "t", 'c')}}},
			want{dupID: "c", origSq: 3, last: 3}},
		{"new ID twice in the batch", []AppendRequest{{Stream: "n", Events: []Envelope{idEv("z", "t", 'z'), idEv("z", "t", 'z')}}},
			want{dupID: "z", last: 3}},
		{"new ID twice across streams of a batch", []AppendRequest{
			{Stream: "n", Events: []Envelope{idEv("z", "t", 'z')}},
			{Stream: "m", Events: []Envelope{idEv("z", "t", 'z')}}},
			want{dupID: "z", last: 3}},
		// The appender tells the writer whether any event carries an ID
		// (the writer skips the check otherwise): an ID only on a later
		// part's last event counts.
		{"known ID only on the last part's last event", []AppendRequest{
			{Stream: "n", Expect: ExpectAny, Events: []Envelope{idEv("", "t", 'n')}},
			{Stream: "other", Expect: ExpectAny, Events: []Envelope{idEv("", "t", 'x'), idEv("c", "t", 'c')}}},
			want{dupID: "c", origSq: 3, last: 3}},
		{"new IDs are written", []AppendRequest{{Stream: "s", Expect: ExpectAny, Events: []Envelope{idEv("d", "t", 'd')}}},
			want{pos: []Position{{Seq: 4, Version: 3}}, last: 4}},
		{"no IDs are never deduplicated", []AppendRequest{{Stream: "s", Expect: ExpectAny, Events: []Envelope{idEv("", "t", 'a'), idEv("", "t", 'b')}}},
			want{pos: []Position{{Seq: 5, Version: 4}}, last: 5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			l := openMem(t, vfs.NewMem(), Options{Clock: fakeClock(t0, 1)})
			defer l.Close()
			if _, err := l.AppendBatch(ctx, []AppendRequest{
				{Stream: "s", Expect: ExpectNoStream, Events: []Envelope{idEv("a", "t", 'a'), idEv("b", "t", 'b')}},
				{Stream: "other", Expect: ExpectNoStream, Events: []Envelope{idEv("c", "t", 'c')}},
			}); err != nil {
				t.Fatal(err)
			}
			before := readAll(t, l)
			if tc.name == "no IDs are never deduplicated" {
				// Appended twice.
				if _, err := l.AppendBatch(ctx, tc.batch); err != nil {
					t.Fatal(err)
				}
				tc.want.pos[0].Seq, tc.want.pos[0].Version = 7, 6
				tc.want.last = 7
			}
			pos, err := l.AppendBatch(ctx, tc.batch)
			if tc.want.pos == nil {
				de, ok := errors.AsType[*DuplicateIDError](err)
				if !ok || !errors.Is(err, ErrDuplicateID) {
					t.Fatalf("got %v, want a *DuplicateIDError", err)
				}
				if de.ID != tc.want.dupID || de.OrigSeq != tc.want.origSq {
					t.Errorf("error names ID %q seq %d, want %q seq %d: %v", de.ID, de.OrigSeq, tc.want.dupID, tc.want.origSq, err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				for i := range pos {
					pos[i].Time = pos[i].Time.UTC()
				}
				for i, p := range tc.want.pos {
					if pos[i].Seq != p.Seq || pos[i].Version != p.Version {
						t.Errorf("position %d = %+v, want %+v", i, pos[i], p)
					}
				}
			}
			if got := l.LastSeq(); got != tc.want.last {
				t.Errorf("last seq %d, want %d", got, tc.want.last)
			}
			if tc.want.last == 3 {
				if d := envsDiff(before, readAll(t, l)); d != "" {
					t.Errorf("log changed (-before +after):\n%s", d)
				}
			}
		})
	}
}

// TestDedupeRetryPositions checks that a retry returns exactly what the
// first append returned, including its recorded time, whatever Time the
// retry carries.
func TestDedupeRetryPositions(t *testing.T) {
	ctx := t.Context()
	l := openMem(t, vfs.NewMem(), Options{Clock: fakeClock(t0, 1000)})
	defer l.Close()
	evs := []Envelope{idEv("a", "t", 'a'), idEv("b", "t", 'b')}
	p1, err := l.Append(ctx, "s", ExpectNoStream, evs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "s", ExpectAny, idEv("c", "t", 'c')); err != nil {
		t.Fatal(err)
	}
	retry := []Envelope{evs[0], evs[1]}
	retry[1].Time = t0.Add(-1) // before the log's last time: no ErrTimeBackwards on a retry
	p2, err := l.Append(ctx, "s", ExpectNoStream, retry...)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if p1.Seq != p2.Seq || p1.Version != p2.Version || !p1.Time.Equal(p2.Time) {
		t.Fatalf("retry returned %+v, the first append %+v", p2, p1)
	}
	if l.LastSeq() != 3 {
		t.Fatalf("last seq %d, want 3", l.LastSeq())
	}
}

// TestDedupeTyped checks that typed appends go through the same check,
// content included (the typed payload is encoded to compare it).
func TestDedupeTyped(t *testing.T) {
	type item struct {
		Name string
		N    int
	}
	ctx := t.Context()
	l := openMem(t, vfs.NewMem(), Options{})
	defer l.Close()
	tl := Typed[item](l)
	evs := []Event[item]{{ID: "i1", Type: "added", Data: item{"x", 1}}, {ID: "i2", Type: "added", Data: item{"y", 2}}}
	p1, err := tl.Append(ctx, "inv", ExpectNoStream, evs...)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := tl.Append(ctx, "inv", ExpectNoStream, evs...)
	if err != nil || p2.Seq != p1.Seq || p2.Version != p1.Version {
		t.Fatalf("typed retry: %+v, %v; want %+v", p2, err, p1)
	}
	// The raw API sees the typed events as the same.
	req, err := tl.Request("inv", ExpectNoStream, evs...)
	if err != nil {
		t.Fatal(err)
	}
	if p3, err := l.AppendBatch(ctx, []AppendRequest{req}); err != nil || p3[0].Seq != p1.Seq {
		t.Fatalf("raw retry of a typed append: %+v, %v", p3, err)
	}
	other := []Event[item]{evs[0], {ID: "i2", Type: "added", Data: item{"y", 3}}}
	if _, err := tl.Append(ctx, "inv", ExpectAny, other...); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("typed, other data: %v, want ErrDuplicateID", err)
	}
	if _, err := tl.Append(ctx, "inv2", ExpectAny, Event[item]{ID: "d", Type: "t"}, Event[item]{ID: "d", Type: "t"}); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("typed, ID twice in a batch: %v, want ErrDuplicateID", err)
	}
	// A known ID only on a later part's last event still goes through the
	// check (the appender flags the batch as carrying IDs).
	mixed := []Batch[item]{{Stream: "inv3", Expect: ExpectAny, Events: []Event[item]{{Type: "t"}}}, {Stream: "inv", Expect: ExpectAny, Events: []Event[item]{{Type: "t"}, evs[1]}}}
	if _, err := tl.AppendBatch(ctx, mixed); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("typed, known ID on a later part's last event: %v, want ErrDuplicateID", err)
	}
	if l.LastSeq() != 2 {
		t.Fatalf("last seq %d, want 2", l.LastSeq())
	}
}

// TestDedupeSameGroup: retries queued behind their original, so that the
// writer stages the original and meets the retries in the same group
// (resolveIDs' "originals are in the staged group" path), still write the
// events once and answer every call with the original's positions. The
// writer is held in the write of an earlier append until every call has
// queued (synctest.Wait), so the group is created, not hoped for: left to
// the scheduler, 8 concurrent calls shared a group in 1 run of 12.
func TestDedupeSameGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		gate := newWriteGate()
		l := openMem(t, vfs.NewFaulty(vfs.NewMem(), func(op vfs.Op) error { gate.Hold(op); return nil }), Options{Sync: SyncNever})
		defer l.Close()
		release := gate.Arm()
		held := make(chan error, 1)
		go func() { _, err := l.Append(ctx, "other", ExpectAny, Envelope{Type: "t"}); held <- err }()
		<-gate.Holding // the writer is inside the write of seq 1
		const n = 8
		errs := make(chan error, n)
		pos := make(chan Position, n)
		for range n {
			go func() {
				p, err := l.Append(ctx, "s", ExpectAny, idEv("a", "t", 'a'), idEv("b", "t", 'b'))
				errs <- err
				pos <- p
			}()
		}
		synctest.Wait() // every call is queued behind the held write
		release()
		if err := <-held; err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
			if p := <-pos; p.Seq != 3 || p.Version != 2 {
				t.Fatalf("position %+v, want seq 3 version 2", p)
			}
		}
		if l.LastSeq() != 3 {
			t.Fatalf("last seq %d, want 3", l.LastSeq())
		}
	})
}

// TestDedupeReopenRollCompact: IDs are recognised across Close/Open,
// segment rolls and compaction.
func TestDedupeReopenRollCompact(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	opts := Options{SegmentSize: MinSegmentSize}
	l := openMem(t, mem, opts)
	var first []Position
	for i := range 200 {
		p, err := l.Append(ctx, fmt.Sprint("s", i%5), ExpectAny, idEv(fmt.Sprint("id", i), "t", byte(i)))
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, p)
	}
	if n := len(l.v.segs); n < 3 {
		t.Fatalf("only %d segments: no roll", n)
	}
	check := func(what string) {
		t.Helper()
		for _, i := range []int{0, 1, 77, 150, 199} {
			p, err := l.Append(ctx, fmt.Sprint("s", i%5), ExpectAny, idEv(fmt.Sprint("id", i), "t", byte(i)))
			if err != nil || p.Seq != first[i].Seq || p.Version != first[i].Version {
				t.Fatalf("%s: retry of %d: %+v, %v; want %+v", what, i, p, err, first[i])
			}
			if _, err := l.Append(ctx, "elsewhere", ExpectAny, idEv(fmt.Sprint("id", i), "t", byte(i))); !errors.Is(err, ErrDuplicateID) {
				t.Fatalf("%s: ID %d in another stream: %v", what, i, err)
			}
		}
		if l.LastSeq() != 200 {
			t.Fatalf("%s: last seq %d, want 200", what, l.LastSeq())
		}
	}
	check("after rolls")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openMem(t, mem, opts)
	check("after reopen")
	if _, err := l.Compact(ctx, CompactOptions{TargetSize: 4 * MinSegmentSize, Compress: true}); err != nil {
		t.Fatal(err)
	}
	check("after compaction")
	l.Close()
	l = openMem(t, mem, opts)
	defer l.Close()
	check("after compaction and reopen")
}

// TestDedupeWindow: only the IDs of the last DedupeWindow events are
// recognised; older ones are appended again.
func TestDedupeWindow(t *testing.T) {
	if err := (Options{DedupeWindow: -1}).Validate(); err == nil {
		t.Fatal("DedupeWindow -1 validated")
	}
	ctx := t.Context()
	mem := vfs.NewMem()
	opts := Options{DedupeWindow: 10}
	l := openMem(t, mem, opts)
	for i := range 30 {
		if _, err := l.Append(ctx, "s", ExpectAny, idEv(fmt.Sprint("id", i), "t", byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	try := func(what string, i int, wantSeq uint64) {
		t.Helper()
		p, err := l.Append(ctx, "s", ExpectAny, idEv(fmt.Sprint("id", i), "t", byte(i)))
		if err != nil || p.Seq != wantSeq {
			t.Fatalf("%s: append of id%d: %+v, %v; want seq %d", what, i, p, err, wantSeq)
		}
	}
	try("in window", 25, 26)
	try("in window", 20, 21) // seq 21 is the 10th newest of 30
	try("outside the window", 19, 31)
	try("now in the window again", 19, 31)
	l.Close()
	l = openMem(t, mem, opts)
	defer l.Close()
	try("reopened, in window", 25, 26)
	try("reopened, outside the window", 5, 32)
}

// idWorkload returns n batches of 1-3 events over a few streams, each
// event with a unique ID, appended with ExpectAny.
func idWorkload(seed uint64, n int) [][]AppendRequest {
	rng := rand.New(rand.NewPCG(seed, 13))
	out := make([][]AppendRequest, n)
	for i := range out {
		for p := range 1 + rng.IntN(2) {
			r := AppendRequest{Stream: fmt.Sprint("s", rng.IntN(4)), Expect: ExpectAny}
			for j := range 1 + rng.IntN(3) {
				r.Events = append(r.Events, Envelope{ID: fmt.Sprintf("b%d-%d-%d", i, p, j), Type: "t", Data: []byte{0xa1, byte('a' + rng.IntN(26))}})
			}
			out[i] = append(out[i], r)
		}
	}
	return out
}

// checkExactlyOnce checks that every batch of work is in the log exactly
// once, whole and contiguous.
func checkExactlyOnce(t *testing.T, l *Log, work [][]AppendRequest) string {
	t.Helper()
	got := readAll(t, l)
	at := map[string]int{}
	for i, e := range got {
		if _, dup := at[e.ID]; dup {
			return fmt.Sprintf("ID %q stored twice", e.ID)
		}
		at[e.ID] = i
	}
	for bi, b := range work {
		first, ok := at[b[0].Events[0].ID]
		if !ok {
			return fmt.Sprintf("batch %d is missing", bi)
		}
		k := first
		for _, r := range b {
			for _, e := range r.Events {
				if k >= len(got) || got[k].ID != e.ID || got[k].Stream != r.Stream {
					return fmt.Sprintf("batch %d is not stored whole and in order at seq %d", bi, first+1)
				}
				k++
			}
		}
	}
	return ""
}

// TestDedupeCrashRetry: a writer appending batches with IDs crashes at
// every write op; after recovery (under every crash model) the client
// retries every batch — acknowledged or not — and each ends up in the
// log exactly once, acknowledged ones at the positions first reported.
func TestDedupeCrashRetry(t *testing.T) {
	ctx := t.Context()
	const n = 25
	opts := crashOpts(SyncAlways)
	probe := vfs.NewMem()
	l := openMem(t, probe, opts)
	for _, b := range idWorkload(1, n) {
		if _, err := l.AppendBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	total := probe.Ops()
	for k := range total + 1 {
		mem := vfs.NewMem()
		mem.CrashAt(k)
		work := idWorkload(1, n)
		acked := make([][]Position, n)
		if l, err := openFS(mem, opts, false); err == nil {
			for i, b := range work {
				pos, err := l.AppendBatch(ctx, b)
				if err != nil {
					break
				}
				acked[i] = pos
			}
			l.Close()
		}
		for _, model := range vfs.CrashModels() {
			after := mem.CrashClone(model, rand.New(rand.NewPCG(uint64(k), uint64(model))))
			l, err := openFS(after, opts, false)
			if err != nil {
				t.Fatalf("k=%d model=%v: reopen: %v", k, model, err)
			}
			for i, b := range work {
				pos, err := l.AppendBatch(ctx, b)
				if err != nil {
					t.Fatalf("k=%d model=%v: retry of batch %d: %v", k, model, i, err)
				}
				if acked[i] != nil {
					for p := range pos {
						if pos[p].Seq != acked[i][p].Seq || pos[p].Version != acked[i][p].Version || !pos[p].Time.Equal(acked[i][p].Time) {
							t.Fatalf("k=%d model=%v: retry of acknowledged batch %d returned %+v, first %+v", k, model, i, pos, acked[i])
						}
					}
				}
			}
			if msg := checkExactlyOnce(t, l, work); msg != "" {
				t.Fatalf("k=%d/%d model=%v: %s", k, total, model, msg)
			}
			l.Close()
		}
	}
	t.Logf("crashed at each of %d ops under %d models", total+1, len(vfs.CrashModels()))
}

// TestDedupeReadsOnce: after Open, the first append carrying an ID reads
// the log's IDs once; later appends with new IDs read nothing (a hash
// look-up each), and a retry reads only its originals.
func TestDedupeReadsOnce(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	opts := Options{SegmentSize: MinSegmentSize}
	l := openMem(t, mem, opts)
	for i := range 200 {
		if _, err := l.Append(ctx, "s", ExpectAny, idEv(fmt.Sprint("id", i), "t", byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	cfs := vfs.NewCounting(mem)
	l = openMem(t, cfs, Options{}) // no roll (which reads the sealed segment back) from here on
	defer l.Close()
	cfs.Reset()
	if _, err := l.Append(ctx, "s", ExpectAny, idEv("new0", "t", 0)); err != nil {
		t.Fatal(err)
	}
	if r := cfs.Total().BytesRead; r == 0 {
		t.Fatal("the first append with an ID read nothing: where do the log's IDs come from?")
	}
	cfs.Reset()
	for i := range 50 {
		if _, err := l.Append(ctx, "s", ExpectAny, idEv(fmt.Sprint("new", i+1), "t", 0)); err != nil {
			t.Fatal(err)
		}
	}
	if r := cfs.Total(); r.Reads != 0 {
		t.Fatalf("appends with new IDs read %d times (%d bytes): the index should answer", r.Reads, r.BytesRead)
	}
	p, err := l.Append(ctx, "s", ExpectAny, idEv("id7", "t", 7))
	if err != nil || p.Seq != 8 {
		t.Fatalf("retry: %+v, %v", p, err)
	}
	if r := cfs.Total(); r.BytesRead > 4*MinSegmentSize {
		t.Fatalf("a retry of one event read %d bytes", r.BytesRead)
	}
}

// TestDedupeIndexReadsFooters: the ID index is built from the ID tables
// in the sealed segments' footers: the first append with an ID after Open
// reads no sealed segment's records, only its footer (and the active
// segment's records), and the index it builds recognises a retry of an
// event in the oldest segment.
func TestDedupeIndexReadsFooters(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{SegmentSize: MinSegmentSize})
	for i := range 50 {
		evs := make([]Envelope, 20)
		for j := range evs {
			evs[j] = idEv(fmt.Sprint("id", i*20+j), "t", byte(j))
		}
		if _, err := l.Append(ctx, fmt.Sprint("s", i%7), ExpectAny, evs...); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// The sealed segments and where their footers start.
	footers := map[string]int64{}
	var records int64
	names, err := mem.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if _, _, ok := segment.ParseFileName(name); !ok {
			continue
		}
		s, err := segment.Open(mem, name)
		if err != nil {
			t.Fatal(err)
		}
		if s.Sealed {
			footers[name] = s.Trailer.RecordsEnd
			records += s.Trailer.RecordsEnd
		}
		s.Close()
	}
	if len(footers) < 5 {
		t.Fatalf("%d sealed segments: the test needs more", len(footers))
	}

	cfs := vfs.NewCounting(mem)
	l = openMem(t, cfs, Options{})
	defer l.Close()
	cfs.Reset()
	if _, err := l.Append(ctx, "new", ExpectAny, idEv("fresh", "t", 0)); err != nil {
		t.Fatal(err)
	}
	var sealedRead int64
	for name, recEnd := range footers {
		size, err := mem.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		n := cfs.File(name).BytesRead
		sealedRead += n
		if n > size-recEnd {
			t.Errorf("%s: building the ID index read %d bytes, more than its footer (%d of %d bytes): it read records", name, n, size-recEnd, size)
		}
	}
	t.Logf("building the ID index read %d bytes of %d sealed segments (%d bytes of records)", sealedRead, len(footers), records)

	// The index holds the sealed segments' IDs: a retry of the first
	// append is recognised, a reuse of one of its IDs rejected.
	evs := make([]Envelope, 20)
	for j := range evs {
		evs[j] = idEv(fmt.Sprint("id", j), "t", byte(j))
	}
	p, err := l.Append(ctx, "s0", ExpectAny, evs...)
	if err != nil || p.Seq != 20 {
		t.Fatalf("retry of the first append: %+v, %v", p, err)
	}
	if _, err := l.Append(ctx, "s1", ExpectAny, idEv("id5", "t", 5)); !errors.Is(err, ErrDuplicateID) {
		t.Fatalf("reuse of an ID of the oldest segment in another stream: %v, want ErrDuplicateID", err)
	}
}

// TestDedupeMixedBatchHashes: the writer hashes each ID once, in its
// check, and enters those hashes into its ID index and the segment's ID
// table; in a batch mixing events with and without IDs (the first one
// with IDs, so the index is built in the middle of its check), each ID
// must keep its own hash: a reuse of any of them is rejected, naming its
// holder, in the same session and after the segment is sealed (its
// footer's ID table) and the log reopened.
func TestDedupeMixedBatchHashes(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{SegmentSize: MinSegmentSize})
	batch := []AppendRequest{
		{Stream: "s0", Expect: ExpectAny, Events: []Envelope{idEv("", "t", 0), idEv("", "t", 1)}},
		{Stream: "s1", Expect: ExpectAny, Events: []Envelope{idEv("a", "t", 2), idEv("b", "t", 3)}},
		{Stream: "s2", Expect: ExpectAny, Events: []Envelope{idEv("", "t", 4), idEv("c", "t", 5)}},
	}
	if _, err := l.AppendBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	holders := map[string]uint64{"a": 3, "b": 4, "c": 6}
	check := func(when string) {
		t.Helper()
		for id, seq := range holders {
			_, err := l.Append(ctx, "other", ExpectAny, idEv(id, "t", 9))
			if e, ok := errors.AsType[*DuplicateIDError](err); !ok || e.OrigSeq != seq {
				t.Errorf("%s: reuse of ID %q: %v, want a *DuplicateIDError naming seq %d", when, id, err, seq)
			}
		}
	}
	check("same session")
	// Seal the segment: events without IDs until it rolls.
	for {
		segs, err := l.Segments()
		if err != nil {
			t.Fatal(err)
		}
		if segs[0].Sealed {
			break
		}
		if _, err := l.Append(ctx, "fill", ExpectAny, Envelope{Type: "t", Data: make([]byte, 1000)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openMem(t, mem, Options{SegmentSize: MinSegmentSize})
	defer l.Close()
	check("after reopen (the sealed segment's ID table)")
}
