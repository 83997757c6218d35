package segment

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// ckptFixture is a version 2 segment (all batches fsynced and marked) and
// a checkpoint of its first batches, with the index the checkpoint holds.
type ckptFixture struct {
	name string
	seg  []byte
	ckpt []byte
	x    *Index // what the checkpoint indexes
	full *Index // the whole segment
}

func newCkptFixture(t testing.TB) ckptFixture {
	t.Helper()
	rng := rand.New(rand.NewPCG(17, 71))
	img := buildImage(testHeaderV2(1), genBatches(rng, 1, genOptions{batches: 30, maxBatch: 9, streams: 12, maxData: 20, syncEvery: 1}))
	k := 20
	p := img.end[k-1]
	x := img.index(k)
	ws := CheckpointWindowStart(p)
	full, _, err := scanBytes(img.data, img.h, ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return ckptFixture{
		name: FormatFileName(1, 0),
		seg:  img.data,
		ckpt: EncodeCheckpoint(img.h, img.hb, x, p, crc(img.data[ws:p])),
		x:    x,
		full: full,
	}
}

// open opens the fixture's segment with ckpt as its checkpoint, and the
// checkpoint (checked), or returns the error.
func (fx ckptFixture) open(t testing.TB, ckpt []byte) (*Segment, *Checkpoint, error) {
	t.Helper()
	mem := memWith(fx.name, fx.seg)
	if err := mem.WriteFile(CheckpointName(fx.name), ckpt); err != nil {
		t.Fatal(err)
	}
	s, err := Open(mem, fx.name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenCheckpoint(mem, s)
	if err == nil {
		if err = c.Check(s); err != nil {
			c.Close()
		}
	}
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	s.AttachCheckpoint(c)
	return s, c, nil
}

// indexContents is what an index says, for comparisons.
type indexContents struct {
	Count, NewStreams        int
	LastSeq                  uint64
	FirstTime, LastTime, End int64
	Sparse                   []SparseEntry
	Streams                  map[string]StreamPostings
	LastVersions             map[string]uint64
}

func contentsOf(t testing.TB, x *Index, names []string) (indexContents, error) {
	sp, err := x.Sparse()
	if err != nil {
		return indexContents{}, err
	}
	c := indexContents{Count: x.Count, NewStreams: x.NewStreams, LastSeq: x.LastSeq, FirstTime: x.FirstTime, LastTime: x.LastTime, End: x.End,
		Sparse: sp, Streams: map[string]StreamPostings{}, LastVersions: map[string]uint64{}}
	for _, n := range names {
		s, ok, err := x.Stream(n)
		if err != nil {
			return indexContents{}, err
		}
		if ok {
			c.Streams[n] = s
		}
		v, err := x.LastVersion(n)
		if err != nil {
			return indexContents{}, err
		}
		c.LastVersions[n] = v
	}
	return c, nil
}

// equal reports whether c and d say the same, nil and empty alike (as
// cmpopts.EquateEmpty): the fast check, cmp.Diff explains a difference.
func (c indexContents) equal(d indexContents) bool {
	return c.Count == d.Count && c.NewStreams == d.NewStreams && c.LastSeq == d.LastSeq &&
		c.FirstTime == d.FirstTime && c.LastTime == d.LastTime && c.End == d.End &&
		slices.Equal(c.Sparse, d.Sparse) && maps.Equal(c.LastVersions, d.LastVersions) &&
		maps.EqualFunc(c.Streams, d.Streams, func(a, b StreamPostings) bool {
			return a.FirstVersion == b.FirstVersion && slices.Equal(a.Posts, b.Posts)
		})
}

// equalStreams reports whether two indexes' streams are equal as cmp.Diff
// sees them (nil and empty Posts differ).
func equalStreams(a, b map[string]*StreamPostings) bool {
	return maps.EqualFunc(a, b, func(x, y *StreamPostings) bool {
		if x == nil || y == nil {
			return x == y
		}
		return x.FirstVersion == y.FirstVersion && (x.Posts == nil) == (y.Posts == nil) && slices.Equal(x.Posts, y.Posts)
	})
}

func (fx ckptFixture) names() []string {
	return append(slices.Sorted(maps.Keys(fx.full.streams)), "no-such-stream")
}

func TestCheckpointRoundTrip(t *testing.T) {
	fx := newCkptFixture(t)
	s, c, err := fx.open(t, fx.ckpt)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want, _ := contentsOf(t, fx.x, fx.names())
	got, err := contentsOf(t, NewIndexFrom(c), fx.names())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("index from the checkpoint (-want +got):\n%s", diff)
	}
	m, err := NewIndexFrom(c).Materialize()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fx.x.streams, m.streams); diff != "" {
		t.Errorf("materialized (-want +got):\n%s", diff)
	}
	// Scanning on from the checkpoint gives the index of the whole segment.
	x, tail, err := split(Scan(s.File(), s.Header, s.Size, ScanOptions{Checkpoint: c}))
	if err != nil || tail != nil {
		t.Fatalf("Scan from the checkpoint: %v, tail %+v", err, tail)
	}
	want, _ = contentsOf(t, fx.full, fx.names())
	if got, err = contentsOf(t, x, fx.names()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("scan on from the checkpoint (-full scan +got):\n%s", diff)
	}
}

// TestCheckpointDamage flips every byte of a checkpoint, and cuts it at
// every length: the checkpoint is refused at open (header, trailer, tag,
// window) or, when the damage lies in a frame read later, found then and
// answered from a scan of the segment. The index never differs from the
// truth. The cases run in parallel subtests over ranges of offsets, each
// compared with a direct equality check (cmp.Diff, costly under -race,
// only explains a difference).
func TestCheckpointDamage(t *testing.T) {
	fx := newCkptFixture(t)
	names := fx.names()
	want, _ := contentsOf(t, fx.x, names)
	var checked, refused, rescued atomic.Int64
	check := func(t *testing.T, what string, ckpt []byte) {
		checked.Add(1)
		s, c, err := fx.open(t, ckpt)
		if err != nil {
			if !errors.Is(err, ErrCheckpoint) {
				t.Fatalf("%s: OpenCheckpoint: %v, want ErrCheckpoint", what, err)
			}
			refused.Add(1)
			return
		}
		defer s.Close()
		got, err := contentsOf(t, NewIndexFrom(c), names)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if !want.equal(got) {
			t.Fatalf("%s: index differs (-want +got):\n%s", what, cmp.Diff(want, got, cmpopts.EquateEmpty()))
		}
		m, err := NewIndexFrom(c).Materialize()
		if err != nil {
			t.Fatalf("%s: Materialize: %v", what, err)
		}
		if !equalStreams(fx.x.streams, m.streams) {
			t.Fatalf("%s: materialized (-want +got):\n%s", what, cmp.Diff(fx.x.streams, m.streams))
		}
		if c.fallback != nil {
			rescued.Add(1)
		}
	}
	// Every offset's flips and every length's cut, in ranges of offsets
	// run in parallel (the parent waits for them all).
	const chunk = 64
	t.Run("ranges", func(t *testing.T) {
		for lo := 0; lo < len(fx.ckpt); lo += chunk {
			hi := min(lo+chunk, len(fx.ckpt))
			t.Run(fmt.Sprintf("%d-%d", lo, hi), func(t *testing.T) {
				t.Parallel()
				b := slices.Clone(fx.ckpt)
				for i := lo; i < hi; i++ {
					for _, x := range []byte{0x01, 0xff} {
						b[i] ^= x
						check(t, fmt.Sprintf("flip %#x at %d", x, i), b)
						b[i] ^= x
					}
					check(t, fmt.Sprintf("cut at %d", i), fx.ckpt[:i])
				}
			})
		}
	})
	if t.Failed() {
		return
	}
	// The segment cut before the checkpoint's end, or changed in its window:
	// the checkpoint is authentic, so the segment lost durable data, which is
	// corruption of the segment (at its size, at the window's start).
	wantCorrupt := func(what string, err error, off int64) {
		t.Helper()
		ce, ok := errors.AsType[*CorruptError](err)
		if !errors.Is(err, ErrCorrupt) || errors.Is(err, ErrCheckpoint) || !ok || ce.File != fx.name || ce.Offset != off {
			t.Errorf("%s: %v, want ErrCorrupt naming %s at %d", what, err, fx.name, off)
		}
	}
	fxs := fx
	fxs.seg = fx.seg[:fx.x.End-1]
	_, _, err := fxs.open(t, fx.ckpt)
	wantCorrupt("segment shorter than the checkpoint", err, fx.x.End-1)
	fxs.seg = slices.Clone(fx.seg)
	fxs.seg[fx.x.End-1] ^= 1
	_, _, err = fxs.open(t, fx.ckpt)
	wantCorrupt("segment changed before the checkpoint's end", err, CheckpointWindowStart(fx.x.End))
	t.Logf("%d damaged checkpoints refused at open, %d found damaged later and rescued by a scan", refused.Load(), rescued.Load())
	if want := 3 * int64(len(fx.ckpt)); checked.Load() != want {
		t.Errorf("%d cases checked, want %d (two flips and a cut per offset)", checked.Load(), want)
	}
	if rescued.Load() == 0 {
		t.Error("no damage was found after open: the test does not reach the rescue")
	}
}

// FuzzCheckpoint opens arbitrary bytes as a checkpoint of a valid segment:
// no panic, bounded allocation, and errors are either "not usable" at
// open or corruption (of the checkpoint, rescued, or of the segment).
func FuzzCheckpoint(f *testing.F) {
	fx := newCkptFixture(f)
	f.Add(fx.ckpt)
	f.Add(fx.ckpt[:CheckpointHeaderSize+TrailerSize])
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAlloc(t, 16<<20, func() {
			s, c, err := fx.open(t, data)
			if err != nil {
				if !errors.Is(err, ErrCheckpoint) {
					t.Fatalf("OpenCheckpoint: %v, want ErrCheckpoint", err)
				}
				return
			}
			defer s.Close()
			if _, err := contentsOf(t, NewIndexFrom(c), fx.names()); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("reading the checkpoint: %v", err)
			}
			y, err := NewIndexFrom(c).Materialize()
			if err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Materialize: %v", err)
			}
			// A checkpoint is bound to its segment (tag, window CRC,
			// frame CRCs): what it yields, read or rescued by a scan, is
			// the index of the segment's prefix it was written for.
			if err == nil {
				if d := IndexDiff(y, fx.x); d != "" {
					t.Fatalf("Materialize of an accepted checkpoint differs from the segment's index at %d: %s", c.End, d)
				}
			}
		})
	})
}

// TestGoldenCheckpoint keeps a checkpoint of every checkpoint version
// (with its segment) under testdata/ckpt/v<N>: the encoder must still
// write exactly the current version's, and every version must always
// decode, and answer prefix queries (version 2 from its name blocks).
// Regenerate the current version's with -update (before any release
// only).
func TestGoldenCheckpoint(t *testing.T) {
	fx := newCkptFixture(t)
	cur := filepath.Join("testdata", "ckpt", "v"+strconv.Itoa(ckptVersion))
	files := map[string][]byte{"active.seg": fx.seg, "active.ckpt": fx.ckpt}
	if *update {
		if err := os.MkdirAll(cur, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(cur, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(cur, name))
		if err != nil {
			t.Fatalf("%v (generate the golden files with -update)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: the current encoder writes other bytes: the checkpoint format changed, which needs a new checkpoint version (the old one must keep decoding)", name)
		}
	}
	want, _ := contentsOf(t, fx.x, fx.names())
	for v := 1; v <= ckptVersion; v++ {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			dir := filepath.Join("testdata", "ckpt", "v"+strconv.Itoa(v))
			golden := fx
			for name := range files {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				files[name] = b
			}
			golden.seg, golden.ckpt = files["active.seg"], files["active.ckpt"]
			s, c, err := golden.open(t, golden.ckpt)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got, err := contentsOf(t, NewIndexFrom(c), fx.names())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("golden checkpoint decodes to (-want +got):\n%s", diff)
			}
			sum, err := c.Summary()
			if err != nil || sum.hasNames != (v >= 2) {
				t.Errorf("checkpoint version %d: name blocks %v (%v), want %v", v, sum != nil && sum.hasNames, err, v >= 2)
			}
			for _, prefix := range []string{"", "o", "order-1", "zz"} {
				var names, wantNames []string
				err := NewIndexFrom(c).EachStream(prefix, func(name string, _ StreamPostings) { names = append(names, name) })
				if err != nil {
					t.Fatal(err)
				}
				fx.x.EachStream(prefix, func(name string, _ StreamPostings) { wantNames = append(wantNames, name) })
				slices.Sort(names)
				slices.Sort(wantNames)
				if !slices.Equal(names, wantNames) {
					t.Errorf("EachStream(%q) = %q, want %q", prefix, names, wantNames)
				}
			}
		})
	}
}
