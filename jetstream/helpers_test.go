package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	evjs "github.com/evlog/evlog/jetstream"
)

// hangGuard bounds waits that only turn a hang into a failure: far longer
// than anything takes on a loaded machine (docs/TESTING.md).
const hangGuard = 2 * time.Minute

// errHangGuard is the cause a guarded context ends with when its guard
// runs out.
var errHangGuard = errors.New("hang guard: the test waited longer than it could on a loaded machine")

// guarded returns t.Context(), also canceled (with cause errHangGuard)
// after d: a bound on a whole sequence of calls, turning a hang into a
// failure. It has no deadline, on purpose: a Log bounds each request by
// its Config.Timeout and retries one that timed out only when ctx has no
// deadline (with one, every request could wait until it).
func guarded(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithCancelCause(t.Context())
	timer := time.AfterFunc(d, func() { cancel(errHangGuard) })
	t.Cleanup(func() {
		timer.Stop()
		cancel(nil)
	})
	return ctx
}

// receive returns the next value from ch, failing the test (never
// hanging it) if none comes within hangGuard. what names the wait.
func receive[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	timer := time.NewTimer(hangGuard)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("%s: nothing came within %v", what, hangGuard)
	}
	panic("unreachable")
}

// startServer starts an embedded single JetStream server on a random
// loopback port, storing in a temporary directory with sync_interval:
// always, and stops it when the test ends.
func startServer(t testing.TB) *server.Server {
	t.Helper()
	return startServerWith(t, &server.Options{ServerName: "evlog-test"})
}

// startServerWith is startServer with opts (its name, users, …): the
// loopback address, a random port, JetStream storing in a temporary
// directory with sync_interval: always and no logging are set here.
func startServerWith(t testing.TB, opts *server.Options) *server.Server {
	t.Helper()
	o := *opts
	o.Host, o.Port = "127.0.0.1", -1
	o.JetStream, o.StoreDir, o.SyncAlways = true, t.TempDir(), true
	o.NoLog, o.NoSigs = true, true
	s, err := server.NewServer(&o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(hangGuard) {
		s.Shutdown()
		t.Fatal("embedded nats-server did not become ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// connect returns a JetStream context on url, closed when the test ends.
func connect(t testing.TB, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
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

var logCounter atomic.Int64

// newLogName returns a log name no other test in this process uses.
func newLogName() string { return fmt.Sprintf("t%d", logCounter.Add(1)) }

// openLog opens a new log on js.
func openLog(t testing.TB, js jetstream.JetStream, cfg evjs.Config) *evjs.Log {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = newLogName()
	}
	// On a loaded machine creating a stream (R3: three in-process servers
	// fsyncing) can outlast one request's timeout. Open is idempotent, so
	// retry it; hangGuard only turns a hang into a failure.
	ctx := t.Context()
	deadline := time.Now().Add(hangGuard)
	for {
		l, err := evjs.Open(ctx, js, cfg)
		if err == nil {
			return l
		}
		if !transient(err) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		t.Logf("opening %s: %v; retrying", cfg.Name, err)
	}
}

// transient reports whether creating a stream or bucket failed for a
// reason a new cluster passes through: a request that outlasted its
// timeout on a loaded machine, or no peers to place it on because the
// meta leader has not yet heard from all of them since a node started
// (JetStream error 10005, "no suitable peers for placement"); or, for a
// test replacing a stream (deleting it and creating one of the same
// name), the store of the deleted stream still being removed (error
// 10049, "error creating store for stream": nats-server v2.15.2 removes
// a deleted file store's directory while the create request may already
// be making the new one; seen about once in 200 replacements under load).
func transient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	apiErr, ok := errors.AsType[*jetstream.APIError](err)
	return ok && (apiErr.ErrorCode == jsErrClusterNoPeers || apiErr.ErrorCode == jsErrStreamStoreFailed)
}

// JetStream's error codes for "no suitable peers for placement"
// (nats-server's JSClusterNoPeersErrF) and "error creating store for
// stream" (JSStreamStoreFailedF).
const (
	jsErrClusterNoPeers    jetstream.ErrorCode = 10005
	jsErrStreamStoreFailed jetstream.ErrorCode = 10049
)

// snapshotsOf returns l's snapshot store. On a loaded machine creating
// its buckets (R3: a raft group per bucket) can outlast one request's
// timeout; Snapshots keeps no failure, so retry it on a timeout, as
// openLog retries Open. hangGuard only turns a hang into a failure.
func snapshotsOf(t testing.TB, l *evjs.Log) *evjs.Snapshots {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		snaps, err := l.Snapshots()
		if err == nil {
			return snaps
		}
		if !transient(err) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		t.Logf("creating the snapshot buckets: %v; retrying", err)
	}
}
