package evlogcli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/segment"
)

// TestSalvageNeverEndsStricter: the log records retention MaxCount 2
// (seq 1), then, after five events of r-1 (seqs 2..6), MaxCount 1000 (seq
// 7), then two more events (8, 9); one event frame is damaged. Retention
// applies the newest record to the whole log, so DIR's writer showed every
// event. A default salvage stopping at damage before seq 7 ended NEWDIR
// with the MaxCount 2 record copied before the stop: NEWDIR hid events DIR
// showed (and a compact of NEWDIR would destroy them). NEWDIR must end
// with DIR's last readable record's settings when no damage follows that
// record, and with no retention when damage follows it (a later record,
// maybe looser, may be lost there); the record written is reported.
func TestSalvageNeverEndsStricter(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	strict, loose := map[string]evlog.Retention{"r": {MaxCount: 2}}, map[string]evlog.Retention{"r": {MaxCount: 1000}}
	logWith := func(t *testing.T, damage uint64) string {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "log")
		appendUnderRetentions(t, dir, []retentionRun{{strict, 5}, {loose, 2}})
		off, ok := frameOffsets(t, dir)[damage]
		if !ok {
			t.Fatalf("no frame of seq %d", damage)
		}
		flipByte(t, filepath.Join(dir, segment.FormatFileName(1, 0)), off+segment.FrameHeaderSize+2)
		return dir
	}
	tests := []struct {
		name     string
		damage   uint64
		args     []string
		ret      map[string]evlog.Retention // NEWDIR's
		report   *salvageRetentionJSON
		versions int // of r-1 NEWDIR reads
	}{
		{"stops before the looser record", 6, nil, loose, &salvageRetentionJSON{Seq: 7}, 4},
		{"copies the looser record", 6, []string{"--skip-damaged"}, loose, nil, 6},
		{"stops after the record", 8, nil, nil, &salvageRetentionJSON{Seq: 7, None: true}, 5},
		{"damage after the record", 8, []string{"--skip-damaged"}, nil, &salvageRetentionJSON{Seq: 7, None: true}, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := logWith(t, tc.damage)
			dst := filepath.Join(t.TempDir(), "salvaged")
			args := append([]string{"salvage", dir, dst, "--format", "json"}, tc.args...)
			r := run1(t, args...)
			checkNoPanic(t, args, r)
			var rep salvageReport
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 1 {
				t.Fatalf("exit %d (want 1), %v:\n%s%s", r.code, err, r.stdout, r.stderr)
			}
			if d := cmp.Diff(tc.report, rep.Retention, cmpopts.IgnoreFields(salvageRetentionJSON{}, "Reason")); d != "" {
				t.Errorf("the report's retention (-want +got):\n%s\n%s", d, r.stdout)
			}
			// The text report says it too, and run again into its
			// complete output salvage only reports (salvage_again.go).
			text := run1(t, append([]string{"salvage", dir, dst}, tc.args...)...)
			if got := strings.Contains(text.stdout, "\nretention: "); got != (tc.report != nil) || text.code != 1 {
				t.Errorf("salvage again, text: exit %d, a retention line %v, want %v:\n%s%s", text.code, got, tc.report != nil, text.stdout, text.stderr)
			}
			n, err := evlog.OpenReadOnly(dst, evlog.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			got, _, err := n.RecordedRetention(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.ret, got, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("NEWDIR's retention (-want +got):\n%s", d)
			}
			var vers int
			for _, err := range n.Stream(ctx, "r-1", 1) {
				if err != nil {
					t.Fatal(err)
				}
				vers++
			}
			if vers != tc.versions {
				t.Errorf("NEWDIR reads %d events of r-1, want %d (DIR's writer showed all those it holds)", vers, tc.versions)
			}
		})
	}
}
