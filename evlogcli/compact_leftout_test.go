package evlogcli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/testhook"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// leftOutDir builds a log whose first sealed segment's redaction would
// pass the frame limit it then sets (until the test ends): tiny events
// (type "e", no data) of three interleaved streams, one deleted, so that
// the placeholders are larger than the events they replace. It returns
// the directory and that segment's name. Not for parallel tests.
func leftOutDir(t *testing.T) (dir, big string) {
	t.Helper()
	ctx := context.Background()
	dir = filepath.Join(t.TempDir(), "log")
	opts := evlog.Options{SegmentSize: 32 << 10}
	streams := []string{"aaaaaaa-1", "bbbbbbb-1", "ccccccc-1"}
	appendN := func(l *evlog.Log, n int) {
		t.Helper()
		var batch []evlog.AppendRequest
		for i := range n {
			batch = append(batch, evlog.AppendRequest{Stream: streams[i%3], Expect: evlog.ExpectAny, Events: []evlog.Envelope{{Type: "e"}}})
			if len(batch) == 60 || i == n-1 {
				if _, err := l.AppendBatch(ctx, batch); err != nil {
					t.Fatal(err)
				}
				batch = nil
			}
		}
	}
	l, err := evlog.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	appendN(l, 900) // one sealed segment, written at the real limit
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	d, err := segment.ReadDir(fsys)
	if err != nil {
		t.Fatal(err)
	}
	s, err := segment.Open(fsys, d.Segments[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e, err := s.Extent()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(testhook.SetFrameLimit(e.Postings))
	if l, err = evlog.Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	appendN(l, 250) // small segments, rolled at the lowered limit
	if _, _, err := l.DeleteStream(ctx, "bbbbbbb-1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, s.Name
}

// TestCompactLeftOutCLI: compact says which segment it left out, why and
// what to do (text and JSON), compacts the rest, and exits 0; the
// segment left out is untouched and verify is clean.
func TestCompactLeftOutCLI(t *testing.T) {
	dir, big := leftOutDir(t)
	data, err := os.ReadFile(filepath.Join(dir, big))
	if err != nil {
		t.Fatal(err)
	}
	dump := mustRun(t, "dump", dir, "--format", "jsonl").stdout
	r := mustRun(t, "compact", dir)
	line := regexp.MustCompile(`(?m)^left out ` + regexp.QuoteMeta(big) + ` \(\d+ bytes\): .*evlogctl salvage.*$`)
	if !line.MatchString(r.stdout) {
		t.Errorf("compact does not report %s left out, saying what to do:\n%s", big, r.stdout)
	}
	if !regexp.MustCompile(`(?m)^merged `).MatchString(r.stdout) {
		t.Errorf("compact merged nothing beside the segment left out:\n%s", r.stdout)
	}
	var res compactResult
	if err := json.Unmarshal([]byte(mustRun(t, "compact", dir, "--format", "json").stdout), &res); err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, g := range res.Groups {
		if g.LeftOut != "" {
			left = append(left, g.Inputs...)
			if g.Committed {
				t.Errorf("group %v is left out and committed", g.Inputs)
			}
		}
	}
	if len(left) != 1 || left[0] != big {
		t.Errorf("JSON groups left out %v, want [%s]: %+v", left, big, res.Groups)
	}
	if got, err := os.ReadFile(filepath.Join(dir, big)); err != nil || string(got) != string(data) {
		t.Errorf("%s was changed or removed (%v)", big, err)
	}
	if got := mustRun(t, "dump", dir, "--format", "jsonl").stdout; got != dump {
		t.Error("dump prints something else after compact")
	}
	mustRun(t, "verify", dir)
}
