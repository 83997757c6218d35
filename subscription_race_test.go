package evlog

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// openHookFS runs a hook, once, right after a file whose name has the
// given suffix is opened read-only (before it is read).
type openHookFS struct {
	vfs.FS
	mu     sync.Mutex
	suffix string
	hook   func()
}

func (f *openHookFS) Open(name string) (vfs.File, error) {
	file, err := f.FS.Open(name)
	f.mu.Lock()
	h := f.hook
	if !strings.HasSuffix(name, f.suffix) {
		h = nil
	}
	if h != nil {
		f.hook = nil
	}
	f.mu.Unlock()
	if err == nil && h != nil {
		h()
	}
	return file, err
}

// TestSubscriptionOpenBesideDelete: DeleteSubscription running while
// Log.Subscription reads the position file either fails with
// ErrSubscriptionInUse (and the subscription keeps its position) or
// deletes it first (and the subscription starts over). It used to
// succeed while the subscription went on with the deleted position, as if
// the delete had not happened.
func TestSubscriptionOpenBesideDelete(t *testing.T) {
	ctx := t.Context()
	fsys := &openHookFS{FS: vfs.NewMem(), suffix: SubscriptionExt}
	l := openMem(t, fsys, Options{})
	defer l.Close()
	for range 3 {
		if _, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "e"}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := l.Subscription("sub", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, 2); err != nil {
		t.Fatal(err)
	}
	s.Close()

	var delErr error
	fsys.mu.Lock()
	fsys.hook = func() { delErr = l.DeleteSubscription("sub") }
	fsys.mu.Unlock()
	s, err = l.Subscription("sub", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	switch {
	case delErr == nil && s.Position() != 0:
		t.Fatalf("DeleteSubscription succeeded while the subscription opened, which kept position %d", s.Position())
	case delErr != nil && !errors.Is(delErr, ErrSubscriptionInUse):
		t.Fatalf("DeleteSubscription: %v", delErr)
	case delErr != nil && s.Position() != 2:
		t.Fatalf("position %d after a refused delete, want 2", s.Position())
	}
}

// TestAckAfterClose: Ack on a closed log fails with ErrClosed and writes
// nothing: the process no longer holds the log's lock, so another writer
// may own the directory. It used to store the position.
func TestAckAfterClose(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	l := openMem(t, mem, Options{})
	if _, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "e"}); err != nil {
		t.Fatal(err)
	}
	s, err := l.Subscription("sub", Filter{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx, 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Ack after Close: %v, want ErrClosed", err)
	}
	if names, err := mem.List(); err != nil || slices.Contains(names, "sub"+SubscriptionExt) {
		t.Errorf("the position file was written after Close (%v, %v)", names, err)
	}
}

// TestCloseReleasesSubscriptions: closing a log releases the names of
// its subscriptions left open, so that the process-wide registry does not
// keep every closed Log (its indexes and buffers) reachable for good.
func TestCloseReleasesSubscriptions(t *testing.T) {
	l := openMem(t, vfs.NewMem(), Options{})
	for _, name := range []string{"a", "b"} {
		if _, err := l.Subscription(name, Filter{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var left []string
	openSubs.Range(func(k, _ any) bool {
		if k.(subKey).l == l {
			left = append(left, k.(subKey).name)
		}
		return true
	})
	if len(left) > 0 {
		t.Fatalf("subscriptions %q of the closed log are still registered", left)
	}
}

// TestFilteredSubscriptionSeesMarkersItAsksFor: a filtered subscription
// whose filter includes DeletionsStream and the marker types (as its doc
// says a subscriber keeping data must) is handed the deletion marker of
// a stream it follows.
func TestFilteredSubscriptionSeesMarkersItAsksFor(t *testing.T) {
	ctx := t.Context()
	l := openMem(t, vfs.NewMem(), Options{})
	defer l.Close()
	if _, err := l.Append(ctx, "order-1", ExpectAny, Envelope{Type: "placed"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.DeleteStream(ctx, "order-1"); err != nil {
		t.Fatal(err)
	}
	f := Filter{Categories: []string{"order"}, StreamPrefixes: []string{DeletionsStream}, Types: []string{"placed", TypeDeleted, TypeTruncate, TypeTombstone}}
	var got []string
	for e, err := range l.EventsFiltered(ctx, 0, f) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e.Type)
	}
	if want := []string{TypeDeleted}; !slices.Equal(got, want) {
		t.Fatalf("filtered events %q, want %q (the order's event is gone, its marker read)", got, want)
	}
}
