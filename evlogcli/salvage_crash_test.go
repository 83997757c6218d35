package evlogcli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/internal/testhook"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// salvageInto runs "evlogctl salvage src NEWDIR --skip-damaged" with
// NEWDIR the in-memory directory dst (wrapped by wrap, if not nil),
// returning the error: nil or errEventsLost once complete.
func salvageInto(ctx context.Context, src string, dst vfs.FS) error {
	e := &env{stdout: io.Discard, stderr: io.Discard, now: func() time.Time { return testEpoch },
		since: func(time.Time) time.Duration { return 0 }}
	c := salvageCmd{skipDamaged: true, format: "text", dstFS: dst}
	return c.run(ctx, e, src, "NEWDIR")
}

// memEvents checks that the log in fsys opens read-only and returns
// every event it records, read frame by frame: placeholders included,
// which the log's readers never yield.
func memEvents(ctx context.Context, fsys vfs.FS) ([]evlog.Envelope, error) {
	opened, err := testhook.OpenReadOnly(fsys, evlog.Options{})
	if err != nil {
		return nil, err
	}
	opened.(*evlog.Log).Close()
	var out []evlog.Envelope
	err = scanRaw(ctx, vfs.ReadOnly(fsys), rawVisitor{
		batch: func(b *rawBatch) error {
			out = append(out, b.Events...)
			return nil
		},
		gap: func(g *rawGap) error {
			return fmt.Errorf("damage in %s at %d: %s", g.file, g.Offset, g.Reason)
		},
		owned: true,
	})
	return out, err
}

// dirBytes returns every file of the flat directory dir, by name.
func dirBytes(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// memKey is the whole content of m (names and bytes), so that a crash
// model leaving the files another left is checked once.
func memKey(m *vfs.Mem) string {
	names, _ := m.List()
	var b strings.Builder
	for _, n := range names {
		data, _ := m.ReadFile(n)
		fmt.Fprintf(&b, "%q %d %s\x00", n, len(data), data)
	}
	return b.String()
}

// checkSalvaged checks NEWDIR as a power loss left it (after): either
// nothing (the salvage wrote nothing durable yet), or refused by Open,
// OpenReadOnly and Verify as an interrupted salvage, or the complete
// salvaged log (want); then that salvage run again on it (on the
// complete log too: it only reports) ends as the uncrashed one did
// (wantErr: nil or errEventsLost) with exactly want. It returns the
// violations ("" if none).
func checkSalvaged(ctx context.Context, src string, after *vfs.Mem, want []evlog.Envelope, wantErr error) string {
	names, err := after.List()
	if err != nil {
		return fmt.Sprintf("listing NEWDIR: %v", err)
	}
	switch {
	case len(names) == 0:
	case slices.ContainsFunc(names, isSalvageMarker):
		var bad []string
		if opened, err := testhook.Open(after.Clone(), evlog.Options{}); !errors.Is(err, evlog.ErrSalvageIncomplete) {
			if err == nil {
				opened.(*evlog.Log).Close()
			}
			bad = append(bad, fmt.Sprintf("Open: %v", err))
		}
		if opened, err := testhook.OpenReadOnly(after, evlog.Options{}); !errors.Is(err, evlog.ErrSalvageIncomplete) {
			if err == nil {
				opened.(*evlog.Log).Close()
			}
			bad = append(bad, fmt.Sprintf("OpenReadOnly: %v", err))
		}
		if _, err := testhook.Verify(ctx, after); !errors.Is(err, evlog.ErrSalvageIncomplete) {
			bad = append(bad, fmt.Sprintf("Verify: %v", err))
		}
		if bad != nil {
			return fmt.Sprintf("NEWDIR %q holds the marker but is not refused as an interrupted salvage (want ErrSalvageIncomplete): %s", names, strings.Join(bad, "; "))
		}
	default:
		got, err := memEvents(ctx, after)
		if err != nil {
			return fmt.Sprintf("NEWDIR %q, without the marker, does not read as the salvaged log: %v", names, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			return fmt.Sprintf("NEWDIR %q, without the marker, opens as a log that is not the salvaged log (-want +got):\n%s", names, d)
		}
		rep, err := testhook.Verify(ctx, after)
		if vr, ok := rep.(evlog.VerifyReport); err != nil || !ok || len(vr.Findings) != 0 {
			return fmt.Sprintf("verify of the salvaged NEWDIR %q: %v, %+v", names, err, rep)
		}
		opened, err := testhook.Open(after.Clone(), evlog.Options{})
		if err != nil {
			return fmt.Sprintf("Open of the salvaged NEWDIR %q: %v", names, err)
		}
		opened.(*evlog.Log).Close()
	}
	again := after.Clone()
	if err := salvageInto(ctx, src, again); !errors.Is(err, wantErr) {
		return fmt.Sprintf("salvage run again on NEWDIR %q: %v, want %v as uncrashed", names, err, wantErr)
	}
	got, err := memEvents(ctx, again)
	if err != nil {
		return fmt.Sprintf("salvage run again on NEWDIR %q: reading its output: %v", names, err)
	}
	if d := cmp.Diff(want, got); d != "" {
		return fmt.Sprintf("salvage run again on NEWDIR %q: output differs from an uncrashed salvage's (-want +got):\n%s", names, d)
	}
	return ""
}

// salvageCrashLoop salvages src into an in-memory NEWDIR (wrapped by
// wrap, if not nil: the teeth tests make it lie) that loses power at each
// write op k in turn, and checks what every crash model leaves
// (checkSalvaged) and that src is unchanged. It returns the violations.
func salvageCrashLoop(t *testing.T, src string, wrap func(vfs.FS) vfs.FS) []string {
	t.Helper()
	ctx := t.Context()
	if wrap == nil {
		wrap = func(f vfs.FS) vfs.FS { return f }
	}
	before := dirBytes(t, src)
	ref := vfs.NewMem()
	wantErr := salvageInto(ctx, src, wrap(ref))
	if wantErr != nil && !errors.Is(wantErr, errEventsLost) {
		t.Fatalf("salvage without a crash: %v", wantErr)
	}
	want, err := memEvents(ctx, ref)
	if err != nil {
		t.Fatalf("reading the uncrashed salvage's output: %v", err)
	}
	if len(want) == 0 {
		t.Fatal("the uncrashed salvage copied nothing: no test")
	}
	for _, ev := range want {
		if ev.Type == evlog.TypeRedacted {
			t.Logf("the salvage writes placeholders (%s of stream %s)", ev.ID, ev.Stream)
			break
		}
	}
	total := ref.Ops()

	badAt := make([][]string, total+1)
	var next, checked atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k > total {
					return
				}
				mem := vfs.NewMem()
				mem.CrashAt(k)
				err := salvageInto(ctx, src, wrap(mem))
				if k < total && !errors.Is(err, vfs.ErrCrashed) {
					badAt[k] = append(badAt[k], fmt.Sprintf("k=%d/%d: salvage did not fail with the power loss: %v", k, total, err))
				}
				seen := map[string]bool{}
				for _, model := range vfs.CrashModels() {
					after := mem.CrashClone(model, rand.New(rand.NewPCG(1, uint64(k)<<8|uint64(model))))
					if key := memKey(after); !seen[key] {
						seen[key] = true
						if msg := checkSalvaged(ctx, src, after, want, wantErr); msg != "" {
							badAt[k] = append(badAt[k], fmt.Sprintf("k=%d/%d model=%v: %s", k, total, model, msg))
						}
					}
					checked.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n, wantN := checked.Load(), int64((total+1)*len(vfs.CrashModels())); n != wantN {
		t.Fatalf("checked %d crash states, want %d (every op under every model)", n, wantN)
	}
	if after := dirBytes(t, src); !maps.EqualFunc(before, after, bytes.Equal) {
		t.Errorf("salvage modified DIR: files %q before, %q after", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
	}
	t.Logf("crashed salvage at each of %d write ops under %d models", total+1, len(vfs.CrashModels()))
	return slices.Concat(badAt...)
}

// TestSalvageCrash: salvage loses power at every write op into NEWDIR,
// under every crash model: of a damaged log (copying past the damage,
// leaving out deleted events), and of a clean log with a deleted,
// compacted stream whose placeholders carry IDs. DIR is
// never modified; NEWDIR is empty, refused as an interrupted salvage, or
// the complete salvaged log; and salvage run again ends exactly as an
// uncrashed salvage does.
func TestSalvageCrash(t *testing.T) {
	for name, src := range map[string]func(*testing.T) string{
		"damaged":      func(t *testing.T) string { return damagedLogWithDeletions(t, segment.HeaderSize+200) },
		"placeholders": placeholderLog,
	} {
		t.Run(name, func(t *testing.T) {
			bad := salvageCrashLoop(t, src(t), nil)
			for _, b := range bad[:min(len(bad), 10)] {
				t.Error(b)
			}
			if len(bad) > 10 {
				t.Errorf("… and %d more violations", len(bad)-10)
			}
		})
	}
}

// placeholderLog returns a clean log of 60 events with IDs, in several
// segments, whose stream cart-1 was deleted and compacted: placeholders
// that keep their IDs. (One batch of salvage's copy: its appends are
// not fsynced one by one, so more batches would add no crash state
// worth the time.)
func placeholderLog(t *testing.T) string {
	t.Helper()
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "log")
	l, err := evlog.Open(dir, evlog.Options{SegmentSize: evlog.MinSegmentSize, Sync: evlog.SyncNever, Clock: func() time.Time { return testEpoch }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := l.Append(ctx, "cart-1", evlog.ExpectNoStream, evlog.Envelope{ID: "cart-a", Type: "t", Data: mpStr("secret")}, evlog.Envelope{ID: "cart-b", Type: "t"}); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		if _, err := l.Append(ctx, fmt.Sprintf("s-%d", i%7), evlog.ExpectAny, evlog.Envelope{ID: fmt.Sprintf("e-%d", i), Type: "t", Data: mpStr("x")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := l.DeleteStream(ctx, "cart-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Compact(ctx, evlog.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSalvageCrashHasTeeth: the loop catches a salvage whose directory
// fsyncs, or all of whose fsyncs, do nothing.
func TestSalvageCrashHasTeeth(t *testing.T) {
	src := damagedLogWithDeletions(t, segment.HeaderSize+200)
	for _, tc := range []struct {
		name string
		wrap func(vfs.FS) vfs.FS
	}{
		{"no directory fsync", func(f vfs.FS) vfs.FS { return vfs.NoSync{FS: f, Dirs: true} }},
		{"no fsync", func(f vfs.FS) vfs.FS { return vfs.NoSync{FS: f, Dirs: true, Files: vfs.AnyFile} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := salvageCrashLoop(t, src, tc.wrap)
			if len(bad) == 0 {
				t.Fatal("the crash loop found no violation: it has no teeth")
			}
			t.Logf("%d violations, e.g. %s", len(bad), bad[0])
		})
	}
}
