package evlogcli

import (
	"bytes"
	"context"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/evlog/evlog/examples/inventory"
)

// beMainEnv makes the test binary act as evlogctl (for the tests that need
// a real process to kill): EVLOGCTL_BE_MAIN=1 ./evlogctl.test load DIR …
const beMainEnv = "EVLOGCTL_BE_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(beMainEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := exitCode(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
		stop()
		os.Exit(code)
	}
	if dir := os.Getenv(stressWriterEnv); dir != "" {
		count, _ := strconv.ParseUint(os.Args[1], 10, 64)
		os.Exit(stressWriter(dir, count))
	}
	if dir := os.Getenv(besideWriterEnv); dir != "" {
		steps, _ := strconv.Atoi(os.Args[1])
		os.Exit(besideWriter(dir, steps))
	}
	os.Exit(m.Run())
}

// stockFolds are the stock evlogctl's application folds, as
// cmd/evlogctl/main.go gives them: in-process runs are the stock evlogctl.
var stockFolds = []Fold{
	AggregateFold(inventory.Definition, inventory.Codec().Decode),
}

// testEpoch is the fixed "now" of in-process runs.
var testEpoch = time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)

// result is the outcome of one in-process run.
type result struct {
	stdout, stderr string
	err            error
	code           int
}

// runIn runs evlogctl in-process with a fixed clock and elapsed time.
func runIn(t testing.TB, ctx context.Context, now time.Time, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		now:   func() time.Time { return now },
		since: func(time.Time) time.Duration { return 1500 * time.Microsecond },
		poll:  10 * time.Millisecond,
		folds: stockFolds,
	}
	err := runEnv(ctx, e, args)
	r := result{stdout: out.String(), stderr: errb.String(), err: err, code: exitCode(err)}
	checkNoPanic(t, args, r)
	return r
}

// run1 runs evlogctl in-process at testEpoch.
func run1(t testing.TB, args ...string) result {
	t.Helper()
	return runIn(t, context.Background(), testEpoch, "", args...)
}

// checkNoPanic fails the test if an output shows a panic or an internal
// error.
func checkNoPanic(t testing.TB, args []string, r result) {
	t.Helper()
	for _, s := range []string{r.stdout, r.stderr} {
		for _, bad := range []string{"panic:", "goroutine ", "internal error", "runtime error"} {
			if strings.Contains(s, bad) {
				t.Fatalf("evlogctl %q printed %q:\nstdout:\n%s\nstderr:\n%s", args, bad, r.stdout, r.stderr)
			}
		}
	}
	if n := strings.Count(strings.TrimRight(r.stderr, "\n"), "\n"); r.err != nil && n > 0 && !strings.HasPrefix(r.stderr, "warning:") && !strings.Contains(r.stderr, "recovery") {
		t.Errorf("evlogctl %q: an error must be one line on stderr, got:\n%s", args, r.stderr)
	}
}

func mustRun(t testing.TB, args ...string) result {
	t.Helper()
	r := run1(t, args...)
	if r.err != nil {
		t.Fatalf("evlogctl %q: %v\nstderr: %s", args, r.err, r.stderr)
	}
	return r
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
