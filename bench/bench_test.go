package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestPayloadSize keeps the payload at about 100 bytes of msgpack.
func TestPayloadSize(t *testing.T) {
	for _, i := range []int{0, 1, 7, 99, 12345, 999_999} {
		p := payloadFor(i)
		b, err := newCodec().encode(&p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 90 || len(b) > 110 {
			t.Errorf("payload %d encodes to %d bytes, want about 100", i, len(b))
		}
	}
}

// TestDataset checks the shape of the data set: aggStream gets AggEvents
// events spread evenly, versions are contiguous per stream.
func TestDataset(t *testing.T) {
	for _, n := range []int{10, 2000, 12345, 100_000} {
		d := newDataset(n)
		next := map[string]uint64{}
		var e Ev
		for i := range n {
			d.Event(i, &e)
			next[e.Stream]++
			if e.Version != next[e.Stream] {
				t.Fatalf("n=%d: event %d: %s version %d, want %d", n, i, e.Stream, e.Version, next[e.Stream])
			}
		}
		if got := int(next[aggStream]); got != d.AggEvents {
			t.Errorf("n=%d: %s has %d events, want %d", n, aggStream, got, d.AggEvents)
		}
		if len(next) > numStreams {
			t.Errorf("n=%d: %d streams, want at most %d", n, len(next), numStreams)
		}
	}
}

// TestSuite runs every contestant through every workload on a very small
// data set and checks that each read back what it appended (the suite
// records a mismatch as an error).
func TestSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every contestant (a few seconds)")
	}
	cfg := Config{N: 2000, Runs: 1, Dur: 100 * time.Millisecond, Dir: t.TempDir(),
		Targets: 3, Reps: 2, BatchSize: 1000, Writers: 64}
	rep, err := Bench(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, tb := range rep.Tables {
		for _, row := range tb.Rows {
			seen[row.Contestant] = true
			switch {
			case row.Error != "":
				t.Errorf("%s / %s: %s", row.Contestant, tb.ID, row.Error)
			case row.NA != "":
				t.Logf("%s / %s: n/a: %s", row.Contestant, tb.ID, row.NA)
			case len(row.Values) != 1 || row.Median <= 0:
				t.Errorf("%s / %s: values %v", row.Contestant, tb.ID, row.Values)
			}
		}
	}
	for _, c := range registry {
		if !seen[c.Name] {
			t.Errorf("contestant %s is missing from the report", c.Name)
		}
	}
	var out bytes.Buffer
	rep.writeText(&out)
	for _, d := range didNotRun {
		if !strings.Contains(out.String(), d.Name) {
			t.Errorf("the report does not list %s under did not run", d.Name)
		}
	}
	if testing.Verbose() {
		t.Log("\n" + out.String())
	}
	var js bytes.Buffer
	if err := rep.writeJSON(&js); err != nil {
		t.Fatal(err)
	}
}
