package jetstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
)

// maxGlobalRetries bounds the attempts of one append that keeps losing the
// race for the end of the log to other writers (each loss means another
// append succeeded, so the log makes progress).
const maxGlobalRetries = 1000

var (
	minTime = time.Unix(0, -1<<63).UTC()
	maxTime = time.Unix(0, 1<<63-1).UTC()
)

// Append appends events to stream, atomically, if the stream's current
// version satisfies expect, and returns the position of the last event.
// It has the contract of (*evlog.Log).Append, with these differences:
//
//   - At most MaxBatch events per call (ErrBatchTooLarge otherwise).
//   - An event's ID is its message's Nats-Msg-Id (an event without one
//     gets a random Nats-Msg-Id; its ID stays empty, as on the file log),
//     so an append retried with the same IDs within the duplicate window
//     is stored once. An append whose answer is lost is
//     retried that way (Config.Retries times), and a conflict met by a
//     retry, or by an append whose caller set the IDs, is resolved by
//     reading the stream: if its last event is ours (or, after a lost
//     attempt, one of the events appended to it since that attempt was
//     sent), the append succeeded; "ours" means the same ID, type, schema
//     version, meta and data (an ID reused for another event is no
//     retry: a conflict, or ErrInvalid). A retry after a lost attempt looks
//     first, before sending again, so it is stored once even when it
//     comes after the duplicate window. A one-event append that the
//     server reports as a duplicate is resolved at the seq the server
//     names, so the caller's retry of it succeeds within the duplicate
//     window even after other appends to the stream.
//     ErrUnknownOutcome means even that did not settle it.
//   - ctx bounds the whole append, retries included. Unlike the file log,
//     an append cut short by ctx after its events were sent cannot know
//     whether they were committed: the error then matches both
//     ErrUnknownOutcome and ctx.Err(). Before anything was sent it is
//     ctx.Err() alone.
//   - Durability is the servers': see README, "When one machine is not
//     enough".
func (l *Log) Append(ctx context.Context, stream string, expect event.Expectation, events ...event.Envelope) (event.Position, error) {
	pos, err := l.AppendBatch(ctx, []evlog.AppendRequest{{Stream: stream, Expect: expect, Events: events}})
	if err != nil {
		return event.Position{}, err
	}
	return pos[0], nil
}

// AppendBatch appends the events of several streams in one atomic batch
// (one JetStream atomic publish), each part with its own expectation: if
// any fails, nothing is written. A stream may appear only once per batch.
// Everything Append documents applies.
func (l *Log) AppendBatch(ctx context.Context, batch []evlog.AppendRequest) ([]event.Position, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	reqs, n, err := l.check(batch)
	if err != nil {
		return nil, err
	}
	a := &appendOp{l: l, reqs: reqs, n: n}
	return a.run(ctx)
}

// request is one validated part of a batch: its events are copies whose
// Stream and ID are set.
type request struct {
	stream    string
	expect    event.Expectation
	events    []event.Envelope
	msgIDs    []string // Nats-Msg-Id of each event: its ID, or a random one
	callerIDs bool     // the caller set the ID of the last event
}

func (l *Log) check(batch []evlog.AppendRequest) ([]request, int, error) {
	if len(batch) == 0 {
		return nil, 0, fmt.Errorf("%w: empty batch", evlog.ErrInvalid)
	}
	n := 0
	seen := map[string]bool{}
	reqs := make([]request, len(batch))
	for i, req := range batch {
		if !req.Expect.Valid() {
			return nil, 0, fmt.Errorf("%w: invalid expectation %d for stream %q", evlog.ErrInvalid, int64(req.Expect), req.Stream)
		}
		if len(req.Events) == 0 {
			return nil, 0, fmt.Errorf("%w: no events for stream %q", evlog.ErrInvalid, req.Stream)
		}
		if seen[req.Stream] {
			return nil, 0, fmt.Errorf("%w: stream %q appears twice in one batch; put all its events in one request", evlog.ErrInvalid, req.Stream)
		}
		seen[req.Stream] = true
		n += len(req.Events)
		if n > MaxBatch {
			return nil, 0, fmt.Errorf("%w (%w): a JetStream atomic batch holds at most %d events; nothing was written", ErrBatchTooLarge, evlog.ErrInvalid, MaxBatch)
		}
		r := request{stream: req.Stream, expect: req.Expect, events: make([]event.Envelope, len(req.Events)), msgIDs: make([]string, len(req.Events))}
		for j, e := range req.Events {
			if e.Seq != 0 || e.Version != 0 {
				return nil, 0, fmt.Errorf("%w: event %d of stream %q has Seq or Version set; the log assigns them, leave them zero", evlog.ErrInvalid, j, req.Stream)
			}
			if e.Stream != "" && e.Stream != req.Stream {
				return nil, 0, fmt.Errorf("%w: event %d names stream %q inside a request for stream %q", evlog.ErrInvalid, j, e.Stream, req.Stream)
			}
			e.Stream = req.Stream
			if err := e.ValidateFields(); err != nil {
				return nil, 0, err
			}
			if !e.Time.IsZero() && (e.Time.Before(minTime) || e.Time.After(maxTime)) {
				return nil, 0, fmt.Errorf("%w: event %d of stream %q: time %v outside the years 1678-2262", evlog.ErrInvalid, j, req.Stream, e.Time)
			}
			if e.SchemaVersion == 0 {
				e.SchemaVersion = event.DefaultSchemaVersion
			}
			if j == len(req.Events)-1 {
				r.callerIDs = e.ID != ""
			}
			r.msgIDs[j] = e.ID
			if e.ID == "" {
				r.msgIDs[j] = newID()
			}
			r.events[j] = e // Meta and Data are shared with the caller, read only
		}
		reqs[i] = r
	}
	return reqs, n, nil
}

// appendOp is one append in progress.
type appendOp struct {
	l       *Log
	reqs    []request
	n       int
	unknown bool // a previous attempt may have been committed
	// sentAfter holds, per part, the stream's last seq when the first
	// attempt was sent (nil before): a lost attempt's events, if
	// committed, are after it.
	sentAfter []uint64
}

// streamHead is the last event of a stream as the stream leader has it.
type streamHead struct {
	seq, version uint64
	msgID        string // its Nats-Msg-Id, unescaped
	time         time.Time
	event        event.Envelope // the event itself (Data included)
}

func (a *appendOp) run(ctx context.Context) ([]event.Position, error) {
	l := a.l
	lost := 0 // retries after a failure that may be transient
	// retry decides whether to try again after err, which left the
	// outcome open (sent) or was met before sending: timeouts, lost
	// connections and missing responders (a leader election) are retried,
	// Config.Retries times, with a growing pause; anything else ends the
	// append.
	retry := func(err error, sent bool) error {
		if sent {
			a.unknown = true
		}
		if !isUnknown(err) || ctx.Err() != nil {
			return a.failed(err)
		}
		if lost++; lost > l.cfg.Retries {
			if a.unknown {
				return fmt.Errorf("%w: %d attempts: %w", ErrUnknownOutcome, lost, err)
			}
			return fmt.Errorf("evlog/jetstream: append to %s: %d attempts: %w", l.streamName, lost, err)
		}
		l.logger.Warn("evlog/jetstream: append failed, retrying with the same event IDs", "stream", l.streamName, "attempt", lost, "sent", sent, "err", err)
		pause := min(100*time.Millisecond<<(lost-1), 2*time.Second)
		select {
		case <-ctx.Done():
			return a.failed(ctx.Err())
		case <-time.After(pause):
		}
		return nil
	}
	for attempt := 0; ; attempt++ {
		if attempt >= maxGlobalRetries {
			return nil, fmt.Errorf("evlog/jetstream: append lost the race for the end of the log %d times; retry later", attempt)
		}
		if err := ctx.Err(); err != nil {
			if a.unknown {
				return nil, fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
			}
			return nil, err
		}
		heads := make([]streamHead, len(a.reqs))
		for i, r := range a.reqs {
			h, err := l.head(ctx, r.stream)
			if err != nil {
				if rerr := retry(err, false); rerr != nil {
					return nil, rerr
				}
				heads = nil
				break
			}
			heads[i] = h
		}
		if heads == nil {
			continue
		}
		// Check expectations locally: a conflict needs no round trip.
		conflict := -1
		for i, r := range a.reqs {
			if !r.expect.Check(heads[i].version) {
				conflict = i
				break
			}
		}
		// After a lost attempt, look for it before sending again (also
		// when the expectations hold, as ExpectAny's always do): the
		// server recognises a resent Nats-Msg-Id only within the
		// duplicate window, and the retry may come later.
		if conflict >= 0 || a.unknown {
			pos, ok, err := a.ours(ctx, heads)
			if err != nil {
				if rerr := retry(err, false); rerr != nil {
					return nil, rerr
				}
				continue
			}
			if ok {
				return pos, nil
			}
		}
		if conflict >= 0 {
			r := a.reqs[conflict]
			return nil, &event.ConflictError{Stream: r.stream, Expected: r.expect, Actual: heads[conflict].version}
		}
		l.mu.Lock()
		lastSeq, lastTime := l.lastSeq, l.lastTime
		l.mu.Unlock()
		msgs, err := a.build(heads, lastSeq, lastTime)
		if err != nil {
			return nil, err
		}
		if a.sentAfter == nil {
			a.sentAfter = make([]uint64, len(a.reqs))
			for i := range a.reqs {
				a.sentAfter[i] = heads[i].seq
			}
		}
		last, dup, err := a.publish(ctx, msgs)
		switch code := apiCode(err); {
		case err == nil && !dup:
			return a.done(last, msgs)
		case err == nil && dup, code == codeBatchDuplicateID, code == codeDuplicateConflict:
			// A message ID seen before: ours from a lost attempt, or
			// reused by the caller for another event.
			if err == nil && len(msgs) == 1 {
				// The server named the holder's seq: look there.
				pos, ok, gerr := a.at(ctx, last)
				if gerr != nil {
					if rerr := retry(gerr, false); rerr != nil {
						return nil, rerr
					}
					continue
				}
				if ok {
					return pos, nil
				}
			}
			heads, herr := a.heads(ctx)
			if herr != nil {
				if rerr := retry(herr, false); rerr != nil {
					return nil, rerr
				}
				continue
			}
			pos, ok, err := a.ours(ctx, heads)
			if err != nil {
				if rerr := retry(err, false); rerr != nil {
					return nil, rerr
				}
				continue
			}
			if ok {
				return pos, nil
			}
			return nil, fmt.Errorf("%w: an event ID of this append was used by another event within the stream's duplicate window (%v); use unique IDs", evlog.ErrInvalid, l.cfg.Duplicates)
		case code == codeWrongLastSeq || code == codeWrongLastSeqConstant:
			// Another writer appended first (to the log or to one of our
			// streams): re-read and decide again.
			if err := l.refresh(ctx); err != nil {
				if rerr := retry(err, false); rerr != nil {
					return nil, rerr
				}
			}
			continue
		case isUnknown(err):
			if rerr := retry(err, true); rerr != nil {
				return nil, rerr
			}
			continue
		case code == codeBatchTooLarge:
			return nil, a.failed(fmt.Errorf("%w: the server refused %d events in one batch (%w)", ErrBatchTooLarge, a.n, err))
		case code != 0:
			// This attempt was refused, but a lost earlier one may yet
			// be committed.
			return nil, a.failed(fmt.Errorf("evlog/jetstream: append to %s: %w", l.streamName, err))
		case ctx.Err() != nil:
			// The caller gave up while the append was (maybe) on its way.
			return nil, fmt.Errorf("%w: %w", ErrUnknownOutcome, ctx.Err())
		default:
			return nil, a.failed(err)
		}
	}
}

// failed wraps an error that ends the append: after a lost attempt the
// outcome is unknown.
func (a *appendOp) failed(err error) error {
	if a.unknown {
		return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
	}
	return err
}

// isUnknown reports whether err leaves the outcome of a sent append open,
// or is a transient refusal worth retrying: a timeout, a lost connection,
// no responders, or a 503 from JetStream (no leader or quorum for now, as
// during an election).
func isUnknown(err error) bool {
	if api := apiError(err); api != nil && (api.Code == 503 || api.ErrorCode == codeUnavailable) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting)
}

// head returns the last event of stream (zero if none) from the leader.
func (l *Log) head(ctx context.Context, stream string) (streamHead, error) {
	m, found, err := l.getMsg(ctx, 0, l.subject(stream))
	if err != nil || !found {
		return streamHead{}, err
	}
	e, err := l.decode(m.Subject, m.Seq, m.hdr, m.Data)
	if err != nil {
		return streamHead{}, err
	}
	msgID, err := unescape(m.hdr.Get(jetstream.MsgIDHeader))
	if err != nil {
		return streamHead{}, fmt.Errorf("evlog/jetstream: message %d of %s: Nats-Msg-Id: %w", m.Seq, l.streamName, err)
	}
	return streamHead{seq: e.Seq, version: e.Version, msgID: msgID, time: e.Time, event: e}, nil
}

func (a *appendOp) heads(ctx context.Context) ([]streamHead, error) {
	out := make([]streamHead, len(a.reqs))
	for i, r := range a.reqs {
		h, err := a.l.head(ctx, r.stream)
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

// ours reports whether this append is committed (a previous attempt, or
// the caller's earlier call with the same IDs), and if so returns its
// positions. It is consulted only when the IDs identify the append: after
// a lost attempt, or when the caller set them. Each part is ours if the
// stream's last event is its last event, or, after a lost attempt, if its
// last event is among the stream's events since the first attempt was
// sent (other writers may have appended after it before the retry). An
// event holding our ID but differing from ours (type, schema version, meta
// or data) is another event reusing the ID, never ours.
func (a *appendOp) ours(ctx context.Context, heads []streamHead) ([]event.Position, bool, error) {
	pos := make([]event.Position, len(a.reqs))
	for i, r := range a.reqs {
		if !a.unknown && !r.callerIDs {
			return nil, false, nil
		}
		want, ev := r.msgIDs[len(r.msgIDs)-1], r.events[len(r.events)-1]
		if heads[i].seq != 0 && heads[i].msgID == want && sameEvent(heads[i].event, ev) {
			pos[i] = event.Position{Seq: heads[i].seq, Version: heads[i].version, Time: heads[i].time}
			continue
		}
		if !a.unknown || a.sentAfter == nil || heads[i].seq <= a.sentAfter[i] {
			return nil, false, nil
		}
		p, found, err := a.l.find(ctx, r.stream, a.sentAfter[i]+1, heads[i].seq, want, ev)
		if err != nil || !found {
			return nil, false, err
		}
		pos[i] = p
	}
	return pos, true, nil
}

// at reports whether the event at seq is this one-event append's last
// (and only) event, and if so returns its position.
func (a *appendOp) at(ctx context.Context, seq uint64) ([]event.Position, bool, error) {
	r := a.reqs[len(a.reqs)-1]
	m, found, err := a.l.getMsg(ctx, seq, "")
	if err != nil || !found || m.Subject != a.l.subject(r.stream) {
		return nil, false, err
	}
	e, err := a.l.decode(m.Subject, m.Seq, m.hdr, m.Data)
	if err != nil {
		return nil, false, err
	}
	id, err := unescape(m.hdr.Get(jetstream.MsgIDHeader))
	if err != nil || id != r.msgIDs[len(r.msgIDs)-1] || !sameEvent(e, r.events[len(r.events)-1]) {
		return nil, false, nil
	}
	return []event.Position{{Seq: e.Seq, Version: e.Version, Time: e.Time}}, true, nil
}

// find looks for the event of stream whose Nats-Msg-Id is msgID among
// those with seq in [from, to], and reports it found if it is the same
// event as ev.
func (l *Log) find(ctx context.Context, stream string, from, to uint64, msgID string, ev event.Envelope) (pos event.Position, found bool, err error) {
	var herr error
	err = l.read(ctx, from, to, l.subject(stream), func(e event.Envelope, h nats.Header) bool {
		id, err := unescape(h.Get(jetstream.MsgIDHeader))
		if err != nil {
			herr = fmt.Errorf("evlog/jetstream: message %d of %s: Nats-Msg-Id: %w", e.Seq, l.streamName, err)
			return false
		}
		if id == msgID {
			pos, found = event.Position{Seq: e.Seq, Version: e.Version, Time: e.Time}, sameEvent(e, ev)
			return false
		}
		return true
	})
	if herr != nil {
		return event.Position{}, false, herr
	}
	if err != nil && err != errStop {
		return event.Position{}, false, err
	}
	return pos, found, nil
}

// sameEvent reports whether stored is the event ev an append carries (its
// Time aside: a retry re-sends an explicit time or a zero one).
func sameEvent(stored, ev event.Envelope) bool {
	return stored.Stream == ev.Stream && stored.ID == ev.ID && stored.Type == ev.Type &&
		stored.SchemaVersion == ev.SchemaVersion && maps.Equal(stored.Meta, ev.Meta) &&
		bytes.Equal(stored.Data, ev.Data)
}

// build assigns versions and times and encodes the messages, with the
// expectations that make the commit conditional: the log's last seq (so
// that recorded times never decrease) on the first message, and each
// stream's last seq on its first message.
func (a *appendOp) build(heads []streamHead, lastSeq uint64, lastTime time.Time) ([]*nats.Msg, error) {
	now := a.l.cfg.Clock()
	at := lastTime
	msgs := make([]*nats.Msg, 0, a.n)
	for i, r := range a.reqs {
		for j := range r.events {
			e := r.events[j] // a copy
			e.Version = heads[i].version + uint64(j) + 1
			switch {
			case e.Time.IsZero():
				if now.After(at) {
					at = now
				}
				e.Time = at
			case e.Time.Before(at):
				return nil, fmt.Errorf("%w: event %d of stream %q is at %v, the log's last recorded time is %v",
					evlog.ErrTimeBackwards, j, r.stream, e.Time.UTC(), at.UTC())
			default:
				at = e.Time
			}
			m := a.l.encode(&e, r.msgIDs[j])
			if len(msgs) == 0 {
				m.Header.Set(jetstream.ExpectedLastSeqHeader, fmt.Sprint(lastSeq))
			}
			if j == 0 {
				m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, fmt.Sprint(heads[i].seq))
			}
			msgs = append(msgs, m)
		}
	}
	return msgs, nil
}

// publish sends the messages: one as a plain publish, more as an atomic
// batch. It returns the seq of the last one, and whether the server
// reported a duplicate.
func (a *appendOp) publish(ctx context.Context, msgs []*nats.Msg) (last uint64, dup bool, err error) {
	ctx, cancel := a.l.bound(ctx)
	defer cancel()
	if len(msgs) == 1 {
		ack, err := a.l.js.PublishMsg(ctx, msgs[0], jetstream.WithRetryAttempts(0))
		if err != nil {
			return 0, false, err
		}
		if ack.Stream != a.l.streamName {
			return 0, false, fmt.Errorf("evlog/jetstream: append acknowledged by stream %s, not %s: another stream claims the subjects", ack.Stream, a.l.streamName)
		}
		return ack.Sequence, ack.Duplicate, nil
	}
	ack, err := jetstreamext.PublishMsgBatch(ctx, a.l.js, msgs)
	if err != nil {
		return 0, false, err
	}
	if ack.Stream != a.l.streamName {
		return 0, false, fmt.Errorf("evlog/jetstream: append acknowledged by stream %s, not %s: another stream claims the subjects", ack.Stream, a.l.streamName)
	}
	return ack.Sequence, false, nil
}

// done turns a committed append into positions and advances what the Log
// knows of the end of the log.
func (a *appendOp) done(last uint64, msgs []*nats.Msg) ([]event.Position, error) {
	first := last - uint64(len(msgs)) + 1
	pos := make([]event.Position, len(a.reqs))
	k := 0
	var t time.Time
	for i, r := range a.reqs {
		k += len(r.events)
		m := msgs[k-1]
		e, err := a.l.decode(m.Subject, first+uint64(k-1), m.Header, nil)
		if err != nil {
			return nil, err
		}
		pos[i] = event.Position{Seq: e.Seq, Version: e.Version, Time: e.Time}
		t = e.Time
		a.l.learn(r.stream, e.Version, e.Seq)
	}
	l := a.l
	l.mu.Lock()
	if last > l.lastSeq {
		l.lastSeq, l.lastTime = last, t
	}
	l.mu.Unlock()
	return pos, nil
}
