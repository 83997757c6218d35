package main

import (
	"context"
	"time"

	"github.com/evlog/evlog"
)

const tailAbout = `
Prints the last events of the log in DIR (the last -n, or from --from SEQ
on), in dump's text or jsonl form. With -f it keeps printing the events
that another process appends until it is interrupted (SIGINT or SIGTERM:
exit 0). Following polls: every 100ms it looks for new batches in the
newest segment (and for new segments) without locking anything, so it sees
a batch at most about 100ms after the writer committed it.

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
	l, err := evlog.OpenReadOnly(dir, evlog.Options{})
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
	p := newEventPrinter(e.stdout, c.format)
	defer p.flush()
	for {
		for ev, err := range l.Events(ctx, next) {
			if err != nil {
				if c.follow && ctx.Err() != nil {
					return p.flush()
				}
				p.flush()
				return corruptLine(err)
			}
			if err := p.print(&ev); err != nil {
				return err
			}
			next = ev.Seq + 1
		}
		if err := p.flush(); err != nil {
			return err
		}
		if !c.follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil // interrupted: the normal end of tail -f
		case <-time.After(e.poll):
		}
		if err := l.Refresh(); err != nil {
			return corruptLine(err)
		}
	}
}
