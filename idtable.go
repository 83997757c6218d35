package evlog

// idTable is an open-addressing hash multimap from 64-bit hashes of event
// IDs to the seqs of the events holding them: one probe per look-up, no
// pointers for the garbage collector to scan. Two IDs may share a hash:
// a hash names candidates, which the caller confirms by reading the
// events (dedupe.go). Linear probing; deletion shifts entries back (no
// tombstones).
type idTable struct {
	slots []idSlot // a power of two long, or nil
	n     int
}

// idSlot is one entry; seq 0 marks an empty slot (seqs start at 1).
type idSlot struct{ h, seq uint64 }

const idTableMin = 1 << 10

func (t *idTable) mask() uint64 { return uint64(len(t.slots) - 1) }

// has reports whether some entry has hash h.
func (t *idTable) has(h uint64) bool {
	if t.n == 0 {
		return false
	}
	m := t.mask()
	for i := h & m; t.slots[i].seq != 0; i = (i + 1) & m {
		if t.slots[i].h == h {
			return true
		}
	}
	return false
}

// appendSeqs appends the seqs of the entries with hash h to dst.
func (t *idTable) appendSeqs(dst []uint64, h uint64) []uint64 {
	if t.n == 0 {
		return dst
	}
	m := t.mask()
	for i := h & m; t.slots[i].seq != 0; i = (i + 1) & m {
		if t.slots[i].h == h {
			dst = append(dst, t.slots[i].seq)
		}
	}
	return dst
}

// insert adds the entry (h, seq); seq > 0.
func (t *idTable) insert(h, seq uint64) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	m := t.mask()
	i := h & m
	for t.slots[i].seq != 0 {
		i = (i + 1) & m
	}
	t.slots[i] = idSlot{h, seq}
	t.n++
}

func (t *idTable) grow() {
	old := t.slots
	t.slots = make([]idSlot, max(idTableMin, 2*len(old)))
	t.n = 0
	m := t.mask()
	for _, s := range old {
		if s.seq == 0 {
			continue
		}
		i := s.h & m
		for t.slots[i].seq != 0 {
			i = (i + 1) & m
		}
		t.slots[i] = s
		t.n++
	}
}

// remove deletes the entry (h, seq) if present.
func (t *idTable) remove(h, seq uint64) {
	if t.n == 0 {
		return
	}
	m := t.mask()
	i := h & m
	for ; ; i = (i + 1) & m {
		s := t.slots[i]
		if s.seq == 0 {
			return
		}
		if s.h == h && s.seq == seq {
			break
		}
	}
	// Shift back the entries after i whose home slot is not in (i, j].
	for j := i; ; {
		j = (j + 1) & m
		s := t.slots[j]
		if s.seq == 0 {
			break
		}
		k := s.h & m
		if i <= j {
			if i < k && k <= j {
				continue
			}
		} else if i < k || k <= j {
			continue
		}
		t.slots[i] = s
		i = j
	}
	t.slots[i] = idSlot{}
	t.n--
}
