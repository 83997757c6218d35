package evlogcli

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestVerifyNamesBadMarker: a deletion marker that checksums but does not
// decode fails every read of the log, so verify reports it as damage like
// any other (docs/CLI.md, verify): "corrupt FILE OFFSET REASON" naming the
// segment and the marker frame's offset, no "ok" line, exit 1.
func TestVerifyNamesBadMarker(t *testing.T) {
	t.Parallel()
	dir, file, off := logWithBadMarker(t)

	r := run1(t, "verify", dir)
	checkNoPanic(t, []string{"verify", dir}, r)
	wantLine := fmt.Sprintf("corrupt %s %d deletion marker at seq 5 ($deleted) does not decode: ", file, off)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if r.code != 1 || len(lines) != 1 || !strings.HasPrefix(lines[0], wantLine) {
		t.Errorf("verify: exit %d, stdout:\n%s\nstderr:\n%s\nwant exit 1 and one line %q…", r.code, r.stdout, r.stderr, wantLine)
	}

	r = run1(t, "verify", dir, "--format", "json")
	var rep verifyReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("verify --format json: exit %d: %v:\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	var got []finding
	for _, f := range rep.Findings {
		got = append(got, finding{Kind: f.Kind, File: f.File, Offset: f.Offset})
	}
	if d := cmp.Diff([]finding{{Kind: "corrupt", File: file, Offset: off}}, got); d != "" || r.code != 1 || rep.OK || rep.Events != 6 {
		t.Errorf("verify --format json: exit %d, ok %v, events %d; want 1, false, 6; findings (-want +got):\n%s\n%s",
			r.code, rep.OK, rep.Events, d, r.stdout)
	}
}
