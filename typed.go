package evlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/segment"
)

// Event is an event with a typed payload: the envelope's fields and Data
// decoded from (or to be encoded into) msgpack.
//
// When appending, set Type, Data and optionally SchemaVersion, ID, Time and
// Meta; Seq, Stream and Version are assigned by the log.
type Event[T any] struct {
	Seq           uint64
	Stream        string
	Version       uint64
	Type          string
	SchemaVersion uint32
	ID            string
	Time          time.Time
	Meta          map[string]string
	Data          T
}

// TypedLog is a typed view of a Log: payloads are encoded from and decoded
// into T with msgpack (github.com/vmihailenco/msgpack/v5; struct fields by
// name, honouring `msgpack` tags). One log may carry several payload types:
// use one TypedLog per type, or read raw Envelopes and Decode by Type.
// A TypedLog is as safe for concurrent use as its Log.
type TypedLog[T any] struct {
	l        *Log
	up       *Upcasters
	plan     *structPlan // a flat struct T's encoder (nil: msgpack's)
	declared uint32      // T's SchemaVersion() (0: none)
	reg      *Registry   // WithRegistry (nil: none)
}

// TypedOption configures a TypedLog.
type TypedOption func(*typedConfig)

type typedConfig struct {
	up  *Upcasters
	reg *Registry
}

// WithUpcasters makes the view run the upcasters on every payload before
// decoding it (see Upcasters).
func WithUpcasters(u *Upcasters) TypedOption { return func(c *typedConfig) { c.up = u } }

// Typed returns a typed view of l.
func Typed[T any](l *Log, opts ...TypedOption) *TypedLog[T] {
	var c typedConfig
	for _, o := range opts {
		o(&c)
	}
	return &TypedLog[T]{l: l, up: c.up, plan: planFor[T](), declared: declaredVersion[T](), reg: c.reg}
}

// Log returns the underlying log.
func (t *TypedLog[T]) Log() *Log { return t.l }

// Append encodes the events' payloads and appends them as Log.Append does.
//
// The writer encodes each payload straight into the batch it writes, while
// Append waits: Data is read during the call only. A payload type whose
// pointer implements msgpack.CustomEncoder is encoded by calling its
// EncodeMsgpack directly; any other through msgpack's Encoder.Encode. If
// encoding panics, Append panics with the same value (nothing is written).
func (t *TypedLog[T]) Append(ctx context.Context, stream string, expect Expectation, events ...Event[T]) (Position, error) {
	if t.reg != nil {
		return t.appendRegistered(ctx, stream, expect, events)
	}
	src := &typedBatch[T]{plan: t.plan, st: t.stamper()}
	src.one[0] = Batch[T]{Stream: stream, Expect: expect, Events: events}
	src.all = src.one[:]
	pos, err := t.l.appendTyped(ctx, src)
	if err != nil {
		return Position{}, err
	}
	return pos[0], nil
}

// Request encodes events into an AppendRequest, for Log.AppendBatch.
func (t *TypedLog[T]) Request(stream string, expect Expectation, events ...Event[T]) (AppendRequest, error) {
	var src batchSource
	if t.reg != nil {
		rb, err := newRegBatch(t.reg, []Batch[T]{{Stream: stream, Expect: expect, Events: events}})
		if err != nil {
			return AppendRequest{}, err
		}
		src = rb
	} else {
		src = &typedBatch[T]{all: []Batch[T]{{Stream: stream, Expect: expect, Events: events}}, plan: t.plan, st: t.stamper()}
	}
	reqs, err := encodeSource(src)
	if err != nil {
		return AppendRequest{}, err
	}
	return reqs[0], nil
}

// Batch is one stream's part of a typed AppendBatch.
type Batch[T any] struct {
	Stream string
	Expect Expectation
	Events []Event[T]
}

// AppendBatch encodes the parts' payloads (into one buffer) and appends
// them as one atomic batch, as Log.AppendBatch does; it returns, per part,
// the position of its last event.
//
// Payloads are encoded as Append documents.
func (t *TypedLog[T]) AppendBatch(ctx context.Context, parts []Batch[T]) ([]Position, error) {
	if t.reg != nil {
		return t.appendBatchRegistered(ctx, parts)
	}
	return t.l.appendTyped(ctx, &typedBatch[T]{all: parts, plan: t.plan, st: t.stamper()})
}

// batchSource is a typed batch: the writer encodes its payloads straight
// into its buffer, with no copy in between (see appendTyped).
type batchSource interface {
	parts() int
	part(i int) (stream string, expect Expectation, events int)
	// envelope sets e's fields from event j of part i, except Data.
	envelope(i, j int, e *Envelope)
	// id returns the ID of event j of part i (what envelope would set,
	// without building the envelope: the writer's ID check asks it of
	// every event).
	id(i, j int) string
	// encode encodes the payload of event j of part i with enc.
	encode(enc *msgpack.Encoder, i, j int) error
	// check returns the error of appending e (as envelope set it), beyond
	// the log's own rules (nil: none): its schema version.
	check(e *Envelope) *SchemaVersionError
	// same reports whether envelope would set, for event j of part i,
	// what it set for the event before it in the batch (event j-1, or
	// part i-1's last event when j is 0), Data and Time aside: the same
	// Seq, Stream, Version, Type, SchemaVersion and ID and no Meta (nil)
	// in either. Such an event is valid in the same part if the one
	// before it was and its own time is (checkTyped checks a time that
	// differs), and the writer encodes it from the envelope head of the
	// one before, rewriting what the log assigns and the time: neither
	// builds its envelope again. False for the batch's first event.
	same(i, j int) bool
	// sameRun reports what same reports for event j of part i, and the
	// length of the run of events from j on, in part i and from its
	// second event on, each the same as the one before it with its Time
	// too (0 if event j is not one): their envelopes are the one before's
	// but for what the log assigns, so checkTyped skips the run and the
	// writer neither asks for their times nor computes them again. One
	// call covers a run, where same and time cost two calls per event.
	sameRun(i, j int) (run int, same bool)
	// time returns the Time of event j of part i (what envelope would
	// set).
	time(i, j int) time.Time
}

type typedBatch[T any] struct {
	all  []Batch[T]
	one  [1]Batch[T] // Append's single part, without another allocation
	plan *structPlan
	st   stamper
}

func (b *typedBatch[T]) parts() int { return len(b.all) }

func (b *typedBatch[T]) part(i int) (string, Expectation, int) {
	p := &b.all[i]
	return p.Stream, p.Expect, len(p.Events)
}

func (b *typedBatch[T]) envelope(i, j int, e *Envelope) {
	ev := &b.all[i].Events[j]
	*e = Envelope{Seq: ev.Seq, Stream: ev.Stream, Version: ev.Version, Type: ev.Type, SchemaVersion: b.st.stamp(ev.Type, ev.SchemaVersion),
		ID: ev.ID, Time: ev.Time, Meta: ev.Meta}
}

func (b *typedBatch[T]) id(i, j int) string { return b.all[i].Events[j].ID }

func (b *typedBatch[T]) time(i, j int) time.Time { return b.all[i].Events[j].Time }

func (b *typedBatch[T]) same(i, j int) bool {
	ev, pv := prevEvent(b.all, i, j)
	// The stamped schema version depends on Type and SchemaVersion only.
	return pv != nil && ev.Type == pv.Type && ev.SchemaVersion == pv.SchemaVersion && sameFields(ev, pv)
}

func (b *typedBatch[T]) sameRun(i, j int) (int, bool) {
	if !b.same(i, j) {
		return 0, false
	}
	if j == 0 {
		return 0, true // a run starts at a part's second event
	}
	evs, run := b.all[i].Events, 0
	for k := j; k < len(evs); k++ {
		ev, pv := &evs[k], &evs[k-1]
		if ev.Time != pv.Time || ev.Type != pv.Type || ev.SchemaVersion != pv.SchemaVersion || !sameFields(ev, pv) {
			break
		}
		run++
	}
	return run, true
}

// prevEvent returns event j of part i and the event before it in the
// batch (nil for the first).
func prevEvent[T any](all []Batch[T], i, j int) (ev, pv *Event[T]) {
	evs := all[i].Events
	switch {
	case j > 0:
		return &evs[j], &evs[j-1]
	case i > 0 && len(all[i-1].Events) > 0:
		p := all[i-1].Events
		return &evs[j], &p[len(p)-1]
	}
	return &evs[j], nil
}

// sameFields reports whether ev and pv have the same Seq, Stream, Version
// and ID and no Meta: the envelope fields that batchSource.same compares
// besides the type and its schema version.
func sameFields[T any](ev, pv *Event[T]) bool {
	return ev.Meta == nil && pv.Meta == nil && ev.Seq == pv.Seq && ev.Version == pv.Version &&
		ev.Stream == pv.Stream && ev.ID == pv.ID
}

func (b *typedBatch[T]) check(e *Envelope) *SchemaVersionError {
	return b.st.check(e.Type, e.SchemaVersion)
}

func (b *typedBatch[T]) encode(enc *msgpack.Encoder, i, j int) error {
	p := &b.all[i].Events[j].Data
	if b.plan != nil {
		return b.plan.encode(enc, unsafe.Pointer(p))
	}
	// A CustomEncoder is called directly: msgpack's Encode would look
	// the type up in its type cache (a sync.Map) for every event.
	if c, ok := any(p).(msgpack.CustomEncoder); ok {
		return c.EncodeMsgpack(enc)
	}
	return enc.Encode(p)
}

// appendTyped appends a typed batch as AppendBatch appends raw ones.
func (l *Log) appendTyped(ctx context.Context, src batchSource) ([]Position, error) {
	if l.readOnly {
		return nil, ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids, err := l.checkTyped(src)
	if err != nil {
		return nil, err
	}
	if err := l.checkTypedDeleted(ctx, src); err != nil { // deletion.go
		return nil, err
	}
	r := &request{src: src, noIDs: !ids, done: make(chan struct{})}
	if err := l.w.submit(ctx, r); err != nil {
		if p, ok := errors.AsType[*encoderPanic](err); ok {
			panic(p.value)
		}
		return nil, err
	}
	return r.pos, nil
}

// checkTyped validates a typed batch as checkBatch validates raw ones,
// except for the sizes, which the writer checks once it has encoded the
// payloads, plus the reserved types (checkBatchDeleted's part of it for
// raw batches); it reports whether any event carries an ID.
func (l *Log) checkTyped(src batchSource) (ids bool, err error) {
	if src.parts() == 0 {
		return false, fmt.Errorf("%w: empty batch", ErrInvalid)
	}
	var e, prev Envelope // prev: the last event found valid (its names)
	var named string     // e's Stream as envelope set it
	var latest time.Time // Clock() + MaxClockSkew, read once, when needed
	for i := range src.parts() {
		stream, expect, n := src.part(i)
		if !expect.Valid() {
			return false, fmt.Errorf("%w: invalid expectation %d for stream %q", ErrInvalid, int64(expect), stream)
		}
		if n == 0 {
			return false, fmt.Errorf("%w: no events for stream %q", ErrInvalid, stream)
		}
		for j := 0; j < n; j++ {
			// An event with the fields of the one before it (which was
			// valid), but maybe its time: valid too in the same part if
			// its time is; in a new part e still holds those fields, and
			// only what depends on the stream is checked again. A run of
			// such events with the time of the one before too is valid
			// as a whole, since e holds that event's fields and time.
			run, same := src.sameRun(i, j)
			if run > 0 {
				j += run - 1
				continue
			}
			newTime := !same
			if same {
				if t := src.time(i, j); t != e.Time {
					e.Time, newTime = t, true
				}
			} else {
				src.envelope(i, j, &e)
				named = e.Stream
				if e.Seq != 0 || e.Version != 0 {
					return false, fmt.Errorf("%w: event %d of stream %q has Seq or Version set; the log assigns them, leave them zero", ErrInvalid, j, stream)
				}
			}
			if !same || j == 0 {
				if named != "" && named != stream {
					return false, fmt.Errorf("%w: event %d names stream %q inside a request for stream %q", ErrInvalid, j, named, stream)
				}
				e.Stream = stream
				if err := e.ValidateFieldsAfter(&prev); err != nil {
					return false, err
				}
				prev.Stream, prev.Type = e.Stream, e.Type
			}
			if !same {
				ids = ids || e.ID != ""
				if err := src.check(&e); err != nil {
					err.Stream, err.Index = stream, j
					return false, err
				}
			}
			if newTime {
				if !e.Time.IsZero() && (e.Time.Before(segment.MinTime) || e.Time.After(segment.MaxTime)) {
					return false, fmt.Errorf("%w: event %d of stream %q: time %v outside the years 1678-2262", ErrInvalid, j, stream, e.Time)
				}
				if err := l.checkFuture(&latest, stream, j, e.Time); err != nil {
					return false, err
				}
			}
			if !same {
				if err := checkReservedType(stream, e.Type); err != nil { // deletion.go
					return false, err
				}
			}
		}
	}
	return ids, nil
}

// encoderPanic carries a panic of a payload's encoder from the writer (on
// its goroutine, or on an appender's: writer.direct) to the appender whose
// payload it was, which panics with the same value.
type encoderPanic struct{ value any }

func (p *encoderPanic) Error() string {
	return fmt.Sprintf("evlog: encoding a payload panicked: %v", p.value)
}

// payloadEncoder is the writer's msgpack encoder, configured as the
// pooled ones, writing into the group buffer (w).
type payloadEncoder struct {
	w   appendWriter
	enc *msgpack.Encoder
}

func (p *payloadEncoder) reset() {
	p.w.b = nil
	p.enc = msgpack.NewEncoder(&p.w)
	p.configure()
}

// configure sets the encoder's options (as the pooled encoders'), undoing
// whatever a payload's EncodeMsgpack changed.
func (p *payloadEncoder) configure() {
	p.enc.Reset(&p.w)
	p.enc.UseCompactInts(true)
	p.enc.SetSortMapKeys(true)
}

// appendWriter is an io.Writer (and io.ByteWriter) appending to b.
type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

func (a *appendWriter) WriteByte(c byte) error {
	a.b = append(a.b, c)
	return nil
}

func (a *appendWriter) WriteString(s string) (int, error) {
	a.b = append(a.b, s...)
	return len(s), nil
}

// Events iterates the whole log from seq from, decoding every payload as T
// (see Log.Events). A payload that does not decode ends the iteration with
// a *DecodeError. Events of evlog's system streams (DeletionsStream), whose
// payloads are not T, are skipped.
func (t *TypedLog[T]) Events(ctx context.Context, from uint64) iter.Seq2[Event[T], error] {
	return iterate(func(fn func(*Envelope) error) error { return t.l.scan(ctx, from, 0, skipSystem(fn)) }, t.decoder)
}

// Range is Events limited to seqs in [from, to] (see Log.Range: to < from,
// including 0, yields nothing; system streams are skipped).
func (t *TypedLog[T]) Range(ctx context.Context, from, to uint64) iter.Seq2[Event[T], error] {
	return iterate(func(fn func(*Envelope) error) error { return t.l.scanRange(ctx, from, to, skipSystem(fn)) }, t.decoder)
}

// Stream iterates one stream from version fromVersion (see Log.Stream).
func (t *TypedLog[T]) Stream(ctx context.Context, stream string, fromVersion uint64) iter.Seq2[Event[T], error] {
	return iterate(func(fn func(*Envelope) error) error { return t.l.scanStream(ctx, stream, fromVersion, fn) }, t.decoder)
}

// decoder returns a conversion decoding payloads as T, with its own
// (reused) msgpack decoder.
func (t *TypedLog[T]) decoder() func(*Envelope) (Event[T], error) {
	if t.reg != nil {
		return newRegDecoder[T](t.reg).decode
	}
	return newTypedDecoder[T](t.up).decode
}

type pooledEncoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var encoderPool = sync.Pool{New: func() any {
	e := &pooledEncoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	e.enc.UseCompactInts(true)
	e.enc.SetSortMapKeys(true)
	return e
}}

func getEncoder() *pooledEncoder {
	e := encoderPool.Get().(*pooledEncoder)
	e.buf.Reset()
	return e
}

func putEncoder(e *pooledEncoder) {
	if e.buf.Cap() <= 1<<20 {
		encoderPool.Put(e)
	}
}
