package evlogtest

import (
	"context"
	"errors"
	"iter"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
)

// silentLog is a file log whose subscriptions never deliver an event past
// seq 6: they stay open, waiting, as a backend that lost a live event
// would.
type silentLog struct{ *evlog.Log }

func (l silentLog) Subscribe(ctx context.Context, from uint64) iter.Seq2[event.Envelope, error] {
	return func(yield func(event.Envelope, error) bool) {
		for e, err := range l.Log.Subscribe(ctx, from) {
			if err == nil && e.Seq > 6 {
				continue
			}
			if !yield(e, err) {
				return
			}
		}
	}
}

// hangChildEnv names the check a child process runs on a silentLog.
const hangChildEnv = "EVLOGTEST_HANG_CHILD"

var hangChecks = map[string]func(*testing.T, Backend){
	"SubscribeHistoryThenLive":  testSubscribe,
	"SubscribeConcurrentWriter": testSubscribeConcurrent,
}

// TestSubscribeWaitsAreBounded runs the Subscribe checks in a child
// process on a backend whose subscriptions go silent after seq 6: each
// must fail with the hang guard's message rather than wait until the
// child's -test.timeout kills it. The child lowers hangGuard to a second;
// the event never comes at all, so no schedule can make it pass.
func TestSubscribeWaitsAreBounded(t *testing.T) {
	if name := os.Getenv(hangChildEnv); name != "" {
		hangGuard = time.Second
		hangChecks[name](t, Backend{Log: silentLog{openLog(t)}})
		return
	}
	for name := range hangChecks {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			// The child's -test.timeout is itself the bound of this wait.
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestSubscribeWaitsAreBounded$", "-test.timeout=2m")
			cmd.Env = append(os.Environ(), hangChildEnv+"="+name)
			out, err := cmd.CombinedOutput()
			if _, ok := errors.AsType[*exec.ExitError](err); !ok {
				t.Fatalf("the child on a silent log ended with %v, want a failure; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), errHangGuard.Error()) {
				t.Fatalf("the child on a silent log failed without the hang guard's message (%v); output:\n%s", errHangGuard, out)
			}
		})
	}
}

func openLog(t *testing.T) *evlog.Log {
	t.Helper()
	l, err := evlog.Open(t.TempDir(), evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}
