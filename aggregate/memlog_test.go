package aggregate_test

import (
	"context"
	"iter"
	"sync"
	"time"

	"github.com/evlog/evlog/event"
)

// memLog is a minimal in-memory aggregate.Log: no goroutines, no files,
// so that a test can run it inside a synctest bubble.
type memLog struct {
	mu     sync.Mutex
	events []event.Envelope
}

func (m *memLog) LogID() [16]byte { return [16]byte{1} }

func (m *memLog) LastSeq() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return uint64(len(m.events))
}

func (m *memLog) SeqAt(_ context.Context, t time.Time) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s uint64
	for _, e := range m.events {
		if !e.Time.After(t) {
			s = e.Seq
		}
	}
	return s, nil
}

func (m *memLog) snapshot() []event.Envelope {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.events[:len(m.events):len(m.events)]
}

func (m *memLog) Range(_ context.Context, from, to uint64) iter.Seq2[event.Envelope, error] {
	evs := m.snapshot()
	return func(yield func(event.Envelope, error) bool) {
		for _, e := range evs {
			if e.Seq >= from && e.Seq <= to && !yield(e, nil) {
				return
			}
		}
	}
}

func (m *memLog) Stream(_ context.Context, stream string, from uint64) iter.Seq2[event.Envelope, error] {
	evs := m.snapshot()
	return func(yield func(event.Envelope, error) bool) {
		for _, e := range evs {
			if e.Stream == stream && e.Version >= from && !yield(e, nil) {
				return
			}
		}
	}
}

func (m *memLog) Append(_ context.Context, stream string, expect event.Expectation, events ...event.Envelope) (event.Position, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ver uint64
	for _, e := range m.events {
		if e.Stream == stream {
			ver = e.Version
		}
	}
	if !expect.Check(ver) {
		return event.Position{}, &event.ConflictError{Stream: stream, Expected: expect, Actual: ver}
	}
	var pos event.Position
	for _, e := range events {
		ver++
		e.Stream, e.Version, e.Seq = stream, ver, uint64(len(m.events)+1)
		m.events = append(m.events, e)
		pos = event.Position{Seq: e.Seq, Version: e.Version, Time: e.Time}
	}
	return pos, nil
}
