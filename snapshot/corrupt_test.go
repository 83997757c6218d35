package snapshot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
)

// streamFrame compresses state with the streaming encoder and the given
// options, flushing a first block early so that the frame header declares
// no content size and keeps the encoder's window.
func streamFrame(t testing.TB, state []byte, opts ...zstd.EOption) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Write(state[:1]); err != nil {
		t.Fatal(err)
	}
	if err := enc.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Write(state[1:]); err != nil {
		t.Fatal(err)
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	var h zstd.Header
	if err := h.Decode(buf.Bytes()); err != nil || h.HasFCS {
		t.Fatalf("streamed frame header %+v, %v: want one without a content size", h, err)
	}
	return buf.Bytes()
}

// put64 returns b with the little-endian uint64 at off set to v.
func put64(b []byte, off int, v uint64) []byte {
	b = slices.Clone(b)
	binary.LittleEndian.PutUint64(b[off:], v)
	return b
}

func put16(b []byte, off int, v uint16) []byte {
	b = slices.Clone(b)
	binary.LittleEndian.PutUint16(b[off:], v)
	return b
}

// checkRead puts data in a directory as file and reads it through a
// read-only Store with every read method. If corrupt, each must fail with
// a *CorruptError naming file (List may leave the file out or, when only
// the payload is bad, list it); otherwise each must succeed. Nothing may be
// modified, and nothing may panic.
func checkRead(t *testing.T, file string, data []byte, corrupt bool, opts ...storeOption) (Meta, []byte) {
	t.Helper()
	mem := vfs.NewMem()
	if err := mem.WriteFile(file, data); err != nil {
		t.Fatal(err)
	}
	before := dirState(t, mem)
	defer func() {
		t.Helper()
		if diff := cmp.Diff(before, dirState(t, mem)); diff != "" {
			t.Errorf("a read modified the directory (-before +after):\n%s", diff)
		}
	}()
	s := newStore(t, vfs.ReadOnly(mem), opts...)

	m, verr := s.Verify(t.Context(), file)
	_, _, lerr := loadNewest(t.Context(), s, "cart/1", math.MaxUint64)
	_, aerr := s.VerifyAll(t.Context())
	if _, err := s.List(""); err != nil {
		t.Errorf("List: %v", err)
	}
	if corrupt {
		assertCorrupt(t, verr, file)
		assertCorrupt(t, aerr, file)
		if !errors.Is(lerr, ErrNotFound) {
			t.Errorf("loadNewest = %v, want ErrNotFound", lerr)
		}
		_, err := s.Load(t.Context(), Meta{Name: "cart/1", Seq: 5, File: file})
		assertCorrupt(t, err, file)
		return Meta{}, nil
	}
	if verr != nil || aerr != nil {
		t.Fatalf("Verify: %v; VerifyAll: %v", verr, aerr)
	}
	state, err := s.Load(t.Context(), m)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return m, state
}

func TestCorrupt(t *testing.T) {
	name, seq := "cart/1", uint64(5)
	file := FormatFileName(name, seq)
	state := stateOf(name, seq) // over 256 bytes, so its frame declares its size
	if len(state) < smallFrameLen {
		t.Fatalf("test state is only %d bytes", len(state))
	}
	valid := encodeFile(t, meta(name, seq), state)
	hlen := headerLen(len(name))
	payload := payloadOf(valid)
	raw := int64(len(state))
	small := []byte("a state under 256 bytes, whose zstd frame omits its content size")
	// Only the header checksum is wrong: the file checksum matches.
	badHeaderCRC := slices.Clone(valid)
	badHeaderCRC[hlen-1] ^= 0x80
	binary.LittleEndian.PutUint32(badHeaderCRC[len(valid)-trailerLen:],
		crc32.Checksum(badHeaderCRC[:len(valid)-trailerLen], castagnoli))

	tests := []struct {
		name    string
		data    []byte
		file    string // default: file
		opts    []storeOption
		corrupt bool
	}{
		{name: "valid", data: valid},
		{name: "another log ID is not the store's concern", data: reseal(slices.Concat(valid[:offLogID], make([]byte, 16), valid[offSeq:]))},
		{name: "small state, frame without content size", data: encodeFile(t, meta(name, seq), small)},
		{name: "small state, streamed frame", data: withPayload(valid, streamFrame(t, small), int64(len(small)))},

		{name: "zero-length file", data: nil, corrupt: true},
		{name: "all zeros", data: make([]byte, len(valid)), corrupt: true},
		{name: "all 0xff", data: bytes.Repeat([]byte{0xff}, len(valid)), corrupt: true},
		{name: "wrong magic", data: slices.Concat([]byte("evlogseg"), valid[len(magic):]), corrupt: true},
		{name: "wrong magic, checksums fixed", data: reseal(slices.Concat([]byte("EVLOGSNP"), valid[len(magic):])), corrupt: true},
		{name: "future format version", data: reseal(put16(valid, offVersion, currentVersion+1)), corrupt: true},
		{name: "version 2 header marked version 1", data: reseal(put16(valid, offVersion, formatVersion1)), corrupt: true},
		{name: "format version 0", data: reseal(put16(valid, offVersion, 0)), corrupt: true},
		{name: "unknown flags", data: reseal(put16(valid, offFlags, 1)), corrupt: true},
		{name: "header length off by one", data: put16(valid, offHeaderLen, uint16(hlen+1)), corrupt: true},
		{name: "header length huge", data: put16(valid, offHeaderLen+2, 1), corrupt: true},
		{name: "name length disagrees", data: reseal(put16(valid, offNameLen, uint16(len(name)+1))), corrupt: true},
		{name: "header checksum wrong", data: badHeaderCRC, corrupt: true},
		{name: "file checksum wrong", data: put16(valid, len(valid)-trailerLen, 0), corrupt: true},
		{name: "seq 0", data: reseal(put64(valid, offSeq, 0)), corrupt: true},
		{name: "name not UTF-8", data: reseal(slices.Concat(valid[:offName], []byte("cart/\xff"), valid[offName+len(name):])), corrupt: true},
		{name: "raw size over the cap", data: valid, opts: []storeOption{withMaxRawSize(raw - 1)}, corrupt: true},
		{name: "raw size 1 TiB", data: reseal(put64(valid, offRawSize, 1<<40)), corrupt: true},
		{name: "raw size negative", data: reseal(put64(valid, offRawSize, 1<<63)), corrupt: true},
		{name: "raw size smaller than the frame's", data: reseal(put64(valid, offRawSize, uint64(raw-1))), corrupt: true},
		{name: "raw size larger than the frame's", data: reseal(put64(valid, offRawSize, uint64(raw+1))), corrupt: true},
		{name: "raw size and frame both claim less", data: withPayload(valid, withFrameContentSize(t, payload, uint64(raw-1)), raw-1), corrupt: true},
		{name: "raw size and frame both claim more", data: withPayload(valid, withFrameContentSize(t, payload, uint64(raw+1)), raw+1), corrupt: true},
		{name: "compressed size past the end", data: reseal(put64(valid, offCompressedSize, uint64(len(payload)+1))), corrupt: true},
		{name: "compressed size over the bound", data: reseal(put64(valid, offCompressedSize, 1<<50)), corrupt: true},
		{name: "bytes appended", data: slices.Concat(valid, []byte{0}), corrupt: true},
		{name: "bytes after the frame", data: withPayload(valid, slices.Concat(payload, []byte("junk")), raw), corrupt: true},
		{name: "two frames", data: withPayload(valid, slices.Concat(payload, payload), raw), corrupt: true},
		{name: "payload not zstd", data: withPayload(valid, bytes.Repeat([]byte("not zstd"), 40), raw), corrupt: true},
		{name: "skippable frame", data: withPayload(valid, slices.Concat([]byte{0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0}, []byte("skip")), raw), corrupt: true},
		{name: "frame without content size", data: withPayload(valid, streamFrame(t, state), raw), corrupt: true},
		{name: "frame window over the cap", data: withPayload(valid, streamFrame(t, small, zstd.WithWindowSize(2*maxWindow)), int64(len(small))), corrupt: true},
		{name: "file named for another seq", data: valid, file: FormatFileName(name, seq+1), corrupt: true},
		{name: "file named for another subject", data: valid, file: FormatFileName("cart/2", seq), corrupt: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.file
			if f == "" {
				f = file
			}
			m, got := checkRead(t, f, tt.data, tt.corrupt, tt.opts...)
			if !tt.corrupt && len(got) == 0 {
				t.Errorf("loaded an empty state")
			}
			if tt.name == "another log ID is not the store's concern" && m.LogID != [16]byte{} {
				t.Errorf("Verify returned LogID %x, want the file's (zero)", m.LogID)
			}
		})
	}
}

// TestCorruptTruncated truncates a snapshot at every offset.
func TestCorruptTruncated(t *testing.T) {
	name, seq := "cart/1", uint64(5)
	file := FormatFileName(name, seq)
	valid := encodeFile(t, meta(name, seq), stateOf(name, seq))
	for n := range len(valid) {
		t.Run("", func(t *testing.T) {
			checkRead(t, file, valid[:n], true)
		})
	}
}

// TestCorruptByteFlipped flips one byte at every offset of a small snapshot:
// header, payload and trailer.
func TestCorruptByteFlipped(t *testing.T) {
	name, seq := "cart/1", uint64(5)
	file := FormatFileName(name, seq)
	valid := encodeFile(t, meta(name, seq), stateOf(name, seq))
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := range len(valid) {
		b := slices.Clone(valid)
		b[i] ^= byte(1 + rng.IntN(255))
		t.Run("", func(t *testing.T) {
			checkRead(t, file, b, true)
		})
	}
}
