package evlogcli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/snapshot"
)

const snapshotsAbout = `
Lists the snapshots in DIR (file, seq, time, bytes, subject), oldest first
per subject, from their headers (verify checks them completely). With
--prune it first removes the snapshots of each subject that the retention
policy does not keep, and lists what it removed and what is left. The
policy judges the snapshots of a subject fold by fold (same log ID, schema
version and scope), as the projection runner prunes its checkpoints: one
fold's snapshots cannot replace another's, so each keeps its own. It
removes a snapshot only if the newer one kept in its place verifies
completely; those it leaves for that reason get a warning on stderr (run
verify, which names the damaged one).

The policy keeps a snapshot if any rule does: --keep N keeps the newest N
(of each fold); --tiers keeps snapshots by age, measured from now back to
their recorded times, as comma-separated WITHIN:EVERY bands: in each band
it keeps the newest snapshot of each EVERY-long period (periods aligned to
UTC), or all of them for EVERY "all". Durations are Go durations or whole days ("90d").
--prune alone uses the default policy, the library's: --keep 2 --tiers
1h:all,24h:1h,90d:1d (every snapshot of the last hour, one per hour for a
day, one per day for 90 days), which keeps time queries over the last 90
days fast.

Listing only reads: it never modifies, creates or locks anything. --prune
touches only snapshot files (atomic removals, then a directory fsync): it
takes no lock and is safe beside a running writer and readers.`

// snapshotsCmd is "evlogctl snapshots".
type snapshotsCmd struct {
	prune  bool
	keep   int
	tiers  string
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
	f := newFlags("snapshots", "snapshots DIR [--prune [--keep N] [--tiers WITHIN:EVERY,…]] [--format text|json]", snapshotsAbout)
	f.BoolVar(&c.prune, "prune", false, "remove the snapshots the retention policy does not keep (default: --keep 2 --tiers 1h:all,24h:1h,90d:1d)")
	f.IntVar(&c.keep, "keep", 0, "with --prune: keep the newest `N` snapshots of each subject's fold (N >= 1)")
	f.StringVar(&c.tiers, "tiers", "", "with --prune: keep by age, `WITHIN:EVERY,…` (e.g. 1h:all,24h:1h,90d:1d)")
	f.format(&c.format, "text", "json")
	pos, err := f.parse(e, args, "DIR")
	if err != nil {
		return err
	}
	switch {
	case !c.prune && f.isSet("keep"):
		return usagef("snapshots", "--keep goes with --prune")
	case !c.prune && f.isSet("tiers"):
		return usagef("snapshots", "--tiers goes with --prune")
	case c.prune && f.isSet("keep") && c.keep < 1:
		return usagef("snapshots", "--keep %d: keep at least 1 (to remove every snapshot, delete the files)", c.keep)
	}
	// Fold by fold, by the projection runner's own key (log, schema
	// version, scope): the snapshots of one subject of another fold cannot
	// replace each other, so each fold keeps its own newest ones, and
	// --prune never removes what the runner keeps.
	policy := snapshot.PrunePolicy{KeepLast: c.keep, Now: e.now(), Fold: projection.CheckpointFold}
	if f.isSet("tiers") {
		if policy.Tiers, err = parseTiers(c.tiers); err != nil {
			return usagef("snapshots", "--tiers %q: %v", c.tiers, err)
		}
	}
	return fail("snapshots", c.run(ctx, e, pos[0], policy))
}

// parseTiers parses --tiers: comma-separated WITHIN:EVERY bands, each a Go
// duration or a whole number of days ("90d"), EVERY possibly "all".
func parseTiers(s string) ([]snapshot.Tier, error) {
	var tiers []snapshot.Tier
	for band := range strings.SplitSeq(s, ",") {
		within, every, ok := strings.Cut(strings.TrimSpace(band), ":")
		if !ok {
			return nil, fmt.Errorf("band %q: want WITHIN:EVERY, e.g. 24h:1h", band)
		}
		var t snapshot.Tier
		var err error
		if t.Within, err = parseDays(within); err != nil || t.Within <= 0 {
			return nil, fmt.Errorf("band %q: WITHIN must be a positive duration (1h, 90d)", band)
		}
		if every != "all" {
			if t.Every, err = parseDays(every); err != nil || t.Every <= 0 {
				return nil, fmt.Errorf("band %q: EVERY must be a positive duration (1h, 1d) or all", band)
			}
		}
		tiers = append(tiers, t)
	}
	if err := (snapshot.PrunePolicy{Tiers: tiers}).Validate(); err != nil {
		return nil, errors.New("bands must widen: each WITHIN greater than the previous one")
	}
	return tiers, nil
}

// parseDays parses a Go duration or a whole number of days ("90d").
func parseDays(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return 0, err
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

func (c *snapshotsCmd) run(ctx context.Context, e *env, dir string, policy snapshot.PrunePolicy) error {
	out := snapshotsResult{Snapshots: []snapshotListJSON{}}
	var metas []snapshot.Meta
	if c.prune {
		w, err := evlog.OpenSnapshotWriter(dir, evlog.Options{})
		if err != nil {
			return err
		}
		defer w.Close()
		store := w.Snapshots()
		before, err := store.List("")
		if err != nil {
			return err
		}
		sizes := map[string]int64{}
		for _, m := range before {
			sizes[m.File] = snapshotFileSize(dir, m)
		}
		removed, err := store.Prune(ctx, "", policy)
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
		// What the policy dooms but is left: Prune keeps the snapshots
		// that a kept snapshot failing to verify was to replace.
		for _, m := range policy.Doomed(metas) {
			fmt.Fprintf(e.stderr, "warning: snapshot %s (seq %d) not pruned: a newer snapshot kept in its place fails to verify (run evlogctl verify)\n", m.File, m.Seq)
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
		if err := refuseMarkerDirs(fsys); err != nil {
			return err
		}
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

// refuseMarkerDirs fails, as the log's open does, when DIR holds a
// directory named like a restore's or a salvage's marker or its temporary:
// evlog.CheckLogDir, which refuses those files, lists no subdirectory. It
// looks the four names up (lstat) rather than listing DIR again, and fails
// with rawMarked's error (the same sentinels and messages as the raw
// reader's and the library's).
func refuseMarkerDirs(fsys vfs.FS) error {
	for _, n := range []string{evlog.RestoreMarker, evlog.RestoreMarker + ".tmp", evlog.SalvageMarker, evlog.SalvageMarker + ".tmp"} {
		_, err := fsys.Lstat(n)
		switch {
		case err == nil:
			return rawMarked([]string{n})
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	return nil
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
