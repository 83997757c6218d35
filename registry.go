package evlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/segment"
)

// Registry is the one list of an application's event types: each event
// type name maps to its Go payload type, its current schema version and
// the upcasters that bring older stored payloads to it. With it, one typed
// view encodes and decodes events of every registered type, each to its
// own Go type:
//
//	reg := evlog.NewRegistry()
//	evlog.MustRegister[ItemAdded](reg, "item_added", 2, evlog.Upcast{Type: "item_added", From: 1, Fn: v1toV2})
//	evlog.MustRegister[ItemRemoved](reg, "item_removed", 1)
//
//	items := evlog.Typed[InventoryEvent](log, evlog.WithRegistry(reg)) // or Typed[any]
//	items.Append(ctx, "inventory-alice", evlog.ExpectAny,
//		evlog.Event[InventoryEvent]{Data: ItemAdded{Name: "sword"}}) // Type and SchemaVersion stamped
//	for e, err := range items.Stream(ctx, "inventory-alice", 1) {
//		switch d := e.Data.(type) { case ItemAdded: …; case ItemRemoved: … }
//	}
//
// The same registry serves the aggregate repository and projections
// through CodecFor (its Encode and Decode), which is how packages that
// never import evlog use it.
//
// Appending through it, an event's Type may be left empty when its Data's
// Go type is registered under one name; its SchemaVersion is stamped with
// the registered version, and any other explicit version fails with a
// *SchemaVersionError. Reading, each payload is upcast, then decoded into
// its registered Go type and handed out as E (an event whose Go type does
// not implement E is a *DecodeError). An event type the registry does not
// know is, by default, a *DecodeError matching ErrUnknownType; with
// KeepUnknown it is handed out with Data an Unknown (the raw envelope),
// when E can hold one.
//
// Why the root package: the registry encodes with the log's payload
// encoder (the typed append path writes straight into the writer's
// buffer) and runs its Upcasters; aggregate and projection stay free of
// the engine and take it as an aggregate.Codec or a decode func.
//
// Create one with NewRegistry (the zero Registry is not usable). Register
// everything at start-up; a Registry is safe for concurrent use,
// and registering while events are read or written is safe too (readers
// see the types registered before their call).
type Registry struct {
	up          *Upcasters
	keepUnknown bool
	mu          sync.Mutex               // serialises registrations
	tab         atomic.Pointer[regTable] // immutable once published
}

// regTable is a Registry's types; a registration publishes a new one, so
// look-ups take no lock.
type regTable struct {
	byName map[string]*regEntry
	// byGo maps a Go type to its entry; nil when the type is registered
	// under several names (then an event must name its Type).
	byGo map[reflect.Type]*regEntry
}

// regEntry is one registered event type.
type regEntry struct {
	name    string
	version uint32
	goType  reflect.Type
	encode  func(enc *msgpack.Encoder, v any) error
	decode  func(dec *msgpack.Decoder) (any, error)
	zero    any // the payload of an event without data
}

// RegistryOption configures a Registry.
type RegistryOption func(*Registry)

// KeepUnknown makes reads hand out events of unregistered types with Data
// an Unknown holding the raw (upcast) envelope, instead of failing with
// ErrUnknownType. The view's payload type must be able to hold an Unknown
// (any, or an interface Unknown implements); else such an event is still
// a *DecodeError.
func KeepUnknown() RegistryOption { return func(r *Registry) { r.keepUnknown = true } }

// NewRegistry returns an empty registry.
func NewRegistry(opts ...RegistryOption) *Registry {
	r := &Registry{up: NewUpcasters()}
	for _, o := range opts {
		o(r)
	}
	r.tab.Store(&regTable{byName: map[string]*regEntry{}, byGo: map[reflect.Type]*regEntry{}})
	return r
}

// Unknown is the Data of an event whose type the registry does not know,
// read with KeepUnknown: the stored envelope after upcasting, its payload
// (Data, the reader's own copy) not decoded.
type Unknown struct {
	Envelope
}

// ErrUnknownType: an event's type is not registered. Reading, the error is
// a *DecodeError wrapping an *UnknownTypeError; appending, an
// *UnknownTypeError that also matches ErrInvalid (nothing was written).
var ErrUnknownType = errors.New("evlog: event type not registered")

// UnknownTypeError names an event type, or payload Go type, a Registry
// does not know.
type UnknownTypeError struct {
	Type   string       // the event type ("" when the payload named none)
	GoType reflect.Type // the payload's Go type, when appending (nil: reading)
}

func (e *UnknownTypeError) Error() string {
	if e.GoType == nil {
		return fmt.Sprintf("evlog: event type %q is not registered: register it (evlog.Register) with an upcaster if it was renamed, or read with evlog.KeepUnknown to see it as an evlog.Unknown", e.Type)
	}
	if e.Type == "" {
		return fmt.Sprintf("evlog: payload type %v is not registered: register it (evlog.Register) under its event type name", e.GoType)
	}
	return fmt.Sprintf("evlog: event type %q (payload %v) is not registered: register it (evlog.Register)", e.Type, e.GoType)
}

// Is makes the error match ErrUnknownType, and ErrInvalid when appending.
func (e *UnknownTypeError) Is(target error) bool {
	return target == ErrUnknownType || (e.GoType != nil && target == ErrInvalid)
}

// Register adds event type name with payload type T at the current schema
// version version (0: the version T declares, see SchemaVersioned, else
// 1), and the upcasts that bring older stored payloads up to it (of name
// or of types renamed to it; see Upcast). Payloads are encoded and
// decoded with msgpack as Typed's are; T must be a concrete type (a
// struct, a pointer to one, …), which reads hand out as is.
//
// It fails, registering nothing, when name is empty or not a valid type
// name, already registered, T is an interface, version differs from the
// one T declares, an upcast is already registered, or the upcasts would
// produce a version of a registered type newer than its registered one
// (raise its version).
func Register[T any](r *Registry, name string, version uint32, ups ...Upcast) error {
	t := reflect.TypeFor[T]()
	if t.Kind() == reflect.Interface {
		return fmt.Errorf("evlog: registering %q: payload type %v is an interface; register each concrete type", name, t)
	}
	if d := declaredVersionOf(t); d != 0 {
		if version != 0 && version != d {
			return fmt.Errorf("evlog: registering %q: version %d, but %v declares version %d (SchemaVersion method)", name, version, t, d)
		}
		version = d
	}
	if version == 0 {
		version = event.DefaultSchemaVersion
	}
	ent := &regEntry{name: name, version: version, goType: t, encode: encoderFor[T](), decode: decoderFor[T](), zero: *new(T)}
	return r.add(ent, ups)
}

// MustRegister is Register that panics on error, for static set-up.
func MustRegister[T any](r *Registry, name string, version uint32, ups ...Upcast) {
	if err := Register[T](r, name, version, ups...); err != nil {
		panic(err)
	}
}

// Upcast adds upcasts without a type: steps of event types no longer
// registered (a type renamed into a registered one, say). It fails,
// adding none, as Register does.
func (r *Registry) Upcast(ups ...Upcast) error { return r.add(nil, ups) }

// add registers ent (nil: none) and ups, all or nothing.
func (r *Registry) add(ent *regEntry, ups []Upcast) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.tab.Load()
	what := "upcasts"
	if ent != nil {
		what = fmt.Sprintf("registering %q", ent.name)
		if !event.ValidName(ent.name) || ent.name == "" {
			return fmt.Errorf("evlog: %s: %w: an event type name must be non-empty, printable UTF-8", what, ErrInvalid)
		}
		if _, dup := old.byName[ent.name]; dup {
			return fmt.Errorf("evlog: %s: the event type is already registered", what)
		}
	}
	// Check the upcasts before registering any: valid, new, and producing
	// no version newer than a registered type's.
	seen := map[upKey]bool{}
	latest := map[string]uint32{}
	for _, up := range ups {
		if up.Type == "" || up.From == 0 {
			return fmt.Errorf("evlog: %s: an Upcast needs a Type and a From version >= 1", what)
		}
		k := upKey{up.Type, up.From}
		if seen[k] || r.up.has(k) {
			return fmt.Errorf("evlog: %s: an upcast for %s v%d is already registered", what, up.Type, up.From)
		}
		seen[k] = true
		to, ver := up.output()
		latest[to] = max(latest[to], ver)
	}
	for typ, v := range latest {
		e := old.byName[typ]
		if ent != nil && ent.name == typ {
			e = ent
		}
		if e != nil && e.version < v {
			return fmt.Errorf("evlog: %s: the upcasts turn %s events into version %d, newer than its registered version %d: register it at version %d", what, typ, v, e.version, v)
		}
	}
	if ent != nil && ent.version < r.up.Latest(ent.name) {
		return fmt.Errorf("evlog: %s: registered upcasts turn %s events into version %d: register it at version %d", what, ent.name, r.up.Latest(ent.name), r.up.Latest(ent.name))
	}
	for _, up := range ups {
		if err := r.up.Register(up); err != nil {
			return err // checked above: not reached
		}
	}
	if ent == nil {
		return nil
	}
	tab := &regTable{byName: make(map[string]*regEntry, len(old.byName)+1), byGo: make(map[reflect.Type]*regEntry, len(old.byGo)+1)}
	for k, v := range old.byName {
		tab.byName[k] = v
	}
	for k, v := range old.byGo {
		tab.byGo[k] = v
	}
	tab.byName[ent.name] = ent
	if _, several := tab.byGo[ent.goType]; several {
		tab.byGo[ent.goType] = nil
	} else {
		tab.byGo[ent.goType] = ent
	}
	r.tab.Store(tab)
	return nil
}

// Upcasters returns the registry's upcasters (to Upcast raw envelopes;
// register steps through Register or Registry.Upcast, which check them
// against the registered versions).
func (r *Registry) Upcasters() *Upcasters { return r.up }

// RegisteredType describes a registered event type.
type RegisteredType struct {
	Name          string
	SchemaVersion uint32
	GoType        reflect.Type
}

// Types returns the registered event types, by name.
func (r *Registry) Types() []RegisteredType {
	tab := r.tab.Load()
	out := make([]RegisteredType, 0, len(tab.byName))
	for _, e := range tab.byName {
		out = append(out, RegisteredType{Name: e.name, SchemaVersion: e.version, GoType: e.goType})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Lookup returns the registered event type name, if any.
func (r *Registry) Lookup(name string) (RegisteredType, bool) {
	e := r.tab.Load().byName[name]
	if e == nil {
		return RegisteredType{}, false
	}
	return RegisteredType{Name: e.name, SchemaVersion: e.version, GoType: e.goType}, true
}

// entry returns the entry of an event of type typ ("": by v's Go type)
// with payload v: one map look-up.
func (t *regTable) entry(typ string, v any) (*regEntry, error) {
	gt := reflect.TypeOf(v)
	if gt == nil {
		return nil, fmt.Errorf("%w: event %q has no Data (a nil payload): set it to a registered type's value", ErrInvalid, typ)
	}
	if typ != "" {
		e := t.byName[typ]
		if e == nil {
			return nil, &UnknownTypeError{Type: typ, GoType: gt}
		}
		if e.goType != gt {
			return nil, fmt.Errorf("%w: event type %q is registered with payload type %v, not %v", ErrInvalid, typ, e.goType, gt)
		}
		return e, nil
	}
	e, ok := t.byGo[gt]
	if !ok {
		return nil, &UnknownTypeError{GoType: gt}
	}
	if e == nil {
		return nil, fmt.Errorf("%w: payload type %v is registered under several event types: set the event's Type", ErrInvalid, gt)
	}
	return e, nil
}

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
