package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
)

// TestLeaderFailover shuts the stream leader down in the middle of a run
// of appends on an R3 cluster. Appends stall for the election, then go
// on; every acknowledged event is in the log exactly once with contiguous
// seqs (a lost answer is resolved by retrying with the same ID), and a
// subscriber that started before the failover sees every event once, in
// order, across it.
func TestLeaderFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("a leader election takes seconds")
	}
	nodes := startCluster(t)
	var urls []string
	for _, s := range nodes {
		urls = append(urls, s.ClientURL())
	}
	runFailover(t, urls, func(js jetstream.JetStream, stream string) {
		leader := streamLeader(t, js, stream, nodes)
		t.Logf("shutting down the stream leader %s", leader.Name())
		leader.Shutdown()
		leader.WaitForShutdown()
	})
}

// runFailover appends n events to an R3 log on the cluster at urls,
// calling kill (which must stop the stream leader) after killAt of them,
// and checks that every event is there once with contiguous seqs and
// that a subscriber saw them all, in order, across the failover.
func runFailover(t *testing.T, urls []string, kill func(js jetstream.JetStream, stream string)) {
	nc, err := nats.Connect(strings.Join(urls, ","), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	waitForR3(t, js)
	l := openLog(t, js, evjs.Config{Replicas: 3, Retries: 30})
	// One append may retry for minutes (30 retries of 10 s requests, and
	// appendOne tries six times): the whole run is guarded, so a cluster
	// that never recovers fails the test instead of hanging it.
	ctx := guarded(t, hangGuard)
	const n, killAt = 120, 40

	// The subscriber: resubscribes from where it was if the subscription
	// fails across the failover, as a projection runner would.
	subCtx, stopSub := context.WithCancel(ctx)
	defer stopSub()
	subDone := make(chan []uint64, 1)
	subErrs := make(chan error, 100)
	go func() {
		var seen []uint64
		next := uint64(1)
		for len(seen) < n && subCtx.Err() == nil {
			for e, err := range l.Subscribe(subCtx, next) {
				if err != nil {
					select {
					case subErrs <- err:
					default:
					}
					break
				}
				seen = append(seen, e.Seq)
				next = e.Seq + 1
				if len(seen) == n {
					break
				}
			}
		}
		subDone <- seen
	}()

	appendOne := func(i int) {
		t.Helper()
		e := event.Envelope{Type: "e", ID: fmt.Sprintf("event-%d", i)}
		for attempt := 0; ; attempt++ {
			_, err := l.Append(ctx, fmt.Sprint("s", i%4), evlog.ExpectAny, e)
			if err == nil {
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("append %d: %v (%v)", i, err, context.Cause(ctx))
			}
			if !errors.Is(err, evjs.ErrUnknownOutcome) || attempt >= 5 {
				t.Fatalf("append %d: %v", i, err)
			}
			t.Logf("append %d: %v; retrying with the same ID", i, err)
		}
	}
	for i := range killAt {
		appendOne(i)
	}
	kill(js, l.StreamName())
	for i := killAt; i < n; i++ {
		appendOne(i)
	}

	// Every event exactly once, seqs contiguous.
	ids := map[string]int{}
	var seqs []uint64
	for e, err := range l.Range(ctx, 1, l.LastSeq()) {
		if err != nil {
			t.Fatal(err)
		}
		ids[e.ID]++
		seqs = append(seqs, e.Seq)
	}
	if len(seqs) != n {
		t.Errorf("log holds %d events, want %d", len(seqs), n)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("seqs are not contiguous at index %d: %v", i, seqs)
		}
	}
	for i := range n {
		if c := ids[fmt.Sprintf("event-%d", i)]; c != 1 {
			t.Errorf("event-%d is in the log %d times", i, c)
		}
	}
	var seen []uint64
	select {
	case seen = <-subDone:
	case <-time.After(hangGuard):
		t.Fatalf("the subscriber did not see all %d events within %v", n, hangGuard)
	}
	stopSub()
	for i, s := range seen {
		if s != uint64(i+1) {
			t.Fatalf("the subscriber saw a gap or a duplicate at index %d: %v", i, seen)
		}
	}
	if len(seen) != n {
		t.Errorf("the subscriber saw %d events, want %d", len(seen), n)
	}
	close(subErrs)
	for err := range subErrs {
		t.Logf("subscription ended across the failover (resubscribed): %v", err)
	}
}

// streamLeader returns the node leading stream.
func streamLeader(t *testing.T, js jetstream.JetStream, stream string, nodes []*server.Server) *server.Server {
	t.Helper()
	name := streamLeaderName(t, js, stream)
	for _, n := range nodes {
		if n.Name() == name {
			return n
		}
	}
	t.Fatalf("leader %q is none of the nodes", name)
	return nil
}

// streamLeaderName returns the server name of the node leading stream.
func streamLeaderName(t *testing.T, js jetstream.JetStream, stream string) string {
	t.Helper()
	s, err := js.Stream(t.Context(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatal("stream has no leader")
	}
	return info.Cluster.Leader
}
