package evlog

import (
	"context"
	"errors"
	"time"
)

// hangGuard bounds a test's wait for an event the test itself caused (a
// subscriber's next event, once it was appended). It is no timing
// assertion: far longer than anything takes on a loaded machine, it only
// turns a hang into a failure that says what never came, instead of a
// test binary killed by -timeout with every other result lost.
const hangGuard = 2 * time.Minute

// errHangGuard is the cause of a guarded context that hangGuard ended.
var errHangGuard = errors.New("hang guard expired: an awaited event never came")

// guarded returns a context derived from parent, ended with errHangGuard
// as its cause once hangGuard has passed.
func guarded(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(parent, hangGuard, errHangGuard)
}

// hungErr returns err, or a message naming the hang guard if ctx's
// guard ended it.
func hungErr(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errHangGuard) {
		return errHangGuard
	}
	return err
}
