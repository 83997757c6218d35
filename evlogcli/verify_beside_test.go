package evlogcli

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/snapshot"
)

// TestVerifyBesideFollow: backup --verify and restore --dry-run of a
// backup that a --follow process keeps up to date (beside a writer that
// compacts and prunes snapshots, so passes remove files) must never
// report a damaged backup: a reader of a backup must not fail on a state
// a pass goes through.
func TestVerifyBesideFollow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	tmp := t.TempDir()
	src := filepath.Join(tmp, "log")
	dest := filepath.Join(tmp, "backup")
	if err := os.MkdirAll(src, 0o700); err != nil {
		t.Fatal(err)
	}
	writer := exec.Command(os.Args[0], strconv.Itoa(3000))
	writer.Env = append(os.Environ(), stressWriterEnv+"="+src)
	wout, err := writer.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	acks := readAcks(wout)
	t.Cleanup(func() { writer.Process.Kill() }) // a no-op once it exited; ends it after a failure
	select {
	case <-acks.first:
	case <-acks.done:
		writer.Wait() // stdout ended: Wait is safe
		t.Fatal("the writer acked nothing")
	case <-time.After(hangGuard):
		t.Fatalf("waited %v for the writer's first ack", hangGuard)
	}
	f := startEvlogctl(t, "backup", src, dest, "--follow", "--interval", "1ms")
	f.waitFor(t, "a first pass", func() bool { return strings.Contains(f.stdout.String(), "backup at seq") })
	fails := 0
	runs := 0
	for {
		select {
		case <-acks.done:
		default:
			if runs >= 200 {
				break
			}
			for _, args := range [][]string{{"backup", "--verify", dest}, {"restore", dest, filepath.Join(tmp, "x"), "--dry-run"}} {
				r := run1(t, args...)
				runs++
				if r.code != 0 {
					fails++
					if fails < 5 {
						t.Errorf("%s beside --follow: %s", args[0], r.stderr)
					}
				}
			}
			continue
		}
		break
	}
	await(t, acks.done, "the writer to ack its 3000 events and exit")
	if err := writer.Wait(); err != nil {
		t.Errorf("the writer: %v", err)
	}
	t.Logf("%d runs, %d failures; follow stderr: %s", runs, fails, f.stderr)
}

// TestVerifyReplayBesidePrune: verify --replay lists the stats snapshots,
// then loads each as the re-fold passes its seq; a writer pruning
// snapshots meanwhile removes one in between. A snapshot gone since it
// was listed is not damage: neither the stats re-fold nor a fold's
// (--fold) may report it.
func TestVerifyReplayBesidePrune(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "log")
	mustRun(t, "load", dir, "--count", "20")
	mustRun(t, "snapshot", dir)
	mustRun(t, "load", dir, "--count", "5")
	mustRun(t, "snapshot", dir)
	l, err := evlog.OpenReadOnly(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	for _, how := range []string{"stats", "fold"} {
		t.Run(how, func(t *testing.T) {
			snaps, err := store.List(statsSubject.Name)
			if err != nil || len(snaps) != 2 {
				t.Fatalf("%d snapshots (%v), want 2", len(snaps), err)
			}
			// The prune: the older snapshot goes after the listing.
			data, err := os.ReadFile(filepath.Join(dir, snaps[0].File))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, snaps[0].File)); err != nil {
				t.Fatal(err)
			}
			defer os.WriteFile(filepath.Join(dir, snaps[0].File), data, 0o600)
			var bad []string
			report := func(file string, reason string) { bad = append(bad, file+": "+reason) }
			var replayed int
			if how == "stats" {
				out := &verifyReport{}
				c := &verifyCmd{replay: true}
				if err := c.replayStats(ctx, l, store, snaps, out, io.Discard, func(f string, _ int64, r string) { report(f, r) }); err != nil {
					t.Fatal(err)
				}
				replayed = out.Replayed
			} else {
				replayed, err = verifySpec(statsSpec)(ctx, l, statsSubject, snaps,
					func(m snapshot.Meta) ([]byte, error) { return store.Load(ctx, m) },
					func(m snapshot.Meta, r string) { report(m.File, r) })
				if err != nil {
					t.Fatal(err)
				}
			}
			if len(bad) > 0 {
				t.Errorf("verify --replay reports a snapshot pruned beside it: %q", bad)
			}
			if replayed != 1 {
				t.Errorf("%d snapshots compared, want 1 (the one left)", replayed)
			}
		})
	}
}
