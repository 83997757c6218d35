package jetstream_test

import (
	"testing"

	"github.com/evlog/evlog/evlogtest"
	evjs "github.com/evlog/evlog/jetstream"
)

// TestConformanceR1 runs the backend conformance suite on a single
// embedded server (one replica).
func TestConformanceR1(t *testing.T) {
	s := startServer(t)
	js := connect(t, s.ClientURL())
	evlogtest.Run(t, func(t *testing.T) evlogtest.Backend {
		l := openLog(t, js, evjs.Config{Replicas: 1})
		return evlogtest.Backend{Log: l, Snapshots: snapshotsOf(t, l)}
	})
}
