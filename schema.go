package evlog

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/evlog/evlog/event"
)

// SchemaVersioned is implemented by a payload type that declares the
// schema version of the payloads it encodes: the version typed views
// (Typed, NewCodec, Encode) stamp on every event they write with it. It is
// called once per view, on the zero value, so it must return a constant.
//
// Declare it once, next to the type, and raise it (adding an Upcast from
// the old version) whenever the payload's shape changes:
//
//	type Item struct{ Name, Rarity string }
//
//	func (Item) SchemaVersion() uint32 { return 2 }
//
// A Registry entry declares the version of a registered type instead.
type SchemaVersioned interface {
	SchemaVersion() uint32
}

// ErrSchemaVersion: a typed view was asked to append an event at a schema
// version older than the one its readers expect — older than the payload
// type declares, or than the newest version its upcasters produce — so
// every read of it would upcast the current shape as if it were the old
// one. Nothing was written. The error is a *SchemaVersionError, and it also
// matches ErrInvalid.
var ErrSchemaVersion = errors.New("evlog: event appended at an outdated schema version")

// SchemaVersionError reports an event a typed view refused to append
// because of its schema version (see ErrSchemaVersion).
type SchemaVersionError struct {
	Stream string
	Index  int // the event's index in its stream's part of the append
	Type   string
	// SchemaVersion is the event's version: set explicitly, or stamped
	// from Declared.
	SchemaVersion uint32
	// Declared is the version the payload type or registry entry declares
	// (0: none).
	Declared uint32
	// Upcast is the newest version the view's upcasters produce for Type
	// (0: none), or, when an upcaster renames Type at SchemaVersion, that
	// version plus one.
	Upcast uint32
}

func (e *SchemaVersionError) Error() string {
	switch {
	case e.Declared != 0 && e.Declared < e.Upcast:
		return fmt.Sprintf("evlog: event %d of stream %q: %s payloads are declared at schema version %d, but the upcasters turn stored %s events into version %d: raise the declared version (SchemaVersion method or Registry entry) to %d",
			e.Index, e.Stream, e.Type, e.Declared, e.Type, e.Upcast, e.Upcast)
	case e.Declared != 0:
		return fmt.Sprintf("evlog: event %d of stream %q: %s at schema version %d, but its payload type is declared at version %d: leave SchemaVersion 0 to have it stamped, or append old payloads as raw Envelopes",
			e.Index, e.Stream, e.Type, e.SchemaVersion, e.Declared)
	default:
		return fmt.Sprintf("evlog: event %d of stream %q: %s at schema version %d, but the upcasters turn stored %s events into version %d, so every read would upcast this payload: encode it in the current shape and leave SchemaVersion 0 (stamped %d), or declare the version on the payload type (SchemaVersioned)",
			e.Index, e.Stream, e.Type, e.SchemaVersion, e.Type, e.Upcast, e.Upcast)
	}
}

// Is makes the error match ErrSchemaVersion and ErrInvalid.
func (e *SchemaVersionError) Is(target error) bool {
	return target == ErrSchemaVersion || target == ErrInvalid
}

// declaredVersion returns the schema version payload type T declares
// (SchemaVersioned, on T or *T), or 0.
func declaredVersion[T any]() uint32 {
	t := reflect.TypeFor[T]()
	if t.Kind() == reflect.Interface {
		return 0
	}
	return declaredVersionOf(t)
}

func declaredVersionOf(t reflect.Type) uint32 {
	sv := reflect.TypeFor[SchemaVersioned]()
	var v reflect.Value
	switch {
	case t.Kind() == reflect.Pointer && t.Implements(sv):
		v = reflect.New(t.Elem()) // a non-nil *E: the method may read its fields
	case t.Implements(sv):
		v = reflect.New(t).Elem()
	case reflect.PointerTo(t).Implements(sv):
		v = reflect.New(t)
	default:
		return 0
	}
	return v.Interface().(SchemaVersioned).SchemaVersion()
}

// onlyVersionMethod reports whether t has no methods but SchemaVersion,
// which msgpack ignores (a payload plan may encode it).
func onlyVersionMethod(t reflect.Type) bool {
	return t.NumMethod() == 0 || (t.NumMethod() == 1 && t.Method(0).Name == "SchemaVersion")
}

// stamper decides the schema version a typed view writes for each event
// type: the declared version, else the newest its upcasters produce; and
// refuses older ones. It caches the upcasters' answer for the last type
// (batches are mostly of one type). Not safe for concurrent use.
type stamper struct {
	declared uint32
	up       *Upcasters
	lastType string
	lastUp   upInfo
	cached   bool
}

func (s *stamper) info(typ string) upInfo {
	if s.up == nil {
		return upInfo{}
	}
	if !s.cached || typ != s.lastType {
		s.lastType, s.lastUp, s.cached = typ, s.up.info(typ), true
	}
	return s.lastUp
}

// stamp returns the version to write for an event of typ whose
// SchemaVersion is v (0: stamp one; 0 again: the log stores 1).
func (s *stamper) stamp(typ string, v uint32) uint32 {
	if v != 0 {
		return v
	}
	if s.declared != 0 {
		return s.declared
	}
	return s.info(typ).latest
}

// check returns the error of appending an event of typ at (stamped)
// version v, or nil.
func (s *stamper) check(typ string, v uint32) *SchemaVersionError {
	if s.declared == 0 && s.up == nil {
		return nil
	}
	return checkVersion(typ, v, s.declared, s.info(typ))
}

// checkVersion returns the error of writing an event of typ at version v
// (0: 1) when its type declares version declared (0: none) and the
// upcasters say in of it.
func checkVersion(typ string, v, declared uint32, in upInfo) *SchemaVersionError {
	if v == 0 {
		v = event.DefaultSchemaVersion
	}
	up := in.latest
	if in.converts(v) {
		up = max(up, v+1)
	}
	if v < up || (declared != 0 && v != declared) {
		return &SchemaVersionError{Type: typ, SchemaVersion: v, Declared: declared, Upcast: up}
	}
	return nil
}
