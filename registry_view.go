package evlog

import (
	"context"
	"fmt"
	"iter"
	"reflect"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/event"
)

// regBatch is a typed batch encoded through a registry: every event's
// entry is looked up once, when the batch is built.
type regBatch[E any] struct {
	all  []Batch[E]
	one  [1]Batch[E]
	ents []*regEntry // per event, parts in order
	base []int       // index in ents of each part's first event
	b1   [1]int
}

func newRegBatch[E any](r *Registry, parts []Batch[E]) (*regBatch[E], error) {
	b := &regBatch[E]{}
	if len(parts) == 1 {
		b.one[0] = parts[0]
		b.all, b.base = b.one[:], b.b1[:]
	} else {
		b.all, b.base = parts, make([]int, len(parts))
	}
	return b, b.resolve(r.tab.Load())
}

func (b *regBatch[E]) resolve(tab *regTable) error {
	n := 0
	for _, p := range b.all {
		n += len(p.Events)
	}
	b.ents = make([]*regEntry, n)
	k := 0
	// The last entry found by Go type: batches are mostly of one type,
	// and comparing types is cheaper than hashing one.
	var lastGo reflect.Type
	var last *regEntry
	for i := range b.all {
		p := &b.all[i]
		b.base[i] = k
		for j := range p.Events {
			ev := &p.Events[j]
			v := any(ev.Data)
			var ent *regEntry
			if gt := reflect.TypeOf(v); ev.Type == "" && gt != nil && gt == lastGo {
				ent = last
			} else {
				var err error
				if ent, err = tab.entry(ev.Type, v); err != nil {
					return fmt.Errorf("event %d of stream %q: %w", j, p.Stream, err)
				}
				if ev.Type == "" {
					lastGo, last = gt, ent
				}
			}
			if ev.SchemaVersion != 0 && ev.SchemaVersion != ent.version {
				return &SchemaVersionError{Stream: p.Stream, Index: j, Type: ent.name, SchemaVersion: ev.SchemaVersion, Declared: ent.version}
			}
			b.ents[k] = ent
			k++
		}
	}
	return nil
}

func (b *regBatch[E]) parts() int { return len(b.all) }

func (b *regBatch[E]) part(i int) (string, Expectation, int) {
	p := &b.all[i]
	return p.Stream, p.Expect, len(p.Events)
}

func (b *regBatch[E]) envelope(i, j int, e *Envelope) {
	ev := &b.all[i].Events[j]
	ent := b.ents[b.base[i]+j]
	*e = Envelope{Seq: ev.Seq, Stream: ev.Stream, Version: ev.Version, Type: ent.name, SchemaVersion: ent.version,
		ID: ev.ID, Time: ev.Time, Meta: ev.Meta}
}

func (b *regBatch[E]) id(i, j int) string { return b.all[i].Events[j].ID }

func (b *regBatch[E]) time(i, j int) time.Time { return b.all[i].Events[j].Time }

func (b *regBatch[E]) same(i, j int) bool {
	ev, pv := prevEvent(b.all, i, j)
	// Type and SchemaVersion come from the events' entries.
	k := b.base[i] + j
	return pv != nil && b.ents[k] == b.ents[k-1] && sameFields(ev, pv)
}

func (b *regBatch[E]) sameRun(i, j int) (int, bool) {
	if !b.same(i, j) {
		return 0, false
	}
	if j == 0 {
		return 0, true // a run starts at a part's second event
	}
	evs, ents, run := b.all[i].Events, b.ents[b.base[i]:], 0
	for k := j; k < len(evs); k++ {
		ev, pv := &evs[k], &evs[k-1]
		if ev.Time != pv.Time || ents[k] != ents[k-1] || !sameFields(ev, pv) {
			break
		}
		run++
	}
	return run, true
}

func (b *regBatch[E]) encode(enc *msgpack.Encoder, i, j int) error {
	return b.ents[b.base[i]+j].encode(enc, any(b.all[i].Events[j].Data))
}

// check: versions were checked against the entries when the batch was
// built, and registrations keep every entry's version at or above what
// the upcasters produce.
func (b *regBatch[E]) check(*Envelope) *SchemaVersionError { return nil }

func (t *TypedLog[T]) appendRegistered(ctx context.Context, stream string, expect Expectation, events []Event[T]) (Position, error) {
	pos, err := t.appendBatchRegistered(ctx, []Batch[T]{{Stream: stream, Expect: expect, Events: events}})
	if err != nil {
		return Position{}, err
	}
	return pos[0], nil
}

func (t *TypedLog[T]) appendBatchRegistered(ctx context.Context, parts []Batch[T]) ([]Position, error) {
	if len(parts) == 0 {
		return t.l.appendTyped(ctx, &regBatch[T]{}) // the log's "empty batch" error
	}
	src, err := newRegBatch(t.reg, parts)
	if err != nil {
		return nil, err
	}
	return t.l.appendTyped(ctx, src)
}

// WithRegistry makes a TypedLog encode and decode through r: T is any or
// an interface every registered payload type implements, and each event's
// Data is of its registered Go type (see Registry). WithUpcasters is then
// ignored: the registry's upcasters run.
func WithRegistry(r *Registry) TypedOption { return func(c *typedConfig) { c.reg = r } }

// Subscribe is Log.Subscribe decoding every event as the view's reads do:
// history then live appends, in seq order, with no gap and no duplicate.
// Events of evlog's system streams (DeletionsStream) are skipped, as
// Events skips them. A payload that does not decode ends the iteration
// with a *DecodeError.
func (t *TypedLog[T]) Subscribe(ctx context.Context, from uint64) iter.Seq2[Event[T], error] {
	return func(yield func(Event[T], error) bool) {
		decode := t.decoder()
		for env, err := range t.l.Subscribe(ctx, from) {
			if err != nil {
				yield(Event[T]{}, err)
				return
			}
			if event.IsSystemStream(env.Stream) {
				continue // deletion markers: not the view's payloads (as Events skips them)
			}
			ev, err := decode(&env)
			if err != nil {
				yield(ev, err)
				return
			}
			if !yield(ev, nil) {
				return
			}
		}
	}
}

// Category iterates the events of every stream of a category from seq
// from, decoded as the view's reads do (see Log.Category).
func (t *TypedLog[T]) Category(ctx context.Context, name string, from uint64) iter.Seq2[Event[T], error] {
	return iterate(func(fn func(*Envelope) error) error { return t.l.scanCategory(ctx, name, from, fn) }, t.decoder)
}
