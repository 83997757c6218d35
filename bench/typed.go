package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// multiStreams is the number of streams of workload 8's batches.
const multiStreams = 1000

var multiNames = func() []string {
	out := make([]string, multiStreams)
	for i := range out {
		out[i] = "m-" + strconv.Itoa(i)
	}
	return out
}()

// typedEvent fills e with event i of workload 7 (id WBatch1: batch k is
// stream b-k, versions 1..batch) or 8 (WBatchMulti: event i is version
// i/1000+1 of stream m-(i%1000)). Recorded times are 1 ms apart.
func typedEvent(id string, i, batch int, e *Ev) {
	e.Time = baseTime.Add(time.Duration(i) * time.Millisecond)
	e.Data = payloadFor(i)
	if id == WBatch1 {
		e.Stream, e.Version = "b-"+strconv.Itoa(i/batch), uint64(i%batch+1)
		return
	}
	e.Stream, e.Version = multiNames[i%multiStreams], uint64(i/multiStreams+1)
}

// reopens is the number of timed opens per run of workload 9.
const reopens = 5

// turnBatches is how many batches a contestant appends in one turn of
// workloads 7 and 8.
const turnBatches = 10

// typedRun is one contestant's store in workload 7 or 8.
type typedRun struct {
	c       *Contestant
	dir     string
	st      Store
	elapsed time.Duration
	failed  bool
}

// typedBatches runs workload 7 (and then 9 on each store) or 8 for the
// contestants cs at once, each on a fresh directory: the contestants take
// turns of turnBatches batches (in an order rotated each turn), so that
// the disk's fsync latency, which drifts by tens of percent over seconds
// on a shared machine, weighs on all of them alike and the ×raw ratios
// compare like with like. Each is timed over its own append calls only.
// Contestants with background I/O (Contestant.Background) are given here
// alone (turnGroups).
func (s *Suite) typedBatches(cs []*Contestant, run int, id string) {
	ids := []string{id}
	if id == WBatch1 {
		ids = append(ids, WReopen)
	}
	var runs []*typedRun
	for _, c := range cs {
		dir, err := s.freshDir(c, id, run)
		if err != nil {
			s.failAll(c, ids, err)
			continue
		}
		st, err := c.Open(dir, 1)
		if err != nil {
			os.RemoveAll(dir)
			s.failAll(c, ids, fmt.Errorf("open: %w", err))
			continue
		}
		runs = append(runs, &typedRun{c: c, dir: dir, st: st})
	}
	defer func() {
		for _, r := range runs {
			os.RemoveAll(r.dir)
		}
	}()
	n := s.cfg.N
	s.logf("run %d: %s: %d events in batches of %d, %d contestants taking turns of %d batches", run+1, id, n, s.cfg.BatchSize, len(runs), turnBatches)
	evs := make([]Ev, 0, s.cfg.BatchSize)
	turn := turnBatches * s.cfg.BatchSize
	for t, from := 0, 0; from < n; t, from = t+1, from+turn {
		for k := range runs {
			r := runs[(k+t)%len(runs)]
			if r.failed {
				continue
			}
			for i := from; i < min(from+turn, n); i += s.cfg.BatchSize {
				evs = evs[:0]
				for j := i; j < min(i+s.cfg.BatchSize, n); j++ {
					evs = append(evs, Ev{})
					typedEvent(id, j, s.cfg.BatchSize, &evs[len(evs)-1])
				}
				t0 := time.Now()
				err := r.st.AppendBatch(evs)
				r.elapsed += time.Since(t0)
				if err != nil {
					r.st.Close()
					r.failed = true
					s.failAll(r.c, ids, fmt.Errorf("append batch at event %d: %w", i, err))
					break
				}
			}
		}
	}
	for _, r := range runs {
		if r.failed {
			continue
		}
		if s.cfg.wants(id) {
			s.res.record(r.c.Name, id, float64(n)/r.elapsed.Seconds(), nil)
		}
		if err := r.st.Close(); err != nil {
			r.failed = true
			s.failAll(r.c, ids, fmt.Errorf("close after append: %w", err))
		}
	}
	if id != WBatch1 || !s.cfg.wants(WReopen) {
		return
	}
	for _, r := range runs {
		if !r.failed {
			s.reopen(r.c, r.dir)
		}
	}
}

// reopen runs workload 9 on the store workload 7 wrote in dir.
func (s *Suite) reopen(c *Contestant, dir string) {
	if c.NoReopen != "" {
		s.res.record(c.Name, WReopen, 0, notApplicable(c.NoReopen))
		return
	}
	lats := make([]float64, 0, reopens)
	for range reopens {
		t0 := time.Now()
		st, err := c.Open(dir, 1)
		d := time.Since(t0)
		if err == nil {
			err = st.Close()
		}
		if err != nil {
			s.res.record(c.Name, WReopen, 0, fmt.Errorf("reopen: %w", err))
			return
		}
		lats = append(lats, d.Seconds())
	}
	s.res.record(c.Name, WReopen, median(lats), nil)
}

// ctlEnv is what a contestant's CtlState hook gets: the evlogctl binary,
// a fresh directory, the log's size and the number of timed runs.
type ctlEnv struct {
	bin  string
	dir  string
	n    int
	reps int
	logf func(format string, args ...any)
}

// buildEvlogctl builds cmd/evlogctl once into the scratch directory (from
// this module, so with the replaced evlog of this checkout).
func (s *Suite) buildEvlogctl() error {
	s.ctlBin = filepath.Join(s.scratch, "evlogctl")
	s.logf("building evlogctl")
	cmd := exec.Command("go", "build", "-o", s.ctlBin, "github.com/evlog/evlog/cmd/evlogctl")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build cmd/evlogctl: %w\n%s", err, out)
	}
	return nil
}

// ctlState runs workload 10 for c on a fresh directory.
func (s *Suite) ctlState(c *Contestant, run int) {
	dir, err := s.freshDir(c, WCtlState, run)
	if err != nil {
		s.failAll(c, []string{WCtlState}, err)
		return
	}
	defer os.RemoveAll(dir)
	s.logf("run %d: %s: evlogctl state --at on %d events", run+1, c.Name, s.cfg.CtlN)
	with, without, err := c.CtlState(&ctlEnv{bin: s.ctlBin, dir: dir, n: s.cfg.CtlN, reps: s.cfg.CtlReps, logf: s.logf})
	s.res.record(c.Name, WCtlState, with, err)
	if err == nil {
		smp := s.res.sample(c.Name, WCtlState)
		smp.RunNotes = append(smp.RunNotes, fmt.Sprintf("--no-snapshot %s: %.1f× the snapshot time",
			formatValue("latency", without), without/with))
		s.res.record(c.Name, ctlNoSnap, without, nil)
	}
}

// ctlNoSnap holds workload 10's --no-snapshot times (JSON only; the table
// shows them in the notes).
const ctlNoSnap = "ctlstate-nosnap"

// ctlPlan is the part of `evlogctl state --format json` the suite checks.
type ctlPlan struct {
	Plan struct {
		Snapshot *struct {
			Seq uint64 `json:"seq"`
		} `json:"snapshot"`
		FromSeq uint64 `json:"from_seq"`
		ToSeq   uint64 `json:"to_seq"`
	} `json:"plan"`
	State *struct {
		Events uint64 `json:"events"`
	} `json:"state"`
}

// runCtlState runs `evlogctl state dir --at t --format json` (with
// --no-snapshot if asked), timed from start to exit, and checks that it
// folded want events starting from the snapshot at snapSeq (0: none).
func runCtlState(bin, dir string, t time.Time, noSnap bool, want, snapSeq uint64) (time.Duration, error) {
	args := []string{"state", dir, "--at", t.UTC().Format(time.RFC3339Nano), "--format", "json"}
	if noSnap {
		args = append(args, "--no-snapshot")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("evlogctl %v: %w: %s", args, err, stderr.Bytes())
	}
	var out ctlPlan
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return 0, fmt.Errorf("evlogctl %v: %w", args, err)
	}
	var got uint64
	if out.Plan.Snapshot != nil {
		got = out.Plan.Snapshot.Seq
	}
	switch {
	case out.State == nil || out.State.Events != want:
		return 0, fmt.Errorf("evlogctl %v: state %s, want %d events", args, stdout.Bytes(), want)
	case got != snapSeq:
		return 0, fmt.Errorf("evlogctl %v: started from the snapshot at seq %d, want %d", args, got, snapSeq)
	}
	return d, nil
}
