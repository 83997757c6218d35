package snapshot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
)

// FuzzDecode feeds arbitrary bytes to the decoder as a snapshot file. It
// must not panic, must allocate a bounded amount, and must either decode
// (and then the result must survive an encode/decode round trip) or fail
// with a *CorruptError naming the file. Each input is also decoded with its
// checksums fixed up, so mutations reach the checks behind them (sizes,
// frame structure, the decompressor). Seeds: the golden files (also in
// testdata/fuzz/FuzzDecode).
func FuzzDecode(f *testing.F) {
	for _, g := range goldensV1() {
		b, err := os.ReadFile(filepath.Join("testdata", "v1", g.file))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	const file = "fuzz.snap"
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, file, data)
		if n := len(data); n >= minHeaderLen+trailerLen {
			hlen := int(binary.LittleEndian.Uint32(data[offHeaderLen:]))
			if hlen >= minHeaderLen && hlen <= n-trailerLen {
				checkDecode(t, file, reseal(data))
			}
		}
	})
}

// checkDecode decodes data as the snapshot file named file and checks the
// outcome; see FuzzDecode.
func checkDecode(t *testing.T, file string, data []byte) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m, state, err := decode(file, bytes.NewReader(data), int64(len(data)), DefaultMaxRawSize, true)
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > 256<<20 {
		t.Fatalf("decoding %d bytes allocated %d bytes", len(data), n)
	}
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decode error %v does not match ErrCorrupt", err)
		}
		if ce, ok := errors.AsType[*CorruptError](err); !ok || ce.File != file {
			t.Fatalf("decode error %v is not a *CorruptError naming %s", err, file)
		}
		return
	}
	if int64(len(state)) != m.RawSize {
		t.Fatalf("decoded %d bytes, RawSize %d", len(state), m.RawSize)
	}
	again, m2, err := encode(m, state, zstd.SpeedFastest, nil)
	if err != nil {
		t.Fatal(err)
	}
	m3, state3, err := decode(file, bytes.NewReader(again), int64(len(again)), DefaultMaxRawSize, true)
	if err != nil {
		t.Fatalf("re-encoded snapshot does not decode: %v", err)
	}
	if diff := cmp.Diff(m2, m3); diff != "" {
		t.Errorf("round trip changed the meta (-encoded +decoded):\n%s", diff)
	}
	if diff := cmp.Diff(m, m3, ignoreCompressed); diff != "" {
		t.Errorf("round trip changed the meta (-first +second):\n%s", diff)
	}
	if !bytes.Equal(state, state3) {
		t.Errorf("round trip changed the state")
	}
}
