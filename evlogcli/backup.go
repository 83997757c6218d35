package evlogcli

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/evlog/evlog"
)

const backupAbout = `
Takes a backup of the log in DIR into DEST while a writer may be appending
to it: a copy consistent at one seq S (every event up to S, nothing after,
whole batches only), the snapshots at or before S, and a MANIFEST (log ID,
S, every file's size and SHA-256) written last and atomically. A directory
without a valid MANIFEST is never taken for a backup.

DIR is opened read-only, like dump: backup never modifies, creates or
locks anything in it, and backs up the log as a reader sees it: every
batch the writer has committed (under --sync always, made durable).
Sealed segments and snapshots (files that never change) are hard-linked
into DEST when it is on the same file system, else copied and fsynced;
the newest segment is copied up to the end of S's batch. A hard-linked
backup is instant and takes no space, but it shares the disk of the log:
it protects against mistakes (a bad deploy, a deleted directory), not
against the loss of the disk. Use --copy, or a DEST on another disk or
machine, for that.

DEST must be absent or empty (or hold an interrupted backup, which is
replaced), unless --incremental: then a backup of the same log already in
DEST is brought up to date, copying only what is new; the result is the
same as a full backup.

  backup DIR DEST                 one backup, then a summary line
  backup DIR DEST --follow        a new incremental pass every --interval
                                  until SIGINT or SIGTERM (exit 0): a line
                                  per pass that changed something; failed
                                  passes are reported on stderr and retried.
                                  Restarted after a crash, it resumes.
  backup --verify DEST            re-check every file, checksum and record of
                                  the backup (reads only); a snapshot that
                                  restore would leave out (over
                                  --max-snapshot-size, corrupt when backed
                                  up, another log's) is a warning, status 0
  backup --status DEST            where the backup ends, and how far it lags
                                  its source log (reads only)`

// backupCmd is "evlogctl backup".
type backupCmd struct {
	incremental bool
	copy        bool
	verify      bool
	status      bool
	follow      bool
	interval    time.Duration
	maxSnap     int64
	format      string
}

// backupJSON is backup's JSON document (one per pass with --follow).
type backupJSON struct {
	Dir         string   `json:"dir"`
	Dest        string   `json:"dest"`
	Seq         uint64   `json:"seq"`
	Time        *string  `json:"time"` // null: an empty backup (seq 0)
	Files       int      `json:"files"`
	Linked      int      `json:"linked"`
	Copied      int      `json:"copied"`
	Kept        int      `json:"kept"`
	BytesCopied int64    `json:"bytes_copied"`
	BytesLinked int64    `json:"bytes_linked"`
	Removed     []string `json:"removed"`
	Skipped     []string `json:"skipped"`
}

// backupVerifyJSON is backup --verify's JSON document.
type backupVerifyJSON struct {
	Dest      string  `json:"dest"`
	OK        bool    `json:"ok"`
	LogID     string  `json:"log_id"`
	Seq       uint64  `json:"seq"`
	Time      *string `json:"time"`
	Events    uint64  `json:"events"`
	Segments  int     `json:"segments"`
	Snapshots int     `json:"snapshots"`
	Files     int     `json:"files"`
	// SnapshotsLeftOut: the snapshots restore leaves out (as its plan
	// does, with the same reason), which do not fail the check: they
	// are as the log held them, and unusable (over --max-snapshot-size,
	// corrupt before the backup was taken, another log's); [] when none.
	SnapshotsLeftOut []leftOutJSON `json:"snapshots_left_out"`
	// Problem is why the backup failed the check (null when OK).
	Problem *backupProblemJSON `json:"problem"`
}

// leftOutJSON is a snapshot that restore would leave out.
type leftOutJSON struct {
	Name   string `json:"name"`
	Seq    uint64 `json:"seq"`
	Size   int64  `json:"size"`
	Reason string `json:"reason"`
}

type backupProblemJSON struct {
	// Kind is "not-a-backup" (no valid manifest), "damaged" (a file is
	// missing, truncated, changed, or a segment does not verify; a
	// snapshot that does not verify but is unchanged is in
	// snapshots_left_out instead) or "error" (the
	// check could not be run: I/O error).
	Kind   string `json:"kind"`
	File   string `json:"file"`
	Reason string `json:"reason"`
}

// backupStatusJSON is backup --status's JSON document.
type backupStatusJSON struct {
	Dest    string  `json:"dest"`
	LogID   string  `json:"log_id"`
	Seq     uint64  `json:"seq"`
	Time    *string `json:"time"`
	Created string  `json:"created"`
	Files   int     `json:"files"`
	Bytes   int64   `json:"bytes"`
	// Source is the log the backup was taken from; SourceSeq and
	// SourceTime where it ends now; SourceError why it could not be read.
	Source      string  `json:"source"`
	SourceSeq   uint64  `json:"source_seq"`
	SourceTime  *string `json:"source_time"`
	SourceError string  `json:"source_error,omitempty"`
	LagEvents   uint64  `json:"lag_events"`
	LagSeconds  float64 `json:"lag_seconds"`
	AgeSeconds  float64 `json:"age_seconds"`
}

func runBackup(ctx context.Context, e *env, args []string) error {
	var c backupCmd
	f := newFlags("backup", "backup DIR DEST [--incremental] [--copy] [--follow [--interval D]] [--format text|json|jsonl]\n       evlogctl backup --verify DEST [--max-snapshot-size BYTES] [--format text|json]\n       evlogctl backup --status DEST [--format text|json]", backupAbout)
	f.BoolVar(&c.incremental, "incremental", false, "bring the backup of the same log in DEST up to date, copying only what is new")
	f.BoolVar(&c.copy, "copy", false, "copy every file, never hard-link (a backup that survives the loss of DIR's disk, when DEST is on another)")
	f.BoolVar(&c.follow, "follow", false, "keep DEST up to date: an incremental pass every --interval until interrupted")
	f.DurationVar(&c.interval, "interval", time.Second, "with --follow, the time between passes `D`")
	f.BoolVar(&c.verify, "verify", false, "check the backup in DEST: every file, checksum and record")
	f.BoolVar(&c.status, "status", false, "print where the backup in DEST ends and how far it lags its source")
	f.Int64Var(&c.maxSnap, "max-snapshot-size", 0, "with --verify, report as left out by restore a snapshot that decompresses to more than `BYTES` (default 64 MiB, as restore): give the log's Options.Snapshot.MaxRawSize")
	f.format(&c.format, "text", "json", "jsonl")
	pos, err := f.parse(e, args, "DIR?", "DEST?")
	if err != nil {
		return err
	}
	modes := 0
	for _, m := range []string{"verify", "status", "follow"} {
		if f.isSet(m) {
			modes++
		}
	}
	if modes > 1 {
		return usagef("backup", "--verify, --status and --follow exclude each other")
	}
	if c.verify || c.status {
		mode := map[bool]string{true: "--verify", false: "--status"}[c.verify]
		for _, fl := range []string{"incremental", "copy", "interval"} {
			if f.isSet(fl) {
				return usagef("backup", "%s takes no --%s", mode, fl)
			}
		}
		switch {
		case len(pos) == 0:
			return usagef("backup", "missing DEST")
		case len(pos) > 1:
			return usagef("backup", "%s takes one argument, DEST: unexpected %q", mode, pos[1])
		case c.format == "jsonl":
			return usagef("backup", "--format jsonl is for --follow: use text or json")
		}
		if f.isSet("max-snapshot-size") && !c.verify {
			return usagef("backup", "--max-snapshot-size is for --verify")
		}
		if c.maxSnap < 0 {
			return usagef("backup", "--max-snapshot-size %d: want a positive size in bytes", c.maxSnap)
		}
		if c.verify {
			return fail("backup", c.runVerify(ctx, e, pos[0]))
		}
		return fail("backup", c.runStatus(e, pos[0]))
	}
	switch {
	case len(pos) == 0:
		return usagef("backup", "missing DIR")
	case len(pos) == 1:
		return usagef("backup", "missing DEST")
	case f.isSet("interval") && !c.follow:
		return usagef("backup", "--interval is for --follow")
	case f.isSet("max-snapshot-size"):
		return usagef("backup", "--max-snapshot-size is for --verify")
	case c.follow && c.interval <= 0:
		return usagef("backup", "--interval %v: want a positive duration", c.interval)
	case c.follow && c.format == "json":
		return usagef("backup", "--follow prints a document per pass: use --format jsonl")
	case !c.follow && c.format == "jsonl":
		return usagef("backup", "--format jsonl is for --follow: use text or json")
	}
	dir, dest := pos[0], pos[1]
	if same, err := samePath(dir, dest); err != nil || same {
		if err != nil {
			return fail("backup", err)
		}
		return usagef("backup", "DEST must be another directory than DIR")
	}
	if inside(dest, dir) {
		return usagef("backup", "DEST must not be inside DIR (backup never modifies DIR)")
	}
	if c.follow {
		return fail("backup", c.runFollow(ctx, e, dir, dest))
	}
	return fail("backup", c.runOnce(ctx, e, dir, dest))
}

// source returns DIR as recorded in the manifest (absolute, so that
// backup --status finds it from anywhere).
func backupSource(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	return abs, nil
}

func (c *backupCmd) runOnce(ctx context.Context, e *env, dir, dest string) error {
	src, err := backupSource(dir)
	if err != nil {
		return err
	}
	l, err := evlog.OpenReadOnly(dir, evlog.Options{Clock: e.now})
	if err != nil {
		return err
	}
	defer l.Close()
	res, err := l.Backup(ctx, dest, evlog.BackupOptions{Incremental: c.incremental, NoLink: c.copy, Source: src})
	if err != nil {
		return err
	}
	out := newBackupJSON(dir, dest, res)
	if c.format == "json" {
		return writeJSON(e.stdout, out)
	}
	_, err = e.stdout.Write(out.text(false))
	return err
}

func newBackupJSON(dir, dest string, res evlog.BackupResult) backupJSON {
	out := backupJSON{Dir: dir, Dest: dest, Seq: res.Seq, Time: optTime(res.Time), Files: res.Files,
		Linked: res.Linked, Copied: res.Copied, Kept: res.Kept, BytesCopied: res.BytesCopied, BytesLinked: res.BytesLinked,
		Removed: res.Removed, Skipped: res.Skipped}
	if out.Removed == nil {
		out.Removed = []string{}
	}
	if out.Skipped == nil {
		out.Skipped = []string{}
	}
	return out
}

// text is the text report: a line per snapshot left out and per file
// removed, then the summary (pass: the summary of a --follow pass).
func (b *backupJSON) text(pass bool) []byte {
	var out []byte
	for _, s := range b.Skipped {
		out = fmt.Appendf(out, "skipped %s: a snapshot that does not verify (left out; replay falls back to the events)\n", s)
	}
	for _, r := range b.Removed {
		out = fmt.Appendf(out, "removed %s: no longer part of the backup\n", r)
	}
	at := fmt.Sprintf("seq %d", b.Seq)
	if b.Time != nil {
		at += " (" + *b.Time + ")"
	} else {
		at += " (no events)"
	}
	if pass {
		out = fmt.Appendf(out, "backup at %s", at)
	} else {
		out = fmt.Appendf(out, "backup of %s at %s into %s", b.Dir, at, b.Dest)
	}
	out = fmt.Appendf(out, ": %d %s (%d linked, %d copied, %d kept), %d bytes copied, %d bytes linked\n",
		b.Files, plural(b.Files, "file", "files"), b.Linked, b.Copied, b.Kept, b.BytesCopied, b.BytesLinked)
	return out
}

// optTime is t in timeLayout, or nil for the zero time.
func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := formatTime(t)
	return &s
}

func (c *backupCmd) runFollow(ctx context.Context, e *env, dir, dest string) error {
	// The first pass needs DIR; later ones survive it vanishing for a
	// while (a writer restarting, a directory being replaced).
	if err := requireDir(dir); err != nil {
		return err
	}
	src, err := backupSource(dir)
	if err != nil {
		return err
	}
	var (
		last   *backupJSON
		failed = map[string]bool{} // failures reported since the last good pass
		werr   error               // a failed write to stdout ends the run
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	err = evlog.FollowBackup(ctx, src, dest, evlog.FollowOptions{
		Interval: c.interval,
		NoLink:   c.copy,
		OnPass: func(res evlog.BackupResult, err error) {
			if ctx.Err() != nil {
				return // interrupted: the pass is not a failure
			}
			if err != nil {
				// One line per distinct failure until a pass succeeds, not
				// one per interval.
				if msg := oneLine(err.Error()); !failed[msg] && len(failed) < 100 {
					fmt.Fprintf(e.stderr, "warning: backup pass failed, retrying every %v: %s\n", c.interval, msg)
					failed[msg] = true
				}
				return
			}
			clear(failed)
			out := newBackupJSON(dir, dest, res)
			if last != nil && out.Seq == last.Seq && out.Copied == 0 && out.Linked == 0 && len(out.Removed) == 0 {
				return // nothing changed
			}
			last = &out
			if c.format == "jsonl" {
				werr = writeJSON(e.stdout, out)
			} else {
				_, werr = e.stdout.Write(out.text(true))
			}
			if werr != nil {
				cancel()
			}
		},
	})
	if werr != nil {
		return werr
	}
	return err
}

func (c *backupCmd) runVerify(ctx context.Context, e *env, dest string) error {
	rep, err := evlog.VerifyBackupWith(ctx, dest, evlog.VerifyBackupOptions{MaxSnapshotSize: c.maxSnap})
	out := backupVerifyJSON{Dest: dest, OK: err == nil, SnapshotsLeftOut: []leftOutJSON{}}
	if m := rep.Manifest; m != nil {
		out.LogID, out.Seq, out.Time, out.Files = m.LogID, m.Seq, optTime(m.Time), len(m.Files)
	}
	if err == nil {
		out.Events, out.Segments, out.Snapshots = rep.Verify.Events, rep.Verify.Segments, rep.Snapshots
		// Never silently, as restore: what it would leave out, and why.
		for _, f := range rep.SnapshotsLeftOut {
			out.SnapshotsLeftOut = append(out.SnapshotsLeftOut, leftOutJSON{Name: f.Name, Seq: f.Seq, Size: f.Size, Reason: f.Reason})
			fmt.Fprintf(e.stderr, "warning: snapshot %s (seq %d) would be left out by restore: %s\n", f.Name, f.Seq, f.Reason)
		}
	} else {
		p := &backupProblemJSON{Kind: "error", Reason: err.Error()}
		if be, ok := errors.AsType[*evlog.BackupError](err); ok {
			p.File, p.Reason = be.File, be.Reason
		}
		switch {
		case errors.Is(err, evlog.ErrNotABackup):
			p.Kind = "not-a-backup"
		case errors.Is(err, evlog.ErrBackupCorrupt):
			p.Kind = "damaged"
		}
		out.Problem = p
	}
	if c.format == "json" {
		if werr := writeJSON(e.stdout, out); werr != nil {
			return werr
		}
	} else if err == nil {
		var b strings.Builder
		for _, f := range out.SnapshotsLeftOut {
			fmt.Fprintf(&b, "left out %s: %s\n", f.Name, f.Reason)
		}
		fmt.Fprintf(&b, "ok backup of log %s at seq %d%s: %d %s in %d %s, %d %s",
			out.LogID, out.Seq, timeSuffix(out.Time), out.Events, plural(int(min(out.Events, 2)), "event", "events"),
			out.Segments, plural(out.Segments, "segment", "segments"), out.Snapshots, plural(out.Snapshots, "snapshot", "snapshots"))
		if n := len(out.SnapshotsLeftOut); n > 0 {
			fmt.Fprintf(&b, "; %d %s restore leaves out (unusable as backed up, see above; replay folds their events again)", n, plural(min(n, 2), "snapshot", "snapshots"))
		}
		b.WriteString("\n")
		if _, werr := e.stdout.Write([]byte(b.String())); werr != nil {
			return werr
		}
	}
	return err
}

// timeSuffix is " (TIME)" or "" for no time.
func timeSuffix(t *string) string {
	if t == nil {
		return ""
	}
	return " (" + *t + ")"
}

func (c *backupCmd) runStatus(e *env, dest string) error {
	st, err := evlog.ReadBackupStatus(dest)
	if err != nil {
		return err
	}
	out := backupStatusJSON{Dest: dest, LogID: st.LogID, Seq: st.Seq, Time: optTime(st.Time), Created: formatTime(st.Created),
		Files: st.Files, Bytes: st.Bytes, Source: st.Source, SourceSeq: st.SourceSeq, SourceTime: optTime(st.SourceTime),
		SourceError: st.SourceErr, LagEvents: st.LagEvents, LagSeconds: st.LagSeconds}
	// The age by the command's clock; never negative (clock skew).
	out.AgeSeconds = max(0, e.now().Sub(st.Created).Seconds())
	if c.format == "json" {
		return writeJSON(e.stdout, out)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "backup %s of log %s: seq %d%s, %d %s, %d bytes\n", dest, out.LogID, out.Seq, timeSuffix(out.Time),
		out.Files, plural(out.Files, "file", "files"), out.Bytes)
	fmt.Fprintf(&b, "last pass: %s (%s ago)\n", out.Created, seconds(out.AgeSeconds))
	switch {
	case out.Source == "":
		b.WriteString("source: unknown (the manifest names none): no lag\n")
	case out.SourceError != "":
		fmt.Fprintf(&b, "source: %s: cannot be read: %s\n", out.Source, oneLine(out.SourceError))
	default:
		fmt.Fprintf(&b, "source: %s ends at seq %d%s\n", out.Source, out.SourceSeq, timeSuffix(out.SourceTime))
		fmt.Fprintf(&b, "lag: %d %s, %s\n", out.LagEvents, plural(int(min(out.LagEvents, 2)), "event", "events"), seconds(out.LagSeconds))
	}
	_, err = e.stdout.Write([]byte(b.String()))
	return err
}

// seconds prints a duration in seconds, with millisecond precision.
func seconds(s float64) string { return fmt.Sprintf("%.3fs", s) }
