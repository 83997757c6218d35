package jetstream_test

import (
	"fmt"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// TestClusterConfigs checks that the example cluster configs parse and
// say what README promises: three nodes routing to each other, JetStream
// with sync_interval: always, loopback only.
func TestClusterConfigs(t *testing.T) {
	for i := 1; i <= 3; i++ {
		file := fmt.Sprintf("../examples/cluster/n%d.conf", i)
		o, err := server.ProcessConfigFile(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if !o.JetStream || !o.SyncAlways {
			t.Errorf("%s: jetstream %v, sync always %v; want both", file, o.JetStream, o.SyncAlways)
		}
		if o.Host != "127.0.0.1" || o.Cluster.Host != "127.0.0.1" {
			t.Errorf("%s: listens on %s / %s, want loopback", file, o.Host, o.Cluster.Host)
		}
		if o.Cluster.Name != "evlog" || len(o.Routes) != 3 {
			t.Errorf("%s: cluster %q with %d routes, want evlog with 3", file, o.Cluster.Name, len(o.Routes))
		}
		if want := fmt.Sprintf("n%d", i); o.ServerName != want {
			t.Errorf("%s: server_name %q, want %q", file, o.ServerName, want)
		}
	}
}
