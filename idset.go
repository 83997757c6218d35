package evlog

// idSet holds the committed entries of the ID index (dedupe.go), 64-bit
// ID hashes with their events' seqs, in a form whose cost per append
// stays small and cache-friendly however large the log:
//
//   - a register-blocked Bloom filter (one 64-bit word per key's block, 16
//     bits per key, 6 bits set: well under 1% false positives) answers the
//     common question, "is this ID new?", with one word read from a
//     structure 2 bytes per ID large;
//   - the entries are appended, unsorted, to buckets by the (mixed) hash's
//     top bits (a few hundred entries each; the buckets double, splitting
//     sequentially, as the set grows), scanned only when the filter says
//     "maybe". Appending touches one bucket's tail, and the tails of all
//     buckets fit in the CPU caches.
//   - a bucket is a list of fixed-size chunks, which come from and return
//     to a free list: appending never copies entries, and a split moves
//     each entry once into chunks the split itself freed, so the set
//     allocates about what its live entries need, not a multiple of it.
//
// The filter never forgets (an unstaged or evicted entry leaves its bits
// until the next rebuild, which only raises the false-positive rate a
// little); it is rebuilt, twice as large as the live entries need, when
// the keys added reach its capacity. Entries out of DedupeWindow are
// dropped from a bucket when it has doubled since it was last pruned.
type idSet struct {
	filter   []uint64
	added    int // keys added since the filter was built
	capacity int // keys it was built for
	buckets  []idBucket
	shift    uint // bucket of the mixed hash m: m >> shift
	n        int  // entries in the buckets
	free     []*idChunk
}

// idChunkLen is the number of entries of a bucket's chunk (1 KiB).
const idChunkLen = 64

type idChunk [idChunkLen]idSlot

// idBucket holds n entries in its chunks, in order: all full but the
// last.
type idBucket struct {
	tail   *idChunk // the last chunk (appends touch it only)
	n      int
	prune  int // with a window: prune when n reaches it
	chunks []*idChunk
}

// chunk returns the entries of the bucket's chunk i.
func (b *idBucket) chunk(i int) []idSlot {
	return b.chunks[i][:min(b.n-i*idChunkLen, idChunkLen)]
}

// push appends e, taking a chunk from x's free list when the last one is
// full.
func (x *idSet) push(b *idBucket, e idSlot) {
	i := b.n % idChunkLen
	if i == 0 {
		if k := b.n / idChunkLen; k < len(b.chunks) {
			b.tail = b.chunks[k]
		} else {
			b.tail = x.newChunk()
			b.chunks = append(b.chunks, b.tail)
		}
	}
	b.tail[i] = e
	b.n++
}

func (x *idSet) newChunk() *idChunk {
	if k := len(x.free); k > 0 {
		c := x.free[k-1]
		x.free[k-1] = nil
		x.free = x.free[:k-1]
		return c
	}
	return new(idChunk)
}

// release returns the bucket's chunks from the first one holding no
// entry on to the free list.
func (x *idSet) release(b *idBucket) {
	used := (b.n + idChunkLen - 1) / idChunkLen
	x.free = append(x.free, b.chunks[used:]...)
	clear(b.chunks[used:])
	b.chunks = b.chunks[:used]
	b.tail = nil
	if used > 0 {
		b.tail = b.chunks[used-1]
	}
}

// prune drops the bucket's entries that keep says left the window,
// compacting the rest in place.
func (x *idSet) prune(b *idBucket, keep func(uint64) bool) {
	n := 0
	for i := range b.chunks {
		for _, e := range b.chunk(i) {
			if keep(e.seq) {
				b.chunks[n/idChunkLen][n%idChunkLen] = e
				n++
			}
		}
	}
	x.n -= b.n - n
	b.n = n
	x.release(b)
	b.prune = max(2*n, 8)
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
// more are the staged entries (not in the buckets) to keep in a rebuilt
// filter. It reports whether they were all set already: whether an entry
// with hash h may be in the set or staged (mayContain, computed once).
func (x *idSet) add(h uint64, more []stagedID) (maybe bool) {
	if x.added >= x.capacity {
		x.rebuild(more)
	}
	w, m := x.filterBits(mix(h))
	maybe = x.filter[w]&m == m
	x.filter[w] |= m
	x.added++
	return maybe
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
	for i := range x.buckets {
		b := &x.buckets[i]
		for j := range b.chunks {
			for _, e := range b.chunk(j) {
				set(e.h)
			}
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
	b := &x.buckets[h>>x.shift]
	for i := range b.chunks {
		for _, e := range b.chunk(i) {
			if e.h == h {
				dst = append(dst, e.seq)
			}
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
		x.buckets, x.shift = make([]idBucket, idBucketsMin), idBucketShift
	}
	h = mix(h)
	b := &x.buckets[h>>x.shift]
	if keep != nil && b.n >= b.prune {
		x.prune(b, keep)
	}
	x.push(b, idSlot{h, seq})
	x.n++
	if x.n > idBucketAvg*len(x.buckets) {
		x.split()
	}
}

// split doubles the buckets: bucket i's entries go to 2i and 2i+1, into
// chunks freed by the buckets split before it.
func (x *idSet) split() {
	nb := make([]idBucket, 2*len(x.buckets))
	shift := x.shift - 1
	for i := range x.buckets {
		b := &x.buckets[i]
		for j := range b.chunks {
			for _, e := range b.chunk(j) {
				x.push(&nb[e.h>>shift], e)
			}
		}
		b.n = 0
		x.release(b)
		nb[2*i].prune, nb[2*i+1].prune = max(2*nb[2*i].n, 8), max(2*nb[2*i+1].n, 8)
	}
	x.buckets, x.shift = nb, shift
}
