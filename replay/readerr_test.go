package replay_test

import (
	"encoding/binary"
	"errors"
	"hash/fnv"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/segment"
)

// eventFrame returns the segment file and offset of the frame holding
// seq, and whether the segment is sealed.
func eventFrame(t *testing.T, dir string, seq uint64) (file string, off, size int64, sealed bool) {
	t.Helper()
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	names, err := fsys.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if _, _, ok := segment.ParseFileName(name); !ok {
			continue
		}
		s, err := segment.Open(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		ra, end, err := s.Records()
		if err != nil {
			t.Fatal(err)
		}
		r := segment.NewReader(ra, segment.HeaderSize, end)
		var dec segment.Decoder
		for {
			f, err := r.Next()
			if err != nil {
				break
			}
			var e event.Envelope
			if f.Kind != segment.KindEvent || dec.Decode(f.Payload, &e) != nil || e.Seq != seq {
				continue
			}
			s.Close()
			return name, f.Offset, f.Size(), s.Sealed
		}
		s.Close()
	}
	t.Fatalf("no frame holds seq %d", seq)
	return "", 0, 0, false
}

// A read error during replay (a damaged record in a sealed segment after
// the snapshot) aborts the replay with an error matching ErrCorrupt, with
// or without snapshots, for the whole log and for the damaged stream; the
// state before the damage, and another stream's, are still served.
func TestReadErrorAborts(t *testing.T) {
	f := newFixture(t)
	// The damaged event: one of stream a's, after the snapshots, in a
	// sealed segment.
	bad := f.lastOf("a", badSeq)
	file, off, size, sealed := eventFrame(t, f.dir, uint64(bad))
	if !sealed {
		t.Fatalf("seq %d is in the active segment %s; the fixture needs more segments", bad, file)
	}
	editFile(t, f.dir, file, func(b []byte) []byte { b[off+size/2] ^= 0x20; return b })

	ro := openRO(t, f.dir, evlog.Options{})
	store := snapshots(t, ro)
	ctx := t.Context()
	// The events before the damage read without error: a range ends at
	// its last seq, it does not read (and fail on) the frame after it.
	read := 0
	for _, err := range ro.Range(ctx, 1, uint64(bad-1)) {
		if err != nil {
			t.Errorf("Range(1, %d) after %d events: %v; the damaged record (seq %d) lies after the range", bad-1, read, err, bad)
			break
		}
		read++
	}
	for _, opts := range []replay.Options{{}, {NoSnapshot: true}} {
		for _, tg := range []replay.Target{replay.Latest(), replay.AtSeq(uint64(bad)), replay.AtTime(f.events[len(f.events)-1].Time)} {
			res, err := replay.State(ctx, ro, store, statsSubject, tg, statsSpec, opts)
			if !errors.Is(err, evlog.ErrCorrupt) {
				t.Errorf("stats at %v (NoSnapshot %v): %v (state of %d events), want an error matching ErrCorrupt", tg, opts.NoSnapshot, err, res.State.Events)
			}
			if _, ok := errors.AsType[*evlog.CorruptError](err); !ok {
				t.Errorf("stats at %v: %v, want a *CorruptError naming the file", tg, err)
			}
			cres, err := replay.State(ctx, ro, store, cartSubject("a"), tg, cartSpec, opts)
			if !errors.Is(err, evlog.ErrCorrupt) {
				t.Errorf("cart/a at %v (NoSnapshot %v): %v (state at version %d), want an error matching ErrCorrupt", tg, opts.NoSnapshot, err, cres.State.Version)
			}
		}
		// Before the damage, and in stream b (whose records are intact),
		// the state is served, and right.
		res, err := replay.State(ctx, ro, store, statsSubject, replay.AtSeq(uint64(bad-1)), statsSpec, opts)
		if err != nil {
			t.Errorf("stats at seq %d, before the damage: %v", bad-1, err)
		} else if diff := cmp.Diff(refStats(f.events, bad-1), res.State, stateCmp); diff != "" {
			t.Errorf("stats at seq %d (-want +got):\n%s", bad-1, diff)
		}
		cres, err := replay.State(ctx, ro, store, cartSubject("b"), replay.Latest(), cartSpec, opts)
		if err != nil {
			t.Errorf("cart/b: %v", err)
		} else if diff := cmp.Diff(refCart(t, f.events, "b", len(f.events)), cres.State, stateCmp); diff != "" {
			t.Errorf("cart/b (-want +got):\n%s", diff)
		}
	}
}

// The anchor event of the only snapshot is unreadable: the snapshot is
// passed over (reported), and the full replay then meets the damage and
// fails; it never serves the snapshot's state plus the events after it.
func TestReadErrorAtAnchor(t *testing.T) {
	f := newFixture(t)
	file, off, size, sealed := eventFrame(t, f.dir, goodSeq)
	if !sealed {
		t.Fatalf("seq %d is in the active segment", goodSeq)
	}
	editFile(t, f.dir, file, func(b []byte) []byte { b[off+size-3] ^= 1; return b })
	ro := openRO(t, f.dir, evlog.Options{})
	store := snapshots(t, ro)
	p, err := replay.MakePlan(t.Context(), ro, store, statsSubject, replay.Latest(), replay.Options{})
	if err != nil {
		t.Fatalf("MakePlan: %v", err)
	}
	if p.Snapshot != nil || len(p.Fallbacks) != 1 || p.Fallbacks[0].Seq != goodSeq {
		t.Errorf("plan uses %v, fallbacks %+v; want no snapshot and the one at seq %d passed over", p.Snapshot, p.Fallbacks, goodSeq)
	}
	if res, err := replay.Run(t.Context(), ro, p, statsSpec); !errors.Is(err, evlog.ErrCorrupt) {
		t.Errorf("Run: %v (state of %d events), want an error matching ErrCorrupt", err, res.State.Events)
	}
}

// counter is a constant-size whole-log fold.
type counter struct {
	N      uint64
	Digest uint64
}

// Replay streams: folding a log into a constant-size state keeps the live
// heap flat, far below the size of the log.
func TestReplayMemoryIsOState(t *testing.T) {
	n := 300_000
	if testing.Short() {
		n = 60_000
	}
	dir := t.TempDir()
	l := openRW(t, dir, evlog.Options{Sync: evlog.SyncNever, SegmentSize: 8 << 20})
	payload := []byte(strings.Repeat("x", 80))
	batch := make([]event.Envelope, 1000)
	for i := range batch {
		batch[i] = event.Envelope{Type: "tick", Data: payload}
	}
	tm := t0
	for i := 0; i < n; i += len(batch) {
		tm = tm.Add(time.Second)
		for j := range batch {
			batch[j].Time = tm
		}
		if _, err := l.Append(t.Context(), "s-"+string(rune('a'+i%7)), evlog.ExpectAny, batch...); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var logBytes int64
	ents, _ := os.ReadDir(dir)
	for _, de := range ents {
		if fi, err := os.Stat(filepath.Join(dir, de.Name())); err == nil {
			logBytes += fi.Size()
		}
	}
	ro := openRO(t, dir, evlog.Options{})

	var ms runtime.MemStats
	live := func() uint64 {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	base := live()
	var peak uint64
	spec := replay.Spec[counter, event.Envelope]{
		Decode: replay.Raw,
		Fold: func(c counter, e event.Envelope) counter {
			c.N++
			h := fnv.New64a()
			h.Write(e.Data)
			c.Digest ^= h.Sum64() + e.Seq
			if c.N%20_000 == 0 {
				peak = max(peak, live())
			}
			return c
		},
	}
	res, err := replay.State(t.Context(), ro, nil, replay.Subject{Name: "count", SchemaVersion: 1}, replay.Latest(), spec, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.State.N != uint64(n) || res.Applied != n {
		t.Fatalf("folded %d events (Applied %d), want %d", res.State.N, res.Applied, n)
	}
	growth := int64(peak) - int64(base)
	t.Logf("log %d bytes (%d events); live heap %d bytes before, peak growth %d bytes during the replay", logBytes, n, base, growth)
	if limit := logBytes / 16; growth > limit {
		t.Errorf("the live heap grew by %d bytes during the replay of a %d-byte log (limit %d): replay is not streaming", growth, logBytes, limit)
	}
}

// A snapshot outlives the events it folds when the log's segments are
// restored from an older backup (or its tail otherwise lost after being
// made durable) and new, different events are appended at the same seqs.
// The new event at the snapshot's seq has the same recorded time (an
// import with explicit times, or a clamped clock), stream, type and
// version; only its payload differs. The anchor check (plan.go
// checkAnchor) once compared only the time, used the stale snapshot and
// folded events no longer in the log; it now compares the snapshot's
// Anchor (format version 2), a digest of the whole event.
func TestStaleSnapshotAfterTailLoss(t *testing.T) {
	dir, backup := t.TempDir(), t.TempDir()
	tm := t0 // every event recorded at the same (explicit) time
	l := openRW(t, dir, evlog.Options{Sync: evlog.SyncNever})
	for i := range 50 {
		appendItems(t, l, "a", tm, item{Name: "sword", Qty: 1 + i%3})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	copySegments(t, dir, backup) // the backup: seqs 1..50

	l = openRW(t, dir, evlog.Options{Sync: evlog.SyncNever})
	for range 10 {
		appendItems(t, l, "a", tm, item{Name: "shield", Qty: 5})
	}
	events := readAll(t, l)
	saveStats(t, snapshots(t, l), l.LogID(), statsSubject, events, 60)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// Restore the segments from the backup; keep the snapshot. Append 10
	// other events at seqs 51..60, recorded at the same time.
	removeSegments(t, dir)
	copySegments(t, backup, dir)
	l = openRW(t, dir, evlog.Options{Sync: evlog.SyncNever})
	for range 10 {
		// Same stream, type, versions and time: only the payload differs.
		appendItems(t, l, "a", tm, item{Name: "potion", Qty: 2})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	ro := openRO(t, dir, evlog.Options{})
	store := snapshots(t, ro)
	got, err := replay.State(t.Context(), ro, store, statsSubject, replay.Latest(), statsSpec, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := refStats(readAll(t, ro), 60)
	if diff := cmp.Diff(want, got.State, stateCmp); diff != "" {
		t.Errorf("the state uses snapshot %v, which folds events no longer in the log (-log +got):\n%s", got.Plan.Snapshot, diff)
	}
	if got.Plan.Snapshot != nil || len(got.Plan.Fallbacks) != 1 {
		t.Errorf("plan: snapshot %v, fallbacks %+v; want the stale snapshot reported as a fallback", got.Plan.Snapshot, got.Plan.Fallbacks)
	}
}

// logFile reports whether name is one of the log's own files (segments,
// their checkpoints, catalogs): everything but snapshots and the lock.
func logFile(name string) bool {
	return name != "LOCK" && !strings.HasSuffix(name, ".snap")
}

func copySegments(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range ents {
		if !de.Type().IsRegular() || !logFile(de.Name()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(from, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, de.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func removeSegments(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range ents {
		if de.Type().IsRegular() && logFile(de.Name()) {
			if err := os.Remove(filepath.Join(dir, de.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// A format version 1 snapshot (no anchor) is still used: it is checked
// against its last event's recorded time only (snapshot/doc.go).
func TestVersion1SnapshotUsed(t *testing.T) {
	f := newFixture(t)
	ro := openRO(t, f.dir, evlog.Options{})
	store := snapshots(t, ro)
	ms, err := store.List(statsSubject.Name)
	if err != nil || len(ms) != 1 || ms[0].Anchor == 0 {
		t.Fatalf("List = %+v, %v; want one snapshot with an anchor", ms, err)
	}
	// Rewrite it as version 1: no anchor or scope after the name.
	editFile(t, f.dir, ms[0].File, func(b []byte) []byte {
		h := snapHeaderLen(b)
		v1 := append([]byte(nil), b[:h-20]...)
		v1 = append(v1, b[h-4:]...) // the header CRC, the payload, the file CRC
		binary.LittleEndian.PutUint16(v1[8:], 1)
		binary.LittleEndian.PutUint32(v1[12:], uint32(h-16))
		return resealSnapshot(v1)
	})
	got, err := replay.State(t.Context(), ro, store, statsSubject, replay.Latest(), statsSpec, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Plan.Snapshot == nil || got.Plan.Snapshot.Seq != goodSeq || got.Plan.Snapshot.Anchor != 0 || len(got.Plan.Fallbacks) != 0 {
		t.Fatalf("plan: snapshot %+v, fallbacks %+v; want the version 1 snapshot at seq %d", got.Plan.Snapshot, got.Plan.Fallbacks, goodSeq)
	}
	if diff := cmp.Diff(refStats(f.events, len(f.events)), got.State, stateCmp); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
}
