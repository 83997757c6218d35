package jetstream_test

import (
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
	"github.com/evlog/evlog/snapshot"
)

// editRecord replaces field of the KV record of snapshot m of log name by
// value (nil: deletes it), as a damaged or hostile record would hold it.
func editRecord(t *testing.T, js jetstream.JetStream, name string, m snapshot.Meta, field string, value any) {
	t.Helper()
	ctx := t.Context()
	kv, err := js.KeyValue(ctx, "EVLOG_"+name+"_SNAPMETA")
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, m.File)
	if err != nil {
		t.Fatal(err)
	}
	var r map[string]any
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		t.Fatal(err)
	}
	if value == nil {
		delete(r, field)
	} else {
		r[field] = value
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, m.File, b); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotUnfolded: a snapshot keeps what its state did not fold
// (snapshot.Meta.Unfolded), as the file store does; without it a
// projection or aggregate rebuilt after replay.ErrHistoryLost reports the
// loss again at the next deletion. Save refuses ranges that are not
// valid for its seq (snapshot.ErrInvalid); a record holding such ranges
// (untrusted bytes) is corrupt: Load fails with a *snapshot.CorruptError
// and listings leave it out.
func TestSnapshotUnfolded(t *testing.T) {
	ctx := t.Context()
	s := startServer(t)
	js := connect(t, s.ClientURL())
	name := newLogName()
	l := openLog(t, js, evjs.Config{Name: name, Replicas: 1})
	var pos evlog.Position
	for range 5 {
		var err error
		if pos, err = l.Append(ctx, "s", evlog.ExpectAny, event.Envelope{Type: "e"}); err != nil {
			t.Fatal(err)
		}
	}
	snaps := snapshotsOf(t, l)
	unfolded := snapshot.MakeSeqRanges(snapshot.SeqRange{From: 1, To: 2}, snapshot.SeqRange{From: 4, To: 4})
	m, err := snaps.Save(ctx, snapshot.Meta{Name: "subj", LogID: l.LogID(), Seq: pos.Seq, Time: pos.Time, Unfolded: unfolded}, []byte("state"))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := candidates(snaps, "subj", math.MaxUint64)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]snapshot.Meta{m}, ms, cmpMeta); diff != "" {
		t.Errorf("candidates after saving with Unfolded %v (-want +got):\n%s", unfolded, diff)
	}
	if _, err := snaps.Load(ctx, m); err != nil {
		t.Errorf("Load: %v", err)
	}
	for _, bad := range []snapshot.SeqRanges{
		snapshot.MakeSeqRanges(snapshot.SeqRange{From: 1, To: pos.Seq + 1}),
		snapshot.MakeSeqRanges(snapshot.SeqRange{From: 0, To: 1}),
		snapshot.MakeSeqRanges(snapshot.SeqRange{From: 3, To: 4}, snapshot.SeqRange{From: 1, To: 1}),
	} {
		if _, err := snaps.Save(ctx, snapshot.Meta{Name: "bad", LogID: l.LogID(), Seq: pos.Seq, Time: pos.Time, Unfolded: bad}, nil); !errors.Is(err, snapshot.ErrInvalid) {
			t.Errorf("Save with Unfolded %v at seq %d: %v, want snapshot.ErrInvalid", bad, pos.Seq, err)
		}
	}

	many := make([][2]uint64, snapshot.MaxUnfolded+1)
	for i := range many {
		many[i] = [2]uint64{uint64(2*i + 1), uint64(2*i + 1)}
	}
	for _, tc := range []struct {
		name  string
		value any
	}{
		{"beyond seq", [][2]uint64{{1, pos.Seq + 1}}},
		{"seq 0", [][2]uint64{{0, 1}}},
		{"from after to", [][2]uint64{{3, 2}}},
		{"overlapping", [][2]uint64{{1, 2}, {2, 3}}},
		{"adjacent", [][2]uint64{{1, 2}, {3, 4}}},
		{"unsorted", [][2]uint64{{4, 4}, {1, 2}}},
		{"too many", many},
		{"not a list", "1-2"},
		{"not pairs", [][]uint64{{1, 2, 3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			editRecord(t, js, name, m, "unfolded", tc.value)
			if _, err := snaps.Load(ctx, m); !isCorrupt(err) {
				t.Errorf("Load of a record with unfolded %v: %v, want a *snapshot.CorruptError", tc.value, err)
			}
			ms, err := candidates(snaps, "subj", math.MaxUint64)
			if err != nil || len(ms) != 0 {
				t.Errorf("candidates with a record with unfolded %v: %v, %v; want it left out", tc.value, ms, err)
			}
		})
	}
}

func isCorrupt(err error) bool {
	_, ok := errors.AsType[*snapshot.CorruptError](err)
	return ok
}

// TestSnapshotRemoveComparesMeta: Remove of a Meta read from the store
// (List, Candidates, Save; also of an empty state) removes that snapshot
// and never one saved since at the same name and seq that differs in any
// field: it fails with snapshot.ErrNotFound and leaves it, as the file
// store's Remove does. A Meta the caller built compares only the fields
// set in it. Remove compared only name and seq, and removed the
// replacement.
func TestSnapshotRemoveComparesMeta(t *testing.T) {
	ctx := t.Context()
	s := startServer(t)
	js := connect(t, s.ClientURL())
	l := openLog(t, js, evjs.Config{Name: newLogName(), Replicas: 1})
	var pos evlog.Position
	for range 3 {
		var err error
		if pos, err = l.Append(ctx, "s", evlog.ExpectAny, event.Envelope{Type: "e"}); err != nil {
			t.Fatal(err)
		}
	}
	snaps := snapshotsOf(t, l)
	base := snapshot.Meta{LogID: l.LogID(), Seq: pos.Seq, Time: pos.Time, SchemaVersion: 1, Scope: 7}
	for _, tc := range []struct {
		name   string
		state  []byte                        // of the snapshot listed
		change func(*snapshot.Meta, *[]byte) // the replacement
	}{
		{"schema version", []byte("state"), func(m *snapshot.Meta, _ *[]byte) { m.SchemaVersion = 2 }},
		{"scope", []byte("state"), func(m *snapshot.Meta, _ *[]byte) { m.Scope = 0 }},
		{"unfolded", []byte("state"), func(m *snapshot.Meta, _ *[]byte) {
			m.Unfolded = snapshot.MakeSeqRanges(snapshot.SeqRange{From: 1, To: 1})
		}},
		{"log ID", []byte("state"), func(m *snapshot.Meta, _ *[]byte) { m.LogID = [16]byte{9} }},
		{"time", []byte("state"), func(m *snapshot.Meta, _ *[]byte) { m.Time = m.Time.Add(time.Second) }},
		{"state size", []byte("state"), func(_ *snapshot.Meta, b *[]byte) { *b = []byte("longer state") }},
		{"empty state, schema version", nil, func(m *snapshot.Meta, _ *[]byte) { m.SchemaVersion = 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base
			m.Name = "subj-" + tc.name
			if _, err := snaps.Save(ctx, m, tc.state); err != nil {
				t.Fatal(err)
			}
			listed, err := snaps.List(ctx, m.Name)
			if err != nil || len(listed) != 1 {
				t.Fatalf("List: %v, %v; want the snapshot saved", listed, err)
			}
			// Another writer replaces it at the same name and seq.
			if err := snaps.Remove(ctx, listed[0]); err != nil {
				t.Fatalf("Remove of the listed snapshot: %v", err)
			}
			state := tc.state
			tc.change(&m, &state)
			repl, err := snaps.Save(ctx, m, state)
			if err != nil {
				t.Fatal(err)
			}
			if err := snaps.Remove(ctx, listed[0]); !errors.Is(err, snapshot.ErrNotFound) {
				t.Errorf("Remove of the Meta listed before the replacement: %v, want snapshot.ErrNotFound", err)
			}
			// A caller-built Meta with a field set that differs.
			if err := snaps.Remove(ctx, snapshot.Meta{Name: m.Name, Seq: m.Seq, SchemaVersion: 99}); !errors.Is(err, snapshot.ErrNotFound) {
				t.Errorf("Remove of a caller-built Meta of schema version 99: %v, want snapshot.ErrNotFound", err)
			}
			left, err := snaps.List(ctx, m.Name)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]snapshot.Meta{repl}, left, cmpMeta); diff != "" {
				t.Errorf("after the refused Removes (-want +got):\n%s", diff)
			}
			// Name and seq only: whichever snapshot is there.
			if err := snaps.Remove(ctx, snapshot.Meta{Name: m.Name, Seq: m.Seq}); err != nil {
				t.Errorf("Remove by name and seq: %v", err)
			}
			if left, err := snaps.List(ctx, m.Name); err != nil || len(left) != 0 {
				t.Errorf("after Remove by name and seq: %v, %v; want none", left, err)
			}
		})
	}
}
