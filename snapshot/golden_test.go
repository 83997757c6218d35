package snapshot

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/v<N> and the FuzzDecode seed corpus")

// golden is a golden file and the input it encodes.
type golden struct {
	file  string
	meta  Meta
	state []byte
}

// goldenLevel is the level the golden files were written at.
const goldenLevel = zstd.SpeedDefault

func goldensV1() []golden {
	var small []byte
	for i := range 40 {
		small = fmt.Appendf(small, "item-%03d qty=%d\n", i, i%7)
	}
	return []golden{
		{"small.snap", Meta{Name: "cart/cart-42", LogID: testLogID, Seq: 1234, Time: t0, SchemaVersion: 3}, small},
		{"empty.snap", Meta{Name: "stats", Seq: 1, Time: time.Unix(0, 0).UTC(), SchemaVersion: 1}, []byte{}},
	}
}

func goldensV2() []golden {
	g := goldensV1()
	g[0].meta.Anchor = 0x0123456789abcdef
	g[1].meta.Anchor = 0 // not recorded
	return g
}

func goldensV3() []golden {
	g := goldensV2()
	g[0].meta.Scope = 0xfedcba9876543210
	g[1].meta.Scope = 0 // not recorded
	return g
}

func goldensV4() []golden {
	g := goldensV3()
	g[0].meta.Unfolded = MakeSeqRanges(SeqRange{From: 2, To: 5}, SeqRange{From: 700, To: 700}, SeqRange{From: 1000, To: 1233})
	g[1].meta.Unfolded = MakeSeqRanges(SeqRange{From: 1, To: 1})
	return g
}

// TestGoldenV1 checks that the version 1 golden files (no anchor) decode to
// their inputs, forever, and that the version 1 encoder still writes them
// byte for byte. zstd output is deterministic for a given level and
// library version; if a zstd upgrade changes it, the old files must still
// decode: keep them and only then consider regenerating with -update.
func TestGoldenV1(t *testing.T) { testGolden(t, formatVersion1, goldensV1()) }

// TestGoldenV2 is TestGoldenV1 for version 2 (an anchor after the name).
func TestGoldenV2(t *testing.T) { testGolden(t, formatVersion2, goldensV2()) }

// TestGoldenV3 is TestGoldenV1 for version 3 (a scope after the anchor),
// the version Save writes for a Meta without Unfolded ranges.
func TestGoldenV3(t *testing.T) { testGolden(t, formatVersion3, goldensV3()) }

// TestGoldenV4 is TestGoldenV1 for version 4 (Unfolded ranges after the
// scope), the version Save writes for a Meta with Unfolded ranges.
func TestGoldenV4(t *testing.T) { testGolden(t, formatVersion4, goldensV4()) }

func testGolden(t *testing.T, v uint16, goldens []golden) {
	for _, g := range goldens {
		t.Run(g.file, func(t *testing.T) {
			path := filepath.Join("testdata", fmt.Sprintf("v%d", v), g.file)
			if *update {
				b, _, err := encodeV(v, g.meta, g.state, goldenLevel, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
				seed := "golden-" + g.file
				if v != formatVersion1 {
					seed = fmt.Sprintf("golden-v%d-%s", v, g.file)
				}
				writeFuzzSeed(t, seed, b)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}

			m, state, err := decode(g.file, bytes.NewReader(b), int64(len(b)), DefaultMaxRawSize, true)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := g.meta
			want.RawSize = int64(len(g.state))
			want.CompressedSize = int64(len(b) - headerLenV(v, len(g.meta.Name), g.meta.Unfolded.Len()) - trailerLen)
			if diff := cmp.Diff(want, m); diff != "" {
				t.Errorf("decoded meta (-want +got):\n%s", diff)
			}
			if !bytes.Equal(state, g.state) {
				t.Errorf("decoded state = %q, want %q", state, g.state)
			}

			// Through a Store, under its proper name.
			mem := vfs.NewMem()
			want.File = FormatFileName(g.meta.Name, g.meta.Seq)
			if err := mem.WriteFile(want.File, b); err != nil {
				t.Fatal(err)
			}
			s := newStore(t, vfs.ReadOnly(mem))
			if got, err := s.Verify(t.Context(), want.File); err != nil || !cmp.Equal(want, got) {
				t.Errorf("Verify = %+v, %v; want %+v", got, err, want)
			}

			enc, _, err := encodeV(v, g.meta, g.state, goldenLevel, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, b) {
				t.Errorf("the encoder no longer writes %s byte for byte:\n got %x\nwant %x", path, enc, b)
			}
		})
	}
}

// writeFuzzSeed writes data as a file of the FuzzDecode seed corpus.
func writeFuzzSeed(t *testing.T, name string, data []byte) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
