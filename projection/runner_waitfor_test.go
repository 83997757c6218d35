package projection

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
)

// TestWaitForEndsWhenRunEnds: WaitFor for a seq the view has not reached
// returns ErrStopped (with Run's error) once Run has ended, instead of
// waiting for a view that no longer moves: a caller waiting with a context
// that has no deadline used to wait for ever (synctest reports that as a
// deadlock). Before the first Run it waits for one.
func TestWaitForEndsWhenRunEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := guardLog(t)
		r := NewRunner(guardCount, l, &savedCheckpoints{}, rawEnv, RunnerOptions{})
		guardAppend(t, l, "a", "a")
		waited := make(chan error, 1)
		go func() { waited <- r.WaitFor(context.Background(), 5) }()
		synctest.Wait()
		select {
		case err := <-waited:
			t.Fatalf("WaitFor returned %v before any Run", err)
		default:
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- r.Run(ctx) }()
		if err := WaitGuarded(t, r, 2, "the 2 appended events"); err != nil {
			t.Fatal(err)
		}
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v", err)
		}
		err := <-waited
		if !errors.Is(err, ErrStopped) || !errors.Is(err, context.Canceled) {
			t.Fatalf("WaitFor(5) after Run ended: %v, want ErrStopped carrying Run's context.Canceled", err)
		}
		// Covered seqs are still answered at once.
		if err := r.WaitFor(context.Background(), 2); err != nil {
			t.Fatalf("WaitFor(2): %v", err)
		}
	})
}
