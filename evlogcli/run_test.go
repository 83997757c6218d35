package evlogcli

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// TestPanicIsReported checks that a panic in a command becomes one line on
// stderr and exit status 1, never a Go panic trace.
func TestPanicIsReported(t *testing.T) {
	saved := commands
	t.Cleanup(func() { commands = saved })
	commands = append(slices.Clone(saved), command{name: "boom", run: func(context.Context, *env, []string) error {
		var m map[string]int
		m["x"]++ // a nil map write
		return nil
	}})
	var out, errb strings.Builder
	err := run(context.Background(), []string{"boom"}, &out, &errb)
	if code := exitCode(err); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if got := errb.String(); !strings.HasPrefix(got, "evlogctl: internal error: assignment to entry in nil map") ||
		strings.Count(got, "\n") != 1 || strings.Contains(got, "goroutine") {
		t.Errorf("stderr = %q", got)
	}
	if out.Len() != 0 {
		t.Errorf("stdout = %q", out.String())
	}
}

// TestExitCodes maps errors to exit statuses.
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, 0},
		{errHelp, 0},
		{fail("x", errHelp), 0},
		{usagef("dump", "bad"), 2},
		{fail("dump", usagef("dump", "bad")), 2},
		{fail("dump", context.Canceled), 1},
		{&lineError{line: "corrupt f 1 r"}, 1},
		{&internalError{msg: "boom"}, 1},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestHandlesSignals(t *testing.T) {
	for name := range oneShot {
		if lookup(name) == nil {
			t.Errorf("oneShot lists %q, which is not a command", name)
		}
	}
	tests := []struct {
		args []string
		want bool
	}{
		{nil, false},
		{[]string{"nosuch"}, false},
		{[]string{"--help"}, false},
		{[]string{"state", "DIR", "--at", "-1h"}, false},
		{[]string{"inspect", "DIR"}, false},
		{[]string{"dump", "DIR"}, false},
		{[]string{"verify", "DIR", "--replay"}, false},
		{[]string{"snapshots", "DIR"}, false},
		{[]string{"snapshots", "DIR", "--", "--prune"}, false},
		{[]string{"snapshots", "DIR", "--prune"}, true},
		{[]string{"snapshots", "-prune", "DIR"}, true},
		{[]string{"snapshots", "DIR", "--prune=true", "--keep", "3"}, true},
		{[]string{"tail", "DIR", "-f"}, true},
		{[]string{"tail", "--f", "DIR"}, true},
		{[]string{"tail", "DIR"}, false},
		{[]string{"tail", "-n", "5", "DIR"}, false},
		{[]string{"tail", "DIR", "--", "-f"}, false},
		{[]string{"backup", "DIR", "DEST", "--follow"}, true},
		{[]string{"compact", "DIR", "--yes"}, true},
		{[]string{"restore", "B", "DIR"}, true},
		{[]string{"import", "DIR"}, true},
		{[]string{"load", "DIR"}, true},
		{[]string{"snapshot", "DIR"}, true},
		{[]string{"demo"}, true},
	}
	for _, tt := range tests {
		if got := HandlesSignals(tt.args); got != tt.want {
			t.Errorf("HandlesSignals(%q) = %v, want %v", tt.args, got, tt.want)
		}
	}
}
