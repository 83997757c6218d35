package replay

import (
	"context"
	"iter"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/event"
)

func TestScopeIncludes(t *testing.T) {
	for _, tc := range []struct {
		scope  Scope
		stream string
		want   bool
	}{
		{Scope{}, "acct-1", true},
		{Scope{}, "nocategory", true},
		{Scope{}, event.DeletionsStream, false},
		{Scope{Stream: "acct-1"}, "acct-1", true},
		{Scope{Stream: "acct-1"}, "acct-2", false},
		{Scope{Stream: "acct-1", Categories: []string{"other"}}, "acct-1", true}, // a stream scope ignores Categories
		{Scope{Categories: []string{"acct", "user"}}, "acct-1", true},
		{Scope{Categories: []string{"acct", "user"}}, "user-x-y", true},
		{Scope{Categories: []string{"acct", "user"}}, "other-1", false},
		{Scope{Categories: []string{"acct"}}, "acct", false}, // no category
		{Scope{Categories: []string{}}, "acct-1", false},     // an empty set: no stream
	} {
		if got := tc.scope.Includes(tc.stream); got != tc.want {
			t.Errorf("%+v.Includes(%q) = %v, want %v", tc.scope, tc.stream, got, tc.want)
		}
	}
}

// fakeSource is a Source with no events; the deletion interfaces are
// added by the types embedding it.
type fakeSource struct{}

func (fakeSource) LogID() [16]byte                                  { return [16]byte{} }
func (fakeSource) LastSeq() uint64                                  { return 0 }
func (fakeSource) SeqAt(context.Context, time.Time) (uint64, error) { return 0, nil }
func (fakeSource) Range(context.Context, uint64, uint64) iter.Seq2[event.Envelope, error] {
	return func(func(event.Envelope, error) bool) {}
}
func (fakeSource) Stream(context.Context, string, uint64) iter.Seq2[event.Envelope, error] {
	return func(func(event.Envelope, error) bool) {}
}

// unscoped says only the seq of its newest deletion (7, of "other-1").
type unscoped struct{ fakeSource }

func (unscoped) LastDeletionSeq(context.Context) (uint64, error) { return 7, nil }

// scoped deleted "acct-1" at seq 5 and "other-1" at seq 7.
type scoped struct{ unscoped }

func (scoped) LastDeletionIn(_ context.Context, in func(string) bool) (uint64, string, error) {
	switch {
	case in("other-1"):
		return 7, "other-1", nil
	case in("acct-1"):
		return 5, "acct-1", nil
	}
	return 0, "", nil
}

// TestLastDeletionIn: a source that says which stream each deletion
// deleted is asked about the scope; one that cannot is taken at its
// newest deletion, whatever it deleted (the conservative answer); one
// without deletions has none.
func TestLastDeletionIn(t *testing.T) {
	type got struct {
		Seq    uint64
		Stream string
	}
	acct := Scope{Categories: []string{"acct"}}
	for _, tc := range []struct {
		name  string
		src   Source
		scope Scope
		want  got
	}{
		{"no deletions", fakeSource{}, Scope{}, got{}},
		{"unscoped", unscoped{}, acct, got{7, ""}},
		{"scoped, whole log", scoped{}, Scope{}, got{7, "other-1"}},
		{"scoped, acct", scoped{}, acct, got{5, "acct-1"}},
		{"scoped, stream", scoped{}, Scope{Stream: "acct-2"}, got{}},
	} {
		seq, stream, err := LastDeletionIn(t.Context(), tc.src, tc.scope)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tc.want, got{seq, stream}); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}
