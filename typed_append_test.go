package evlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// sizedPayload encodes to about N bytes: the writer encodes typed payloads
// into its buffer, and data over 255 and 65,535 bytes needs a wider bin
// header than the one it reserves.
type sizedPayload struct {
	N    int
	Fill string
}

func sized(n int) sizedPayload { return sizedPayload{N: n, Fill: strings.Repeat("x", n)} }

// TestTypedAppendSameAsRaw: the typed path (payloads encoded by the
// writer straight into its buffer) writes the very bytes, and rolls
// segments at the very places, that appending the envelopes Encode
// returns writes, for payloads of every bin header width, in one-stream
// and multi-stream batches.
func TestTypedAppendSameAsRaw(t *testing.T) {
	sizes := []int{0, 10, 250, 300, 1000, 70_000, 5, 65_600, 40}
	opts := Options{SegmentSize: MinSegmentSize * 32, Clock: fakeClock(t0, time.Millisecond)}
	typedFS, rawFS := vfs.NewMem(), vfs.NewMem()
	tl := Typed[sizedPayload](openMem(t, typedFS, opts))
	opts.Clock = fakeClock(t0, time.Millisecond)
	rl := openMem(t, rawFS, opts)
	ctx := t.Context()
	for round := range 6 {
		var evs []Event[sizedPayload]
		for i, n := range sizes {
			id := "" // IDs of every length, unique in the log
			if i > 0 {
				id = strings.Repeat("i", i) + fmt.Sprint(round)
			}
			evs = append(evs, Event[sizedPayload]{Type: "sized", ID: id, Data: sized(n + round)})
		}
		var raws []Envelope
		for _, e := range evs {
			env, err := Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			raws = append(raws, env)
		}
		if round%2 == 0 {
			if _, err := tl.Append(ctx, "one", ExpectAny, evs...); err != nil {
				t.Fatal(err)
			}
			if _, err := rl.Append(ctx, "one", ExpectAny, raws...); err != nil {
				t.Fatal(err)
			}
			continue
		}
		var parts []Batch[sizedPayload]
		var reqs []AppendRequest
		for i := range evs {
			s := string(rune('a' + i))
			parts = append(parts, Batch[sizedPayload]{Stream: s, Expect: ExpectAny, Events: evs[i : i+1]})
			reqs = append(reqs, AppendRequest{Stream: s, Expect: ExpectAny, Events: raws[i : i+1]})
		}
		if _, err := tl.AppendBatch(ctx, parts); err != nil {
			t.Fatal(err)
		}
		if _, err := rl.AppendBatch(ctx, reqs); err != nil {
			t.Fatal(err)
		}
	}
	// A direct comparison: cmp.Diff over the 70 KB payloads, byte by byte
	// through reflection, was nearly all of the test's time. cmp.Diff only
	// explains a difference.
	if raw, typed := readAll(t, rl), readAll(t, tl.Log()); !envsEqual(raw, typed) {
		t.Fatalf("typed log differs from raw log (-raw +typed):\n%s", cmp.Diff(raw, typed, envCmp...))
	}
	if err := tl.Log().Close(); err != nil {
		t.Fatal(err)
	}
	if err := rl.Close(); err != nil {
		t.Fatal(err)
	}
	tn, _ := typedFS.List()
	rn, _ := rawFS.List()
	if diff := cmp.Diff(rn, tn); diff != "" {
		t.Fatalf("segments differ (-raw +typed):\n%s", diff)
	}
	segs := 0
	for _, name := range tn {
		if !strings.HasSuffix(name, ".seg") {
			continue
		}
		segs++
		// Headers (log ID, creation time) and marks (signed with a key of
		// the header) differ: compare the event and commit frames.
		a, b := eventFrames(t, readMemFile(t, rawFS, name)), eventFrames(t, readMemFile(t, typedFS, name))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s: typed event frames differ from raw ones", name)
		}
	}
	if segs < 3 {
		t.Fatalf("%d segments: the test should roll several", segs)
	}
}

func readMemFile(t *testing.T, fsys vfs.FS, name string) []byte {
	t.Helper()
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// failingPayload fails (or panics) to encode when told to.
type failingPayload struct {
	Fail, Panic bool
}

var errPayload = errors.New("payload refuses to encode")

func (p *failingPayload) EncodeMsgpack(enc *msgpack.Encoder) error {
	if p.Panic {
		panic("payload panicked")
	}
	if p.Fail {
		return errPayload
	}
	return enc.EncodeBool(false)
}

// TestTypedAppendEncodeFailure: a payload that fails to encode fails its
// append with ErrInvalid wrapping the encoder's error, one that panics
// panics in the appender with the same value; either way nothing of the
// batch is written and the log goes on appending.
func TestTypedAppendEncodeFailure(t *testing.T) {
	l := openMem(t, vfs.NewMem(), Options{})
	defer l.Close()
	tl := Typed[failingPayload](l)
	ctx := t.Context()
	ok := Event[failingPayload]{Type: "t"}
	if _, err := tl.Append(ctx, "s", ExpectAny, ok, Event[failingPayload]{Type: "t", Data: failingPayload{Fail: true}}); !errors.Is(err, ErrInvalid) || !errors.Is(err, errPayload) {
		t.Fatalf("Append of a payload that fails to encode: %v, want ErrInvalid wrapping %v", err, errPayload)
	}
	func() {
		defer func() {
			if p := recover(); p != "payload panicked" {
				t.Fatalf("recovered %v, want the encoder's panic value", p)
			}
		}()
		tl.AppendBatch(ctx, []Batch[failingPayload]{{Stream: "a", Events: []Event[failingPayload]{ok}}, {Stream: "b", Events: []Event[failingPayload]{{Type: "t", Data: failingPayload{Panic: true}}}}})
		t.Fatal("AppendBatch did not panic")
	}()
	pos, err := tl.Append(ctx, "s", ExpectNoStream, ok)
	if err != nil || pos.Seq != 1 {
		t.Fatalf("append after the failures: %+v, %v; want seq 1 in a new stream", pos, err)
	}
	if got := readAll(t, l); len(got) != 1 {
		t.Fatalf("%d events in the log, want 1", len(got))
	}
}

// TestTypedAppendLimits: a typed event over MaxEventSize, or a batch over
// MaxBatchSize, is ErrInvalid and writes nothing, as for raw envelopes.
func TestTypedAppendLimits(t *testing.T) {
	l := openMem(t, vfs.NewMem(), Options{MaxEventSize: 1000, MaxBatchSize: 4000})
	defer l.Close()
	tl := Typed[sizedPayload](l)
	ctx := t.Context()
	if _, err := tl.Append(ctx, "s", ExpectAny, Event[sizedPayload]{Type: "t", Data: sized(990)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("event over MaxEventSize: %v, want ErrInvalid", err)
	}
	evs := make([]Event[sizedPayload], 8)
	for i := range evs {
		evs[i] = Event[sizedPayload]{Type: "t", Data: sized(500)}
	}
	if _, err := tl.Append(ctx, "s", ExpectAny, evs...); !errors.Is(err, ErrInvalid) {
		t.Fatalf("batch over MaxBatchSize: %v, want ErrInvalid", err)
	}
	if _, err := tl.Append(ctx, "s", ExpectAny, Event[sizedPayload]{Type: "t", Seq: 3}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("event with Seq set: %v, want ErrInvalid", err)
	}
	if _, err := tl.Append(ctx, "s", ExpectNoStream, evs[:2]...); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, l); len(got) != 2 {
		t.Fatalf("%d events in the log, want 2", len(got))
	}
}

// eventFrames returns the offsets and bytes of the segment file's event and
// commit frames.
func eventFrames(t *testing.T, file []byte) []byte {
	t.Helper()
	r := segment.NewReader(bytes.NewReader(file), segment.HeaderSize, int64(len(file)))
	var out []byte
	for {
		f, err := r.Next()
		if err != nil {
			return out // EOF, or the footer
		}
		if f.Kind == segment.KindEvent || f.Kind == segment.KindCommit {
			out = binary.LittleEndian.AppendUint64(out, uint64(f.Offset))
			out = append(out, f.Payload...)
		}
	}
}
