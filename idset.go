package evlog

import (
	"cmp"
	"slices"
)

// idSet holds the committed entries of the ID index (dedupe.go), 64-bit
// ID hashes with their events' seqs, in a form whose cost per append
// stays small and cache-friendly however large the log:
//
//   - a register-blocked Bloom filter (one 64-bit word per key's block, 16
//     bits per key, 6 bits set: well under 1% false positives) answers the
//     common question, "is this ID new?", with one word read from a
//     structure 2 bytes per ID large;
//   - the entries are appended, unsorted, to buckets by the hash's top
//     bits (a few hundred entries each; the buckets double, splitting
//     sequentially, as the set grows), scanned only when the filter says
//     "maybe". Appending touches one bucket's tail, and the tails of all
//     buckets fit in the CPU caches.
//
// The filter never forgets (an unstaged or evicted entry leaves its bits
// until the next rebuild, which only raises the false-positive rate a
// little); it is rebuilt, twice as large as the live entries need, when
// the keys added reach its capacity. Entries out of DedupeWindow are
// dropped from a bucket when it is full, before it grows.
type idSet struct {
	filter   []uint64
	added    int // keys added since the filter was built
	capacity int // keys it was built for
	buckets  [][]idSlot
	shift    uint // bucket of h: h >> shift
	n        int  // entries in the buckets
}

// idSlot is one entry: h is the ID's hash, mixed (see mix).
type idSlot struct{ h, seq uint64 }

// mix is a bijection of 64-bit hashes (MurmurHash3's finalizer) whose
// every output bit depends on every input bit. The set positions keys
// (filter word and bits, bucket) by the mixed hash: IDHash is FNV-1a,
// whose top bits change little between IDs that differ only in their
// last characters (a counter after a fixed prefix, as time-ordered UUIDs
// have), which clustered them in a few buckets and filter words. Being a
// bijection, equal mixed hashes are equal hashes.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

const (
	idFilterMinKeys = 4096
	idFilterK       = 6
)

// filterBits returns the word of the block of the mixed hash h and the
// bits h sets in it.
func (x *idSet) filterBits(h uint64) (int, uint64) {
	w := int((h >> 32) * uint64(len(x.filter)) >> 32)
	h2 := h * 0x9e3779b97f4a7c15
	var m uint64
	for i := range idFilterK {
		m |= 1 << ((h2 >> (16 + 6*i)) & 63)
	}
	return w, m
}

// mayContain reports whether an entry with hash h may be in the set (or
// was added to the filter by add).
func (x *idSet) mayContain(h uint64) bool {
	if len(x.filter) == 0 {
		return false
	}
	w, m := x.filterBits(mix(h))
	return x.filter[w]&m == m
}

// add sets h's bits in the filter, rebuilding it first if it is full;
// more are the staged entries (not in the runs) to keep in a rebuilt
// filter.
func (x *idSet) add(h uint64, more []stagedID) {
	if x.added >= x.capacity {
		x.rebuild(more)
	}
	w, m := x.filterBits(mix(h))
	x.filter[w] |= m
	x.added++
}

// rebuild sizes the filter for twice the live entries and fills it.
func (x *idSet) rebuild(more []stagedID) {
	n := len(more)
	n += x.n
	x.capacity = max(idFilterMinKeys, 2*n)
	words := x.capacity / 4 // 16 bits per key
	if cap(x.filter) >= words && cap(x.filter) <= 2*words {
		x.filter = x.filter[:words]
		clear(x.filter)
	} else {
		x.filter = make([]uint64, words)
	}
	x.added = 0
	set := func(h uint64) {
		w, m := x.filterBits(h)
		x.filter[w] |= m
		x.added++
	}
	for _, b := range x.buckets {
		for _, e := range b {
			set(e.h)
		}
	}
	for _, e := range more {
		set(mix(e.h))
	}
}

// appendSeqs appends the seqs of the committed entries with hash h.
func (x *idSet) appendSeqs(dst []uint64, h uint64) []uint64 {
	if x.n == 0 {
		return dst
	}
	h = mix(h)
	for _, e := range x.buckets[h>>x.shift] {
		if e.h == h {
			dst = append(dst, e.seq)
		}
	}
	return dst
}

const (
	idBucketsMin  = 256
	idBucketShift = 64 - 8 // for idBucketsMin
	idBucketAvg   = 256    // entries per bucket before the buckets double
)

// insert adds the entry (h, seq); keep, if not nil, says which seqs are
// still in the window.
func (x *idSet) insert(h, seq uint64, keep func(uint64) bool) {
	if x.buckets == nil {
		x.buckets, x.shift = make([][]idSlot, idBucketsMin), idBucketShift
	}
	h = mix(h)
	b := &x.buckets[h>>x.shift]
	if len(*b) == cap(*b) && keep != nil {
		n := len(*b)
		*b = slices.DeleteFunc(*b, func(e idSlot) bool { return !keep(e.seq) })
		x.n -= n - len(*b)
	}
	*b = append(*b, idSlot{h, seq})
	x.n++
	if x.n > idBucketAvg*len(x.buckets) {
		x.split()
	}
}

// split doubles the buckets: bucket i's entries go to 2i and 2i+1.
func (x *idSet) split() {
	nb := make([][]idSlot, 2*len(x.buckets))
	shift := x.shift - 1
	for i, b := range x.buckets {
		hi := 0
		for _, e := range b {
			hi += int(e.h>>shift) & 1
		}
		lo := len(b) - hi
		// Room to double before the next split: no bucket regrows
		// in between, as a rule.
		nb[2*i] = make([]idSlot, 0, 2*lo+8)
		nb[2*i+1] = make([]idSlot, 0, 2*hi+8)
		for _, e := range b {
			j := e.h >> shift
			nb[j] = append(nb[j], e)
		}
		x.buckets[i] = nil
	}
	x.buckets, x.shift = nb, shift
}

func cmpSlot(a, b idSlot) int {
	if c := cmp.Compare(a.h, b.h); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}
