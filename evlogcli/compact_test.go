package evlogcli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestCompactDumpIdentical compacts a log of at least 10 sealed segments
// into one (plain, then compressed) and checks that dump prints exactly
// the same bytes, that verify is happy, and that stream and time look-ups
// still answer the same.
func TestCompactDumpIdentical(t *testing.T) {
	for _, compress := range []bool{false, true} {
		name := "plain"
		if compress {
			name = "compressed"
		}
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "log")
			mustRun(t, "load", dir, "--count", "600", "--size", "30", "--batch", "7", "--streams", "9", "--segment-size", "4096")
			mustRun(t, "snapshot", dir)
			var rep inspectReport
			if err := json.Unmarshal([]byte(mustRun(t, "inspect", dir, "--format", "json").stdout), &rep); err != nil {
				t.Fatal(err)
			}
			sealed := 0
			for _, s := range rep.Segments {
				if s.Sealed {
					sealed++
				}
			}
			if sealed < 10 {
				t.Fatalf("the test log has %d sealed segments, want at least 10", sealed)
			}
			queries := [][]string{
				{"dump", dir, "--format", "jsonl"},
				{"dump", dir},
				{"dump", dir, "--stream", "s-4", "--format", "jsonl"},
				{"dump", dir, "--from", "333", "--to", "444", "--type", "load"},
				{"dump", dir, "--since", "-1s", "--until", "+1s", "--stream", "s-0"},
				{"state", dir, "--seq", "321", "--no-snapshot", "--format", "json"},
				{"tail", dir, "-n", "25"},
			}
			before := make([]string, len(queries))
			for i, q := range queries {
				before[i] = mustRun(t, q...).stdout
			}
			args := []string{"compact", dir, "--format", "json"}
			if compress {
				args = append(args, "--compress")
			}
			var res compactResult
			if err := json.Unmarshal([]byte(mustRun(t, args...).stdout), &res); err != nil {
				t.Fatal(err)
			}
			if len(res.Groups) != 1 || len(res.Groups[0].Inputs) != sealed {
				t.Fatalf("compact merged %+v, want the %d sealed segments into one", res.Groups, sealed)
			}
			if res.SegmentsAfter != 2 { // the merged segment and the active one
				t.Fatalf("after compaction: %d segments, want 2", res.SegmentsAfter)
			}
			for i, q := range queries {
				if got := mustRun(t, q...).stdout; got != before[i] {
					t.Errorf("evlogctl %q prints something else after compact", q)
				}
			}
			if r := mustRun(t, "verify", dir, "--replay"); !strings.HasPrefix(r.stdout, "ok 600 2\n") {
				t.Errorf("verify after compact: %q", r.stdout)
			}
			if !strings.Contains(before[0], `"seq":600,`) {
				t.Fatal("the dump does not reach seq 600")
			}
		})
	}
}
