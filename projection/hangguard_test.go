package projection

import (
	"context"
	"errors"
	"testing"
	"time"
)

// hangGuard bounds a test's wait for a view to cover events the test
// itself appended (docs/TESTING.md, "hang guard"). It is no timing
// assertion: far longer than anything takes on a loaded machine, it only
// turns a hang (a runner that lost an event, and waits for ever because
// its Run never ends) into a failure that says what never came, instead
// of a test binary killed by -timeout with every other result lost. In a
// synctest bubble it is fake time: it passes once every goroutine of the
// bubble waits, so a lost event fails there too, with the same message.
const hangGuard = 2 * time.Minute

// HangGuard is hangGuard, for the projection_test package's own waits
// (test builds only).
const HangGuard = hangGuard

// errHangGuard is the cause of a WaitGuarded context that hangGuard ended.
var errHangGuard = errors.New("projection test: hang guard expired: the view never covered the awaited seq")

// seqWaiter is a *Runner of any view and event type.
type seqWaiter interface {
	WaitFor(ctx context.Context, seq uint64) error
}

// WaitGuarded returns r.WaitFor(seq) under a context derived from
// t.Context() that hangGuard ends: what WaitFor returned (nil, or an
// error such as ErrStopped for the caller to check), unless the guard
// ended the wait, which fails t with a message naming what (the event
// awaited, e.g. "the 3 appended events"). Call it from the test's own
// goroutine. Exported for the projection_test package (test builds only).
func WaitGuarded(t testing.TB, r seqWaiter, seq uint64, what string) error {
	t.Helper()
	ctx, cancel := context.WithTimeoutCause(t.Context(), hangGuard, errHangGuard)
	defer cancel()
	err := r.WaitFor(ctx, seq)
	if err != nil && errors.Is(context.Cause(ctx), errHangGuard) {
		t.Fatalf("WaitFor(%d): waited %v for %s: %v (a runner lost an event, or its Run never ended)", seq, hangGuard, what, errHangGuard)
	}
	return err
}
