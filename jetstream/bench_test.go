package jetstream_test

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// benchTargets returns a JetStream context on a single server (R1) and on
// a 3-node cluster (R3), both embedded, with sync_interval: always.
func benchTargets(b *testing.B) []struct {
	name     string
	js       jetstream.JetStream
	replicas int
} {
	s := startServer(b)
	nodes := startCluster(b)
	return []struct {
		name     string
		js       jetstream.JetStream
		replicas int
	}{
		{"R1", connect(b, s.ClientURL()), 1},
		{"R3", connect(b, nodes[0].ClientURL()), 3},
	}
}

// BenchmarkAppend measures durable appends: one event per Append (each
// acknowledged after a quorum's fsync), and batches of 100 events in one
// atomic Append.
//
// R3 batches can beat R1 batches, by nats-server's design, not by a
// difference in setup (both run SyncAlways on file storage): on a
// single-replica file stream the server stages every atomic batch in a
// temporary on-disk file store (newBatchStore in jetstream_batching.go),
// created and removed per batch (per 100-event batch, strace counts
// 3 mkdirat, 3 renameat, 12 unlinkat and 18 openat, and 101 pwrite64 as
// the messages are written one by one); a replicated stream stages it in
// memory, commits it as Raft entries (fsynced in the WAL), and relaxes
// its own file store to sync on Raft snapshots (SyncOnFlush).
func BenchmarkAppend(b *testing.B) {
	for _, tg := range benchTargets(b) {
		for _, size := range []int{1, 100} {
			b.Run(fmt.Sprintf("backend=%s/batch=%d", tg.name, size), func(b *testing.B) {
				l := openLog(b, tg.js, evjs.Config{Replicas: tg.replicas})
				events := make([]event.Envelope, size)
				for i := range events {
					events[i] = event.Envelope{Type: "e", Data: make([]byte, 100)}
				}
				b.SetBytes(int64(100 * size))
				i := 0
				for b.Loop() {
					if _, err := l.Append(b.Context(), fmt.Sprint("s", i%100), evlog.ExpectAny, events...); err != nil {
						b.Fatal(err)
					}
					i++
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/event")
			})
		}
	}
}

// BenchmarkAggregateLoad measures loading one aggregate of 100 events
// interleaved with 9,900 others, from the events and from a snapshot at
// its 90th event.
func BenchmarkAggregateLoad(b *testing.B) {
	for _, tg := range benchTargets(b) {
		l := openLog(b, tg.js, evjs.Config{Replicas: tg.replicas})
		snaps, err := l.Snapshots()
		if err != nil {
			b.Fatal(err)
		}
		var snapAt event.Position
		for i := range 100 {
			reqs := []evlog.AppendRequest{{Stream: "target", Expect: evlog.ExpectAny, Events: []event.Envelope{{Type: "e"}}}}
			for j := range 99 {
				reqs = append(reqs, evlog.AppendRequest{Stream: fmt.Sprint("other-", j), Expect: evlog.ExpectAny, Events: []event.Envelope{{Type: "e"}}})
			}
			pos, err := l.AppendBatch(b.Context(), reqs)
			if err != nil {
				b.Fatal(err)
			}
			if i == 89 {
				snapAt = pos[0]
			}
		}
		spec := replay.Spec[int, event.Envelope]{Decode: replay.Raw, Fold: func(n int, _ event.Envelope) int { return n + 1 }}
		subj := replay.Subject{Name: "target", SchemaVersion: 1, Scope: replay.Scope{Stream: "target"}}
		state, _ := replay.EncodeState(spec, 90)
		if _, err := snaps.Save(b.Context(), snapshotMeta(l, snapAt), state); err != nil {
			b.Fatal(err)
		}
		for _, withSnap := range []bool{false, true} {
			b.Run(fmt.Sprintf("backend=%s/snapshot=%v", tg.name, withSnap), func(b *testing.B) {
				var s replay.Snapshots
				if withSnap {
					s = snaps
				}
				for b.Loop() {
					res, err := replay.State(b.Context(), l, s, subj, replay.Latest(), spec, replay.Options{})
					if err != nil || res.State != 100 {
						b.Fatalf("state %d, %v", res.State, err)
					}
				}
			})
		}
	}
}

func snapshotMeta(l *evjs.Log, p event.Position) snapshot.Meta {
	return snapshot.Meta{Name: "target", LogID: l.LogID(), Seq: p.Seq, Time: p.Time, SchemaVersion: 1}
}
