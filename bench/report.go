package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Machine describes where the suite ran.
type Machine struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	Memory     string `json:"memory"`
	GoVersion  string `json:"go_version"`
	OS         string `json:"os"`
	Kernel     string `json:"kernel"`
	LoadStart  string `json:"loadavg_start"`
	LoadEnd    string `json:"loadavg_end,omitempty"`
	Scratch    string `json:"scratch_dir"`
	Filesystem string `json:"scratch_filesystem"`
	Date       string `json:"date"`
}

func machineInfo(scratch string) Machine {
	m := Machine{
		CPU:       "unknown",
		Cores:     runtime.NumCPU(),
		GoVersion: runtime.Version(),
		OS:        runtime.GOOS + "/" + runtime.GOARCH,
		Scratch:   scratch,
		Date:      time.Now().UTC().Format("2006-01-02 15:04 MST"),
	}
	if v, ok := procField("/proc/cpuinfo", "model name"); ok {
		m.CPU = v
	}
	if v, ok := procField("/proc/meminfo", "MemTotal"); ok {
		m.Memory = v
		var kb int64
		if _, err := fmt.Sscanf(v, "%d kB", &kb); err == nil {
			m.Memory = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Filesystem = filesystemOf(scratch)
	m.LoadStart = loadAvg()
	return m
}

// loadAvg returns the 1, 5 and 15 minute load averages (the machine is
// shared: a high load means noisy numbers).
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// procField returns the value of the first "key : value" line of a /proc file.
func procField(path, key string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// filesystemOf returns "type (device)" of the mount holding path.
func filesystemOf(path string) string {
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return "unknown"
	}
	abs, _ := filepath.Abs(path)
	best, out := "", "unknown"
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, out = mp, f[2]+" ("+f[0]+" on "+mp+")"
		}
	}
	return out
}

// Row is one contestant's line in one workload's table.
type Row struct {
	Contestant string    `json:"contestant"`
	Median     float64   `json:"median,omitempty"`
	Min        float64   `json:"min,omitempty"`
	Max        float64   `json:"max,omitempty"`
	Values     []float64 `json:"values,omitempty"`
	VsRaw      float64   `json:"vs_raw,omitempty"` // median / raw's median
	Ratio64    float64   `json:"ratio_64_to_1,omitempty"`
	NA         string    `json:"na,omitempty"`
	Error      string    `json:"error,omitempty"`
	Notes      []string  `json:"notes,omitempty"`
}

// Table is one workload's results.
type Table struct {
	Workload
	Rows []Row `json:"rows"`
}

// Report is the whole output (-json prints it).
type Report struct {
	Machine    Machine           `json:"machine"`
	Config     map[string]any    `json:"config"`
	Tables     []Table           `json:"tables"`
	Compact    map[string]string `json:"compact,omitempty"`
	Durability map[string]string `json:"durability"`
	DidNotRun  []DidNotRun       `json:"did_not_run"`
	Elapsed    string            `json:"elapsed"`
	// Charts maps a workload ID to its SVG chart's path (-charts).
	Charts map[string]string `json:"charts,omitempty"`
}

func buildReport(cfg Config, m Machine, contestants []*Contestant, res Results, compact map[string]string, elapsed time.Duration) *Report {
	r := &Report{
		Machine: m,
		Config: map[string]any{
			"n": cfg.N, "runs": cfg.Runs, "dur": cfg.Dur.String(), "batch": cfg.BatchSize,
			"writers": cfg.Writers, "stateat_targets": cfg.Targets, "aggregate_reps": cfg.Reps,
			"payload_bytes": payloadSize(),
		},
		Compact:    compact,
		Durability: map[string]string{},
		DidNotRun:  didNotRun,
		Elapsed:    elapsed.Round(time.Second).String(),
	}
	for _, c := range contestants {
		r.Durability[c.Name] = c.Durability
	}
	for _, w := range workloads {
		if !cfg.wants(w.ID) {
			continue
		}
		t := Table{Workload: w}
		var rawMed float64
		if s := res["raw"][w.ID]; s != nil && len(s.Values) > 0 && s.Err == "" {
			rawMed = s.median()
		}
		for _, c := range contestants {
			row := Row{Contestant: c.Name}
			s := res[c.Name][w.ID]
			switch {
			case s == nil:
				row.Error = "not measured"
			case s.Err != "":
				row.Error = s.Err
			case s.NA != "":
				row.NA = s.NA
			case len(s.Values) > 0:
				row.Values = s.Values
				row.Median = s.median()
				row.Min, row.Max = slices.Min(s.Values), slices.Max(s.Values)
				if rawMed > 0 {
					row.VsRaw = row.Median / rawMed
				}
			}
			if s != nil && len(row.Values) > 0 {
				if n := s.medianNote(); n != "" {
					row.Notes = []string{"median run: " + n}
				}
			}
			if w.ID == WSingle64 && row.Median > 0 {
				if one := res[c.Name][WSingle1]; one != nil && len(one.Values) > 0 && one.Err == "" {
					row.Ratio64 = row.Median / one.median()
				}
			}
			t.Rows = append(t.Rows, row)
		}
		r.Tables = append(r.Tables, t)
	}
	return r
}

func (r *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeText prints the report as Markdown (so RESULTS.md can hold it as is).
func (r *Report) writeText(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "# evlog side-by-side benchmark\n\n")
	fmt.Fprintf(w, "- machine: %s, %d cores, %s RAM, %s, kernel %s\n", m.CPU, m.Cores, m.Memory, m.OS, m.Kernel)
	fmt.Fprintf(w, "- Go: %s\n- date: %s\n- scratch: %s, %s\n", m.GoVersion, m.Date, m.Scratch, m.Filesystem)
	fmt.Fprintf(w, "- load average (1/5/15 min; the machine is shared): %s at the start, %s at the end\n", m.LoadStart, m.LoadEnd)
	fmt.Fprintf(w, "- config: n=%v runs=%v dur=%v batch=%v writers=%v stateat targets=%v aggregate reps=%v payload=%v B msgpack\n",
		r.Config["n"], r.Config["runs"], r.Config["dur"], r.Config["batch"], r.Config["writers"],
		r.Config["stateat_targets"], r.Config["aggregate_reps"], r.Config["payload_bytes"])
	fmt.Fprintf(w, "- every cell: median of the runs [min–max]; ×raw = median ÷ raw's median; total time %s\n", r.Elapsed)
	for _, t := range r.Tables {
		better := "lower is better"
		if t.HigherIsBetter {
			better = "higher is better"
		}
		fmt.Fprintf(w, "\n## %s (%s, %s)\n\n%s.\n\n", t.Title, t.Unit, better, t.Measures)
		if p := r.Charts[t.ID]; p != "" {
			fmt.Fprintf(w, "![%s: ×raw per contestant](%s)\n\n", t.Title, p)
		}
		extra := t.ID == WSingle64
		if extra {
			fmt.Fprintf(w, "| contestant | median | min–max | ×raw | 64/1 | notes |\n|---|---:|---:|---:|---:|---|\n")
		} else {
			fmt.Fprintf(w, "| contestant | median | min–max | ×raw | notes |\n|---|---:|---:|---:|---|\n")
		}
		for _, row := range t.Rows {
			med, rng, vs, ratio := "", "", "", ""
			notes := strings.Join(row.Notes, "; ")
			switch {
			case row.Error != "":
				med = "error"
				notes = joinNonEmpty("; ", "ERROR: "+oneLine(row.Error), notes)
			case row.NA != "":
				med = "n/a"
				notes = joinNonEmpty("; ", row.NA, notes)
			default:
				med = formatValue(t.Unit, row.Median)
				rng = formatValue(t.Unit, row.Min) + "–" + formatValue(t.Unit, row.Max)
				if row.VsRaw > 0 {
					vs = formatRatio(row.VsRaw)
				}
				if row.Ratio64 > 0 {
					ratio = fmt.Sprintf("%.1f×", row.Ratio64)
				}
			}
			if extra {
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", row.Contestant, med, rng, vs, ratio, notes)
			} else {
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", row.Contestant, med, rng, vs, notes)
			}
		}
		if t.ID == WDisk {
			fmt.Fprintln(w)
			for _, name := range sortedKeys(r.Compact) {
				fmt.Fprintf(w, "- %s: %s\n", name, r.Compact[name])
			}
		}
	}
	fmt.Fprintf(w, "\n## durability (what \"fsync before ack\" means for each)\n\n")
	for _, name := range sortedKeys(r.Durability) {
		fmt.Fprintf(w, "- %s: %s\n", name, r.Durability[name])
	}
	fmt.Fprintf(w, "\n## did not run\n\n")
	if len(r.DidNotRun) == 0 {
		fmt.Fprintf(w, "(none)\n")
	}
	for _, d := range r.DidNotRun {
		fmt.Fprintf(w, "- %s (modules %s): `%s` fails:\n\n", d.Name, strings.Join(d.Modules, ", "), d.Command)
		fmt.Fprintf(w, "  ```\n")
		for _, l := range strings.Split(d.Error, "\n") {
			fmt.Fprintf(w, "  %s\n", l)
		}
		fmt.Fprintf(w, "  ```\n")
	}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return order(a) - order(b) })
	return keys
}

// order sorts contestant names as the registry does.
func order(name string) int {
	for _, c := range registry {
		if c.Name == name {
			return c.Order
		}
	}
	return 1 << 20
}

func joinNonEmpty(sep string, parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, sep)
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// formatRatio keeps two significant digits for ratios far below 1.
func formatRatio(r float64) string {
	if r < 0.1 {
		return fmt.Sprintf("%.2g", r)
	}
	return fmt.Sprintf("%.2f", r)
}

// formatValue renders a value of a unit compactly.
func formatValue(unit string, v float64) string {
	switch unit {
	case "events/s":
		switch {
		case v >= 1e6:
			return fmt.Sprintf("%.2fM", v/1e6)
		case v >= 1e3:
			return fmt.Sprintf("%.1fk", v/1e3)
		}
		return fmt.Sprintf("%.0f", v)
	case "latency":
		d := time.Duration(v * float64(time.Second))
		switch {
		case d >= time.Second:
			return fmt.Sprintf("%.2fs", d.Seconds())
		case d >= time.Millisecond:
			return fmt.Sprintf("%.1fms", float64(d)/1e6)
		}
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case "bytes/event":
		return fmt.Sprintf("%.1f B", v)
	}
	return fmt.Sprintf("%g", v)
}

// payloadSize is the encoded size of a typical payload.
func payloadSize() int {
	p := payloadFor(12345)
	b, err := newCodec().encode(&p)
	if err != nil {
		return -1
	}
	return len(b)
}
