package jetstream_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evlog/evlog/evlogtest"
	evjs "github.com/evlog/evlog/jetstream"
)

// startCluster starts a 3-node JetStream cluster in-process, on random
// loopback ports, each node storing in its own temporary directory with
// sync_interval: always, and waits until it has a meta leader and every
// node is current. It stops the nodes when the test ends.
func startCluster(t testing.TB) []*server.Server {
	t.Helper()
	const n = 3
	// Clustered JetStream needs its routes configured up front: reserve
	// three loopback ports. Another process can take one between Close
	// and the node's Listen; the node then never becomes ready, so a
	// start that is not ready within startGuard is retried on fresh ports
	// (a start on a loaded machine takes well under a second).
	const startGuard = 20 * time.Second
	var nodes []*server.Server
	for attempt := 1; ; attempt++ {
		nodes = tryStartCluster(t, n)
		ready := true
		for _, s := range nodes {
			if !s.ReadyForConnections(startGuard) {
				ready = false
				break
			}
		}
		if ready {
			break
		}
		for _, s := range nodes {
			s.Shutdown()
			s.WaitForShutdown()
		}
		if attempt == 3 {
			t.Fatalf("the cluster did not become ready in %d starts of %v each", attempt, startGuard)
		}
		t.Logf("cluster start %d not ready within %v (a reserved port taken?); retrying on fresh ports", attempt, startGuard)
	}
	// Poll (with a hang guard, never a fixed sleep) for a meta leader that
	// sees all peers: an election may take a while on a loaded machine.
	deadline := time.Now().Add(hangGuard)
	for {
		leaders, current, peers := 0, 0, 0
		for _, s := range nodes {
			if s.JetStreamIsLeader() {
				leaders++
				peers = len(s.JetStreamClusterPeers())
			}
			if s.JetStreamIsCurrent() {
				current++
			}
		}
		if leaders == 1 && current == n && peers == n {
			return nodes
		}
		if time.Now().After(deadline) {
			t.Fatalf("no JetStream meta leader with all peers after %v (leaders %d, current %d, peers %d)", hangGuard, leaders, current, peers)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// clusterSeq numbers the clusters tryStartCluster starts in this process.
var clusterSeq atomic.Int64

// tryStartCluster starts n clustered nodes on freshly reserved loopback
// route ports, without waiting for them. They stop when the test ends.
func tryStartCluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	ports := make([]int, n)
	var routes []*url.URL
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", ports[i])})
	}
	// A cluster name and server names of its own: a route that reaches a
	// node of another test's cluster (a reserved port reused while that
	// cluster stops) is refused by name, and no node is taken for a
	// namesake of another cluster (JetStream identifies peers by a hash
	// of the server name, and marks one offline when a namesake leaves).
	cluster := fmt.Sprintf("evlog-test-%d", clusterSeq.Add(1))
	var nodes []*server.Server
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("%s-%d", cluster, i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), SyncAlways: true,
			NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: cluster, Host: "127.0.0.1", Port: ports[i]},
			Routes:  routes,
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		if os.Getenv("EVLOG_NATS_LOG") != "" {
			s.SetLogger(testLogger{t}, false, false)
		}
		go s.Start()
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		nodes = append(nodes, s)
	}
	return nodes
}

// TestConformanceR3 runs the conformance suite on a 3-node cluster with
// three replicas: reads may be served by followers, conflicts come back
// as 10164, and Subscribe and snapshots must still behave.
func TestConformanceR3(t *testing.T) {
	nodes := startCluster(t)
	js := connect(t, nodes[0].ClientURL())
	waitForR3(t, js)
	evlogtest.Run(t, func(t *testing.T) evlogtest.Backend {
		l := openLog(t, js, evjs.Config{Replicas: 3})
		return evlogtest.Backend{Log: l, Snapshots: snapshotsOf(t, l)}
	})
}

// testLogger sends a node's log to the test log (EVLOG_NATS_LOG=1).
type testLogger struct{ t testing.TB }

func (l testLogger) Noticef(format string, v ...any) { l.t.Logf("notice: "+format, v...) }
func (l testLogger) Warnf(format string, v ...any)   { l.t.Logf("warn: "+format, v...) }
func (l testLogger) Fatalf(format string, v ...any)  { l.t.Logf("FATAL: "+format, v...) }
func (l testLogger) Errorf(format string, v ...any)  { l.t.Logf("error: "+format, v...) }
func (l testLogger) Debugf(format string, v ...any)  {}
func (l testLogger) Tracef(format string, v ...any)  {}

// waitForR3 returns once the cluster behind js places a 3-replica stream
// (a new cluster may elect its meta leader before it knows every peer),
// polling with a hang guard.
func waitForR3(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "READY_PROBE", Subjects: []string{"ready.probe"},
			Storage: jetstream.MemoryStorage, Replicas: 3})
		if err == nil {
			err = js.DeleteStream(ctx, "READY_PROBE")
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster cannot place an R3 stream after %v: %v", hangGuard, err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}
