package fuzz

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
)

// itemV5 is the current shape of "ItemAdded" (schema version 5).
type itemV5 struct {
	Name string `msgpack:"name"`
	Qty  int64  `msgpack:"qty"`
}

var errNotAMap = errors.New("payload is not a map")

// upcastChain is the registry FuzzUpcastChain decodes through, with
// pingPong steps of a chain converting "A" to "B" and back, raising the
// version at every step, and a cycle of pure renames ("C" to "D" and back
// at version 1) that must end with an error.
//
//	item_added v1 → v2   adds the defaulted field qty: 1 (a map is required)
//	item_added v2 → ItemAdded v2   pure rename (keeps the version)
//	ItemAdded v2 → v3    version bump
//	ItemAdded v3 → v4    a bare string becomes {name: s, qty: 1}
//	ItemAdded v4 → v5    version bump
//	note v1 → v2         anything becomes {text: fmt.Sprint(old)}
//	A v1 → B v2 → A v3 → …   pingPong steps
//	C v1 → D v1 → C v1 → …   a rename cycle
func upcastChain(pingPong int) (*evlog.Upcasters, map[string]string) {
	u := evlog.NewUpcasters()
	renames := map[string]string{} // "type vN" → "type' vN+1", for the model
	reg := func(up evlog.Upcast) {
		if err := u.Register(up); err != nil {
			panic(err)
		}
		to, ver := up.To, up.From+1
		if to == "" {
			to = up.Type
		} else if up.Fn == nil {
			ver = up.From // a pure rename keeps the version
		}
		renames[fmt.Sprintf("%s v%d", up.Type, up.From)] = fmt.Sprintf("%s v%d", to, ver)
	}
	reg(evlog.Upcast{Type: "item_added", From: 1, Fn: func(old any) (any, error) {
		switch m := old.(type) {
		case map[string]any:
			if _, ok := m["qty"]; !ok {
				m["qty"] = int64(1)
			}
			return m, nil
		case nil:
			return map[string]any{"qty": int64(1)}, nil
		}
		return nil, errNotAMap
	}})
	reg(evlog.Upcast{Type: "item_added", From: 2, To: "ItemAdded"})
	reg(evlog.Upcast{Type: "ItemAdded", From: 2})
	reg(evlog.Upcast{Type: "ItemAdded", From: 3, Fn: func(old any) (any, error) {
		if s, ok := old.(string); ok {
			return map[string]any{"name": s, "qty": int64(1)}, nil
		}
		return old, nil
	}})
	reg(evlog.Upcast{Type: "ItemAdded", From: 4})
	reg(evlog.Upcast{Type: "note", From: 1, Fn: func(old any) (any, error) {
		return map[string]any{"text": fmt.Sprint(old)}, nil
	}})
	typ := "A"
	same := func(old any) (any, error) { return old, nil }
	for v := range pingPong {
		next := map[string]string{"A": "B", "B": "A"}[typ]
		reg(evlog.Upcast{Type: typ, From: uint32(v + 1), To: next, Fn: same})
		typ = next
	}
	reg(evlog.Upcast{Type: "C", From: 1, To: "D"})
	reg(evlog.Upcast{Type: "D", From: 1, To: "C"})
	return u, renames
}

// chainEnd follows the model of the registry from (typ, ver): the type and
// version a payload ends at, and the number of steps.
func chainEnd(renames map[string]string, typ string, ver uint32) (string, uint32, int) {
	steps := 0
	for {
		next, ok := renames[fmt.Sprintf("%s v%d", typ, ver)]
		if !ok || steps > maxSteps {
			return typ, ver, steps // steps > maxSteps: a runaway chain or a cycle
		}
		var v uint32
		typ, _, _ = strings.Cut(next, " v")
		fmt.Sscanf(next[len(typ)+2:], "%d", &v)
		ver, steps = v, steps+1
	}
}

// maxSteps is the bound evlog puts on a chain (upcast.go maxUpcastSteps).
const maxSteps = 64

// FuzzUpcastChain decodes arbitrary payload bytes of a chosen type and
// schema version through a registry of upcasters (upcastChain) into a
// struct and into a generic map.
//
// The oracle: nothing panics or loops, one input allocates at most
// maxAlloc; Decode returns a *DecodeError or a value at the end of the
// chain (the type and version the registry model says), the chain of
// more than maxSteps steps fails; upcasting is idempotent (decoding the
// upcast envelope again changes nothing) and never modifies the caller's
// payload; an item_added v1 map without qty decodes with qty 1.
func FuzzUpcastChain(f *testing.F) {
	f.Fuzz(func(t *testing.T, payload []byte, typSel uint8, ver uint32, pingPong uint8) {
		checkInput(t, func() { checkUpcast(t, payload, typSel, ver, pingPong) })
	})
}

var upcastTypes = []string{"item_added", "ItemAdded", "note", "A", "B", "C", "D", "unknown"}

func checkUpcast(t *testing.T, payload []byte, typSel uint8, ver uint32, pp uint8) {
	pingPong := int(pp) % 100
	if pingPong == maxSteps {
		pingPong++ // exactly maxSteps steps: TestUpcastChainOfMaxSteps
	}
	u, renames := upcastChain(pingPong)
	typ := upcastTypes[int(typSel)%len(upcastTypes)]
	env := event.Envelope{Seq: 7, Stream: "s", Version: 1, Type: typ, SchemaVersion: ver, Data: payload}
	orig := bytes.Clone(payload)
	wantType, wantVer, steps := chainEnd(renames, typ, ver)

	up, uerr := u.Upcast(env)
	if !bytes.Equal(payload, orig) {
		t.Fatalf("Upcast modified the caller's payload")
	}
	switch {
	case steps > maxSteps:
		if uerr == nil {
			t.Fatalf("a chain of %d steps from %s v%d was run to the end (%s v%d); the bound is %d", steps, typ, ver, up.Type, up.SchemaVersion, maxSteps)
		}
	case uerr == nil && (up.Type != wantType || up.SchemaVersion != wantVer):
		t.Fatalf("Upcast(%s v%d) = %s v%d, the chain ends at %s v%d", typ, ver, up.Type, up.SchemaVersion, wantType, wantVer)
	}

	decoders := []func(event.Envelope) (string, uint32, any, error){
		func(e event.Envelope) (string, uint32, any, error) {
			ev, err := evlog.Decode[itemV5](e, u)
			return ev.Type, ev.SchemaVersion, ev.Data, err
		},
		func(e event.Envelope) (string, uint32, any, error) {
			ev, err := evlog.Decode[map[string]any](e, u)
			return ev.Type, ev.SchemaVersion, ev.Data, err
		},
	}
	for _, decode := range decoders {
		gotType, gotVer, val, err := decode(env)
		if !bytes.Equal(payload, orig) {
			t.Fatalf("Decode modified the caller's payload")
		}
		if err != nil {
			if _, ok := errors.AsType[*evlog.DecodeError](err); !ok {
				t.Fatalf("Decode(%s v%d): %v, want a *DecodeError", typ, ver, err)
			}
			if uerr == nil && steps <= maxSteps && err != nil && len(payload) == 0 {
				t.Fatalf("Decode(%s v%d) of an empty payload: %v", typ, ver, err)
			}
			continue
		}
		if steps > maxSteps {
			t.Fatalf("Decode ran a chain of %d steps (bound %d)", steps, maxSteps)
		}
		if uerr != nil {
			t.Fatalf("Decode(%s v%d) succeeded, Upcast failed: %v", typ, ver, uerr)
		}
		if gotType != wantType || gotVer != wantVer {
			t.Fatalf("Decode(%s v%d) = %s v%d, the chain ends at %s v%d", typ, ver, gotType, gotVer, wantType, wantVer)
		}
		// Idempotent: the upcast envelope is at the end of the chain.
		againType, againVer, again, err := decode(up)
		if err != nil || againType != gotType || againVer != gotVer || fmt.Sprintf("%#v", again) != fmt.Sprintf("%#v", val) {
			t.Fatalf("decoding the upcast envelope gives %s v%d %#v (%v), decoding the original %s v%d %#v", againType, againVer, again, err, gotType, gotVer, val)
		}
		// item_added v1 without qty gets the default.
		if typ == "item_added" && ver == 1 {
			var in map[string]any
			if msgpack.Unmarshal(payload, &in) == nil && in != nil {
				if _, has := in["qty"]; !has {
					if it, ok := val.(itemV5); ok && it.Qty != 1 {
						t.Fatalf("item_added v1 %v decodes with qty %d, want the default 1", in, it.Qty)
					}
				}
			}
		}
	}
}

// A chain of exactly maxSteps steps is within the bound: the registry's
// error says "more than 64 steps", and a type may well reach schema
// version 65. (A cycle cannot be registered: every step raises the
// version, so the bound only stops very long chains.)
func TestUpcastChainOfMaxSteps(t *testing.T) {
	for _, steps := range []int{maxSteps - 1, maxSteps, maxSteps + 1} {
		u, _ := upcastChain(steps)
		e := event.Envelope{Seq: 1, Stream: "s", Version: 1, Type: "A", SchemaVersion: 1, Data: []byte{0x80}}
		got, err := u.Upcast(e)
		switch {
		case steps <= maxSteps && err != nil:
			t.Errorf("a chain of %d steps: %v; want it run to v%d", steps, err, steps+1)
		case steps <= maxSteps && got.SchemaVersion != uint32(steps+1):
			t.Errorf("a chain of %d steps ends at v%d, want v%d", steps, got.SchemaVersion, steps+1)
		case steps > maxSteps && err == nil:
			t.Errorf("a chain of %d steps ran to %s v%d; the bound is %d", steps, got.Type, got.SchemaVersion, maxSteps)
		}
	}
}

// upcastSeeds returns FuzzUpcastChain's seeds: payloads of every shape the
// chain handles, at the start and in the middle of each chain.
func upcastSeeds() seedCorpus {
	enc := func(v any) []byte {
		var buf bytes.Buffer
		e := msgpack.NewEncoder(&buf)
		e.SetSortMapKeys(true) // deterministic seeds
		if err := e.Encode(v); err != nil {
			panic(err)
		}
		return buf.Bytes()
	}
	seeds := seedCorpus{}
	add := func(name string, payload []byte, typ uint8, ver uint32, pingPong uint8) {
		seeds[name] = corpusFile(payload, typ, ver, pingPong)
	}
	add("item-added-v1-map", enc(map[string]any{"name": "sword"}), 0, 1, 0)
	add("item-added-v1-map-with-qty", enc(map[string]any{"name": "sword", "qty": 3}), 0, 1, 0)
	add("item-added-v1-string", enc("sword"), 0, 1, 0)
	add("item-added-v1-empty", nil, 0, 1, 0)
	add("item-added-v2", enc(map[string]any{"name": "shield", "qty": 2}), 0, 2, 0)
	add("ItemAdded-v3-string", enc("potion"), 1, 3, 0)
	add("ItemAdded-v3-array", enc([]any{1, "x"}), 1, 3, 0)
	add("ItemAdded-v5", enc(itemV5{Name: "map", Qty: 9}), 1, 5, 0)
	add("note-v1-int", enc(42), 2, 1, 0)
	add("note-v1-nested", enc(map[string]any{"a": []any{1, 2, map[string]any{"b": nil}}}), 2, 1, 0)
	add("ping-pong-10", enc(map[string]any{"x": 1}), 3, 1, 10)
	add("ping-pong-63", enc(map[string]any{"x": 1}), 3, 1, 63)
	add("ping-pong-65", enc(map[string]any{"x": 1}), 3, 1, 65)
	add("ping-pong-mid", enc(map[string]any{"x": 1}), 4, 2, 99)
	add("unknown", enc(map[string]any{"x": 1}), 5, 1, 0)
	// Container-length bombs are in TestUpcastAllocationBomb (they crash
	// the process until upcast.go bounds its generic decode); move them
	// here once it does.
	add("truncated-str", []byte{0xdb, 0, 0, 1, 0, 'a'}, 1, 3, 0)
	add("deep", bytes.Repeat([]byte{0x91}, 200), 2, 1, 0)
	add("version-max", enc("x"), 0, 1<<32-1, 0)
	return seeds
}

// upcastBombs are payloads whose msgpack container headers claim 2³²−1
// elements in a few bytes (RELIABILITY.md 20).
// (A map32 header does the same through make(map, n), and grinds for
// minutes before it runs out of memory: it is left out to keep the test
// fast and its memory small.)
var upcastBombs = map[string][]byte{
	"found":   []byte("\xdd\x03\xfd}\xfd'Y\xeb"), // found by FuzzUpcastChain: 67 million elements, 3 GiB allocated
	"array32": {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01},
	"array16": {0xdc, 0xff, 0xff, 0x01},
	"nested":  {0x91, 0x91, 0xdd, 0xff, 0xff, 0xff, 0xff},
}

// An upcaster with a Fn decodes the stored payload generically before
// evlog.Decode's bound on msgpack containers (segment.CheckMsgpack) runs:
// a payload of a few bytes claiming 2³²−1 elements must give an error,
// with bounded allocation — not take the process down. Each payload runs
// in a child process, since an unbounded allocation is a fatal error.
func TestUpcastAllocationBomb(t *testing.T) {
	if name := os.Getenv("EVLOG_FUZZ_UPCAST_BOMB"); name != "" {
		u, _ := upcastChain(0)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := evlog.Decode[itemV5](event.Envelope{Seq: 1, Stream: "s", Version: 1, Type: "note", SchemaVersion: 1, Data: upcastBombs[name]}, u)
		runtime.ReadMemStats(&after)
		fmt.Printf("BOMB-RESULT err=%v alloc=%d\n", err, after.TotalAlloc-before.TotalAlloc)
		if err == nil || after.TotalAlloc-before.TotalAlloc > maxAlloc {
			os.Exit(3)
		}
		return
	}
	for _, name := range slices.Sorted(maps.Keys(upcastBombs)) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestUpcastAllocationBomb$", "-test.count=1")
		cmd.Env = append(os.Environ(), "EVLOG_FUZZ_UPCAST_BOMB="+name)
		out, err := cmd.CombinedOutput()
		if err != nil {
			first, _, _ := strings.Cut(string(out), "\n\n")
			t.Errorf("decoding the %d-byte %s bomb (note v1, through an upcaster with a Fn): %v; want a *DecodeError and at most %d MiB allocated:\n%s", len(upcastBombs[name]), name, err, maxAlloc>>20, first)
		}
	}
}
