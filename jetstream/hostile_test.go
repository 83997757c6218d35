package jetstream_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	evjs "github.com/evlog/evlog/jetstream"
)

// interleavingJS publishes for real, then (once) runs between before
// reporting a timeout: an append whose answer was lost, with another
// writer appending before the retry.
type interleavingJS struct {
	jetstream.JetStream
	between atomic.Pointer[func()]
}

func (j *interleavingJS) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	ack, err := j.JetStream.PublishMsg(ctx, m, opts...)
	if f := j.between.Swap(nil); err == nil && f != nil {
		(*f)()
		return nil, nats.ErrTimeout
	}
	return ack, err
}

// TestLostAnswerThenAnotherWriter: an append is committed, its answer is
// lost, and another writer appends to the same stream before the retry.
// The retry must report the append committed at its original position
// (not a conflict or ErrInvalid), and the event is stored once.
func TestLostAnswerThenAnotherWriter(t *testing.T) {
	s := startServer(t)
	for _, expect := range []event.Expectation{evlog.ExpectNoStream, evlog.ExpectAny} {
		t.Run(fmt.Sprint(int64(expect)), func(t *testing.T) {
			ij := &interleavingJS{JetStream: connect(t, s.ClientURL())}
			name := newLogName()
			l := openLog(t, ij, evjs.Config{Name: name, Replicas: 1, Retries: 3})
			other := openLog(t, connect(t, s.ClientURL()), evjs.Config{Name: name, Replicas: 1})
			ctx := t.Context()
			var otherErr error
			f := func() { _, otherErr = other.Append(ctx, "s", evlog.ExpectAny, ev("theirs")) }
			ij.between.Store(&f)
			pos, err := l.Append(ctx, "s", expect, ev("ours"))
			if otherErr != nil {
				t.Fatal(otherErr)
			}
			if err != nil {
				t.Fatalf("committed append whose answer was lost, retried after another writer's append: %v", err)
			}
			if pos.Seq != 1 || pos.Version != 1 {
				t.Errorf("position %+v, want seq 1 version 1 (where it was committed)", pos)
			}
			var ours int
			for _, e := range allEvents(t, l) {
				if e.Type == "ours" {
					ours++
				}
			}
			if ours != 1 {
				t.Errorf("the append is stored %d times, want once", ours)
			}
		})
	}
}

// forgetfulJS publishes for real but loses the first answer, and gives
// every later publish a fresh Nats-Msg-Id: a retry that reaches the
// server after the duplicate window expired (or a leader that lost its
// duplicate tracking), deterministically.
type forgetfulJS struct {
	jetstream.JetStream
	calls atomic.Int32
}

func (j *forgetfulJS) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if j.calls.Add(1) > 1 {
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprint("forgotten-", j.calls.Load()))
	}
	ack, err := j.JetStream.PublishMsg(ctx, m, opts...)
	if err == nil && j.calls.Load() == 1 {
		return nil, nats.ErrTimeout
	}
	return ack, err
}

// TestLostAnswerAfterDuplicateWindow: a committed append whose answer is
// lost is not stored again by its retry when the server no longer knows
// its Nats-Msg-Id: the retry first checks whether the lost attempt was
// committed, whatever the expectation.
func TestLostAnswerAfterDuplicateWindow(t *testing.T) {
	s := startServer(t)
	for _, expect := range []event.Expectation{evlog.ExpectNoStream, evlog.ExpectAny} {
		t.Run(fmt.Sprint(int64(expect)), func(t *testing.T) {
			fj := &forgetfulJS{JetStream: connect(t, s.ClientURL())}
			l := openLog(t, fj, evjs.Config{Replicas: 1, Retries: 3})
			pos, err := l.Append(t.Context(), "s", expect, ev("ours"))
			if err != nil {
				t.Fatalf("committed append whose answer was lost: %v", err)
			}
			if pos.Seq != 1 || pos.Version != 1 {
				t.Errorf("position %+v, want seq 1 version 1 (where it was committed)", pos)
			}
			if n := len(allEvents(t, l)); n != 1 {
				t.Errorf("the log holds %d events, want the append once", n)
			}
		})
	}
}

// refusingJS loses the first request on its way (a timeout, nothing
// published; the client cannot tell it from a lost answer, and the request
// may still be delivered) and refuses the next with a JetStream API error
// that does not say whether the first was committed.
type refusingJS struct {
	jetstream.JetStream
	calls atomic.Int32
}

func (j *refusingJS) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if j.calls.Add(1) == 1 {
		return nil, nats.ErrTimeout
	}
	return nil, &jetstream.APIError{Code: 500, ErrorCode: 10999, Description: "injected refusal"}
}

// TestRefusalAfterLostAttemptIsUnknown: an append refused by the server
// after an earlier attempt of it was lost has an unknown outcome (the lost
// attempt may yet be committed): the error must match ErrUnknownOutcome.
func TestRefusalAfterLostAttemptIsUnknown(t *testing.T) {
	s := startServer(t)
	rj := &refusingJS{JetStream: connect(t, s.ClientURL())}
	l := openLog(t, rj, evjs.Config{Replicas: 1, Retries: 3})
	_, err := l.Append(t.Context(), "s", evlog.ExpectAny, ev("e"))
	if !errors.Is(err, evjs.ErrUnknownOutcome) {
		t.Fatalf("append refused after a lost attempt = %v, want ErrUnknownOutcome", err)
	}
}

// TestReusedIDForDifferentEventNotARetry: an append whose last event
// reuses the ID of the stream's last event but is a different event (other
// type or data) is not a retry: it must not report success with the
// holder's position while writing nothing.
func TestReusedIDForDifferentEventNotARetry(t *testing.T) {
	s := startServer(t)
	l := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1})
	ctx := t.Context()
	if _, err := l.Append(ctx, "s", evlog.ExpectNoStream, event.Envelope{Type: "a", ID: "x", Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		expect event.Expectation
		e      event.Envelope
	}{
		{"any/type", evlog.ExpectAny, event.Envelope{Type: "b", ID: "x", Data: []byte("1")}},
		{"any/data", evlog.ExpectAny, event.Envelope{Type: "a", ID: "x", Data: []byte("2")}},
		{"stale/type", evlog.ExpectNoStream, event.Envelope{Type: "b", ID: "x", Data: []byte("1")}},
	} {
		pos, err := l.Append(ctx, "s", tc.expect, tc.e)
		if err == nil {
			t.Errorf("%s: append of a different event reusing ID x = %+v, nil; want an error (nothing was written)", tc.name, pos)
		}
	}
	if n := len(allEvents(t, l)); n != 1 {
		t.Errorf("log holds %d events, want 1", n)
	}
	// The true retry still succeeds.
	if _, err := l.Append(ctx, "s", evlog.ExpectNoStream, event.Envelope{Type: "a", ID: "x", Data: []byte("1")}); err != nil {
		t.Errorf("retry of the same event: %v", err)
	}
}

// TestCallerRetryAfterAnotherWriter: a caller retrying a one-event append
// with the same ID within the duplicate window, after another writer
// appended to the stream, gets the original position (the server names
// the original's seq), not ErrInvalid blaming a reused ID.
func TestCallerRetryAfterAnotherWriter(t *testing.T) {
	s := startServer(t)
	l := openLog(t, connect(t, s.ClientURL()), evjs.Config{Replicas: 1})
	ctx := t.Context()
	one := event.Envelope{Type: "e", ID: "order-1/created"}
	first, err := l.Append(ctx, "o", evlog.ExpectAny, one)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "o", evlog.ExpectAny, ev("later")); err != nil {
		t.Fatal(err)
	}
	again, err := l.Append(ctx, "o", evlog.ExpectAny, one)
	if err != nil {
		t.Fatalf("retry after another append to the stream: %v", err)
	}
	if again != first {
		t.Errorf("retry position %+v, want the original %+v", again, first)
	}
	if n := len(allEvents(t, l)); n != 2 {
		t.Errorf("log holds %d events, want 2", n)
	}
}
