package snapshot

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"sync"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/klauspost/compress/zstd"
)

// zeros is an io.Reader of n zero bytes.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n == 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), z.n)
	clear(p[:k])
	z.n -= k
	return int(k), nil
}

// zeroFrame returns a zstd frame of n zero bytes made by the streaming
// encoder, which declares no content size.
func zeroFrame(n int64) ([]byte, error) {
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	if _, err := enc.ReadFrom(&zeros{n}); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// bombSize is the content of the bomb: 4 times the most any case lets
// Load allocate (the cap plus 16 MiB), so a Load that decompressed it
// whole would fail every bound by far. (It was 4 GiB, whose encoding took
// 95% of the test's time under -race; the headers still claim 4 GiB.)
const bombSize = 4 * (DefaultMaxRawSize + 16<<20)

// bomb returns a zstd frame of bombSize zeros, some tens of KiB long, made
// once per test binary.
var bomb = sync.OnceValues(func() ([]byte, error) { return zeroFrame(bombSize) })

// allocated returns the bytes allocated while f runs.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDecompressionBomb loads forged snapshots whose payload decompresses
// to 4 times what Load may allocate, with headers that lie in every way
// (claiming up to 4 GiB), and checks that each is rejected as corrupt
// having allocated at most the raw size cap plus a little: never the
// bomb, and nothing proportional to what the headers claim beyond the
// cap.
func TestDecompressionBomb(t *testing.T) {
	frame, err := bomb()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("bomb: %d MiB of zeros in a %d-byte zstd frame", bombSize>>20, len(frame))
	// A 1 MiB frame that fits the payload bound of a 100-byte state.
	small, err := zeroFrame(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(small)) > maxCompressedLen(100) {
		t.Fatalf("small bomb is %d bytes, over the bound for 100 bytes", len(small))
	}
	const capRaw = DefaultMaxRawSize

	tests := []struct {
		name    string
		payload []byte
		raw     int64
		limit   uint64 // bytes Load may allocate
		decoded bool   // rejected by the decoder, not before
	}{
		{"no content size, header claims the cap", frame, capRaw, 4 << 20, false},
		{"frame and header claim the true size", withFrameContentSize(t, frame, bombSize), bombSize, 4 << 20, false},
		{"frame and header claim 4 GiB", withFrameContentSize(t, frame, 4<<30), 4 << 30, 4 << 20, false},
		{"frame claims 4 GiB, header the cap", withFrameContentSize(t, frame, 4<<30), capRaw, 4 << 20, false},
		{"frame and header lie alike: the cap", withFrameContentSize(t, frame, capRaw), capRaw, capRaw + 16<<20, true},
		{"frame and header lie alike: 1 MiB", withFrameContentSize(t, frame, 1<<20), 1 << 20, 1<<20 + 16<<20, true},
		{"header claims 100 bytes, 1 MiB frame has no content size", small, 100, 4 << 20, true},
	}
	name, seq := "cart/1", uint64(5)
	file := FormatFileName(name, seq)
	valid := encodeFile(t, meta(name, seq), stateOf(name, seq))
	mem := vfs.NewMem()
	s := newStore(t, vfs.ReadOnly(mem))
	// Warm up the shared decoder so its own buffers are not counted.
	if err := mem.WriteFile(file, valid); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Verify(t.Context(), file); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		if tt.limit*2 > bombSize {
			t.Fatalf("%s: Load may allocate %d bytes, too close to the bomb's %d to tell a bounded Load", tt.name, tt.limit, bombSize)
		}
		t.Run(tt.name, func(t *testing.T) {
			data := withPayload(valid, tt.payload, tt.raw)
			if err := mem.WriteFile(file, data); err != nil {
				t.Fatal(err)
			}
			var err error
			n := allocated(func() { _, err = s.Load(t.Context(), Meta{Name: name, Seq: seq}) })
			assertCorrupt(t, err, file)
			t.Logf("allocated %d KiB: %v", n>>10, err)
			// Over the cap, the header check's error wraps ErrTooLarge;
			// the decoder's, its own error.
			ce, _ := errors.AsType[*CorruptError](err)
			if byDecoder := ce.Err != nil && !errors.Is(ce.Err, ErrTooLarge); tt.decoded != byDecoder {
				t.Errorf("rejected by the decoder: %v, want %v", byDecoder, tt.decoded)
			}
			if n > tt.limit {
				t.Errorf("Load allocated %d bytes, want at most %d", n, tt.limit)
			}
		})
	}
}
