package jetstream_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
	"github.com/evlog/evlog/snapshot"
)

// TestSweepOrphanedStateObject: a Save stores its state object, then its
// record's create is held back in a buffer (the fault proxy's faultHold):
// the Save cannot tell whether the record will be stored and keeps the
// object, as it must. Nothing ever deleted such an object. Sweep must
// delete it when no record references it, and never one a record
// references or may yet reference:
//
//   - late: the held create reaches the server after the sweep. The sweep
//     must have made it fail (a record naming a deleted object would be a
//     snapshot without its state): the snapshot is not found, and the
//     object is gone.
//   - first: the held create reaches the server before the sweep: the
//     record references the object, which the sweep keeps; it loads.
//
// A snapshot saved normally is kept and loads either way.
func TestSweepOrphanedStateObject(t *testing.T) {
	s := startServer(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Addr().(*net.TCPAddr).Port))
	direct := connect(t, s.ClientURL())
	for _, order := range []string{"late", "first"} {
		t.Run(order, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			p := startFaultProxy(t, addr)
			l := openLog(t, connectVia(t, p.URL(), proxyTimeout), evjs.Config{Replicas: 1, Timeout: proxyTimeout})
			for range 2 {
				if _, err := l.Append(ctx, "s", event.ExpectAny, ev("e")); err != nil {
					t.Fatal(err)
				}
			}
			snaps := snapshotsOf(t, l)
			big := func(b byte) []byte { return bytes.Repeat([]byte{b}, 64<<10+1) } // in the object store
			kept, err := snaps.Save(ctx, snapshot.Meta{Name: "agg", LogID: l.LogID(), Seq: 1, Time: time.Unix(1, 0).UTC(), SchemaVersion: 1}, big(1))
			if err != nil {
				t.Fatal(err)
			}
			p.arm("$KV.EVLOG_"+l.Name()+"_SNAPMETA.", faultHold, 1, nil, false)
			m := snapshot.Meta{Name: "agg", LogID: l.LogID(), Seq: 2, Time: time.Unix(2, 0).UTC(), SchemaVersion: 1}
			if _, err := snaps.Save(ctx, m, big(2)); err == nil {
				t.Fatal("Save whose record's create was held back succeeded")
			}
			if fired, _ := p.hasFired(); !fired {
				t.Fatal("the record's create was not held back")
			}
			if names := objectNames(t, direct, l); len(names) != 2 {
				t.Fatalf("state objects %q, want the kept snapshot's and the held Save's", names)
			}
			if order == "first" {
				p.release()
			}
			// Another process sweeps.
			other := openLog(t, connect(t, s.ClientURL()), evjs.Config{Name: l.Name(), Replicas: 1})
			removed, err := snapshotsOf(t, other).Sweep(ctx, 0)
			if err != nil {
				t.Fatalf("Sweep: %v", err)
			}
			if order == "late" {
				p.release()
			}
			got, err := snaps.Load(ctx, m)
			switch {
			case order == "late" && !errors.Is(err, snapshot.ErrNotFound):
				t.Errorf("Load of the snapshot whose record's create came after the sweep: %v, want snapshot.ErrNotFound", err)
			case order == "first" && err != nil:
				t.Errorf("Load of the snapshot whose record was stored before the sweep: %v", err)
			case order == "first" && !bytes.Equal(got, big(2)):
				t.Errorf("Load of the snapshot whose record was stored before the sweep: wrong state")
			}
			if got, err := snaps.Load(ctx, kept); err != nil || !bytes.Equal(got, big(1)) {
				t.Errorf("Load of the snapshot saved normally after the sweep: %v", err)
			}
			wantLeft := 1
			if order == "first" {
				wantLeft = 2
			}
			if names := objectNames(t, direct, l); len(names) != wantLeft || len(removed) != 2-wantLeft {
				t.Errorf("after the sweep: state objects %q, Sweep removed %q; want %d objects left", names, removed, wantLeft)
			}
			// A second sweep finds nothing to do.
			if again, err := snapshotsOf(t, other).Sweep(ctx, 0); err != nil || len(again) != 0 {
				t.Errorf("second Sweep: %q, %v; want nothing removed", again, err)
			}
		})
	}
}

// objectNames lists the state objects of l's snapshot store.
func objectNames(t *testing.T, js jetstream.JetStream, l *evjs.Log) []string {
	t.Helper()
	obs, err := js.ObjectStore(t.Context(), l.StreamName()+"_SNAPSHOTS")
	if err != nil {
		t.Fatal(err)
	}
	// List waits for the watch it opens to deliver every object, with
	// no bound of its own: only ctx ends it.
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	objs, err := obs.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.Name)
	}
	slices.Sort(names)
	return names
}

// TestSweepBesideSave: another process sweeps while a Save runs, between
// the server's answer to the Save's first record write and the Save's
// next step, on a key whose earlier snapshot was removed (the Save's
// object stored, its record not yet). The Save must never end with a
// record naming an object the sweep deleted (a snapshot without its
// state): its record is created only at the key's revision read before
// the object was stored. Before, Save's create re-read the revision of a
// removed key after its first write was refused, and took the one the
// sweep had moved the key to: the snapshot loaded as corrupt.
func TestSweepBesideSave(t *testing.T) {
	s := startServer(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Addr().(*net.TCPAddr).Port))
	ctx := t.Context()
	p := startFaultProxy(t, addr)
	l := openLog(t, connectVia(t, p.URL(), proxyTimeout), evjs.Config{Replicas: 1, Timeout: proxyTimeout})
	if _, err := l.Append(ctx, "s", event.ExpectAny, ev("e")); err != nil {
		t.Fatal(err)
	}
	snaps := snapshotsOf(t, l)
	state := bytes.Repeat([]byte{7}, 64<<10+1) // in the object store
	m := snapshot.Meta{Name: "agg", LogID: l.LogID(), Seq: 1, Time: time.Unix(1, 0).UTC(), SchemaVersion: 1}
	old, err := snaps.Save(ctx, m, state)
	if err != nil {
		t.Fatal(err)
	}
	if err := snaps.Remove(ctx, old); err != nil {
		t.Fatal(err)
	}
	other := snapshotsOf(t, openLog(t, connect(t, s.ClientURL()), evjs.Config{Name: l.Name(), Replicas: 1}))
	type sweep struct {
		removed []string
		err     error
	}
	swept := make(chan sweep, 1)
	p.arm("$KV.EVLOG_"+l.Name()+"_SNAPMETA.", faultHook, 1, func() {
		removed, err := other.Sweep(ctx, 0)
		swept <- sweep{removed, err}
	}, false)
	_, saveErr := snaps.Save(ctx, m, state)
	if fired, _ := p.hasFired(); !fired {
		t.Fatal("the sweep did not run during the Save")
	}
	res := receive(t, swept, "the sweep run by the fault's hook") // sent before the answer the Save waited for
	removed, sweepErr := res.removed, res.err
	if sweepErr != nil {
		t.Fatalf("Sweep: %v", sweepErr)
	}
	got, err := snaps.Load(ctx, m)
	switch {
	case saveErr != nil && !errors.Is(err, snapshot.ErrNotFound):
		t.Errorf("Save failed (%v), but Load gives %v; want snapshot.ErrNotFound", saveErr, err)
	case saveErr == nil && err != nil:
		t.Errorf("Save succeeded, Sweep removed %q, and Load fails: %v", removed, err)
	case saveErr == nil && !bytes.Equal(got, state):
		t.Error("Save succeeded, but Load gives another state")
	}
}

// TestSweepBoundsListing: Sweep lists the state objects through a watch
// that ends only once the server delivered every object; with a ctx
// without deadline, Config.Timeout must bound that listing, as it bounds
// every request of the Log. Here the fault proxy drops every delivery of
// an object's metadata (the watch's consumer is reset and redelivers, in
// vain): Sweep must fail with context.DeadlineExceeded, having deleted
// nothing. Before, it waited for the listing as long as ctx lasted: for
// ever, for a caller without a deadline.
func TestSweepBoundsListing(t *testing.T) {
	s := startServer(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Addr().(*net.TCPAddr).Port))
	direct := connect(t, s.ClientURL())
	ctx := t.Context()
	p := startFaultProxy(t, addr)
	l := openLog(t, connectVia(t, p.URL(), proxyTimeout), evjs.Config{Replicas: 1, Timeout: proxyTimeout})
	if _, err := l.Append(ctx, "s", event.ExpectAny, ev("e")); err != nil {
		t.Fatal(err)
	}
	snaps := snapshotsOf(t, l)
	state := bytes.Repeat([]byte{3}, 64<<10+1) // in the object store
	m := snapshot.Meta{Name: "agg", LogID: l.LogID(), Seq: 1, Time: time.Unix(1, 0).UTC(), SchemaVersion: 1}
	if _, err := snaps.Save(ctx, m, state); err != nil {
		t.Fatal(err)
	}
	p.mute("$O." + l.StreamName() + "_SNAPSHOTS.M.")
	swept := make(chan error, 1)
	go func() {
		_, err := snaps.Sweep(ctx, 0) // no deadline: Config.Timeout applies
		swept <- err
	}()
	if err := receive(t, swept, "Sweep whose listing never completes"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Sweep whose listing never completes: %v, want context.DeadlineExceeded", err)
	}
	if names := objectNames(t, direct, l); len(names) != 1 {
		t.Errorf("state objects %q after the failed sweep, want the snapshot's", names)
	}
}
