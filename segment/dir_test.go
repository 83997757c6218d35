package segment

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// segFile returns the bytes of a segment of count events from base at
// generation gen, sealed or not, carrying log ID id.
func segFile(t *testing.T, base, gen uint64, count int, sealed bool, id LogID) []byte {
	t.Helper()
	rng := rand.New(rand.NewPCG(base, gen))
	bs := genBatches(rng, base, genOptions{batches: count, maxBatch: 1, streams: 3, maxData: 20, syncEvery: 1})
	h := testHeader(base)
	h.Generation, h.LogID = gen, id
	img := buildImage(h, bs)
	if !sealed {
		return img.data
	}
	file, _ := seal(img.index(len(bs)), img.h, img.data[HeaderSize:])
	return file
}

// TestResolve applies the directory rules to directories holding
// compaction leftovers and stray files: what is live, what is superseded
// (and may be deleted), and which files are reported as problems.
func TestResolve(t *testing.T) {
	other := LogID{9, 9, 9}
	type file struct {
		name      string
		base, gen uint64 // of the header
		count     int
		sealed    bool
		foreign   bool
	}
	seg := func(base, gen uint64, count int, sealed bool) file {
		return file{FormatFileName(base, gen), base, gen, count, sealed, false}
	}
	cases := []struct {
		name       string
		files      []file
		live       []string
		superseded []string
		problems   []string // files named by the problems
		foreign    bool     // some problem matches ErrForeign
	}{
		{"clean", []file{seg(1, 0, 5, true), seg(6, 0, 3, false)},
			[]string{FormatFileName(1, 0), FormatFileName(6, 0)}, nil, nil, false},
		{"compaction leftovers", []file{seg(1, 0, 5, true), seg(6, 0, 4, true), seg(1, 1, 9, true), seg(10, 0, 2, false)},
			[]string{FormatFileName(1, 1), FormatFileName(10, 0)}, []string{FormatFileName(1, 0), FormatFileName(6, 0)}, nil, false},
		{"copy under a higher generation", []file{seg(1, 0, 5, true), {FormatFileName(1, 1), 1, 0, 5, true, false}, seg(6, 0, 2, false)},
			[]string{FormatFileName(1, 1), FormatFileName(1, 0), FormatFileName(6, 0)}, nil, []string{FormatFileName(1, 1)}, false},
		{"copy under another first seq", []file{seg(1, 0, 5, true), {FormatFileName(3, 1), 1, 0, 5, true, false}, seg(6, 0, 2, false)},
			[]string{FormatFileName(1, 0), FormatFileName(3, 1), FormatFileName(6, 0)}, nil, []string{FormatFileName(3, 1)}, false},
		{"another log's segment under a higher generation", []file{seg(1, 0, 5, true), {FormatFileName(1, 1), 1, 1, 9, true, true}, seg(6, 0, 2, false)},
			[]string{FormatFileName(1, 1), FormatFileName(1, 0), FormatFileName(6, 0)}, nil, []string{FormatFileName(1, 1)}, true},
		{"compacted segment covering part of an input", []file{seg(1, 0, 5, true), seg(6, 0, 4, true), seg(1, 1, 7, true), seg(10, 0, 2, false)},
			[]string{FormatFileName(1, 1), FormatFileName(6, 0), FormatFileName(10, 0)}, []string{FormatFileName(1, 0)}, []string{FormatFileName(6, 0)}, false},
		{"unsealed segment under a compacted one", []file{seg(1, 0, 5, false), seg(1, 1, 5, true), seg(6, 0, 2, false)},
			[]string{FormatFileName(1, 1), FormatFileName(1, 0), FormatFileName(6, 0)}, nil, []string{FormatFileName(1, 0)}, false},
		{"unsealed higher generation supersedes nothing", []file{seg(1, 0, 5, true), seg(1, 1, 5, false), seg(6, 0, 2, false)},
			[]string{FormatFileName(1, 1), FormatFileName(1, 0), FormatFileName(6, 0)}, nil, []string{FormatFileName(1, 0)}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewMem()
			for _, f := range tc.files {
				id := testLogID
				if f.foreign {
					id = other
				}
				if err := mem.WriteFile(f.name, segFile(t, f.base, f.gen, f.count, f.sealed, id)); err != nil {
					t.Fatal(err)
				}
			}
			dir, err := ReadDir(mem)
			if err != nil {
				t.Fatal(err)
			}
			files, err := OpenSegments(mem, dir.Segments)
			if err != nil {
				t.Fatal(err)
			}
			defer CloseSegments(files)
			live, superseded, problems := Resolve(files)
			names := func(fs []*DirSegment) []string {
				var out []string
				for _, f := range fs {
					out = append(out, f.Name)
				}
				return out
			}
			if d := cmp.Diff(tc.live, names(live)); d != "" {
				t.Errorf("live (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.superseded, names(superseded)); d != "" {
				t.Errorf("superseded (-want +got):\n%s", d)
			}
			var got []string
			foreign := false
			for _, p := range problems {
				ce, ok := errors.AsType[*CorruptError](p)
				if !ok {
					t.Fatalf("problem %v is not a CorruptError", p)
				}
				got = append(got, ce.File)
				foreign = foreign || errors.Is(p, ErrForeign)
			}
			if d := cmp.Diff(tc.problems, got); d != "" {
				t.Errorf("problems %v (-want +got):\n%s", problems, d)
			}
			if foreign != tc.foreign {
				t.Errorf("problems %v: ErrForeign %v, want %v", problems, foreign, tc.foreign)
			}
			if len(superseded) > 0 {
				if err := CheckSuperseding(superseded); err != nil {
					t.Errorf("CheckSuperseding: %v", err)
				}
			}
		})
	}
}

// TestCheckSupersedingRefusesDamage: a compacted segment with a damaged
// record supersedes nothing until it verifies.
func TestCheckSupersedingRefusesDamage(t *testing.T) {
	mem := vfs.NewMem()
	mem.WriteFile(FormatFileName(1, 0), segFile(t, 1, 0, 5, true, testLogID))
	c := segFile(t, 1, 1, 5, true, testLogID)
	c[HeaderSize+12] ^= 1
	mem.WriteFile(FormatFileName(1, 1), c)
	dir, _ := ReadDir(mem)
	files, err := OpenSegments(mem, dir.Segments)
	if err != nil {
		t.Fatal(err)
	}
	defer CloseSegments(files)
	_, superseded, problems := Resolve(files)
	if len(problems) != 0 || len(superseded) != 1 {
		t.Fatalf("superseded %d, problems %v", len(superseded), problems)
	}
	if err := CheckSuperseding(superseded); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("CheckSuperseding: %v, want ErrCorrupt", err)
	}
}

// TestReadDirClassifies: names are classified by kind.
func TestReadDirClassifies(t *testing.T) {
	mem := vfs.NewMem()
	for _, n := range []string{"LOCK", FormatFileName(5, 0), FormatFileName(1, 2), FormatFileName(1, 0), FormatFileName(1, 0) + TempExt,
		"00000000000000ff-00000000000000000001.snap", "x.snap.tmp", "notes.txt"} {
		mem.WriteFile(n, nil)
	}
	d, err := ReadDir(mem)
	if err != nil {
		t.Fatal(err)
	}
	want := &Dir{
		Segments:  []DirFile{{FormatFileName(1, 2), 1, 2}, {FormatFileName(1, 0), 1, 0}, {FormatFileName(5, 0), 5, 0}},
		Temps:     []string{FormatFileName(1, 0) + TempExt},
		Snapshots: []string{"00000000000000ff-00000000000000000001.snap", "x.snap.tmp"},
		Other:     []string{"LOCK", "notes.txt"},
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("ReadDir (-want +got):\n%s", diff)
	}
	if n, ok := d.Newest(); !ok || n.Name != FormatFileName(5, 0) {
		t.Errorf("Newest = %v, %v", n, ok)
	}
}
