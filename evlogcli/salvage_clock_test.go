package evlogcli

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/evlog/evlog"
)

// TestSalvageEventsAheadOfTheClock: salvage copies events with their
// recorded times, whatever the clock of the machine it runs on says. A log
// recorded by a writer whose clock ran an hour ahead (or salvaged after the
// clock was stepped back) was copied through the new log's future-time
// check (Options.MaxClockSkew, one minute): the first batch failed with
// ErrFutureTime and salvage copied nothing.
func TestSalvageEventsAheadOfTheClock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	ahead := testEpoch.Add(time.Hour)
	l, err := evlog.Open(dir, evlog.Options{Clock: func() time.Time { return ahead }})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := l.Append(t.Context(), "s-1", evlog.ExpectAny, evlog.Envelope{Type: "t", Data: fmt.Appendf(nil, "\"%d\"", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "new")
	r := run1(t, "salvage", dir, out) // at testEpoch: an hour behind the events
	if r.code != 0 || !strings.Contains(r.stdout, "copied 5 events (seqs 1..5)") {
		t.Fatalf("salvage of events an hour ahead of the clock: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	n, err := evlog.OpenReadOnly(out, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	var times []time.Time
	for ev, err := range n.Events(t.Context(), 1) {
		if err != nil {
			t.Fatal(err)
		}
		times = append(times, ev.Time)
	}
	if len(times) != 5 || !times[0].Equal(ahead) {
		t.Fatalf("salvaged times %v, want 5 at %v", times, ahead)
	}
}
