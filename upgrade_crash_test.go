package evlog

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
)

// The upgrade crash loop: a writer opens a log of format version 1 whose
// newest segment holds n events (n > 0: moving appends off it is a roll;
// n = 0: the empty segment is replaced under its name) and appends, and
// loses power at each mutating op. Under every crash model the reopened
// log holds the version 1 events and every acknowledged append with the
// same bytes, nothing but the appends attempted after them, and a second
// open changes no file and reads the same.

// upgradeAppends is how many events the loop appends after the upgrade.
const upgradeAppends = 3

func upgradeOpts() Options {
	t1 := t0.Add(time.Hour)
	return Options{Sync: SyncAlways, Clock: func() time.Time { return t1 }, MaxClockSkew: NoClockSkewLimit}
}

// upgradeEvent is the i-th event the loop appends after n version 1 events,
// as the log stores it.
func upgradeEvent(n, i int) Envelope {
	return Envelope{Seq: uint64(n + i + 1), Stream: "new", Version: uint64(i + 1), Type: "e", SchemaVersion: 1,
		Time: t0.Add(time.Hour), Data: []byte{0xa1, byte('a' + i)}}
}

// upgradeRun opens fsys (a version 1 log of n events) and appends
// upgradeAppends events, returning how many were acknowledged.
func upgradeRun(t *testing.T, fsys vfs.FS, n int) (acked int, err error) {
	l, err := openFS(fsys, upgradeOpts(), false)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	for i := range upgradeAppends {
		e := upgradeEvent(n, i)
		if _, err := l.Append(t.Context(), e.Stream, ExpectAny, Envelope{Type: e.Type, Data: e.Data}); err != nil {
			return acked, err
		}
		acked++
	}
	return acked, l.Close()
}

// memFiles returns every file of m with its bytes.
func memFiles(m *vfs.Mem) map[string][]byte {
	names, _ := m.List()
	out := map[string][]byte{}
	for _, n := range names {
		b, err := m.ReadFile(n)
		if err == nil {
			out[n] = b
		}
	}
	return out
}

// checkUpgradeRecovered reopens after, a crashed upgrade of a log of the
// version 1 events old with acked appends acknowledged, twice, and returns
// the first violation ("" if none).
func checkUpgradeRecovered(t *testing.T, after *vfs.Mem, wrap func(vfs.FS) vfs.FS, old []Envelope, acked int) string {
	read := func() ([]Envelope, string) {
		l, err := openFS(wrap(after), upgradeOpts(), false)
		if err != nil {
			return nil, fmt.Sprintf("reopen: %v", err)
		}
		defer l.Close()
		got, err := readAllErr(l)
		if err != nil {
			return nil, fmt.Sprintf("reading: %v", err)
		}
		return got, ""
	}
	got, msg := read()
	if msg != "" {
		return msg
	}
	n := len(old)
	if len(got) < n || !envsEqual(old, got[:n]) {
		return fmt.Sprintf("the version 1 events differ after recovery (-want +got):\n%s", cmp.Diff(old, got[:min(n, len(got))], envCmp...))
	}
	var want []Envelope
	for i := range upgradeAppends {
		want = append(want, upgradeEvent(n, i))
	}
	newer := got[n:]
	switch {
	case len(newer) < acked:
		return fmt.Sprintf("%d appends acknowledged, %d found after recovery", acked, len(newer))
	case len(newer) > len(want):
		return fmt.Sprintf("%d events after the %d appended: phantom events", len(newer)-len(want), len(want))
	case !envsEqual(want[:len(newer)], newer):
		return fmt.Sprintf("appended events differ after recovery (-want +got):\n%s", cmp.Diff(want[:len(newer)], newer, envCmp...))
	}
	files := memFiles(after)
	again, msg := read()
	if msg != "" {
		return "second open: " + msg
	}
	if !envsEqual(got, again) {
		return fmt.Sprintf("a second open reads differently (-first +second):\n%s", cmp.Diff(got, again, envCmp...))
	}
	if now := memFiles(after); !maps.EqualFunc(files, now, bytes.Equal) {
		return fmt.Sprintf("a second open changed the files: %v -> %v", slices.Sorted(maps.Keys(files)), slices.Sorted(maps.Keys(now)))
	}
	return ""
}

// upgradeCrashLoop crashes the upgrade of a version 1 log of n events at
// every mutating op (wrap, if not nil, wraps the file system the writer
// sees) and returns the violations.
func upgradeCrashLoop(t *testing.T, n int, wrap func(vfs.FS) vfs.FS) []string {
	t.Helper()
	if wrap == nil {
		wrap = func(f vfs.FS) vfs.FS { return f }
	}
	base := vfs.NewMem()
	old := v1Log(t, base, n)
	probe := base.Clone()
	if _, err := upgradeRun(t, wrap(probe), n); err != nil {
		t.Fatal(err)
	}
	total := probe.Ops()
	var bad []string
	for k := range total + 1 {
		mem := base.Clone()
		mem.CrashAt(k)
		acked, err := upgradeRun(t, wrap(mem), n)
		if k < total && err == nil {
			bad = append(bad, fmt.Sprintf("k=%d: the crash went unnoticed", k))
		} else if err != nil && !errors.Is(err, vfs.ErrCrashed) {
			bad = append(bad, fmt.Sprintf("k=%d: %v", k, err))
		}
		var states crashStates
		for _, model := range vfs.CrashModels() {
			after := mem.CrashClone(model, rand.New(rand.NewPCG(uint64(k), uint64(model))))
			if states.checked(after) {
				continue // the same files as under a model before: that check stands for this one
			}
			if msg := checkUpgradeRecovered(t, after, wrap, old, acked); msg != "" {
				bad = append(bad, fmt.Sprintf("k=%d/%d %v: %s", k, total, model, msg))
			}
		}
	}
	t.Logf("crashed at each of %d ops under %d models", total+1, len(vfs.CrashModels()))
	return bad
}

func TestUpgradeCrashLoop(t *testing.T) {
	for _, n := range []int{0, 3} {
		t.Run(fmt.Sprint("v1 events=", n), func(t *testing.T) {
			bad := upgradeCrashLoop(t, n, nil)
			for _, b := range bad[:min(len(bad), 10)] {
				t.Error(b)
			}
			if len(bad) > 10 {
				t.Errorf("… and %d more violations", len(bad)-10)
			}
		})
	}
}

// TestUpgradeCrashLoopHasTeeth: the loop catches an upgrade that
// acknowledges appends before they are fsynced, or that creates its
// version 2 segment without fsyncing it and the directory.
func TestUpgradeCrashLoopHasTeeth(t *testing.T) {
	for _, n := range []int{0, 3} {
		t.Run(fmt.Sprint("v1 events=", n), func(t *testing.T) {
			bad := upgradeCrashLoop(t, n, func(f vfs.FS) vfs.FS { return vfs.NoSync{FS: f, Dirs: true, Files: vfs.AnyFile} })
			if len(bad) == 0 {
				t.Fatal("the upgrade crash loop found no violation: it has no teeth")
			}
			t.Logf("%d violations, e.g. %s", len(bad), bad[0])
		})
	}
}
