package jetstream_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evlog/evlog"
	evjs "github.com/evlog/evlog/jetstream"
)

// TestAppendSkipsEndReadWhileWatching: while the Log's watch of its
// stream's advisories is trusted and has seen nothing, an append sends
// two messages (its stream's head read and the publish), not a third to
// read the event at the log's last seq. Before, every append to a stream
// not ending at the log's last seq read it: three messages, one round
// trip more (+45% latency for a single event).
func TestAppendSkipsEndReadWhileWatching(t *testing.T) {
	s := startServer(t)
	ctx := guarded(t, hangGuard)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	l := openLog(t, js, evjs.Config{Replicas: 1})
	// The advisory of the stream's creation comes asynchronously: wait
	// for it, so that it cannot make a measured append suspect.
	if ok, err := evjs.AwaitWatch(ctx, l, "CREATED", 1); !ok || err != nil {
		t.Fatalf("the Log does not watch its stream's advisories on a server that sends them: %v, %v", ok, err)
	}
	if _, err := l.Append(ctx, "a", evlog.ExpectAny, ev("first")); err != nil { // reads the end once
		t.Fatal(err)
	}
	const n = 10
	before := nc.Stats().OutMsgs
	for i := range n {
		if _, err := l.Append(ctx, fmt.Sprint("s", i%2), evlog.ExpectAny, ev("e")); err != nil {
			t.Fatal(err)
		}
	}
	if got := nc.Stats().OutMsgs - before; got != 2*n {
		t.Errorf("%d single-event appends sent %d messages, want %d (head read and publish each; advisories seen: %v)", n, got, 2*n, evjs.AdvisoryKinds(l))
	}
}

// startServerDenyingAdvisories starts an embedded JetStream server whose
// only user may not subscribe to $JS.EVENT.> (the account's advisories),
// and returns a function connecting as that user.
func startServerDenyingAdvisories(t *testing.T) func() jetstream.JetStream {
	t.Helper()
	s := startServerWith(t, &server.Options{
		ServerName: "evlog-noadvisories",
		Users: []*server.User{{Username: "app", Password: "app", Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{">"}},
			Subscribe: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"$JS.EVENT.>"}},
		}}},
	})
	return func() jetstream.JetStream {
		t.Helper()
		// The server refuses the advisory subscriptions: an asynchronous
		// error, expected.
		nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("app", "app"), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}
}

// TestStreamReplacedAdvisoriesLostReconnect: the advisories of the
// stream's replacement never reach the Log (dropped on the way, as while
// its connection is down), but the connection reconnected meanwhile. The
// Log cannot know what it missed, so its next append reads the event at
// the log's last seq and finds the replacement (ErrStreamReplaced,
// nothing written).
func TestStreamReplacedAdvisoriesLostReconnect(t *testing.T) {
	s := startServer(t)
	ctx := guarded(t, hangGuard)
	p := startFaultProxy(t, s.Addr().String())
	p.mute("$JS.EVENT.ADVISORY.STREAM.")
	reconnected := make(chan struct{}, 1)
	nc, err := nats.Connect(p.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(0),
		nats.ReconnectHandler(func(*nats.Conn) { reconnected <- struct{}{} }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	l := openLog(t, js, evjs.Config{Replicas: 1})
	if ok, err := evjs.AwaitWatch(ctx, l, "", 0); !ok || err != nil {
		t.Fatalf("the Log does not trust its watch: %v, %v", ok, err)
	}
	for _, typ := range []string{"old1", "old2", "old3"} {
		if _, err := l.Append(ctx, "s", evlog.ExpectAny, ev(typ)); err != nil {
			t.Fatal(err)
		}
	}
	direct := connect(t, s.ClientURL())
	if err := direct.DeleteStream(ctx, l.StreamName()); err != nil {
		t.Fatal(err)
	}
	other := openLog(t, direct, evjs.Config{Name: l.Name(), Replicas: 1})
	for _, typ := range []string{"new1", "new2", "new3"} {
		if _, err := other.Append(ctx, "x", evlog.ExpectAny, ev(typ)); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.ForceReconnect(); err != nil {
		t.Fatal(err)
	}
	receive(t, reconnected, "reconnection")

	_, err = l.Append(ctx, "s", evlog.ExpectAny, ev("mine"))
	if !errors.Is(err, evjs.ErrStreamReplaced) {
		t.Fatalf("append after a reconnection, the replacement's advisories lost: %v; want ErrStreamReplaced", err)
	}
	var types []string
	for _, e := range allEvents(t, other) {
		types = append(types, e.Type)
	}
	if want := []string{"new1", "new2", "new3"}; !slices.Equal(types, want) {
		t.Errorf("the new stream holds %v, want %v", types, want)
	}
}
