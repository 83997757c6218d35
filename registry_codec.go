package evlog

import (
	"bytes"
	"fmt"
	"reflect"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/segment"
)

var customEncoderType = reflect.TypeFor[msgpack.CustomEncoder]()

// encoderFor returns how the registry encodes a T held in an any: as
// Typed[T] does (a flat struct's plan, a CustomEncoder called directly,
// else msgpack).
func encoderFor[T any]() func(*msgpack.Encoder, any) error {
	if plan := planFor[T](); plan != nil {
		return func(enc *msgpack.Encoder, v any) error {
			x := v.(T) // a copy on the stack: the plan does not keep it
			return plan.encode(enc, unsafe.Pointer(&x))
		}
	}
	if reflect.PointerTo(reflect.TypeFor[T]()).Implements(customEncoderType) {
		return func(enc *msgpack.Encoder, v any) error {
			x := v.(T)
			return any(&x).(msgpack.CustomEncoder).EncodeMsgpack(enc)
		}
	}
	return func(enc *msgpack.Encoder, v any) error { return enc.Encode(v) }
}

// decoderFor returns how the registry decodes a T.
func decoderFor[T any]() func(*msgpack.Decoder) (any, error) {
	return func(dec *msgpack.Decoder) (any, error) {
		var x T
		if err := dec.Decode(&x); err != nil {
			return nil, err
		}
		return x, nil
	}
}

// encodeEvent encodes payload v of an event of type typ ("": by v's Go
// type) at version sv (0: stamped) into env.
func (r *Registry) encodeEvent(v any, typ string, sv uint32, env Envelope) (Envelope, error) {
	ent, err := r.tab.Load().entry(typ, v)
	if err != nil {
		return Envelope{}, err
	}
	if sv != 0 && sv != ent.version {
		return Envelope{}, &SchemaVersionError{Stream: env.Stream, Type: ent.name, SchemaVersion: sv, Declared: ent.version}
	}
	enc := getEncoder()
	defer putEncoder(enc)
	enc.enc.Reset(&enc.buf)
	enc.enc.UseCompactInts(true)
	enc.enc.SetSortMapKeys(true)
	if err := ent.encode(enc.enc, v); err != nil {
		return Envelope{}, fmt.Errorf("%w: encoding %s: %w", ErrInvalid, ent.name, err)
	}
	env.Type, env.SchemaVersion, env.Data = ent.name, ent.version, bytes.Clone(enc.buf.Bytes())
	return env, nil
}

// regDecoder decodes payloads through a registry into E, reusing its
// msgpack decoder.
type regDecoder[E any] struct {
	r   *Registry
	rd  bytes.Reader
	dec *msgpack.Decoder
	buf []byte
}

func newRegDecoder[E any](r *Registry) *regDecoder[E] {
	d := &regDecoder[E]{r: r}
	d.dec = msgpack.NewDecoder(&d.rd)
	return d
}

func (d *regDecoder[E]) decode(e *Envelope) (Event[E], error) {
	ev := Event[E]{Seq: e.Seq, Stream: e.Stream, Version: e.Version, Type: e.Type, SchemaVersion: e.SchemaVersion,
		ID: e.ID, Time: e.Time, Meta: e.Meta}
	fail := func(err error) (Event[E], error) {
		return ev, &DecodeError{Seq: e.Seq, Stream: e.Stream, Type: ev.Type, SchemaVersion: ev.SchemaVersion, Err: err}
	}
	typ, ver, data, err := d.r.up.apply(e.Type, e.SchemaVersion, e.Data, d.buf[:0])
	if err != nil {
		return fail(err)
	}
	if !sameSlice(data, e.Data) {
		d.buf = data[:0]
	}
	ev.Type, ev.SchemaVersion = typ, ver
	ent := d.r.tab.Load().byName[typ]
	if ent == nil {
		if d.r.keepUnknown {
			u := Unknown{Envelope: *e}
			u.Type, u.SchemaVersion, u.Data = typ, ver, bytes.Clone(data)
			if x, ok := any(u).(E); ok {
				ev.Data = x
				return ev, nil
			}
			return fail(fmt.Errorf("%w: %q, and the view's payload type %v cannot hold an evlog.Unknown: read it as any", ErrUnknownType, typ, reflect.TypeFor[E]()))
		}
		return fail(&UnknownTypeError{Type: typ})
	}
	if ver > ent.version {
		return fail(fmt.Errorf("stored at schema version %d, newer than the registered version %d: this program is older than the one that wrote the event; upgrade it", ver, ent.version))
	}
	x := ent.zero
	if len(data) > 0 {
		// Bound what msgpack may allocate: no container may claim more
		// elements than there are bytes left.
		if err := segment.CheckMsgpack(data); err != nil {
			return fail(err)
		}
		d.rd.Reset(data)
		d.dec.ResetReader(&d.rd)
		if x, err = ent.decode(d.dec); err != nil {
			return fail(err)
		}
	}
	v, ok := x.(E)
	if !ok {
		return fail(fmt.Errorf("payload type %v does not implement the view's %v", ent.goType, reflect.TypeFor[E]()))
	}
	ev.Data = v
	return ev, nil
}

// CodecFor returns a Codec of events of every type registered in r, their
// Data each of its registered Go type, held as E (any, or an interface
// every registered type implements). It satisfies aggregate.Codec[Event[E]]
// and its Decode serves as a replay.Spec or projection.Runner decoder, so
// the repository and projections use the registry without importing
// evlog. Encode stamps Type and SchemaVersion as TypedLog's appends do.
func CodecFor[E any](r *Registry) *Codec[E] {
	c := &Codec[E]{reg: r, up: r.up}
	c.pool.New = func() any { return newRegDecoder[E](r) }
	return c
}

// eventDecoder is a typed or registry decoder (Codec's pool holds them).
type eventDecoder[T any] interface {
	decode(*Envelope) (Event[T], error)
}
