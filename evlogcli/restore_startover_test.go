package evlogcli

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/evlog/evlog"
)

// foreignMarkerID is the new log ID a hand-made marker claims: no log here
// has it.
const foreignMarkerID = "0123456789abcdef0123456789abcdef"

// otherLogSegment returns the name and bytes of the first segment of a
// new log of 10 events (another log than any the test restores).
func otherLogSegment(t *testing.T, root string) (string, []byte) {
	t.Helper()
	other := filepath.Join(root, "other")
	loadSource(t, other, 10)
	segs, err := filepath.Glob(filepath.Join(other, "*.seg"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("the other log has no segment (%v)", err)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Base(segs[0]), b
}

// writeFiles creates dir and writes files (name → content) into it.
func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkKept fails unless path still holds want.
func checkKept(t *testing.T, what, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %s is gone: %v", what, filepath.Base(path), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %s changed", what, filepath.Base(path))
	}
}

// TestRestoreStartOverRefusesAnotherLogsFiles: a directory holding a
// RESTORING marker (copied in by hand, or a directory reused) beside a
// segment of another log. The restore run again took every file named
// like a log's for the interrupted restore's and deleted it. It must
// refuse, naming the file and what to do, and delete nothing — whether
// or not the marker's plan lists the file's name (only the header's log
// ID tells whose it is) — in a dry run too.
func TestRestoreStartOverRefusesAnotherLogsFiles(t *testing.T) {
	tmp, src := sourceLog(t)
	loadSource(t, src, 20)
	backup := filepath.Join(tmp, "backup")
	mustRun(t, "backup", src, backup)
	seg, segBytes := otherLogSegment(t, tmp)
	for _, tc := range []struct {
		what  string
		files []evlog.RestoreFile // the marker's plan
	}{
		{"the marker's plan lists the file", []evlog.RestoreFile{{Name: seg, Kind: "segment", Action: "copy", FirstSeq: 1}}},
		{"the marker's plan does not list it", nil},
	} {
		marker, err := json.Marshal(evlog.RestorePlan{Backup: "elsewhere", Dir: "r", LogID: foreignMarkerID, NewLogID: foreignMarkerID, Files: tc.files})
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(tmp, "r-"+strings.ReplaceAll(tc.what, " ", "-"))
		writeFiles(t, dir, map[string][]byte{evlog.RestoreMarker: marker, seg: segBytes})
		for _, dry := range []bool{true, false} {
			args := []string{"restore", backup, dir}
			if dry {
				args = append(args, "--dry-run")
			}
			r := run1(t, args...)
			what := strings.Join(args[3:], " ") + ", " + tc.what
			if r.code == 0 {
				t.Fatalf("restore %s into a directory holding a marker and another log's segment succeeded", what)
			}
			checkKept(t, what, filepath.Join(dir, seg), segBytes)
			if e, ok := errors.AsType[*evlog.StartOverError](r.err); !ok || e.File != seg || !errors.Is(r.err, evlog.ErrStartOverRefused) {
				t.Errorf("restore %s: %v, want a *StartOverError naming %s", what, r.err, seg)
			}
			t.Logf("%s: %s", what, r.stderr)
		}
	}
}

// TestSalvageStartOverRefusesAnotherLogsFiles: NEWDIR holding a SALVAGING
// marker beside a segment of another log. The salvage run again took
// every file named like a log's for the interrupted salvage's and deleted
// it. It must refuse, naming the file, and delete nothing.
func TestSalvageStartOverRefusesAnotherLogsFiles(t *testing.T) {
	tmp, src := sourceLog(t)
	loadSource(t, src, 20)
	seg, segBytes := otherLogSegment(t, tmp)
	marker, err := json.Marshal(salvageMarkerJSON{Source: "elsewhere", LogID: foreignMarkerID})
	if err != nil {
		t.Fatal(err)
	}
	newdir := filepath.Join(tmp, "new")
	writeFiles(t, newdir, map[string][]byte{evlog.SalvageMarker: marker, seg: segBytes})
	r := run1(t, "salvage", src, newdir)
	if r.code == 0 {
		t.Fatalf("salvage into a directory holding a marker and another log's segment succeeded: %s", r.stdout)
	}
	checkKept(t, "salvage", filepath.Join(newdir, seg), segBytes)
	if e, ok := errors.AsType[*evlog.StartOverError](r.err); !ok || e.File != seg || !errors.Is(r.err, evlog.ErrStartOverRefused) {
		t.Errorf("salvage: %v, want a *StartOverError naming %s", r.err, seg)
	}
	t.Logf("%s", r.stderr)
}

// TestRestoreDanglingSymlink: DIR a symbolic link to a directory that does
// not exist. restore --dry-run accepted it, and the restore then failed
// creating the directory: the dry run must refuse it as the restore does.
func TestRestoreDanglingSymlink(t *testing.T) {
	tmp, src := sourceLog(t)
	loadSource(t, src, 20)
	backup := filepath.Join(tmp, "backup")
	mustRun(t, "backup", src, backup)
	dir := filepath.Join(tmp, "r")
	if err := os.Symlink(filepath.Join(tmp, "nowhere"), dir); err != nil {
		t.Fatal(err)
	}
	dry := run1(t, "restore", backup, dir, "--dry-run")
	real := run1(t, "restore", backup, dir)
	if dry.code != real.code {
		t.Fatalf("restore --dry-run into a dangling symbolic link: exit %d (%s); the restore: exit %d (%s)", dry.code, dry.stdout+dry.stderr, real.code, real.stderr)
	}
	if real.code == 0 {
		t.Fatalf("restore into a dangling symbolic link succeeded")
	}
	if !strings.Contains(real.stderr, "symbolic link") {
		t.Errorf("the refusal does not say DIR is a dangling symbolic link: %s", real.stderr)
	}
}

// TestRestoreOntoFreshVolume: a freshly made file system's root holds
// lost+found, and a directory may hold hidden files (.DS_Store). Open
// takes such a directory for empty; restore refused it as not empty. It
// must restore into it, leaving them alone.
func TestRestoreOntoFreshVolume(t *testing.T) {
	tmp, src := sourceLog(t)
	loadSource(t, src, 20)
	backup := filepath.Join(tmp, "backup")
	mustRun(t, "backup", src, backup)
	dir := filepath.Join(tmp, "volume")
	if err := os.MkdirAll(filepath.Join(dir, "lost+found"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dir, map[string][]byte{".DS_Store": []byte("x")})
	for _, args := range [][]string{{"restore", backup, dir, "--dry-run"}, {"restore", backup, dir}} {
		if r := run1(t, args...); r.code != 0 {
			t.Fatalf("%s into a directory holding lost+found and a hidden file: exit %d: %s", strings.Join(args[3:], " "), r.code, r.stderr)
		}
	}
	if got, want := mustRun(t, "dump", dir).stdout, mustRun(t, "dump", src).stdout; got != want {
		t.Fatalf("restored dump differs:\n%s\nwant:\n%s", got, want)
	}
	checkKept(t, "restore", filepath.Join(dir, ".DS_Store"), []byte("x"))
	if fi, err := os.Stat(filepath.Join(dir, "lost+found")); err != nil || !fi.IsDir() {
		t.Fatalf("lost+found is gone (%v)", err)
	}
}
