package evlog

import "sync"

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
