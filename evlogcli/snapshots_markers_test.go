package evlogcli

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/evlog/evlog"
)

// TestSnapshotsRefusesMarkers: snapshots, listing or pruning, refuses a
// DIR holding a restore's or a salvage's marker (or its temporary) with
// the sentinel every other command gives, whether the marker is a file or
// a directory (evlog.CheckLogDir lists no subdirectory), and changes
// nothing.
func TestSnapshotsRefusesMarkers(t *testing.T) {
	t.Parallel()
	base := filepath.Join(t.TempDir(), "base")
	mustRun(t, "load", base, "--count", "20")
	mustRun(t, "snapshot", base)
	tests := []struct {
		marker string
		is     error
	}{
		{evlog.RestoreMarker, evlog.ErrRestoreIncomplete},
		{evlog.RestoreMarker + ".tmp", evlog.ErrRestoreIncomplete},
		{evlog.SalvageMarker, evlog.ErrSalvageIncomplete},
		{evlog.SalvageMarker + ".tmp", evlog.ErrSalvageIncomplete},
	}
	for _, tc := range tests {
		for _, isDir := range []bool{false, true} {
			for _, args := range [][]string{{"snapshots"}, {"snapshots", "--format", "json"}, {"snapshots", "--prune", "--keep", "1"}} {
				name := tc.marker + "/file/" + args[len(args)-1]
				if isDir {
					name = tc.marker + "/dir/" + args[len(args)-1]
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					dir := filepath.Join(t.TempDir(), "log")
					if err := os.CopyFS(dir, os.DirFS(base)); err != nil {
						t.Fatal(err)
					}
					mustRun(t, "snapshot", dir) // a second one, for --prune to remove
					p := filepath.Join(dir, tc.marker)
					var err error
					if isDir {
						err = os.Mkdir(p, 0o755)
					} else {
						err = os.WriteFile(p, []byte("{}\n"), 0o644)
					}
					if err != nil {
						t.Fatal(err)
					}
					backdate(t, dir)
					before := fileHashes(t, dir)
					r := run1(t, append([]string{args[0], dir}, args[1:]...)...)
					if r.code != 1 || !errors.Is(r.err, tc.is) {
						t.Errorf("evlogctl %q with %s: exit %d, %v; want 1 and an error matching %v\nstdout: %s", args, name, r.code, r.err, tc.is, r.stdout)
					}
					if after := fileHashes(t, dir); !maps.Equal(before, after) {
						t.Errorf("evlogctl %q with %s changed DIR:\nbefore %v\nafter  %v", args, name, before, after)
					}
				})
			}
		}
	}
}
