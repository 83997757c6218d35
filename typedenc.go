package evlog

import (
	"bytes"
	"reflect"
	"strings"
	"sync"
	"unsafe"

	"github.com/vmihailenco/msgpack/v5"
)

// A flat struct payload — exported fields of the predeclared scalar types
// (string, bool, the integer and float types), no methods but
// SchemaVersion (SchemaVersioned), no msgpack tag
// options — is encoded by a plan compiled once per type: the very bytes
// msgpack's reflection writes (a map of field names to values, in field
// order), without its per-value type-cache look-ups (two sync.Map loads
// per event) and reflection. Any other payload goes through msgpack.
//
// A plan is only used once it has encoded sample values to the bytes
// msgpack writes for them (see compilePlan), so a msgpack behaviour it
// does not model (an extension registered for the type, say) makes it
// fall back rather than write different bytes.

// structPlan encodes one flat struct type.
type structPlan struct {
	fields []planField
}

type planField struct {
	name string
	off  uintptr
	kind reflect.Kind
}

// plans caches compiled plans by type (nil: not eligible); Typed looks a
// type up once per TypedLog, never per event.
var plans sync.Map // reflect.Type → *structPlan

// planFor returns the plan of T, or nil if T goes through msgpack.
func planFor[T any]() *structPlan {
	t := reflect.TypeFor[T]()
	if p, ok := plans.Load(t); ok {
		return p.(*structPlan)
	}
	p := compilePlan(t)
	plans.Store(t, p)
	return p
}

var scalarKinds = map[reflect.Kind]bool{
	reflect.String: true, reflect.Bool: true,
	reflect.Int: true, reflect.Int8: true, reflect.Int16: true, reflect.Int32: true, reflect.Int64: true,
	reflect.Uint: true, reflect.Uint8: true, reflect.Uint16: true, reflect.Uint32: true, reflect.Uint64: true,
	reflect.Float32: true, reflect.Float64: true,
}

// compilePlan returns t's plan, or nil if t is not a flat struct or the
// plan does not reproduce msgpack's bytes for sample values.
func compilePlan(t reflect.Type) *structPlan {
	if t.Kind() != reflect.Struct || !onlyVersionMethod(t) || !onlyVersionMethod(reflect.PointerTo(t)) {
		return nil
	}
	p := &structPlan{}
	seen := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("msgpack")
		if tag == "-" {
			continue
		}
		if f.Name == "_msgpack" || f.Anonymous || strings.ContainsAny(tag, ",'\"\\") {
			return nil // struct options, embedding, tag options: msgpack's business
		}
		if !f.IsExported() {
			continue
		}
		// Only the predeclared types: a named type may have an encoder
		// of its own.
		if !scalarKinds[f.Type.Kind()] || f.Type.PkgPath() != "" || f.Type.Name() != f.Type.Kind().String() {
			return nil
		}
		name := tag
		if name == "" {
			name = f.Name
		}
		if seen[name] {
			return nil
		}
		seen[name] = true
		p.fields = append(p.fields, planField{name: name, off: f.Offset, kind: f.Type.Kind()})
	}
	if !p.agrees(t) {
		return nil
	}
	return p
}

// agrees reports whether the plan encodes sample values of t (zero, small
// and extreme field values) to the bytes msgpack's reflection writes.
func (p *structPlan) agrees(t reflect.Type) bool {
	for sample := range 3 {
		v := reflect.New(t)
		for i := range t.NumField() {
			f := v.Elem().Field(i)
			if !f.CanSet() {
				continue
			}
			switch f.Kind() {
			case reflect.String:
				f.SetString(strings.Repeat("s", []int{0, 5, 300}[sample]))
			case reflect.Bool:
				f.SetBool(sample == 1)
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				f.SetInt([]int64{0, -3, -1 << (f.Type().Bits() - 1)}[sample])
			case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
				f.SetUint([]uint64{0, 7, 1<<f.Type().Bits() - 1}[sample])
			case reflect.Float32, reflect.Float64:
				f.SetFloat([]float64{0, 1.5, -1e30}[sample])
			}
		}
		var want, got payloadEncoder
		want.reset()
		got.reset()
		if err := want.enc.EncodeValue(v); err != nil {
			return false
		}
		if err := p.encode(got.enc, v.UnsafePointer()); err != nil {
			return false
		}
		if !bytes.Equal(want.w.b, got.w.b) {
			return false
		}
	}
	return true
}

// encode encodes the struct at v (of the plan's type) with enc, configured
// as payloadEncoder.reset configures it.
func (p *structPlan) encode(enc *msgpack.Encoder, v unsafe.Pointer) error {
	if err := enc.EncodeMapLen(len(p.fields)); err != nil {
		return err
	}
	for i := range p.fields {
		f := &p.fields[i]
		if err := enc.EncodeString(f.name); err != nil {
			return err
		}
		ptr := unsafe.Add(v, f.off)
		var err error
		switch f.kind {
		case reflect.String:
			err = enc.EncodeString(*(*string)(ptr))
		case reflect.Bool:
			err = enc.EncodeBool(*(*bool)(ptr))
		// Compact ints (UseCompactInts): every width as EncodeInt/EncodeUint.
		case reflect.Int:
			err = enc.EncodeInt(int64(*(*int)(ptr)))
		case reflect.Int8:
			err = enc.EncodeInt(int64(*(*int8)(ptr)))
		case reflect.Int16:
			err = enc.EncodeInt(int64(*(*int16)(ptr)))
		case reflect.Int32:
			err = enc.EncodeInt(int64(*(*int32)(ptr)))
		case reflect.Int64:
			err = enc.EncodeInt(*(*int64)(ptr))
		case reflect.Uint:
			err = enc.EncodeUint(uint64(*(*uint)(ptr)))
		case reflect.Uint8:
			err = enc.EncodeUint(uint64(*(*uint8)(ptr)))
		case reflect.Uint16:
			err = enc.EncodeUint(uint64(*(*uint16)(ptr)))
		case reflect.Uint32:
			err = enc.EncodeUint(uint64(*(*uint32)(ptr)))
		case reflect.Uint64:
			err = enc.EncodeUint(*(*uint64)(ptr))
		case reflect.Float32:
			err = enc.EncodeFloat32(*(*float32)(ptr))
		case reflect.Float64:
			err = enc.EncodeFloat64(*(*float64)(ptr))
		}
		if err != nil {
			return err
		}
	}
	return nil
}
