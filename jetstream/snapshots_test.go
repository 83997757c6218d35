package jetstream_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
	"github.com/evlog/evlog/snapshot"
)

// apiTap records the JetStream API requests a connection sends: a second
// connection subscribes to $JS.API.> (a subscriber receives a copy of
// every request) and to a sentinel subject, both into one channel. The
// messages of one publisher reach a subscriber in order, so the sentinel,
// published on the watched connection after the calls, marks the end of
// what they sent: no timing involved.
type apiTap struct {
	ch       chan *nats.Msg
	sentinel string
}

func newAPITap(t *testing.T, url string) *apiTap {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	tap := &apiTap{ch: make(chan *nats.Msg, 1<<16), sentinel: "evlog.test.tap." + newLogName()}
	for _, subj := range []string{"$JS.API.>", tap.sentinel} {
		if _, err := nc.ChanSubscribe(subj, tap.ch); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return tap
}

// requests returns the API subjects (without "$JS.API.") sent on nc since
// the last call.
func (tap *apiTap) requests(t *testing.T, nc *nats.Conn) []string {
	t.Helper()
	if err := nc.Publish(tap.sentinel, nil); err != nil {
		t.Fatal(err)
	}
	var out []string
	timeout := time.After(hangGuard)
	for {
		select {
		case m := <-tap.ch:
			if m.Subject == tap.sentinel {
				return out
			}
			out = append(out, strings.TrimPrefix(m.Subject, "$JS.API."))
		case <-timeout:
			t.Fatalf("the tap's sentinel did not arrive within %v", hangGuard)
		}
	}
}

// TestSnapshotLookupNoConsumer: finding the snapshots of a subject creates
// no consumer (it used to open a KV watch, an ordered consumer, per
// lookup, which on R3 is a replicated create and dominated loading an
// aggregate from a snapshot), and a snapshot saved through another
// connection (another process) is found at once, also on R3, where reads
// may be served by replicas.
func TestSnapshotLookupNoConsumer(t *testing.T) {
	single := startServer(t)
	nodes := startCluster(t)
	for _, tc := range []struct {
		name     string
		url      string
		replicas int
	}{
		{"R1", single.ClientURL(), 1},
		{"R3", nodes[0].ClientURL(), 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			if tc.replicas == 3 {
				waitForR3(t, connect(t, url))
				url = nodes[2].ClientURL() // the reader on another node than the writer
			}
			name := newLogName()
			writer := openLog(t, connect(t, tc.url), evjs.Config{Name: name, Replicas: tc.replicas})
			readerJS := connect(t, url)
			reader := openLog(t, readerJS, evjs.Config{Name: name, Replicas: tc.replicas})
			// On a loaded machine creating the R3 buckets can outlast one
			// request's timeout: snapshotsOf retries.
			wsnaps := snapshotsOf(t, writer)
			rsnaps := snapshotsOf(t, reader)
			tap := newAPITap(t, url)
			tap.requests(t, readerJS.Conn()) // drain what opening sent

			var saved []snapshot.Meta
			for i := range 3 {
				pos, err := writer.Append(t.Context(), "agg", evlog.ExpectAny, event.Envelope{Type: "e"})
				if err != nil {
					t.Fatal(err)
				}
				// Save out of order (2, 0, 1) and under a second name.
				m, err := wsnaps.Save(t.Context(), snapshot.Meta{Name: "agg", LogID: writer.LogID(), Seq: pos.Seq, Time: pos.Time, SchemaVersion: 1}, []byte{byte(i)})
				if err != nil {
					t.Fatal(err)
				}
				saved = append(saved, m)
				if _, err := wsnaps.Save(t.Context(), snapshot.Meta{Name: "other.name", LogID: writer.LogID(), Seq: pos.Seq, Time: pos.Time, SchemaVersion: 1}, nil); err != nil {
					t.Fatal(err)
				}
				// Every lookup right after a save in the other process finds it.
				got, err := candidates(rsnaps, "agg", math.MaxUint64)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != i+1 || got[0].Seq != pos.Seq {
					t.Fatalf("after saving seq %d: candidates %v, want %d, newest at seq %d", pos.Seq, got, i+1, pos.Seq)
				}
			}
			if err := wsnaps.Remove(t.Context(), saved[1]); err != nil {
				t.Fatal(err)
			}
			got, err := candidates(rsnaps, "agg", saved[2].Seq-1)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]snapshot.Meta{saved[0]}, got, cmpMeta); diff != "" {
				t.Errorf("candidates at seq %d after removing seq %d (-want +got):\n%s", saved[2].Seq-1, saved[1].Seq, diff)
			}
			all, err := rsnaps.List(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			if len(all) != 5 || all[0].Name != "agg" || all[1].Seq != saved[2].Seq || all[4].Name != "other.name" {
				t.Errorf("List: %v, want agg at seqs %d, %d and other.name at three seqs", all, saved[0].Seq, saved[2].Seq)
			}
			for _, r := range tap.requests(t, readerJS.Conn()) {
				if strings.HasPrefix(r, "CONSUMER.") {
					t.Errorf("a snapshot lookup sent %s: it must not create consumers", r)
				}
			}
		})
	}
}

// cmpMeta compares snapshot metadata, times by instant.
var cmpMeta = cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })

// candidates collects what s.Candidates visits.
func candidates(s *evjs.Snapshots, name string, maxSeq uint64) ([]snapshot.Meta, error) {
	var out []snapshot.Meta
	for c, err := range s.Candidates(name, maxSeq) {
		if err != nil {
			return nil, err
		}
		if c.Unreadable != "" {
			return nil, fmt.Errorf("%s is unreadable: %s", c.Meta.File, c.Unreadable)
		}
		out = append(out, c.Meta)
	}
	return out, nil
}

// TestSnapshotsRetryAfterFailure: a failure to create the snapshot buckets
// (a timeout on a loaded cluster, a conflicting bucket) is returned, not
// kept: the next Snapshots call tries again and succeeds once the cause
// is gone. (A sync.Once kept the first error for the Log's lifetime, and
// TestConformanceR3 failed at random on a loaded machine: "snapshot
// bucket …: context deadline exceeded".)
func TestSnapshotsRetryAfterFailure(t *testing.T) {
	ctx := t.Context()
	s := startServer(t)
	js := connect(t, s.ClientURL())
	name := newLogName()
	l := openLog(t, js, evjs.Config{Name: name, Replicas: 1})
	// A bucket of the same name in memory storage: creating the log's
	// file-storage bucket over it fails (the storage type cannot change).
	kvName := "EVLOG_" + name + "_SNAPMETA"
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: kvName, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Snapshots(); err == nil {
		t.Fatal("Snapshots succeeded over a conflicting bucket")
	}
	if err := js.DeleteKeyValue(ctx, kvName); err != nil {
		t.Fatal(err)
	}
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatalf("Snapshots after the conflict was removed: %v", err)
	}
	if snaps == nil {
		t.Fatal("Snapshots returned no store")
	}
}

// TestPruneKeepsWhatADamagedSnapshotReplaces: Prune removes an old
// snapshot only once the newer one kept in its place verifies: with that
// one's state damaged (its record's SHA-256 no longer matches), the old
// ones stay, the only intact state of the subject.
func TestPruneKeepsWhatADamagedSnapshotReplaces(t *testing.T) {
	ctx := t.Context()
	s := startServer(t)
	js := connect(t, s.ClientURL())
	for _, damaged := range []bool{false, true} {
		t.Run(fmt.Sprintf("damaged=%v", damaged), func(t *testing.T) {
			name := newLogName()
			l := openLog(t, js, evjs.Config{Name: name, Replicas: 1})
			snaps, err := l.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			var saved []snapshot.Meta
			for i := range 3 {
				pos, err := l.Append(ctx, "agg", evlog.ExpectAny, event.Envelope{Type: "e"})
				if err != nil {
					t.Fatal(err)
				}
				m, err := snaps.Save(ctx, snapshot.Meta{Name: "agg", LogID: l.LogID(), Seq: pos.Seq, Time: pos.Time, SchemaVersion: 1}, []byte{byte(i)})
				if err != nil {
					t.Fatal(err)
				}
				saved = append(saved, m)
			}
			if damaged {
				kv, err := js.KeyValue(ctx, "EVLOG_"+name+"_SNAPMETA")
				if err != nil {
					t.Fatal(err)
				}
				e, err := kv.Get(ctx, saved[2].File)
				if err != nil {
					t.Fatal(err)
				}
				var r map[string]any
				if err := json.Unmarshal(e.Value(), &r); err != nil {
					t.Fatal(err)
				}
				r["sha256"] = strings.Repeat("0", 64)
				b, err := json.Marshal(r)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := kv.Put(ctx, saved[2].File, b); err != nil {
					t.Fatal(err)
				}
				if _, err := snaps.Load(ctx, saved[2]); err == nil {
					t.Fatal("the damaged snapshot still loads")
				}
			}
			removed, err := snaps.Prune(ctx, "agg", snapshot.PrunePolicy{KeepLast: 1})
			if err != nil {
				t.Fatal(err)
			}
			want := saved[:2]
			if damaged {
				want = nil
			}
			if diff := cmp.Diff(want, removed, cmpMeta, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Prune KeepLast 1 removed (-want +got):\n%s", diff)
			}
			left, err := snaps.List(ctx, "agg")
			if err != nil {
				t.Fatal(err)
			}
			if len(left)+len(removed) != 3 {
				t.Errorf("after Prune: %d snapshots listed, %d removed, want 3 in all", len(left), len(removed))
			}
		})
	}
}

// TestSnapshotAnchor: a snapshot records the anchor of the log's event at
// its seq (snapshot.Meta.Anchor), as the file store does, so that replay
// passes over a snapshot whose seq now holds another event with the same
// time; one the caller says was folded up to another event is refused.
func TestSnapshotAnchor(t *testing.T) {
	ctx := t.Context()
	s := startServer(t)
	js := connect(t, s.ClientURL())
	l := openLog(t, js, evjs.Config{Name: newLogName(), Replicas: 1})
	tm := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	var evs []event.Envelope
	for i := range 3 {
		evs = append(evs, event.Envelope{Type: "e", Time: tm, Data: []byte{0xa1, 'a' + byte(i)}})
	}
	if _, err := l.Append(ctx, "s", evlog.ExpectAny, evs...); err != nil {
		t.Fatal(err)
	}
	var at2 event.Envelope
	for e, err := range l.Range(ctx, 2, 2) {
		if err != nil {
			t.Fatal(err)
		}
		at2 = e
	}
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	m, err := snaps.Save(ctx, snapshot.Meta{Name: "subj", LogID: l.LogID(), Seq: 2, Time: tm}, []byte("state"))
	if err != nil {
		t.Fatal(err)
	}
	if want := snapshot.AnchorOf(at2); m.Anchor != want {
		t.Errorf("Save: Anchor %#x, want %#x", m.Anchor, want)
	}
	ms, err := candidates(snaps, "subj", 2)
	if err != nil || len(ms) != 1 || ms[0].Anchor != m.Anchor {
		t.Errorf("candidates = %+v, %v; want the snapshot with anchor %#x", ms, err, m.Anchor)
	}
	other := at2
	other.Data = []byte{0xa1, 'z'}
	if _, err := snaps.Save(ctx, snapshot.Meta{Name: "subj", LogID: l.LogID(), Seq: 3, Time: tm, Anchor: snapshot.AnchorOf(other)}, []byte("x")); !errors.Is(err, snapshot.ErrInvalid) {
		t.Errorf("Save with another event's anchor: %v, want ErrInvalid", err)
	}
}

// TestSnapshotScope: a snapshot keeps the scope its owner recorded
// (snapshot.Meta.Scope, a projection's Categories digest), as the file
// store does; without it a scoped projection takes its own checkpoint for
// one of unknown scope and folds the log again at every restart.
func TestSnapshotScope(t *testing.T) {
	ctx := t.Context()
	s := startServer(t)
	js := connect(t, s.ClientURL())
	l := openLog(t, js, evjs.Config{Name: newLogName(), Replicas: 1})
	if _, err := l.Append(ctx, "s", evlog.ExpectAny, event.Envelope{Type: "e", Data: []byte{0xa1, 'a'}}); err != nil {
		t.Fatal(err)
	}
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	const scope = 0x5c09e
	m, err := snaps.Save(ctx, snapshot.Meta{Name: "subj", LogID: l.LogID(), Seq: 1, Time: time.Now(), Scope: scope}, []byte("state"))
	if err != nil {
		t.Fatal(err)
	}
	if m.Scope != scope {
		t.Errorf("Save: Scope %#x, want %#x", m.Scope, scope)
	}
	ms, err := candidates(snaps, "subj", 1)
	if err != nil || len(ms) != 1 || ms[0].Scope != scope {
		t.Errorf("candidates = %+v, %v; want the snapshot with scope %#x", ms, err, scope)
	}
}

// TestLoadRefusesAnotherSnapshotAtSameKey: a snapshot listed, then
// removed and saved again at the same name and seq by another fold (other
// schema, scope, Unfolded ranges or time: a concurrent save of another
// fold) must not be loaded for the listed one: Load compares the whole
// Meta, as Remove does, and fails with snapshot.ErrNotFound (list again).
// Before, Load compared only name and seq and returned the other fold's
// state, which the caller then read with the listed Meta's schema and
// Unfolded ranges. A Meta the caller built with only name and seq still
// loads whatever is there.
func TestLoadRefusesAnotherSnapshotAtSameKey(t *testing.T) {
	s := startServer(t)
	ctx := guarded(t, hangGuard)
	l := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1})
	var last event.Position
	for _, typ := range []string{"a", "b", "c"} {
		pos, err := l.Append(ctx, "s", evlog.ExpectAny, ev(typ))
		if err != nil {
			t.Fatal(err)
		}
		last = pos
	}
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	base := snapshot.Meta{LogID: l.LogID(), Seq: last.Seq, Time: last.Time, SchemaVersion: 1, Scope: 7}
	tests := []struct {
		name  string
		other func(m snapshot.Meta) snapshot.Meta
	}{
		{"schema", func(m snapshot.Meta) snapshot.Meta { m.SchemaVersion = 2; return m }},
		{"scope", func(m snapshot.Meta) snapshot.Meta { m.Scope = 8; return m }},
		{"unfolded", func(m snapshot.Meta) snapshot.Meta {
			m.Unfolded = snapshot.MakeSeqRanges(snapshot.SeqRange{From: 1, To: 1})
			return m
		}},
		{"time", func(m snapshot.Meta) snapshot.Meta { m.Time = m.Time.Add(time.Nanosecond); return m }},
		{"big-state", func(m snapshot.Meta) snapshot.Meta { return m }}, // same Meta fields, other size
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := base
			m.Name = "fold-" + tc.name
			if _, err := snaps.Save(ctx, m, []byte("listed state")); err != nil {
				t.Fatal(err)
			}
			all, err := snaps.List(ctx, m.Name)
			if err != nil || len(all) != 1 {
				t.Fatalf("List: %v, %v; want the one snapshot saved", all, err)
			}
			listed := all[0]
			if err := snaps.Remove(ctx, listed); err != nil {
				t.Fatal(err)
			}
			otherState := []byte("the other fold's state")
			if tc.name == "big-state" {
				otherState = make([]byte, 100<<10) // in the object store
			}
			saved, err := snaps.Save(ctx, tc.other(m), otherState)
			if err != nil {
				t.Fatal(err)
			}

			got, err := snaps.Load(ctx, listed)
			if !errors.Is(err, snapshot.ErrNotFound) {
				t.Fatalf("Load of the listed snapshot, replaced by another at the same name and seq: %d bytes, %v; want snapshot.ErrNotFound", len(got), err)
			}
			if got, err := snaps.Load(ctx, saved); err != nil || string(got) != string(otherState) {
				t.Errorf("Load of the snapshot now stored: %d bytes, %v; want its state", len(got), err)
			}
			if got, err := snaps.Load(ctx, snapshot.Meta{Name: m.Name, Seq: m.Seq}); err != nil || string(got) != string(otherState) {
				t.Errorf("Load by name and seq only: %d bytes, %v; want the state stored there", len(got), err)
			}
		})
	}
}
