package evlog

import (
	"slices"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/internal/vfs"
)

// TestDeletionMarkerOfALaterVersion: a marker type this version does not
// know is a later version's, "not ours to interpret" — but the table
// decoded every marker's Data as {stream, before} first, so one whose
// Data is shaped otherwise (naming no stream) made every read of the log
// fail with ErrCorrupt. It is now passed over, and the known markers
// around it still apply.
func TestDeletionMarkerOfALaterVersion(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{})
	defer l.Close()
	for _, s := range []string{"a-1", "b-1"} {
		if _, err := l.Append(ctx, s, ExpectAny, Envelope{Type: "t"}, Envelope{Type: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.TruncateStream(ctx, "a-1", 2); err != nil {
		t.Fatal(err)
	}
	data, err := msgpack.Marshal(map[string]any{"category": "b", "max_count": 1})
	if err != nil {
		t.Fatal(err)
	}
	batch := []AppendRequest{{Stream: DeletionsStream, Expect: ExpectAny, Events: []Envelope{{Type: "$later-kind", Data: data}}}}
	size, n, _, err := l.checkBatch(batch)
	if err != nil {
		t.Fatal(err)
	}
	r := &request{batch: batch, size: size, events: n, noIDs: true, done: make(chan struct{})}
	if err := l.w.submit(ctx, r); err != nil {
		t.Fatal(err)
	}
	for _, lg := range []*Log{l, reopenReadOnly(t, mem)} {
		var got []string
		for e, err := range lg.Events(ctx, 1) {
			if err != nil {
				t.Fatalf("reading beside a later version's marker: %v", err)
			}
			got = append(got, e.Stream)
		}
		if want := []string{"a-1", "b-1", "b-1", DeletionsStream, DeletionsStream}; !slices.Equal(got, want) {
			t.Fatalf("read %v, want %v", got, want)
		}
	}
}

func reopenReadOnly(t *testing.T, mem vfs.FS) *Log {
	t.Helper()
	l, err := openFS(mem, Options{}, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
