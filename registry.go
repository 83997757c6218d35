package evlog

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/event"
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
