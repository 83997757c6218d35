package evlog

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"time"
)

// Subscribe returns an iterator over every event from seq from (0 or 1:
// the first) on: first the history, then live appends as they become
// visible, in seq order, with no gap and no duplicate across the
// catch-up/live boundary: every event not gone (deleted, beyond
// retention) when the subscriber reads past its seq is yielded once, so
// seqs have holes where events were deleted, and an event deleted after
// it was yielded is not retracted (the deletion marker, an event of
// DeletionsStream, is yielded like any). On a writer's log it wakes on
// append (no polling); on a log opened with OpenReadOnly it follows the writer in
// another process by itself, calling Refresh every Options.FollowInterval
// (across rolls and compactions; a Refresh failure ends it only when it
// persists over 10 tries in a row). It runs until
// ctx is done — the iteration then ends with ctx's error — or the log is
// closed (ErrClosed), or a read fails.
//
// Slow consumers: the iterator is pulled by the consumer and buffers
// nothing. A consumer that falls behind simply reads the events it missed
// from the segment files when it asks for the next one, so memory stays
// bounded however far behind it is (the log never blocks on it).
//
// The iterator starts no goroutine: breaking out of the loop or cancelling
// ctx releases everything.
func (l *Log) Subscribe(ctx context.Context, from uint64) iter.Seq2[Envelope, error] {
	return l.subscribe(ctx, from, nil)
}

// SubscribeFiltered is Subscribe limited to the events matching f: the
// matching events from seq from on, history then live, in seq order, with
// no gap and no duplicate in the filtered sequence (exactly what filtering
// Subscribe would yield). History skips sealed segments without a matching
// stream (see Filter). An invalid f yields only an error matching
// ErrInvalidFilter.
func (l *Log) SubscribeFiltered(ctx context.Context, from uint64, f Filter) iter.Seq2[Envelope, error] {
	if err := f.Validate(); err != nil {
		return func(yield func(Envelope, error) bool) { yield(Envelope{}, err) }
	}
	return l.subscribe(ctx, from, f.compile())
}

// subscribe is Subscribe limited to what m matches (nil: everything).
func (l *Log) subscribe(ctx context.Context, from uint64, m *matcher) iter.Seq2[Envelope, error] {
	if m == nil {
		m = &matcher{}
	}
	return func(yield func(Envelope, error) bool) {
		next := max(from, 1)
		convert := copier()
		follow := follower{l: l}
		for {
			l.mu.RLock()
			wake, last, closed := l.notify, l.pub.seq, l.closed
			l.mu.RUnlock()
			if closed {
				yield(Envelope{}, ErrClosed)
				return
			}
			if next <= last {
				err := l.scanFiltered(ctx, next, last, m, func(e *Envelope) error {
					out, _ := convert(e)
					if !yield(out, nil) {
						return errStop
					}
					next = e.Seq + 1
					return nil
				})
				if err == errStop {
					return
				}
				if err != nil {
					yield(Envelope{}, err)
					return
				}
				next = last + 1 // nothing more matches up to last
				continue
			}
			if !l.readOnly {
				select {
				case <-wake:
				case <-ctx.Done():
					yield(Envelope{}, ctx.Err())
					return
				}
				continue
			}
			if err := follow.wait(ctx, wake); err != nil {
				yield(Envelope{}, err)
				return
			}
		}
	}
}

// maxFollowFailures is how many Refreshes in a row may fail before a
// read-only subscription reports the error: a writer passes through states
// (a roll, a compaction, a snapshot prune) that one listing can catch half
// done; damage is what persists.
const maxFollowFailures = 10

// follower makes a read-only log's subscription follow the writer: it waits
// for a Refresh of another reader (wake) or for FollowInterval, then
// refreshes.
type follower struct {
	l        *Log
	failures int
}

func (f *follower) wait(ctx context.Context, wake <-chan struct{}) error {
	t := time.NewTimer(f.l.opts.FollowInterval)
	defer t.Stop()
	select {
	case <-wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	err := f.l.Refresh()
	if err == nil || errors.Is(err, ErrClosed) {
		f.failures = 0
		return err
	}
	if f.failures++; f.failures >= maxFollowFailures {
		return fmt.Errorf("evlog: following the writer: %d refreshes in a row failed: %w", f.failures, err)
	}
	return nil
}
