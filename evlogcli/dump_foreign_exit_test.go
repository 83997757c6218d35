package evlogcli

import (
	"strings"
	"testing"
)

// TestDumpForeignSegmentExitsAsVerify pins dump's (and tail's) exit status
// when a segment of another log is the only fault in DIR, against verify's
// (docs/CLI.md, dump and verify): verify reports such a file as corruption
// (corrupt FILE 0 …, status 1) — the directory does not open as a log,
// and every reader through the log refuses it — so dump, which reads past
// it frame by frame and prints only the log's own events, is not a
// success either: status 1, naming the file. A foreign file beyond the
// log's events (all of the log's events printed) is no exception.
func TestDumpForeignSegmentExitsAsVerify(t *testing.T) {
	t.Parallel()
	fs := newForeignLogs(t)
	for _, tc := range []struct {
		name    string
		place   placement
		corrupt func([]byte)
	}{
		{"intact header/colliding", placement{from: fs.logB, base: fs.mid, asBase: fs.mid, asGen: 1, foreign: true}, nil},
		{"intact header/beyond", placement{from: fs.logB, base: fs.beyond, asBase: fs.beyond, foreign: true}, nil},
		{"log ID flipped/beyond", placement{from: fs.logB, base: fs.beyond, asBase: fs.beyond, foreign: true}, flipHeader(20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, name, _ := withSegment(t, fs.logA, tc.place, tc.corrupt)
			verify := run1(t, "verify", dir)
			named := false
			for line := range strings.Lines(verify.stdout) {
				f := strings.Fields(line)
				named = named || len(f) >= 3 && f[0] == "corrupt" && f[1] == name
			}
			if verify.code != 1 || !named {
				t.Fatalf("verify: exit %d, want 1 and a corrupt line naming %s:\n%s", verify.code, name, verify.stdout)
			}
			for _, args := range [][]string{
				{"dump", dir},
				{"tail", dir, "-n", "1000"},
			} {
				r := run1(t, args...)
				dumpNamed := false
				for _, ce := range corruptions(r.err) {
					dumpNamed = dumpNamed || ce.File == name && ce.Offset == 0
				}
				if r.code != verify.code || !dumpNamed {
					t.Errorf("evlogctl %q: exit %d naming %s: %v; want verify's exit %d, naming it", args, r.code, name, dumpNamed, verify.code)
				}
			}
		})
	}
}
