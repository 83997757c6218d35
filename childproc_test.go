package evlog

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// child is a process this test binary started as a writer (startChild).
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout io.ReadCloser
	stderr *bytes.Buffer // read after cmd.Wait
}

// startChild starts this test binary running only test (its child mode,
// chosen by env: "NAME=value" entries, see childEnv), with pipes to its
// standard input and output and its standard error kept for reports.
func startChild(t *testing.T, test string, env ...string) child {
	t.Helper()
	c := child{cmd: exec.Command(os.Args[0], "-test.run=^"+test+"$"), stderr: new(bytes.Buffer)}
	c.cmd.Env = childEnv(env...)
	c.cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if c.stdout, err = c.cmd.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return c
}

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
