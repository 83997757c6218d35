package evlogcli

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/evlog/evlog"
)

// TestCompactDryRunChangesNothing: compact --dry-run "prints the plan and
// changes nothing" — not even what a writer's open repairs (a torn tail
// truncated, a checkpoint written at Close), and beside a writer holding
// the lock it plans instead of failing with "locked". The plan is the one
// compact then carries out.
func TestCompactDryRunChangesNothing(t *testing.T) {
	for _, torn := range []bool{false, true} {
		for _, locked := range []bool{false, true} {
			if torn && locked {
				continue // a writer would repair the torn tail
			}
			t.Run(fmt.Sprintf("torn=%v/locked=%v", torn, locked), func(t *testing.T) {
				dir := filepath.Join(t.TempDir(), "log")
				makeLog(t, dir, false)
				mustRun(t, "load", dir, "--count", "60", "--size", "40", "--batch", "6", "--streams", "4", "--segment-size", "4096")
				if torn {
					appendTorn(t, dir)
				}
				var w *evlog.Log
				if locked {
					var err error
					if w, err = evlog.Open(dir, evlog.Options{}); err != nil {
						t.Fatal(err)
					}
					defer w.Close()
				}
				backdate(t, dir)
				before := fileHashes(t, dir)
				var plans []string
				for _, args := range [][]string{
					{"compact", dir, "--dry-run"},
					{"compact", dir, "--dry-run", "--compress", "--target-size", "64KiB"},
					{"compact", dir, "--dry-run", "--format", "json"},
				} {
					r := run1(t, args...)
					if r.code != 0 {
						t.Fatalf("evlogctl %q: exit %d: %s", args, r.code, r.stderr)
					}
					plans = append(plans, r.stdout)
				}
				after := fileHashes(t, dir)
				if !maps.Equal(before, after) {
					var changed []string
					for _, k := range slices.Sorted(maps.Keys(maps.Collect(func(yield func(string, bool) bool) {
						for k := range before {
							yield(k, true)
						}
						for k := range after {
							yield(k, true)
						}
					}))) {
						if before[k] != after[k] {
							changed = append(changed, k)
						}
					}
					t.Fatalf("compact --dry-run changed %v", changed)
				}
				if !strings.Contains(plans[0], "would merge") {
					t.Fatalf("compact --dry-run planned nothing:\n%s", plans[0])
				}
				if locked {
					return
				}
				// The plan is what compact does.
				r := run1(t, "compact", dir)
				if r.code != 0 {
					t.Fatalf("compact: exit %d: %s", r.code, r.stderr)
				}
				var did, would []string
				for l := range strings.Lines(r.stdout) {
					if s, ok := strings.CutPrefix(l, "merged "); ok {
						did = append(did, s)
					}
				}
				for l := range strings.Lines(plans[0]) {
					if s, ok := strings.CutPrefix(l, "would merge "); ok {
						would = append(would, s)
					}
				}
				if !slices.Equal(did, would) {
					t.Fatalf("compact did\n%q\nthe dry run planned\n%q", did, would)
				}
			})
		}
	}
}

// appendTorn appends an unacknowledged partial batch to the newest
// segment of the log in dir.
func appendTorn(t *testing.T, dir string) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write([]byte("a torn, unacknowledged batch")); err != nil {
		t.Fatal(err)
	}
}
