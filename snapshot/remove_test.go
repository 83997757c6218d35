package snapshot

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// TestRemoveChecksTheWholeMeta: Remove(m) of a Meta read from the store
// (List, Candidates) removes the file only if it still holds that
// snapshot. It used to compare only Name and Seq, so a snapshot another
// writer saved at the same name and seq after the caller read m (another
// SchemaVersion, Scope or state: the file name is the same) was removed
// on the word of a header the caller never read. A Meta with only Name
// and Seq set still removes whatever snapshot of that subject and seq is
// there.
func TestRemoveChecksTheWholeMeta(t *testing.T) {
	for _, tc := range []struct {
		name  string
		other func(Meta) Meta // the concurrent writer's snapshot at m's name and seq
	}{
		{"another schema version", func(m Meta) Meta { m.SchemaVersion++; return m }},
		{"another scope", func(m Meta) Meta { m.Scope = 42; return m }},
		{"another time", func(m Meta) Meta { m.Time = m.Time.Add(1); return m }},
		{"another log", func(m Meta) Meta { m.LogID[0]++; return m }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			s := newStore(t, mem)
			read := mustSave(t, s, "projection/p", 5) // what the caller read
			// Interleaving: another writer replaces it before the
			// caller's Remove.
			if err := s.Remove(t.Context(), read); err != nil {
				t.Fatal(err)
			}
			in := tc.other(meta("projection/p", 5))
			newer, err := s.Save(t.Context(), in, stateOf("projection/p", 5)) // same size: only the field differs
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Remove(t.Context(), read); !errors.Is(err, ErrNotFound) {
				t.Errorf("Remove(the snapshot read before another writer replaced it) = %v, want ErrNotFound", err)
			}
			list, err := s.List("projection/p")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]Meta{newer}, list); diff != "" {
				t.Errorf("snapshots after the stale Remove (-want +got):\n%s", diff)
			}
			// Name and Seq alone: whatever is there.
			if err := s.Remove(t.Context(), Meta{Name: "projection/p", Seq: 5}); err != nil {
				t.Errorf("Remove(name and seq only) = %v", err)
			}
		})
	}
}

// TestRemoveRefusesNewerFormat: Remove deletes a snapshot whose header is
// damaged (Rebuild clearing out checkpoints), but not one whose header
// names a format version or flags newer than this build reads: that is a
// snapshot a newer evlog wrote (a binary rolled back), which this build
// cannot tell from its own, so it is left in place with an error matching
// ErrNewerFormat (and ErrCorrupt). It used to be removed on the word of a
// header this build could not read.
func TestRemoveRefusesNewerFormat(t *testing.T) {
	for _, tc := range []struct {
		name  string
		patch func(b []byte)
		newer bool
	}{
		{"newer version", func(b []byte) { b[offVersion] = byte(currentVersion + 1) }, true},
		{"unknown flags", func(b []byte) { b[offFlags] = 0x80 }, true},
		{"damaged header", func(b []byte) { b[offSeq] ^= 0xff }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			s := newStore(t, mem)
			m := mustSave(t, s, "projection/p", 5)
			b, err := mem.ReadFile(m.File)
			if err != nil {
				t.Fatal(err)
			}
			tc.patch(b)
			if err := mem.WriteFile(m.File, b); err != nil {
				t.Fatal(err)
			}
			err = s.Remove(t.Context(), m)
			_, statErr := mem.Stat(m.File)
			if !tc.newer {
				if err != nil || statErr == nil {
					t.Fatalf("Remove of a damaged snapshot: %v, file still there: %v; want it removed", err, statErr == nil)
				}
				return
			}
			if !errors.Is(err, ErrNewerFormat) || !errors.Is(err, ErrCorrupt) {
				t.Errorf("Remove = %v, want an error matching ErrNewerFormat and ErrCorrupt", err)
			}
			if statErr != nil {
				t.Errorf("the snapshot of a newer format was removed (%v)", statErr)
			}
		})
	}
}

// TestSameSnapshot: a Meta read from a store (File or CompressedSize set)
// describes only a snapshot equal in every field, zero ones included; a
// Meta the caller built, every snapshot agreeing with the fields set in it.
func TestSameSnapshot(t *testing.T) {
	read := wantMeta("cart/1", 5) // as a store returns it
	read.CompressedSize = 99
	empty := read // an empty state, as the JetStream store reports it
	empty.CompressedSize, empty.RawSize = 0, 0
	with := func(m Meta, f func(*Meta)) Meta { f(&m); return m }
	for _, tc := range []struct {
		name   string
		m, got Meta
		want   bool
	}{
		{"read: itself", read, read, true},
		{"read: time in another zone", read, with(read, func(m *Meta) { m.Time = m.Time.In(time.FixedZone("x", 3600)) }), true},
		{"read: another scope", read, with(read, func(m *Meta) { m.Scope = 42 }), false},
		{"read: another anchor", read, with(read, func(m *Meta) { m.Anchor = 7 }), false},
		{"read: another schema", read, with(read, func(m *Meta) { m.SchemaVersion++ }), false},
		{"read: unfolded ranges", read, with(read, func(m *Meta) { m.Unfolded = MakeSeqRanges(SeqRange{From: 1, To: 2}) }), false},
		{"read: another size", read, with(read, func(m *Meta) { m.CompressedSize++ }), false},
		{"read: another file", read, with(read, func(m *Meta) { m.File = "x" }), false},
		{"read, empty state: itself", empty, empty, true},
		{"read, empty state: another scope", empty, with(empty, func(m *Meta) { m.Scope = 42 }), false},
		{"built: name and seq", Meta{Name: "cart/1", Seq: 5}, with(read, func(m *Meta) { m.Scope = 42 }), true},
		{"built: another seq", Meta{Name: "cart/1", Seq: 6}, read, false},
		{"built: schema set and equal", Meta{Name: "cart/1", Seq: 5, SchemaVersion: read.SchemaVersion}, read, true},
		{"built: schema set and different", Meta{Name: "cart/1", Seq: 5, SchemaVersion: 99}, read, false},
	} {
		if got := SameSnapshot(tc.m, tc.got); got != tc.want {
			t.Errorf("%s: SameSnapshot = %v, want %v", tc.name, got, tc.want)
		}
	}
}
