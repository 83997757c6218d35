//go:build unix

package evlog

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/evlog/evlog/segment"
)

// TestRecoveryStrangers: a symlink, FIFO or directory named like a segment
// is not a segment. Open (writer and reader) and Verify never open it for
// reading (a FIFO would block them forever), never delete it, and never
// act on it: in particular a symlink named as a higher generation never
// makes recovery delete the segment it points to.
func TestRecoveryStrangers(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(t *testing.T, dir string, segs []string) string // returns the stranger's name
	}{
		{"symlink to the first segment under a higher generation", func(t *testing.T, dir string, segs []string) string {
			name := segment.FormatFileName(1, 1)
			if err := os.Symlink(segs[0], filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			return name
		}},
		{"symlink to a middle segment under a higher generation", func(t *testing.T, dir string, segs []string) string {
			base, _, _ := segment.ParseFileName(segs[1])
			name := segment.FormatFileName(base, 2)
			if err := os.Symlink(segs[1], filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			return name
		}},
		{"FIFO under a higher generation", func(t *testing.T, dir string, segs []string) string {
			name := segment.FormatFileName(1, 1)
			if err := syscall.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			return name
		}},
		{"FIFO named as the next segment", func(t *testing.T, dir string, segs []string) string {
			name := segment.FormatFileName(1_000_000, 0)
			if err := syscall.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			return name
		}},
		{"directory under a higher generation", func(t *testing.T, dir string, segs []string) string {
			name := segment.FormatFileName(1, 1)
			if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
				t.Fatal(err)
			}
			return name
		}},
		{"FIFO named as the active segment's checkpoint", func(t *testing.T, dir string, segs []string) string {
			name := segment.CheckpointName(segs[len(segs)-1])
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mkfifo(filepath.Join(dir, name), 0o644); err != nil {
				t.Skipf("mkfifo: %v", err)
			}
			return name
		}},
		{"symlink named as a sealed segment's checkpoint", func(t *testing.T, dir string, segs []string) string {
			name := segment.CheckpointName(segs[0])
			if err := os.Symlink(segment.CheckpointName(segs[len(segs)-1]), filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			return name
		}},
		{"symlink named as a temporary", func(t *testing.T, dir string, segs []string) string {
			name := segs[0] + segment.TempExt
			if err := os.Symlink(segs[0], filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			return name
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l, err := Open(dir, crashOpts(SyncAlways))
			if err != nil {
				t.Fatal(err)
			}
			if err := runWorkload(t.Context(), l, genWorkload(5, 60)); err != nil {
				t.Fatal(err)
			}
			want := readAll(t, l)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			var segs []string
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if _, _, ok := segment.ParseFileName(e.Name()); ok {
					segs = append(segs, e.Name())
				}
			}
			if len(segs) < 3 {
				t.Fatalf("%d segments, want at least 3", len(segs))
			}
			stranger := tc.corrupt(t, dir, segs)

			rep, err := Verify(t.Context(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Corrupt() || rep.Events != uint64(len(want)) {
				t.Errorf("verify: %+v, want %d events and no corruption", rep, len(want))
			}
			ro, err := OpenReadOnly(dir, crashOpts(SyncAlways))
			if err != nil {
				t.Fatalf("read-only open: %v", err)
			}
			if err := ro.Refresh(); err != nil {
				t.Errorf("refresh: %v", err)
			}
			if d := envsDiff(want, readAll(t, ro)); d != "" {
				t.Errorf("read-only events (-want +got):\n%s", d)
			}
			if rep := ro.Recovery(); !slices.Contains(rep.Strangers, stranger) {
				t.Errorf("recovery report %+v does not list the stranger %s", rep, stranger)
			}
			ro.Close()
			l, err = Open(dir, crashOpts(SyncAlways))
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			if d := envsDiff(want, readAll(t, l)); d != "" {
				t.Errorf("events (-want +got):\n%s", d)
			}
			if rep := l.Recovery(); len(rep.Removed) != 0 {
				t.Errorf("recovery removed %v", rep.Removed)
			}
			l.Close()
			for _, n := range append(slices.Clone(segs), stranger) {
				if _, err := os.Lstat(filepath.Join(dir, n)); err != nil {
					t.Errorf("%s: %v", n, err)
				}
			}
			if fi, err := os.Lstat(filepath.Join(dir, stranger)); err != nil || fi.Mode().IsRegular() {
				t.Errorf("the stranger %s was replaced by a regular file", stranger)
			}
		})
	}
}
