package evlog

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/google/go-cmp/cmp"
)

// TestRestartFiles: what a restore starting over removes beside the
// marker of an interrupted restore — only files the marker's plan lists
// whose header carries its new log ID, and temporaries of those by exact
// name — and which file makes it refuse (removing nothing).
func TestRestartFiles(t *testing.T) {
	cs := newCrashSource(t)
	restore := memRestoreOpts(t, cs, RestoreOptions{})
	// An interrupted restore: every file written, its marker still there.
	base := vfs.NewMem()
	plan, err := restore(base)
	if err != nil {
		t.Fatal(err)
	}
	marker, err := json.Marshal(plan)
	if err != nil {
		t.Fatal(err)
	}
	var written []string
	for _, f := range plan.Files {
		if f.Action != actionLeave {
			written = append(written, f.Name)
		}
	}
	// Another restore of the same backup: the same names, another log ID.
	other := vfs.NewMem()
	if _, err := restore(other); err != nil {
		t.Fatal(err)
	}
	otherSeg, err := other.ReadFile(written[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		marker  []byte            // RESTORING (nil: none)
		files   map[string][]byte // written over base's files
		remove  []string          // what gets removed (nil: refused)
		refused string            // the file named in the refusal
	}{
		{name: "interrupted restore", marker: marker, remove: written},
		{name: "temporaries of the plan's files and hidden files", marker: marker,
			files:  map[string][]byte{written[0] + ".tmp": []byte("x"), ".DS_Store": []byte("x"), RestoreMarker + ".tmp": []byte("{")},
			remove: append([]string{RestoreMarker + ".tmp", written[0] + ".tmp"}, written...)},
		{name: "another log's segment under a planned name", marker: marker,
			files: map[string][]byte{written[0]: otherSeg}, refused: written[0]},
		{name: "a file the plan does not list", marker: marker,
			files: map[string][]byte{"00000000000000009999-00000000.seg": otherSeg}, refused: "00000000000000009999-00000000.seg"},
		{name: "the temporary of a file the plan does not list", marker: marker,
			files: map[string][]byte{"00000000000000009999-00000000.seg.tmp": []byte("x")}, refused: "00000000000000009999-00000000.seg.tmp"},
		{name: "a torn file under a planned name", marker: marker,
			files: map[string][]byte{written[0]: otherSeg[:10]}, refused: written[0]},
		{name: "an unreadable marker", marker: []byte("{}"), refused: RestoreMarker},
		{name: "only the marker's temporary", files: map[string][]byte{RestoreMarker + ".tmp": marker}, refused: written[0]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base.Clone()
			if tc.marker != nil {
				if err := m.WriteFile(RestoreMarker, tc.marker); err != nil {
					t.Fatal(err)
				}
			}
			for n, b := range tc.files {
				if err := m.WriteFile(n, b); err != nil {
					t.Fatal(err)
				}
			}
			names, err := m.List()
			if err != nil {
				t.Fatal(err)
			}
			got, err := restartFiles(m, "r", names)
			if tc.refused == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				slices.Sort(got)
				want := slices.Sorted(slices.Values(tc.remove))
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("removes (-want +got):\n%s", diff)
				}
				return
			}
			e, ok := errors.AsType[*StartOverError](err)
			if !ok || !errors.Is(err, ErrStartOverRefused) {
				t.Fatalf("got %q, %v; want a *StartOverError naming %s", got, err, tc.refused)
			}
			if e.File != tc.refused {
				t.Fatalf("the refusal names %s, want %s: %v", e.File, tc.refused, err)
			}
		})
	}
}
