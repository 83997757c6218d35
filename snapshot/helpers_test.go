package snapshot

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
)

// t0 is the time of the first event in test logs.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// testLogID is the log ID of test snapshots.
var testLogID = [16]byte{0xe7, 0x10, 0x90, 0x01, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}

// storeOption adjusts the Options of newStore.
type storeOption func(*Options)

func withMaxRawSize(n int64) storeOption { return func(o *Options) { o.MaxRawSize = n } }

func withLevel(l zstd.EncoderLevel) storeOption { return func(o *Options) { o.Level = l } }

func withBeforeSave(f func(seq uint64) error) storeOption {
	return func(o *Options) {
		o.BeforeSave = func(_ context.Context, seq uint64) error { return f(seq) }
	}
}

// newStore opens a Store over fsys whose logger writes to t.
func newStore(t testing.TB, fsys vfs.FS, opts ...storeOption) *Store {
	t.Helper()
	o := Options{Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, opt := range opts {
		opt(&o)
	}
	s, err := Open(fsys, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// testWriter sends log output to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

// meta returns the caller-supplied fields of the snapshot of name at seq,
// its time one second per seq after t0.
func meta(name string, seq uint64) Meta {
	return Meta{Name: name, LogID: testLogID, Seq: seq, Time: timeOf(seq), SchemaVersion: 7}
}

// timeOf returns the recorded time of event seq in test logs.
func timeOf(seq uint64) time.Time { return t0.Add(time.Duration(seq) * time.Second) }

// stateOf returns the deterministic state of name at seq: a few hundred
// bytes to a few KiB of compressible text.
func stateOf(name string, seq uint64) []byte {
	rng := rand.New(rand.NewPCG(NameHash(name), seq))
	var b []byte
	for i := range 20 + rng.IntN(100) {
		b = fmt.Appendf(b, "%s item-%03d qty=%d price=%d\n", name, i, rng.IntN(10), rng.IntN(100000))
	}
	return b
}

// mustSave saves the snapshot of name at seq with stateOf(name, seq).
func mustSave(t testing.TB, s *Store, name string, seq uint64) Meta {
	t.Helper()
	m, err := s.Save(t.Context(), meta(name, seq), stateOf(name, seq))
	if err != nil {
		t.Fatalf("Save(%q, %d): %v", name, seq, err)
	}
	return m
}

// wantMeta returns what Save returns for the snapshot of name at seq,
// except CompressedSize, which the caller copies from got.
func wantMeta(name string, seq uint64) Meta {
	m := meta(name, seq)
	m.RawSize = int64(len(stateOf(name, seq)))
	m.File = FormatFileName(name, seq)
	return m
}

// ignoreCompressed compares Metas without CompressedSize.
var ignoreCompressed = cmp.FilterPath(func(p cmp.Path) bool {
	return p.Last().String() == ".CompressedSize"
}, cmp.Ignore())

// encodeFile returns the file bytes of the snapshot of name at seq holding
// state, at the default level.
func encodeFile(t testing.TB, m Meta, state []byte) []byte {
	t.Helper()
	b, _, err := encode(m, state, DefaultLevel, nil)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

// reseal recomputes the header and file checksums of a snapshot file whose
// header length field is intact, so a test can forge a file that only a
// semantic check rejects.
func reseal(b []byte) []byte {
	b = slices.Clone(b)
	hlen := int(binary.LittleEndian.Uint32(b[offHeaderLen:]))
	binary.LittleEndian.PutUint32(b[hlen-crcLen:], crc32.Checksum(b[:hlen-crcLen], castagnoli))
	binary.LittleEndian.PutUint32(b[len(b)-trailerLen:], crc32.Checksum(b[:len(b)-trailerLen], castagnoli))
	return b
}

// withPayload returns the file b with its payload replaced by payload and
// its CompressedSize field, RawSize field (when raw >= 0) and checksums
// updated.
func withPayload(b []byte, payload []byte, raw int64) []byte {
	hlen := int(binary.LittleEndian.Uint32(b[offHeaderLen:]))
	out := slices.Concat(b[:hlen], payload, make([]byte, trailerLen))
	binary.LittleEndian.PutUint64(out[offCompressedSize:], uint64(len(payload)))
	if raw >= 0 {
		binary.LittleEndian.PutUint64(out[offRawSize:], uint64(raw))
	}
	return reseal(out)
}

// payloadOf returns the zstd frame inside the snapshot file b.
func payloadOf(b []byte) []byte {
	hlen := int(binary.LittleEndian.Uint32(b[offHeaderLen:]))
	return slices.Clone(b[hlen : len(b)-trailerLen])
}

// withFrameContentSize returns the zstd frame with its header rewritten to
// declare a content size of fcs (≥ 256), keeping its window, checksum flag
// and blocks.
func withFrameContentSize(t testing.TB, frame []byte, fcs uint64) []byte {
	t.Helper()
	var h zstd.Header
	if err := h.Decode(frame); err != nil {
		t.Fatalf("zstd header: %v", err)
	}
	h.HasFCS, h.FrameContentSize = true, fcs
	if h.SingleSegment && fcs > maxWindow {
		// Keep the window small: a lying single-segment header would
		// claim a window of fcs.
		h.SingleSegment, h.WindowSize = false, 1<<20
	}
	hdr, err := h.AppendTo(nil)
	if err != nil {
		t.Fatalf("zstd header: %v", err)
	}
	return slices.Concat(hdr, frame[h.HeaderSize:])
}

// assertCorrupt fails t unless err is a *CorruptError naming file.
func assertCorrupt(t testing.TB, err error, file string) {
	t.Helper()
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want one matching ErrCorrupt", err)
	}
	ce, ok := errors.AsType[*CorruptError](err)
	if !ok {
		t.Fatalf("err = %v (%T), want a *CorruptError", err, err)
	}
	if ce.File != file {
		t.Fatalf("CorruptError.File = %q, want %q", ce.File, file)
	}
}

// dirState returns every file of m with its content, to check that a read
// path modified nothing.
func dirState(t testing.TB, m *vfs.Mem) map[string][]byte {
	t.Helper()
	names, err := m.List()
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		b, err := m.ReadFile(n)
		if err != nil {
			t.Fatalf("ReadFile(%s): %v", n, err)
		}
		out[n] = b
	}
	return out
}

// loadNewest is the fallback replay.MakePlan runs over a store: it tries
// Candidates(name, maxSeq) newest first and returns the first snapshot
// that loads, with its state, passing over unreadable headers and
// snapshots that fail to load. It returns an error matching ErrNotFound
// when none loads, and ctx's error when ctx is done.
func loadNewest(ctx context.Context, s *Store, name string, maxSeq uint64) (Meta, []byte, error) {
	var skipped []string
	for c, err := range s.Candidates(name, maxSeq) {
		if err != nil {
			return Meta{}, nil, err
		}
		if c.Unreadable != "" {
			skipped = append(skipped, c.Unreadable)
			continue
		}
		state, err := s.Load(ctx, c.Meta)
		if err == nil {
			return c.Meta, state, nil
		}
		if ctx.Err() != nil {
			return Meta{}, nil, ctx.Err()
		}
		skipped = append(skipped, err.Error())
	}
	return Meta{}, nil, fmt.Errorf("%w: no loadable snapshot of %q (skipped %q)", ErrNotFound, name, skipped)
}
