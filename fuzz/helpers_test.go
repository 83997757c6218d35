package fuzz

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
)

var update = flag.Bool("fuzz.update", false, "regenerate the seed corpora under testdata/fuzz")

// maxAlloc bounds what one fuzz input may make the process allocate.
const maxAlloc = 256 << 20

// checkAlloc runs f and fails t if it allocated more than limit bytes
// (runtime.MemStats.TotalAlloc: every allocation, freed or not).
func checkAlloc(t *testing.T, limit uint64, f func()) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > limit {
		t.Fatalf("one input allocated %d MiB (limit %d MiB)", got>>20, limit>>20)
	}
}

// maxInputTime bounds how long one input may run; the targets take
// milliseconds.
const maxInputTime = 20 * time.Second

// checkInput runs f for one fuzz input: it fails t if f allocates more than
// maxAlloc, and crashes the process with every goroutine's stack if f runs
// longer than maxInputTime (go test -fuzz reports neither a hang nor a
// slow input by itself; a crash it reports, with the input).
func checkInput(t *testing.T, f func()) {
	t.Helper()
	timer := time.AfterFunc(maxInputTime, func() {
		debug.SetTraceback("all")
		panic(fmt.Sprintf("one input of %s ran for more than %v: a hang", t.Name(), maxInputTime))
	})
	defer timer.Stop()
	checkAlloc(t, maxAlloc, f)
}

// readLog reads every event of l, and the error that ended the reading.
func readLog(ctx context.Context, l *evlog.Log) ([]event.Envelope, error) {
	var out []event.Envelope
	for e, err := range l.Events(ctx, 1) {
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, nil
}

// sameEvent reports whether two envelopes are equal, field by field (nil
// and empty Meta and Data alike).
func sameEvent(a, b event.Envelope) bool {
	return a.Seq == b.Seq && a.Stream == b.Stream && a.Version == b.Version && a.Type == b.Type &&
		a.SchemaVersion == b.SchemaVersion && a.ID == b.ID && a.Time.Equal(b.Time) &&
		bytes.Equal(a.Data, b.Data) && maps.Equal(a.Meta, b.Meta)
}

func describe(e event.Envelope) string {
	return fmt.Sprintf("seq %d %q v%d %q sv%d id=%q t=%d meta=%v data=%x", e.Seq, e.Stream, e.Version, e.Type, e.SchemaVersion, e.ID, e.Time.UnixNano(), e.Meta, e.Data)
}

// corpusFile encodes values in the format of Go's fuzzing corpus files.
func corpusFile(vals ...any) []byte {
	var b strings.Builder
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case uint8:
			fmt.Fprintf(&b, "byte(%q)\n", v)
		case uint32:
			fmt.Fprintf(&b, "uint32(%d)\n", v)
		case uint64:
			fmt.Fprintf(&b, "uint64(%d)\n", v)
		default:
			panic(fmt.Sprintf("corpusFile: %T", v))
		}
	}
	return []byte(b.String())
}

// parseCorpusFile decodes what corpusFile encodes.
func parseCorpusFile(data []byte) ([]any, error) {
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) == 0 || lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("not a corpus file")
	}
	var out []any
	for _, line := range lines[1:] {
		typ, arg, ok := strings.Cut(line, "(")
		if !ok || !strings.HasSuffix(arg, ")") {
			return nil, fmt.Errorf("bad line %q", line)
		}
		arg = arg[:len(arg)-1]
		switch typ {
		case "[]byte", "string":
			s, err := strconv.Unquote(arg)
			if err != nil {
				return nil, err
			}
			if typ == "string" {
				out = append(out, s)
			} else {
				out = append(out, []byte(s))
			}
		case "byte":
			s, err := strconv.Unquote(arg)
			if err != nil || len(s) != 1 {
				return nil, fmt.Errorf("bad byte %q", arg)
			}
			out = append(out, s[0])
		case "uint32", "uint64":
			n, err := strconv.ParseUint(arg, 0, 64)
			if err != nil {
				return nil, err
			}
			if typ == "uint32" {
				out = append(out, uint32(n))
			} else {
				out = append(out, n)
			}
		default:
			return nil, fmt.Errorf("unsupported type %q", typ)
		}
	}
	return out, nil
}

// seedCorpus is one target's seed files, by name.
type seedCorpus map[string][]byte

// syncCorpus writes seeds to testdata/fuzz/target with -fuzz.update, and
// otherwise checks that they are there (the seeds of FuzzOpenDir and
// FuzzReplayModel come from logs with random IDs, so only their presence
// and behaviour, not their bytes, are checked against a regeneration).
func syncCorpus(t *testing.T, target string, seeds seedCorpus, exact bool) {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range seeds {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	for name, want := range seeds {
		got, err := os.ReadFile(filepath.Join(dir, name))
		switch {
		case err != nil:
			t.Errorf("seed %s/%s is missing (regenerate with -fuzz.update): %v", target, name, err)
		case exact && !bytes.Equal(got, want):
			t.Errorf("seed %s/%s is stale (regenerate with -fuzz.update)", target, name)
		}
	}
}

// loadSeeds returns the parsed seed files of target whose names start
// with prefix.
func loadSeeds(t *testing.T, target, prefix string) map[string][]any {
	t.Helper()
	dir := filepath.Join("testdata", "fuzz", target)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]any{}
	for _, de := range ents {
		if !strings.HasPrefix(de.Name(), prefix) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		vals, err := parseCorpusFile(data)
		if err != nil {
			t.Fatalf("%s/%s: %v", target, de.Name(), err)
		}
		out[de.Name()] = vals
	}
	if len(out) == 0 {
		t.Fatalf("no seeds %s* in %s", prefix, dir)
	}
	return out
}
