package evlog

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// TestCompactDryRunReadOnly: a log opened read-only (beside its writer)
// plans a compaction — the plan the writer then carries out — and refuses
// to run one (ErrReadOnly), changing nothing.
func TestCompactDryRunReadOnly(t *testing.T) {
	ctx := t.Context()
	mem := vfs.NewMem()
	w := openMem(t, mem, Options{SegmentSize: MinSegmentSize})
	defer w.Close()
	for i := range 40 {
		if _, err := w.Append(ctx, "s-1", ExpectAny, Envelope{Type: "t", Data: make([]byte, 300+i)}); err != nil {
			t.Fatal(err)
		}
	}
	ro, err := openFS(mem, Options{SegmentSize: MinSegmentSize}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	ops := mem.Ops()
	o := CompactOptions{TargetSize: 4 * MinSegmentSize, DryRun: true}
	plan, err := ro.Compact(ctx, o)
	if err != nil {
		t.Fatalf("dry run on a read-only log: %v", err)
	}
	if len(plan.Groups) == 0 {
		t.Fatal("the dry run planned nothing")
	}
	if _, err := ro.Compact(ctx, CompactOptions{TargetSize: 4 * MinSegmentSize}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("compaction on a read-only log: %v, want ErrReadOnly", err)
	}
	if mem.Ops() != ops {
		t.Fatalf("the read-only log's compaction calls made %d file operations", mem.Ops()-ops)
	}
	want, err := w.Compact(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want.Groups, plan.Groups); d != "" {
		t.Fatalf("the read-only plan differs from the writer's (-writer +read-only):\n%s", d)
	}
}
