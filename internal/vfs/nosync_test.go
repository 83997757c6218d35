package vfs

import (
	"bytes"
	"strings"
	"testing"
)

// TestNoSync: what NoSync leaves unsynced is lost by a crash that drops
// unsynced data, and what it lets through survives.
func TestNoSync(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fs        func(FS) FS
		kept, dir bool // the synced file's bytes survive; its directory entry does
	}{
		{"nothing faked", func(f FS) FS { return NoSync{FS: f} }, true, true},
		{"dirs", func(f FS) FS { return NoSync{FS: f, Dirs: true} }, true, false},
		{"files", func(f FS) FS { return NoSync{FS: f, Files: AnyFile} }, false, true},
		{"other files", func(f FS) FS {
			return NoSync{FS: f, Files: func(n string) bool { return strings.HasSuffix(n, ".tmp") }}
		}, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := NewMem()
			fsys := tc.fs(mem)
			// a's entry is made durable below NoSync, so that only the
			// file's own sync decides its bytes.
			f, err := fsys.Create("a")
			if err != nil {
				t.Fatal(err)
			}
			if err := mem.SyncDir(); err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			g, err := fsys.Create("b")
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := fsys.SyncDir(); err != nil {
				t.Fatal(err)
			}
			after := mem.CrashClone(DropUnsynced, nil)
			b, _ := after.ReadFile("a")
			if got := bytes.Equal(b, []byte("hello")); got != tc.kept {
				t.Errorf("a holds %q after the crash; want its bytes kept: %v", b, tc.kept)
			}
			if _, err := after.Stat("b"); (err == nil) != tc.dir {
				t.Errorf("b after the crash: %v; want its directory entry kept: %v", err, tc.dir)
			}
		})
	}
}
