package jetstream_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// nodeEnv, when set, makes the test binary run one cluster node described
// by the JSON in it (a processNode) instead of the tests: the parent test
// starts nodes as child processes so that it can SIGKILL one.
const nodeEnv = "EVLOG_TEST_NATS_NODE"

type processNode struct {
	Name        string
	Port        int
	ClusterPort int
	Routes      []int
	StoreDir    string
}

func TestMain(m *testing.M) {
	if spec := os.Getenv(nodeEnv); spec != "" {
		runNode(spec)
		return
	}
	os.Exit(m.Run())
}

// runNode runs one node until the process is killed, saying "ready" on
// stdout once it accepts clients.
func runNode(spec string) {
	var n processNode
	if err := json.Unmarshal([]byte(spec), &n); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var routes []*url.URL
	for _, p := range n.Routes {
		routes = append(routes, &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	s, err := server.NewServer(&server.Options{
		ServerName: n.Name, Host: "127.0.0.1", Port: n.Port,
		JetStream: true, StoreDir: n.StoreDir, SyncAlways: true, NoLog: true, NoSigs: true,
		Cluster: server.ClusterOpts{Name: "evlog-proc", Host: "127.0.0.1", Port: n.ClusterPort},
		Routes:  routes,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	go s.Start()
	if !s.ReadyForConnections(hangGuard) {
		fmt.Fprintln(os.Stderr, "not ready")
		os.Exit(2)
	}
	fmt.Println("ready")
	s.WaitForShutdown()
}

// freePorts reserves n loopback ports (see startCluster).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
		ln.Close()
	}
	return ports
}

// startProcessCluster starts a 3-node cluster, one child process per
// node, on freshly reserved loopback ports, and returns the client URLs
// and the processes by server name. As in startCluster, another process
// can take a reserved port between its release and the node's Listen;
// the node then never becomes ready, so a start whose nodes are not all
// ready within startGuard is retried on fresh ports.
func startProcessCluster(t *testing.T) ([]string, map[string]*os.Process) {
	t.Helper()
	const startGuard = 20 * time.Second
	for attempt := 1; ; attempt++ {
		urls, procs, err := tryStartProcessCluster(t, startGuard)
		if err == nil {
			return urls, procs
		}
		for _, p := range procs {
			p.Kill() // reaped by the Cleanup tryStartProcessCluster registered
		}
		if attempt == 3 {
			t.Fatalf("the process cluster did not become ready in %d starts: %v", attempt, err)
		}
		t.Logf("process cluster start %d: %v; retrying on fresh ports", attempt, err)
	}
}

// tryStartProcessCluster starts the three node processes and waits up to
// guard for each to say it is ready. They are killed when the test ends.
func tryStartProcessCluster(t *testing.T, guard time.Duration) ([]string, map[string]*os.Process, error) {
	t.Helper()
	ports := freePorts(t, 6)
	clientPorts, clusterPorts := ports[:3], ports[3:]
	var urls []string
	procs := map[string]*os.Process{}
	ready := make(chan error, 3)
	for i := range 3 {
		spec, _ := json.Marshal(processNode{Name: fmt.Sprintf("evlog-p%d", i), Port: clientPorts[i],
			ClusterPort: clusterPorts[i], Routes: clusterPorts, StoreDir: t.TempDir()})
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), nodeEnv+"="+string(spec))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		go func() {
			sc := bufio.NewScanner(out)
			if sc.Scan() && sc.Text() == "ready" {
				ready <- nil
			} else {
				ready <- fmt.Errorf("node %d exited before it was ready", i)
			}
			for sc.Scan() {
			}
		}()
		procs[fmt.Sprintf("evlog-p%d", i)] = cmd.Process
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
	}
	timeout := time.After(guard)
	for range 3 {
		select {
		case err := <-ready:
			if err != nil {
				return urls, procs, err
			}
		case <-timeout:
			return urls, procs, fmt.Errorf("a node was not ready within %v (a reserved port taken?)", guard)
		}
	}
	return urls, procs, nil
}

// TestLeaderKilled is TestLeaderFailover with the stream leader's process
// killed by SIGKILL: no goodbye to its peers, no flush.
func TestLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("a leader election takes seconds")
	}
	urls, procs := startProcessCluster(t)
	runFailover(t, urls, func(js jetstream.JetStream, stream string) {
		name := streamLeaderName(t, js, stream)
		p, ok := procs[name]
		if !ok {
			t.Fatalf("leader %q is none of the nodes", name)
		}
		t.Logf("killing the stream leader %s (pid %d)", name, p.Pid)
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
	})
}
