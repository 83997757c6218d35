package evlogcli

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestHostileSegments damages a log at random (overwritten ranges, random,
// zero and 0xFF bytes, huge length prefixes, truncations, garbage tails,
// whole files replaced) and runs every reading command on it. Whatever the
// damage: no panic, exit status 0 or 1, and nothing invented:
//   - dump prints a prefix of the undamaged log's dump, and exits 0 only
//     when verify finds no corruption;
//   - dump's failure is the one line "corrupt FILE OFFSET REASON";
//   - salvage --skip-damaged copies a subsequence of the original events
//     (same stream, type, time and data, in order).
func TestHostileSegments(t *testing.T) {
	seed := uint64(20261125)
	tmp := t.TempDir()
	base := filepath.Join(tmp, "base")
	mustRun(t, "load", base, "--count", "150", "--size", "20", "--batch", "5", "--streams", "4", "--segment-size", "4096")
	mustRun(t, "compact", base, "--target-size", "8KiB")
	mustRun(t, "load", base, "--count", "40", "--size", "20", "--batch", "5", "--streams", "4", "--segment-size", "4096")
	mustRun(t, "snapshot", base)
	full := splitLines(mustRun(t, "dump", base, "--format", "jsonl").stdout)
	original := make([]string, len(full))
	for i, l := range full {
		original[i] = contentOf(t, l)
	}
	iterations := 60
	if testing.Short() {
		iterations = 15
	}
	for i := range iterations {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		dir := filepath.Join(tmp, fmt.Sprintf("case%d", i))
		if err := os.CopyFS(dir, os.DirFS(base)); err != nil {
			t.Fatal(err)
		}
		what := damageRandomly(t, rng, dir)
		t.Run(fmt.Sprintf("%d-%s", i, what), func(t *testing.T) {
			verify := run1(t, "verify", dir)
			dump := run1(t, "dump", dir, "--format", "jsonl")
			for _, r := range []result{verify, dump} {
				if r.code != 0 && r.code != 1 {
					t.Fatalf("exit status %d", r.code)
				}
			}
			got := splitLines(dump.stdout)
			if len(got) > len(full) || !slices.Equal(got, full[:len(got)]) {
				t.Fatalf("dump printed events that are not a prefix of the log's:\n%s", dump.stdout)
			}
			if dump.code == 1 && !strings.HasPrefix(dump.stderr, "corrupt ") && !strings.Contains(dump.stderr, "evlogctl dump: ") {
				t.Errorf("dump failed with %q", dump.stderr)
			}
			if verify.code == 0 && dump.code != 0 {
				t.Errorf("verify found nothing corrupt but dump failed: %s", dump.stderr)
			}
			if dump.code == 0 && verify.code != 0 && !strings.Contains(verify.stdout, ".snap") {
				// dump reads every record; only verify's index and
				// snapshot checks can find more.
				t.Logf("verify found more than dump: %s", verify.stdout)
			}
			for _, args := range [][]string{
				{"inspect", dir}, {"state", dir}, {"tail", dir}, {"snapshots", dir},
				{"dump", dir, "--stream", "s-1"}, {"dump", dir, "--since", "-1h"},
			} {
				if r := run1(t, args...); r.code != 0 && r.code != 1 {
					t.Fatalf("evlogctl %q: exit status %d", args, r.code)
				}
			}
			newdir := dir + "-salvaged"
			if r := run1(t, "salvage", dir, newdir, "--skip-damaged"); r.code != 0 && r.code != 1 {
				t.Fatalf("salvage: exit status %d: %s", r.code, r.stderr)
			}
			copied := splitLines(mustRun(t, "dump", newdir, "--format", "jsonl").stdout)
			j := 0
			for _, l := range copied {
				c := contentOf(t, l)
				for j < len(original) && original[j] != c {
					j++
				}
				if j == len(original) {
					t.Fatalf("salvage copied an event that is not in the original log (or out of order): %s", l)
				}
				j++
			}
		})
	}
}

// contentOf returns what salvage keeps of a dumped event: all but seq and
// version.
func contentOf(t *testing.T, line string) string {
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "seq")
	delete(m, "version")
	b, _ := json.Marshal(m)
	return string(b)
}

// damageRandomly applies one random kind of damage to one segment of dir
// and describes it.
func damageRandomly(t *testing.T, rng *rand.Rand, dir string) string {
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	k := rng.IntN(len(segs))
	file := segs[k]
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var what string
	switch rng.IntN(9) {
	case 0: // overwrite a range with random bytes
		off, n := rng.IntN(len(data)), 1+rng.IntN(64)
		for i := off; i < min(off+n, len(data)); i++ {
			data[i] = byte(rng.Uint32())
		}
		what = "random-range"
	case 1: // one flipped bit
		off := rng.IntN(len(data))
		data[off] ^= 1 << rng.IntN(8)
		what = "bit"
	case 2: // zero a range (a lost sector)
		off := rng.IntN(len(data))
		clear(data[off:min(off+512, len(data))])
		what = "zero-range"
	case 3: // a huge length prefix where a frame may start
		off := 64 + rng.IntN(max(len(data)-72, 1))
		binary.LittleEndian.PutUint32(data[min(off+4, len(data)-4):], 0xffffffff-uint32(rng.IntN(1<<20)))
		what = "huge-length"
	case 4: // truncated
		data = data[:rng.IntN(len(data))]
		what = "truncated"
	case 5: // garbage appended
		g := make([]byte, 1+rng.IntN(5000))
		for i := range g {
			g[i] = byte(rng.Uint32())
		}
		data = append(data, g...)
		what = "garbage-tail"
	case 6: // the whole file random
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		what = "random-file"
	case 7: // all 0xFF
		for i := range data {
			data[i] = 0xff
		}
		what = "ff-file"
	case 8: // zero-length
		data = nil
		what = "empty-file"
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s-seg%d", what, k)
}
