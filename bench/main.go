// Command bench runs evlog side by side with other embedded stores on the
// same workloads and prints one table (or, with -json, one JSON document).
//
//	cd bench && go run . -n 1000000
//	cd bench && go run . -quick
//
// See README.md for the workloads and the fairness notes.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		n       = fs.Int("n", 1_000_000, "events in the data set (workloads 1, 3-6)")
		runs    = fs.Int("runs", 3, "runs of every workload; the report shows the median and min–max")
		dur     = fs.Duration("dur", 5*time.Second, "duration of each single-append workload")
		quick   = fs.Bool("quick", false, "preset: -n 100000 -runs 1 -dur 1s (flags given explicitly win)")
		only    = fs.String("only", "", "comma-separated contestants (default all): "+strings.Join(contestantNames(), ","))
		work    = fs.String("work", "", "comma-separated workloads (default all): "+strings.Join(workloadIDs(), ","))
		dir     = fs.String("dir", "", "scratch directory parent (default os.TempDir()); the suite's own subdirectory is removed at the end")
		asJSON  = fs.Bool("json", false, "print one JSON document instead of the table")
		targets = fs.Int("targets", 20, "workload 4: random past times per run")
		reps    = fs.Int("reps", 20, "workload 5: repetitions per run")
		ctln    = fs.Int("ctln", 0, "workload 10: events in the log (default -n)")
		ctlreps = fs.Int("ctlreps", 3, "workload 10: timed runs of each evlogctl command per run")
		charts  = fs.String("charts", "", "write one SVG bar chart (×raw) per workload into this directory, and link them from the report")
		quiet   = fs.Bool("q", false, "no progress lines on stderr")
		cpuprof = fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
		memprof = fs.String("memprofile", "", "write the allocations of the whole run (pprof allocs profile) to this file at the end")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *quick {
		if !set["n"] {
			*n = 100_000
		}
		if !set["runs"] {
			*runs = 1
		}
		if !set["dur"] {
			*dur = time.Second
		}
	}
	cfg := Config{N: *n, Runs: *runs, Dur: *dur, Dir: *dir, Targets: *targets, Reps: *reps,
		BatchSize: 1000, Writers: 64, CtlN: *ctln, CtlReps: *ctlreps}
	if cfg.CtlN == 0 {
		cfg.CtlN = cfg.N
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	if cfg.N < 10 || cfg.Runs < 1 || cfg.Dur <= 0 || cfg.Targets < 1 || cfg.Reps < 1 || cfg.CtlN < 40 || cfg.CtlReps < 1 {
		return errors.New("need -n >= 10, -runs >= 1, -dur > 0, -targets >= 1, -reps >= 1, -ctln >= 40, -ctlreps >= 1")
	}
	var err error
	if cfg.Work, err = parseList(*work, workloadIDs()); err != nil {
		return fmt.Errorf("-work: %w", err)
	}
	names, err := parseList(*only, contestantNames())
	if err != nil {
		return fmt.Errorf("-only: %w", err)
	}
	if *cpuprof != "" {
		f, err := os.Create(*cpuprof)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *memprof != "" {
		runtime.MemProfileRate = 64 << 10 // the heap's size matters here, not every small object
	}
	rep, err := Bench(cfg, names)
	if err != nil {
		return err
	}
	if *memprof != "" {
		f, err := os.Create(*memprof)
		if err != nil {
			return err
		}
		err = errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
		if err != nil {
			return fmt.Errorf("-memprofile: %w", err)
		}
	}
	if *charts != "" {
		if err := rep.writeCharts(*charts, "."); err != nil {
			return fmt.Errorf("-charts: %w", err)
		}
	}
	if *asJSON {
		return rep.writeJSON(stdout)
	}
	rep.writeText(stdout)
	return nil
}

// Bench runs the suite with the named contestants (none: all) and returns
// the report.
func Bench(cfg Config, names []string) (*Report, error) {
	var contestants []*Contestant
	for _, c := range sortedRegistry() {
		if len(names) == 0 || slices.Contains(names, c.Name) {
			contestants = append(contestants, c)
		}
	}
	parent := cfg.Dir
	if parent == "" {
		parent = os.TempDir()
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	scratch, err := os.MkdirTemp(parent, "evlog-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	s := &Suite{cfg: cfg, scratch: scratch, res: Results{}, compact: map[string]string{}}
	m := machineInfo(scratch)
	start := time.Now()
	if err := s.Run(contestants); err != nil {
		return nil, err
	}
	m.LoadEnd = loadAvg()
	return buildReport(cfg, m, contestants, s.res, s.compact, time.Since(start)), nil
}

func sortedRegistry() []*Contestant {
	cs := slices.Clone(registry)
	slices.SortStableFunc(cs, func(a, b *Contestant) int { return a.Order - b.Order })
	return cs
}

func contestantNames() []string {
	var out []string
	for _, c := range sortedRegistry() {
		out = append(out, c.Name)
	}
	return out
}

func workloadIDs() []string {
	var out []string
	for _, w := range workloads {
		out = append(out, w.ID)
	}
	return out
}

func parseList(s string, valid []string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var out []string
	for _, x := range strings.Split(s, ",") {
		x = strings.TrimSpace(x)
		if x == "" {
			continue
		}
		if !slices.Contains(valid, x) {
			return nil, fmt.Errorf("unknown %q (valid: %s)", x, strings.Join(valid, ", "))
		}
		out = append(out, x)
	}
	return out, nil
}
