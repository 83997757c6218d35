package evlog

// The conversion between typed events and raw envelopes: Codec, the
// package-level Decode and Encode, and the decoder they share.

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/segment"
)

// Codec converts between typed events and raw envelopes, running the
// upcasters (if any) before decoding. It is the bridge to the packages that
// never import evlog: it satisfies aggregate.Codec[Event[T]], and its
// Decode serves as a replay.Spec or projection decoder. Safe for
// concurrent use; it reuses decoders.
type Codec[T any] struct {
	up       *Upcasters
	declared uint32    // T's SchemaVersion() (0: none)
	reg      *Registry // CodecFor (nil: T's own)
	pool     sync.Pool
}

// NewCodec returns a Codec for payloads of type T (up may be nil).
func NewCodec[T any](up *Upcasters) *Codec[T] {
	c := &Codec[T]{up: up, declared: declaredVersion[T]()}
	c.pool.New = func() any { return newTypedDecoder[T](up) }
	return c
}

// Decode decodes an envelope's payload as T (after upcasting).
func (c *Codec[T]) Decode(e Envelope) (Event[T], error) {
	d := c.pool.Get().(eventDecoder[T])
	ev, err := d.decode(&e)
	c.pool.Put(d)
	return ev, err
}

// Encode encodes a typed event into an envelope. A zero SchemaVersion is
// stamped: with the version T declares (SchemaVersioned), else the newest
// the upcasters produce for the event's type; an older version fails with
// a *SchemaVersionError (ErrSchemaVersion), as Typed's appends do.
func (c *Codec[T]) Encode(e Event[T]) (Envelope, error) {
	if c.reg != nil {
		return c.reg.encodeEvent(any(e.Data), e.Type, e.SchemaVersion, Envelope{Seq: e.Seq, Stream: e.Stream, Version: e.Version, ID: e.ID, Time: e.Time, Meta: e.Meta})
	}
	return encodeStamped(e, stamper{declared: c.declared, up: c.up})
}

// Decode decodes a raw envelope's payload as T, after running the
// upcasters (nil: none) on it.
func Decode[T any](e Envelope, up *Upcasters) (Event[T], error) {
	return newTypedDecoder[T](up).decode(&e)
}

// Encode encodes an event's payload into a raw envelope. A zero
// SchemaVersion is stamped with the version T declares (SchemaVersioned);
// another version than the declared one fails with a *SchemaVersionError.
func Encode[T any](e Event[T]) (Envelope, error) {
	return encodeStamped(e, stamper{declared: declaredVersion[T]()})
}

// encodeStamped is Encode with the versions st stamps and checks.
func encodeStamped[T any](e Event[T], st stamper) (Envelope, error) {
	e.SchemaVersion = st.stamp(e.Type, e.SchemaVersion)
	if err := st.check(e.Type, e.SchemaVersion); err != nil {
		err.Stream = e.Stream
		return Envelope{}, err
	}
	enc := getEncoder()
	defer putEncoder(enc)
	if err := enc.enc.Encode(&e.Data); err != nil {
		return Envelope{}, fmt.Errorf("%w: encoding %s: %w", ErrInvalid, e.Type, err)
	}
	return Envelope{Seq: e.Seq, Stream: e.Stream, Version: e.Version, Type: e.Type, SchemaVersion: e.SchemaVersion,
		ID: e.ID, Time: e.Time, Meta: e.Meta, Data: bytes.Clone(enc.buf.Bytes())}, nil
}

// DecodeError reports a payload that could not be decoded into the
// requested type (a program error or a missing upcaster, not corruption:
// the record's checksum was valid).
type DecodeError struct {
	Seq           uint64
	Stream        string
	Type          string
	SchemaVersion uint32
	Err           error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("evlog: decoding event %d (%s v%d, stream %q): %v (is an upcaster missing for this type and schema version?)",
		e.Seq, e.Type, e.SchemaVersion, e.Stream, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// typedDecoder decodes payloads into T, reusing its msgpack decoder.
type typedDecoder[T any] struct {
	up   *Upcasters
	rd   bytes.Reader
	dec  *msgpack.Decoder
	buf  []byte
	data T
}

func newTypedDecoder[T any](up *Upcasters) *typedDecoder[T] {
	d := &typedDecoder[T]{up: up}
	d.dec = msgpack.NewDecoder(&d.rd)
	return d
}

func (d *typedDecoder[T]) decode(e *Envelope) (Event[T], error) {
	ev := Event[T]{Seq: e.Seq, Stream: e.Stream, Version: e.Version, Type: e.Type, SchemaVersion: e.SchemaVersion,
		ID: e.ID, Time: e.Time, Meta: e.Meta}
	data := e.Data
	if d.up != nil {
		var err error
		if ev.Type, ev.SchemaVersion, data, err = d.up.apply(e.Type, e.SchemaVersion, data, d.buf[:0]); err != nil {
			return ev, &DecodeError{Seq: e.Seq, Stream: e.Stream, Type: e.Type, SchemaVersion: e.SchemaVersion, Err: err}
		}
		if !sameSlice(data, e.Data) {
			d.buf = data[:0]
		}
	}
	if len(data) == 0 {
		return ev, nil
	}
	// Bound what msgpack may allocate: no container may claim more
	// elements than there are bytes left.
	if err := segment.CheckMsgpack(data); err != nil {
		return ev, &DecodeError{Seq: e.Seq, Stream: e.Stream, Type: ev.Type, SchemaVersion: ev.SchemaVersion, Err: err}
	}
	d.rd.Reset(data)
	d.dec.ResetReader(&d.rd)
	// Decode into a field of d (allocated once): decoding into ev.Data
	// would make ev escape, one allocation per event.
	var zero T
	d.data = zero
	if err := d.dec.Decode(&d.data); err != nil {
		return ev, &DecodeError{Seq: e.Seq, Stream: e.Stream, Type: ev.Type, SchemaVersion: ev.SchemaVersion, Err: err}
	}
	ev.Data = d.data
	return ev, nil
}
