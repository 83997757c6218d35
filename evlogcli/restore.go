package evlogcli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/evlog/evlog"
)

const restoreAbout = `
Restores the backup in BACKUP (taken with evlogctl backup) into DIR, which
must be absent or empty (hidden files and lost+found are left alone), or
hold an interrupted restore, which is started over: only files that
restore provably wrote are removed, and beside any other log file the
restore refuses, naming it. The backup is checked first — its MANIFEST,
every file's size and SHA-256, every record — and a damaged one, or a
directory that is not a complete backup, is refused with the file and the
reason before anything is written.

Without a target the restored log ends where the backup does. --to-seq N
ends it at the last batch boundary at or before seq N; --to-time T at the
last batch boundary at or before the last event recorded at or before T
(a batch is never split). Snapshots after that point are left out.

The restored log gets a new log ID (a new timeline: once appended to, it
diverges from the log the backup was taken of), and its snapshots are
relabelled with it. A restore writes a RESTORING file first and removes it
last: a restore killed midway leaves a directory that every command
refuses until the restore is run again.

A snapshot the backup holds as the log held it (its bytes match the
MANIFEST) that cannot be used — over --max-snapshot-size, corrupt (damaged
before the backup was taken), or another log's — does not stop the
restore: the events and the other snapshots are restored, that snapshot
is left out (snapshots are derived from the events), and the plan and
stderr say which and why; the status is 0 (backup --verify reports the
same). A snapshot missing from the backup, or whose bytes do not match
the MANIFEST (damaged in the backup), refuses the backup as any damaged
file does.

It prints a line per file of the backup and what the restore does with it
(copy, cut: the segment the restored log ends in, or leave out), then a
summary. --dry-run checks the backup and prints the plan without writing
anything. BACKUP is only read.`

// restoreCmd is "evlogctl restore".
type restoreCmd struct {
	toSeq   uint64
	toTime  string
	dryRun  bool
	maxSnap int64
	format  string
}

// restoreJSON is restore's JSON document: the plan, carried out unless
// dry_run.
type restoreJSON struct {
	Backup   string `json:"backup"`
	Dir      string `json:"dir"`
	DryRun   bool   `json:"dry_run"`
	LogID    string `json:"log_id"`
	NewLogID string `json:"new_log_id"` // "" with --dry-run
	// BackupSeq/BackupTime: where the backup ends; EndSeq/EndTime: where
	// the restored log ends (times null when there is no event).
	BackupSeq  uint64            `json:"backup_seq"`
	BackupTime *string           `json:"backup_time"`
	EndSeq     uint64            `json:"end_seq"`
	EndTime    *string           `json:"end_time"`
	Target     string            `json:"target"`
	CutEvents  uint64            `json:"cut_events"`
	Files      []restoreFileJSON `json:"files"`
}

type restoreFileJSON struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"`   // "segment" or "snapshot"
	Action string `json:"action"` // "copy", "cut" or "leave out"
	Size   int64  `json:"size"`
	// Segments: the seqs restored (first_seq > last_seq: none, a
	// segment cut to its header). Snapshots: seq.
	FirstSeq uint64 `json:"first_seq,omitempty"`
	LastSeq  uint64 `json:"last_seq,omitempty"`
	Seq      uint64 `json:"seq,omitempty"`
	// Reason: why a snapshot within the restored range is left out
	// (over --max-snapshot-size, corrupt, another log's); absent
	// otherwise.
	Reason string `json:"reason,omitempty"`
}

func runRestore(ctx context.Context, e *env, args []string) error {
	var c restoreCmd
	f := newFlags("restore", "restore BACKUP DIR [--to-seq N | --to-time TIME] [--dry-run] [--max-snapshot-size BYTES] [--format text|json]", restoreAbout)
	f.Uint64Var(&c.toSeq, "to-seq", 0, "end the restored log at the last batch boundary at or before seq `N`")
	f.StringVar(&c.toTime, "to-time", "", "end the restored log at the last batch boundary at or before the events recorded at or before `TIME`")
	f.BoolVar(&c.dryRun, "dry-run", false, "check the backup and print the plan; write nothing")
	f.Int64Var(&c.maxSnap, "max-snapshot-size", 0, "leave out a snapshot that decompresses to more than `BYTES` (default 64 MiB): give the log's Options.Snapshot.MaxRawSize")
	f.format(&c.format, "text", "json")
	pos, err := f.parse(e, args, "BACKUP", "DIR")
	if err != nil {
		return err
	}
	var opts evlog.RestoreOptions
	switch {
	case f.isSet("to-seq") && f.isSet("to-time"):
		return usagef("restore", "--to-seq and --to-time exclude each other")
	case f.isSet("to-seq"):
		if c.toSeq == 0 {
			return usagef("restore", "--to-seq 0: want a seq of at least 1")
		}
		opts.ToSeq = c.toSeq
	case f.isSet("to-time"):
		t, err := parseTime(c.toTime, e.now())
		if err != nil {
			return usagef("restore", "--to-time: %v", err)
		}
		opts.ToTime = t
	}
	opts.DryRun = c.dryRun
	if c.maxSnap < 0 {
		return usagef("restore", "--max-snapshot-size %d: want a positive size in bytes", c.maxSnap)
	}
	opts.MaxSnapshotSize = c.maxSnap
	backup, dir := pos[0], pos[1]
	if same, err := samePath(backup, dir); err != nil || same {
		if err != nil {
			return fail("restore", err)
		}
		return usagef("restore", "DIR must be another directory than BACKUP")
	}
	if inside(dir, backup) {
		return usagef("restore", "DIR must not be inside BACKUP (restore never modifies BACKUP)")
	}
	return fail("restore", c.run(ctx, e, backup, dir, opts))
}

func (c *restoreCmd) run(ctx context.Context, e *env, backup, dir string, opts evlog.RestoreOptions) error {
	plan, err := evlog.Restore(ctx, backup, dir, opts)
	if err != nil {
		return err
	}
	out := restoreJSON{Backup: backup, Dir: dir, DryRun: opts.DryRun, LogID: plan.LogID, NewLogID: plan.NewLogID,
		BackupSeq: plan.BackupSeq, BackupTime: optTime(plan.BackupTime), EndSeq: plan.EndSeq, EndTime: optTime(plan.EndTime),
		Target: plan.Target, CutEvents: plan.CutEvents, Files: []restoreFileJSON{}}
	for _, f := range plan.Files {
		out.Files = append(out.Files, restoreFileJSON{Name: f.Name, Kind: f.Kind, Action: f.Action, Size: f.Size,
			FirstSeq: f.FirstSeq, LastSeq: f.LastSeq, Seq: f.Seq, Reason: f.Reason})
	}
	// Never silently: what was left out, and why, also on stderr.
	for _, f := range plan.SnapshotsLeftOut() {
		fmt.Fprintf(e.stderr, "warning: snapshot %s (seq %d) left out: %s\n", f.Name, f.Seq, f.Reason)
	}
	if c.format == "json" {
		return writeJSON(e.stdout, out)
	}
	return out.text(e)
}

func (r *restoreJSON) text(e *env) error {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tFILE\tSEQS\tBYTES")
	for _, f := range r.Files {
		var seqs string
		switch {
		case f.Kind == "snapshot":
			seqs = fmt.Sprintf("%d", f.Seq)
		case f.Action == "leave out":
			seqs = fmt.Sprintf("%d..", f.FirstSeq)
		case f.LastSeq < f.FirstSeq:
			seqs = "none"
		default:
			seqs = fmt.Sprintf("%d..%d", f.FirstSeq, f.LastSeq)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", f.Action, f.Name, seqs, f.Size)
	}
	tw.Flush()
	leftOut := 0
	for _, f := range r.Files {
		if f.Reason != "" {
			fmt.Fprintf(&b, "left out %s: %s\n", f.Name, f.Reason)
			leftOut++
		}
	}
	verb := "restored"
	if r.DryRun {
		verb = "would restore"
	}
	seqs := "no events"
	if r.EndSeq > 0 {
		seqs = fmt.Sprintf("seqs 1..%d%s", r.EndSeq, timeSuffix(r.EndTime))
	}
	fmt.Fprintf(&b, "%s %s into %s: %s, target %s", verb, r.Backup, r.Dir, seqs, r.Target)
	if r.CutEvents > 0 {
		fmt.Fprintf(&b, "; %d %s of the backup (seqs %d..%d) left out", r.CutEvents, plural(int(min(r.CutEvents, 2)), "event", "events"),
			r.EndSeq+1, r.BackupSeq)
	}
	if leftOut > 0 {
		fmt.Fprintf(&b, "; %d %s left out (unusable as backed up, see above; replay folds their events again)", leftOut, plural(min(leftOut, 2), "snapshot", "snapshots"))
	}
	if r.NewLogID != "" {
		fmt.Fprintf(&b, "; new log ID %s", r.NewLogID)
	}
	b.WriteString("\n")
	_, err := e.stdout.Write([]byte(b.String()))
	return err
}
