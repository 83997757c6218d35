package evlog

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// badNames are stream and type names that break text output: every append
// path rejects them with ErrInvalid and writes nothing.
var badNames = []struct {
	name    string
	corrupt string // the bad name
}{
	{"NUL", "a\x00b"},
	{"tab", "a\tb"},
	{"newline", "a\nb"},
	{"carriage return", "a\rb"},
	{"escape sequence", "a\x1b[31mb"},
	{"DEL", "a\x7fb"},
	{"C1 control", "a\u0085b"},
	{"line separator", "a\u2028b"},
	{"bidi override", "a\u202eb"},
	{"invalid UTF-8", "a\xffb"},
	{"truncated UTF-8", "a\xc3"},
	{"surrogate in UTF-8", "a\xed\xa0\x80b"},
	{"only a newline", "\n"},
}

func TestAppendRejectsBadNames(t *testing.T) {
	ctx := t.Context()
	l := openMem(t, vfs.NewMem(), Options{})
	defer l.Close()
	if _, err := l.Append(ctx, "fine", ExpectAny, Envelope{Type: "ok"}); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, l)
	for _, tc := range badNames {
		for _, where := range []string{"stream", "type", "batch stream", "batch type", "typed stream", "typed type", "typed batch stream", "typed later type"} {
			stream, typ := "s", "t"
			if where == "stream" || where == "batch stream" || where == "typed stream" || where == "typed batch stream" {
				stream = tc.corrupt
			} else {
				typ = tc.corrupt
			}
			var err error
			switch where {
			case "stream", "type":
				_, err = l.Append(ctx, stream, ExpectAny, Envelope{Type: typ})
			case "batch stream", "batch type":
				_, err = l.AppendBatch(ctx, []AppendRequest{
					{Stream: "fine", Expect: ExpectAny, Events: []Envelope{{Type: "ok"}}},
					{Stream: stream, Expect: ExpectAny, Events: []Envelope{{Type: typ}}},
				})
			case "typed batch stream": // after a valid part
				_, err = Typed[string](l).AppendBatch(ctx, []Batch[string]{
					{Stream: "fine", Expect: ExpectAny, Events: []Event[string]{{Type: "t", Data: "x"}}},
					{Stream: stream, Expect: ExpectAny, Events: []Event[string]{{Type: "t", Data: "x"}}},
				})
			case "typed later type": // after valid events of the same stream
				_, err = Typed[string](l).Append(ctx, stream, ExpectAny, Event[string]{Type: "ok", Data: "x"}, Event[string]{Type: "ok", Data: "x"}, Event[string]{Type: typ, Data: "x"})
			default:
				_, err = Typed[string](l).Append(ctx, stream, ExpectAny, Event[string]{Type: typ, Data: "x"})
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%s in the %s: got %v, want ErrInvalid", tc.name, where, err)
			}
		}
	}
	if d := cmp.Diff(before, readAll(t, l), envCmp...); d != "" {
		t.Fatalf("rejected appends changed the log:\n%s", d)
	}
	// Printable Unicode, spaces and punctuation are fine.
	for _, name := range []string{"café-42", "user 7", "订单-1", "a/b:c#d", "emoji-🙂", "x-\u00a0"} {
		if _, err := l.Append(ctx, name, ExpectAny, Envelope{Type: name}); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
}

// A log written before names were checked may hold any bytes in them: it
// still opens, reads (by seq, by stream) and takes appends.
func TestOldLogWithBadNamesStillReads(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	h := segment.Header{Version: 1, LogID: segment.LogID{0x6e, 15: 1}, BaseSeq: 1, Created: t0}
	f, _, err := segment.Create(mem, h)
	if err != nil {
		t.Fatal(err)
	}
	var want []Envelope
	var buf []byte
	durable := int64(segment.HeaderSize)
	for i, tc := range badNames {
		e := event.Envelope{Seq: uint64(i + 1), Stream: tc.corrupt, Version: 1, Type: tc.corrupt, SchemaVersion: 1, Time: t0, Data: []byte{0xc0}}
		buf = segment.AppendEventFrame(buf[:0], &e)
		buf = segment.AppendCommitFrame(buf, segment.Commit{FirstSeq: e.Seq, Count: 1, DurableEnd: durable})
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
		durable += int64(len(buf))
		want = append(want, e)
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		t.Fatal(err)
	}
	for _, readOnly := range []bool{true, false} { // the writer seals the old segment (a roll)
		l, err := openFS(mem, Options{}, readOnly)
		if err != nil {
			t.Fatalf("readOnly=%v: %v", readOnly, err)
		}
		if d := cmp.Diff(want, readAll(t, l), envCmp...); d != "" {
			t.Errorf("readOnly=%v:\n%s", readOnly, d)
		}
		for _, e := range want {
			var got []Envelope
			for g, err := range l.Stream(ctx, e.Stream, 1) {
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, g)
			}
			if len(got) != 1 || got[0].Seq != e.Seq {
				t.Errorf("readOnly=%v: stream %q: %v", readOnly, e.Stream, got)
			}
		}
		if !readOnly {
			if _, err := l.Append(ctx, "new", ExpectAny, Envelope{Type: "t"}); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Append(ctx, badNames[0].corrupt, ExpectAny, Envelope{Type: "t"}); !errors.Is(err, ErrInvalid) {
				t.Errorf("appending to an old stream with a bad name: %v, want ErrInvalid", err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
