package snapshot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
)

// saveAll saves the snapshots of each name at each of its seqs.
func saveAll(t testing.TB, s *Store, seqs map[string][]uint64) {
	t.Helper()
	for _, name := range slices.Sorted(maps.Keys(seqs)) {
		for _, seq := range seqs[name] {
			mustSave(t, s, name, seq)
		}
	}
}

func TestSaveListLoad(t *testing.T) {
	mem := vfs.NewMem()
	s := newStore(t, mem)

	got := mustSave(t, s, "cart/1", 5)
	want := wantMeta("cart/1", 5)
	if diff := cmp.Diff(want, got, ignoreCompressed); diff != "" {
		t.Errorf("Save returned (-want +got):\n%s", diff)
	}
	size, err := mem.Stat(got.File)
	if err != nil {
		t.Fatal(err)
	}
	if wantSize := int64(headerLen(len(got.Name))) + got.CompressedSize + trailerLen; size != wantSize {
		t.Errorf("file is %d bytes, want %d (CompressedSize %d)", size, wantSize, got.CompressedSize)
	}

	saveAll(t, s, map[string][]uint64{"cart/1": {1, 9}, "stats": {3, 7}, "projection/top-items": {2}})

	var wantAll []Meta
	for _, nm := range []struct {
		name string
		seq  uint64
	}{{"cart/1", 1}, {"cart/1", 5}, {"cart/1", 9}, {"projection/top-items", 2}, {"stats", 3}, {"stats", 7}} {
		wantAll = append(wantAll, wantMeta(nm.name, nm.seq))
	}
	before := dirState(t, mem)
	for _, fsys := range []struct {
		name string
		fs   vfs.FS
	}{{"mem", mem}, {"readonly", vfs.ReadOnly(mem)}} {
		t.Run(fsys.name, func(t *testing.T) {
			s := newStore(t, fsys.fs)
			all, err := s.List("")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantAll, all, ignoreCompressed); diff != "" {
				t.Errorf("List(\"\") (-want +got):\n%s", diff)
			}
			carts, err := s.List("cart/1")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantAll[:3], carts, ignoreCompressed); diff != "" {
				t.Errorf("List(cart/1) (-want +got):\n%s", diff)
			}
			for _, m := range all {
				state, err := s.Load(t.Context(), m)
				if err != nil {
					t.Fatalf("Load(%v): %v", m, err)
				}
				if !bytes.Equal(state, stateOf(m.Name, m.Seq)) {
					t.Errorf("Load(%v) returned the wrong state", m)
				}
				// Name and Seq are enough.
				if _, err := s.Load(t.Context(), Meta{Name: m.Name, Seq: m.Seq}); err != nil {
					t.Errorf("Load(name, seq only): %v", err)
				}
				v, err := s.Verify(t.Context(), m.File)
				if err != nil {
					t.Fatalf("Verify(%s): %v", m.File, err)
				}
				if diff := cmp.Diff(m, v); diff != "" {
					t.Errorf("Verify(%s) (-List +Verify):\n%s", m.File, diff)
				}
			}
			good, err := s.VerifyAll(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(all, good); diff != "" {
				t.Errorf("VerifyAll (-List +VerifyAll):\n%s", diff)
			}
		})
	}
	if diff := cmp.Diff(before, dirState(t, mem)); diff != "" {
		t.Errorf("reads modified the directory (-before +after):\n%s", diff)
	}
}

func TestCandidatesMaxSeq(t *testing.T) {
	mem := vfs.NewMem()
	s := newStore(t, mem)
	saveAll(t, s, map[string][]uint64{"cart/1": {1, 5, 9}, "cart/2": {3}})

	tests := []struct {
		name   string
		maxSeq uint64
		want   []uint64 // candidates, newest first; the first is the answer
	}{
		{"every one", math.MaxUint64, []uint64{9, 5, 1}},
		{"seq past the end", 1000, []uint64{9, 5, 1}},
		{"seq exact newest", 9, []uint64{9, 5, 1}},
		{"seq between", 8, []uint64{5, 1}},
		{"seq exact middle", 5, []uint64{5, 1}},
		{"seq exact oldest", 1, []uint64{1}},
		{"seq before all", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotSeqs []uint64
			for c, err := range s.Candidates("cart/1", tt.maxSeq) {
				if err != nil || c.Unreadable != "" {
					t.Fatalf("candidate %+v, %v", c, err)
				}
				gotSeqs = append(gotSeqs, c.Meta.Seq)
			}
			if diff := cmp.Diff(tt.want, gotSeqs); diff != "" {
				t.Errorf("Candidates seqs (-want +got):\n%s", diff)
			}

			m, state, err := loadNewest(t.Context(), s, "cart/1", tt.maxSeq)
			if len(tt.want) == 0 {
				if !errors.Is(err, ErrNotFound) {
					t.Fatalf("loadNewest: %v; want ErrNotFound", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("loadNewest: %v", err)
			}
			if diff := cmp.Diff(wantMeta("cart/1", tt.want[0]), m, ignoreCompressed); diff != "" {
				t.Errorf("loadNewest (-want +got):\n%s", diff)
			}
			if !bytes.Equal(state, stateOf("cart/1", tt.want[0])) {
				t.Errorf("loadNewest returned the wrong state")
			}
		})
	}

	for c, err := range s.Candidates("cart/3", math.MaxUint64) {
		t.Errorf("Candidates(unknown name) visited %+v, %v", c, err)
	}
}

// corruptPayload flips a byte in the middle of the payload of file.
func corruptPayload(t testing.TB, mem *vfs.Mem, file string) {
	t.Helper()
	b, err := mem.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	hlen := int(binary.LittleEndian.Uint32(b[offHeaderLen:]))
	b[hlen+(len(b)-hlen-trailerLen)/2] ^= 0x5a
	if err := mem.WriteFile(file, b); err != nil {
		t.Fatal(err)
	}
}

// A snapshot whose payload is damaged is listed (List reads only headers)
// but fails Load, so the fallback over Candidates skips it.
func TestFallbackSkipsCorrupt(t *testing.T) {
	mem := vfs.NewMem()
	s := newStore(t, mem)
	saveAll(t, s, map[string][]uint64{"cart/1": {1, 5, 9}})
	corruptPayload(t, mem, FormatFileName("cart/1", 9))

	ro := newStore(t, vfs.ReadOnly(mem))
	list, err := ro.List("cart/1")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("List returned %d entries, want 3 (the damaged payload is not read)", len(list))
	}
	_, err = ro.Load(t.Context(), list[2])
	assertCorrupt(t, err, list[2].File)
	_, err = ro.Verify(t.Context(), list[2].File)
	assertCorrupt(t, err, list[2].File)

	m, state, err := loadNewest(t.Context(), ro, "cart/1", math.MaxUint64)
	if err != nil || m.Seq != 5 || !bytes.Equal(state, stateOf("cart/1", 5)) {
		t.Fatalf("loadNewest = %v, %v; want seq 5 and its state", m, err)
	}

	good, err := ro.VerifyAll(t.Context())
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("VerifyAll error = %v, want ErrCorrupt", err)
	}
	assertCorrupt(t, err, list[2].File)
	if len(good) != 2 {
		t.Errorf("VerifyAll returned %d good snapshots, want 2", len(good))
	}

	corruptPayload(t, mem, FormatFileName("cart/1", 5))
	corruptPayload(t, mem, FormatFileName("cart/1", 1))
	if _, _, err := loadNewest(t.Context(), ro, "cart/1", math.MaxUint64); !errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt) {
		t.Errorf("loadNewest with every candidate corrupt = %v, want ErrNotFound (only)", err)
	}
}

func TestSaveExists(t *testing.T) {
	mem := vfs.NewMem()
	called := 0
	s := newStore(t, mem, withBeforeSave(func(uint64) error { called++; return nil }))
	first := mustSave(t, s, "cart/1", 5)
	before := dirState(t, mem)
	_, err := s.Save(t.Context(), meta("cart/1", 5), []byte("other state"))
	if !errors.Is(err, ErrExists) {
		t.Fatalf("second Save = %v, want ErrExists", err)
	}
	if called != 1 {
		t.Errorf("BeforeSave called %d times, want 1 (not for a snapshot that exists)", called)
	}
	if diff := cmp.Diff(before, dirState(t, mem)); diff != "" {
		t.Errorf("a refused Save modified the directory (-before +after):\n%s", diff)
	}
	if state, err := s.Load(t.Context(), first); err != nil || !bytes.Equal(state, stateOf("cart/1", 5)) {
		t.Errorf("Load after refused Save: %v", err)
	}
}

func TestSaveConcurrentSameSnapshot(t *testing.T) {
	s := newStore(t, vfs.NewMem())
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.Save(t.Context(), meta("cart/1", 5), stateOf("cart/1", 5))
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrExists):
			t.Errorf("Save: %v, want nil or ErrExists", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d concurrent Saves of one snapshot succeeded, want 1", ok)
	}
}

func TestSaveTooLarge(t *testing.T) {
	mem := vfs.NewMem()
	called := false
	s := newStore(t, mem, withMaxRawSize(100), withBeforeSave(func(uint64) error { called = true; return nil }))
	_, err := s.Save(t.Context(), meta("big", 1), make([]byte, 101))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Save(101 bytes, cap 100) = %v, want ErrTooLarge", err)
	}
	if names, _ := mem.List(); len(names) != 0 || called {
		t.Errorf("a refused Save wrote %v (BeforeSave called: %v)", names, called)
	}
	if _, err := s.Save(t.Context(), meta("big", 1), make([]byte, 100)); err != nil {
		t.Errorf("Save(100 bytes, cap 100) = %v", err)
	}
}

func TestSaveInvalid(t *testing.T) {
	tests := []struct {
		name string
		m    Meta
	}{
		{"empty name", Meta{Seq: 1, Time: t0}},
		{"name too long", Meta{Name: strings.Repeat("n", MaxNameLen+1), Seq: 1, Time: t0}},
		{"name not UTF-8", Meta{Name: "cart/\xff", Seq: 1, Time: t0}},
		{"seq 0", Meta{Name: "cart/1", Time: t0}},
		{"no time", Meta{Name: "cart/1", Seq: 1}},
		{"time before 1678", Meta{Name: "cart/1", Seq: 1, Time: time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"time after 2262", Meta{Name: "cart/1", Seq: 1, Time: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
	mem := vfs.NewMem()
	s := newStore(t, mem)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Save(t.Context(), tt.m, []byte("state")); !errors.Is(err, ErrInvalid) {
				t.Errorf("Save = %v, want ErrInvalid", err)
			}
		})
	}
	if names, _ := mem.List(); len(names) != 0 {
		t.Errorf("invalid Saves wrote %v", names)
	}
	// The longest name works.
	if _, err := s.Save(t.Context(), meta(strings.Repeat("n", MaxNameLen), 1), []byte("x")); err != nil {
		t.Errorf("Save with a %d-byte name: %v", MaxNameLen, err)
	}
}

func TestSaveEmptyAndNormalisesTime(t *testing.T) {
	s := newStore(t, vfs.NewMem())
	local := time.Now().In(time.FixedZone("UTC+5", 5*3600)) // has a monotonic reading
	m, err := s.Save(t.Context(), Meta{Name: "stats", Seq: 3, Time: local}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Time.Location() != time.UTC || !m.Time.Equal(local) || m.Time != m.Time.Round(0) {
		t.Errorf("Save returned Time %v, want %v in UTC without a monotonic reading", m.Time, local.UTC())
	}
	list, err := s.List("stats")
	if err != nil || len(list) != 1 {
		t.Fatalf("List = %v, %v", list, err)
	}
	if diff := cmp.Diff(m, list[0]); diff != "" {
		t.Errorf("List (-Save +List):\n%s", diff)
	}
	if list[0].Time.Location() != time.UTC {
		t.Errorf("List Time %v is not UTC", list[0].Time)
	}
	state, err := s.Load(t.Context(), m)
	if err != nil || len(state) != 0 || m.RawSize != 0 {
		t.Errorf("Load(empty) = %q, %v (RawSize %d)", state, err, m.RawSize)
	}
}

func TestBeforeSave(t *testing.T) {
	mem := vfs.NewMem()
	var seqs []uint64
	failing := errors.New("log fsync failed")
	var fail bool
	s := newStore(t, mem, withBeforeSave(func(seq uint64) error {
		if names, _ := mem.List(); len(names) != len(seqs) {
			t.Errorf("BeforeSave(%d) ran after Save wrote something: %v", seq, names)
		}
		seqs = append(seqs, seq)
		if fail {
			return failing
		}
		return nil
	}))
	mustSave(t, s, "cart/1", 5)
	mustSave(t, s, "cart/1", 9)
	if diff := cmp.Diff([]uint64{5, 9}, seqs); diff != "" {
		t.Errorf("BeforeSave seqs (-want +got):\n%s", diff)
	}
	fail = true
	before := dirState(t, mem)
	if _, err := s.Save(t.Context(), meta("cart/1", 12), stateOf("cart/1", 12)); !errors.Is(err, failing) {
		t.Errorf("Save with failing BeforeSave = %v, want it to wrap %v", err, failing)
	}
	if diff := cmp.Diff(before, dirState(t, mem)); diff != "" {
		t.Errorf("Save wrote despite BeforeSave failing (-before +after):\n%s", diff)
	}
}

func TestLoadMismatch(t *testing.T) {
	mem := vfs.NewMem()
	s := newStore(t, mem)
	m := mustSave(t, s, "cart/1", 5)
	tests := []struct {
		name   string
		mutate func(*Meta)
	}{
		{"schema version", func(m *Meta) { m.SchemaVersion++ }},
		{"log ID", func(m *Meta) { m.LogID[0]++ }},
		{"time", func(m *Meta) { m.Time = m.Time.Add(time.Nanosecond) }},
		{"raw size", func(m *Meta) { m.RawSize++ }},
		{"missing file", func(m *Meta) { m.Seq, m.File = 6, "" }},
		{"other subject's file", func(m *Meta) { m.Name = "cart/2" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mm := m
			tt.mutate(&mm)
			if _, err := s.Load(t.Context(), mm); !errors.Is(err, ErrNotFound) {
				t.Errorf("Load = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	mem := vfs.NewMem()
	s := newStore(t, mem)
	m1 := mustSave(t, s, "cart/1", 1)
	m5 := mustSave(t, s, "cart/1", 5)

	if err := s.Remove(t.Context(), Meta{Name: "cart/2", Seq: 1, File: m1.File}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Remove(another subject's file) = %v, want ErrNotFound", err)
	}
	if err := s.Remove(t.Context(), m1); err != nil {
		t.Fatal(err)
	}
	list, err := s.List("cart/1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Meta{m5}, list); diff != "" {
		t.Errorf("List after Remove (-want +got):\n%s", diff)
	}
	if err := s.Remove(t.Context(), m1); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove = %v, want ErrNotFound", err)
	}

	// A file whose header is damaged can still be removed.
	b, _ := mem.ReadFile(m5.File)
	b[offSeq]++
	if err := mem.WriteFile(m5.File, b); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(t.Context(), Meta{Name: "cart/1", Seq: 5}); err != nil {
		t.Errorf("Remove(corrupt header): %v", err)
	}
	if names, _ := mem.List(); len(names) != 0 {
		t.Errorf("files left: %v", names)
	}
}

func TestCleanTemps(t *testing.T) {
	mem := vfs.NewMem()
	tmp := FormatFileName("cart/1", 5) + tempExt
	for _, name := range []string{tmp, "LOCK", "00000000000000000001-0000000000000001.seg", "notes.tmp"} {
		if err := mem.WriteFile(name, []byte("leftover")); err != nil {
			t.Fatal(err)
		}
	}
	before := dirState(t, mem)
	s := newStore(t, mem)
	if _, err := s.List(""); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, dirState(t, mem)); diff != "" {
		t.Errorf("Open and List modified the directory (-before +after):\n%s", diff)
	}
	if err := s.CleanTemps(); err != nil {
		t.Fatal(err)
	}
	delete(before, tmp)
	if diff := cmp.Diff(before, dirState(t, mem)); diff != "" {
		t.Errorf("CleanTemps (-want +got):\n%s", diff)
	}
}

func TestReadOnly(t *testing.T) {
	mem := vfs.NewMem()
	saveAll(t, newStore(t, mem), map[string][]uint64{"cart/1": {1, 5}})
	s := newStore(t, vfs.ReadOnly(mem))
	before := dirState(t, mem)
	if _, err := s.Save(t.Context(), meta("cart/1", 9), stateOf("cart/1", 9)); !errors.Is(err, vfs.ErrReadOnly) {
		t.Errorf("Save on a read-only FS = %v, want vfs.ErrReadOnly", err)
	}
	if _, _, err := loadNewest(t.Context(), s, "cart/1", math.MaxUint64); err != nil {
		t.Errorf("loadNewest: %v", err)
	}
	if diff := cmp.Diff(before, dirState(t, mem)); diff != "" {
		t.Errorf("directory modified (-before +after):\n%s", diff)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		valid bool
	}{
		{"zero", Options{}, true},
		{"fastest", Options{Level: zstd.SpeedFastest}, true},
		{"best", Options{Level: zstd.SpeedBestCompression}, true},
		{"level too high", Options{Level: zstd.SpeedBestCompression + 1}, false},
		{"level negative", Options{Level: -1}, false},
		{"max raw size 1", Options{MaxRawSize: 1}, true},
		{"max raw size limit", Options{MaxRawSize: MaxRawSizeLimit}, true},
		{"max raw size over limit", Options{MaxRawSize: MaxRawSizeLimit + 1}, false},
		{"max raw size negative", Options{MaxRawSize: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.Validate()
			if tt.valid != (err == nil) {
				t.Fatalf("Validate = %v, want valid=%v", err, tt.valid)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate = %v, want ErrInvalid", err)
			}
			_, err = Open(vfs.NewMem(), tt.opts)
			if tt.valid != (err == nil) {
				t.Errorf("Open = %v, want valid=%v", err, tt.valid)
			}
		})
	}
	if _, err := Open(nil, Options{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Open(nil) = %v, want ErrInvalid", err)
	}
}

// TestConcurrent runs Saves, Prunes and reads of several subjects at once;
// run it with -race.
func TestConcurrent(t *testing.T) {
	mem := vfs.NewMem()
	s := newStore(t, mem)
	names := []string{"cart/1", "cart/2", "stats"}
	const seqs = 12
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Go(func() {
			for seq := range uint64(seqs) {
				mustSave(t, s, name, seq+1)
				if seq%4 == 3 {
					if _, err := s.Prune(t.Context(), name, PrunePolicy{KeepLast: 2}); err != nil {
						t.Errorf("Prune(%s): %v", name, err)
					}
				}
			}
		})
		wg.Go(func() {
			for range seqs {
				m, state, err := loadNewest(t.Context(), s, name, math.MaxUint64)
				switch {
				case errors.Is(err, ErrNotFound):
				case err != nil:
					t.Errorf("loadNewest(%s): %v", name, err)
				case !bytes.Equal(state, stateOf(name, m.Seq)):
					t.Errorf("loadNewest(%s) returned the wrong state for seq %d", name, m.Seq)
				}
				if _, err := s.List(""); err != nil {
					t.Errorf("List: %v", err)
				}
			}
		})
	}
	wg.Wait()
	for _, name := range names {
		m, _, err := loadNewest(t.Context(), s, name, math.MaxUint64)
		if err != nil || m.Seq != seqs {
			t.Errorf("loadNewest(%s) = %v, %v; want seq %d", name, m, err, seqs)
		}
	}
}

func TestCorruptErrorWrapping(t *testing.T) {
	inner := errors.New("inner")
	err := fmt.Errorf("loading: %w", &CorruptError{File: "f.snap", Offset: 12, Reason: "bad", Err: inner})
	if !errors.Is(err, ErrCorrupt) || !errors.Is(err, inner) {
		t.Errorf("%v does not match both ErrCorrupt and its cause", err)
	}
	if ce, ok := errors.AsType[*CorruptError](err); !ok || ce.File != "f.snap" || ce.Offset != 12 {
		t.Errorf("errors.AsType = %+v, %v", ce, ok)
	}
	if errors.Is(err, ErrNotFound) {
		t.Errorf("%v matches ErrNotFound", err)
	}
}

// TestVerifyAllVanished: a snapshot removed between VerifyAll's listing
// and its open (a writer's Prune or Remove beside it) is skipped, as List
// and Candidates skip it, not reported as an error; the others verify.
func TestVerifyAllVanished(t *testing.T) {
	mem := vfs.NewMem()
	saveAll(t, newStore(t, mem), map[string][]uint64{"cart/1": {1, 2, 3}})
	gone := FormatFileName("cart/1", 2)
	removed := false
	ro := newStore(t, vfs.ReadOnly(vfs.NewFaulty(mem, func(op vfs.Op) error {
		if op.Kind == vfs.OpOpen && op.Name == gone && !removed {
			removed = true
			return mem.Remove(gone) // the Prune beside it
		}
		return nil
	})))
	good, err := ro.VerifyAll(t.Context())
	if err != nil {
		t.Fatalf("VerifyAll: %v, want no error for the vanished %s", err, gone)
	}
	if !removed {
		t.Fatal("VerifyAll did not open the snapshot removed beside it")
	}
	want := []Meta{wantMeta("cart/1", 1), wantMeta("cart/1", 3)}
	if diff := cmp.Diff(want, good, ignoreCompressed); diff != "" {
		t.Errorf("VerifyAll (-want +got):\n%s", diff)
	}
}
