package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
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

// smokeSkip lists the contestants TestSuite leaves out unless
// BENCH_SMOKE=all: the R3 clusters (three servers and a Raft election per
// store) and the +snap variants (the same appends as their plain rows).
// jetstream-R1 stays in, on a smaller data set (it appends ~1k events/s).
var smokeSkip = []string{"jetstream-R3", "jetstream-R1+snap", "jetstream-R3+snap"}

// TestSuite runs the contestants through every workload on a very small
// data set (CI's smoke run: a few seconds) and checks that each read back
// what it appended (the suite records a mismatch as an error).
// BENCH_SMOKE=all runs every contestant.
func TestSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every contestant (a few seconds)")
	}
	var embedded, js []string
	for _, c := range sortedRegistry() {
		switch {
		case os.Getenv("BENCH_SMOKE") != "all" && slices.Contains(smokeSkip, c.Name):
		case strings.HasPrefix(c.Name, "jetstream"):
			js = append(js, c.Name)
		default:
			embedded = append(embedded, c.Name)
		}
	}
	cfg := Config{N: 2000, Runs: 1, Dur: 50 * time.Millisecond, Dir: t.TempDir(),
		Targets: 3, Reps: 2, BatchSize: 1000, Writers: 64, CtlN: 400, CtlReps: 1}
	rep := smoke(t, cfg, embedded)
	// Every workload with a raw row gets a chart, linked from the report.
	charts := t.TempDir()
	if err := rep.writeCharts(charts, charts); err != nil {
		t.Fatal(err)
	}
	for _, tb := range rep.Tables {
		if tb.ID == WCtlState {
			continue // evlog only: no raw row
		}
		p := rep.Charts[tb.ID]
		if p != tb.ID+".svg" {
			t.Errorf("%s: chart link %q, want %s.svg", tb.ID, p, tb.ID)
		}
		if _, err := os.Stat(filepath.Join(charts, p)); err != nil {
			t.Error(err)
		}
	}
	cfg.N, cfg.Work = 200, []string{WBatch, WSingle1, WSingle64, WRead, WStateAt, WAggregate, WDisk}
	smoke(t, cfg, js)
	if testing.Verbose() {
		var out bytes.Buffer
		rep.writeText(&out)
		t.Log("\n" + out.String())
	}
}

// smoke runs the suite with cfg on the named contestants and checks every
// cell: a value, or n/a; never an error or a missing contestant.
func smoke(t *testing.T, cfg Config, names []string) *Report {
	t.Helper()
	rep, err := Bench(cfg, names)
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
	for _, name := range names {
		if !seen[name] {
			t.Errorf("contestant %s is missing from the report", name)
		}
	}
	want := len(cfg.Work)
	if want == 0 {
		want = len(workloads)
	}
	if len(rep.Tables) != want {
		t.Errorf("%d tables, want one per selected workload (%d)", len(rep.Tables), want)
	}
	var out bytes.Buffer
	rep.writeText(&out)
	for _, d := range didNotRun {
		if !strings.Contains(out.String(), d.Name) {
			t.Errorf("the report does not list %s under did not run", d.Name)
		}
	}
	var js bytes.Buffer
	if err := rep.writeJSON(&js); err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestEncPayloadBytes: the CustomEncoder payload encodes to exactly the
// bytes of the reflection encoding, so both evlog rows write the same data.
func TestEncPayloadBytes(t *testing.T) {
	for _, i := range []int{0, 1, 99, 12345, 999_999} {
		p := payloadFor(i)
		want, err := newCodec().encode(&p)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.UseCompactInts(true)
		enc.SetSortMapKeys(true)
		ep := EncPayload(p)
		if err := enc.Encode(&ep); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("payload %d: CustomEncoder %x, reflection %x", i, buf.Bytes(), want)
		}
	}
}
