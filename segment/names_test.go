package segment

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestFileNameRoundTrip(t *testing.T) {
	tests := []struct {
		seq, gen uint64
		name     string
	}{
		{1, 0, "00000000000000000001-00000000.seg"},
		{0, 0, "00000000000000000000-00000000.seg"},
		{42, 7, "00000000000000000042-00000007.seg"},
		{1_000_000, 12_345, "00000000000001000000-00012345.seg"},
		{math.MaxUint64, maxGen, "18446744073709551615-99999999.seg"},
	}
	for _, tt := range tests {
		if got := FormatFileName(tt.seq, tt.gen); got != tt.name {
			t.Errorf("FormatFileName(%d, %d) = %q, want %q", tt.seq, tt.gen, got, tt.name)
		}
		seq, gen, ok := ParseFileName(tt.name)
		if !ok || seq != tt.seq || gen != tt.gen {
			t.Errorf("ParseFileName(%q) = %d, %d, %v, want %d, %d, true", tt.name, seq, gen, ok, tt.seq, tt.gen)
		}
	}
}

func TestFileNameRandomRoundTrip(t *testing.T) {
	rng := newRand(t)
	for range 10_000 {
		seq := rng.Uint64() >> rng.IntN(64)
		gen := rng.Uint64N(maxGen + 1)
		name := FormatFileName(seq, gen)
		if len(name) != nameLength {
			t.Fatalf("FormatFileName(%d, %d) = %q: length %d, want %d", seq, gen, name, len(name), nameLength)
		}
		s, g, ok := ParseFileName(name)
		if !ok || s != seq || g != gen {
			t.Fatalf("ParseFileName(FormatFileName(%d, %d) = %q) = %d, %d, %v", seq, gen, name, s, g, ok)
		}
	}
}

// Sorting names lexically must give (base seq, generation) order, which is
// what directory listings rely on.
func TestFileNameLexicalOrder(t *testing.T) {
	rng := newRand(t)
	type key struct{ seq, gen uint64 }
	keys := []key{{0, 0}, {1, 0}, {1, 1}, {9, 0}, {10, 0}, {99, maxGen}, {100, 0}, {math.MaxUint64, 0}, {math.MaxUint64, maxGen}}
	for range 2000 {
		keys = append(keys, key{rng.Uint64() >> rng.IntN(64), rng.Uint64N(maxGen + 1)})
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = FormatFileName(k.seq, k.gen)
	}
	slices.Sort(names)
	slices.SortFunc(keys, func(a, b key) int {
		if a.seq != b.seq {
			if a.seq < b.seq {
				return -1
			}
			return 1
		}
		return int(a.gen) - int(b.gen)
	})
	for i, n := range names {
		seq, gen, ok := ParseFileName(n)
		if !ok || seq != keys[i].seq || gen != keys[i].gen {
			t.Fatalf("lexical position %d holds %q (%d, %d), numeric order has (%d, %d)", i, n, seq, gen, keys[i].seq, keys[i].gen)
		}
	}
}

func TestParseFileNameRejects(t *testing.T) {
	valid := FormatFileName(123, 4)
	tests := []struct{ desc, name string }{
		{"empty", ""},
		{"short seq", "0000000000000000001-00000000.seg"},
		{"long seq", "000000000000000000001-00000000.seg"},
		{"short gen", "00000000000000000001-0000000.seg"},
		{"long gen", "00000000000000000001-000000000.seg"},
		{"letter in seq", "0000000000000000000a-00000000.seg"},
		{"letter in gen", "00000000000000000001-0000000x.seg"},
		{"sign in seq", "+0000000000000000001-00000000.seg"},
		{"space in gen", "00000000000000000001- 0000000.seg"},
		{"missing dash", "00000000000000000001000000000.seg"},
		{"underscore for dash", "00000000000000000001_00000000.seg"},
		{"other extension", "00000000000000000001-00000000.log"},
		{"upper-case extension", "00000000000000000001-00000000.SEG"},
		{"no extension", "00000000000000000001-00000000"},
		{"temporary file", valid + TempExt},
		{"temporary file of same length", strings.TrimSuffix(valid, Ext) + ".tmp"},
		{"seq overflows uint64", "18446744073709551616-00000000.seg"},
		{"seq all nines", "99999999999999999999-00000000.seg"},
		{"directory prefix", "d/000000000000000001-00000000.seg"},
		{"snapshot name", "00000000000000000001.snap.zst"},
	}
	for _, tt := range tests {
		if seq, gen, ok := ParseFileName(tt.name); ok {
			t.Errorf("%s: ParseFileName(%q) = %d, %d, true, want ok=false", tt.desc, tt.name, seq, gen)
		}
	}
}
