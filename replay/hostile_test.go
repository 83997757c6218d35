package replay_test

import (
	"io/fs"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// A snapshot whose bytes verify (checksums, sizes: a hostile file with
// recomputed checksums, or a buggy encoder) but whose state does not
// decode made Run fail with "decoding snapshot", so no state could be
// computed until someone removed the file. Snapshots are an optimisation:
// Run falls back to the events, and reports the fallback.
func TestUndecodableSnapshotFallsBack(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name  string
		state []byte
	}{
		{"reserved msgpack byte", []byte{0xc1}},
		{"a string, not the state", []byte{0xa3, 'a', 'b', 'c'}},
		{"nested beyond the bound", func() []byte {
			b := make([]byte, 0, 2000)
			for range 1000 {
				b = append(b, 0x91) // an array of one element, a thousand deep
			}
			return append(b, 0xc0)
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.clone(t)
			ev := f.events[badSeq-1]
			m, err := rawStore(t, f.dir).Save(t.Context(), snapshot.Meta{Name: statsSubject.Name, LogID: f.logID, Seq: ev.Seq, Time: ev.Time,
				SchemaVersion: statsSubject.SchemaVersion, Anchor: snapshot.AnchorOf(ev)}, tc.state)
			if err != nil {
				t.Fatal(err)
			}
			ro := openRO(t, f.dir, evlog.Options{})
			got, err := replay.State(t.Context(), ro, snapshots(t, ro), statsSubject, replay.Latest(), statsSpec, replay.Options{})
			if err != nil {
				t.Fatalf("State: %v; want the state folded from the events, the snapshot reported as a fallback", err)
			}
			if diff := cmp.Diff(refStats(f.events, len(f.events)), got.State, stateCmp); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
			if got.Plan.Snapshot != nil || len(got.Plan.Fallbacks) != 1 || got.Plan.Fallbacks[0].File != m.File {
				t.Errorf("plan: snapshot %v, fallbacks %+v; want none used and %s reported", got.Plan.Snapshot, got.Plan.Fallbacks, m.File)
			}
			if got.Applied != len(f.events) {
				t.Errorf("Applied %d, want %d (every event, from seq 1)", got.Applied, len(f.events))
			}
		})
	}
}

// A snapshot file whose header cannot be read — no permission to open it
// (saved by another user, e.g. evlogctl snapshot run as root), or an I/O
// error — ended Candidates with that error, and MakePlan with it: no state
// at all while the file was there. Like a damaged one, it is passed over
// (reported) for an older snapshot or the events.
func TestUnreadableSnapshotFallsBack(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name string
		kind vfs.OpKind
		err  error
	}{
		{"open: permission denied", vfs.OpOpen, fs.ErrPermission},
		{"read: I/O error", vfs.OpRead, vfs.EIO("disk")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.clone(t)
			bad := saveStats(t, rawStore(t, f.dir), f.logID, statsSubject, f.events, badSeq)
			osfs, err := vfs.OpenOS(f.dir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { osfs.Close() })
			store, err := snapshot.Open(vfs.ReadOnly(vfs.NewFaulty(osfs, func(op vfs.Op) error {
				if op.Kind == tc.kind && op.Name == bad.File {
					return tc.err
				}
				return nil
			})), snapshot.Options{})
			if err != nil {
				t.Fatal(err)
			}
			ro := openRO(t, f.dir, evlog.Options{})
			got, err := replay.State(t.Context(), ro, store, statsSubject, replay.Latest(), statsSpec, replay.Options{})
			if err != nil {
				t.Fatalf("State: %v; want the snapshot at seq %d used and %s reported", err, goodSeq, bad.File)
			}
			if diff := cmp.Diff(refStats(f.events, len(f.events)), got.State, stateCmp); diff != "" {
				t.Errorf("state (-want +got):\n%s", diff)
			}
			if s := got.Plan.Snapshot; s == nil || s.Seq != goodSeq || len(got.Plan.Fallbacks) != 1 || got.Plan.Fallbacks[0].File != bad.File {
				t.Errorf("plan: snapshot %v, fallbacks %+v; want the one at seq %d used and %s reported", s, got.Plan.Fallbacks, goodSeq, bad.File)
			}
		})
	}
}
