package evlogcli

import (
	"testing"
	"time"
)

// await receives from ch (a result, or the close of a done channel) and
// fails t if nothing comes within hangGuard: a bound that only turns a
// hang (a process or a subscriber that never gets there) into a failure
// naming what was awaited, never a timing assertion.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	guard := time.NewTimer(hangGuard)
	defer guard.Stop()
	select {
	case v := <-ch:
		return v
	case <-guard.C:
		t.Fatalf("waited %v for %s", hangGuard, what)
		panic("unreachable")
	}
}
