//go:build unix

package evlogcli

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/segment"
)

// stateCommands are the read-only commands of the hostile review, each
// reading DIR its own way (the log's open, its indexes, every frame, the
// frame-by-frame fallback, snapshots, a fold).
func stateCommands(dir string) [][]string {
	return [][]string{
		{"inspect", dir},
		{"inspect", dir, "--format", "json"},
		{"verify", dir},
		{"verify", dir, "--replay", "--format", "json"},
		{"verify", dir, "--replay", "--fold", "inventory", "--id", "1"},
		{"dump", dir, "--format", "jsonl"},
		{"dump", dir, "--stream", "s-1"},
		{"dump", dir, "--since", "-1h"},
		{"tail", dir, "-n", "3"},
		{"tail", dir, "--from", "1"},
		{"state", dir},
		{"state", dir, "--no-snapshot", "--format", "json"},
		{"state", dir, "--fold", "inventory", "--id", "1"},
		{"streams", dir},
		{"snapshots", dir},
		{"snapshots", dir, "--format", "json"},
		{"subscriptions", dir},
	}
}

// dirState is a failure state of DIR for TestReadOnlyCommandsInEveryState.
type dirState struct {
	name string
	// make turns the copy of the base log at dir into the state; it
	// returns the path to give the commands (dir, or a path beside it)
	// and the damaged segment file, if any ("" when none).
	make func(t *testing.T, dir string) (arg, damaged string)
	// exit is the status every command must give: 0, 1, or -1 when it
	// depends on the command (damage some commands do not read: then 0,
	// or 1 naming the damaged file).
	exit int
	// is: the error every failure must match (nil: any).
	is error
	// mustFind, with exit -1: the commands that must find the damage
	// (status 1); nil: those that read every frame of the segments
	// (readsAll).
	mustFind func(args []string) bool
}

// TestReadOnlyCommandsInEveryState is the hostile review of the read-only
// commands' error paths: every command × every failure state of DIR —
// damaged newest and older segments, a missing segment, a foreign
// segment, the markers of an interrupted restore or salvage (and their
// temporaries, and a marker holding garbage), a directory that is not a
// log, a regular file, an empty directory, a symbolic link to a log and a
// dangling one, a missing DIR. Each command must
//   - never change anything (every file's bytes, mode and time, before
//     and after, under DIR and, for a link, under its target);
//   - give the documented status (docs/CLI.md, exit status and
//     read-only commands): 0 for a sound log (torn tail included) and an
//     empty directory, 1 for the rest;
//   - on damage, name the damaged file (dump and tail: corrupt FILE
//     OFFSET; verify: a corrupt line; the others: a *segment.CorruptError
//     in their error) — or, for damage a command does not read, succeed;
//   - match the library's sentinel for a marker (ErrRestoreIncomplete,
//     ErrSalvageIncomplete) and for a directory that is not a log
//     (ErrNotALog);
//   - never panic (run1 checks every output).
func TestReadOnlyCommandsInEveryState(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	base := filepath.Join(tmp, "base")
	mustRun(t, "load", base, "--count", "150", "--size", "40", "--batch", "6", "--streams", "4", "--segment-size", "4096")
	mustRun(t, "snapshot", base)
	other := filepath.Join(tmp, "other")
	mustRun(t, "load", other, "--count", "150", "--size", "40", "--batch", "6", "--streams", "4", "--segment-size", "4096")
	segsOf := func(t *testing.T, dir string) []string {
		t.Helper()
		segs, _ := filepath.Glob(filepath.Join(dir, "*"+segment.Ext))
		if len(segs) < 3 {
			t.Fatalf("%s: %d segments, want 3 or more", dir, len(segs))
		}
		return segs
	}
	marker := func(name, content string) func(*testing.T, string) (string, string) {
		return func(t *testing.T, dir string) (string, string) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			return dir, ""
		}
	}
	states := []dirState{
		{name: "sound", exit: 0, make: func(t *testing.T, dir string) (string, string) { return dir, "" }},
		{name: "torn tail", exit: 0, make: func(t *testing.T, dir string) (string, string) {
			segs := segsOf(t, dir)
			f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write([]byte("a torn, unacknowledged batch")); err != nil {
				t.Fatal(err)
			}
			return dir, ""
		}},
		{name: "damaged newest", exit: 1, is: evlog.ErrCorrupt, make: func(t *testing.T, dir string) (string, string) {
			segs := segsOf(t, dir)
			flipByte(t, segs[len(segs)-1], 200) // valid batches after it: not a torn tail
			return dir, filepath.Base(segs[len(segs)-1])
		}},
		{name: "damaged older record", exit: -1, is: evlog.ErrCorrupt, make: func(t *testing.T, dir string) (string, string) {
			segs := segsOf(t, dir)
			flipByte(t, segs[0], 200)
			return dir, filepath.Base(segs[0])
		}},
		{name: "damaged older header", exit: 1, is: evlog.ErrCorrupt, make: func(t *testing.T, dir string) (string, string) {
			segs := segsOf(t, dir)
			flipByte(t, segs[1], 10)
			return dir, filepath.Base(segs[1])
		}},
		{name: "missing middle segment", exit: 1, is: evlog.ErrCorrupt, make: func(t *testing.T, dir string) (string, string) {
			segs := segsOf(t, dir)
			if err := os.Remove(segs[1]); err != nil {
				t.Fatal(err)
			}
			return dir, ""
		}},
		{name: "foreign segment", exit: 1, is: evlog.ErrCorrupt, make: func(t *testing.T, dir string) (string, string) {
			b, err := os.ReadFile(segsOf(t, other)[0])
			if err != nil {
				t.Fatal(err)
			}
			name := segment.FormatFileName(1, 1)
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
			return dir, name
		}},
		{name: "emptied middle segment", exit: 1, is: evlog.ErrCorrupt, make: func(t *testing.T, dir string) (string, string) {
			segs := segsOf(t, dir)
			if err := os.Truncate(segs[1], 0); err != nil {
				t.Fatal(err)
			}
			return dir, filepath.Base(segs[1])
		}},
		{name: "undecodable deletion marker", exit: -1, is: evlog.ErrCorrupt, make: func(t *testing.T, dir string) (string, string) {
			bad, file, _ := logWithBadMarker(t)
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.CopyFS(dir, os.DirFS(bad)); err != nil {
				t.Fatal(err)
			}
			return dir, file
		}},
		// A bad snapshot is not served: readers replay the events instead
		// (RELIABILITY.md 22); verify names it.
		{name: "damaged snapshot", exit: -1, mustFind: func(args []string) bool { return args[0] == "verify" }, make: func(t *testing.T, dir string) (string, string) {
			snaps, _ := filepath.Glob(filepath.Join(dir, "*.snap"))
			if len(snaps) != 1 {
				t.Fatalf("%d snapshots, want 1", len(snaps))
			}
			flipByte(t, snaps[0], 60)
			return dir, filepath.Base(snaps[0])
		}},
		// A directory, not the file a restore writes: every command
		// refuses it as it refuses the file (evlog.CheckLogDir lists no
		// subdirectory; snapshots looks for it by name).
		{name: "RESTORING directory", exit: 1, is: evlog.ErrRestoreIncomplete, make: func(t *testing.T, dir string) (string, string) {
			if err := os.Mkdir(filepath.Join(dir, evlog.RestoreMarker), 0o755); err != nil {
				t.Fatal(err)
			}
			return dir, ""
		}},
		{name: "SALVAGING directory", exit: 1, is: evlog.ErrSalvageIncomplete, make: func(t *testing.T, dir string) (string, string) {
			if err := os.Mkdir(filepath.Join(dir, evlog.SalvageMarker), 0o755); err != nil {
				t.Fatal(err)
			}
			return dir, ""
		}},
		{name: "RESTORING", exit: 1, is: evlog.ErrRestoreIncomplete, make: marker(evlog.RestoreMarker, "{}\n")},
		{name: "RESTORING.tmp", exit: 1, is: evlog.ErrRestoreIncomplete, make: marker(evlog.RestoreMarker+".tmp", "")},
		{name: "RESTORING garbage", exit: 1, is: evlog.ErrRestoreIncomplete, make: marker(evlog.RestoreMarker, "\xff\x00 not json")},
		{name: "SALVAGING", exit: 1, is: evlog.ErrSalvageIncomplete, make: marker(evlog.SalvageMarker, "{}\n")},
		{name: "SALVAGING.tmp", exit: 1, is: evlog.ErrSalvageIncomplete, make: marker(evlog.SalvageMarker+".tmp", "")},
		{name: "RESTORING and damage", exit: 1, is: evlog.ErrRestoreIncomplete, make: func(t *testing.T, dir string) (string, string) {
			flipByte(t, segsOf(t, dir)[1], 10)
			return marker(evlog.RestoreMarker, "{}\n")(t, dir)
		}},
		{name: "not a log", exit: 1, is: evlog.ErrNotALog, make: func(t *testing.T, dir string) (string, string) {
			nl := filepath.Join(filepath.Dir(dir), "notalog")
			if err := os.Mkdir(nl, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(nl, "notes.txt"), []byte("mine"), 0o644); err != nil {
				t.Fatal(err)
			}
			return nl, ""
		}},
		{name: "regular file", exit: 1, make: func(t *testing.T, dir string) (string, string) {
			return segsOf(t, dir)[0], ""
		}},
		{name: "empty directory", exit: 0, make: func(t *testing.T, dir string) (string, string) {
			e := filepath.Join(filepath.Dir(dir), "empty")
			if err := os.Mkdir(e, 0o755); err != nil {
				t.Fatal(err)
			}
			return e, ""
		}},
		{name: "symlink to the log", exit: 0, make: func(t *testing.T, dir string) (string, string) {
			l := filepath.Join(t.TempDir(), "link") // outside what fileHashes walks: the target is
			if err := os.Symlink(dir, l); err != nil {
				t.Fatal(err)
			}
			return l, ""
		}},
		{name: "dangling symlink", exit: 1, make: func(t *testing.T, dir string) (string, string) {
			l := filepath.Join(t.TempDir(), "link") // to a path under what fileHashes walks
			if err := os.Symlink(filepath.Join(filepath.Dir(dir), "gone"), l); err != nil {
				t.Fatal(err)
			}
			return l, ""
		}},
		{name: "missing", exit: 1, make: func(t *testing.T, dir string) (string, string) {
			return filepath.Join(filepath.Dir(dir), "missing"), ""
		}},
	}
	for _, st := range states {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			dir := filepath.Join(root, "log")
			if err := os.CopyFS(dir, os.DirFS(base)); err != nil {
				t.Fatal(err)
			}
			arg, damaged := st.make(t, dir)
			backdate(t, root)
			before := fileHashes(t, root)
			for _, args := range stateCommands(arg) {
				r := run1(t, args...)
				checkState(t, st, args, r, damaged)
			}
			if after := fileHashes(t, root); !maps.Equal(before, after) {
				for _, k := range slices.Sorted(maps.Keys(maps.Collect(func(yield func(string, string) bool) {
					for k, v := range before {
						yield(k, v)
					}
					for k, v := range after {
						yield(k, v)
					}
				}))) {
					if before[k] != after[k] {
						t.Errorf("%s changed: before %q, after %q", k, before[k], after[k])
					}
				}
			}
		})
	}
}

// checkState checks one command's outcome in the state st.
func checkState(t *testing.T, st dirState, args []string, r result, damaged string) {
	t.Helper()
	// readsAll: the command reads every frame of the log (a selective
	// read — one stream through the indexes, the last events, a state
	// from a snapshot — may not reach the damage, and then succeeds).
	readsAll := args[0] == "verify" || args[0] == "dump" && !slices.Contains(args, "--stream") ||
		args[0] == "tail" && slices.Contains(args, "--from") || slices.Contains(args, "--no-snapshot")
	want := st.exit
	if st.mustFind != nil {
		readsAll = st.mustFind(args)
	}
	if want == -1 && readsAll {
		want = 1
	}
	if args[0] == "snapshots" && errors.Is(st.is, evlog.ErrCorrupt) {
		want = -1 // it reads the snapshots' headers, not the segments (docs/CLI.md)
	}
	switch {
	case want >= 0 && r.code != want:
		t.Errorf("evlogctl %q: exit %d, want %d\nstdout: %.300s\nstderr: %s", args, r.code, want, r.stdout, r.stderr)
		return
	case r.code != 0 && r.code != 1:
		t.Errorf("evlogctl %q: exit %d, want 0 or 1\nstderr: %s", args, r.code, r.stderr)
		return
	}
	if r.code == 0 {
		return
	}
	if args[0] == "verify" && r.stdout != "" {
		// verify's findings are on stdout, its error only counts them.
		if damaged != "" && !verifyNames(r.stdout, damaged) {
			t.Errorf("evlogctl %q: no corrupt line naming %s:\n%s", args, damaged, r.stdout)
		}
		return
	}
	if st.is != nil && !errors.Is(r.err, st.is) {
		t.Errorf("evlogctl %q: %v; want an error matching %v\nstderr: %s", args, r.err, st.is, r.stderr)
	}
	if damaged != "" {
		named := slices.ContainsFunc(corruptions(r.err), func(ce *segment.CorruptError) bool { return ce.File == damaged })
		if !named {
			t.Errorf("evlogctl %q: %v; want a *segment.CorruptError naming %s\nstderr: %s", args, r.err, damaged, r.stderr)
		}
		if (args[0] == "dump" || args[0] == "tail") && !strings.Contains(r.stderr, fmt.Sprintf("corrupt %s ", damaged)) {
			t.Errorf("evlogctl %q: stderr %q, want a line \"corrupt %s OFFSET REASON\"", args, r.stderr, damaged)
		}
	}
}

// verifyNames reports whether verify's text output has a corrupt line
// naming file.
func verifyNames(stdout, file string) bool {
	var rep struct{ Findings []struct{ Kind, File string } }
	if json.Unmarshal([]byte(stdout), &rep) == nil {
		return slices.ContainsFunc(rep.Findings, func(f struct{ Kind, File string }) bool { return f.Kind == "corrupt" && f.File == file })
	}
	for line := range strings.Lines(stdout) {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "corrupt" && f[1] == file {
			return true
		}
	}
	return false
}
