package evlogcli

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

const dumpAbout = `
Prints the events of the log in DIR in seq order, one per line. Every range
flag is inclusive; filters combine. --stream reads one stream through the
segments' indexes without scanning the log; --since and --until find their
seqs through the time index.

With --format jsonl each line is one JSON object, keys in this order:
  {"seq":1,"stream":"s-1","version":1,"type":"load","time":"2026-11-25T15:00:00.123456789Z","data":{"n":1,"pad":"xx"}}
("schema_version", "id" and "meta" appear before "data" when set). The
output is byte-stable: the same log always dumps to the same bytes, and
compact does not change them.

A torn tail (data after the last recorded fsync that a crash left
incomplete) is not printed and is not an error. On corruption dump prints
the valid prefix, then "corrupt FILE OFFSET REASON" on stderr, and exits
1: it never skips a bad record. A deletion marker that does not decode is
such damage (what it deleted cannot be known): dump prints the events
before it, which may include some it deleted. Reading a log that cannot
be opened frame by frame, dump leaves out a segment of another log, as
salvage does, with a line "corrupt FILE 0 not printed: REASON" (exit 1).
dump only reads: it never modifies, creates or locks anything.`

// dumpCmd is "evlogctl dump".
type dumpCmd struct {
	from, to     uint64
	stream, typ  string
	since, until string
	format       string
}

func runDump(ctx context.Context, e *env, args []string) error {
	var c dumpCmd
	f := newFlags("dump", "dump DIR [--from SEQ] [--to SEQ] [--stream S] [--type T] [--since TIME] [--until TIME] [--format text|jsonl]", dumpAbout)
	f.Uint64Var(&c.from, "from", 0, "first `SEQ` to print")
	f.Uint64Var(&c.to, "to", 0, "last `SEQ` to print")
	f.StringVar(&c.stream, "stream", "", "print only the events of stream `S`")
	f.StringVar(&c.typ, "type", "", "print only the events of type `T`")
	f.StringVar(&c.since, "since", "", "print only events recorded at or after `TIME`")
	f.StringVar(&c.until, "until", "", "print only events recorded at or before `TIME`")
	f.format(&c.format, "text", "jsonl")
	pos, err := f.parse(e, args, "DIR")
	if err != nil {
		return err
	}
	flt, err := newFilter(f, e.now(), c.from, c.to, c.stream, c.typ, c.since, c.until)
	if err != nil {
		return err
	}
	p := newEventPrinter(e.stdout, c.format)
	err = dumpLog(ctx, pos[0], flt, p)
	if ferr := p.flush(); err == nil {
		err = ferr
	}
	return fail("dump", err)
}

// filter selects events by seq, stream, type and time (all inclusive).
type filter struct {
	from, to     uint64 // to: math.MaxUint64 when unbounded
	stream, typ  string
	since, until time.Time // zero when unbounded
}

func newFilter(f *flags, now time.Time, from, to uint64, stream, typ, since, until string) (filter, error) {
	flt := filter{from: from, to: math.MaxUint64, stream: stream, typ: typ}
	if f.isSet("to") {
		flt.to = to
	}
	var err error
	if since != "" {
		if flt.since, err = parseTime(since, now); err != nil {
			return flt, usagef(f.cmd, "--since: %v", err)
		}
	}
	if until != "" {
		if flt.until, err = parseTime(until, now); err != nil {
			return flt, usagef(f.cmd, "--until: %v", err)
		}
	}
	return flt, nil
}

func (f *filter) match(e *evlog.Envelope) bool {
	return e.Seq >= f.from && e.Seq <= f.to &&
		(f.stream == "" || e.Stream == f.stream) &&
		(f.typ == "" || e.Type == f.typ) &&
		(f.since.IsZero() || !e.Time.Before(f.since)) &&
		(f.until.IsZero() || !e.Time.After(f.until))
}

// seqRange narrows [from, to] with the log's time index; ok is false when
// nothing can match.
func (f *filter) seqRange(ctx context.Context, l *evlog.Log) (from, to uint64, ok bool, err error) {
	from, to = max(f.from, 1), min(f.to, l.LastSeq())
	if !f.since.IsZero() {
		s, err := l.SeqAt(ctx, f.since.Add(-time.Nanosecond))
		if err != nil {
			return 0, 0, false, err
		}
		from = max(from, s+1)
	}
	if !f.until.IsZero() {
		s, err := l.SeqAt(ctx, f.until)
		if err != nil {
			return 0, 0, false, err
		}
		to = min(to, s)
	}
	return from, to, from <= to, nil
}

// dumpLog prints the events of dir that flt selects.
func dumpLog(ctx context.Context, dir string, flt filter, p *eventPrinter) error {
	l, err := evlog.OpenReadOnly(dir, evlog.Options{})
	if errors.Is(err, evlog.ErrCorrupt) {
		return dumpRaw(ctx, dir, flt, p, err)
	}
	if err != nil {
		return err
	}
	defer l.Close()
	from, to, ok, err := flt.seqRange(ctx, l)
	if err != nil || !ok {
		return corruptLine(err)
	}
	var events iter.Seq2[evlog.Envelope, error]
	if flt.stream != "" {
		events = l.Stream(ctx, flt.stream, 1)
	} else {
		events = l.Range(ctx, from, to)
	}
	printed := false
	var readErr error
	for ev, err := range events {
		if err != nil {
			readErr = err
			break
		}
		if ev.Seq > to {
			break
		}
		if ev.Seq < from || !flt.match(&ev) {
			continue
		}
		if err := p.print(&ev); err != nil {
			return err
		}
		printed = true
	}
	if readErr == nil {
		return nil
	}
	if !printed && errors.Is(readErr, evlog.ErrCorrupt) && ctx.Err() == nil {
		// The read failed before yielding anything it selects: a
		// deletion marker that does not decode fails every read (the
		// log cannot tell what it deletes), wherever it lies. Frame by
		// frame, dump prints the events before the first damage, as for
		// a log that cannot be opened.
		l.Close()
		return dumpRaw(ctx, dir, flt, p, readErr)
	}
	return corruptLine(readErr)
}

// corruptLine turns a corruption error into dump's stderr line "corrupt
// FILE OFFSET REASON"; other errors pass through.
func corruptLine(err error) error {
	if ce, ok := errors.AsType[*segment.CorruptError](err); ok {
		return &lineError{line: fmt.Sprintf("corrupt %s %d %s", ce.File, ce.Offset, oneLine(ce.Reason)), err: err}
	}
	return err
}

// dumpRaw prints the valid prefix of a log that cannot be opened or read
// (openErr says why), reading its segments frame by frame, and then the
// corruption that ends the prefix (openErr when the frames show none
// before the end of the selected range, or the same one). As through the
// log, it does not print the events that a readable deletion marker
// deletes (rawGone, wherever the marker lies) nor the placeholders
// compact leaves of them. A deletion marker whose frame checksums but
// whose data does not decode ends the prefix: it is damage, named by its
// segment file and frame offset, and is not printed (the events before
// it may include some it deleted: that cannot be known).
func dumpRaw(ctx context.Context, dir string, flt filter, p *eventPrinter, openErr error) error {
	return readRaw(ctx, dir, flt, p.print, openErr)
}

// readRaw is dumpRaw, calling emit with each event it would print (the
// envelope is emit's only until it returns).
func readRaw(ctx context.Context, dir string, flt filter, emit func(*evlog.Envelope) error, openErr error) error {
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		return err
	}
	defer fsys.Close()
	gone, err := rawGone(ctx, vfs.ReadOnly(fsys)) // salvage_delete.go
	if err != nil {
		return err
	}
	var (
		next     uint64 = 1
		prevTime int64  = math.MinInt64
		problem  error
		left     []*segment.CorruptError // the segment files left out
	)
	corrupt := func(file string, off int64, format string, args ...any) error {
		problem = &segment.CorruptError{File: file, Offset: off, Reason: fmt.Sprintf(format, args...)}
		return errStop
	}
	err = scanRaw(ctx, vfs.ReadOnly(fsys), rawVisitor{
		batch: func(b *rawBatch) error {
			for i := range b.Events {
				ev := &b.Events[i]
				switch {
				case ev.Seq < next:
					continue // also in a newer generation already read
				case ev.Seq > next:
					return corrupt(b.file, b.Offset, "event seq %d, want %d (events are missing)", ev.Seq, next)
				case ev.Time.UnixNano() < prevTime:
					return corrupt(b.file, b.Offset, "event seq %d recorded before the previous event", ev.Seq)
				}
				if ev.Seq > flt.to {
					return errStop
				}
				if g, ok := gone.bad[ev.Seq]; ok {
					return corrupt(g.file, g.Offset, "%s", g.Reason)
				}
				next, prevTime = ev.Seq+1, ev.Time.UnixNano()
				if flt.match(ev) && ev.Type != evlog.TypeRedacted && !gone.has(*ev) {
					if err := emit(ev); err != nil {
						return err
					}
				}
			}
			return nil
		},
		gap: func(g *rawGap) error {
			if g.excluded != notExcluded {
				// Not the log's (salvage_foreign.go): its events are
				// not printed, and the log's own are read on.
				left = append(left, &segment.CorruptError{File: g.file, Offset: g.Offset, Reason: "not printed: " + g.Reason})
				return nil
			}
			if g.Torn {
				return nil // not served, as by the log
			}
			return corrupt(g.file, g.Bad, "%s", g.Reason)
		},
		owned: true,
	})
	if err != nil {
		return err
	}
	// The log's own description of the same damage says more (whether a
	// valid commit follows, …).
	pe, ok1 := errors.AsType[*segment.CorruptError](problem)
	oe, ok2 := errors.AsType[*segment.CorruptError](openErr)
	if problem == nil || ok1 && ok2 && pe.File == oe.File && pe.Offset == oe.Offset {
		problem = openErr
	}
	if len(left) == 0 {
		return corruptLine(problem)
	}
	// One line for each file left out, in file order, then the damage
	// that ends the prefix, unless it is the open's finding about a file
	// left out (which its line names already).
	if ok2 && problem == openErr && slices.ContainsFunc(left, func(l *segment.CorruptError) bool { return l.File == oe.File }) {
		problem = nil
	}
	var (
		lines []string
		errs  []error
	)
	for _, l := range left {
		lines = append(lines, corruptLine(l).Error())
		errs = append(errs, l)
	}
	if problem != nil {
		lines = append(lines, corruptLine(problem).Error())
		errs = append([]error{problem}, errs...) // the damage that ends the prefix first, for errors.As
	}
	return &lineError{line: strings.Join(lines, "\n"), err: errors.Join(errs...)}
}
