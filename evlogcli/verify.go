package evlogcli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

const verifyAbout = `
Checks the log in DIR completely: every frame's checksum in every segment,
seq contiguity within and across segments, each sealed segment's index
against its records, that every deletion marker decodes, and every
snapshot file (checksums, sizes, that it belongs to this log, that its
last event is where it says). With --replay
it also re-folds the built-in stats state from the events and compares it
with each stats snapshot; --replay --fold NAME re-folds an application's
fold instead (a tool built with package evlogcli and its own folds) and
compares it with each of the fold's snapshots: an aggregate instance's
(--id ID) or a projection's. Only the snapshots state would start from
are compared: not those from before the newest deletion of a stream the
fold reads, nor those that folded events expired since (they keep an
effect the events no longer yield), nor a projection's while an
interrupted rebuild's marker is there; each is a warning on stderr.

Prints one line per finding, then a summary when nothing is corrupt:
  torn-tail FILE OFFSET        an invalid suffix of the newest segment that
                               no record of an fsync follows: data a crash
                               left incomplete, or a live writer is still
                               writing, never recorded as durable; a writer
                               truncates a crash's when it opens the log
                               (exit 0)
  stranger FILE REASON         a symbolic link, FIFO, device or directory
                               named like a log file: not part of the log,
                               never opened or deleted (a warning, exit 0)
  corrupt FILE OFFSET REASON   anything else: damage in a sealed segment, a
                               bad record followed by valid ones, a seq gap,
                               a bad header, a segment whose header disagrees
                               with its name or that belongs to another log,
                               a deletion marker that does not decode (every
                               read fails on it), a bad snapshot (exit 1)
  ok EVENTS SEGMENTS
A snapshot beyond the events a reader serves but not beyond the committed
events of the newest segment (a power loss before the mark recording
their fsync reached the disk) is a warning on stderr, not corruption: a
writer's open of the log keeps those events.
verify only reads: it never modifies, creates or locks anything.`

// verifyCmd is "evlogctl verify".
type verifyCmd struct {
	replay bool
	format string
	fold   string
	id     string
	// fd and subj are the application fold --replay re-folds (fd nil:
	// stats) and its snapshots' subject.
	fd   *Fold
	subj replay.Subject
}

// finding is one line of verify's report.
type finding struct {
	Kind   string `json:"kind"` // "torn-tail", "stranger" or "corrupt"
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Reason string `json:"reason"`
}

func (f finding) String() string {
	switch f.Kind {
	case "torn-tail":
		return fmt.Sprintf("torn-tail %s %d", f.File, f.Offset)
	case "stranger":
		return fmt.Sprintf("stranger %s %s", f.File, oneLine(f.Reason))
	}
	return fmt.Sprintf("corrupt %s %d %s", f.File, f.Offset, oneLine(f.Reason))
}

// verifyReport is verify's JSON document.
type verifyReport struct {
	Findings  []finding `json:"findings"`
	Events    uint64    `json:"events"`
	Segments  int       `json:"segments"`
	Snapshots int       `json:"snapshots"`
	// Replayed counts the snapshots compared with the events (--replay):
	// the stats fold's, or those of the --fold.
	Replayed int  `json:"replayed"`
	OK       bool `json:"ok"`
}

func runVerify(ctx context.Context, e *env, args []string) error {
	var c verifyCmd
	f := newFlags("verify", "verify DIR [--replay [--fold NAME [--id ID]]] [--format text|json]", verifyAbout+foldsAbout(e.folds))
	f.BoolVar(&c.replay, "replay", false, "also re-fold the stats state (or the --fold) from the events and compare it with each of its snapshots")
	f.StringVar(&c.fold, "fold", statsFoldName, "with --replay, the fold to re-fold: `NAME` (see the list above)")
	f.StringVar(&c.id, "id", "", "with an aggregate fold, the instance `ID` (its stream is CATEGORY-ID)")
	f.format(&c.format, "text", "json")
	pos, err := f.parse(e, args, "DIR")
	if err != nil {
		return err
	}
	switch {
	case (f.isSet("fold") || f.isSet("id")) && !c.replay:
		return usagef("verify", "--fold and --id choose the fold --replay re-folds: give --replay")
	case c.fold != statsFoldName:
		if c.fd, err = pickFold(e, "verify", c.fold, c.id); err != nil {
			return err
		}
		if c.subj, err = c.fd.subject(c.id); err != nil {
			return err
		}
	case f.isSet("id"):
		return usagef("verify", "--id is for an aggregate fold; the stats fold covers the whole log")
	}
	return fail("verify", c.run(ctx, e, pos[0]))
}

func (c *verifyCmd) run(ctx context.Context, e *env, dir string) error {
	rep, err := evlog.Verify(ctx, dir)
	if err != nil {
		return err
	}
	out := verifyReport{Findings: []finding{}, Events: rep.Events, Segments: rep.Segments}
	for _, f := range rep.Findings {
		out.Findings = append(out.Findings, finding{Kind: string(f.Kind), File: f.File, Offset: f.Offset, Reason: f.Reason})
	}
	if err := c.snapshots(ctx, dir, rep.LastSeq, &out, e.stderr); err != nil {
		return err
	}
	corrupt := 0
	for _, f := range out.Findings {
		if f.Kind == string(evlog.FindingCorrupt) {
			corrupt++
		}
	}
	out.OK = corrupt == 0
	if c.format == "json" {
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		var b []byte
		for _, f := range out.Findings {
			b = fmt.Appendln(b, f.String())
		}
		if out.OK {
			b = fmt.Appendf(b, "ok %d %d\n", out.Events, out.Segments)
		}
		if _, err := e.stdout.Write(b); err != nil {
			return err
		}
	}
	if corrupt > 0 {
		return fmt.Errorf("found %d corrupt %s", corrupt, plural(corrupt, "place", "places"))
	}
	return nil
}

// snapshots verifies every snapshot file of dir and, when the log can be
// opened, checks each against the log (and, for --replay, re-folds stats
// or the --fold and compares it with the snapshots comparableSnapshots
// keeps, warning on warn about the others). committed is the last seq of
// the committed events the segment checks read (evlog.VerifyReport's
// LastSeq): a snapshot beyond the events the read-only log serves but
// not beyond those is a warning, not corruption (see unmarkedSnapshot).
func (c *verifyCmd) snapshots(ctx context.Context, dir string, committed uint64, out *verifyReport, warn io.Writer) error {
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		return err
	}
	defer fsys.Close()
	ro := vfs.ReadOnly(fsys)
	store, err := snapshot.Open(ro, snapshot.Options{})
	if err != nil {
		return err
	}
	listing, err := segment.ReadDir(ro) // regular files only
	if err != nil {
		return err
	}
	names := listing.Snapshots
	bad := func(file string, off int64, reason string) {
		out.Findings = append(out.Findings, finding{Kind: string(evlog.FindingCorrupt), File: file, Offset: off, Reason: reason})
	}
	var good []snapshot.Meta
	for _, name := range names {
		if _, _, ok := snapshot.ParseFileName(name); !ok {
			continue
		}
		out.Snapshots++
		m, err := store.Verify(ctx, name)
		if ce, ok := errors.AsType[*snapshot.CorruptError](err); ok {
			bad(name, ce.Offset, ce.Reason)
			continue
		}
		if errors.Is(err, snapshot.ErrNotFound) {
			out.Snapshots-- // removed meanwhile (pruned beside us)
			continue
		}
		if err != nil {
			return err
		}
		good = append(good, m)
	}
	if len(good) == 0 {
		return nil
	}
	// Checks against the log: only possible when it opens.
	l, err := evlog.OpenReadOnly(dir, evlog.Options{})
	if err != nil {
		return nil // the log's own findings say why
	}
	defer l.Close()
	last, logID := l.LastSeq(), l.LogID()
	var intact []snapshot.Meta
	want, marker := statsSubject, ""
	if c.fd != nil {
		want, marker = c.subj, c.fd.rebuildMarker
	}
	for _, m := range good {
		switch {
		case m.Seq > last && m.Seq <= committed && m.LogID == logID:
			fmt.Fprintln(warn, unmarkedSnapshot(m, last, committed))
			continue
		case m.Seq > last:
			bad(m.File, 0, fmt.Sprintf("snapshot of %q claims seq %d, beyond the end of the log (%d)", m.Name, m.Seq, last))
			continue
		case m.LogID != logID:
			bad(m.File, 0, fmt.Sprintf("snapshot of %q belongs to another log (%x, this log is %x)", m.Name, m.LogID[:], logID[:]))
			continue
		}
		for ev, err := range l.Range(ctx, m.Seq, m.Seq) {
			switch {
			case err != nil:
			case !ev.Time.Equal(m.Time):
				bad(m.File, 0, fmt.Sprintf("snapshot of %q says its last event (seq %d) was recorded at %s, the log says %s",
					m.Name, m.Seq, formatTime(m.Time), formatTime(ev.Time)))
			case m.Anchor != 0 && snapshot.AnchorOf(ev) != m.Anchor:
				bad(m.File, 0, fmt.Sprintf("snapshot of %q was folded up to another event at seq %d than the log holds (anchor mismatch: taken on another history of the log)",
					m.Name, m.Seq))
			}
		}
		intact = append(intact, m)
	}
	if !c.replay {
		return nil
	}
	// The snapshots a plan may start from (the rule every fold follows:
	// see planFold) are compared; the others of the subject are not:
	// those of another schema version (another fold), and, with a
	// warning, those from before a deletion of the scope and a
	// projection's while its rebuild marker is there.
	stats, skipped, err := comparableSnapshots(ctx, l, store, want, marker, intact)
	if err != nil {
		// The log's own findings say why, when it is damaged.
		fmt.Fprintf(warn, "warning: --replay compared no snapshot of %s: %s\n", want.Name, oneLine(err.Error()))
		return nil
	}
	for _, fb := range skipped {
		fmt.Fprintf(warn, "warning: snapshot %s (seq %d) not compared: %s\n", fb.File, fb.Seq, oneLine(fb.Reason))
	}
	switch {
	case !c.replay || len(stats) == 0:
		return nil
	case c.fd != nil:
		n, err := c.fd.verify(ctx, l, c.subj, stats,
			func(m snapshot.Meta) ([]byte, error) { return store.Load(ctx, m) },
			func(m snapshot.Meta, reason string) { bad(m.File, 0, "state of "+m.Name+": "+reason) })
		out.Replayed += n
		if err != nil {
			return fmt.Errorf("re-folding %s: %w", c.subj.Name, err)
		}
		return nil
	}
	return c.replayStats(ctx, l, store, stats, out, warn, bad)
}

// unmarkedSnapshot is verify's warning about snapshot m, beyond last, the
// end of the log a read-only open serves, but not beyond committed, the
// last committed event of the newest segment. Under SyncAlways a reader
// serves only what a durable mark records (docs/FORMAT.md, "Recovery",
// rule 9); the events between are committed and pass their checksums,
// but no mark that reached the disk records their fsync: a power loss
// after the writer fsynced them and before their mark was made durable,
// with a snapshot of them saved meanwhile (evlog did so before a Save
// made that mark durable first). A writer's open keeps them, and the
// snapshot is then consistent with the log; until then no reader can
// check it against its last event, nor start from it.
func unmarkedSnapshot(m snapshot.Meta, last, committed uint64) string {
	return fmt.Sprintf("warning: snapshot %s of %q (seq %d) is beyond the events a reader serves (up to seq %d) but within the committed events of the newest segment (up to seq %d), whose fsync no durable mark records (a power loss right after they were written and the snapshot saved); not checked against its last event: open the log with its writer (the application), which keeps them, then verify again",
		m.File, m.Name, m.Seq, last, committed)
}

// replayStats folds the events once, comparing the state with each stats
// snapshot as the fold passes its seq. A snapshot whose Unfolded ranges
// hold an event the fold now reads (gone when the snapshot was folded,
// readable since: the log's retention was loosened) is not compared, with
// a warning: its state rightly lacks that event.
func (c *verifyCmd) replayStats(ctx context.Context, l *evlog.Log, store *snapshot.Store, snaps []snapshot.Meta,
	out *verifyReport, warn io.Writer, bad func(string, int64, string)) error {
	slices.SortFunc(snaps, func(a, b snapshot.Meta) int { return cmp.Compare(a.Seq, b.Seq) })
	st := newStats()
	i := 0
	pos := uint64(0)                 // seq of the last event read, folded or not
	unfoldedRead := map[int]uint64{} // snaps index -> an event of its Unfolded ranges the fold read
	anyUnfolded := slices.ContainsFunc(snaps, func(m snapshot.Meta) bool { return m.Unfolded.Len() > 0 })
	compare := func() {
		for ; i < len(snaps) && snaps[i].Seq <= pos; i++ {
			m := snaps[i]
			if m.Seq < pos {
				continue // its last event reads as gone: not one to compare at
			}
			if seq, ok := unfoldedRead[i]; ok {
				fmt.Fprintf(warn, "warning: snapshot %s (seq %d) not compared: the event at seq %d read as gone when it was folded (retention), and reads now (the log's retention was changed since)\n", m.File, m.Seq, seq)
				continue
			}
			raw, err := store.Load(ctx, m)
			if errors.Is(err, fs.ErrNotExist) {
				continue // pruned beside us since it was listed
			}
			if err != nil {
				bad(m.File, 0, "cannot load: "+err.Error())
				continue
			}
			got, err := decodeStats(raw)
			if err != nil {
				bad(m.File, 0, "stats state does not decode: "+err.Error())
				continue
			}
			out.Replayed++
			if d := statsDiff(got, st); d != "" {
				bad(m.File, 0, "stats state differs from a replay of the events: "+d)
			}
		}
	}
	for ev, err := range l.Range(ctx, 1, snaps[len(snaps)-1].Seq) {
		if err != nil {
			return nil // the segment findings report it
		}
		// As replay.Run folds: evlog's system events (deletion markers)
		// are covered, not folded.
		if !event.IsSystemStream(ev.Stream) {
			st = foldStats(st, ev)
			for j := i; anyUnfolded && j < len(snaps); j++ {
				if _, ok := unfoldedRead[j]; !ok && inRanges(snaps[j].Unfolded, ev.Seq) {
					unfoldedRead[j] = ev.Seq
				}
			}
		}
		pos = ev.Seq
		compare()
	}
	return nil
}

// inRanges reports whether seq is in one of rs.
func inRanges(rs snapshot.SeqRanges, seq uint64) bool {
	for r := range rs.All() {
		if seq >= r.From && seq <= r.To {
			return true
		}
	}
	return false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
