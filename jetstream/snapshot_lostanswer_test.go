package jetstream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
	"github.com/evlog/evlog/snapshot"
)

// TestSaveLostAnswer: the answer to the publish that creates a snapshot's
// KV record (its commit point) is lost, or the connection is cut once the
// server answered it: the record is stored. Save must not then treat the
// snapshot as failed and delete the state object the stored record
// references (a record without its state, which the Snapshots contract
// rules out, and which a retried Save cannot repair: ErrExists). It
// finds its record and succeeds; the snapshot loads; saving it again is
// snapshot.ErrExists.
func TestSaveLostAnswer(t *testing.T) {
	s := startServer(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Addr().(*net.TCPAddr).Port))
	for _, size := range []int{100, 64<<10 + 1} { // inline in the record; in the object store
		for _, kind := range []faultKind{faultDrop, faultCut} {
			t.Run(fmt.Sprintf("%d/%v", size, kind), func(t *testing.T) {
				t.Parallel()
				ctx := t.Context()
				p := startFaultProxy(t, addr)
				l := openLog(t, connectVia(t, p.URL(), proxyTimeout), evjs.Config{Replicas: 1, Timeout: proxyTimeout})
				if _, err := l.Append(ctx, "s", event.ExpectAny, ev("e1")); err != nil {
					t.Fatal(err)
				}
				snaps := snapshotsOf(t, l)
				state := bytes.Repeat([]byte{0xA5}, size)
				m := snapshot.Meta{Name: "agg", LogID: l.LogID(), Seq: 1, Time: time.Unix(1, 0).UTC(), SchemaVersion: 1}
				p.arm("$KV.EVLOG_"+l.Name()+"_SNAPMETA.", kind, 1, nil, false)
				_, err := snaps.Save(ctx, m, state)
				if fired, answered := p.hasFired(); !fired || !answered {
					t.Fatalf("the fault did not hit the record's publish (fired %v, answered %v)", fired, answered)
				}
				if err != nil {
					t.Fatalf("Save whose record was stored but whose answer was lost: %v", err)
				}
				got, err := snaps.Load(ctx, m)
				if err != nil {
					t.Fatalf("Load of the snapshot Save reported saved: %v", err)
				}
				if diff := cmp.Diff(state, got); diff != "" {
					t.Fatalf("loaded state differs (-want +got):\n%s", diff)
				}
				if _, err := snaps.Save(ctx, m, state); !errors.Is(err, snapshot.ErrExists) {
					t.Fatalf("saving it again: %v, want snapshot.ErrExists", err)
				}
			})
		}
	}
}

// TestRemoveLostAnswer: the answer to the publish that deletes a
// snapshot's record is lost, or the connection is cut once the server
// answered it: the record is deleted. Remove must not report a failure
// and leave the state object behind, which nothing would ever delete (a
// retried Remove finds no record: snapshot.ErrNotFound); it finds the
// record gone, deletes the object and succeeds.
func TestRemoveLostAnswer(t *testing.T) {
	s := startServer(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Addr().(*net.TCPAddr).Port))
	direct := connect(t, s.ClientURL())
	for _, kind := range []faultKind{faultDrop, faultCut} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			p := startFaultProxy(t, addr)
			l := openLog(t, connectVia(t, p.URL(), proxyTimeout), evjs.Config{Replicas: 1, Timeout: proxyTimeout})
			if _, err := l.Append(ctx, "s", event.ExpectAny, ev("e1")); err != nil {
				t.Fatal(err)
			}
			snaps := snapshotsOf(t, l)
			m, err := snaps.Save(ctx, snapshot.Meta{Name: "agg", LogID: l.LogID(), Seq: 1, Time: time.Unix(1, 0).UTC(), SchemaVersion: 1},
				bytes.Repeat([]byte{0x5A}, 64<<10+1)) // in the object store
			if err != nil {
				t.Fatal(err)
			}
			p.arm("$KV.EVLOG_"+l.Name()+"_SNAPMETA.", kind, 1, nil, false)
			err = snaps.Remove(ctx, m)
			if fired, answered := p.hasFired(); !fired || !answered {
				t.Fatalf("the fault did not hit the record's deletion (fired %v, answered %v)", fired, answered)
			}
			if err != nil {
				t.Fatalf("Remove whose record was deleted but whose answer was lost: %v", err)
			}
			if _, err := snaps.Load(ctx, m); !errors.Is(err, snapshot.ErrNotFound) {
				t.Fatalf("Load after Remove: %v, want snapshot.ErrNotFound", err)
			}
			obs, err := direct.ObjectStore(ctx, "EVLOG_"+l.Name()+"_SNAPSHOTS")
			if err != nil {
				t.Fatal(err)
			}
			lctx, cancel := context.WithTimeout(ctx, hangGuard) // List has no bound of its own
			defer cancel()
			objs, err := obs.List(lctx)
			if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
				t.Fatal(err)
			}
			var names []string
			for _, o := range objs {
				names = append(names, o.Name)
			}
			if len(names) > 0 {
				t.Fatalf("state objects left after Remove: %q", names)
			}
		})
	}
}

// TestLoadBoundsStateObject: the state object is untrusted (replaced by
// another tool, or damaged): one whose size differs from the record's is
// a *snapshot.CorruptError found from its info alone, before a byte of it
// is read (reading it means a consumer on the object store's stream), so
// an object of any size costs nothing to reject.
func TestLoadBoundsStateObject(t *testing.T) {
	ctx := t.Context()
	s := startServer(t)
	js := connect(t, s.ClientURL())
	l := openLog(t, js, evjs.Config{Replicas: 1})
	if _, err := l.Append(ctx, "s", event.ExpectAny, ev("e1")); err != nil {
		t.Fatal(err)
	}
	snaps := snapshotsOf(t, l)
	state := bytes.Repeat([]byte{0x3C}, 64<<10+1)
	m, err := snaps.Save(ctx, snapshot.Meta{Name: "agg", LogID: l.LogID(), Seq: 1, Time: time.Unix(1, 0).UTC(), SchemaVersion: 1}, state)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := js.ObjectStore(ctx, l.StreamName()+"_SNAPSHOTS")
	if err != nil {
		t.Fatal(err)
	}
	var name string
	for info, err := range listObjects(t, obs) {
		if err != nil {
			t.Fatal(err)
		}
		name = info
	}
	if _, err := obs.PutBytes(ctx, name, bytes.Repeat([]byte{0x3C}, 4*len(state))); err != nil {
		t.Fatal(err)
	}
	tap := newAPITap(t, s.ClientURL())
	tap.requests(t, js.Conn())
	_, err = snaps.Load(ctx, m)
	if _, ok := errors.AsType[*snapshot.CorruptError](err); !ok {
		t.Fatalf("Load of a state object four times the recorded size: %v, want a *snapshot.CorruptError", err)
	}
	for _, req := range tap.requests(t, js.Conn()) {
		if strings.HasPrefix(req, "CONSUMER.") {
			t.Errorf("Load read the oversized state object (API request %s) instead of rejecting it by its size", req)
		}
	}
}
