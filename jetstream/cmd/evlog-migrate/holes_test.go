package main

import (
	"bytes"
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

// TestMigrateHoles runs the command on a file log with a stream deleted
// and compacted away: it refuses with ErrHoles, appends nothing, and does
// not tell the user to run it again (which would fail the same way).
func TestMigrateHoles(t *testing.T) {
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: t.TempDir(), SyncAlways: true, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(2 * time.Minute) {
		t.Fatal("embedded nats-server did not become ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })

	from := t.TempDir()
	l, err := evlog.Open(from, evlog.Options{SegmentSize: evlog.MinSegmentSize})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		if _, err := l.Append(t.Context(), fmt.Sprint("s-", i%3), evlog.ExpectAny, event.Envelope{Type: "e", Data: []byte(strings.Repeat("x", 300))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := l.DeleteStream(t.Context(), "s-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Compact(t.Context(), evlog.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err = run(t.Context(), []string{"-from", from, "-to", s.ClientURL() + "/holes", "-replicas", "1"}, &out, &errOut)
	var he *evjs.HolesError
	if !errors.Is(err, evjs.ErrHoles) || !errors.As(err, &he) || he.Seq != 2 {
		t.Fatalf("run: %v (%T), want a *HolesError at seq 2\n%s", err, err, errOut.String())
	}
	if strings.Contains(err.Error(), "run again") {
		t.Errorf("run: %v: tells the user to run it again, which fails the same way", err)
	}

	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := evjs.Open(t.Context(), js, evjs.Config{Name: "holes", Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	if n := dst.LastSeq(); n != 0 {
		t.Errorf("the refused copy appended %d events", n)
	}
}
