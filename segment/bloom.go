package segment

// bloom is a bloom filter over stream hashes (double hashing).
type bloom []byte

func newBloom(keys int) bloom { return make(bloom, bloomBytes(keys)) }

// bloomBytes returns the size of the bloom filter of keys keys.
func bloomBytes(keys int) int {
	bits := max(64, keys*bloomBitsPerKey)
	return (bits + 7) / 8
}

func (b bloom) add(h uint64) {
	m := uint64(len(b) * 8)
	h1, h2 := h&0xffffffff, h>>32|1
	for i := range uint64(bloomProbes) {
		bit := (h1 + i*h2) % m
		b[bit/8] |= 1 << (bit % 8)
	}
}

func (b bloom) mayContain(h uint64) bool {
	m := uint64(len(b) * 8)
	if m == 0 {
		return false
	}
	h1, h2 := h&0xffffffff, h>>32|1
	for i := range uint64(bloomProbes) {
		bit := (h1 + i*h2) % m
		if b[bit/8]&(1<<(bit%8)) == 0 {
			return false
		}
	}
	return true
}
