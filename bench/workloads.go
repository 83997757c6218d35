package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Workload identifiers (the -work flag), in report order.
const (
	WBatch     = "batch"
	WSingle1   = "single1"
	WSingle64  = "single64"
	WRead      = "read"
	WStateAt   = "stateat"
	WAggregate = "aggregate"
	WDisk      = "disk"
	// Added for issue 17 (typed.go).
	WBatch1     = "batch1"
	WBatchMulti = "batchmulti"
	WReopen     = "reopen"
	WCtlState   = "ctlstate"
)

// Workload describes one row group of the report.
type Workload struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	Unit  string `json:"unit"`
	// HigherIsBetter: throughput (true) or latency/size (false).
	HigherIsBetter bool   `json:"higher_is_better"`
	Measures       string `json:"measures"`
}

var workloads = []Workload{
	{WBatch, "1. batched durable append", "events/s", true,
		"n events (10k streams, recorded times 1 ms apart) appended in batches of 1,000; one transaction and one fsync per batch; only the append calls are timed"},
	{WSingle1, "2a. single-event durable appends, 1 writer", "events/s", true,
		"one goroutine appends one event per call to its own stream for -dur; each call returns after an fsync"},
	{WSingle64, "2b. single-event durable appends, 64 writers", "events/s", true,
		"64 goroutines, each appending to its own stream, for -dur; the 64/1 column is the group-commit gain"},
	{WRead, "3. full sequential read + decode", "events/s", true,
		"after workload 1 (closed and reopened), read every event in log order and decode its payload into the Payload struct"},
	{WStateAt, "4. state at a random past time", "latency", false,
		"fold (count of items per Item name) of every event recorded at or before a random past time t; median over the targets (the fold's size is uniform in 0..n)"},
	{WAggregate, "5. load one aggregate", "latency", false,
		"read + decode every event of stream s-0 (1,000 events spread evenly over n events in 10k streams); median over the repetitions (warm cache)"},
	{WDisk, "6. bytes on disk per event", "bytes/event", false,
		"size of the store after workload 1 and Close, divided by n (evlog: *.seg files; raw: its file; others: every file in their directory)"},
	{WBatch1, "7. one-stream batches", "events/s", true,
		"n events in batches of 1,000, each batch one new stream (versions 1..1,000), one transaction and one fsync per batch; evlog through Typed[EncPayload] (a msgpack.CustomEncoder payload), evlog-plain through Typed[Payload] (reflection)"},
	{WBatchMulti, "8. multi-stream batches", "events/s", true,
		"n events in batches of 1,000 spread over 1,000 streams: each event of a batch is the next version of its own stream; one transaction and one fsync per batch; evlog as in workload 7"},
	{WReopen, "9. reopen after Close", "latency", false,
		"open the store written by workload 7 (n events, closed cleanly) until it can answer; median of 5 opens per run (Close untimed)"},
	{WCtlState, "10. evlogctl state --at, end to end", "latency", false,
		"a log of -ctln events with a stats snapshot every 100k events (ctln/20 below 2M; taken with evlogctl snapshot); `evlogctl state DIR --at T`, T three quarters into the last interval, timed from process start to exit; median of -ctlreps runs; the notes give --no-snapshot and the ratio"},
}

func workloadByID(id string) (Workload, bool) {
	for _, w := range workloads {
		if w.ID == id {
			return w, true
		}
	}
	return Workload{}, false
}

// Config is one invocation of the suite.
type Config struct {
	N         int
	Runs      int
	Dur       time.Duration
	Only      []string // contestant names (empty: all)
	Work      []string // workload IDs (empty: all)
	Dir       string   // scratch parent (empty: os.TempDir())
	Targets   int      // workload 4: random times per run
	Reps      int      // workload 5: repetitions per run
	BatchSize int
	Writers   int // workload 2b
	CtlN      int // workload 10: events in the log
	CtlReps   int // workload 10: runs of each command per run
	Progress  io.Writer
}

func (c *Config) wants(id string) bool { return len(c.Work) == 0 || slices.Contains(c.Work, id) }

// Sample is one contestant's result for one workload across runs.
type Sample struct {
	Values []float64 `json:"values"` // one per run
	NA     string    `json:"na,omitempty"`
	Err    string    `json:"error,omitempty"`
	// RunNotes are per-run notes (evlog's writer stats), aligned with
	// Values; the table shows the one of the median run.
	RunNotes []string `json:"run_notes,omitempty"`
}

func (s *Sample) median() float64 { return median(s.Values) }

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	c := slices.Clone(v)
	slices.Sort(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

// Results holds every sample: results[contestant][workload].
type Results map[string]map[string]*Sample

func (r Results) sample(contestant, workload string) *Sample {
	m := r[contestant]
	if m == nil {
		m = map[string]*Sample{}
		r[contestant] = m
	}
	s := m[workload]
	if s == nil {
		s = &Sample{}
		m[workload] = s
	}
	return s
}

// record files a phase's outcome: a value, n/a, or an error.
func (r Results) record(contestant, workload string, v float64, err error) {
	s := r.sample(contestant, workload)
	if err != nil {
		if reason, ok := isNA(err); ok {
			s.NA = reason
			return
		}
		if s.Err == "" {
			s.Err = err.Error()
		}
		return
	}
	s.Values = append(s.Values, v)
}

// medianNote returns the note of the run whose value is the median (the
// lower middle one for an even count).
func (s *Sample) medianNote() string {
	if len(s.RunNotes) != len(s.Values) || len(s.Values) == 0 {
		return ""
	}
	idx := make([]int, len(s.Values))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(s.Values[a], s.Values[b]) })
	return s.RunNotes[idx[(len(idx)-1)/2]]
}

// Suite runs the workloads.
type Suite struct {
	cfg     Config
	scratch string
	res     Results
	compact map[string]string // contestant → compaction outcome
	ctlBin  string            // workload 10: the evlogctl binary
}

func (s *Suite) logf(format string, args ...any) {
	if s.cfg.Progress != nil {
		fmt.Fprintf(s.cfg.Progress, format+"\n", args...)
	}
}

// freshDir returns a new, empty directory for one phase.
func (s *Suite) freshDir(c *Contestant, phase string, run int) (string, error) {
	name := fmt.Sprintf("%s-%s-%d", sanitize(c.Name), phase, run)
	dir := filepath.Join(s.scratch, name)
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	return dir, nil
}

func sanitize(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}

// Run runs every selected workload against every selected contestant,
// -runs times, interleaving the contestants within each run (in an order
// rotated by one each run).
func (s *Suite) Run(contestants []*Contestant) error {
	needDataset := s.cfg.wants(WBatch) || s.cfg.wants(WRead) || s.cfg.wants(WStateAt) ||
		s.cfg.wants(WAggregate) || s.cfg.wants(WDisk)
	if s.cfg.wants(WCtlState) {
		if err := s.buildEvlogctl(); err != nil {
			return err
		}
	}
	for run := range s.cfg.Runs {
		// Rotate the order each run, so that no contestant always runs
		// right after (or before) the same heavy neighbour.
		for k := range contestants {
			c := contestants[(k+run)%len(contestants)]
			if needDataset && s.takesPart(c, WBatch, WRead, WStateAt, WAggregate, WDisk) {
				s.dataset(c, run)
			}
			if s.cfg.wants(WSingle1) && s.takesPart(c, WSingle1) {
				s.single(c, run, 1, WSingle1)
			}
			if s.cfg.wants(WSingle64) && s.takesPart(c, WSingle64) {
				s.single(c, run, s.cfg.Writers, WSingle64)
			}
			if s.cfg.wants(WCtlState) && s.takesPart(c, WCtlState) {
				s.ctlState(c, run)
			}
		}
		// Workloads 7 (with 9) and 8: the contestants at once, taking
		// turns (typedBatches), in this run's rotated order.
		var one, multi []*Contestant
		for k := range contestants {
			c := contestants[(k+run)%len(contestants)]
			if (s.cfg.wants(WBatch1) || s.cfg.wants(WReopen)) && s.takesPart(c, WBatch1, WReopen) {
				one = append(one, c)
			}
			if s.cfg.wants(WBatchMulti) && s.takesPart(c, WBatchMulti) {
				multi = append(multi, c)
			}
		}
		for _, g := range turnGroups(one) {
			s.typedBatches(g, run, WBatch1)
		}
		for _, g := range turnGroups(multi) {
			s.typedBatches(g, run, WBatchMulti)
		}
	}
	return nil
}

// turnGroups splits cs into the groups typedBatches runs: every
// contestant without background I/O in one group, taking turns, then each
// one with background I/O alone.
func turnGroups(cs []*Contestant) [][]*Contestant {
	var turns []*Contestant
	var out [][]*Contestant
	for _, c := range cs {
		if c.Background {
			out = append(out, []*Contestant{c})
		} else {
			turns = append(turns, c)
		}
	}
	if len(turns) > 0 {
		out = append([][]*Contestant{turns}, out...)
	}
	return out
}

// takesPart reports whether c runs any of the workloads ids; the ones it
// does not run are recorded as n/a.
func (s *Suite) takesPart(c *Contestant, ids ...string) bool {
	any := false
	for _, id := range ids {
		if !s.cfg.wants(id) {
			continue
		}
		reason, ok := c.runs(id)
		switch {
		case !ok:
			s.res.record(c.Name, id, 0, notApplicable(reason))
		case id == WCtlState && c.CtlState == nil:
			s.res.record(c.Name, id, 0, notApplicable("evlogctl reads evlog logs only"))
		default:
			any = true
		}
	}
	return any
}

// failAll records err for every workload of a phase that did not get a
// value in this run.
func (s *Suite) failAll(c *Contestant, ids []string, err error) {
	for _, id := range ids {
		if s.cfg.wants(id) {
			s.res.record(c.Name, id, 0, err)
		}
	}
	s.logf("  %s: %v", c.Name, err)
}

// dataset runs workloads 1, 3, 4, 5 and 6 on one fresh directory: write
// the data set, close, measure the size, reopen, read, query.
func (s *Suite) dataset(c *Contestant, run int) {
	phase := []string{WBatch, WDisk, WRead, WStateAt, WAggregate}
	dir, err := s.freshDir(c, "dataset", run)
	if err != nil {
		s.failAll(c, phase, err)
		return
	}
	defer os.RemoveAll(dir)
	ds := newDataset(s.cfg.N)
	s.logf("run %d: %s: appending %d events in batches of %d", run+1, c.Name, ds.N, s.cfg.BatchSize)
	st, err := c.Open(dir, 1)
	if err != nil {
		s.failAll(c, phase, fmt.Errorf("open: %w", err))
		return
	}
	evs := make([]Ev, 0, s.cfg.BatchSize)
	var elapsed time.Duration
	for i := 0; i < ds.N; i += s.cfg.BatchSize {
		evs = evs[:0]
		for j := i; j < min(i+s.cfg.BatchSize, ds.N); j++ {
			evs = append(evs, Ev{})
			ds.Event(j, &evs[len(evs)-1])
		}
		t0 := time.Now()
		err := st.AppendBatch(evs)
		elapsed += time.Since(t0)
		if err != nil {
			st.Close()
			s.failAll(c, phase, fmt.Errorf("append batch at event %d: %w", i, err))
			return
		}
	}
	if s.cfg.wants(WBatch) {
		s.res.record(c.Name, WBatch, float64(ds.N)/elapsed.Seconds(), nil)
	}
	if err := st.Close(); err != nil {
		s.failAll(c, phase, fmt.Errorf("close after append: %w", err))
		return
	}
	if s.cfg.wants(WDisk) {
		size := dirBytes
		if c.DiskBytes != nil {
			size = func(dir string, _ ...string) (int64, error) { return c.DiskBytes(dir) }
		}
		b, err := size(dir)
		s.res.record(c.Name, WDisk, float64(b)/float64(ds.N), err)
		if c.Compact != nil && err == nil {
			// Compact after the reads (deferred: it runs once the store
			// is closed again), so workloads 3-5 see the log as appended.
			defer s.compactAfter(c, dir, ds.N, b)
		}
	}
	if !s.cfg.wants(WRead) && !s.cfg.wants(WStateAt) && !s.cfg.wants(WAggregate) {
		return
	}
	st, err = c.Open(dir, 1)
	if err != nil {
		s.failAll(c, []string{WRead, WStateAt, WAggregate}, fmt.Errorf("reopen: %w", err))
		return
	}
	defer func() {
		if err := st.Close(); err != nil {
			s.logf("  %s: close after reads: %v", c.Name, err)
		}
	}()
	if p, ok := st.(readPreparer); ok {
		if err := p.PrepareReads(); err != nil {
			s.failAll(c, []string{WRead, WStateAt, WAggregate}, fmt.Errorf("prepare reads: %w", err))
			return
		}
	}
	if s.cfg.wants(WRead) {
		s.logf("run %d: %s: full read", run+1, c.Name)
		var sum int64
		t0 := time.Now()
		n, err := st.ReadAll(func(_ uint64, p *Payload) { sum += int64(p.Count) })
		d := time.Since(t0)
		if err == nil && n != ds.N {
			err = fmt.Errorf("read back %d events, appended %d", n, ds.N)
		}
		if err == nil && sum != ds.countSum() {
			err = fmt.Errorf("payload checksum %d, want %d", sum, ds.countSum())
		}
		s.res.record(c.Name, WRead, float64(n)/d.Seconds(), err)
	}
	if s.cfg.wants(WStateAt) {
		s.logf("run %d: %s: state at %d random times", run+1, c.Name, s.cfg.Targets)
		rng := rand.New(rand.NewPCG(uint64(run)+1, 0xe71))
		lats := make([]float64, 0, s.cfg.Targets)
		var err error
		for range s.cfg.Targets {
			idx := rng.IntN(ds.N)
			t0 := time.Now()
			var fold ItemCounts
			fold, err = st.StateAt(ds.TimeOf(idx))
			lats = append(lats, time.Since(t0).Seconds())
			if err == nil && fold.total() != idx+1 {
				err = fmt.Errorf("state at event %d folded %d events, want %d", idx, fold.total(), idx+1)
			}
			if err != nil {
				break
			}
		}
		s.res.record(c.Name, WStateAt, median(lats), err)
	}
	if s.cfg.wants(WAggregate) {
		s.logf("run %d: %s: load %s x%d", run+1, c.Name, aggStream, s.cfg.Reps)
		lats := make([]float64, 0, s.cfg.Reps)
		var err error
		for range s.cfg.Reps {
			t0 := time.Now()
			var n int
			n, err = st.LoadStream(aggStream)
			lats = append(lats, time.Since(t0).Seconds())
			if err == nil && n != ds.AggEvents {
				err = fmt.Errorf("loaded %d events of %s, want %d", n, aggStream, ds.AggEvents)
			}
			if err != nil {
				break
			}
		}
		s.res.record(c.Name, WAggregate, median(lats), err)
	}
}

// compactAfter runs the contestant's compaction hook on the closed store
// in dir and records the outcome for the report.
func (s *Suite) compactAfter(c *Contestant, dir string, n int, before int64) {
	after, err := c.Compact(dir)
	switch {
	case errors.Is(err, errCompactUnavailable):
		s.compact[c.Name] = errCompactUnavailable.Error()
	case err != nil:
		s.compact[c.Name] = "compact: " + err.Error()
	default:
		s.compact[c.Name] = fmt.Sprintf("compact (Log.Compact, Compress: true): %.1f bytes/event after, %.1f before (only sealed segments are compacted)",
			float64(after)/float64(n), float64(before)/float64(n))
	}
}

// countSum is the sum of Payload.Count over the data set (read check).
func (d *Dataset) countSum() int64 {
	var sum int64
	for i := range d.N {
		sum += int64(i % 100)
	}
	return sum
}

// statser is implemented by stores that can describe their writer's
// behaviour (evlog: group sizes and fsync latency).
type statser interface{ Stats() string }

// single runs workload 2 with the given number of writers on a fresh
// directory, then checks that a full read returns every acknowledged event.
func (s *Suite) single(c *Contestant, run, writers int, id string) {
	dir, err := s.freshDir(c, id, run)
	if err != nil {
		s.failAll(c, []string{id}, err)
		return
	}
	defer os.RemoveAll(dir)
	s.logf("run %d: %s: single appends, %d writer(s), %v", run+1, c.Name, writers, s.cfg.Dur)
	st, err := c.Open(dir, writers)
	if err != nil {
		s.failAll(c, []string{id}, fmt.Errorf("open: %w", err))
		return
	}
	var (
		total    atomic.Int64
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(s.cfg.Dur)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := "w-" + strconv.Itoa(w)
			// Each writer appends at least once before it reads the
			// clock: one first scheduled after the deadline (a loaded
			// machine) still appends, so the rate is never 0.
			for v := 1; ; v++ {
				e := Ev{Stream: stream, Version: uint64(v), Data: payloadFor(v)}
				if err := st.Append(&e); err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("writer %d, append %d: %w", w, v, err) })
					return
				}
				total.Add(1)
				if !time.Now().Before(deadline) {
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var note string
	if ss, ok := st.(statser); ok {
		note = ss.Stats()
	}
	if err := st.Close(); err != nil && firstErr == nil {
		firstErr = fmt.Errorf("close: %w", err)
	}
	if firstErr != nil {
		s.res.record(c.Name, id, 0, firstErr)
		s.logf("  %s: %v", c.Name, firstErr)
		return
	}
	n := total.Load()
	// Read back what was acknowledged.
	st, err = c.Open(dir, 1)
	if err == nil {
		var got int
		got, err = st.ReadAll(func(uint64, *Payload) {})
		err = errors.Join(err, st.Close())
		if err == nil && int64(got) != n {
			err = fmt.Errorf("read back %d events, %d appends were acknowledged", got, n)
		}
	}
	if err != nil {
		err = fmt.Errorf("read-back: %w", err)
	}
	s.res.record(c.Name, id, float64(n)/elapsed.Seconds(), err)
	if err == nil && note != "" {
		smp := s.res.sample(c.Name, id)
		smp.RunNotes = append(smp.RunNotes, note)
	}
}
