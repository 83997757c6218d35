package aggregate_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/snapshot"
)

// panickingSaves is a snapshot store whose Save panics, as a state whose
// encoder panics makes replay.Save panic.
type panickingSaves struct{ aggregate.Snapshots }

func (panickingSaves) Save(context.Context, snapshot.Meta, []byte) (snapshot.Meta, error) {
	panic("state encoder panicked")
}

// records keeps the records a slog handler gets.
type records struct {
	mu   sync.Mutex
	msgs []string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	rec.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
	r.mu.Lock()
	r.msgs = append(r.msgs, b.String())
	r.mu.Unlock()
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// TestBackgroundSnapshotPanicIsReported: a background snapshot whose save
// panics (a state encoder's bug) is reported to the Logger as an error
// naming the panic; it used to panic on the snapshot goroutine, where
// nothing can recover it, and so end the whole process. Execute and Close
// go on; Repository.Snapshot, called by the application, still panics in
// its caller.
func TestBackgroundSnapshotPanicIsReported(t *testing.T) {
	ctx := t.Context()
	l, err := evlog.Open(t.TempDir(), evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	logs := &records{}
	r := aggregate.NewRepository(l, aggregate.Snapshots(panickingSaves{store}), counterDef, aggregate.Codec[evlog.Event[inc]](evlog.NewCodec[inc](nil)),
		aggregate.Options{SnapshotEvery: 1, Logger: slog.New(logs)})
	for range 3 {
		if _, err := r.Execute(ctx, "c", add("a", 1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	found := false
	for _, m := range logs.msgs {
		if strings.HasPrefix(m, "ERROR") && strings.Contains(m, "state encoder panicked") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no error record naming the background snapshot's panic; records: %q", logs.msgs)
	}
	func() {
		defer func() {
			if p := recover(); p != "state encoder panicked" {
				t.Fatalf("Repository.Snapshot: recovered %v, want the save's panic in the caller", p)
			}
		}()
		r2 := aggregate.NewRepository(l, aggregate.Snapshots(panickingSaves{store}), counterDef, aggregate.Codec[evlog.Event[inc]](evlog.NewCodec[inc](nil)), aggregate.Options{})
		defer r2.Close()
		r2.Snapshot(ctx, "c")
	}()
}
