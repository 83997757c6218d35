package evlog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// The deletion crash loop: a workload of appends, deletions of the three
// kinds and compactions (which redact), crashed at every mutating op under
// every crash model. After recovery the log must read as the model after
// the acknowledged steps (or after one more: the step the crash
// interrupted may or may not have landed), tombstoned streams must refuse
// appends, and once Compact runs again no payload of an event that reads
// as gone may remain on disk, nor come back with a retry of its append.

// delModel is the visible state: per stream, the versions readers see;
// appended counts the versions written; tomb the tombstoned streams.
type delModel struct {
	appended map[string]uint64
	before   map[string]uint64
	tomb     map[string]bool
}

func (m delModel) visible() map[string][]uint64 {
	out := make(map[string][]uint64)
	for s, n := range m.appended {
		if m.tomb[s] {
			continue
		}
		for v := max(m.before[s], 1); v <= n; v++ {
			out[s] = append(out[s], v)
		}
	}
	return out
}

func (m delModel) clone() delModel {
	return delModel{maps.Clone(m.appended), maps.Clone(m.before), maps.Clone(m.tomb)}
}

// delPayloadOf is the payload of version v of stream: it names both, so
// the bytes on disk tell which event they belong to.
func delPayloadOf(stream string, v uint64) []byte {
	return fmt.Appendf(nil, "\xa5PAYLOAD<%s/%03d>........................................", stream, v)
}

// delEvent is version v of stream as the workload appends it, with an ID
// so that a retry of it can be checked after recovery.
func delEvent(stream string, v uint64) Envelope {
	return Envelope{ID: fmt.Sprintf("id-%s/%d", stream, v), Type: "t", Data: delPayloadOf(stream, v)}
}

// delStep is one step of the workload: run performs it, apply applies it
// to the model.
type delStep struct {
	name  string
	run   func(ctx context.Context, l *Log) error
	apply func(m *delModel)
}

func delAppend(stream string, n int) delStep {
	return delStep{
		name: fmt.Sprintf("append %d to %s", n, stream),
		run: func(ctx context.Context, l *Log) error {
			cur, err := l.StreamVersion(ctx, stream)
			if err != nil {
				return err
			}
			evs := make([]Envelope, n)
			for i := range evs {
				evs[i] = delEvent(stream, cur+uint64(i)+1)
			}
			_, err = l.Append(ctx, stream, ExpectVersion(cur), evs...)
			return err
		},
		apply: func(m *delModel) { m.appended[stream] += uint64(n) },
	}
}

func delWorkload() []delStep {
	return []delStep{
		delAppend("a-0", 12), delAppend("a-1", 12), delAppend("a-2", 12), delAppend("a-3", 12),
		{name: "tombstone a-0", run: func(ctx context.Context, l *Log) error { _, err := l.TombstoneStream(ctx, "a-0"); return err },
			apply: func(m *delModel) { m.tomb["a-0"] = true }},
		{name: "truncate a-1 before 7", run: func(ctx context.Context, l *Log) error { _, err := l.TruncateStream(ctx, "a-1", 7); return err },
			apply: func(m *delModel) { m.before["a-1"] = max(m.before["a-1"], 7) }},
		{name: "soft-delete a-2", run: func(ctx context.Context, l *Log) error { _, _, err := l.DeleteStream(ctx, "a-2"); return err },
			apply: func(m *delModel) { m.before["a-2"] = m.appended["a-2"] + 1 }},
		delAppend("a-2", 4), delAppend("a-3", 20),
		{name: "compact", run: func(ctx context.Context, l *Log) error {
			_, err := l.Compact(ctx, CompactOptions{TargetSize: 3 * MinSegmentSize})
			return err
		}, apply: func(*delModel) {}},
		delAppend("a-1", 3),
		{name: "compact compressed", run: func(ctx context.Context, l *Log) error {
			_, err := l.Compact(ctx, CompactOptions{Compress: true})
			return err
		}, apply: func(*delModel) {}},
	}
}

// delUnsynced is the sync mode of the loop whose steps are never synced
// by the workload: an interval that never ticks while it runs. Only
// what the engine fsyncs by itself (seals, compactions) is durable, so
// after a crash the log may read as after any prefix of the steps run.
var delUnsynced = SyncInterval(time.Hour)

func newDelModel() delModel {
	return delModel{appended: map[string]uint64{}, before: map[string]uint64{}, tomb: map[string]bool{}}
}

// runDelWorkload runs the steps until the first error and returns how
// many were acknowledged.
// Under SyncNever each step is followed by Sync (acknowledged only then);
// under delUnsynced none is (the crash may take any suffix of the steps).
func runDelWorkload(ctx context.Context, l *Log, steps []delStep) int {
	for i, s := range steps {
		if err := s.run(ctx, l); err != nil {
			return i
		}
		if l.opts.Sync == SyncNever {
			if err := l.Sync(ctx); err != nil {
				return i
			}
		}
	}
	return len(steps)
}

// visibleEqual reports whether two visible states (readVisible, visible)
// are the same: what cmp.Equal checked, without its reflection (a tenth of
// the loop's time); cmp.Diff explains a difference.
func visibleEqual(a, b map[string][]uint64) bool {
	return maps.EqualFunc(a, b, slices.Equal[[]uint64])
}

// readVisible returns the versions of every user stream l yields. It
// borrows each payload: it only compares it.
func readVisible(ctx context.Context, l *Log) (map[string][]uint64, error) {
	out := make(map[string][]uint64)
	for e, err := range l.RangeBorrowed(ctx, 1, math.MaxUint64) {
		if err != nil {
			return nil, err
		}
		if e.Stream == DeletionsStream || e.Stream == "pad-1" {
			continue
		}
		if !bytes.Equal(e.Data, delPayloadOf(e.Stream, e.Version)) {
			return nil, fmt.Errorf("%s/%d has payload %.60q", e.Stream, e.Version, e.Data)
		}
		out[e.Stream] = append(out[e.Stream], e.Version)
	}
	return out, nil
}

// checkDelRecovered reopens a crashed directory after acked steps of
// the workload were acknowledged and checks the contract; "" if it holds.
func checkDelRecovered(ctx context.Context, fsys vfs.FS, mem *vfs.Mem, sync SyncMode, steps []delStep, acked int) string {
	l, err := openFS(fsys, crashOpts(sync), false)
	if err != nil {
		return fmt.Sprintf("reopen failed: %v", err)
	}
	defer l.Close()
	got, err := readVisible(ctx, l)
	if err != nil {
		return fmt.Sprintf("reading after recovery: %v", err)
	}
	m := newDelModel()
	for _, s := range steps[:acked] {
		s.apply(&m)
	}
	match := m
	if sync == delUnsynced {
		// Any prefix of the steps run (and the one interrupted) may have
		// survived, but nothing else: a redaction without the marker
		// that made its events gone, say, is no such state.
		for k := min(acked+1, len(steps)); ; k-- {
			match = newDelModel()
			for _, s := range steps[:k] {
				s.apply(&match)
			}
			if visibleEqual(match.visible(), got) {
				break
			}
			if k == 0 {
				return fmt.Sprintf("after %d unsynced steps the log reads as after none of their prefixes: %v", acked, got)
			}
		}
	} else if want := m.visible(); !visibleEqual(want, got) {
		if acked == len(steps) {
			return fmt.Sprintf("after every step, the log reads (-want +got):\n%s", cmp.Diff(want, got))
		}
		next := m.clone()
		steps[acked].apply(&next)
		if want2 := next.visible(); !visibleEqual(want2, got) {
			return fmt.Sprintf("after %d acknowledged steps (the next: %s) the log reads neither (-want +got):\n%s", acked, steps[acked].name, cmp.Diff(want, got))
		}
		match = next
	}
	for s := range match.tomb {
		if _, err := l.Append(ctx, s, ExpectAny, Envelope{Type: "t"}); !errors.Is(err, ErrStreamDeleted) {
			return fmt.Sprintf("append to tombstoned %s after recovery: %v, want ErrStreamDeleted", s, err)
		}
	}
	// Seal the active segment, then compact: no gone payload may remain.
	if err := l.Close(); err != nil {
		return fmt.Sprintf("close: %v", err)
	}
	if l, err = openFS(fsys, crashOpts(sync), false); err != nil {
		return fmt.Sprintf("second reopen: %v", err)
	}
	if _, err := l.Append(ctx, "pad-1", ExpectAny, Envelope{Type: "t", Data: make([]byte, MinSegmentSize)}); err != nil {
		return fmt.Sprintf("append after recovery: %v", err)
	}
	if _, err := l.Compact(ctx, CompactOptions{}); err != nil {
		return fmt.Sprintf("compact after recovery: %v", err)
	}
	vis := match.visible()
	// A retry of a gone event's append (here of the event alone) writes
	// nothing: the placeholder keeps its ID.
	last := l.LastSeq()
	for s, n := range match.appended {
		for v := uint64(1); v <= n; v++ {
			if slices.Contains(vis[s], v) {
				continue
			}
			pos, err := l.Append(ctx, s, ExpectAny, delEvent(s, v))
			switch {
			case match.tomb[s] && !errors.Is(err, ErrStreamDeleted):
				return fmt.Sprintf("retry of gone %s/%d (tombstoned) after recovery and Compact: %v, want ErrStreamDeleted", s, v, err)
			case !match.tomb[s] && (err != nil || pos.Version != v):
				return fmt.Sprintf("retry of gone %s/%d after recovery and Compact: %+v, %v, want its original position", s, v, pos, err)
			}
		}
	}
	if l.LastSeq() != last {
		return fmt.Sprintf("retries of gone events after recovery and Compact wrote %d events", l.LastSeq()-last)
	}
	for s, n := range match.appended {
		for v := uint64(1); v <= n; v++ {
			gone := !slices.Contains(vis[s], v)
			if gone && memHas(mem, delPayloadOf(s, v)) {
				return fmt.Sprintf("the payload of deleted %s/%d is on disk after Compact", s, v)
			}
		}
	}
	if after, err := readVisible(ctx, l); err != nil || !visibleEqual(vis, after) {
		return fmt.Sprintf("after compacting the recovered log: %v (-want +got):\n%s", err, cmp.Diff(vis, after))
	}
	return ""
}

// memHas reports whether a file of mem holds needle in plain bytes (the
// records of compressed segments are not searched).
func memHas(mem *vfs.Mem, needle []byte) bool {
	names, _ := mem.List()
	for _, n := range names {
		if b, err := mem.ReadFile(n); err == nil && bytes.Contains(b, needle) {
			return true
		}
	}
	return false
}

// delCrashLoop runs the deletion workload crashed at every op and returns
// the violations.
func delCrashLoop(t *testing.T, seed uint64, mode SyncMode, wrap func(vfs.FS) vfs.FS) []string {
	t.Helper()
	ctx := t.Context()
	if wrap == nil {
		wrap = func(f vfs.FS) vfs.FS { return f }
	}
	probe := vfs.NewMem()
	l := openMem(t, wrap(probe), crashOpts(mode))
	if n := runDelWorkload(ctx, l, delWorkload()); n != len(delWorkload()) {
		t.Fatalf("workload without crash stopped at step %d", n)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	c := probe.Clone()
	if msg := checkDelRecovered(ctx, wrap(c), c, mode, delWorkload(), len(delWorkload())); msg != "" {
		t.Fatalf("without a crash: %s", msg)
	}
	total := probe.Ops()
	bad := eachCrashPoint(t, total, func(k int, checked *atomic.Int64) []string {
		return delCrashAt(ctx, seed, mode, wrap, k, total, checked)
	})
	t.Logf("crashed at each of %d ops under %d models", total+1, len(vfs.CrashModels()))
	return bad
}

// delCrashAt runs the deletion workload on a fresh Mem that loses power at
// op k (of total) and checks recovery under every crash model, adding one
// to checked per model. It returns the violations found.
func delCrashAt(ctx context.Context, seed uint64, mode SyncMode, wrap func(vfs.FS) vfs.FS, k, total int, checked *atomic.Int64) []string {
	var bad []string
	mem := vfs.NewMem()
	mem.CrashAt(k)
	steps := delWorkload()
	acked := 0
	if l, err := openFS(wrap(mem), crashOpts(mode), false); err == nil {
		acked = runDelWorkload(ctx, l, steps)
		l.Close()
	} else if !errors.Is(err, vfs.ErrCrashed) {
		bad = append(bad, fmt.Sprintf("k=%d: open failed with %v", k, err))
	}
	var states crashStates
	for _, model := range vfs.CrashModels() {
		rng := rand.New(rand.NewPCG(seed, uint64(k)<<8|uint64(model)))
		after := mem.CrashClone(model, rng)
		// The same files as under a model before: that check stands for this one.
		if !states.checked(after) {
			if msg := checkDelRecovered(ctx, wrap(after), after, mode, steps, acked); msg != "" {
				bad = append(bad, fmt.Sprintf("k=%d/%d model=%v: %s", k, total, model, msg))
			}
		}
		checked.Add(1)
	}
	return bad
}

func TestDeleteCrashLoop(t *testing.T) {
	for _, tc := range []struct {
		name string
		sync SyncMode
	}{
		{"always", SyncAlways},
		{"never+Sync", SyncNever},
		{"unsynced", delUnsynced},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := delCrashLoop(t, 1, tc.sync, nil)
			for _, b := range bad[:min(len(bad), 10)] {
				t.Error(b)
			}
			if len(bad) > 10 {
				t.Errorf("… and %d more violations", len(bad)-10)
			}
		})
	}
}

// TestDeleteCrashLoopHasTeeth: the loop catches an engine that
// acknowledges before fsyncing (an acknowledged deletion or append then
// vanishes in a crash).
func TestDeleteCrashLoopHasTeeth(t *testing.T) {
	bad := delCrashLoop(t, 2, SyncAlways, func(f vfs.FS) vfs.FS { return vfs.NoSync{FS: f, Dirs: true, Files: vfs.AnyFile} })
	if len(bad) == 0 {
		t.Fatal("the deletion crash loop found no violation: it has no teeth")
	}
	t.Logf("%d violations, e.g. %s", len(bad), bad[0])
}
