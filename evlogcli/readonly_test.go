package evlogcli

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/evlog/evlog"
)

// fileHashes digests every file under dir (names relative to dir), with
// its mode and modification time, so that any change shows.
func fileHashes(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			out[rel+"/"] = fmt.Sprintf("dir %v %v", fi.Mode(), fi.ModTime().UnixNano())
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = fmt.Sprintf("%x %v %v", sha256.Sum256(data), fi.Mode(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// backdate sets the access and modification times of dir and of
// everything under it to a moment long past, so that fileHashes shows a
// file or directory a command touches afterwards whatever the timestamp
// granularity of the file system and kernel (a sleep only covers the
// granularities it was chosen for).
func backdate(t *testing.T, dir string) {
	t.Helper()
	past := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, past, past)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// readOnlyCommands are the commands that must never modify, create or lock
// anything in DIR (salvage's NEWDIR is elsewhere).
func readOnlyCommands(dir, tmp string) [][]string {
	return [][]string{
		{"inspect", dir},
		{"inspect", dir, "--format", "json"},
		{"dump", dir},
		{"dump", dir, "--format", "jsonl", "--stream", "s-1"},
		{"dump", dir, "--since", "-1h", "--until", "1h", "--type", "load"},
		{"tail", dir, "-n", "3"},
		{"verify", dir},
		{"verify", dir, "--replay", "--format", "json"},
		{"state", dir},
		{"state", dir, "--seq", "5", "--no-snapshot", "--format", "json"},
		{"state", dir, "--at", "-1m", "--dry-run"},
		{"snapshots", dir},
		{"snapshots", dir, "--format", "json"},
		{"salvage", dir, filepath.Join(tmp, "salvaged"), "--skip-damaged"},
	}
}

// makeLog builds a log of several segments (one compressed), a snapshot
// and, with torn, a torn tail.
func makeLog(t *testing.T, dir string, torn bool) {
	t.Helper()
	mustRun(t, "load", dir, "--count", "120", "--size", "40", "--batch", "6", "--streams", "4", "--segment-size", "4096")
	mustRun(t, "compact", dir, "--target-size", "8KiB", "--compress")
	mustRun(t, "load", dir, "--count", "30", "--size", "40", "--batch", "6", "--streams", "4", "--segment-size", "4096")
	mustRun(t, "snapshot", dir)
	if torn {
		segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
		f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("a torn, unacknowledged batch"))
		f.Close()
	}
}

// TestReadOnlyCommandsChangeNothing runs every read-only command on logs
// with and without a torn tail, beside a writer holding the lock and
// without one, and checks that no file in DIR changed (not even its
// modification time) and that the torn tail was not repaired.
func TestReadOnlyCommandsChangeNothing(t *testing.T) {
	for _, torn := range []bool{false, true} {
		for _, locked := range []bool{false, true} {
			t.Run(fmt.Sprintf("torn=%v/locked=%v", torn, locked), func(t *testing.T) {
				tmp := t.TempDir()
				dir := filepath.Join(tmp, "log")
				makeLog(t, dir, torn)
				if locked && !torn { // a writer would repair the torn tail
					l, err := evlog.Open(dir, evlog.Options{})
					if err != nil {
						t.Fatal(err)
					}
					defer l.Close()
				}
				backdate(t, dir)
				before := fileHashes(t, dir)
				for _, args := range readOnlyCommands(dir, tmp) {
					r := run1(t, args...)
					if r.code != 0 {
						t.Errorf("evlogctl %q: exit %d: %s", args, r.code, r.stderr)
					}
					os.RemoveAll(filepath.Join(tmp, "salvaged"))
				}
				after := fileHashes(t, dir)
				if !maps.Equal(before, after) {
					t.Errorf("read-only commands changed %s:\nbefore %v\nafter  %v", dir, slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
					for k, v := range before {
						if after[k] != v {
							t.Errorf("%s changed", k)
						}
					}
				}
			})
		}
	}
}

// TestReadOnlyCommandsOnCorruptLogsChangeNothing does the same on damaged
// logs, where the commands fail (exit 1) but still must not touch DIR.
func TestReadOnlyCommandsOnCorruptLogsChangeNothing(t *testing.T) {
	damage := map[string]func(t *testing.T, segs []string){
		"flip-sealed": func(t *testing.T, segs []string) { flipByte(t, segs[0], 100) },
		"flip-newest": func(t *testing.T, segs []string) { flipByte(t, segs[len(segs)-1], 100) },
		"zero-middle": func(t *testing.T, segs []string) { os.WriteFile(segs[1], make([]byte, 5000), 0o644) },
		"rm-middle":   func(t *testing.T, segs []string) { os.Remove(segs[1]) },
	}
	for name, hurt := range damage {
		t.Run(name, func(t *testing.T) {
			tmp := t.TempDir()
			dir := filepath.Join(tmp, "log")
			makeLog(t, dir, false)
			segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
			hurt(t, segs)
			backdate(t, dir)
			before := fileHashes(t, dir)
			for _, args := range readOnlyCommands(dir, tmp) {
				r := run1(t, args...)
				if r.code == 2 {
					t.Errorf("evlogctl %q: usage error: %s", args, r.stderr)
				}
				os.RemoveAll(filepath.Join(tmp, "salvaged"))
			}
			if after := fileHashes(t, dir); !maps.Equal(before, after) {
				t.Errorf("read-only commands changed the damaged log %s", dir)
			}
			if r := run1(t, "verify", dir); r.code != 1 || !strings.Contains(r.stdout, "corrupt ") {
				t.Errorf("verify: exit %d, stdout %q; want exit 1 and a corrupt line", r.code, r.stdout)
			}
		})
	}
}

func flipByte(t *testing.T, file string, off int64) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data[off] ^= 0xff
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReadOnlyCommandsNeverCreateDir checks that a missing DIR is an error
// (exit 1) and is not created, for every read-only command and for the
// snapshot commands.
func TestReadOnlyCommandsNeverCreateDir(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "missing", "log")
	cmds := append(readOnlyCommands(dir, tmp),
		[]string{"snapshot", dir},
		[]string{"snapshots", dir, "--prune", "--keep", "1"},
		[]string{"compact", dir},
		[]string{"compact", dir, "--dry-run"},
		[]string{"tail", dir, "-f"},
	)
	for _, args := range cmds {
		r := run1(t, args...)
		if r.code != 1 {
			t.Errorf("evlogctl %q on a missing DIR: exit %d, want 1 (stderr %q)", args, r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(tmp, "missing")); !os.IsNotExist(err) {
			t.Fatalf("evlogctl %q created the missing directory", args)
		}
		if _, err := os.Stat(filepath.Join(tmp, "salvaged")); !os.IsNotExist(err) {
			t.Fatalf("evlogctl %q created NEWDIR for a missing DIR", args)
		}
	}
}

// TestTailFollow follows appends made by a writer until interrupted.
func TestTailFollow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	w, err := evlog.Open(dir, evlog.Options{SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	const n = 120 // enough to roll several segments
	appendEvent := func(i int) {
		ev := evlog.Envelope{Type: "tick", Data: loadData(nil, uint64(i+1), strings.Repeat("y", 60))}
		if _, err := w.Append(ctx, fmt.Sprintf("s-%d", i%3), evlog.ExpectAny, ev); err != nil {
			t.Fatal(err)
		}
	}
	// The first event is there before tail starts, and the others are
	// appended once tail has printed it: tail has opened the log by then,
	// so it follows them, however late its goroutine runs (one that first
	// ran after all the appends would print only the last 10).
	appendEvent(0)
	go func() {
		e := &env{stdin: strings.NewReader(""), stdout: out, stderr: out, now: time.Now, since: time.Since, poll: 5 * time.Millisecond}
		done <- runEnv(ctx, e, []string{"tail", dir, "-f", "--format", "jsonl"})
	}()
	waitUntil(t, "tail -f to print the first event", func() bool { return strings.Count(out.String(), "\n") >= 1 })
	for i := 1; i < n; i++ {
		appendEvent(i)
	}
	waitUntil(t, fmt.Sprintf("tail -f to print %d lines", n), func() bool { return strings.Count(out.String(), "\n") >= n })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("tail -f ended with %v after an interrupt; want nil (exit 0)", err)
	}
	lines := splitLines(out.String())
	if len(lines) != n {
		t.Fatalf("tail -f printed %d lines, want %d:\n%s", len(lines), n, out.String())
	}
	for i, l := range lines {
		if want := fmt.Sprintf(`{"seq":%d,`, i+1); !strings.HasPrefix(l, want) {
			t.Fatalf("line %d = %s, want prefix %s", i, l, want)
		}
	}
}
