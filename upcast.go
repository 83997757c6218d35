package evlog

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/segment"
)

// Upcasters evolve stored payloads: each registered Upcast turns the
// payload of one event type at one schema version into the payload at the
// next version (optionally under a new type name), and a chain of them runs
// before a payload is decoded into a Go type. Stored events are never
// rewritten; reading code sees only the current shape.
//
// Upcasters is safe for concurrent use; register everything before reading.
type Upcasters struct {
	mu sync.RWMutex
	m  map[upKey]Upcast
	// types says, per event type, the newest version the steps produce
	// and the versions a step converts (see info).
	types map[string]upInfo
}

// upInfo is what the upcasters say of one event type: the newest version
// they produce for it (0: none), and the versions at which a step
// converts (or renames) it. Its slice is never modified once published.
type upInfo struct {
	latest uint32
	from   []uint32
}

// converts reports whether a step applies to the type at version v.
func (in upInfo) converts(v uint32) bool { return slices.Contains(in.from, v) }

// info returns what the upcasters say of event type typ (nil u: nothing).
func (u *Upcasters) info(typ string) upInfo {
	if u == nil {
		return upInfo{}
	}
	u.mu.RLock()
	defer u.mu.RUnlock()
	return u.types[typ]
}

// Latest returns the newest schema version the upcasters produce for
// event type typ (0: none): the version a typed view stamps on typ's
// events when their payload type declares none, and the oldest it
// accepts.
func (u *Upcasters) Latest(typ string) uint32 { return u.info(typ).latest }

type upKey struct {
	typ  string
	from uint32
}

// Upcast is one step of schema evolution.
type Upcast struct {
	// Type and From select the payloads it applies to: events of Type
	// stored (or produced by an earlier step) at schema version From.
	Type string
	From uint32
	// To renames the event type ("" keeps Type).
	To string
	// Fn converts the payload, decoded generically (msgpack maps become
	// map[string]any, strings string, integers int64/uint64), into the
	// value to encode at version From+1.
	//
	// With Fn nil the payload is kept as is: with To set, the step is a
	// pure rename and keeps the version (type Type at From becomes type To
	// at From, which further steps of To may then convert); without To it
	// is a version bump to From+1.
	Fn func(old any) (any, error)
}

// maxUpcastSteps bounds a chain, so renames registered in a cycle (A to B,
// B to A at one version) end with an error instead of looping.
const maxUpcastSteps = 64

// output returns the type and version of the payloads the step produces.
func (up Upcast) output() (string, uint32) {
	if up.To == "" {
		return up.Type, up.From + 1
	}
	if up.Fn == nil {
		return up.To, up.From // a pure rename keeps the version
	}
	return up.To, up.From + 1
}

// has reports whether a step for k is registered.
func (u *Upcasters) has(k upKey) bool {
	u.mu.RLock()
	defer u.mu.RUnlock()
	_, ok := u.m[k]
	return ok
}

// NewUpcasters returns an empty registry.
func NewUpcasters() *Upcasters {
	return &Upcasters{m: make(map[upKey]Upcast), types: make(map[string]upInfo)}
}

// Register adds an upcast step. Registering two steps for the same type
// and version is an error.
func (u *Upcasters) Register(up Upcast) error {
	if up.Type == "" || up.From == 0 {
		return errors.New("evlog: Upcast needs a Type and a From version >= 1")
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	k := upKey{up.Type, up.From}
	if _, dup := u.m[k]; dup {
		return fmt.Errorf("evlog: an upcast for %s v%d is already registered", up.Type, up.From)
	}
	u.m[k] = up
	if u.types == nil {
		u.types = make(map[string]upInfo)
	}
	in := u.types[up.Type]
	in.from = append(slices.Clone(in.from), up.From)
	u.types[up.Type] = in
	to, ver := up.output()
	out := u.types[to]
	out.latest = max(out.latest, ver)
	u.types[to] = out
	return nil
}

// MustRegister is Register that panics on error, for static set-up.
func (u *Upcasters) MustRegister(ups ...Upcast) *Upcasters {
	for _, up := range ups {
		if err := u.Register(up); err != nil {
			panic(err)
		}
	}
	return u
}

// Upcast runs the chain on a raw envelope and returns it at the newest
// type and version the registry knows; e is not modified.
func (u *Upcasters) Upcast(e Envelope) (Envelope, error) {
	typ, ver, data, err := u.apply(e.Type, e.SchemaVersion, e.Data, nil)
	if err != nil {
		return e, err
	}
	e.Type, e.SchemaVersion = typ, ver
	if len(data) > 0 && !sameSlice(data, e.Data) {
		e.Data = bytes.Clone(data)
	}
	return e, nil
}

func sameSlice(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// apply runs the chain. The result aliases data when no step changed the
// payload, else buf (which may grow).
func (u *Upcasters) apply(typ string, ver uint32, data, buf []byte) (string, uint32, []byte, error) {
	if u == nil {
		return typ, ver, data, nil
	}
	u.mu.RLock()
	defer u.mu.RUnlock()
	if len(u.m) == 0 {
		return typ, ver, data, nil
	}
	for step := 0; ; step++ {
		up, ok := u.m[upKey{typ, ver}]
		if !ok {
			return typ, ver, data, nil
		}
		if step == maxUpcastSteps {
			return typ, ver, nil, fmt.Errorf("upcasting %s: more than %d steps", typ, maxUpcastSteps)
		}
		if up.Fn != nil {
			var old any
			if len(data) > 0 {
				// Bound what decoding may allocate (the payload is
				// untrusted bytes from disk).
				if err := segment.CheckMsgpack(data); err != nil {
					return typ, ver, nil, fmt.Errorf("upcasting %s v%d: %w", typ, ver, err)
				}
				if err := msgpack.Unmarshal(data, &old); err != nil {
					return typ, ver, nil, fmt.Errorf("upcasting %s v%d: decoding: %w", typ, ver, err)
				}
			}
			v, err := up.Fn(old)
			if err != nil {
				return typ, ver, nil, fmt.Errorf("upcasting %s v%d: %w", typ, ver, err)
			}
			enc := getEncoder()
			err = enc.enc.Encode(v)
			buf = append(buf[:0], enc.buf.Bytes()...)
			putEncoder(enc)
			if err != nil {
				return typ, ver, nil, fmt.Errorf("upcasting %s v%d: encoding: %w", typ, ver, err)
			}
			data = buf
		}
		if up.To != "" {
			typ = up.To
		}
		if up.Fn != nil || up.To == "" {
			ver++
		}
	}
}
