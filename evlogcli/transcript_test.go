package evlogcli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/evlog/evlog"
)

var update = flag.Bool("update", false, "rewrite the expected outputs of testdata/*.txt")

// TestTranscripts runs the scripts in testdata/*.txt. A script is a list of
// blocks; each block is a command line, optional directives, and the
// expected stdout:
//
//	# a comment (attached to the next block)
//	$ evlogctl dump $DIR --format jsonl     a command run in-process
//	! exit 1                                its exit status (default 0)
//	stderr: corrupt 0+\.seg 123 checksum    a regexp stderr must match
//	{"seq":1,…}                             stdout, line by line
//
// Without a stderr: directive stderr must be empty. $TMP is the script's
// temporary directory and $DIR is $TMP/log; outputs show them as $TMP and
// $DIR. Redirections: "< FILE" feeds stdin, "> FILE" writes stdout to
// FILE. Commands without the evlogctl prefix are fixtures (see fixture).
// Every command runs with the fixed clock of the script ("clock"). Run
// with -update to rewrite the expected exit statuses and outputs.
func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no transcripts in testdata")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			t.Parallel()
			runTranscript(t, file)
		})
	}
}

// block is one command of a transcript.
type block struct {
	comments []string
	cmd      string
	exit     int
	stderr   []string // regexps
	stdout   []string
	line     int
}

func parseTranscript(t *testing.T, data string) []*block {
	var blocks []*block
	var comments []string
	var cur *block
	inStdout := false
	for i, line := range strings.Split(strings.TrimRight(data, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "#"):
			comments = append(comments, line)
			continue
		case strings.HasPrefix(line, "$ "):
			cur = &block{comments: comments, cmd: strings.TrimPrefix(line, "$ "), line: i + 1}
			comments = nil
			blocks = append(blocks, cur)
			inStdout = false
			continue
		}
		if cur == nil {
			if strings.TrimSpace(line) != "" {
				t.Fatalf("line %d: text before the first command: %q", i+1, line)
			}
			continue
		}
		if !inStdout {
			if s, ok := strings.CutPrefix(line, "! exit "); ok {
				n, err := strconv.Atoi(s)
				if err != nil {
					t.Fatalf("line %d: bad exit status %q", i+1, s)
				}
				cur.exit = n
				continue
			}
			if s, ok := strings.CutPrefix(line, "stderr: "); ok {
				cur.stderr = append(cur.stderr, s)
				continue
			}
		}
		inStdout = true
		cur.stdout = append(cur.stdout, line)
	}
	for _, b := range blocks {
		for len(b.stdout) > 0 && strings.TrimSpace(b.stdout[len(b.stdout)-1]) == "" {
			b.stdout = b.stdout[:len(b.stdout)-1]
		}
	}
	return blocks
}

// transcript is the state of one running script.
type transcript struct {
	t      *testing.T
	tmp    string
	now    time.Time
	locks  map[string]*evlog.Log
	hashes map[string]string
	random *rand.Rand
	// wallStart is when the script started: times printed from the real
	// clock (a backup manifest's creation time) lie after it.
	wallStart time.Time
}

func runTranscript(t *testing.T, file string) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blocks := parseTranscript(t, string(data))
	ts := &transcript{t: t, tmp: t.TempDir(), now: testEpoch, locks: map[string]*evlog.Log{}, hashes: map[string]string{}, random: rand.New(rand.NewPCG(1, 2)), wallStart: time.Now()}
	defer func() {
		for _, l := range ts.locks {
			l.Close()
		}
	}()
	changed := false
	for _, b := range blocks {
		stdout, stderr, code := ts.exec(b)
		got := splitLines(stdout)
		where := fmt.Sprintf("%s:%d: $ %s", file, b.line, b.cmd)
		if *update {
			if code != b.exit || !slices.Equal(got, b.stdout) {
				changed = true
			}
			b.exit, b.stdout = code, got
			stale := len(b.stderr) == 0 && stderr != "" || len(b.stderr) > 0 && stderr == ""
			for _, re := range b.stderr {
				if ok, err := regexp.MatchString(re, stderr); err != nil || !ok {
					stale = true
				}
			}
			if stale {
				b.stderr = nil
				if stderr != "" {
					b.stderr = []string{regexp.QuoteMeta(strings.SplitN(stderr, "\n", 2)[0])}
				}
				changed = true
			}
		} else {
			if code != b.exit {
				t.Errorf("%s\nexit status %d, want %d\nstderr: %s", where, code, b.exit, stderr)
			}
			if !slices.Equal(got, b.stdout) {
				t.Errorf("%s\nstdout:\n%s\nwant:\n%s\nstderr: %s", where, strings.Join(got, "\n"), strings.Join(b.stdout, "\n"), stderr)
			}
		}
		switch {
		case len(b.stderr) == 0 && stderr != "":
			t.Errorf("%s\nunexpected stderr:\n%s", where, stderr)
		case len(b.stderr) > 0:
			for _, re := range b.stderr {
				ok, err := regexp.MatchString(re, stderr)
				if err != nil {
					t.Fatalf("%s: bad stderr regexp %q: %v", where, re, err)
				}
				if !ok {
					t.Errorf("%s\nstderr %q does not match %q", where, stderr, re)
				}
			}
		}
	}
	if *update && changed {
		var out strings.Builder
		for i, b := range blocks {
			if i > 0 {
				out.WriteString("\n")
			}
			for _, c := range b.comments {
				out.WriteString(c + "\n")
			}
			out.WriteString("$ " + b.cmd + "\n")
			if b.exit != 0 {
				fmt.Fprintf(&out, "! exit %d\n", b.exit)
			}
			for _, s := range b.stderr {
				out.WriteString("stderr: " + s + "\n")
			}
			for _, l := range b.stdout {
				if strings.HasPrefix(l, "#") || strings.HasPrefix(l, "$ ") {
					t.Fatalf("%s: stdout line %q would not read back", b.cmd, l)
				}
				out.WriteString(l + "\n")
			}
		}
		if err := os.WriteFile(file, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func splitLines(s string) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

var (
	logIDRe = regexp.MustCompile(`\b[0-9a-f]{32}\b`)
	// Header checksums cover the random log ID.
	checksumRe = regexp.MustCompile(`\(stored [0-9a-f]{8}, computed [0-9a-f]{8}\)`)
	// Backup file digests cover the random log ID too.
	shaRe = regexp.MustCompile(`SHA-256 [0-9a-f]{16}, the manifest says [0-9a-f]{16}`)
	// printedTimeRe is a time as evlogctl prints it (timeLayout).
	printedTimeRe = regexp.MustCompile(`\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z\b`)
)

// normalize makes outputs independent of the temporary directory and of
// random log IDs.
func (ts *transcript) normalize(s string) string {
	s = strings.ReplaceAll(s, filepath.Join(ts.tmp, "log"), "$DIR")
	s = strings.ReplaceAll(s, ts.tmp, "$TMP")
	s = checksumRe.ReplaceAllString(s, "(stored <crc>, computed <crc>)")
	s = shaRe.ReplaceAllString(s, "SHA-256 <sha>, the manifest says <sha>")
	s = printedTimeRe.ReplaceAllStringFunc(s, ts.wallClock)
	return logIDRe.ReplaceAllString(s, "<logid>")
}

// wallClock masks a printed time read from the real clock during the
// script (the scripts' own times come from their fixed clock, testEpoch
// and later, never within a minute of the run): "<wallclock>".
func (ts *transcript) wallClock(s string) string {
	t, err := time.Parse(timeLayout, s)
	if err != nil || t.Before(ts.wallStart.Add(-time.Minute)) || t.After(time.Now().Add(time.Minute)) {
		return s
	}
	return "<wallclock>"
}

func (ts *transcript) expand(s string) string {
	s = strings.ReplaceAll(s, "$DIR", filepath.Join(ts.tmp, "log"))
	return strings.ReplaceAll(s, "$TMP", ts.tmp)
}

// exec runs one block's command and returns its normalised outputs.
func (ts *transcript) exec(b *block) (stdout, stderr string, code int) {
	args, err := splitArgs(b.cmd)
	if err != nil {
		ts.t.Fatalf("line %d: %v", b.line, err)
	}
	for i := range args {
		args[i] = ts.expand(args[i])
	}
	if len(args) == 2 && args[0] == "write" {
		// The block's text is the file's content (and its "output").
		content := strings.Join(b.stdout, "\n") + "\n"
		if err := os.WriteFile(args[1], []byte(ts.expand(content)), 0o644); err != nil {
			ts.t.Fatal(err)
		}
		return strings.Join(b.stdout, "\n"), "", 0
	}
	if len(args) == 0 || args[0] != "evlogctl" {
		out, err := ts.fixture(args)
		if err != nil {
			ts.t.Fatalf("line %d: $ %s: %v", b.line, b.cmd, err)
		}
		return ts.normalize(out), "", 0
	}
	args = args[1:]
	stdin := ""
	outFile := ""
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "<", ">":
			if i+1 >= len(args) {
				ts.t.Fatalf("line %d: redirection without a file", b.line)
			}
			if args[i] == "<" {
				data, err := os.ReadFile(args[i+1])
				if err != nil {
					ts.t.Fatalf("line %d: %v", b.line, err)
				}
				stdin = string(data)
			} else {
				outFile = args[i+1]
			}
			args = slices.Delete(args, i, i+2)
			i--
		}
	}
	r := runIn(ts.t, context.Background(), ts.now, stdin, args...)
	if outFile != "" {
		if err := os.WriteFile(outFile, []byte(r.stdout), 0o644); err != nil {
			ts.t.Fatal(err)
		}
		r.stdout = ""
	}
	return ts.normalize(r.stdout), ts.normalize(r.stderr), r.code
}

// splitArgs splits a command line at spaces, honouring '…' and "…"
// quoting.
func splitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	in, quote, have := false, byte(0), false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case in && c == quote:
			in = false
		case in:
			cur.WriteByte(c)
		case c == '\'' || c == '"':
			in, quote, have = true, c, true
		case c == ' ':
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if in {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if have {
		args = append(args, cur.String())
	}
	return args, nil
}

// fixture runs a fixture command:
//
//	write FILE                   write the block's text (its "stdout") to FILE
//	clock TIME|+DURATION         set or advance the clock of later commands
//	corrupt-byte FILE OFFSET     flip every bit of one byte (OFFSET < 0: from the end)
//	truncate FILE SIZE           cut FILE to SIZE bytes (SIZE < 0: remove -SIZE bytes)
//	append FILE N random|zero|ff append N bytes
//	fill FILE N random|zero|ff   replace FILE's contents by N bytes
//	put-u32 FILE OFFSET VALUE    overwrite 4 bytes, little-endian (OFFSET < 0: from the end)
//	rm FILE / mkdir DIR / cp SRC DST / cpdir SRC DST (DST must not exist)
//	ls DIR                       print the names and sizes of DIR's files
//	cat FILE                     print FILE
//	lines FILE                   print FILE's number of lines, first and last
//	same FILE1 FILE2             print "same" or "differ"
//	hash DIR                     digest DIR's names and contents: print
//	                             "recorded" the first time, then "unchanged"
//	                             or "changed"
//	lock DIR / unlock DIR        hold / release the writer lock (evlog.Open)
//	ack DIR NAME SEQ [CATEGORY]  acknowledge SEQ in the durable subscription
//	                             NAME (filtered to CATEGORY), with the writer
//	                             that lock holds or a new one
//
// FILE may be a glob matching exactly one file.
func (ts *transcript) fixture(args []string) (string, error) {
	need := func(n int) error {
		if len(args) != n+1 {
			return fmt.Errorf("%s takes %d arguments", args[0], n)
		}
		return nil
	}
	file := func(i int) (string, error) {
		m, err := filepath.Glob(args[i])
		if err != nil || len(m) != 1 {
			return "", fmt.Errorf("%s matches %d files", args[i], len(m))
		}
		return m[0], nil
	}
	num := func(i int) (int64, error) { return strconv.ParseInt(args[i], 0, 64) }
	content := func(n int64, kind string) ([]byte, error) {
		b := make([]byte, n)
		switch kind {
		case "zero":
		case "ff":
			for i := range b {
				b[i] = 0xff
			}
		case "random":
			for i := range b {
				b[i] = byte(ts.random.Uint32())
			}
		default:
			return nil, fmt.Errorf("content %q: use random, zero or ff", kind)
		}
		return b, nil
	}
	switch args[0] {
	case "clock":
		if err := need(1); err != nil {
			return "", err
		}
		if d, ok := strings.CutPrefix(args[1], "+"); ok {
			dd, err := time.ParseDuration(d)
			if err != nil {
				return "", err
			}
			ts.now = ts.now.Add(dd)
			return "", nil
		}
		t, err := time.Parse(time.RFC3339Nano, args[1])
		ts.now = t
		return "", err
	case "corrupt-byte":
		if err := need(2); err != nil {
			return "", err
		}
		f, err := file(1)
		if err != nil {
			return "", err
		}
		off, err := num(2)
		if err != nil {
			return "", err
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		if off < 0 {
			off += int64(len(data))
		}
		if off < 0 || off >= int64(len(data)) {
			return "", fmt.Errorf("offset %d outside the file (%d bytes)", off, len(data))
		}
		data[off] ^= 0xff
		return "", os.WriteFile(f, data, 0o644)
	case "truncate":
		if err := need(2); err != nil {
			return "", err
		}
		f, err := file(1)
		if err != nil {
			return "", err
		}
		size, err := num(2)
		if err != nil {
			return "", err
		}
		if size < 0 {
			fi, err := os.Stat(f)
			if err != nil {
				return "", err
			}
			size += fi.Size()
		}
		return "", os.Truncate(f, size)
	case "append", "fill":
		if err := need(3); err != nil {
			return "", err
		}
		f := args[1]
		if args[0] == "append" {
			var err error
			if f, err = file(1); err != nil {
				return "", err
			}
		}
		n, err := num(2)
		if err != nil {
			return "", err
		}
		b, err := content(n, args[3])
		if err != nil {
			return "", err
		}
		if args[0] == "fill" {
			return "", os.WriteFile(f, b, 0o644)
		}
		fh, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return "", err
		}
		_, err = fh.Write(b)
		return "", errorsJoin(err, fh.Close())
	case "put-u32":
		if err := need(3); err != nil {
			return "", err
		}
		f, err := file(1)
		if err != nil {
			return "", err
		}
		off, err := num(2)
		if err != nil {
			return "", err
		}
		v, err := strconv.ParseUint(args[3], 0, 32)
		if err != nil {
			return "", err
		}
		if off < 0 {
			fi, err := os.Stat(f)
			if err != nil {
				return "", err
			}
			off += fi.Size()
		}
		fh, err := os.OpenFile(f, os.O_WRONLY, 0)
		if err != nil {
			return "", err
		}
		_, err = fh.WriteAt(binary.LittleEndian.AppendUint32(nil, uint32(v)), off)
		return "", errorsJoin(err, fh.Close())
	case "rm":
		if err := need(1); err != nil {
			return "", err
		}
		f, err := file(1)
		if err != nil {
			return "", err
		}
		return "", os.Remove(f)
	case "mkdir":
		if err := need(1); err != nil {
			return "", err
		}
		return "", os.MkdirAll(args[1], 0o755)
	case "cp":
		if err := need(2); err != nil {
			return "", err
		}
		f, err := file(1)
		if err != nil {
			return "", err
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		return "", os.WriteFile(args[2], data, 0o644)
	case "cpdir":
		if err := need(2); err != nil {
			return "", err
		}
		return "", os.CopyFS(args[2], os.DirFS(args[1]))
	case "ls":
		if err := need(1); err != nil {
			return "", err
		}
		ents, err := os.ReadDir(args[1])
		if err != nil {
			return "ls: " + strings.ReplaceAll(err.Error(), args[1], "DIR") + "\n", nil
		}
		var b strings.Builder
		for _, e := range ents {
			fi, err := e.Info()
			if err != nil {
				return "", err
			}
			fmt.Fprintf(&b, "%s %d\n", e.Name(), fi.Size())
		}
		return b.String(), nil
	case "cat":
		if err := need(1); err != nil {
			return "", err
		}
		f, err := file(1)
		if err != nil {
			return "", err
		}
		data, err := os.ReadFile(f)
		return string(data), err
	case "lines":
		if err := need(1); err != nil {
			return "", err
		}
		f, err := file(1)
		if err != nil {
			return "", err
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		lines := splitLines(string(data))
		if len(lines) == 0 {
			return "0 lines\n", nil
		}
		return fmt.Sprintf("%d lines, first: %s\nlast: %s\n", len(lines), lines[0], lines[len(lines)-1]), nil
	case "same":
		if err := need(2); err != nil {
			return "", err
		}
		a, err := os.ReadFile(args[1])
		if err != nil {
			return "", err
		}
		b, err := os.ReadFile(args[2])
		if err != nil {
			return "", err
		}
		if bytes.Equal(a, b) {
			return "same\n", nil
		}
		return "differ\n", nil
	case "hash":
		if err := need(1); err != nil {
			return "", err
		}
		h, err := hashDir(args[1])
		if err != nil {
			return "", err
		}
		old, ok := ts.hashes[args[1]]
		ts.hashes[args[1]] = h
		switch {
		case !ok:
			return "recorded\n", nil
		case old == h:
			return "unchanged\n", nil
		}
		return "changed\n", nil
	case "lock":
		if err := need(1); err != nil {
			return "", err
		}
		l, err := evlog.Open(args[1], evlog.Options{Clock: func() time.Time { return ts.now }})
		if err != nil {
			return "", err
		}
		ts.locks[args[1]] = l
		return "", nil
	case "ack":
		if len(args) != 4 && len(args) != 5 {
			return "", errors.New("ack takes DIR NAME SEQ [CATEGORY]")
		}
		seq, err := strconv.ParseUint(args[3], 10, 64)
		if err != nil {
			return "", err
		}
		l := ts.locks[args[1]]
		if l == nil {
			if l, err = evlog.Open(args[1], evlog.Options{Clock: func() time.Time { return ts.now }}); err != nil {
				return "", err
			}
			defer l.Close()
		}
		var f evlog.Filter
		if len(args) == 5 {
			f.Categories = []string{args[4]}
		}
		sub, err := l.Subscription(args[2], f)
		if err != nil {
			return "", err
		}
		defer sub.Close()
		return "", sub.Ack(context.Background(), seq)
	case "unlock":
		if err := need(1); err != nil {
			return "", err
		}
		l := ts.locks[args[1]]
		if l == nil {
			return "", fmt.Errorf("%s is not locked", args[1])
		}
		delete(ts.locks, args[1])
		return "", l.Close()
	}
	return "", fmt.Errorf("unknown fixture %q", args[0])
}

// hashDir digests the names, sizes and contents of the files in dir (not
// recursively), or "missing" if dir does not exist.
func hashDir(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return "missing         ", nil
	}
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, e := range ents {
		fmt.Fprintf(h, "%s %v\n", e.Name(), e.IsDir())
		if e.IsDir() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
