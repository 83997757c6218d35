package segment

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp/cmpopts"

	gocmp "github.com/google/go-cmp/cmp"
)

// randomIndex returns an index of events events over streams streams
// whose names are drawn from a few shapes (a shared prefix and a number;
// names equal in their first 8+ bytes past the common prefix; short and
// long names; bytes above 0x7f), with IDs on some events (some repeated,
// so that the ID table has equal hashes).
func randomIndex(rng *rand.Rand, streams, events int) *Index {
	names := make([]string, 0, streams)
	seen := map[string]bool{}
	shape := rng.IntN(4)
	for len(names) < streams {
		var s string
		switch shape {
		case 0:
			s = fmt.Sprintf("orders-%d", rng.IntN(streams*10+1))
		case 1:
			s = fmt.Sprintf("tenant/%s/account-%d", strings.Repeat("x", 1+rng.IntN(12)), rng.IntN(streams+1))
		case 2:
			b := make([]byte, 1+rng.IntN(20))
			for i := range b {
				b[i] = byte(1 + rng.IntN(255))
			}
			s = string(b)
		default:
			s = fmt.Sprintf("%c%d", 'a'+rng.IntN(3), rng.IntN(streams*3+1))
		}
		if !seen[s] {
			seen[s] = true
			names = append(names, s)
		}
	}
	x := NewIndex(1)
	off := int64(HeaderSize)
	vers := map[string]uint64{}
	for i := range events {
		var name string
		if i < len(names) {
			name = names[i] // every stream has an event
		} else {
			name = names[rng.IntN(len(names))]
		}
		vers[name]++
		l := uint32(FrameHeaderSize + 1 + rng.IntN(300))
		if rng.IntN(50) == 0 {
			l = uint32(FrameHeaderSize + rng.IntN(MaxFramePayload))
		}
		e := EventInfo{Seq: 1 + uint64(i), Stream: name, Version: vers[name], Time: t0 + int64(i), Off: off, Len: l}
		switch rng.IntN(4) {
		case 0:
		case 1:
			e.ID = fmt.Sprintf("id-%d", rng.IntN(events/4+1)) // repeats
		default:
			e.ID = fmt.Sprintf("id-%d", i)
		}
		x.Add(e)
		off += int64(l)
	}
	x.End = off
	return x
}

// TestAppendFooterMatchesReference checks the encoder against the
// reference encoder (footer_ref_test.go) on randomized indexes of every
// size class the sorts treat differently, for every footer version, with
// and without the ID table, at a footer offset other than the records'
// end (compressed segments, checkpoints), into a reused buffer holding
// garbage: the output must be byte for byte the same, and exactly as long
// as planned (no regrowing, no room reserved in vain).
func TestAppendFooterMatchesReference(t *testing.T) {
	t.Parallel() // CPU-bound and long under -race: overlap it with the I/O-bound tests
	rng := rand.New(rand.NewPCG(17, 3))
	sizes := []struct{ streams, events int }{
		{0, 0}, {1, 1}, {1, 700}, {3, 50}, {17, 40}, {radixMin - 1, 1500}, {radixMin, radixMin}, {radixMin + 1, 2000},
		{1000, 5000}, {3000, 3000}, {5000, 20000},
	}
	for _, sz := range sizes {
		for rep := range 3 {
			x := randomIndex(rng, sz.streams, sz.events)
			end := x.End
			first := uint16(1)
			if sz.streams >= 3000 {
				first = FormatVersion // the big indexes: the newest version only (it has every section), to keep -race runs short
			}
			for version := first; version <= FormatVersion; version++ {
				for _, ids := range []bool{true, false} {
					name := fmt.Sprintf("streams=%d/events=%d/rep=%d/v%d/ids=%v", sz.streams, sz.events, rep, version, ids)
					h := testHeader(1)
					h.Version = version
					hb := h.Encode()
					recordsEnd, footerStart := end, end
					if rep == 1 {
						recordsEnd, footerStart = end/2, CheckpointHeaderSize
					}
					want, wantT := refAppendFooter(x, []byte("prefix"), hb, recordsEnd, footerStart, version, ids)

					garbage := bytes.Repeat([]byte{0xff}, len(want)+100)
					dst := append(garbage[:0], "prefix"...)
					got, gotT := x.appendFooter(dst, hb, recordsEnd, footerStart, version, ids, 1+rep%2)
					if !bytes.Equal(got, want) {
						i := 0
						for i < min(len(got), len(want)) && got[i] == want[i] {
							i++
						}
						t.Fatalf("%s: footer differs from the reference's at byte %d (lengths %d, %d)\nref frames: %s\ngot frames: %s", name, i, len(got), len(want),
							frameSizes(want[len("prefix"):]), frameSizes(got[len("prefix"):]))
					}
					if diff := gocmp.Diff(wantT, gotT); diff != "" {
						t.Fatalf("%s: trailer (-ref +got):\n%s", name, diff)
					}
					if pl := x.planFooter(version, ids); pl.size != len(want)-len("prefix") {
						t.Fatalf("%s: planned %d bytes, wrote %d", name, pl.size, len(want)-len("prefix"))
					}
				}
			}
		}
	}
}

// TestEncodeCheckpointMatchesReference checks a whole checkpoint file
// against one whose footer the reference encoder wrote.
func TestEncodeCheckpointMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 4))
	for _, streams := range []int{1, 40, 2000} {
		x := randomIndex(rng, streams, 3*streams+100)
		h := testHeaderV2(1)
		hb := h.Encode()
		got := EncodeCheckpoint(h, hb, x, x.End, 0x12345678)
		ref, _ := refAppendFooter(x, make([]byte, CheckpointHeaderSize), hb, x.End, CheckpointHeaderSize, ckptFooterVersion(ckptVersion), false)
		if !bytes.Equal(got[CheckpointHeaderSize:], ref[CheckpointHeaderSize:]) {
			t.Fatalf("streams=%d: checkpoint footer differs from the reference's", streams)
		}
	}
}

// TestSortKeyed checks the radix sort against a comparison sort, with
// keys that vary in few bytes (whole passes skipped), many equal keys,
// and ties broken by val.
func TestSortKeyed(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 2, radixMin - 1, radixMin, radixMin + 1, 5000} {
		for _, mask := range []uint64{^uint64(0), 0xff00, 0x3, 0, 0xff00000000000000} {
			a := make([]keyed, n)
			for i := range a {
				a[i] = keyed{key: rng.Uint64() & mask, val: rng.Uint64N(uint64(n) + 1)}
			}
			want := slices.Clone(a)
			slices.SortFunc(want, func(x, y keyed) int { return cmp.Or(cmp.Compare(x.key, y.key), cmp.Compare(x.val, y.val)) })
			got := sortKeyed(slices.Clone(a), make([]keyed, n), func(x, y keyed) int { return cmp.Compare(x.val, y.val) })
			if !slices.Equal(want, got) { // (go-cmp only to explain: it is slow on 5,000 items)
				t.Fatalf("n=%d mask=%#x (-want +got):\n%s", n, mask, gocmp.Diff(want, got, gocmp.AllowUnexported(keyed{}), cmpopts.EquateEmpty()))
			}
			// Without tie: stable.
			stable := slices.Clone(a)
			slices.SortStableFunc(stable, func(x, y keyed) int { return cmp.Compare(x.key, y.key) })
			got = sortKeyed(slices.Clone(a), make([]keyed, n), nil)
			if !slices.Equal(stable, got) {
				t.Fatalf("n=%d mask=%#x, no tie (-want +got):\n%s", n, mask, gocmp.Diff(stable, got, gocmp.AllowUnexported(keyed{}), cmpopts.EquateEmpty()))
			}
		}
	}
}

// TestNameKeyOrder checks that nameKey never orders two names against
// their string order.
func TestNameKeyOrder(t *testing.T) {
	names := []string{"", "a", "a\x00", "a\x00\x00", "ab", "abcdefgh", "abcdefghi", "abcdefgh\x00", "b", "\xff", "\xff\xff\xff\xff\xff\xff\xff\xff\xff", "a\x01"}
	for skip := range 2 {
		for _, a := range names {
			for _, b := range names {
				if len(a) < skip || len(b) < skip || a[:skip] != b[:skip] {
					continue
				}
				if ka, kb := nameKey(a, skip), nameKey(b, skip); ka < kb && !(a < b) {
					t.Errorf("skip %d: nameKey(%q) < nameKey(%q), but the names are not in that order", skip, a, b)
				}
			}
		}
	}
	for _, c := range []struct {
		a, b string
		want int
	}{{"orders-1", "orders-22", 7}, {"orders-", "orders-22", 7}, {"", "a", 0}, {"ab", "ab", 2}, {"b", "a", 0}} {
		if got := commonPrefixLen(c.a, c.b); got != c.want {
			t.Errorf("commonPrefixLen(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}

// frameSizes describes the frames of a footer: bytes per kind.
func frameSizes(b []byte) string {
	sizes := map[Kind]int{}
	for off := 0; off+FrameHeaderSize <= len(b)-TrailerSize; {
		n := int(le.Uint32(b[off+frameLenOff:]))
		sizes[Kind(b[off+frameKindOff])] += n
		off += FrameHeaderSize + n
	}
	return fmt.Sprint(sizes)
}

// TestAppendPostings checks the postings encoder against binary.AppendUvarint
// for deltas and lengths of every uvarint size, given the right size and
// sizes too short (it must then still encode them all).
func TestAppendPostings(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	var posts []Posting
	off := int64(0)
	for i := range 400 {
		off += 1 + int64(rng.Uint64N(1<<uint(1+i%40)))
		posts = append(posts, Posting{Off: off, Len: uint32(rng.Uint64N(1 << uint(1+i%32)))})
	}
	for _, n := range []int{0, 1, 2, 3, 17, len(posts)} {
		ps := posts[:n]
		want := binary.AppendUvarint([]byte("x"), uint64(n))
		prev := int64(0)
		for _, po := range ps {
			want = binary.AppendUvarint(want, uint64(po.Off-prev))
			want = binary.AppendUvarint(want, uint64(po.Len))
			prev = po.Off
		}
		size := postingsSize(ps)
		if size != len(want)-1 {
			t.Fatalf("%d postings: postingsSize %d, want %d", n, size, len(want)-1)
		}
		for _, sz := range []int{size, size / 2, 0} {
			if got := appendPostings([]byte("x"), ps, sz); !bytes.Equal(got, want) {
				t.Fatalf("%d postings, size %d given for %d: encoded differently", n, sz, size)
			}
		}
	}
}
