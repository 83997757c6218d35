package evlog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// The derived-state crash loop: a writer under SyncNever appends, saves
// snapshots and acknowledges a subscription; it loses power at every
// mutating op (or is killed there, reopened, saves and acknowledges once
// more, and then loses power). Whatever survives, no snapshot and no
// subscription position may outrun the log: after the new appends that
// re-use the lost seqs, replay from the snapshots gives the state of the
// events in the log (the clock stands still, so the anchor check on the
// snapshot's time cannot tell a re-used seq), and the position is not
// beyond the log's end.

const (
	derivedEvents = 30 // appended by the workload
	derivedEvery  = 8  // a snapshot and an Ack every so many
)

var derivedT0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func derivedOpts() Options {
	return Options{Sync: SyncNever, SegmentSize: 4 << 10, Clock: func() time.Time { return derivedT0 }}
}

// derivedSpec folds the payloads of the events, in seq order.
var derivedSpec = replay.Spec[[]string, Envelope]{Decode: replay.Raw, Fold: func(s []string, e Envelope) []string { return append(s, string(e.Data)) }}

// derivedPayload is event i's payload (about 200 bytes: a roll every
// twenty or so events).
func derivedPayload(prefix string, i int) []byte {
	return fmt.Appendf(nil, "%s-%03d-%0190d", prefix, i, 0)
}

// derivedSnapshot saves the snapshot "s" of l's events through its last.
func derivedSnapshot(ctx context.Context, l *Log, snaps *snapshot.Store, state []string) error {
	b, err := replay.EncodeState(derivedSpec, state)
	if err != nil {
		return err
	}
	_, err = snaps.Save(ctx, snapshot.Meta{Name: "s", LogID: l.LogID(), Seq: l.LastSeq(), Time: l.LastTime()}, b)
	if errors.Is(err, snapshot.ErrExists) {
		return nil
	}
	return err
}

// derivedWorkload runs the workload on fsys until an operation fails.
func derivedWorkload(ctx context.Context, fsys vfs.FS) error {
	l, err := openFS(fsys, derivedOpts(), false)
	if err != nil {
		return err
	}
	defer l.Close()
	snaps, sub, err := derivedStores(l)
	if err != nil {
		return err
	}
	defer sub.Close()
	var state []string
	for i := range derivedEvents {
		e := Envelope{Type: "e", Data: derivedPayload("old", i)}
		if _, err := l.Append(ctx, "s", ExpectAny, e); err != nil {
			return err
		}
		state = derivedSpec.Fold(state, e)
		// Snapshots and Acks at different seqs: each must make the log
		// durable itself.
		switch (i + 1) % derivedEvery {
		case 0:
			if err := derivedSnapshot(ctx, l, snaps, state); err != nil {
				return err
			}
		case derivedEvery / 2:
			if err := sub.Ack(ctx, l.LastSeq()); err != nil {
				return err
			}
		}
	}
	return l.Close()
}

// derivedStores opens what the workload saves into: l's snapshot store
// and its subscription "sub".
func derivedStores(l *Log) (*snapshot.Store, *Subscription, error) {
	snaps, err := l.Snapshots()
	if err != nil {
		return nil, nil, err
	}
	sub, err := l.Subscription("sub", Filter{})
	return snaps, sub, err
}

// derivedRestart is what a restarted writer does: it saves a snapshot of
// everything and acknowledges it (and is then cut off by a power loss:
// it is never closed).
func derivedRestart(ctx context.Context, fsys vfs.FS) error {
	l, err := openFS(fsys, derivedOpts(), false)
	if err != nil {
		return err
	}
	if l.LastSeq() == 0 {
		return nil
	}
	snaps, sub, err := derivedStores(l)
	if err != nil {
		return err
	}
	res, err := replay.State(ctx, l, nil, replay.Subject{Name: "s"}, replay.Latest(), derivedSpec, replay.Options{})
	if err != nil {
		return err
	}
	if err := derivedSnapshot(ctx, l, snaps, res.State); err != nil {
		return err
	}
	return sub.Ack(ctx, l.LastSeq())
}

// derivedCheck opens what survived a power loss and checks that no
// snapshot or position outran the log; it returns the violation, if any.
func derivedCheck(ctx context.Context, fsys vfs.FS) string {
	l, err := openFS(fsys, derivedOpts(), false)
	if err != nil {
		return fmt.Sprintf("open: %v", err)
	}
	defer l.Close()
	last := l.LastSeq()
	subs, err := l.Subscriptions()
	if err != nil {
		return fmt.Sprintf("Subscriptions: %v", err)
	}
	for _, s := range subs {
		if s.Position > last {
			return fmt.Sprintf("subscription position %d beyond the end of the log (%d): new events at those seqs would be skipped", s.Position, last)
		}
	}
	// A snapshot of seqs the log lost outran it. (Replay would pass over
	// it once new events re-use those seqs, its anchor not matching
	// theirs, so the state check below no longer shows it.)
	snaps, err := l.Snapshots()
	if err != nil {
		return fmt.Sprintf("Snapshots: %v", err)
	}
	before, err := snaps.List("s")
	if err != nil {
		return fmt.Sprintf("List: %v", err)
	}
	for _, m := range before {
		if m.Seq > last {
			return fmt.Sprintf("snapshot %v folds events absent from the log, which ends at seq %d (it was saved before the power loss at a seq the log lost)", m, last)
		}
	}
	// New events re-use the seqs a power loss took.
	for i := range derivedEvents + 2 {
		if _, err := l.Append(ctx, "s", ExpectAny, Envelope{Type: "e", Data: derivedPayload("new", i)}); err != nil {
			return fmt.Sprintf("append after the power loss: %v", err)
		}
	}
	metas, err := snaps.List("s")
	if err != nil {
		return fmt.Sprintf("List: %v", err)
	}
	full, err := replay.State(ctx, l, nil, replay.Subject{Name: "s"}, replay.Latest(), derivedSpec, replay.Options{NoSnapshot: true})
	if err != nil {
		return fmt.Sprintf("full replay: %v", err)
	}
	for _, m := range metas {
		res, err := replay.State(ctx, l, snaps, replay.Subject{Name: "s"}, replay.AtSeq(m.Seq), derivedSpec, replay.Options{})
		if err != nil {
			return fmt.Sprintf("replay at seq %d: %v", m.Seq, err)
		}
		if want := full.State[:m.Seq]; !slices.Equal(res.State, want) {
			return fmt.Sprintf("replay at seq %d from snapshot %v holds events absent from the log (it was saved before the power loss at a seq the log lost)", m.Seq, res.Plan.Snapshot)
		}
	}
	return ""
}

// derivedCrashAt runs the workload on a Mem that stops at op k: loses
// power there, or is killed there and restarted (derivedRestart) before it
// loses power; it checks every crash model.
func derivedCrashAt(ctx context.Context, k int, kill bool, wrap func(vfs.FS) vfs.FS, checked *atomic.Int64) []string {
	mem := vfs.NewMem()
	mem.CrashAt(k)
	_ = derivedWorkload(ctx, wrap(mem))
	var bad []string
	if kill {
		mem = mem.Clone() // the page cache survives a killed process
		if err := derivedRestart(ctx, wrap(mem)); err != nil {
			bad = append(bad, fmt.Sprintf("k=%d kill: restart: %v", k, err))
		}
	}
	for _, model := range vfs.CrashModels() {
		after := mem.CrashClone(model, rand.New(rand.NewPCG(uint64(k), uint64(model))))
		if msg := derivedCheck(ctx, after); msg != "" {
			bad = append(bad, fmt.Sprintf("k=%d kill=%v model=%v: %s", k, kill, model, msg))
		}
		checked.Add(1)
	}
	return bad
}

// derivedCrashLoop runs derivedCrashAt at every op of the workload; wrap
// wraps the Mem the engine sees (to make it lie, for the teeth test).
func derivedCrashLoop(t *testing.T, kill bool, wrap func(vfs.FS) vfs.FS) []string {
	t.Helper()
	probe := vfs.NewMem()
	if err := derivedWorkload(t.Context(), wrap(probe)); err != nil {
		t.Fatalf("workload without crash: %v", err)
	}
	total := probe.Ops()
	bad := eachCrashPoint(t, total, func(k int, checked *atomic.Int64) []string {
		return derivedCrashAt(t.Context(), k, kill, wrap, checked)
	})
	t.Logf("crashed at each of %d ops under %d models", total+1, len(vfs.CrashModels()))
	return bad
}

func TestDerivedStateCrashLoop(t *testing.T) {
	for _, kill := range []bool{false, true} {
		t.Run(fmt.Sprintf("kill=%v", kill), func(t *testing.T) {
			bad := derivedCrashLoop(t, kill, func(f vfs.FS) vfs.FS { return f })
			for _, b := range bad[:min(len(bad), 10)] {
				t.Error(b)
			}
			if len(bad) > 10 {
				t.Errorf("… and %d more violations", len(bad)-10)
			}
		})
	}
}

// segLiar acknowledges the fsyncs of segment files without doing them,
// but for the one of a new segment's header: a log that never becomes
// durable under snapshots and subscription positions that do.
type segLiar struct{ vfs.FS }

func (f segLiar) Create(name string) (vfs.File, error) {
	file, err := f.FS.Create(name)
	if err != nil || !strings.Contains(name, ".seg") {
		return file, err
	}
	return &segLiarFile{File: file, header: true}, nil
}

func (f segLiar) Open(name string) (vfs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil || !strings.Contains(name, ".seg") {
		return file, err
	}
	return &segLiarFile{File: file}, nil
}

func (f segLiar) OpenReadWrite(name string) (vfs.File, error) {
	file, err := f.FS.OpenReadWrite(name)
	if err != nil || !strings.Contains(name, ".seg") {
		return file, err
	}
	return &segLiarFile{File: file}, nil
}

type segLiarFile struct {
	vfs.File
	header bool // the next Sync is a new segment's header's: do it
}

func (f *segLiarFile) Sync() error {
	if f.header {
		f.header = false
		return f.File.Sync()
	}
	return nil
}

// TestDerivedStateCrashLoopHasTeeth: with the log's fsyncs (but for
// segment headers) skipped, snapshots and subscription positions outrun
// the log, and the loop reports it.
func TestDerivedStateCrashLoopHasTeeth(t *testing.T) {
	bad := derivedCrashLoop(t, false, func(f vfs.FS) vfs.FS { return segLiar{f} })
	var snap, sub bool
	for _, b := range bad {
		snap = snap || strings.Contains(b, "absent from the log")
		sub = sub || strings.Contains(b, "beyond the end of the log")
	}
	if !snap || !sub {
		t.Fatalf("the crash loop found a snapshot outrunning the log: %v, a position: %v (violations: %d): it has no teeth", snap, sub, len(bad))
	}
}
