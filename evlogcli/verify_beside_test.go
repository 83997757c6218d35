package evlogcli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
	<-acks.first
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
	<-acks.done
	writer.Wait()
	t.Logf("%d runs, %d failures; follow stderr: %s", runs, fails, f.stderr)
}
