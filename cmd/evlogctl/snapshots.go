package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/snapshot"
)

const snapshotsAbout = `
Lists the snapshots in DIR (file, seq, time, bytes, subject), oldest first
per subject, from their headers (verify checks them completely). With
--prune --keep N it removes all but the newest N snapshots of each subject
and lists what it removed and what is left.

Listing only reads: it never modifies, creates or locks anything. --prune
touches only snapshot files (atomic removals, then a directory fsync): it
takes no lock and is safe beside a running writer and readers.`

// snapshotsCmd is "evlogctl snapshots".
type snapshotsCmd struct {
	prune  bool
	keep   int
	format string
}

// snapshotsResult is snapshots' JSON document.
type snapshotsResult struct {
	Snapshots []snapshotListJSON `json:"snapshots"`
	Removed   []snapshotListJSON `json:"removed,omitempty"` // --prune
}

type snapshotListJSON struct {
	File  string `json:"file"`
	Name  string `json:"name"`
	Seq   uint64 `json:"seq"`
	Time  string `json:"time"`
	Bytes int64  `json:"bytes"`
}

func runSnapshots(ctx context.Context, e *env, args []string) error {
	var c snapshotsCmd
	f := newFlags("snapshots", "snapshots DIR [--prune --keep N] [--format text|json]", snapshotsAbout)
	f.BoolVar(&c.prune, "prune", false, "remove old snapshots, keeping the newest --keep of each subject")
	f.IntVar(&c.keep, "keep", 0, "with --prune: how many snapshots of each subject to keep (`N` >= 1)")
	f.format(&c.format, "text", "json")
	pos, err := f.parse(e, args, "DIR")
	if err != nil {
		return err
	}
	switch {
	case c.prune && !f.isSet("keep"):
		return usagef("snapshots", "--prune needs --keep N")
	case !c.prune && f.isSet("keep"):
		return usagef("snapshots", "--keep goes with --prune")
	case c.prune && c.keep < 1:
		return usagef("snapshots", "--keep %d: keep at least 1 (to remove every snapshot, delete the files)", c.keep)
	}
	return fail("snapshots", c.run(ctx, e, pos[0]))
}

func (c *snapshotsCmd) run(ctx context.Context, e *env, dir string) error {
	out := snapshotsResult{Snapshots: []snapshotListJSON{}}
	var metas []snapshot.Meta
	if c.prune {
		l, err := evlog.OpenReadOnly(dir, evlog.Options{AllowSnapshotWrites: true})
		if err != nil {
			return err
		}
		defer l.Close()
		store, err := l.Snapshots()
		if err != nil {
			return err
		}
		before, err := store.List("")
		if err != nil {
			return err
		}
		sizes := map[string]int64{}
		for _, m := range before {
			sizes[m.File] = snapshotFileSize(dir, m)
		}
		removed, err := store.Prune(ctx, "", snapshot.PrunePolicy{KeepLast: c.keep})
		out.Removed = []snapshotListJSON{}
		for _, m := range removed {
			out.Removed = append(out.Removed, snapshotListJSON{File: m.File, Name: m.Name, Seq: m.Seq, Time: formatTime(m.Time), Bytes: sizes[m.File]})
		}
		if err != nil {
			return err
		}
		if metas, err = store.List(""); err != nil {
			return err
		}
	} else {
		if err := evlog.CheckLogDir(dir); err != nil {
			return err
		}
		fsys, err := vfs.OpenOS(dir)
		if err != nil {
			return err
		}
		defer fsys.Close()
		store, err := snapshot.Open(vfs.ReadOnly(fsys), snapshot.Options{})
		if err != nil {
			return err
		}
		if metas, err = store.List(""); err != nil {
			return err
		}
	}
	for _, m := range metas {
		out.Snapshots = append(out.Snapshots, snapshotListJSON{File: m.File, Name: m.Name, Seq: m.Seq, Time: formatTime(m.Time), Bytes: snapshotFileSize(dir, m)})
	}
	if c.format == "json" {
		return writeJSON(e.stdout, out)
	}
	var b strings.Builder
	for _, r := range out.Removed {
		fmt.Fprintf(&b, "removed %s (%s at seq %d)\n", r.File, appendWord(nil, r.Name), r.Seq)
	}
	if len(out.Snapshots) == 0 {
		b.WriteString("no snapshots\n")
	} else {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "FILE\tSEQ\tTIME\tBYTES\tSUBJECT")
		for _, s := range out.Snapshots {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\n", s.File, s.Seq, s.Time, s.Bytes, appendWord(nil, s.Name))
		}
		tw.Flush()
	}
	_, err := e.stdout.Write([]byte(b.String()))
	return err
}

// snapshotFileSize returns the size of m's file (0 if it cannot be
// read).
func snapshotFileSize(dir string, m snapshot.Meta) int64 {
	fi, err := os.Stat(filepath.Join(dir, m.File))
	if err != nil {
		return 0
	}
	return fi.Size()
}
