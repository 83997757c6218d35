package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
)

// TestMigrateBothWays runs the command from a file log to an embedded
// server and back to a new directory.
func TestMigrateBothWays(t *testing.T) {
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
	l, err := evlog.Open(from, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if _, err := l.Append(t.Context(), fmt.Sprint("s", i%4), evlog.ExpectAny, event.Envelope{Type: "e", Data: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	target := s.ClientURL() + "/orders"
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"-from", from, "-to", target, "-replicas", "1"}, &out, &errOut); err != nil {
		t.Fatalf("to JetStream: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "verified: both logs hold 30 events") {
		t.Errorf("output: %q", out.String())
	}
	back := t.TempDir() + "/back"
	out.Reset()
	if err := run(t.Context(), []string{"-from", target, "-to", back}, &out, &errOut); err != nil {
		t.Fatalf("from JetStream: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "verified: both logs hold 30 events") {
		t.Errorf("output: %q", out.String())
	}
	// Running it again finds nothing to do and verifies again.
	out.Reset()
	if err := run(t.Context(), []string{"-from", target, "-to", back}, &out, &errOut); err != nil || !strings.Contains(out.String(), "copied 0 events (resumed after seq 30)") {
		t.Errorf("second run: %v, %q", err, out.String())
	}
	for _, args := range [][]string{{}, {"-from", from, "-to", back}, {"-from", "nats://127.0.0.1:1", "-to", "nats://127.0.0.1:2/x"}} {
		if err := run(t.Context(), args, &out, &errOut); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
}

// TestMigrateIDStoredTwice: a log holding one ID twice (stored again
// after its DedupeWindow) goes to JetStream as it is; into a file log that
// remembers every ID it fails with evlog.ErrDuplicateID, and -dedupe-window
// resumes it.
func TestMigrateIDStoredTwice(t *testing.T) {
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
	l, err := evlog.Open(from, evlog.Options{DedupeWindow: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"x", "y", "x"} {
		if _, err := l.Append(t.Context(), "s", evlog.ExpectAny, event.Envelope{Type: "e", ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	target := s.ClientURL() + "/twice"
	var out, errOut bytes.Buffer
	if err := run(t.Context(), []string{"-from", from, "-to", target, "-replicas", "1"}, &out, &errOut); err != nil {
		t.Fatalf("to JetStream: %v\n%s", err, errOut.String())
	}
	back := t.TempDir() + "/back"
	if err := run(t.Context(), []string{"-from", target, "-to", back}, &out, &errOut); !errors.Is(err, evlog.ErrDuplicateID) {
		t.Fatalf("into a file log remembering every ID: %v; want ErrDuplicateID", err)
	}
	out.Reset()
	if err := run(t.Context(), []string{"-from", target, "-to", back, "-dedupe-window", "1"}, &out, &errOut); err != nil {
		t.Fatalf("with -dedupe-window 1: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), "verified: both logs hold 3 events") {
		t.Errorf("output: %q", out.String())
	}
}
