package evlogcli

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/testhook"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/snapshot"
)

// besideCommands are the read-only commands run beside a writer: every
// one that reads DIR, and backup, which only reads it (its DEST is
// elsewhere).
func besideCommands(dir, tmp string) [][]string {
	return [][]string{
		{"inspect", dir},
		{"inspect", dir, "--format", "json"},
		{"dump", dir, "--format", "jsonl"},
		{"dump", dir, "--format", "jsonl", "--stream", "s-1"},
		{"tail", dir, "-n", "3"},
		{"streams", dir},
		{"subscriptions", dir},
		{"verify", dir},
		{"verify", dir, "--replay", "--format", "json"},
		{"state", dir},
		{"state", dir, "--seq", "5", "--format", "json"},
		{"snapshots", dir, "--format", "json"},
		{"backup", dir, filepath.Join(tmp, "backup")},
	}
}

var seqField = regexp.MustCompile(`(?m)^\{"seq":(\d+),`)

// TestCommandsAtEveryWriterOp stops a writer (in this process, on DIR)
// before each of its file operations, and between the 40-byte pieces of
// each of its writes (a write is not atomic to a reader in another
// process: a batch, a mark, a segment header or footer, a checkpoint or a
// subscription file partly written) — appends over rolls and
// checkpoints, subscription acks and a subscription's deletion, a
// deletion and a truncation, compactions, snapshot saves and prunes,
// Close, and a second writer's recovery — and runs every read-only
// command there. Each must succeed (exit 0) and change nothing in DIR
// (no file created, removed or modified, not even its time), and dump
// must print every acknowledged event not deleted, in seq order, once.
func TestCommandsAtEveryWriterOp(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every read-only command at each of a writer's file operations")
	}
	ctx := t.Context()
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "log")
	mustRun(t, "load", dir, "--count", "40", "--size", "40", "--batch", "4", "--streams", "3", "--segment-size", "4096")
	mustRun(t, "snapshot", dir)
	osfs, err := vfs.OpenOS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer osfs.Close()
	var (
		armed    atomic.Bool
		acked    atomic.Uint64
		deleted  = map[uint64]bool{} // seqs that may read as gone
		streamOf = map[uint64]string{}
		instants int
	)
	check := func(op vfs.Op) {
		instants++
		before := fileHashes(t, dir)
		want := acked.Load()
		for _, args := range besideCommands(dir, tmp) {
			r := run1(t, args...)
			os.RemoveAll(filepath.Join(tmp, "backup"))
			if r.code != 0 {
				t.Errorf("before %v: evlogctl %q: exit %d: %s%s", op, args, r.code, r.stdout, r.stderr)
				continue
			}
			if args[0] != "dump" || len(args) > 4 {
				continue
			}
			var prev uint64
			next := uint64(1)
			for _, m := range seqField.FindAllStringSubmatch(r.stdout, -1) {
				seq, _ := strconv.ParseUint(m[1], 10, 64)
				if seq <= prev {
					t.Errorf("before %v: dump printed seq %d after %d", op, seq, prev)
					break
				}
				for ; next < seq; next++ {
					if s, ok := streamOf[next]; ok && !deleted[next] {
						t.Errorf("before %v: dump left out seq %d (stream %s)", op, next, s)
					}
				}
				prev, next = seq, seq+1
			}
			if prev < want {
				t.Errorf("before %v: dump printed up to seq %d, %d acknowledged", op, prev, want)
			}
		}
		if after := fileHashes(t, dir); !maps.Equal(before, after) {
			for _, k := range slices.Sorted(maps.Keys(before)) {
				if after[k] != before[k] {
					t.Errorf("before %v: the read-only commands changed or removed %s", op, k)
				}
			}
			for _, k := range slices.Sorted(maps.Keys(after)) {
				if _, ok := before[k]; !ok {
					t.Errorf("before %v: the read-only commands created %s", op, k)
				}
			}
		}
	}
	wfs := vfs.SplitWrites{FS: vfs.NewFaulty(osfs, func(op vfs.Op) error {
		if armed.Load() && (op.Kind.Mutating() || op.Kind == vfs.OpLock) {
			check(op)
		}
		return nil
	}), N: 40}
	n := 0
	clock := func() func() time.Time {
		tm := testEpoch.Add(-time.Hour)
		return func() time.Time { tm = tm.Add(time.Millisecond); return tm }
	}()
	opts := evlog.Options{SegmentSize: evlog.MinSegmentSize, Clock: clock}
	open := func() *evlog.Log {
		t.Helper()
		l, err := testhook.Open(wfs, opts)
		if err != nil {
			t.Fatal(err)
		}
		return l.(*evlog.Log)
	}
	w := open()
	defer func() { w.Close() }()
	// The seqs the load wrote.
	for e, err := range w.Events(ctx, 1) {
		if err != nil {
			t.Fatal(err)
		}
		streamOf[e.Seq] = e.Stream
	}
	acked.Store(w.LastSeq())
	appendN := func(batches int) {
		t.Helper()
		for range batches {
			stream := fmt.Sprintf("s-%d", n%3)
			n++
			evs := []evlog.Envelope{{Type: "load", Data: []byte{0xa1, 'x'}}, {Type: "load", Data: []byte{0xc0}}}
			pos, err := w.Append(ctx, stream, evlog.ExpectAny, evs...)
			if err != nil {
				t.Fatal(err)
			}
			for s := pos.Seq - uint64(len(evs)) + 1; s <= pos.Seq; s++ {
				streamOf[s] = stream
			}
			acked.Store(pos.Seq)
		}
	}
	markGone := func(stream string, below uint64) {
		// below: the first seq kept (0: every one up to now goes).
		for s, st := range streamOf {
			if st == stream && (below == 0 || s < below) {
				deleted[s] = true
			}
		}
	}
	armed.Store(true)
	appendN(12)
	sub, err := w.Subscription("sub-1", evlog.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Ack(ctx, 5); err != nil {
		t.Fatal(err)
	}
	sub.Close()
	markGone("s-0", 0)
	if _, _, err := w.DeleteStream(ctx, "s-0"); err != nil {
		t.Fatal(err)
	}
	appendN(3)
	// The first seq of s-1 kept: its versions below 3 go.
	var firstKept uint64
	for e, err := range w.Stream(ctx, "s-1", 3) {
		if err != nil {
			t.Fatal(err)
		}
		firstKept = e.Seq
		break
	}
	markGone("s-1", firstKept)
	if _, err := w.TruncateStream(ctx, "s-1", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Compact(ctx, evlog.CompactOptions{TargetSize: 3 * evlog.MinSegmentSize, Compress: true}); err != nil {
		t.Fatal(err)
	}
	store, err := w.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{w.LastSeq() - 1, w.LastSeq()} {
		var tm time.Time
		for e, err := range w.Range(ctx, seq, seq) {
			if err != nil {
				t.Fatal(err)
			}
			tm = e.Time
		}
		if _, err := store.Save(ctx, snapshot.Meta{Name: "app", SchemaVersion: 1, LogID: w.LogID(), Seq: seq, Time: tm}, []byte{0x80}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := store.Prune(ctx, "app", snapshot.PrunePolicy{KeepLast: 1}); err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteSubscription("sub-1"); err != nil {
		t.Fatal(err)
	}
	appendN(3)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w = open() // recovery, beside the readers
	appendN(2)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	armed.Store(false)
	check(vfs.Op{Kind: vfs.OpLock, Name: "(the end)", Index: -1})
	t.Logf("the read-only commands ran at %d instants of the writer", instants)
}
