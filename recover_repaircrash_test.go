package evlog

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// tornSealMem returns a log directory in which a crash during a roll left
// the state TestTornSealAfterRoll builds: the newest segment holds only its
// header, and the old segment's trailer reached the disk without its first
// footer frame. It returns the number of events the old segment holds.
func tornSealMem(t *testing.T) (*vfs.Mem, int) {
	t.Helper()
	ctx := t.Context()
	mem := vfs.NewMem()
	opts := crashOpts(SyncAlways)
	l, err := openFS(mem, opts, false)
	if err != nil {
		t.Fatal(err)
	}
	var segs []SegmentInfo
	for i := 0; len(segs) < 2; i++ {
		if _, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "t", Time: t0, Data: bytes.Repeat([]byte{byte(i)}, 100)}); err != nil {
			t.Fatal(err)
		}
		if segs, err = l.Segments(); err != nil {
			t.Fatal(err)
		}
	}
	old, newest := segs[0], segs[1]
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	nb, err := mem.ReadFile(newest.File)
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.WriteFile(newest.File, nb[:segment.HeaderSize]); err != nil {
		t.Fatal(err)
	}
	if err := mem.Remove(segment.CheckpointName(newest.File)); err != nil {
		t.Fatal(err)
	}
	s, err := segment.Open(mem, old.File)
	if err != nil {
		t.Fatal(err)
	}
	recEnd := s.Trailer.RecordsEnd
	s.Close()
	ob, err := mem.ReadFile(old.File)
	if err != nil {
		t.Fatal(err)
	}
	clear(ob[recEnd : recEnd+16])
	if err := mem.WriteFile(old.File, ob); err != nil {
		t.Fatal(err)
	}
	if err := mem.SyncDir(); err != nil {
		t.Fatal(err)
	}
	return mem, old.Events
}

// TestTornSealRepairCrash: Open repairs a torn seal after a roll by
// removing the empty newest segment and truncating the old segment's
// footer. A power loss at any operation of that repair must leave a
// directory the next Open recovers with every event: repair is idempotent
// (docs/RELIABILITY #4). Removing the newest segment durably before the
// old segment's seal is truncated left a sealed newest segment with no
// successor, which Open refused as corruption.
func TestTornSealRepairCrash(t *testing.T) {
	base, events := tornSealMem(t)
	opts := crashOpts(SyncAlways)
	for k := 0; ; k++ {
		mem := base.Clone()
		mem.CrashAt(k)
		l, err := openFS(mem, opts, false)
		if !mem.Crashed() {
			if err != nil {
				t.Fatalf("open without a crash: %v", err)
			}
			l.Close()
			if k == 0 {
				t.Fatal("the repair did no operation")
			}
			break
		}
		if err == nil {
			l.Close()
		}
		for _, model := range vfs.CrashModels() {
			rng := rand.New(rand.NewPCG(uint64(k), uint64(model)))
			after := mem.CrashClone(model, rng)
			t.Run(fmt.Sprintf("crash at op %d/%v", k, model), func(t *testing.T) {
				l, err := openFS(after, opts, false)
				if err != nil {
					t.Fatalf("open after a crash during the repair of a torn seal: %v", err)
				}
				defer l.Close()
				n := 0
				for e, err := range l.Events(t.Context(), 1) {
					if err != nil {
						t.Fatalf("reading: %v", err)
					}
					if n++; e.Seq != uint64(n) {
						t.Fatalf("seq %d, want %d", e.Seq, n)
					}
				}
				if n != events {
					t.Fatalf("the log holds %d events, want %d", n, events)
				}
			})
		}
	}
}

// markedSuccessorMem returns a log directory as a writer closed right
// after a roll leaves it: the old segment sealed, the newest holding only
// its header and a mark recording that the seal was durable (markEmpty).
// It returns the old segment and where its records end.
func markedSuccessorMem(t *testing.T) (*vfs.Mem, SegmentInfo, int64) {
	t.Helper()
	ctx := t.Context()
	mem := vfs.NewMem()
	l, err := openFS(mem, crashOpts(SyncAlways), false)
	if err != nil {
		t.Fatal(err)
	}
	var segs []SegmentInfo
	for i := 0; len(segs) < 2; i++ {
		if _, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "t", Time: t0, Data: bytes.Repeat([]byte{byte(i)}, 100)}); err != nil {
			t.Fatal(err)
		}
		if segs, err = l.Segments(); err != nil {
			t.Fatal(err)
		}
	}
	old, newest := segs[0], segs[1]
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	ns, err := segment.Open(mem, newest.File)
	if err != nil {
		t.Fatal(err)
	}
	nh := ns.Header
	ns.Close()
	nb, err := mem.ReadFile(newest.File)
	if err != nil {
		t.Fatal(err)
	}
	nb = segment.AppendMarkFrame(nb[:segment.HeaderSize:segment.HeaderSize], nh, segment.HeaderSize, true)
	if err := mem.WriteFile(newest.File, nb); err != nil {
		t.Fatal(err)
	}
	if err := mem.Remove(segment.CheckpointName(newest.File)); err != nil {
		t.Fatal(err)
	}
	if err := mem.SyncDir(); err != nil {
		t.Fatal(err)
	}
	s, err := segment.Open(mem, old.File)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	return mem, old, s.Trailer.RecordsEnd
}

// damageFile applies damage to name's bytes in mem (durably).
func damageFile(t *testing.T, mem *vfs.Mem, name string, damage func([]byte)) {
	t.Helper()
	b, err := mem.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	damage(b)
	if err := mem.WriteFile(name, b); err != nil {
		t.Fatal(err)
	}
}

// TestMarkedSuccessorKeepsDamagedSealed: a mark in the newest segment is
// written only after the seal of the segment before it was fsynced
// (markEmpty; a roll seals the old segment before anything goes into the
// new one). So when the segment before a newest one that holds only a
// mark reads as unsealed, no crash during a roll explains it: its end was
// damaged after it was durable. Recovery must report that as corruption,
// not remove the newest segment and truncate the damaged one's "torn
// tail" — which would cut acknowledged, fsynced events.
func TestMarkedSuccessorKeepsDamagedSealed(t *testing.T) {
	ctx := t.Context()
	mem, old, recEnd := markedSuccessorMem(t)
	// The damage: the old segment's last sector (its trailer and the end
	// of what comes before it) reads as zeros.
	damageFile(t, mem, old.File, func(b []byte) {
		clear(b[min(len(b)-vfs.SectorSize, int(recEnd)-64):])
	})
	before := snapshotFiles(t, mem)

	l, err := openFS(mem, crashOpts(SyncAlways), false)
	if err == nil {
		n := 0
		for range l.RangeBorrowed(ctx, 1, math.MaxUint64) {
			n++
		}
		l.Close()
		t.Fatalf("open repaired damage in a sealed segment whose seal a mark proves durable: it removed %v, truncated %s at %+v and keeps %d of the %d events acknowledged", l.Recovery().Removed, l.Recovery().TornFile, l.Recovery().TornTail, n, old.Events)
	}
	ce, ok := errors.AsType[*segment.CorruptError](err)
	if !ok || ce.File != old.File {
		t.Fatalf("open: got %v, want a CorruptError naming %s", err, old.File)
	}
	if d := cmp.Diff(before, snapshotFiles(t, mem)); d != "" {
		t.Fatalf("a failed open changed the directory:\n%s", d)
	}
}

// TestVerifyMarkedSuccessorDamage: verify classifies as recovery does. A
// mark in the newest segment proves the seal before it durable, so damage
// at the end of that segment (read as unsealed, or sealed with damaged
// records) is corruption (verify=1), never a torn seal or a torn tail.
func TestVerifyMarkedSuccessorDamage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b []byte, recEnd int64)
	}{
		{"last sector zeroed", func(b []byte, recEnd int64) { clear(b[min(len(b)-vfs.SectorSize, int(recEnd)-64):]) }},
		{"last mark flipped", func(b []byte, recEnd int64) { b[recEnd-8] ^= 0x10 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem, old, recEnd := markedSuccessorMem(t)
			damageFile(t, mem, old.File, func(b []byte) { tc.damage(b, recEnd) })
			rep, err := verifyFS(t.Context(), vfs.ReadOnly(mem))
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Corrupt() || !slices.ContainsFunc(rep.Findings, func(f Finding) bool { return f.File == old.File && f.Kind != FindingTornTail }) {
				t.Fatalf("verify: corrupt %v, findings %+v; want corruption naming %s", rep.Corrupt(), rep.Findings, old.File)
			}
		})
	}
}
