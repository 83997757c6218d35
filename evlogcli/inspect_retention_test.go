package evlogcli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
)

// TestInspectShowsRecordedRetention: inspect shows the retention the log
// records (text and JSON), which every reader applies.
func TestInspectShowsRecordedRetention(t *testing.T) {
	dir := t.TempDir()
	l, err := evlog.Open(dir, evlog.Options{Retention: map[string]evlog.Retention{"r": {MaxCount: 2}, "u": {MaxAge: 24 * time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, "inspect", dir)
	if want := "retention (recorded at seq 1): r: MaxCount 2, u: MaxAge 24h0m0s\n"; !strings.Contains(r.stdout, want) {
		t.Errorf("inspect does not show %q:\n%s", want, r.stdout)
	}
	r = mustRun(t, "inspect", dir, "--format", "json")
	var doc struct {
		Retention *retentionJSON `json:"retention"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	want := &retentionJSON{Seq: 1, Categories: []retentionCategoryJSON{{Category: "r", MaxCount: 2}, {Category: "u", MaxAge: "24h0m0s", MaxAgeNanos: int64(24 * time.Hour)}}}
	if d := cmp.Diff(want, doc.Retention); d != "" {
		t.Errorf("inspect JSON retention (-want +got):\n%s", d)
	}
	// None recorded: "retention: none", null.
	empty := t.TempDir()
	if r := mustRun(t, "inspect", empty); !strings.Contains(r.stdout, "retention: none (every event is kept)\n") {
		t.Errorf("inspect of a log recording no retention:\n%s", r.stdout)
	}
	if r := mustRun(t, "inspect", empty, "--format", "json"); !strings.Contains(r.stdout, `"retention":null`) {
		t.Errorf("inspect JSON of a log recording no retention:\n%s", r.stdout)
	}
}
