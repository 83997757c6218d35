package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// beMainEnv makes the test binary act as evlogctl: the tests below run
// the real main, with its folds, in a child process.
const beMainEnv = "EVLOGCTL_CMD_BE_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(beMainEnv) == "1" {
		main()
	}
	os.Exit(m.Run())
}

// evlogctl runs main in a child process with args, as a program named
// evlogctl.
func evlogctl(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runAs(t, "evlogctl", args...)
}

// runAs runs main in a child process with args, as a program run by the
// name argv0 (its os.Args[0]).
func runAs(t *testing.T, argv0 string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Args[0] = argv0
	cmd.Env = append(os.Environ(), beMainEnv+"=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestStockFolds runs the stock evlogctl end to end: its one application
// fold, the inventory example's aggregate, computed from the snapshots
// the demo's repository saved, and main's exit statuses.
func TestStockFolds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	if _, stderr, code := evlogctl(t, "demo", "--dir", dir, "--events", "1000", "--snapshot-every", "100"); code != 0 {
		t.Fatalf("demo: exit %d: %s", code, stderr)
	}
	stdout, stderr, code := evlogctl(t, "state", dir, "--fold", "inventory", "--id", "alice", "--at", "-12h", "--format", "json")
	if code != 0 || stderr != "" {
		t.Fatalf("state --fold inventory: exit %d, stderr %q", code, stderr)
	}
	var res struct {
		Plan struct {
			Subject  string
			Snapshot *struct{ Seq uint64 }
		}
		State struct {
			Seq   uint64
			Value struct{ Counts map[string]int }
		}
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if res.Plan.Subject != "inventory/inventory-alice" || res.Plan.Snapshot == nil || res.State.Seq == 0 || len(res.State.Value.Counts) == 0 {
		t.Errorf("state --fold inventory --id alice: want the state from the demo repository's snapshot, got %s", stdout)
	}
	if stdout, _, code := evlogctl(t, "state", "--help"); code != 0 || !strings.Contains(stdout, "\n  inventory ") {
		t.Errorf("state --help: exit %d, no inventory fold listed:\n%s", code, stdout)
	}
	if _, stderr, code := evlogctl(t, "state", dir, "--fold", "cart"); code != 2 || !strings.Contains(stderr, "this evlogctl has stats, inventory") {
		t.Errorf("state --fold cart: exit %d, stderr %q; want exit 2 listing the folds", code, stderr)
	}
	// The program names itself as it was run: an installed copy renamed
	// (or an application's tool) says so in its messages and usage.
	if _, stderr, code := runAs(t, "/opt/bin/invctl", "state", dir, "--fold", "cart"); code != 2 ||
		stderr != "invctl state: --fold \"cart\": no such fold; this invctl has stats, inventory (see invctl state --help)\n" {
		t.Errorf("run as invctl: state --fold cart: exit %d, stderr %q", code, stderr)
	}
	if stdout, _, code := runAs(t, "invctl", "help"); code != 0 || !strings.HasPrefix(stdout, "invctl: the operator's tool") || strings.Contains(stdout, "evlogctl") {
		t.Errorf("run as invctl: help: exit %d:\n%s", code, stdout)
	}
	if _, _, code := evlogctl(t, "verify", filepath.Join(dir, "missing")); code != 1 {
		t.Errorf("verify of a missing log: exit %d, want 1", code)
	}
}
