package evlog

import "context"

// DurableSeq returns the seq up to which every event is known to be
// durable: under SyncAlways, the last visible event; under SyncInterval,
// the last one covered by the periodic fsync; under SyncNever, the last one
// covered by Sync, a roll, or Open. For a log opened read-only, what was
// visible when it was opened.
func (l *Log) DurableSeq() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.durableSeq
}

// WaitDurable blocks until every event up to seq is durable, the writer
// fails (an error matching ErrWriterFailed), the log is closed, or ctx is
// done. It does not itself cause an fsync (use Sync for that).
func (l *Log) WaitDurable(ctx context.Context, seq uint64) error {
	for {
		l.mu.RLock()
		d, ch, closed := l.durableSeq, l.durableCh, l.closed
		l.mu.RUnlock()
		if d >= seq {
			return nil
		}
		if closed {
			return ErrClosed
		}
		if l.w != nil {
			if err := l.w.failure(); err != nil {
				return err
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// syncMarkedThrough is syncMarked for a snapshot Save or Subscription.Ack
// at seq (syncThrough, Ack): it returns once a reader in another process
// serves every event up to seq also after a power loss
// (servedAfterPowerLoss), which under SyncAlways takes the marks recording
// them durable, and fails (matching syscall.ENOSPC) when the mark that
// would record the last group cannot be written. The writer completes it
// after the appends queued with it (writer.deferMarked): their group's
// fsync makes those marks durable, so it fsyncs for it only when no group
// does, once for every such call queued together.
func (l *Log) syncMarkedThrough(ctx context.Context, seq uint64) error {
	if l.readOnly {
		return ErrReadOnly
	}
	r := &request{sync: true, marked: true, through: max(seq, 1), done: make(chan struct{})}
	return l.w.submit(ctx, r)
}
