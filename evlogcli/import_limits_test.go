package evlogcli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/evlog/evlog"
)

// endlessLine is an input whose second line never ends: `{"stream":"s",
// "type":"t","data":"xxxx…`. It counts the bytes read from it.
type endlessLine struct {
	first []byte
	read  int64
}

func (r *endlessLine) Read(p []byte) (int, error) {
	n := copy(p, r.first)
	r.first = r.first[n:]
	for i := n; i < len(p); i++ {
		p[i] = 'x'
	}
	r.read += int64(len(p))
	return len(p), nil
}

// importWith runs import on DIR with stdin.
func importWith(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: stdin, stdout: &out, stderr: &errb, now: func() time.Time { return testEpoch },
		since: func(time.Time) time.Duration { return 0 }}
	err := runEnv(context.Background(), e, append([]string{"import"}, args...))
	r := result{stdout: out.String(), stderr: errb.String(), err: err, code: exitCode(err)}
	checkNoPanic(t, args, r)
	return r
}

// TestImportLongLine: a line longer than any event within the limit could
// take is refused after reading a bounded amount of it (it used to be
// read whole: a 300 MB line took 2.1 GB of memory).
func TestImportLongLine(t *testing.T) {
	for _, maxEvent := range []int64{0, 4096} {
		t.Run(fmt.Sprint("max-event-size=", maxEvent), func(t *testing.T) {
			dir := t.TempDir()
			limit := maxLineSize(evlog.DefaultMaxEventSize)
			args := []string{dir}
			if maxEvent != 0 {
				limit = maxLineSize(maxEvent)
				args = append(args, "--max-event-size", fmt.Sprint(maxEvent))
			}
			in := &endlessLine{first: []byte(`{"stream":"s","type":"t","data":"ok"}` + "\n" + `{"stream":"s","type":"t","data":"`)}
			r := importWith(t, in, args...)
			if r.code != 1 || !errors.Is(r.err, errLineTooLong) || !strings.Contains(r.stderr, "line 2: line too long") {
				t.Fatalf("exit %d, err %v, stderr %q: want a line-too-long error naming line 2", r.code, r.err, r.stderr)
			}
			if max := limit + 128<<10; in.read > max {
				t.Fatalf("read %d bytes of input, want at most %d (the line limit %d plus buffering)", in.read, max, limit)
			}
			if !strings.Contains(r.stderr, "1 event was imported") {
				t.Fatalf("stderr %q: the first line's event should have been imported", r.stderr)
			}
		})
	}
}

// TestImportEventSizeLimit: import's event limit is the library's (1 MiB
// by default), and --max-event-size raises both.
func TestImportEventSizeLimit(t *testing.T) {
	line := `{"stream":"s","type":"t","data":"` + strings.Repeat("y", evlog.DefaultMaxEventSize) + `"}` + "\n"
	dir := t.TempDir()
	r := importWith(t, strings.NewReader(line), dir)
	if r.code != 1 || !strings.Contains(r.stderr, "line 1: ") || !strings.Contains(r.stderr, "over the maximum event size 1048576") {
		t.Fatalf("default limit: exit %d, stderr %q: want an event-size error naming line 1", r.code, r.stderr)
	}
	r = importWith(t, strings.NewReader(line), dir, "--max-event-size", "2MiB")
	if r.err != nil {
		t.Fatalf("--max-event-size 2MiB: %v (%s)", r.err, r.stderr)
	}
	if r := importWith(t, strings.NewReader(line), dir, "--max-event-size", "17MiB"); r.code != 2 {
		t.Fatalf("--max-event-size 17MiB: exit %d, want 2 (usage)", r.code)
	}
}

// TestImportHugeInteger: an integer beyond 64 bits is an error naming the
// line, never silently a rounded float.
func TestImportHugeInteger(t *testing.T) {
	for _, n := range []string{"18446744073709551616", "-9223372036854775809", "123456789012345678901234567890"} {
		dir := t.TempDir()
		in := `{"stream":"s","type":"t","data":{"ok":1}}` + "\n" + `{"stream":"s","type":"t","data":{"n":` + n + `}}` + "\n"
		r := importWith(t, strings.NewReader(in), dir)
		if r.code != 1 || !strings.Contains(r.stderr, "line 2: data: integer "+n[:min(len(n), 40)]+" does not fit in 64 bits") {
			t.Fatalf("%s: exit %d, stderr %q", n, r.code, r.stderr)
		}
	}
	// The largest 64-bit integers stay exact.
	dir := t.TempDir()
	in := `{"stream":"s","type":"t","data":{"max":18446744073709551615,"min":-9223372036854775808}}` + "\n"
	if r := importWith(t, strings.NewReader(in), dir); r.err != nil {
		t.Fatalf("64-bit extremes: %v (%s)", r.err, r.stderr)
	}
	r := run1(t, "dump", dir, "--format", "jsonl")
	if !strings.Contains(r.stdout, `"data":{"max":18446744073709551615,"min":-9223372036854775808}`) {
		t.Fatalf("dump: %s", r.stdout)
	}
}
