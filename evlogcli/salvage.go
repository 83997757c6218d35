package evlogcli

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/copyhook"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

const salvageAbout = `
Copies every event of the damaged log in DIR that can still be read into a
new log in NEWDIR (created; it must not hold events yet), keeping each
event's recorded time, stream, type, schema version, ID, meta and data.
Seqs and stream versions are assigned afresh by the new log: where events
were lost, later ones get lower seqs and versions than they had.
Snapshots are not copied (take new ones with evlogctl snapshot).
Events that read as deleted are not copied; each of them with an ID is
copied as a placeholder (no meta or data, never read), so that a retry of
its append writes nothing against NEWDIR either.

By default salvage copies the valid committed prefix, in whole committed
batches (a batch is never copied in part): it stops copying at the first
damage. With --skip-damaged it also copies the valid batches
after damaged regions: after a bad frame it looks, byte by byte, for the
next valid frame, and copies only complete batches that end with a valid
commit frame (exactly what the writer acknowledged).

Retention records are copied; one whose data does not decode is damage (a
gap line, its seq lost), and the new log records no retention in its
place (never the settings before it, which could hide events it kept
visible): set retention by opening the new log's writer. The new log
never ends with retention stricter than DIR's: when DIR's last readable
retention record was not copied (after the damage), salvage ends the new
log with a copy of its settings; when damage follows that record (a later
one may be lost there), with a record of no retention (a retention line).

It prints one line per damaged region and per range of lost seqs, then a
summary:
  gap FILE OFFSET LENGTH REASON      bytes no complete batch could be read from
  torn-tail FILE OFFSET LENGTH       an incomplete end of the newest
                                     segment that no mark or checkpoint
                                     records as durable (not counted as a
                                     loss)
  lost FROM..TO                      seqs of DIR that are not in NEWDIR (TO is
                                     "?" when the end of the damage is unknown;
                                     "(FILE OFFSET: …)" for an event read but
                                     not copied: a user stream named "$$…",
                                     reserved since, that NEWDIR cannot hold,
                                     or an event recorded before the event
                                     copied last, which NEWDIR cannot hold
                                     in its place; without --skip-damaged
                                     copying stops after the latter)
  readable FROM..TO                  (without --skip-damaged) events after the
                                     damage that were not copied
  retention: REASON                  the retention record written at the end
                                     of NEWDIR, and why
  copied N events (seqs FROM..TO) into NEWDIR
A segment of another log is not copied: one whose header holds another
log ID, or, when its header is damaged, whose marks prove another log's, or
(nothing proving whose it is) whose seqs do not fit where its name puts it.
It is one gap line covering the whole file ("not copied: …"); the seqs of
the last kind not copied from elsewhere are reported lost.
Exit status 0 when no committed event outside a torn tail was lost, 1
otherwise.

DIR is only read, by segment-level code that never modifies, creates or
locks anything in it. NEWDIR is written with the writer lock. A SALVAGING
file in NEWDIR marks a salvage not yet complete: every command refuses
NEWDIR while it is there, and a salvage killed midway is started over
when it is run again: it removes only the files whose header carries the
log ID SALVAGING records (and their checkpoints and temporaries), and
beside any other log file it refuses, naming it. Run again into its
complete output (NEWDIR holding exactly what it copies), salvage only
prints the report.`

// salvageCmd is "evlogctl salvage".
type salvageCmd struct {
	skipDamaged bool
	format      string
	// dstFS, when not nil, is NEWDIR (tests: an in-memory directory that
	// can lose power at any write; salvageDst); nil in evlogctl.
	dstFS vfs.FS
}

// salvageReport is salvage's JSON document.
type salvageReport struct {
	Copied   int    `json:"copied"`
	FirstSeq uint64 `json:"first_seq"` // source seqs of the first and last event copied
	LastSeq  uint64 `json:"last_seq"`
	// Gaps are the damaged regions of DIR's segments, torn tails included.
	Gaps []gapJSON `json:"gaps"`
	// Lost are the ranges of DIR's seqs missing from NEWDIR; To is 0 when
	// the end of a range is unknown.
	Lost []seqRange `json:"lost"`
	// Readable are events after the damage that were not copied (without
	// --skip-damaged).
	Readable []seqRange `json:"readable"`
	// Placeholders are the events copied as placeholders, to keep their
	// IDs (gone events with an ID; salvage_delete.go): not in Copied.
	Placeholders int `json:"placeholders,omitempty"`
	// Retention is the retention record salvage wrote at the end of
	// NEWDIR so that it does not end with settings stricter than DIR's
	// (salvage_retention.go); nil when none was needed.
	Retention *salvageRetentionJSON `json:"retention,omitempty"`
	// Complete: no acknowledged event was lost.
	Complete bool `json:"complete"`

	lines []string // the text report, in discovery order
}

type gapJSON struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Length int64  `json:"length"`
	Reason string `json:"reason"`
	Torn   bool   `json:"torn"`
}

type seqRange struct {
	From   uint64 `json:"from"`
	To     uint64 `json:"to"` // 0: unknown
	Reason string `json:"reason,omitempty"`
	// File and Offset locate the one event of a range that was read but
	// could not be copied (notHeld): its segment file and event frame.
	File   string `json:"file,omitempty"`
	Offset int64  `json:"offset,omitempty"`
}

func (r seqRange) String() string {
	if r.To == 0 {
		return fmt.Sprintf("%d..?", r.From)
	}
	return fmt.Sprintf("%d..%d", r.From, r.To)
}

func runSalvage(ctx context.Context, e *env, args []string) error {
	var c salvageCmd
	f := newFlags("salvage", "salvage DIR NEWDIR [--skip-damaged] [--format text|json]", salvageAbout)
	f.BoolVar(&c.skipDamaged, "skip-damaged", false, "also copy the valid batches after damaged regions")
	f.format(&c.format, "text", "json")
	pos, err := f.parse(e, args, "DIR", "NEWDIR")
	if err != nil {
		return err
	}
	if same, err := samePath(pos[0], pos[1]); err != nil || same {
		if err != nil {
			return fail("salvage", err)
		}
		return usagef("salvage", "NEWDIR must be another directory than DIR")
	}
	if inside(pos[1], pos[0]) {
		return usagef("salvage", "NEWDIR must not be inside DIR (salvage never modifies DIR)")
	}
	return fail("salvage", c.run(ctx, e, pos[0], pos[1]))
}

// samePath reports whether a and b name the same directory.
func samePath(a, b string) (bool, error) {
	aa, err := filepath.Abs(a)
	if err != nil {
		return false, err
	}
	bb, err := filepath.Abs(b)
	if err != nil {
		return false, err
	}
	if aa == bb {
		return true, nil
	}
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb), nil
}

// inside reports whether path p lies inside directory dir: as written, or
// once the symbolic links in either are followed (a source given by a
// link, an output under a link into the source), so that a command that
// never modifies dir does not create its output in it.
func inside(p, dir string) bool {
	ap, err1 := filepath.Abs(p)
	ad, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	under := func(p, dir string) bool {
		rel, err := filepath.Rel(dir, p)
		return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
	}
	return under(ap, ad) || under(resolvePath(ap), resolvePath(ad))
}

// resolvePath returns the absolute, clean path p with the symbolic links
// of its longest existing prefix followed (the rest need not exist yet).
func resolvePath(p string) string {
	rest := ""
	for cur := p; ; {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(r, rest)
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return p
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// errEventsLost is salvage's error (exit status 1) after a salvage that
// completed but could not copy every committed event of DIR.
var errEventsLost = errors.New("events were lost (see the lost lines of the report)")

// errHoldsEvents is matched by salvage's error when NEWDIR holds a log
// with events (and no marker of an interrupted salvage): a salvage
// completed into it already, or another log is there.
var errHoldsEvents = errors.New("salvage copies into a new log; give a new or empty directory")

// salvager copies events into the new log and keeps the report.
type salvager struct {
	skip     bool
	out      *evlog.Log
	rep      salvageReport
	next     uint64 // the next source seq expected
	lastTime int64
	copying  bool    // false once the prefix ended (without --skip-damaged)
	pending  *rawGap // a corrupt gap after the last event accepted
	maxSeen  uint64  // the highest source seq seen anywhere
	buf      appendBuffer
	lastBuf  uint64      // source seq of the last event in buf
	gone     goneStreams // read frame by frame: what the markers delete
	at       rawLoc      // read frame by frame: the event being handled
	// notHeldAt are the report entries of the events read but not copied
	// because the new log cannot hold them (salvage_notheld.go).
	notHeldAt []notHeldRef
	// copied are the source seqs copied, withheld those of the segment
	// files left out that may be the log's (salvage_foreign.go).
	copied, withheld []seqRange
	// kept are the placeholders to carry into the new log, by the path
	// that copies through the source log, in seq order (rawKept);
	// bufPlaceholders counts the placeholders in buf.
	kept            []evlog.Envelope
	bufPlaceholders int
	// bufReplaced counts the records of no retention in buf written in
	// place of damaged retention records (salvage_retention.go): not
	// copied events either.
	bufReplaced int
	// srcRet is DIR's last retention record read (nil: none), retUnsure
	// whether damage was read after it (or, with none, at all); outRetSeq
	// and outRetData are DIR's seq and the settings of the last retention
	// record written to NEWDIR (0: none). See salvage_retention.go.
	srcRet     *evlog.Envelope
	retUnsure  bool
	outRetSeq  uint64
	outRetData []byte
	// raw: reading DIR frame by frame (a seq hole is damage there).
	raw bool
	// sink, when set, takes each batch instead of out (sameEvents).
	sink func([]evlog.AppendRequest) error
}

func (c *salvageCmd) run(ctx context.Context, e *env, src, dst string) error {
	if err := requireDir(src); err != nil {
		return err
	}
	d := salvageDst{dir: dst, mem: c.dstFS}
	// An interrupted salvage into dst: start over (salvage_interrupt.go).
	premarked, err := restartSalvage(d)
	if err != nil {
		return err
	}
	names, err := d.names()
	if err != nil {
		return err
	}
	fsys, closeFS, err := d.create()
	if err != nil {
		return err
	}
	defer closeFS()
	// NEWDIR holding no log yet is marked before the new log is created:
	// killed at any point, salvage never leaves a directory that opens as
	// a log (an empty one) without being its complete output.
	if !premarked && !slices.ContainsFunc(names, isNewLogFile) {
		if err := markSalvage(fsys, dst, src, ""); err != nil {
			return err
		}
		premarked = true
	}
	// The events keep their recorded times, however far ahead of this
	// machine's clock (the writer's may have run ahead): no skew limit.
	out, err := openSalvageLog(fsys, evlog.Options{Sync: evlog.SyncNever, Clock: e.now, MaxClockSkew: evlog.NoClockSkewLimit,
		MaxEventSize: evlog.MaxMaxEventSize, MaxBatchSize: evlog.MaxMaxBatchSize})
	if err != nil {
		return fmt.Errorf("opening %s: %w", dst, err)
	}
	if n := out.LastSeq(); n > 0 {
		var s *salvager
		err := errHoldsEvents
		if !premarked {
			// Killed after it removed its marker (the report lost), a
			// salvage run again finds its complete output: when NEWDIR
			// holds exactly what it copies, it only reports.
			sink, stop := sameEvents(ctx, fsys)
			s, err = c.salvageTo(ctx, src, nil, sink)
			stop()
		}
		out.Close()
		if err == nil {
			return c.report(e, dst, s)
		}
		if errors.Is(err, errNotSame) {
			err = errHoldsEvents
		}
		if errors.Is(err, errHoldsEvents) {
			err = fmt.Errorf("%s already holds %d events: %w", dst, n, errHoldsEvents)
		}
		if premarked {
			// The marker written before the log was there: no event of
			// this salvage is in dst (copying starts once the marker
			// records the new log's ID).
			err = errors.Join(err, unmarkSalvage(fsys, dst))
		}
		return err
	}
	// Until every event copied is durable, NEWDIR is refused as an
	// interrupted salvage. The marker records the new log's ID, which
	// is how a salvage run again knows the files to remove.
	id := out.LogID()
	if err := markSalvage(fsys, dst, src, fmt.Sprintf("%x", id[:])); err != nil {
		out.Close()
		return err
	}
	s, err := c.salvageTo(ctx, src, out, nil)
	if err == nil {
		err = out.Sync(ctx)
	}
	if err == nil {
		// Every event copied is durable: NEWDIR is the salvaged log. The
		// marker goes while the lock is still held, so that another
		// salvage into NEWDIR never takes this one for interrupted.
		err = unmarkSalvage(fsys, dst)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return c.report(e, dst, s)
}

// salvageTo copies what salvage copies of src into out, or, with sink
// set, hands each batch to sink instead (out unused).
func (c *salvageCmd) salvageTo(ctx context.Context, src string, out *evlog.Log, sink func([]evlog.AppendRequest) error) (*salvager, error) {
	s := &salvager{skip: c.skipDamaged, out: out, sink: sink, next: 1, copying: true}
	s.rep.Gaps, s.rep.Lost, s.rep.Readable = []gapJSON{}, []seqRange{}, []seqRange{}
	err := s.salvage(ctx, src)
	if err == nil {
		s.settleRetention() // salvage_retention.go
		err = s.flush(ctx)
	}
	if err == nil {
		err = s.locateNotHeld(ctx, src) // salvage_notheld.go
	}
	if err == nil && sink != nil {
		err = sink(nil) // the end
	}
	return s, err
}

// report prints the report of s, a salvage into dst that completed.
func (c *salvageCmd) report(e *env, dst string, s *salvager) error {
	s.finish()
	rep := &s.rep
	if c.format == "json" {
		if err := writeJSON(e.stdout, rep); err != nil {
			return err
		}
	} else {
		var b strings.Builder
		for _, l := range rep.lines {
			b.WriteString(l)
			b.WriteByte('\n')
		}
		if rep.Copied == 0 {
			fmt.Fprintf(&b, "copied 0 events into %s\n", dst)
		} else {
			fmt.Fprintf(&b, "copied %d events (seqs %d..%d) into %s; seqs and versions were assigned afresh by the new log\n",
				rep.Copied, rep.FirstSeq, rep.LastSeq, dst)
		}
		if _, err := e.stdout.Write([]byte(b.String())); err != nil {
			return err
		}
	}
	if !rep.Complete {
		return errEventsLost
	}
	return nil
}

// salvage reads src: through the log first (fast, and it reads compressed
// segments), then, if that stops at damage, frame by frame.
func (s *salvager) salvage(ctx context.Context, src string) error {
	l, err := evlog.OpenReadOnly(src, evlog.Options{})
	if err != nil && !errors.Is(err, evlog.ErrCorrupt) {
		return err
	}
	if err == nil {
		// A read that fails inside a batch has already yielded the
		// batch's first events, and salvage copies whole committed batches
		// only: so read the whole log once without copying, and copy
		// through the log only when it reads cleanly (the raw reader below
		// works batch by batch).
		var readErr error
		for _, err := range l.Events(ctx, 1) {
			if err != nil {
				readErr = err
				break
			}
		}
		if readErr == nil {
			// The log hides the events that read as gone: the IDs to
			// carry as placeholders are read frame by frame.
			if s.kept, err = srcKept(ctx, src); err != nil {
				l.Close()
				return err
			}
			for ev, err := range l.Events(ctx, 1) {
				if err == nil {
					err = s.deletedHole(ctx, ev) // salvage_delete.go
				}
				if err == nil {
					err = s.event(ctx, ev)
				}
				if err != nil {
					l.Close()
					return err
				}
			}
			if err := s.deletedHole(ctx, evlog.Envelope{Seq: math.MaxUint64}); err != nil {
				l.Close()
				return err
			}
		}
		rec := l.Recovery()
		l.Close()
		if readErr == nil {
			if t := rec.TornTail; t != nil {
				s.gap(&rawGap{file: rec.TornFile, Gap: segment.Gap{Offset: t.Offset, Bad: t.BadOffset, Length: t.Size, Reason: t.Reason, Torn: true, FirstSeq: t.FirstSeq, LastSeq: t.LastSeq}})
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !errors.Is(readErr, evlog.ErrCorrupt) {
			return readErr
		}
	}
	fsys, err := vfs.OpenOS(src)
	if err != nil {
		return err
	}
	defer fsys.Close()
	s.raw = true
	if s.gone, err = rawGone(ctx, vfs.ReadOnly(fsys)); err != nil { // salvage_delete.go
		return err
	}
	return scanRaw(ctx, vfs.ReadOnly(fsys), rawVisitor{
		batch: func(b *rawBatch) error {
			for i, ev := range b.Events {
				s.at = rawLoc{seq: ev.Seq, file: b.file, off: b.Offsets[i]}
				if err := s.event(ctx, ev); err != nil {
					return err
				}
			}
			return nil
		},
		gap: func(g *rawGap) error {
			if g.excluded != notExcluded {
				s.exclude(g) // salvage_foreign.go
				return nil
			}
			if g.Torn {
				provenTorn(vfs.ReadOnly(fsys), g)
			}
			s.gap(g)
			return nil
		},
		owned: true,
	})
}

// provenTorn turns g, a torn tail of a newest segment, into a loss when an
// authentic checkpoint of the segment records it fsynced beyond g's start:
// the bytes were durable (the log's Open reports that as corruption), and
// the events the checkpoint indexes through its last seq were committed.
func provenTorn(fsys vfs.FS, g *rawGap) {
	seg, err := segment.Open(fsys, g.file)
	if err != nil {
		return
	}
	defer seg.Close()
	ck, err := segment.OpenCheckpoint(fsys, seg)
	if err != nil {
		return
	}
	defer ck.Close()
	if ck.End <= g.Offset {
		return
	}
	g.Torn = false
	g.Reason = fmt.Sprintf("%s, but its checkpoint %s records that the segment had been fsynced through %d", g.Reason, ck.Name, ck.End)
	g.LastSeq = max(g.LastSeq, ck.Trailer.LastSeq)
}

// event handles one readable event of the source, in seq order.
func (s *salvager) event(ctx context.Context, ev evlog.Envelope) error {
	if s.raw && ev.Seq > s.maxSeen+1 {
		s.retUnsure = true // events not read: damage (salvage_retention.go)
	}
	if ev.Stream == evlog.RetentionStream {
		defer s.noteRetention(ev) // once handled (salvage_retention.go)
	}
	s.maxSeen = max(s.maxSeen, ev.Seq)
	if ev.Seq < s.next {
		return nil // read already (an older generation, or the log's read)
	}
	if !s.copying {
		s.readable(ev.Seq)
		return nil
	}
	if ev.Seq > s.next {
		if !s.skip {
			s.stopCopying()
			s.readable(ev.Seq)
			return nil
		}
		s.lost(seqRange{From: s.next, To: ev.Seq - 1})
	}
	if t := ev.Time.UnixNano(); t < s.lastTime {
		s.backwards(ev)
		if !s.skip {
			s.stopCopying() // the events after it are readable, not copied
		}
		return nil
	}
	if s.notCopied(ev) { // salvage_delete.go
		return s.flushFull(ctx)
	}
	s.pending = nil
	s.lastTime = ev.Time.UnixNano()
	s.next = ev.Seq + 1
	if s.rep.FirstSeq == 0 {
		s.rep.FirstSeq = ev.Seq
	}
	s.lastBuf = ev.Seq
	s.copiedSeq(ev.Seq)
	ev.Seq, ev.Version = 0, 0
	s.buf.add(ev)
	return s.flushFull(ctx)
}

// backwards reports ev, recorded before the event copied last, as lost,
// naming its segment file, frame offset and why (notHeld): the new log's
// times never go backwards. evlog's writer never records such a time, and
// evlog's open refuses a log holding one, so ev is read frame by frame
// (a hand-made log, or a time damaged under a valid checksum). A gone
// event whose ID salvage keeps as a placeholder is checked here too,
// before notCopied: its ID cannot be kept either.
func (s *salvager) backwards(ev evlog.Envelope) {
	reason := "recorded before the event copied last: the new log's times never go backwards (evlog's writer never records such a time: a hand-made or damaged log)"
	if keepsID(&ev, s.gone) {
		reason = fmt.Sprintf("a gone event whose ID %q salvage keeps as a placeholder, %s; a retry of its append against NEWDIR would write it again", ev.ID, reason)
	}
	s.notHeld(ev, reason)
	// Read, ev ends the damage before it, as a copied event does: the
	// seqs up to it are reported, none after it is pending.
	s.pending = nil
	s.next = ev.Seq + 1
}

// flushFull flushes the buffered events once they fill a batch.
func (s *salvager) flushFull(ctx context.Context) error {
	if s.buf.events >= importBatch || s.buf.bytes >= importBatchBytes {
		return s.flush(ctx)
	}
	return nil
}

// flush appends the buffered events.
func (s *salvager) flush(ctx context.Context) error {
	if s.buf.events == 0 {
		return nil
	}
	// As they are: event types an older evlog accepted and reserved since
	// (starting with "$") are the user's data (internal/copyhook).
	if s.sink != nil {
		if err := s.sink(s.buf.reqs); err != nil {
			return err
		}
	} else if _, err := copyhook.AppendBatch(ctx, s.out, s.buf.reqs); err != nil {
		return fmt.Errorf("writing the new log: %w", err)
	}
	s.rep.Copied += s.buf.events - s.bufPlaceholders - s.bufReplaced
	s.rep.Placeholders += s.bufPlaceholders
	if s.buf.events > s.bufPlaceholders+s.bufReplaced {
		s.rep.LastSeq = s.lastBuf
	}
	s.buf.reset()
	s.bufPlaceholders, s.bufReplaced = 0, 0
	return nil
}

// gap records a damaged region.
func (s *salvager) gap(g *rawGap) {
	s.rep.Gaps = append(s.rep.Gaps, gapJSON{File: g.file, Offset: g.Offset, Length: g.Length, Reason: g.Reason, Torn: g.Torn})
	if g.Torn {
		line := fmt.Sprintf("torn-tail %s %d %d", g.file, g.Offset, g.Length)
		if g.FirstSeq > 0 {
			line += fmt.Sprintf(" (uncommitted seqs %d..%d)", g.FirstSeq, g.LastSeq)
		}
		s.rep.lines = append(s.rep.lines, line)
		return
	}
	s.rep.lines = append(s.rep.lines, fmt.Sprintf("gap %s %d %d %s", g.file, g.Offset, g.Length, oneLine(g.Reason)))
	s.retUnsure = true // salvage_retention.go
	s.maxSeen = max(s.maxSeen, g.LastSeq)
	if s.copying {
		s.pending = g
		if !s.skip {
			s.stopCopying()
		}
	}
}

// stopCopying ends the copied prefix (without --skip-damaged).
func (s *salvager) stopCopying() {
	s.copying = false
}

// readable notes an event after the damage that was not copied.
func (s *salvager) readable(seq uint64) {
	if n := len(s.rep.Readable); n > 0 && s.rep.Readable[n-1].To+1 == seq {
		s.rep.Readable[n-1].To = seq
		return
	}
	s.rep.Readable = append(s.rep.Readable, seqRange{From: seq, To: seq})
}

func (s *salvager) lost(r seqRange) {
	s.rep.Lost = append(s.rep.Lost, r)
	line := "lost " + r.String()
	if r.Reason != "" {
		line += " (" + r.Reason + ")"
	}
	s.rep.lines = append(s.rep.lines, line)
}

// finish records what was lost after the last copied event.
func (s *salvager) finish() {
	if !s.copying {
		// Everything from the end of the prefix on is missing: seqs seen
		// after it, or a gap's whose end may be unknown (nothing when the
		// prefix ended with an event reported lost, and nothing followed).
		to := s.maxSeen
		if to < s.next {
			to = 0
		}
		if to > 0 || s.pending != nil {
			s.lost(seqRange{From: s.next, To: to})
		}
		for _, r := range s.rep.Readable {
			s.rep.lines = append(s.rep.lines, fmt.Sprintf("readable %s (not copied: rerun with --skip-damaged to copy it)", r))
		}
	} else if s.pending != nil {
		to := s.maxSeen
		if to < s.next {
			to = 0
		}
		s.lost(seqRange{From: s.next, To: to})
	}
	s.settleWithheld() // salvage_foreign.go
	s.rep.Complete = len(s.rep.Lost) == 0
}
