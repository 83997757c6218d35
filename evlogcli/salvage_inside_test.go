package evlogcli

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// treeOf lists every path under dir (relative), with its size for files.
func treeOf(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	tree := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		tree[rel] = -1
		if info.Mode().IsRegular() {
			tree[rel] = info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// TestOutputInsideTheSourceThroughASymlink: salvage never modifies DIR,
// restore never modifies BACKUP, so both refuse an output directory inside
// their source (status 2). The check compared the paths as written: an
// output inside the source reached through a symbolic link (the source
// given by a link, or the output's parent a link into the source) passed,
// and the command created its output directory, a log, inside the source.
func TestOutputInsideTheSourceThroughASymlink(t *testing.T) {
	// In each case: the source's real path, its link, and the output,
	// given the log (or backup) directory and its link.
	for _, tc := range []struct {
		name, cmd string
		args      func(src, link string) (string, string)
	}{
		{"salvage: DIR a link, NEWDIR in its target", "salvage", func(src, link string) (string, string) { return link, filepath.Join(src, "new") }},
		{"salvage: NEWDIR under a link to DIR", "salvage", func(src, link string) (string, string) { return src, filepath.Join(link, "new") }},
		{"restore: BACKUP a link, DIR in its target", "restore", func(src, link string) (string, string) { return link, filepath.Join(src, "new") }},
		{"restore: DIR under a link to BACKUP", "restore", func(src, link string) (string, string) { return src, filepath.Join(link, "new") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			src := filepath.Join(root, "log")
			mustRun(t, "load", src, "--count", "20")
			if tc.cmd == "restore" {
				backup := filepath.Join(root, "backup")
				mustRun(t, "backup", src, backup)
				src = backup
			}
			link := src + "-link"
			if err := os.Symlink(src, link); err != nil {
				t.Fatal(err)
			}
			in, out := tc.args(src, link)
			before := treeOf(t, root)
			r := run1(t, tc.cmd, in, out)
			if r.code != 2 {
				t.Errorf("%s %s %s: status %d, want 2 (usage: the output inside the source); stdout:\n%s\nstderr:\n%s", tc.cmd, in, out, r.code, r.stdout, r.stderr)
			}
			if d := cmp.Diff(before, treeOf(t, root)); d != "" {
				t.Errorf("%s changed the files (-before +after):\n%s", tc.cmd, d)
			}
		})
	}
}
