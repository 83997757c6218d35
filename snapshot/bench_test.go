package snapshot

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/klauspost/compress/zstd"
	"github.com/vmihailenco/msgpack/v5"
)

// benchItem is one entry of the benchmark state: an inventory projection.
type benchItem struct {
	SKU        string   `msgpack:"sku"`
	Name       string   `msgpack:"name"`
	Qty        int      `msgpack:"qty"`
	PriceCents int64    `msgpack:"price"`
	Tags       []string `msgpack:"tags"`
	UpdatedAt  int64    `msgpack:"updated"`
}

var (
	benchStatesMu sync.Mutex
	benchStates   = map[int][]byte{}
)

// benchState returns a msgpack-encoded map of n entries (about 110 bytes
// each), built once per size and process. Keys are sorted, so the bytes are
// deterministic.
func benchState(b *testing.B, n int) []byte {
	b.Helper()
	benchStatesMu.Lock()
	defer benchStatesMu.Unlock()
	if s, ok := benchStates[n]; ok {
		return s
	}
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	adjectives := []string{"red", "blue", "large", "small", "organic", "vintage", "wireless", "steel"}
	nouns := []string{"mug", "lamp", "chair", "cable", "notebook", "jacket", "kettle", "speaker"}
	tags := []string{"sale", "new", "gift", "eco", "bulk", "clearance", "premium", "local"}
	m := make(map[string]benchItem, n)
	for i := range n {
		key := fmt.Sprintf("item-%07d", i)
		m[key] = benchItem{
			SKU:        fmt.Sprintf("SKU-%08X", rng.Uint32()),
			Name:       adjectives[rng.IntN(len(adjectives))] + " " + nouns[rng.IntN(len(nouns))],
			Qty:        rng.IntN(500),
			PriceCents: int64(99 + rng.IntN(100000)),
			Tags:       []string{tags[rng.IntN(len(tags))], tags[rng.IntN(len(tags))]},
			UpdatedAt:  1_740_000_000_000_000_000 + rng.Int64N(1e17),
		}
	}
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(m); err != nil {
		b.Fatal(err)
	}
	benchStates[n] = buf.Bytes()
	return buf.Bytes()
}

var benchLevels = []struct {
	name  string
	level zstd.EncoderLevel
}{
	{"fastest", zstd.SpeedFastest},
	{"default", zstd.SpeedDefault},
	{"better", zstd.SpeedBetterCompression},
	{"best", zstd.SpeedBestCompression},
}

var benchSizes = []int{10_000, 1_000_000}

// benchStore opens a Store for benchmarks: quiet, with room for the large
// state.
func benchStore(b *testing.B, fsys vfs.FS, level zstd.EncoderLevel) *Store {
	b.Helper()
	s, err := Open(fsys, Options{Level: level, MaxRawSize: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkSave measures Save (compress, frame, write, fsync, rename) of a
// msgpack map state, in raw MB/s, at each level, to the in-memory FS and,
// at the default level, to the OS file system.
func BenchmarkSave(b *testing.B) {
	type fsCase struct {
		name string
		fs   func(b *testing.B) vfs.FS
	}
	mem := fsCase{"mem", func(*testing.B) vfs.FS { return vfs.NewMem() }}
	osfs := fsCase{"os", func(b *testing.B) vfs.FS {
		fsys, err := vfs.OpenOS(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { fsys.Close() })
		return fsys
	}}
	for _, n := range benchSizes {
		for _, lv := range benchLevels {
			for _, fc := range []fsCase{mem, osfs} {
				if fc.name == "os" && lv.level != DefaultLevel {
					continue
				}
				b.Run(fmt.Sprintf("entries=%d/level=%s/fs=%s", n, lv.name, fc.name), func(b *testing.B) {
					state := benchState(b, n)
					s := benchStore(b, fc.fs(b), lv.level)
					b.SetBytes(int64(len(state)))
					b.ReportAllocs()
					var m Meta
					seq := uint64(0)
					for b.Loop() {
						seq++
						var err error
						m, err = s.Save(b.Context(), Meta{Name: "projection/inventory", Seq: seq, Time: timeOf(seq)}, state)
						if err != nil {
							b.Fatal(err)
						}
						if err := s.Remove(b.Context(), m); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(m.RawSize)/float64(m.CompressedSize), "ratio")
				})
			}
		}
	}
}

// BenchmarkLoad measures Load (read, checksum, decompress into a buffer
// sized from RawSize) of a msgpack map state, in raw MB/s, for snapshots
// written at each level.
func BenchmarkLoad(b *testing.B) {
	for _, n := range benchSizes {
		for _, lv := range benchLevels {
			b.Run(fmt.Sprintf("entries=%d/level=%s", n, lv.name), func(b *testing.B) {
				state := benchState(b, n)
				s := benchStore(b, vfs.NewMem(), lv.level)
				m, err := s.Save(b.Context(), Meta{Name: "projection/inventory", Seq: 1, Time: t0}, state)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(m.RawSize)
				b.ReportAllocs()
				for b.Loop() {
					got, err := s.Load(b.Context(), m)
					if err != nil {
						b.Fatal(err)
					}
					if len(got) != len(state) {
						b.Fatalf("loaded %d bytes, want %d", len(got), len(state))
					}
				}
				b.ReportMetric(float64(m.RawSize)/float64(m.CompressedSize), "ratio")
			})
		}
	}
}
