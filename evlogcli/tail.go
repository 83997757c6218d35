package evlogcli

import (
	"context"
	"errors"
	"math"

	"github.com/evlog/evlog"
)

const tailAbout = `
Prints the last events of the log in DIR (the last -n, or from --from SEQ
on), in dump's text or jsonl form. With -f it keeps printing the events
that another process appends until it is interrupted (SIGINT or SIGTERM:
exit 0). Following polls: every 100ms it looks for new batches in the
newest segment (and for new segments, across rolls and compactions)
without locking anything, so it sees a batch at most about 100ms after the
writer committed it; it prints every event once, in order. It is the
library's follow loop (Subscribe on a log opened with OpenReadOnly).

On corruption tail prints the events of its range before the damage,
then "corrupt FILE OFFSET REASON" on stderr, and exits 1 (with -f too),
as dump does: a deletion marker that does not decode, which fails every
read through the log, is such damage, and the events before it (which
may include some it deleted) are read frame by frame. A log that cannot
be opened (damage the open finds) is read frame by frame too: tail prints
the events of its range before the damage; its end being unknown, -n N
prints the last N events before the damage.

tail only reads: it never modifies, creates or locks anything.`

// tailCmd is "evlogctl tail".
type tailCmd struct {
	follow bool
	from   uint64
	n      uint64
	format string
}

func runTail(ctx context.Context, e *env, args []string) error {
	var c tailCmd
	f := newFlags("tail", "tail DIR [-f] [--from SEQ | -n N] [--format text|jsonl]", tailAbout)
	f.BoolVar(&c.follow, "f", false, "follow: keep printing events appended by other processes until interrupted")
	f.Uint64Var(&c.from, "from", 0, "print from `SEQ` on (default: the last -n events)")
	f.Uint64Var(&c.n, "n", 10, "print the last `N` events")
	f.format(&c.format, "text", "jsonl")
	pos, err := f.parse(e, args, "DIR")
	if err != nil {
		return err
	}
	if f.isSet("from") && f.isSet("n") {
		return usagef("tail", "--from and -n exclude each other")
	}
	return fail("tail", c.run(ctx, e, pos[0], f.isSet("from")))
}

func (c *tailCmd) run(ctx context.Context, e *env, dir string, fromSet bool) error {
	p := newEventPrinter(e.stdout, c.format)
	defer p.flush()
	l, err := evlog.OpenReadOnly(dir, evlog.Options{FollowInterval: e.poll})
	if errors.Is(err, evlog.ErrCorrupt) && ctx.Err() == nil {
		return c.unopenable(ctx, dir, fromSet, p, err)
	}
	if err != nil {
		return corruptLine(err)
	}
	defer l.Close()
	next := c.from
	if !fromSet {
		last := l.LastSeq()
		next = last - min(c.n, last) + 1
	}
	next = max(next, 1)
	// damaged ends tail at a read error: the events from next on (none
	// printed yet) that precede the damage, read frame by frame as dump
	// does (a deletion marker that does not decode fails every read
	// through the log, wherever it lies), then the corrupt line.
	damaged := func(err error) error {
		if !errors.Is(err, evlog.ErrCorrupt) || ctx.Err() != nil {
			p.flush()
			return corruptLine(err)
		}
		return dumpRaw(ctx, dir, filter{from: next, to: math.MaxUint64}, p, err)
	}
	if !c.follow {
		for ev, err := range l.Events(ctx, next) {
			if err != nil {
				return damaged(err)
			}
			if err := p.print(&ev); err != nil {
				return err
			}
			next = ev.Seq + 1
		}
		return p.flush()
	}
	// The library's follow loop: Subscribe on a read-only log refreshes
	// every FollowInterval, across rolls and compactions, and delivers
	// every event once, in order. Output is flushed whenever it has caught
	// up with what is visible.
	for ev, err := range l.Subscribe(ctx, next) {
		if err != nil {
			if ctx.Err() != nil {
				return p.flush() // interrupted: the normal end of tail -f
			}
			return damaged(err)
		}
		if err := p.print(&ev); err != nil {
			return err
		}
		next = ev.Seq + 1
		if ev.Seq >= l.LastSeq() {
			if err := p.flush(); err != nil {
				return err
			}
		}
	}
	return p.flush()
}

// unopenable is tail on a log that cannot be opened (openErr, a
// corruption): as dump does, it reads the segments frame by frame and
// prints the events of its range before the damage, then returns the
// corruption (the corrupt line). With --from, its range is from that seq
// on; otherwise, the end of the log being unknown, the last -n events
// before the damage (held until the damage is reached: at most -n of
// them). -f cannot follow a log that cannot be opened: it ends the same
// way.
func (c *tailCmd) unopenable(ctx context.Context, dir string, fromSet bool, p *eventPrinter, openErr error) error {
	if fromSet {
		return dumpRaw(ctx, dir, filter{from: max(c.from, 1), to: math.MaxUint64}, p, openErr)
	}
	var last []evlog.Envelope // the last c.n events read, oldest first
	err := readRaw(ctx, dir, filter{from: 1, to: math.MaxUint64}, func(e *evlog.Envelope) error {
		if c.n == 0 {
			return nil
		}
		if uint64(len(last)) == c.n {
			last = last[1:] // append copies to a fresh array in time: memory stays O(n)
		}
		last = append(last, e.Clone())
		return nil
	}, openErr)
	for i := range last {
		if perr := p.print(&last[i]); perr != nil {
			return perr
		}
	}
	return err
}
