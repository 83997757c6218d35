package evlogcli

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
)

// TestSalvageKeepsRetention: salvage copies the log's retention records
// (events of $$retention) into the new log, which then applies the same
// retention; they are not reported as lost.
func TestSalvageKeepsRetention(t *testing.T) {
	ctx := t.Context()
	src, dst := filepath.Join(t.TempDir(), "log"), filepath.Join(t.TempDir(), "new")
	ret := map[string]evlog.Retention{"r": {MaxCount: 2}}
	l, err := evlog.Open(src, evlog.Options{Retention: ret})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := l.Append(ctx, "r-1", evlog.ExpectAny, evlog.Envelope{Type: "tick"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if r := run1(t, "salvage", src, dst); r.code != 0 {
		t.Fatalf("salvage: status %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	n, err := evlog.OpenReadOnly(dst, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	got, _, err := n.RecordedRetention(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(ret, got); d != "" {
		t.Errorf("the new log's retention (-want +got):\n%s", d)
	}
	var vers []uint64
	for e, err := range n.Stream(ctx, "r-1", 1) {
		if err != nil {
			t.Fatal(err)
		}
		vers = append(vers, e.Version)
	}
	// salvage copied the two events the log read (versions are
	// assigned afresh), and the new log keeps both.
	if !cmp.Equal(vers, []uint64{1, 2}) {
		t.Errorf("the new log reads versions %v of r-1, want [1 2]", vers)
	}
}
