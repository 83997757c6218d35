package evlogcli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// runCLI runs the command line args as Main does, returning the error
// run returned (Main only maps it to a status: exitCode).
func runCLI(t *testing.T, folds []Fold, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, now: func() time.Time { return testEpoch },
		since: time.Since, poll: defaultPoll, folds: folds, name: "evlogctl"}
	err = runEnv(t.Context(), e, args)
	return out.String(), errb.String(), err
}

// copyLog copies the regular files of dir into a new directory.
func copyLog(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if !ent.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, ent.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, ent.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// runnerOutcome is what a projection.Runner of a projection starts from
// and folds over a log: its view and plan, or the error Run ended with.
type runnerOutcome struct {
	view map[string]int
	plan *replay.Plan
	err  error
}

// runProjection runs a projection.Runner of p over a copy of dir (it
// writes checkpoints, and a rebuild removes some) until it covers the
// log, or until Run ends.
func runProjection(t *testing.T, p projection.Projection[map[string]int, evlog.Event[int]], dir string) runnerOutcome {
	t.Helper()
	l, err := evlog.Open(copyLog(t, dir), evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	r := projection.NewRunner(p, l, snaps, testCodec.Decode, projection.RunnerOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var out runnerOutcome
	if err := waitFolded(t, r, l.LastSeq(), "the view to cover the log (or the runner's end)"); err != nil {
		if !errors.Is(err, projection.ErrStopped) {
			t.Fatal(err)
		}
		out.err = <-done
		cancel()
		return out
	}
	r.Read(func(m map[string]int, _ uint64) {
		out.view = map[string]int{}
		for k, v := range m {
			out.view[k] = v
		}
	})
	out.plan = r.Plan()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run ended with %v", err)
	}
	return out
}

// appendAll appends amount to each stream as a "deposited" event.
func appendAll(t *testing.T, l *evlog.Log, evs ...any) {
	t.Helper()
	tl := evlog.Typed[int](l)
	for i := 0; i < len(evs); i += 2 {
		if _, err := tl.Append(t.Context(), evs[i].(string), evlog.ExpectAny, evlog.Event[int]{Type: "deposited", Data: evs[i+1].(int)}); err != nil {
			t.Fatal(err)
		}
	}
}

// checkpointAll runs a projection.Runner of p over l until it has
// checkpointed the whole log.
func checkpointAll(t *testing.T, l *evlog.Log, p projection.Projection[map[string]int, evlog.Event[int]]) {
	t.Helper()
	snaps, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	r := projection.NewRunner(p, l, snaps, testCodec.Decode, projection.RunnerOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	if err := waitFolded(t, r, l.LastSeq(), "the view to cover the log"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// expiredAccounts writes, in a new log in dir, deposits to account-1
// and account-2 that testAccountDeposits's runner checkpoints, then
// events of category "other" until those deposits are in a sealed
// segment, and lets category "account" expire (an hour, the clock moved
// two on) and Compact replace them by placeholders: only the checkpoint
// holds their effect. deleted is then deleted, and the log closed.
func expiredAccounts(t *testing.T, dir, deleted string) {
	t.Helper()
	ctx := t.Context()
	var now atomic.Int64
	now.Store(testEpoch.UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	l, err := evlog.Open(dir, evlog.Options{Clock: clock, SegmentSize: evlog.MinSegmentSize,
		Retention: map[string]evlog.Retention{"account": {MaxAge: time.Hour}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	appendAll(t, l, "account-1", 10, "account-2", 5)
	checkpointAll(t, l, testAccountDeposits)
	for i := 0; ; i++ {
		segs, err := l.Segments()
		if err != nil {
			t.Fatal(err)
		}
		if len(segs) >= 3 {
			break
		}
		appendAll(t, l, fmt.Sprintf("other-%d", i%2+1), i)
	}
	now.Store(testEpoch.Add(2 * time.Hour).UnixNano())
	if _, err := l.Compact(ctx, evlog.CompactOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.DeleteStream(ctx, deleted); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// snapshotFiles lists the snapshot files in dir.
func snapshotFiles(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, ent := range ents {
		if _, _, ok := snapshot.ParseFileName(ent.Name()); ok {
			names = append(names, ent.Name())
		}
	}
	return names
}

// loadView reads the view a snapshot file of dir holds.
func loadView(t *testing.T, dir, file string) map[string]int {
	t.Helper()
	l, err := evlog.OpenReadOnly(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	m, err := store.Verify(t.Context(), file)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := store.Load(t.Context(), m)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]int
	if err := msgpack.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// unrecordScope rewrites every checkpoint of subject name in dir as an
// evlog before snapshot format version 3 saved it: recording no scope
// (snapshot.Meta.Scope 0), the state and everything else as they were.
func unrecordScope(t *testing.T, dir, name string) {
	t.Helper()
	l, err := evlog.Open(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	store, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	cps, err := store.List(name)
	if err != nil || len(cps) == 0 {
		t.Fatalf("checkpoints of %s: %v, %v", name, cps, err)
	}
	for _, m := range cps {
		state, err := store.Load(t.Context(), m)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Remove(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		m.Scope, m.File, m.RawSize, m.CompressedSize = 0, "", 0, 0
		if _, err := store.Save(t.Context(), m, state); err != nil {
			t.Fatal(err)
		}
	}
}

// startsFrom returns a check that the runner started from a checkpoint
// (from) or from the first event, having passed over one for its scope.
func startsFrom(from bool) func(t *testing.T, r runnerOutcome) {
	return func(t *testing.T, r runnerOutcome) {
		t.Helper()
		if r.err != nil {
			t.Fatalf("the runner: %v", r.err)
		}
		if from {
			if r.plan.Snapshot == nil {
				t.Fatalf("the runner started from no checkpoint (fallbacks %+v), want the one recording no scope", r.plan.Fallbacks)
			}
			return
		}
		if r.plan.Snapshot != nil || len(r.plan.Fallbacks) == 0 {
			t.Fatalf("the runner started from %v (fallbacks %+v), want the first event, passing over the checkpoint of another scope", r.plan.Snapshot, r.plan.Fallbacks)
		}
	}
}

// TestProjectionFoldRules drives state, snapshot and verify --replay of
// a projection fold over the states in which a projection.Runner passes
// over checkpoints, or keeps them, or refuses to fold, and checks that
// each command agrees with what the runner does over the same log: the
// checkpoint state starts from and the view it prints, the view snapshot
// saves, verify --replay comparing only checkpoints the runner could
// start from (status 0: none of these is damage), and ErrHistoryLost
// reported as an error naming the same snapshot and deletion (status 1,
// nothing saved).
func TestProjectionFoldRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     projection.Projection[map[string]int, evlog.Event[int]]
		setup func(t *testing.T, dir string)
		// runner, if set, checks that the runner does what the row is
		// about (so that the commands are compared on it).
		runner func(t *testing.T, r runnerOutcome)
	}{
		{"rebuild marker", testDeposits, func(t *testing.T, dir string) {
			writeTestApp(t, dir)
			interruptRebuild(t, dir, len(testHistory)-2)
		}, nil},
		{"checkpoint of another schema version", testDeposits, func(t *testing.T, dir string) {
			writeTestApp(t, dir)
			l, err := evlog.Open(dir, evlog.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			store, err := l.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			cps, err := store.List("projection/deposits")
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cps {
				if err := store.Remove(t.Context(), c); err != nil {
					t.Fatal(err)
				}
			}
			// Of schema version 1: the view's shape before (a count).
			old, err := msgpack.Marshal(map[string]int{"account-42": 6})
			if err != nil {
				t.Fatal(err)
			}
			i := len(testHistory) - 2
			if _, err := store.Save(t.Context(), snapshot.Meta{Name: "projection/deposits", LogID: l.LogID(), Seq: uint64(i + 1), Time: testEventTime(i), SchemaVersion: testDeposits.SchemaVersion - 1}, old); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"categories: events of other categories after the checkpoint, a deletion of another category", testAccountDeposits, func(t *testing.T, dir string) {
			l, err := evlog.Open(dir, evlog.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			appendAll(t, l, "account-1", 10, "other-1", 99, "account-2", 5)
			checkpointAll(t, l, testAccountDeposits)
			appendAll(t, l, "other-2", 7, "account-1", 1, "other-1", 3)
			if _, _, err := l.DeleteStream(t.Context(), "other-1"); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"expired history, a deletion of another category", testAccountDeposits, func(t *testing.T, dir string) {
			expiredAccounts(t, dir, "other-1")
		}, nil},
		{"expired history, a deletion in the categories", testAccountDeposits, func(t *testing.T, dir string) {
			expiredAccounts(t, dir, "account-1")
		}, nil},
		{"checkpoint of other categories", testAccountDeposits, func(t *testing.T, dir string) {
			l, err := evlog.Open(dir, evlog.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			appendAll(t, l, "account-1", 10, "other-1", 99, "account-2", 5)
			// The same projection before its Categories changed
			// (without a new SchemaVersion): its view counts other-1.
			widened := testAccountDeposits
			widened.Categories = []string{"account", "other"}
			checkpointAll(t, l, widened)
			appendAll(t, l, "account-1", 1, "other-2", 7)
		}, startsFrom(false)},
		{"checkpoint recording no scope (format v1/v2), projection with categories", testAccountDeposits, func(t *testing.T, dir string) {
			l, err := evlog.Open(dir, evlog.Options{})
			if err != nil {
				t.Fatal(err)
			}
			appendAll(t, l, "account-1", 10, "other-1", 99, "account-2", 5)
			checkpointAll(t, l, testAccountDeposits)
			appendAll(t, l, "account-1", 1)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			unrecordScope(t, dir, "projection/"+testAccountDeposits.Name)
		}, startsFrom(false)},
		{"checkpoint recording no scope (format v1/v2), projection without categories", testDeposits, func(t *testing.T, dir string) {
			writeTestApp(t, dir)
			unrecordScope(t, dir, "projection/"+testDeposits.Name)
		}, startsFrom(true)},
		{"checkpoint recording no scope (format v1/v2), projection with categories, its events expired", testAccountDeposits, func(t *testing.T, dir string) {
			expiredAccounts(t, dir, "other-1")
			unrecordScope(t, dir, "projection/"+testAccountDeposits.Name)
		}, startsFrom(true)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			want := runProjection(t, tc.p, dir)
			if tc.runner != nil {
				tc.runner(t, want)
			}
			wantLost, lost := errors.AsType[*replay.HistoryLostError](want.err)
			if want.err != nil && !lost {
				t.Fatalf("the runner: %v", want.err)
			}
			folds := []Fold{ProjectionFold(tc.p, testCodec.Decode)}

			// state
			stdout, stderr, err := runCLI(t, folds, "state", dir, "--fold", tc.p.Name, "--format", "json")
			if lost {
				checkHistoryLost(t, "state", wantLost, stdout, stderr, err)
			} else {
				if err != nil {
					t.Fatalf("state: %v\n%s", err, stderr)
				}
				var res foldStateResult
				if err := json.Unmarshal([]byte(stdout), &res); err != nil {
					t.Fatal(err)
				}
				var view map[string]int
				if res.State == nil || json.Unmarshal(res.State.Value, &view) != nil {
					t.Fatalf("state: %s", stdout)
				}
				if diff := cmp.Diff(want.view, view); diff != "" {
					t.Errorf("state's view, want the runner's (-want +got):\n%s", diff)
				}
				wantFrom, from := "", ""
				if s := want.plan.Snapshot; s != nil {
					wantFrom = s.File
				}
				if s := res.Plan.Snapshot; s != nil {
					from = s.File
				}
				if from != wantFrom {
					t.Errorf("state started from %q, the runner from %q", from, wantFrom)
				}
			}

			// snapshot
			before := snapshotFiles(t, dir)
			stdout, stderr, err = runCLI(t, folds, "snapshot", dir, "--fold", tc.p.Name, "--format", "json")
			if lost {
				checkHistoryLost(t, "snapshot", wantLost, stdout, stderr, err)
				if after := snapshotFiles(t, dir); !slices.Equal(before, after) {
					t.Errorf("snapshot failed but changed the snapshots: %q, then %q", before, after)
				}
			} else {
				if err != nil {
					t.Fatalf("snapshot: %v\n%s", err, stderr)
				}
				var res snapshotResult
				if err := json.Unmarshal([]byte(stdout), &res); err != nil {
					t.Fatal(err)
				}
				if res.File == "" {
					t.Fatalf("snapshot: %s, want a checkpoint", stdout)
				}
				if diff := cmp.Diff(want.view, loadView(t, dir, res.File)); diff != "" {
					t.Errorf("the checkpoint snapshot saved, want the runner's view (-want +got):\n%s", diff)
				}
			}

			// verify --replay
			stdout, stderr, err = runCLI(t, folds, "verify", dir, "--replay", "--fold", tc.p.Name, "--format", "json")
			var rep verifyReport
			if jerr := json.Unmarshal([]byte(stdout), &rep); err != nil || jerr != nil || !rep.OK {
				t.Errorf("verify --replay: %v, want status 0\n%s%s", err, stdout, stderr)
			}
		})
	}
}

// checkHistoryLost checks a command's failure for a history lost as the
// runner's.
func checkHistoryLost(t *testing.T, cmd string, want *replay.HistoryLostError, stdout, stderr string, err error) {
	t.Helper()
	got, ok := errors.AsType[*replay.HistoryLostError](err)
	if !ok || !errors.Is(err, replay.ErrHistoryLost) || exitCode(err) != 1 {
		t.Fatalf("%s: %v (status %d), want the runner's history lost, status 1\n%s", cmd, err, exitCode(err), stderr)
	}
	if got.Subject != want.Subject || got.Snapshot.File != want.Snapshot.File || got.DeletionSeq != want.DeletionSeq || got.ExpiredSeq != want.ExpiredSeq {
		t.Errorf("%s: %+v, the runner: %+v", cmd, got, want)
	}
	if stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, want.Snapshot.File) || !strings.Contains(stderr, fmt.Sprint(want.DeletionSeq)) {
		t.Errorf("%s: stdout %q, stderr %q: want one line naming the snapshot and the deletion", cmd, stdout, stderr)
	}
}
