package jetstream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
)

// readBatch is how many events one direct-get request asks for.
const readBatch = 256

// maxLagRetries bounds how often a read asks again when the server that
// answered (direct gets may be served by any replica) has not caught up
// with what the stream leader reported.
const maxLagRetries = 100

// Range iterates the events with seq in [from, to] (nothing if to < from;
// to beyond the end means the end as the stream leader reports it when the
// iteration starts), in seq order. An error ends the iteration; it never
// silently stops short: a replica that lags behind the leader is asked
// again, and a gap in the seqs is an error.
func (l *Log) Range(ctx context.Context, from, to uint64) iter.Seq2[event.Envelope, error] {
	return func(yield func(event.Envelope, error) bool) {
		if err := l.closedErr(); err != nil {
			yield(event.Envelope{}, err)
			return
		}
		if to == 0 || to < from {
			return
		}
		from = max(from, 1)
		if err := l.refresh(ctx); err != nil {
			yield(event.Envelope{}, err)
			return
		}
		l.mu.Lock()
		to = min(to, l.lastSeq)
		l.mu.Unlock()
		if from > to {
			return
		}
		err := l.read(ctx, from, to, "", func(e event.Envelope, _ nats.Header) bool {
			if from == to {
				l.learn(e.Stream, e.Version, e.Seq) // replay's snapshot anchor
			}
			return yield(e, nil)
		})
		if err != nil && err != errStop {
			yield(event.Envelope{}, err)
		}
	}
}

var errStop = errors.New("stop")

// read calls fn for the events with seq in [from, to] (of subject, if not
// ""), in order, until fn returns false (errStop). For a subject, next is
// checked by version by the caller; for the whole log, seqs must be
// contiguous. fn also gets the message's headers (for its Nats-Msg-Id).
func (l *Log) read(ctx context.Context, from, to uint64, subject string, fn func(event.Envelope, nats.Header) bool) error {
	next := from
	lag := 0
	for next <= to {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := readBatch
		if subject == "" {
			n = int(min(to-next+1, readBatch))
		}
		opts := []jetstreamext.GetBatchOpt{jetstreamext.GetBatchSeq(next)}
		if subject != "" {
			opts = append(opts, jetstreamext.GetBatchSubject(subject))
		}
		rctx, cancel := l.bound(ctx)
		msgs, err := jetstreamext.GetBatch(rctx, l.js, l.streamName, n, opts...)
		if err != nil {
			cancel()
			return fmt.Errorf("evlog/jetstream: reading %s from seq %d: %w", l.streamName, next, err)
		}
		got := 0
		for m, err := range msgs {
			if errors.Is(err, jetstreamext.ErrNoMessages) {
				break
			}
			if err != nil {
				cancel()
				if cerr := ctx.Err(); cerr != nil {
					return cerr
				}
				return fmt.Errorf("evlog/jetstream: reading %s from seq %d: %w", l.streamName, next, err)
			}
			if m.Sequence < next {
				continue
			}
			if subject == "" && m.Sequence != next {
				cancel()
				return fmt.Errorf("evlog/jetstream: stream %s has a gap: seq %d follows %d; events were deleted (the stream must deny deletes and purges)", l.streamName, m.Sequence, next-1)
			}
			if m.Sequence > to {
				break
			}
			e, err := l.decode(m.Subject, m.Sequence, m.Header, m.Data)
			if err != nil {
				cancel()
				return err
			}
			got++
			next = m.Sequence + 1
			if !fn(e, m.Header) {
				cancel()
				return errStop
			}
		}
		cancel()
		if got == 0 && next <= to {
			// The replica that answered has not caught up with the
			// leader yet: ask again, after a short pause.
			if lag++; lag > maxLagRetries {
				return fmt.Errorf("evlog/jetstream: reading %s: no replica serves seq %d, which the leader reported; retry later", l.streamName, next)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(lag) * 5 * time.Millisecond):
			}
			continue
		}
		lag = 0
	}
	return nil
}

// Stream iterates one stream's events from version fromVersion (0 or 1:
// the first) through its last event as the stream leader reports it when
// the iteration starts. JetStream finds a subject's messages by scanning
// its message blocks, so this costs more than on the file log for a
// stream with few events in a large log: aggregates should snapshot.
func (l *Log) Stream(ctx context.Context, stream string, fromVersion uint64) iter.Seq2[event.Envelope, error] {
	return func(yield func(event.Envelope, error) bool) {
		if err := cmp.Or(l.closedErr(), ctx.Err()); err != nil {
			yield(event.Envelope{}, err)
			return
		}
		fromVersion = max(fromVersion, 1)
		h, err := l.head(ctx, stream)
		if err != nil {
			yield(event.Envelope{}, err)
			return
		}
		if h.seq == 0 || h.version < fromVersion {
			return
		}
		// Start after a known earlier version if there is one (the
		// server scans for the subject from there), else at seq 1.
		start, want := uint64(1), uint64(1)
		if hv, ok := l.hintBefore(stream, fromVersion); ok {
			start, want = hv.seq+1, hv.version+1
		}
		l.learn(stream, h.version, h.seq)
		var verr error
		err = l.read(ctx, start, h.seq, l.subject(stream), func(e event.Envelope, _ nats.Header) bool {
			if e.Version != want {
				verr = fmt.Errorf("evlog/jetstream: stream %q of %s: version %d at seq %d, want %d", stream, l.streamName, e.Version, e.Seq, want)
				return false
			}
			want++
			if e.Version < fromVersion {
				return true
			}
			return yield(e, nil)
		})
		if verr != nil {
			yield(event.Envelope{}, verr)
			return
		}
		if err == errStop {
			return
		}
		if err == nil && want <= h.version {
			err = fmt.Errorf("evlog/jetstream: stream %q of %s ended at version %d, the leader reported %d", stream, l.streamName, want-1, h.version)
		}
		if err != nil {
			yield(event.Envelope{}, err)
		}
	}
}

// SeqAt returns the seq of the last event recorded at or before t (0 if
// none). Recorded times never decrease in seq order (Append keeps them
// so), so it binary-searches the recorded times, reading O(log n) events
// from the stream leader.
func (l *Log) SeqAt(ctx context.Context, t time.Time) (uint64, error) {
	if err := l.closedErr(); err != nil {
		return 0, err
	}
	if err := l.refresh(ctx); err != nil {
		return 0, err
	}
	l.mu.Lock()
	lo, hi := uint64(1), l.lastSeq // the answer is in [lo-1, hi]
	lastTime := l.lastTime
	l.mu.Unlock()
	if hi == 0 {
		return 0, nil
	}
	if !lastTime.After(t) {
		return hi, nil
	}
	hi-- // the last event is after t
	for lo <= hi {
		mid := lo + (hi-lo)/2
		m, found, err := l.getMsg(ctx, mid, "")
		if err != nil {
			return 0, err
		}
		if !found {
			return 0, fmt.Errorf("evlog/jetstream: stream %s has no seq %d below its last seq: events were deleted", l.streamName, mid)
		}
		e, err := l.decode(m.Subject, m.Seq, m.hdr, nil)
		if err != nil {
			return 0, err
		}
		if e.Time.After(t) {
			hi = mid - 1
		} else {
			lo = mid + 1
		}
	}
	return hi, nil
}

// subscribeIdle is how long Subscribe waits for a message before it asks
// the stream leader whether it has fallen behind (a consumer stranded on a
// node that died); subscribeRestarts bounds consecutive failed attempts to
// re-create the consumer.
const (
	subscribeIdle     = 2 * time.Second
	subscribeRestarts = 30
)

// Subscribe iterates every event from seq from (0 or 1: the first) on:
// the history, then live appends, in seq order, with no gap and no
// duplicate, until ctx is done (the iteration then ends with ctx's
// error), the Log is closed (evlog.ErrClosed) or reading fails for good.
// It reads through an ordered consumer. When no message comes for a while
// although the stream leader has events past the last one yielded (the
// consumer was on a node that died, say), it re-creates the consumer at
// the next seq; seqs are checked, so a restart can neither skip nor
// repeat an event.
func (l *Log) Subscribe(ctx context.Context, from uint64) iter.Seq2[event.Envelope, error] {
	return func(yield func(event.Envelope, error) bool) {
		// ctx ends also when the Log is closed, with evlog.ErrClosed as
		// its cause.
		ctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		defer context.AfterFunc(l.closed, func() { cancel(evlog.ErrClosed) })()
		next := max(from, 1)
		var (
			it       jetstream.MessagesContext
			failures int
			lastErr  error
		)
		stop := func() {
			if it != nil {
				it.Stop()
				it = nil
			}
		}
		defer stop()
		for {
			if ctx.Err() != nil {
				yield(event.Envelope{}, context.Cause(ctx))
				return
			}
			if it == nil {
				if failures >= subscribeRestarts {
					yield(event.Envelope{}, fmt.Errorf("evlog/jetstream: subscription to %s: %d attempts to (re)start it failed: %w", l.streamName, failures, lastErr))
					return
				}
				var err error
				if it, err = l.consume(ctx, next); err != nil {
					failures++
					lastErr = err
					select {
					case <-ctx.Done():
					case <-time.After(min(time.Duration(failures)*100*time.Millisecond, 2*time.Second)):
					}
					continue
				}
			}
			ictx, cancel := context.WithTimeout(ctx, subscribeIdle)
			m, err := it.Next(jetstream.NextContext(ictx))
			idle := ictx.Err() != nil
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					continue // reported at the top of the loop
				}
				if !idle {
					// The consumer failed: start another at next.
					stop()
					failures++
					lastErr = err
					continue
				}
				// Idle: behind a leader that has more events?
				if rerr := l.refresh(ctx); rerr == nil {
					l.mu.Lock()
					behind := l.lastSeq >= next
					l.mu.Unlock()
					if behind {
						stop()
					}
				}
				continue
			}
			failures = 0
			md, err := m.Metadata()
			if err != nil {
				yield(event.Envelope{}, fmt.Errorf("evlog/jetstream: subscription to %s: %w", l.streamName, err))
				return
			}
			seq := md.Sequence.Stream
			if seq < next {
				continue // redelivered after a consumer reset
			}
			if seq > next {
				yield(event.Envelope{}, fmt.Errorf("evlog/jetstream: subscription to %s: seq %d follows %d; events were deleted", l.streamName, seq, next-1))
				return
			}
			e, err := l.decode(m.Subject(), seq, m.Headers(), m.Data())
			if err != nil {
				yield(event.Envelope{}, err)
				return
			}
			next++
			if !yield(e, nil) {
				return
			}
		}
	}
}

// consume starts an ordered consumer delivering the log from seq next.
func (l *Log) consume(ctx context.Context, next uint64) (jetstream.MessagesContext, error) {
	// A few resets by the client (which waits up to seconds each), then
	// the error comes to Subscribe, which starts afresh at next.
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{l.prefix + ">"}, DeliverPolicy: jetstream.DeliverAllPolicy,
		MaxResetAttempts: 3}
	if next > 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, next
	}
	cctx, cancel := l.bound(ctx)
	defer cancel()
	cons, err := l.js.OrderedConsumer(cctx, l.streamName, cfg)
	if err != nil {
		return nil, fmt.Errorf("evlog/jetstream: subscribing to %s: %w", l.streamName, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(readBatch))
	if err != nil {
		return nil, fmt.Errorf("evlog/jetstream: subscribing to %s: %w", l.streamName, err)
	}
	return it, nil
}
