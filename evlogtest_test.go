package evlog_test

import (
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/evlogtest"
)

// TestConformance runs the backend conformance suite on the file log.
func TestConformance(t *testing.T) {
	evlogtest.Run(t, func(t *testing.T) evlogtest.Backend {
		l, err := evlog.Open(t.TempDir(), evlog.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := l.Close(); err != nil {
				t.Error(err)
			}
		})
		snaps, err := l.Snapshots()
		if err != nil {
			t.Fatal(err)
		}
		return evlogtest.Backend{Log: l, Snapshots: snaps}
	})
}
