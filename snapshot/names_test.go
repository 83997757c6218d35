package snapshot

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestFileNameRoundTrip(t *testing.T) {
	for _, name := range []string{"cart/cart-42", "stats", "projection/top-items", "ü", strings.Repeat("x", MaxNameLen)} {
		for _, seq := range []uint64{1, 9, 10, 1234567, math.MaxUint64} {
			file := FormatFileName(name, seq)
			if len(file) != fileLen {
				t.Errorf("FormatFileName(%q, %d) = %q, %d bytes, want %d", name, seq, file, len(file), fileLen)
			}
			h, s, ok := ParseFileName(file)
			if !ok || h != NameHash(name) || s != seq {
				t.Errorf("ParseFileName(%q) = %#x, %d, %v; want %#x, %d, true", file, h, s, ok, NameHash(name), seq)
			}
			if isTemp(file) || !isTemp(file+tempExt) {
				t.Errorf("isTemp is wrong for %q", file)
			}
		}
	}
}

func TestFileNameOrder(t *testing.T) {
	// Lexical order groups a subject and orders it by seq.
	seqs := []uint64{1, 2, 9, 10, 99, 100, 1 << 40, math.MaxUint64}
	var files []string
	for _, seq := range slices.Backward(seqs) {
		files = append(files, FormatFileName("cart/1", seq))
	}
	slices.Sort(files)
	for i, f := range files {
		if _, seq, _ := ParseFileName(f); seq != seqs[i] {
			t.Errorf("sorted file %d has seq %d, want %d", i, seq, seqs[i])
		}
	}
}

func TestParseFileNameRejects(t *testing.T) {
	valid := FormatFileName("cart/1", 5)
	for _, file := range []string{
		"",
		valid + tempExt,
		valid[:len(valid)-1],
		valid + "x",
		strings.ToUpper(valid[:hashDigits]) + valid[hashDigits:],
		strings.Replace(valid, "-", "_", 1),
		valid[:hashDigits+1] + "9" + strings.Repeat("9", seqDigits-1) + fileExt, // > MaxUint64
		valid[:hashDigits+1] + "+" + valid[hashDigits+2:],
		"LOCK",
		"00000000000000000001-0000000000000001.seg",
	} {
		if h, s, ok := ParseFileName(file); ok {
			t.Errorf("ParseFileName(%q) = %#x, %d, true; want false", file, h, s)
		}
	}
}

func TestNameHashIsFNV1a(t *testing.T) {
	// Part of the file format: never change these.
	for _, tt := range []struct {
		name string
		want uint64
	}{
		{"", 0xcbf29ce484222325},
		{"a", 0xaf63dc4c8601ec8c},
		{"foobar", 0x85944171f73967e8},
	} {
		if got := NameHash(tt.name); got != tt.want {
			t.Errorf("NameHash(%q) = %#x, want %#x", tt.name, got, tt.want)
		}
	}
}
