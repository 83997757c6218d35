package evlogcli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
	"github.com/google/go-cmp/cmp"
)

// TestSalvageRestartFiles: what salvage run again removes beside the
// marker of an interrupted salvage — segments whose header carries the
// marker's log ID, their checkpoints, temporaries of them and empty
// temporaries — and which file makes it refuse (removing nothing).
func TestSalvageRestartFiles(t *testing.T) {
	tmp := t.TempDir()
	src := filepath.Join(tmp, "log")
	mustRun(t, "load", src, "--count", "40", "--batch", "5", "--size", "200", "--segment-size", "4096")
	l, err := evlog.OpenReadOnly(src, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := l.LogID()
	l.Close()
	segs, _ := filepath.Glob(filepath.Join(src, "*"+segment.Ext))
	if len(segs) < 2 {
		t.Fatalf("want at least 2 segments, got %d", len(segs))
	}
	seg0 := filepath.Base(segs[0])
	_, otherBytes := otherLogSegment(t, tmp)
	markerOf := func(id [16]byte) []byte {
		b, err := json.Marshal(salvageMarkerJSON{Source: "x", LogID: fmt.Sprintf("%x", id[:])})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	marker := markerOf(id)
	logFiles := func(dir string) []string {
		ents, _ := os.ReadDir(dir)
		var out []string
		for _, e := range ents {
			if salvagedLogFile(e.Name()) {
				out = append(out, e.Name())
			}
		}
		return out
	}
	ckpt := segment.CheckpointName(seg0)
	for _, tc := range []struct {
		name    string
		files   map[string][]byte
		extra   []string // removed besides the log's files
		none    bool     // nothing removed, no refusal
		refused string
	}{
		{name: "interrupted salvage", files: map[string][]byte{evlog.SalvageMarker: marker}},
		{name: "its checkpoints and temporaries", files: map[string][]byte{evlog.SalvageMarker: marker, ckpt: []byte("x"), ckpt + segment.TempExt: nil,
			"00000000000000009999-00000000.seg.tmp": nil, ".hidden": []byte("x"), "notes.txt": []byte("x")},
			extra: []string{ckpt, ckpt + segment.TempExt, "00000000000000009999-00000000.seg.tmp"}},
		{name: "another log's segment", files: map[string][]byte{evlog.SalvageMarker: marker, "00000000000000009999-00000000.seg": otherBytes}, refused: "00000000000000009999-00000000.seg"},
		{name: "another log's segment, marker's temporary too", files: map[string][]byte{evlog.SalvageMarker: marker, evlog.SalvageMarker + ".tmp": []byte("{"), "00000000000000009999-00000000.seg": otherBytes}, refused: "00000000000000009999-00000000.seg"},
		{name: "a marker of another log", files: map[string][]byte{evlog.SalvageMarker: markerOf([16]byte{1})}, refused: seg0},
		{name: "the checkpoint of a segment not there", files: map[string][]byte{evlog.SalvageMarker: marker, "00000000000000009999-00000000.ckpt": []byte("x")}, refused: "00000000000000009999-00000000.ckpt"},
		{name: "a temporary with another log's header", files: map[string][]byte{evlog.SalvageMarker: marker, "00000000000000009999-00000000.seg.tmp": otherBytes[:segment.HeaderSize]}, refused: "00000000000000009999-00000000.seg.tmp"},
		{name: "an unreadable marker", files: map[string][]byte{evlog.SalvageMarker: []byte("{")}, refused: evlog.SalvageMarker},
		{name: "only the marker's temporary, torn", files: map[string][]byte{evlog.SalvageMarker + ".tmp": []byte("{")}, none: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "new")
			if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
				t.Fatal(err)
			}
			writeFiles(t, dir, tc.files)
			fsys, err := vfs.OpenOS(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer fsys.Close()
			names, err := fsys.List()
			if err != nil {
				t.Fatal(err)
			}
			got, err := salvageRestartFiles(fsys, dir, names)
			if tc.refused != "" {
				e, ok := errors.AsType[*evlog.StartOverError](err)
				if !ok || !errors.Is(err, evlog.ErrStartOverRefused) || e.File != tc.refused {
					t.Fatalf("got %q, %v; want a *StartOverError naming %s", got, err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			var want []string
			if !tc.none {
				want = append(logFiles(src), tc.extra...)
			}
			slices.Sort(want)
			slices.Sort(got)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("removes (-want +got):\n%s", diff)
			}
		})
	}
}
