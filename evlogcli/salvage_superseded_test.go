package evlogcli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evlog/evlog/segment"
)

// TestSalvageDamagedCompactionKeptInputs: a compaction commits its output
// (renamed into place) and then removes its inputs; killed in between, it
// leaves both, and the next writer's open removes the inputs only once the
// output verifies. If the output was damaged meanwhile, that open refuses
// the log; salvage must then read the events from the intact inputs, which
// hold every one of them, instead of losing those in the damaged output.
func TestSalvageDamagedCompactionKeptInputs(t *testing.T) {
	for _, compress := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "compressed"}[compress], func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			mustRun(t, "load", dir, "--count", "300", "--size", "60", "--batch", "5", "--streams", "4", "--segment-size", "4096")
			segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
			inputs := map[string][]byte{}
			for _, p := range segs[:len(segs)-1] { // the sealed ones
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				inputs[p] = b
			}
			args := []string{"compact", dir, "--target-size", "1MiB"}
			if compress {
				args = append(args, "--compress")
			}
			mustRun(t, args...)
			// The compaction "killed" before it removed its inputs.
			for p, b := range inputs {
				if err := os.WriteFile(p, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			out := filepath.Join(dir, segment.FormatFileName(1, 1))
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/3] ^= 0xff // inside the records
			if err := os.WriteFile(out, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if r := run1(t, "verify", dir); r.code != 1 {
				t.Fatalf("verify of the damaged compacted segment: exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			for _, skip := range []bool{false, true} {
				newDir := filepath.Join(t.TempDir(), "new")
				args := []string{"salvage", dir, newDir}
				if skip {
					args = append(args, "--skip-damaged")
				}
				r := run1(t, args...)
				if r.code != 0 || !strings.Contains(r.stdout, "copied 300 events (seqs 1..300)") {
					t.Errorf("%q: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
				}
			}
		})
	}
}
