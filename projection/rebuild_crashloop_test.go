package projection_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/testhook"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/projection"
)

func openMemLog(fsys vfs.FS) (*evlog.Log, error) {
	l, err := testhook.Open(fsys, evlog.Options{})
	if err != nil {
		return nil, err
	}
	return l.(*evlog.Log), nil
}

// runOn runs (or rebuilds) p over l until its view covers seq or the run
// ends, then stops it; it returns the run's error and the view. It fails
// t if neither comes within projection.HangGuard (a runner that lost an
// event and never ended).
func runOn(t *testing.T, l *evlog.Log, p projection.Projection[map[string]int, event.Envelope], seq uint64, rebuild bool) (map[string]int, error) {
	snaps, err := l.Snapshots()
	if err != nil {
		return nil, err
	}
	r := projection.NewRunner(p, l, snaps, func(e event.Envelope) (event.Envelope, error) { return e, nil }, projection.RunnerOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done, caught := make(chan error, 1), make(chan error, 1)
	go func() {
		if rebuild {
			done <- r.Rebuild(ctx)
		} else {
			done <- r.Run(ctx)
		}
	}()
	go func() { caught <- r.WaitFor(ctx, seq) }()
	guard := time.NewTimer(projection.HangGuard)
	defer guard.Stop()
	var runErr error
	select {
	case runErr = <-done:
		cancel()
		<-caught
	case <-caught:
		cancel()
		runErr = <-done
	case <-guard.C:
		t.Fatalf("waited %v for the view to cover seq %d (rebuild %v), or the run to end: neither came (a runner lost an event, or its Run never ended)", projection.HangGuard, seq, rebuild)
	}
	if runErr == context.Canceled {
		runErr = nil
	}
	m, _ := r.State()
	return m, runErr
}

// TestRebuildCrashLoop: a Rebuild that loses power at any of its write
// operations, under every crash model, leaves a log whose next Run serves
// the rebuilt fold's view (or, lost before it changed anything durably,
// the old fold's), never the old fold's older checkpoint advanced by the
// new fold.
func TestRebuildCrashLoop(t *testing.T) {
	buggy := typesCount
	buggy.Apply = func(m map[string]int, e event.Envelope) map[string]int { m[e.Type] += 2; return m }
	base := vfs.NewMem()
	l, err := openMemLog(base)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		if _, err := l.Append(t.Context(), "s", evlog.ExpectAny, event.Envelope{Type: "a"}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 { // checkpoints of the old fold at seqs 2 and 4
			if _, err := runOn(t, l, buggy, uint64(i+1), false); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	rebuild := func(fsys vfs.FS) error {
		l, err := openMemLog(fsys)
		if err != nil {
			return err
		}
		defer l.Close()
		_, err = runOn(t, l, typesCount, 4, true)
		return err
	}
	probe := base.Clone()
	if err := rebuild(probe); err != nil {
		t.Fatalf("rebuild without a crash: %v", err)
	}
	total := probe.Ops()
	var bad []string
	for k := range total + 1 {
		mem := base.Clone()
		mem.CrashAt(k)
		_ = rebuild(mem)
		for _, model := range vfs.CrashModels() {
			after := mem.CrashClone(model, rand.New(rand.NewPCG(uint64(k), uint64(model))))
			l, err := openMemLog(after)
			if err != nil {
				bad = append(bad, fmt.Sprintf("k=%d model=%v: open: %v", k, model, err))
				continue
			}
			view, err := runOn(t, l, typesCount, 4, false)
			l.Close()
			// a:8 is the old fold's view, whole (the Rebuild had not
			// started); anything else but the new fold's a:4 mixes them.
			if err != nil || view["a"] != 4 && view["a"] != 8 {
				bad = append(bad, fmt.Sprintf("k=%d model=%v: restart after the crashed Rebuild: view %v, %v; want a:4 (or the old fold's a:8)", k, model, view, err))
			}
		}
	}
	t.Logf("crashed at each of %d ops under %d models", total+1, len(vfs.CrashModels()))
	for _, b := range bad[:min(len(bad), 10)] {
		t.Error(b)
	}
}
