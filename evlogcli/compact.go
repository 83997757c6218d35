package evlogcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/evlog/evlog"
)

const compactAbout = `
Merges runs of adjacent small sealed segments of the log in DIR into
segments of up to --target-size bytes (default: the log's segment size,
64MiB), and with --compress rewrites sealed segments with their records in
independently zstd-compressed blocks (reads, indexes and stream look-ups
stay transparent). The active segment is never touched. Events, seqs,
versions and times do not change: dump prints the same bytes before and
after.

Each new segment is written to a temporary file, verified, fsynced and
renamed into place, the directory fsynced, and only then are the segments
it replaces removed: killed at any instant, the log reads the same
afterwards, and running compact again completes the job.

compact is the library's Log.Compact run by a writer: it takes the log's
writer lock, so it fails with "locked" while another process writes the
log (that process can compact itself, beside its appends). --dry-run
prints the plan (which segments would be merged into which) and changes
nothing: it reads DIR as the read-only commands do (no lock, no repair of
a torn tail; beside a writer too). On a terminal (standard input),
compact asks for --yes before it changes anything; scripts (standard input
not a terminal) need not. It prints one line per group as soon as it is committed, then the
bytes before and after, and a progress bar on stderr when stderr is a
terminal. A group whose output would pass a bound of the format (a
segment written before the bounds were enforced, whose deleted events'
placeholders make it grow) is left out, as it is: "left out SEGMENT
(BYTES bytes): why and what to do", and the rest is compacted (exit 0).
Interrupted (or failing), it exits 1 saying how many groups it
had committed: those printed (with --format json, those marked
"committed"); the log reads the same either way, and running compact
again finishes the job.`

// compactCmd is "evlogctl compact".
type compactCmd struct {
	dryRun     bool
	yes        bool
	targetSize byteSize
	compress   bool
	format     string
}

// compactResult is compact's JSON document.
type compactResult struct {
	DryRun         bool               `json:"dry_run"`
	SegmentsBefore int                `json:"segments_before"`
	SegmentsAfter  int                `json:"segments_after"`
	BytesBefore    int64              `json:"bytes_before"`
	BytesAfter     *int64             `json:"bytes_after"` // null with --dry-run: known once done
	Groups         []compactGroupJSON `json:"groups"`
}

type compactGroupJSON struct {
	Output    string   `json:"output"`
	Inputs    []string `json:"inputs"`
	Bytes     int64    `json:"bytes"`     // input bytes
	Committed bool     `json:"committed"` // false with --dry-run, and for groups an interruption left undone
	// LeftOut says why the group was not written (its output would pass a
	// bound of the format; its inputs stay as they are); omitted otherwise.
	LeftOut string `json:"left_out,omitempty"`
}

func runCompact(ctx context.Context, e *env, args []string) error {
	var c compactCmd
	f := newFlags("compact", "compact DIR [--dry-run | --yes] [--target-size BYTES] [--compress] [--format text|json]", compactAbout)
	f.BoolVar(&c.dryRun, "dry-run", false, "print the plan; change nothing")
	f.BoolVar(&c.yes, "yes", false, "compact without asking (needed when standard input is a terminal)")
	f.Var(&c.targetSize, "target-size", "merge segments while the result stays at or below `BYTES` (default: the segment size, 64MiB)")
	f.BoolVar(&c.compress, "compress", false, "zstd-compress the sealed segments (in independent blocks)")
	f.format(&c.format, "text", "json")
	pos, err := f.parse(e, args, "DIR")
	if err != nil {
		return err
	}
	if !c.dryRun && !c.yes && isTerminal(e.stdin) {
		return usagef("compact", "compact rewrites the log's sealed segments: run it with --dry-run to see the plan, then with --yes")
	}
	if f.isSet("target-size") && c.targetSize < evlog.MinSegmentSize {
		return usagef("compact", "--target-size %d: must be at least %d", c.targetSize, evlog.MinSegmentSize)
	}
	return fail("compact", c.run(ctx, e, pos[0]))
}

func (c *compactCmd) run(ctx context.Context, e *env, dir string) error {
	var (
		l   *evlog.Log
		err error
	)
	if c.dryRun {
		// A plan changes nothing: not even what a writer's open repairs
		// (a torn tail, temporaries), and it needs no lock.
		if err := requireDir(dir); err != nil {
			return err
		}
		l, err = evlog.OpenReadOnly(dir, evlog.Options{Clock: e.now})
	} else {
		l, err = openExisting(e, "compact", dir)
	}
	if err != nil {
		return err
	}
	opts := evlog.CompactOptions{TargetSize: int64(c.targetSize), Compress: c.compress, DryRun: c.dryRun}
	bar := newProgressBar(e.stderr)
	if bar != nil && !c.dryRun {
		opts.Progress = bar.update
	}
	var printErr error
	if c.format != "json" {
		// One line per group as it commits: whatever happens next, the
		// lines printed are the groups done.
		opts.Committed = func(g evlog.CompactGroup) {
			bar.interrupt()
			if printErr == nil {
				_, printErr = fmt.Fprintf(e.stdout, "merged %s (%d bytes) into %s\n", strings.Join(g.Inputs, " "), g.Bytes, g.Output)
			}
		}
	}
	rep, err := l.Compact(ctx, opts)
	bar.done()
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	out := compactResult{DryRun: c.dryRun, SegmentsBefore: rep.SegmentsBefore, SegmentsAfter: rep.SegmentsAfter,
		BytesBefore: rep.BytesBefore, Groups: []compactGroupJSON{}}
	merged, committed := 0, 0
	var leftOut strings.Builder // text: a line per group left out
	for _, g := range rep.Groups {
		j := compactGroupJSON{Output: g.Output, Inputs: g.Inputs, Bytes: g.Bytes, Committed: g.Committed}
		if g.LeftOut != nil {
			j.LeftOut = g.LeftOut.Error()
			fmt.Fprintf(&leftOut, "left out %s (%d bytes): %s\n", strings.Join(g.Inputs, " "), g.Bytes, oneLine(j.LeftOut))
		}
		out.Groups = append(out.Groups, j)
		merged += len(g.Inputs) - 1
		if g.Committed {
			committed++
		}
	}
	if c.format != "json" && leftOut.Len() > 0 {
		if _, werr := io.WriteString(e.stdout, leftOut.String()); printErr == nil {
			printErr = werr
		}
	}
	if err != nil {
		if c.format == "json" && len(rep.Groups) > 0 {
			if jerr := writeJSON(e.stdout, out); jerr != nil {
				err = errors.Join(err, jerr)
			}
		}
		if len(rep.Groups) > 0 && !c.dryRun {
			listed := "printed above"
			if c.format == "json" {
				listed = `marked "committed"`
			}
			err = fmt.Errorf("stopped after committing %d of %d groups (%s; the log reads the same, run compact again to finish): %w", committed, len(rep.Groups), listed, err)
		}
		return errors.Join(err, printErr)
	}
	if printErr != nil {
		return printErr
	}
	if !c.dryRun {
		out.BytesAfter = &rep.BytesAfter
	}
	if c.dryRun {
		out.SegmentsAfter = rep.SegmentsBefore - merged
	}
	if c.format == "json" {
		return writeJSON(e.stdout, out)
	}
	var b strings.Builder
	if c.dryRun {
		for _, g := range out.Groups {
			fmt.Fprintf(&b, "would merge %s (%d bytes) into %s\n", strings.Join(g.Inputs, " "), g.Bytes, g.Output)
		}
	}
	fmt.Fprintf(&b, "before: %d segments, %d bytes\n", out.SegmentsBefore, out.BytesBefore)
	switch {
	case c.dryRun:
		fmt.Fprintf(&b, "after: %d segments (dry run: nothing changed)\n", out.SegmentsAfter)
	default:
		fmt.Fprintf(&b, "after: %d segments, %d bytes\n", out.SegmentsAfter, *out.BytesAfter)
	}
	_, err = io.WriteString(e.stdout, b.String())
	return err
}

// progressBar draws compaction progress on a terminal.
type progressBar struct {
	w    io.Writer
	last int // last percentage drawn
}

// newProgressBar returns a bar drawing on w, or nil when w is not a
// terminal.
func newProgressBar(w io.Writer) *progressBar {
	if !isTerminal(w) {
		return nil
	}
	return &progressBar{w: w, last: -1}
}

// isTerminal reports whether f (standard input, output or error) is a
// terminal: an *os.File that is a character device, or a test double that
// says so (terminal() true).
func isTerminal(f any) bool {
	if t, ok := f.(interface{ terminal() bool }); ok {
		return t.terminal()
	}
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	fi, err := file.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *progressBar) update(done, total int64) {
	if total <= 0 {
		return
	}
	pct := int(done * 100 / total)
	if pct == p.last {
		return
	}
	p.last = pct
	const width = 30
	n := pct * width / 100
	fmt.Fprintf(p.w, "\rcompacting [%s%s] %3d%% %s / %s", strings.Repeat("#", n), strings.Repeat(" ", width-n), pct, mib(done), mib(total))
}

// done ends the bar's line; a nil bar does nothing.
func (p *progressBar) done() {
	if p != nil && p.last >= 0 {
		fmt.Fprint(p.w, "\n")
	}
}

// interrupt ends the bar's line before other output (the next update
// redraws it); a nil bar does nothing.
func (p *progressBar) interrupt() {
	if p != nil && p.last >= 0 {
		fmt.Fprint(p.w, "\n")
		p.last = -1
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
