package evlogcli

import (
	"fmt"
	"strings"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/replay"
)

// retentionWriter opens a writer on dir with retention, appends rounds of
// events (r-0 and r-1 under retention, s-0 not), saving a stats snapshot
// after each round (rounds[i] events of each stream) as an application does (replay.State from the newest
// snapshot, then Save); tamper, if not nil, changes the state saved
// after the last round. It returns the open writer.
func retentionWriter(t *testing.T, dir string, ret map[string]evlog.Retention, rounds []int, tamper func(*stats)) *evlog.Log {
	t.Helper()
	ctx := t.Context()
	l, err := evlog.Open(dir, evlog.Options{SegmentSize: evlog.MinSegmentSize, Retention: ret})
	if err != nil {
		t.Fatal(err)
	}
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	for round, perStream := range rounds {
		for i := range 3 * perStream {
			stream := []string{"r-0", "r-1", "s-0"}[i%3]
			if _, err := l.Append(ctx, stream, evlog.ExpectAny, evlog.Envelope{Type: "tick", Data: fmt.Appendf(nil, "\xa3%03d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		res, err := replay.State(ctx, l, store, statsSubject, replay.Latest(), statsSpec, replay.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if tamper != nil && round == len(rounds)-1 {
			tamper(&res.State)
		}
		if _, _, err := replay.Save(ctx, store, l.LogID(), statsSubject, statsSpec, res); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// TestVerifyReplayBesideRetentionWriter: verify --replay beside a writer
// whose MaxCount retention expires events its stats snapshots folded
// reports no corruption (the snapshots that folded expired events are
// not compared, with a warning).
func TestVerifyReplayBesideRetentionWriter(t *testing.T) {
	dir := t.TempDir()
	// The first round: 3 versions of r-0 and r-1 expire before the
	// first fold (holes it records); the others: folded before they
	// expire (4 a round, 5 kept), expired after.
	l := retentionWriter(t, dir, map[string]evlog.Retention{"r": {MaxCount: 5}}, []int{8, 4, 4, 4}, nil)
	defer l.Close()
	r := run1(t, "verify", dir, "--replay")
	if r.code != 0 || strings.Contains(r.stdout+r.stderr, "differs") {
		t.Fatalf("verify --replay beside a writer with retention: status %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestVerifyReplayRetentionRealMismatch: a stats snapshot that never
// folded the expired events (they are in its Unfolded ranges) is still
// compared, and a state that differs from the events is reported.
func TestVerifyReplayRetentionRealMismatch(t *testing.T) {
	dir := t.TempDir()
	// One round from the first event: the two expired versions of r-0
	// and r-1 are holes the snapshot records.
	l := retentionWriter(t, dir, map[string]evlog.Retention{"r": {MaxCount: 2}}, []int{4}, func(s *stats) { s.Events++ })
	defer l.Close()
	r := run1(t, "verify", dir, "--replay")
	if r.code != 1 || !strings.Contains(r.stdout, "stats state differs from a replay of the events") {
		t.Fatalf("verify --replay of a tampered snapshot: status %d, want 1 and the mismatch\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// TestVerifyReplayRetentionLoosened: after the log's retention is
// loosened (a writer records no retention), events a snapshot never
// folded read again: that snapshot is not compared (a warning), not
// reported as corrupt.
func TestVerifyReplayRetentionLoosened(t *testing.T) {
	dir := t.TempDir()
	l := retentionWriter(t, dir, map[string]evlog.Retention{"r": {MaxCount: 2}}, []int{4}, nil)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := evlog.Open(dir, evlog.Options{Retention: map[string]evlog.Retention{}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	r := run1(t, "verify", dir, "--replay")
	if r.code != 0 || !strings.Contains(r.stderr, "not compared") {
		t.Fatalf("verify --replay after retention was loosened: status %d, want 0 and a warning\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}
