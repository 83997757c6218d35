package segment

import (
	"cmp"
	"slices"
)

// keyed is a sort item of the footer encoder: a 64-bit key and a value
// (a seq, or the index of a stream).
type keyed struct {
	key, val uint64
}

// The radix sort's digits: radixPasses digits of radixBits bits cover a
// 64-bit key.
const (
	radixBits   = 11
	radixMask   = 1<<radixBits - 1
	radixPasses = (64 + radixBits - 1) / radixBits
)

// radixMin is the length below which sortKeyed uses a comparison sort:
// shorter, the radix sort's histograms cost more than they save.
const radixMin = 1024

// sortKeyed sorts a by key, stably, and then orders each run of equal keys
// with tie (nil: leaves it in its input order). It returns the sorted
// slice, which is a or tmp: tmp is scratch of at least len(a) items.
//
// The footer encoder sorts hundreds of thousands of items per checkpoint
// and seal (the ID table, the streams by hash, the streams by name); a
// least-significant-digit radix sort of the 64-bit keys does that in a
// few linear passes (one per 11-bit digit of the key that is not the same
// in every item), where a comparison sort took ten times as long.
func sortKeyed(a, tmp []keyed, tie func(a, b keyed) int) []keyed {
	if len(a) < radixMin {
		if tie != nil {
			slices.SortFunc(a, func(x, y keyed) int {
				if c := cmp.Compare(x.key, y.key); c != 0 {
					return c
				}
				return tie(x, y)
			})
			return a
		}
		slices.SortStableFunc(a, func(x, y keyed) int { return cmp.Compare(x.key, y.key) })
	} else {
		tmp = tmp[:len(a)]
		// Six passes of 11 bits: a histogram of every digit in one read
		// of a, then one scatter per digit that is not the same in every
		// key.
		counts := make([]int, radixPasses<<radixBits)
		for _, e := range a {
			k := e.key
			for d := range radixPasses {
				counts[d<<radixBits|int(k>>(d*radixBits)&radixMask)]++
			}
		}
		for d := range radixPasses {
			c := counts[d<<radixBits : (d+1)<<radixBits]
			shift := uint(d * radixBits)
			if c[a[0].key>>shift&radixMask] == len(a) {
				continue // this digit is the same in every key
			}
			sum := 0
			for i, n := range c {
				c[i] = sum
				sum += n
			}
			for _, e := range a {
				b := e.key >> shift & radixMask
				tmp[c[b]] = e
				c[b]++
			}
			a, tmp = tmp, a
		}
	}
	if tie != nil {
		for lo := 0; lo < len(a); {
			hi := lo + 1
			for hi < len(a) && a[hi].key == a[lo].key {
				hi++
			}
			if hi-lo > 1 {
				slices.SortFunc(a[lo:hi], tie)
			}
			lo = hi
		}
	}
	return a
}

// nameKey returns the sort key of a name whose first skip bytes are those
// of every name sorted with it: its next 8 bytes, big-endian, zero-padded.
// If nameKey(a) < nameKey(b) then a < b; equal keys say nothing.
func nameKey(name string, skip int) uint64 {
	var k uint64
	n := 0
	for i := skip; i < len(name) && n < 8; i++ {
		k = k<<8 | uint64(name[i])
		n++
	}
	return k << (8 * uint(8-n))
}

// commonPrefixLen returns the length of the longest common prefix of a
// and b.
func commonPrefixLen(a, b string) int {
	n := min(len(a), len(b))
	i := 0
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}
