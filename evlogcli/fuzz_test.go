package evlogcli

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzArgs feeds arbitrary argument lists to dump and verify on a small
// log (with a snapshot and a torn tail): whatever the arguments, no panic,
// and the exit status is 0, 1 or 2. The input is the arguments separated
// by NUL bytes; the first is the command ("verify" or, for anything else,
// "dump"); "$DIR" stands for the log.
func FuzzArgs(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "log")
	if r := run1(f, "load", dir, "--count", "40", "--size", "8", "--batch", "4", "--streams", "3", "--segment-size", "4096"); r.code != 0 {
		f.Fatalf("load: %s", r.stderr)
	}
	if r := run1(f, "snapshot", dir); r.code != 0 {
		f.Fatalf("snapshot: %s", r.stderr)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	fh, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		f.Fatal(err)
	}
	fh.Write([]byte("torn"))
	fh.Close()
	for _, seed := range []string{
		"dump\x00$DIR",
		"dump\x00$DIR\x00--format\x00jsonl\x00--from\x005\x00--to\x009",
		"dump\x00$DIR\x00--stream\x00s-1\x00--since\x00-1h\x00--until\x002026-11-25T15:00:00Z",
		"dump\x00--type=load\x00$DIR\x00--to=0",
		"dump\x00$DIR\x00--from\x00-1",
		"dump\x00$DIR\x00--\x00--from",
		"verify\x00$DIR",
		"verify\x00$DIR\x00--replay\x00--format=json",
		"verify\x00--format\x00yaml\x00$DIR",
		"verify\x00-h",
	} {
		f.Add(seed)
	}
	before := dirDigest(f, dir)
	f.Fuzz(func(t *testing.T, input string) {
		args := strings.Split(input, "\x00")
		cmd := "dump"
		if args[0] == "verify" {
			cmd = "verify"
		}
		args[0] = cmd
		for i := range args {
			args[i] = strings.ReplaceAll(args[i], "$DIR", dir)
		}
		r := run1(t, args...) // fails on any panic or internal error
		if r.code < 0 || r.code > 2 {
			t.Fatalf("evlogctl %q: exit status %d", args, r.code)
		}
		// dump and verify are read-only: the torn tail stays, nothing
		// is created, removed or changed.
		if got := dirDigest(t, dir); got != before {
			t.Fatalf("evlogctl %q changed the log directory:\n%s\nwas:\n%s", args, got, before)
		}
	})
}

// FuzzDataJSON converts arbitrary payloads as dump does: never a panic,
// and what comes out is valid JSON (or the payload is reported as not
// msgpack).
func FuzzDataJSON(f *testing.F) {
	for _, s := range [][]byte{
		loadData(nil, 7, "xx"),
		{0xc0}, {0x91, 0x01}, {0xdd, 0xff, 0xff, 0xff, 0xff}, {0xdf, 0xff, 0xff, 0xff, 0xff},
		{0xc4, 0x02, 0xff, 0x00}, {0xd6, 0xff, 0, 0, 0, 1}, {0xca, 0x3d, 0xcc, 0xcc, 0xcd},
		{0x81, 0x01, 0x02}, {0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		out, err := appendMsgpackJSON(nil, p)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("%x converts to invalid JSON %s", p, out)
		}
		mp, err := msgpackFromJSON(out)
		if err != nil {
			t.Fatalf("import cannot read back %s: %v", out, err)
		}
		// What import writes, dump prints so that import writes it again
		// unchanged: import then dump is a fixed point. (The first pass
		// may change the JSON: a map with a repeated key imports as its
		// last value.)
		again, err := appendMsgpackJSON(nil, mp)
		if err != nil {
			t.Fatalf("%x prints as %s, which imports as %x, which dump refuses: %v", p, out, mp, err)
		}
		mp2, err := msgpackFromJSON(again)
		if err != nil || !bytes.Equal(mp2, mp) {
			t.Fatalf("%s imports as %x, printed %s, which imports as %x (%v)", out, mp, again, mp2, err)
		}
	})
}

// dirDigest lists the files under dir with their sizes and checksums.
func dirDigest(t testing.TB, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		sum := ""
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum = fmt.Sprintf("%x", sha256.Sum256(data))
		}
		fmt.Fprintf(&b, "%s %v %d %s\n", path, info.Mode(), info.Size(), sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
