package evlog

import (
	"os"
	"strings"
)

// childEnv is the environment of a child process this test binary starts
// as a writer: this process's, plus kv ("NAME=value"). A race-enabled
// binary sleeps a second at exit (GORACE's atexit_sleep_ms, for
// goroutines still running to race): nothing of this package's children
// runs after their os.Exit, and the second would be most of each
// multi-process test's run. Any GORACE options set are kept.
func childEnv(kv ...string) []string {
	race := strings.TrimSpace(os.Getenv("GORACE") + " atexit_sleep_ms=0")
	return append(append(os.Environ(), "GORACE="+race), kv...)
}
