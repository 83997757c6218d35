package evlog

import "sync"

// Codec converts between typed events and raw envelopes, running the
// upcasters (if any) before decoding. It is the bridge to the packages that
// never import evlog: it satisfies aggregate.Codec[Event[T]], and its
// Decode serves as a replay.Spec or projection decoder. Safe for
// concurrent use; it reuses decoders.
type Codec[T any] struct {
	up   *Upcasters
	pool sync.Pool
}

// NewCodec returns a Codec for payloads of type T (up may be nil).
func NewCodec[T any](up *Upcasters) *Codec[T] {
	c := &Codec[T]{up: up}
	c.pool.New = func() any { return newTypedDecoder[T](up) }
	return c
}

// Decode decodes an envelope's payload as T (after upcasting).
func (c *Codec[T]) Decode(e Envelope) (Event[T], error) {
	d := c.pool.Get().(*typedDecoder[T])
	ev, err := d.decode(&e)
	c.pool.Put(d)
	return ev, err
}

// Encode encodes a typed event into an envelope.
func (c *Codec[T]) Encode(e Event[T]) (Envelope, error) { return Encode(e) }
