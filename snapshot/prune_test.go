package snapshot

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/google/go-cmp/cmp"
)

func TestPrune(t *testing.T) {
	// Six snapshots of cart/1; seq i has time timeOf(times[i-1]) (default
	// timeOf(i)), so a case can make the clock step back.
	tests := []struct {
		name   string
		times  []uint64
		policy PrunePolicy
		keep   []uint64
	}{
		{"keep last 1", nil, PrunePolicy{KeepLast: 1}, []uint64{6}},
		{"keep last 3", nil, PrunePolicy{KeepLast: 3}, []uint64{4, 5, 6}},
		{"keep last more than there are", nil, PrunePolicy{KeepLast: 10}, []uint64{1, 2, 3, 4, 5, 6}},
		{"since an exact time keeps the one before", nil, PrunePolicy{KeepSince: timeOf(4)}, []uint64{3, 4, 5, 6}},
		{"since between times", nil, PrunePolicy{KeepSince: timeOf(4).Add(time.Nanosecond)}, []uint64{4, 5, 6}},
		{"since after all keeps the newest", nil, PrunePolicy{KeepSince: timeOf(100)}, []uint64{6}},
		{"since before all keeps all", nil, PrunePolicy{KeepSince: timeOf(0)}, []uint64{1, 2, 3, 4, 5, 6}},
		{"union of both rules", nil, PrunePolicy{KeepLast: 1, KeepSince: timeOf(3)}, []uint64{2, 3, 4, 5, 6}},
		{"keep last dominates", nil, PrunePolicy{KeepLast: 5, KeepSince: timeOf(6)}, []uint64{2, 3, 4, 5, 6}},
		// By seq, the newest before KeepSince is seq 5 (time 10): it is
		// what AtTime(just before KeepSince) selects.
		{"clock stepped back", []uint64{1, 30, 20, 40, 10, 50}, PrunePolicy{KeepSince: timeOf(30)}, []uint64{2, 4, 5, 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := vfs.NewMem()
			counting := vfs.NewCounting(mem)
			s := newStore(t, counting)
			var all []Meta
			for i := range uint64(6) {
				seq := i + 1
				m := meta("cart/1", seq)
				if tt.times != nil {
					m.Time = timeOf(tt.times[seq-1])
				}
				saved, err := s.Save(t.Context(), m, stateOf("cart/1", seq))
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, saved)
			}
			other := mustSave(t, s, "cart/2", 1)
			var wantRemoved, wantKept []Meta
			for _, m := range all {
				if slices.Contains(tt.keep, m.Seq) {
					wantKept = append(wantKept, m)
				} else {
					wantRemoved = append(wantRemoved, m)
				}
			}

			counting.Reset()
			removed, err := s.Prune(t.Context(), "cart/1", tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantRemoved, removed); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
			kept, err := s.List("cart/1")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(wantKept, kept); diff != "" {
				t.Errorf("kept (-want +got):\n%s", diff)
			}
			if got, err := s.List("cart/2"); err != nil || len(got) != 1 || got[0] != other {
				t.Errorf("another subject was touched: %v, %v", got, err)
			}
			// One directory fsync before the first removal (the
			// replacements durable), one after the last.
			wantSyncs := int64(0)
			if len(wantRemoved) > 0 {
				wantSyncs = 2
			}
			if c := counting.Total(); c.SyncDirs != wantSyncs || c.Removes != int64(len(wantRemoved)) {
				t.Errorf("Prune did %d removes and %d directory fsyncs, want %d and %d",
					c.Removes, c.SyncDirs, len(wantRemoved), wantSyncs)
			}
		})
	}
}

func TestPruneEverySubject(t *testing.T) {
	s := newStore(t, vfs.NewMem())
	saveAll(t, s, map[string][]uint64{"cart/1": {1, 2, 3}, "cart/2": {4, 5}, "stats": {6}})
	removed, err := s.Prune(t.Context(), "", PrunePolicy{KeepLast: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 3 {
		t.Errorf("removed %v, want 3 snapshots", removed)
	}
	all, err := s.List("")
	if err != nil {
		t.Fatal(err)
	}
	want := []Meta{wantMeta("cart/1", 3), wantMeta("cart/2", 5), wantMeta("stats", 6)}
	if diff := cmp.Diff(want, all, ignoreCompressed); diff != "" {
		t.Errorf("left (-want +got):\n%s", diff)
	}
}

func TestPruneInvalid(t *testing.T) {
	mem := vfs.NewMem()
	s := newStore(t, mem)
	saveAll(t, s, map[string][]uint64{"cart/1": {1, 2}})
	// The zero policy is valid: it means DefaultPrunePolicy (TestKeepsTiers).
	for _, p := range []PrunePolicy{{KeepLast: -1}, {KeepLast: -1, KeepSince: t0}, {KeepLast: 1, Tiers: []Tier{{Within: -time.Hour}}}} {
		if _, err := s.Prune(t.Context(), "cart/1", p); !errors.Is(err, ErrInvalid) {
			t.Errorf("Prune(%+v) = %v, want ErrInvalid", p, err)
		}
	}
	if list, _ := s.List("cart/1"); len(list) != 2 {
		t.Errorf("invalid Prunes removed snapshots: %v left", list)
	}
}

// TestPruneDamagedReplacement damages the body of a snapshot the policy
// keeps, its header intact (List still reports it), and checks that Prune
// does not remove the older snapshots it was to replace: a snapshot is
// removed only on the word of a newer kept one that verifies as Load
// would. Older doomed snapshots replaced by an intact kept one still go.
func TestPruneDamagedReplacement(t *testing.T) {
	// 1 MiB of zeros: a small frame that decompresses far beyond the
	// declared raw size.
	small, err := zeroFrame(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte) []byte {
		hlen := int(binary.LittleEndian.Uint32(b[offHeaderLen:]))
		b = slices.Clone(b)
		b[hlen+(len(b)-trailerLen-hlen)/2] ^= 0x55
		return b
	}
	// Seqs 1 to 6 of cart/1; KeepSince timeOf(5) keeps 4 (the newest
	// before it), 5 and 6, and dooms 1 to 3, all of which 4 replaces.
	policy := PrunePolicy{KeepSince: timeOf(5)}
	tests := []struct {
		name    string
		corrupt func([]byte) []byte // applied to seq `damaged`'s file
		damaged uint64
		keep    []uint64
	}{
		{"clean", nil, 0, []uint64{4, 5, 6}},
		{"replacement byte flipped", flip, 4, []uint64{1, 2, 3, 4, 5, 6}},
		{"replacement bomb", func(b []byte) []byte { return withPayload(b, small, -1) }, 4, []uint64{1, 2, 3, 4, 5, 6}},
		// A truncated file fails its header's size check: List leaves it
		// out, so the policy keeps 3 in its place (and 4 is left alone).
		{"replacement truncated", func(b []byte) []byte { return b[:len(b)-1] }, 4, []uint64{3, 4, 5, 6}},
		// A damaged snapshot newer than the replacement changes nothing.
		{"newest byte flipped", flip, 6, []uint64{4, 5, 6}},
		{"newest bomb", func(b []byte) []byte { return withPayload(b, small, -1) }, 6, []uint64{4, 5, 6}},
		// A damaged doomed snapshot is pruned as before.
		{"doomed byte flipped", flip, 2, []uint64{4, 5, 6}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem := vfs.NewMem()
			s := newStore(t, mem)
			for seq := range uint64(6) {
				mustSave(t, s, "cart/1", seq+1)
			}
			if tt.corrupt != nil {
				file := FormatFileName("cart/1", tt.damaged)
				b, err := mem.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				if err := mem.WriteFile(file, tt.corrupt(b)); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.Prune(t.Context(), "cart/1", policy); err != nil {
				t.Fatal(err)
			}
			var left []uint64
			names, err := mem.List()
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				if _, seq, ok := ParseFileName(n); ok {
					left = append(left, seq)
				}
			}
			if diff := cmp.Diff(tt.keep, left); diff != "" {
				t.Errorf("snapshot files left (-want +got):\n%s", diff)
			}
		})
	}
}
