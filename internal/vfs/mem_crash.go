package vfs

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
)

// ErrCrashed is returned by a Mem from the operation at which a power loss
// armed with CrashAt happens, and by every operation after it.
var ErrCrashed = errors.New("evlog/vfs: simulated power loss")

// SectorSize is the unit in which CrashClone tears unsynced file data: each
// SectorSize-aligned sector of a file survives a power loss whole, in one
// version or another.
const SectorSize = 512

// CrashModel says what survives a power loss; see Mem.CrashClone. In every
// model, data a file held at its last successful File.Sync survives intact
// (unless the file was truncated or overwritten since, under KeepPrefix) and
// a directory entry as of the last successful SyncDir survives (unless
// removed since, under KeepPrefix and RemovalsFirst). Directory operations
// lost by Mem.DropDirOps are in no model's state.
type CrashModel int

const (
	// DropUnsynced loses everything not made durable: every file has
	// exactly its content as of its last successful Sync (empty if never
	// synced) and the namespace is the durable one, as of the last
	// successful SyncDir. Creates, renames and removes since then are
	// undone; a file whose inode is not in that namespace is gone, even if
	// its data was synced.
	DropUnsynced CrashModel = iota
	// KeepPrefix keeps a random part of what was not made durable, in order.
	// The namespace is the durable one plus a random prefix (possibly none,
	// possibly all) of the directory operations since the last SyncDir,
	// applied in order. Each file whose current content extends its synced
	// content (only appends since its last Sync) keeps the synced content
	// plus the unsynced bytes up to a random end offset that is the synced
	// length, a SectorSize boundary in between, or the current length.
	// Any other file (truncated or overwritten since its last Sync) keeps,
	// per sector, either the synced or the current version of that sector,
	// at random, with a length of either the synced or the current length.
	KeepPrefix
	// Garbage models a file system that persisted file sizes but not
	// (all) file data. The namespace is the durable one (every directory
	// operation since the last SyncDir is lost). Each file keeps its synced
	// content unaltered; when its current content is longer, the unsynced
	// region that follows is chosen as under KeepPrefix and then, with
	// probability 1/2, extended to the current length; every sector of that
	// region is replaced, in its unsynced bytes, by zeros or random bytes
	// (equal odds) with probability 1/3 inside the KeepPrefix part and 2/3
	// in the extension.
	Garbage
	// RemovalsFirst models a file system that persists the removals of a
	// directory before its earlier, unsynced operations (ALICE, OSDI '14,
	// found such reorderings in real file systems; and a directory fsync
	// that failed leaves the order of what it did not persist unknown).
	// The namespace is the durable one with every name removed (Remove)
	// since the last SyncDir (or DropDirOps) removed from it, by name;
	// every other directory operation since then is lost. Each file has
	// exactly its synced content, as under DropUnsynced.
	// It is deterministic, as DropUnsynced is.
	RemovalsFirst
)

// CrashModels returns every crash model (DropUnsynced, KeepPrefix,
// Garbage, RemovalsFirst), for table tests and crash loops.
func CrashModels() []CrashModel {
	return []CrashModel{DropUnsynced, KeepPrefix, Garbage, RemovalsFirst}
}

func (c CrashModel) String() string {
	switch c {
	case DropUnsynced:
		return "DropUnsynced"
	case KeepPrefix:
		return "KeepPrefix"
	case Garbage:
		return "Garbage"
	case RemovalsFirst:
		return "RemovalsFirst"
	}
	return fmt.Sprintf("CrashModel(%d)", int(c))
}

// Ops returns the number of mutating operations performed so far (see Mem
// for which calls count). After a crash armed with CrashAt(k) it is k.
func (m *Mem) Ops() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ops
}

// CrashAt arms a power loss: the mutating operation with 0-based index k
// (counting from the creation or Clone of m) does not take effect and fails
// with an error matching ErrCrashed, and from then on every operation fails
// with ErrCrashed, except that closing a File or a lock returns nil. If k
// is at or below Ops() already, the next mutating operation loses power.
// k < 0 disarms. Once crashed, m stays crashed; use CrashClone to get the
// state a reboot would find.
func (m *Mem) CrashAt(k int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.crashAt = max(k, -1)
}

// Crashed reports whether the armed power loss has happened.
func (m *Mem) Crashed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.crashed
}

// CrashClone returns a new Mem holding what survives a power loss at this
// instant under model, drawing its random choices from rng (nil means a
// fixed seed). The same state, model and rng seed give the same result. It
// works whether or not m has crashed and leaves m unchanged. In the result
// everything is durable (what survived is what is on disk), no crash is
// armed, the op count is 0, no locks are held and no handles are open.
//
// It panics on an unknown model.
func (m *Mem) CrashClone(model CrashModel, rng *rand.Rand) *Mem {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rng == nil {
		rng = rand.New(rand.NewPCG(0, 0))
	}
	ns := maps.Clone(m.durable)
	switch model {
	case DropUnsynced, Garbage:
	case KeepPrefix:
		for _, op := range m.log[:rng.IntN(len(m.log)+1)] {
			op.apply(ns)
		}
	case RemovalsFirst:
		for _, op := range m.log {
			if op.kind == dirRemove {
				delete(ns, op.name)
			}
		}
	default:
		panic("evlog/vfs: CrashClone: unknown " + model.String())
	}
	out := NewMem()
	survived := map[*inode]*inode{}
	for _, name := range slices.Sorted(maps.Keys(ns)) {
		ino := ns[name]
		n, ok := survived[ino]
		if !ok {
			var data []byte
			switch model {
			case DropUnsynced, RemovalsFirst:
				data = slices.Clone(ino.synced)
			case KeepPrefix:
				data = keepPrefix(rng, ino.synced, ino.data)
			case Garbage:
				data = garbage(rng, ino.synced, ino.data)
			}
			n = out.newInode(data)
			survived[ino] = n
		}
		out.names[name] = n
	}
	out.durable = maps.Clone(out.names)
	return out
}

// keepPrefix returns what survives of a file with synced content s and
// current content c under KeepPrefix.
func keepPrefix(rng *rand.Rand, s, c []byte) []byte {
	if bytes.HasPrefix(c, s) {
		return slices.Clone(c[:tornEnd(rng, len(s), len(c))])
	}
	size := len(s)
	if rng.IntN(2) == 1 {
		size = len(c)
	}
	out := make([]byte, size)
	for off := 0; off < size; off += SectorSize {
		end := min(off+SectorSize, size)
		first, second := s, c
		if rng.IntN(2) == 1 {
			first, second = c, s
		}
		// size is the length of one of them, so the other covers what the
		// first lacks.
		n := copy(out[off:end], first[min(off, len(first)):min(end, len(first))])
		if off+n < end {
			copy(out[off+n:end], second[off+n:end])
		}
	}
	return out
}

// tornEnd picks where appended data from synced length lo to current length
// hi stops surviving: lo, a SectorSize boundary strictly between, or hi.
// Each of lo and hi gets probability at least 1/4.
func tornEnd(rng *rand.Rand, lo, hi int) int {
	if hi <= lo {
		return lo
	}
	first := (lo/SectorSize + 1) * SectorSize // first boundary after lo
	inner := 0
	if first < hi {
		inner = (hi-1-first)/SectorSize + 1
	}
	switch rng.IntN(4) {
	case 0:
		return lo
	case 1:
		return hi
	}
	switch i := rng.IntN(inner + 2); i {
	case 0:
		return lo
	case inner + 1:
		return hi
	default:
		return first + (i-1)*SectorSize
	}
}

// garbage returns what survives of a file with synced content s and current
// content c under Garbage.
func garbage(rng *rand.Rand, s, c []byte) []byte {
	out := slices.Clone(s)
	if len(c) <= len(s) {
		return out
	}
	kept := tornEnd(rng, len(s), len(c))
	end := kept
	if rng.IntN(2) == 1 {
		end = len(c)
	}
	out = append(out, c[len(s):end]...)
	for off := len(s) / SectorSize * SectorSize; off < end; off += SectorSize {
		lo, hi := max(off, len(s)), min(off+SectorSize, end)
		// 1 in 3 inside the kept part, 2 in 3 in the extension (size
		// persisted, data maybe not).
		r := rng.IntN(3)
		corrupt := r == 0
		if lo >= kept {
			corrupt = r != 0
		}
		if !corrupt {
			continue
		}
		if rng.IntN(2) == 0 {
			clear(out[lo:hi])
		} else {
			for i := lo; i < hi; i++ {
				out[i] = byte(rng.Uint32())
			}
		}
	}
	return out
}
