package evlog

import (
	"context"
	"iter"
)

// Subscribe returns an iterator over every event from seq from (0 or 1:
// the first) on: first the history, then live appends as they become
// visible, in seq order, with no gap and no duplicate across the
// catch-up/live boundary. It wakes on append (no polling) and runs until
// ctx is done — the iteration then ends with ctx's error — or the log is
// closed (ErrClosed), or a read fails.
//
// Slow consumers: the iterator is pulled by the consumer and buffers
// nothing. A consumer that falls behind simply reads the events it missed
// from the segment files when it asks for the next one, so memory stays
// bounded however far behind it is (the log never blocks on it).
//
// The iterator starts no goroutine: breaking out of the loop or cancelling
// ctx releases everything. On a read-only log, new events appear after
// Refresh.
func (l *Log) Subscribe(ctx context.Context, from uint64) iter.Seq2[Envelope, error] {
	return func(yield func(Envelope, error) bool) {
		next := max(from, 1)
		convert := copier()
		for {
			l.mu.RLock()
			wake, last, closed := l.notify, l.pub.seq, l.closed
			l.mu.RUnlock()
			if closed {
				yield(Envelope{}, ErrClosed)
				return
			}
			if next <= last {
				err := l.scan(ctx, next, last, func(e *Envelope) error {
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
				continue
			}
			select {
			case <-wake:
			case <-ctx.Done():
				yield(Envelope{}, ctx.Err())
				return
			}
		}
	}
}
