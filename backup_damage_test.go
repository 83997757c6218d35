package evlog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Damaged backups are refused, by VerifyBackup and by Restore, with the
// file and the reason; Restore then writes nothing.
func TestDamagedBackupsRefused(t *testing.T) {
	l, _, _ := backupLog(t, 120, Options{})
	saveSnapshots(t, l, 40)
	good := filepath.Join(t.TempDir(), "good")
	if _, err := l.Backup(t.Context(), good, BackupOptions{NoLink: true}); err != nil {
		t.Fatal(err)
	}
	m := readManifestT(t, good)
	var sealed, tail, snap string
	for _, f := range m.Files {
		switch {
		case f.Kind == kindSnapshot:
			snap = f.Name
		case f.Sealed && sealed == "":
			sealed = f.Name
		case !f.Sealed:
			tail = f.Name
		}
	}
	if sealed == "" || tail == "" || snap == "" {
		t.Fatalf("want a sealed segment, a tail and a snapshot in %+v", m.Files)
	}
	flip := func(name string, off int64) func(string) error {
		return func(dir string) error {
			p := filepath.Join(dir, name)
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if off < 0 {
				off += int64(len(b))
			}
			b[off] ^= 0x40
			return os.WriteFile(p, b, 0o600)
		}
	}
	for _, tc := range []struct {
		name    string
		corrupt func(dir string) error
		is      error
		file    string // the file the error must name
	}{
		{"no manifest", func(d string) error { return os.Remove(filepath.Join(d, ManifestFile)) }, ErrNotABackup, ManifestFile},
		{"truncated manifest", func(d string) error {
			p := filepath.Join(d, ManifestFile)
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, fi.Size()/2)
		}, ErrNotABackup, ManifestFile},
		{"flipped byte in the manifest", flip(ManifestFile, -20), ErrNotABackup, ManifestFile},
		{"flipped byte in a sealed segment", flip(sealed, 200), ErrBackupCorrupt, sealed},
		{"flipped byte in the newest segment", flip(tail, -10), ErrBackupCorrupt, tail},
		{"flipped byte in a snapshot", flip(snap, -2), ErrBackupCorrupt, snap},
		{"missing segment", func(d string) error { return os.Remove(filepath.Join(d, sealed)) }, ErrBackupCorrupt, sealed},
		{"missing snapshot", func(d string) error { return os.Remove(filepath.Join(d, snap)) }, ErrBackupCorrupt, snap},
		{"truncated segment", func(d string) error { return os.Truncate(filepath.Join(d, tail), 100) }, ErrBackupCorrupt, tail},
		{"segment replaced by a symbolic link", func(d string) error {
			p := filepath.Join(d, sealed)
			if err := os.Rename(p, p+".moved"); err != nil {
				return err
			}
			return os.Symlink(sealed+".moved", p)
		}, ErrBackupCorrupt, sealed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bdir := filepath.Join(t.TempDir(), "b")
			if err := os.CopyFS(bdir, os.DirFS(good)); err != nil {
				t.Fatal(err)
			}
			if err := tc.corrupt(bdir); err != nil {
				t.Fatal(err)
			}
			_, verr := VerifyBackup(t.Context(), bdir)
			rdir := filepath.Join(t.TempDir(), "r")
			_, rerr := Restore(t.Context(), bdir, rdir, RestoreOptions{})
			for what, err := range map[string]error{"VerifyBackup": verr, "Restore": rerr} {
				be, ok := errors.AsType[*BackupError](err)
				if !errors.Is(err, tc.is) || !ok || be.File != tc.file || be.Reason == "" {
					t.Errorf("%s: %v, want a *BackupError on %s matching %v", what, err, tc.file, tc.is)
				}
				if !strings.Contains(err.Error(), tc.file) {
					t.Errorf("%s: %q does not name %s", what, err, tc.file)
				}
			}
			if _, err := os.Stat(rdir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("Restore of a damaged backup created %s (%v)", rdir, err)
			}
		})
	}
	// The undamaged backup passes.
	if _, err := VerifyBackup(t.Context(), good); err != nil {
		t.Fatal(err)
	}
}
