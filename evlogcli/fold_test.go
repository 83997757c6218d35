package evlogcli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// The test application: accounts whose balance "deposited" and
// "withdrawn" events change, and a projection of the total deposited.
type testAccount struct{ Balance int }

var testAccountDef = aggregate.Definition[testAccount, evlog.Event[int]]{
	Category:      "account",
	SchemaVersion: 3,
	Apply: func(s testAccount, e evlog.Event[int]) testAccount {
		switch e.Type {
		case "deposited":
			s.Balance += e.Data
		case "withdrawn":
			s.Balance -= e.Data
		}
		return s
	},
}

var testDeposits = projection.Projection[map[string]int, evlog.Event[int]]{
	Name:          "deposits",
	SchemaVersion: 2,
	Init:          func() map[string]int { return map[string]int{} },
	Apply: func(m map[string]int, e evlog.Event[int]) map[string]int {
		if e.Type == "deposited" {
			m[e.Stream] += e.Data
		}
		return m
	},
}

var testCodec = evlog.NewCodec[int](nil)

func testFolds() []Fold {
	return []Fold{AggregateFold(testAccountDef, testCodec.Decode), ProjectionFold(testDeposits, testCodec.Decode)}
}

// testEvent is one event of the test application's history.
type testEvent struct {
	id     string
	typ    string
	amount int
}

// testHistory is the application's history: one event an hour from
// 00:00 on the day of testEpoch, alternately to accounts 42 and 7.
var testHistory = func() []testEvent {
	var h []testEvent
	for i := range 12 {
		id, typ := "42", "deposited"
		if i%2 == 1 {
			id = "7"
		}
		if i%3 == 2 {
			typ = "withdrawn"
		}
		h = append(h, testEvent{id: id, typ: typ, amount: 10 * (i + 1)})
	}
	return h
}()

// errFoldHangGuard is the cause of a waitFolded context that hangGuard
// ended.
var errFoldHangGuard = errors.New("evlogcli test: hang guard expired: the view never covered the awaited seq")

// waitFolded returns r.WaitFor(seq) under a context derived from
// t.Context() that hangGuard ends: what WaitFor returned (nil, or an
// error such as projection.ErrStopped for the caller to check), unless
// the guard ended the wait (a runner that lost an event, whose Run never
// ends), which fails t naming what was awaited. Call it from the test's
// own goroutine.
func waitFolded(t *testing.T, r interface {
	WaitFor(context.Context, uint64) error
}, seq uint64, what string) error {
	t.Helper()
	ctx, cancel := context.WithTimeoutCause(t.Context(), hangGuard, errFoldHangGuard)
	defer cancel()
	err := r.WaitFor(ctx, seq)
	if err != nil && errors.Is(context.Cause(ctx), errFoldHangGuard) {
		t.Fatalf("WaitFor(%d): waited %v for %s: %v (a runner lost an event, or its Run never ended)", seq, hangGuard, what, errFoldHangGuard)
	}
	return err
}

func testEventTime(i int) time.Time {
	return time.Date(2026, 11, 25, i, 0, 0, 0, time.UTC)
}

// writeTestApp writes testHistory the way the application does: through
// an aggregate.Repository that snapshots every 2 events of an instance,
// and a projection.Runner checkpointing every 3 events.
func writeTestApp(t *testing.T, dir string) {
	t.Helper()
	ctx := t.Context()
	log, err := evlog.Open(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	snaps, err := log.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return testEpoch }
	repo := aggregate.NewRepository(log, snaps, testAccountDef, aggregate.Codec[evlog.Event[int]](testCodec),
		aggregate.Options{SnapshotEvery: 2, Clock: clock})
	for i, ev := range testHistory {
		if _, err := repo.Execute(ctx, ev.id, func(testAccount) ([]evlog.Event[int], error) {
			return []evlog.Event[int]{{Type: ev.typ, Time: testEventTime(i), Data: ev.amount}}, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := repo.Close(); err != nil {
		t.Fatal(err)
	}
	runner := projection.NewRunner(testDeposits, log, snaps, testCodec.Decode, projection.RunnerOptions{CheckpointEvery: 3, Clock: clock})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runner.Run(rctx) }()
	if err := waitFolded(t, runner, log.LastSeq(), "the view to cover the test app's log"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	list, err := snaps.List("account/account-42")
	if err != nil || len(list) == 0 {
		t.Fatalf("the repository saved no snapshot of account 42 (%v): the test proves nothing", err)
	}
	list, err = snaps.List("projection/deposits")
	if err != nil || len(list) == 0 {
		t.Fatalf("the runner saved no checkpoint (%v): the test proves nothing", err)
	}
}

// mainIn runs Main with the test folds at testEpoch.
func mainIn(t *testing.T, folds []Fold, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(t.Context(), args, Config{Name: "evlogctl", Folds: folds, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Now: func() time.Time { return testEpoch }})
	return out.String(), errb.String(), code
}

// TestStateFold computes the application's aggregate and projection at
// every hour of its history, from the snapshots its repository and runner
// saved, and checks the answer against a model, and against a full
// replay (--no-snapshot).
func TestStateFold(t *testing.T) {
	dir := t.TempDir()
	writeTestApp(t, dir)
	usedSnapshot := map[string]bool{}
	for hour := range len(testHistory) + 1 {
		// The model: the state after the events recorded at or before
		// hour:30 (--at relative to testEpoch, 15:00).
		at := testEventTime(hour).Add(30 * time.Minute)
		balance, deposits := map[string]int{}, map[string]int{}
		for i, ev := range testHistory {
			if testEventTime(i).After(at) {
				break
			}
			if ev.typ == "deposited" {
				balance[ev.id] += ev.amount
				deposits["account-"+ev.id] += ev.amount
			} else {
				balance[ev.id] -= ev.amount
			}
		}
		rel := at.Sub(testEpoch).String()
		for _, tc := range []struct {
			fold, id string
			want     any
		}{
			{"account", "42", testAccount{balance["42"]}},
			{"account", "7", testAccount{balance["7"]}},
			{"deposits", "", deposits},
		} {
			args := []string{"state", dir, "--fold", tc.fold, "--at", rel, "--format", "json"}
			if tc.id != "" {
				args = append(args, "--id", tc.id)
			}
			var values [2]json.RawMessage
			for i, extra := range [][]string{nil, {"--no-snapshot"}} {
				stdout, stderr, code := mainIn(t, testFolds(), append(args, extra...)...)
				if code != 0 || stderr != "" {
					t.Fatalf("%v: exit %d, stderr %q", args, code, stderr)
				}
				var res foldStateResult
				if err := json.Unmarshal([]byte(stdout), &res); err != nil {
					t.Fatalf("%v: %v\n%s", args, err, stdout)
				}
				if res.State == nil {
					t.Fatalf("%v: no state: %s", args, stdout)
				}
				if i == 0 && res.Plan.Snapshot != nil {
					usedSnapshot[tc.fold] = true
				}
				if i == 1 && res.Plan.Snapshot != nil {
					t.Errorf("%v --no-snapshot: used snapshot %s", args, res.Plan.Snapshot.File)
				}
				values[i] = res.State.Value
			}
			want, err := json.Marshal(tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(values[0])); diff != "" {
				t.Errorf("%v: state (-model +from snapshots):\n%s", args, diff)
			}
			if diff := cmp.Diff(string(values[1]), string(values[0])); diff != "" {
				t.Errorf("%v: state (-full replay +from snapshots):\n%s", args, diff)
			}
		}
	}
	for _, fold := range []string{"account", "deposits"} {
		if !usedSnapshot[fold] {
			t.Errorf("state --fold %s never started from a snapshot of the application's", fold)
		}
	}
}

// TestStateFoldText checks the text output names the instance, its
// stream and the snapshot the answer started from.
func TestStateFoldText(t *testing.T) {
	dir := t.TempDir()
	writeTestApp(t, dir)
	stdout, stderr, code := mainIn(t, testFolds(), "state", dir, "--fold", "account", "--id", "42", "--at", "-5h")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	// At 10:00: account 42 had the events of 00:00 (+10), 02:00 (-30),
	// 04:00 (+50), 06:00 (+70), 08:00 (-90), 10:00 (+110); its fourth
	// and sixth are snapshotted (seqs 7 and 11).
	for _, want := range []string{
		"plan: snapshot ", "(seq 11, 2026-11-25T10:00:00.000000000Z), then no events",
		"account 42 (stream account-42) at seq 11 (2026-11-25T10:00:00.000000000Z), version 6, 0 events applied:",
		`"Balance": 120`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}

// TestStateFoldUsage checks the mistakes a user and an application can
// make: each a clear message and the right exit status.
func TestStateFoldUsage(t *testing.T) {
	dir := t.TempDir()
	writeTestApp(t, dir)
	for _, tc := range []struct {
		name   string
		folds  []Fold
		args   []string
		code   int
		stderr string // substring
	}{
		{"unknown fold", testFolds(), []string{"state", dir, "--fold", "inventory"}, 2,
			`evlogctl state: --fold "inventory": no such fold; this evlogctl has stats, account, deposits (see evlogctl state --help)`},
		{"unknown fold, no application folds", nil, []string{"state", dir, "--fold", "account", "--id", "42"}, 2,
			`no such fold; this evlogctl has stats (see`},
		{"aggregate without --id", testFolds(), []string{"state", dir, "--fold", "account"}, 2,
			"--fold account is an aggregate: give the instance with --id ID (its stream is account-ID)"},
		{"projection with --id", testFolds(), []string{"state", dir, "--fold", "deposits", "--id", "42"}, 2,
			"--fold deposits is a projection over the whole log: it takes no --id"},
		{"stats with --id", testFolds(), []string{"state", dir, "--id", "42"}, 2,
			"--id is for an aggregate fold"},
		{"invalid id", testFolds(), []string{"state", dir, "--fold", "account", "--id", "a\x00b"}, 2,
			`--id "a\x00b"`},
		{"beyond the end", testFolds(), []string{"state", dir, "--fold", "account", "--id", "42", "--seq", "99"}, 1,
			"--seq 99 is beyond the end of the log (12)"},
		{"snapshot: unknown fold", testFolds(), []string{"snapshot", dir, "--fold", "x"}, 2,
			`evlogctl snapshot: --fold "x": no such fold; this evlogctl has stats, account, deposits (see evlogctl snapshot --help)`},
		{"snapshot: aggregate without --id", testFolds(), []string{"snapshot", dir, "--fold", "account"}, 2,
			"evlogctl snapshot: --fold account is an aggregate: give the instance with --id ID"},
		{"snapshot: stats with --id", testFolds(), []string{"snapshot", dir, "--id", "42"}, 2,
			"evlogctl snapshot: --id is for an aggregate fold"},
		{"verify: --fold without --replay", testFolds(), []string{"verify", dir, "--fold", "deposits"}, 2,
			"evlogctl verify: --fold and --id choose the fold --replay re-folds: give --replay"},
		{"verify: projection with --id", testFolds(), []string{"verify", dir, "--replay", "--fold", "deposits", "--id", "1"}, 2,
			"evlogctl verify: --fold deposits is a projection over the whole log: it takes no --id"},
		{"verify: stats with --id", testFolds(), []string{"verify", dir, "--replay", "--id", "1"}, 2,
			"evlogctl verify: --id is for an aggregate fold"},
		{"two folds with one name", append(testFolds(), AggregateFold(testAccountDef, testCodec.Decode)), []string{"state", dir}, 1,
			`two folds are named "account"`},
		{"a fold named stats", []Fold{ProjectionFold(projection.Projection[map[string]int, evlog.Event[int]]{Name: "stats", Apply: testDeposits.Apply}, testCodec.Decode)}, []string{"help"}, 1,
			`two folds are named "stats"`},
		{"a zero Fold", []Fold{{Name: "x"}}, []string{"help"}, 1,
			"was not built by AggregateFold or ProjectionFold"},
		{"an invalid category", []Fold{AggregateFold(aggregate.Definition[testAccount, evlog.Event[int]]{Category: "a-b", Apply: testAccountDef.Apply}, testCodec.Decode)}, []string{"help"}, 1,
			`Config.Folds[0] ("a-b"): evlog/aggregate: definition of "a-b": evlog: invalid`},
		{"no Apply", []Fold{ProjectionFold(projection.Projection[int, evlog.Event[int]]{Name: "p"}, testCodec.Decode)}, []string{"help"}, 1,
			`Config.Folds[0] ("p"): no Apply function`},
		{"no decode", []Fold{AggregateFold(testAccountDef, nil)}, []string{"help"}, 1,
			`Config.Folds[0] ("account"): no decode function`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := mainIn(t, tc.folds, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want exit %d and one line containing %q", code, stderr, tc.code, tc.stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

// TestStateFoldHelp checks "state --help" lists the folds.
func TestStateFoldHelp(t *testing.T) {
	stdout, stderr, code := mainIn(t, testFolds(), "state", "--help")
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{
		"\n  stats            built-in:",
		"\n  account          aggregate account: the state of the instance --id ID (stream account-ID)\n",
		"\n  deposits         projection deposits: its view over the whole log\n",
		"--fold NAME",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("state --help lacks %q:\n%s", want, stdout)
		}
	}
}

// TestMainStreams checks Main writes only to the Config's streams, and
// that a Config without them uses the process's (not tested: it would
// write to the test's output) — here, results and failures.
func TestMainStreams(t *testing.T) {
	stdout, stderr, code := mainIn(t, nil, "verify", t.TempDir()+"/missing")
	if code != 1 || stdout != "" || !strings.HasPrefix(stderr, "evlogctl verify: ") {
		t.Errorf("verify of a missing log: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = mainIn(t, nil, "nope")
	if code != 2 || stdout != "" || stderr == "" {
		t.Errorf("unknown command: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = mainIn(t, nil, "help")
	if code != 0 || stderr != "" || !strings.Contains(stdout, fmt.Sprintf("  %-13s ", "state")) {
		t.Errorf("help: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestConfigName runs an application's own tool named cartctl: its usage,
// help, usage errors, failures and recovery notes name it, never
// evlogctl; a Config without Name takes the name the program was run by.
func TestConfigName(t *testing.T) {
	dir := t.TempDir()
	run := func(name string, args ...string) (string, string, int) {
		t.Helper()
		var out, errb bytes.Buffer
		code := Main(t.Context(), args, Config{Name: name, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
			Now: func() time.Time { return testEpoch }})
		return out.String(), errb.String(), code
	}
	if _, stderr, code := run("cartctl", "load", dir, "--count", "10"); code != 0 {
		t.Fatalf("load: exit %d: %s", code, stderr)
	}
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string // prefixes
	}{
		{[]string{"help"}, 0, "cartctl: the operator's tool for evlog event logs\n\nUsage: cartctl COMMAND", ""},
		{[]string{"state", "--help"}, 0, "Usage: cartctl state DIR", ""},
		{[]string{"backup", "--help"}, 0, "Usage: cartctl backup DIR DEST [--incremental] [--copy] [--follow [--interval D]] [--format text|json|jsonl]\n       cartctl backup --verify", ""},
		{[]string{"nosuch"}, 2, "", "cartctl: unknown command \"nosuch\" (see cartctl help)\n"},
		{[]string{"state"}, 2, "", "cartctl state: "},
		{[]string{"state", dir, "--fold", "cart"}, 2, "", "cartctl state: --fold \"cart\": no such fold; this cartctl has stats (see cartctl state --help)\n"},
		{[]string{"verify", filepath.Join(dir, "missing")}, 1, "", "cartctl verify: "},
	}
	for _, tt := range tests {
		stdout, stderr, code := run("cartctl", tt.args...)
		if code != tt.code || !strings.HasPrefix(stdout, tt.stdout) || !strings.HasPrefix(stderr, tt.stderr) ||
			strings.Contains(stdout+stderr, "evlogctl") {
			t.Errorf("cartctl %q: exit %d (want %d)\nstdout %q\n(want prefix %q)\nstderr %q\n(want prefix %q)", tt.args, code, tt.code, stdout, tt.stdout, stderr, tt.stderr)
		}
	}
	// No Name: the program's own name, as it was run.
	if _, stderr, _ := run("", "nosuch"); !strings.HasPrefix(stderr, filepath.Base(os.Args[0])+": unknown command") {
		t.Errorf("Config without Name: stderr %q, want it to name %s", stderr, filepath.Base(os.Args[0]))
	}
}

// TestSnapshotVerifyFold snapshots the application's aggregate instance
// and projection from the CLI (snapshot --fold), checks state starts from
// those snapshots and gets the model's answer, checks verify --replay
// --fold re-folds and accepts them and the application's own, and that it
// reports a snapshot whose state the events do not give.
func TestSnapshotVerifyFold(t *testing.T) {
	dir := t.TempDir()
	writeTestApp(t, dir)
	// One event past every snapshot the application saved.
	l, err := evlog.Open(dir, evlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	extra := testEventTime(len(testHistory))
	if _, err := evlog.Typed[int](l).Append(t.Context(), "account-42", evlog.ExpectAny, evlog.Event[int]{Type: "deposited", Time: extra, Data: 5}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	balance42, deposits := 5, map[string]int{"account-42": 5}
	for _, ev := range testHistory {
		switch {
		case ev.typ == "deposited":
			deposits["account-"+ev.id] += ev.amount
			if ev.id == "42" {
				balance42 += ev.amount
			}
		case ev.id == "42":
			balance42 -= ev.amount
		}
	}
	last := uint64(len(testHistory) + 1)

	for _, tc := range []struct {
		fold, id string
		want     any
	}{
		{"account", "42", testAccount{balance42}},
		{"deposits", "", deposits},
	} {
		t.Run(tc.fold, func(t *testing.T) {
			args := []string{"snapshot", dir, "--fold", tc.fold, "--format", "json"}
			if tc.id != "" {
				args = append(args, "--id", tc.id)
			}
			stdout, stderr, code := mainIn(t, testFolds(), args...)
			if code != 0 || stderr != "" {
				t.Fatalf("snapshot --fold %s: exit %d: %s", tc.fold, code, stderr)
			}
			var snap snapshotResult
			if err := json.Unmarshal([]byte(stdout), &snap); err != nil {
				t.Fatal(err)
			}
			if !snap.Created || snap.Seq != last || snap.File == "" {
				t.Fatalf("snapshot --fold %s: %s; want a new snapshot at seq %d", tc.fold, stdout, last)
			}
			// Again: it exists.
			if stdout, _, code := mainIn(t, testFolds(), args...); code != 0 || !strings.Contains(stdout, `"exists":true`) {
				t.Errorf("second snapshot --fold %s: exit %d: %s", tc.fold, code, stdout)
			}

			// state starts from it, and gets the model's answer.
			args = []string{"state", dir, "--fold", tc.fold, "--format", "json"}
			if tc.id != "" {
				args = append(args, "--id", tc.id)
			}
			stdout, stderr, code = mainIn(t, testFolds(), args...)
			if code != 0 {
				t.Fatalf("state --fold %s: exit %d: %s", tc.fold, code, stderr)
			}
			var res foldStateResult
			if err := json.Unmarshal([]byte(stdout), &res); err != nil {
				t.Fatal(err)
			}
			if res.Plan.Snapshot == nil || res.Plan.Snapshot.File != snap.File || res.Plan.Subject != snap.Name || res.State.Applied != 0 {
				t.Errorf("state --fold %s did not start from the CLI's snapshot %s: %s", tc.fold, snap.File, stdout)
			}
			wantJSON, _ := json.Marshal(tc.want)
			if d := cmp.Diff(string(wantJSON), string(res.State.Value)); d != "" {
				t.Errorf("state --fold %s from the CLI's snapshot (-model +got):\n%s", tc.fold, d)
			}

			// verify --replay --fold re-folds and accepts every snapshot
			// of the subject: the application's and the CLI's.
			args = []string{"verify", dir, "--replay", "--fold", tc.fold, "--format", "json"}
			if tc.id != "" {
				args = append(args, "--id", tc.id)
			}
			stdout, stderr, code = mainIn(t, testFolds(), args...)
			var rep verifyReport
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
				t.Fatalf("verify: %v: %s %s", err, stdout, stderr)
			}
			if code != 0 || !rep.OK || rep.Replayed < 2 {
				t.Fatalf("verify --replay --fold %s: exit %d, %s (want ok, the application's snapshots and the CLI's compared)", tc.fold, code, stdout)
			}

			// A snapshot at the same seq whose state the events do not give.
			l, err := evlog.Open(dir, evlog.Options{})
			if err != nil {
				t.Fatal(err)
			}
			store, err := l.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, snap.File)); err != nil {
				t.Fatal(err)
			}
			wrong, err := msgpack.Marshal(testAccount{Balance: -1})
			if tc.id == "" {
				wrong, err = msgpack.Marshal(map[string]int{"account-42": -1})
			}
			if err != nil {
				t.Fatal(err)
			}
			schema := testAccountDef.SchemaVersion
			if tc.id == "" {
				schema = testDeposits.SchemaVersion
			}
			if _, err := store.Save(t.Context(), snapshot.Meta{Name: snap.Name, LogID: l.LogID(), Seq: last, Time: extra, SchemaVersion: schema}, wrong); err != nil {
				t.Fatal(err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			args = []string{"verify", dir, "--replay", "--fold", tc.fold}
			if tc.id != "" {
				args = append(args, "--id", tc.id)
			}
			stdout, _, code = mainIn(t, testFolds(), args...)
			want := fmt.Sprintf("corrupt %s 0 state of %s: state differs from a replay of the events\n", snap.File, snap.Name)
			if code != 1 || !strings.Contains(stdout, want) || strings.Count(stdout, "corrupt") != 1 {
				t.Errorf("verify --replay --fold %s with a wrong snapshot: exit %d:\n%s\nwant exit 1 and only %q", tc.fold, code, stdout, want)
			}
		})
	}
}

// TestSameState checks verify --replay --fold's comparison: a map state
// equals its snapshot whatever order the snapshot's encoding wrote the
// keys in (msgpack.Marshal follows map iteration), and differs when one
// value does.
func TestSameState(t *testing.T) {
	spec := replay.Spec[map[string]int, int]{}
	st := map[string]int{}
	for i := range 100 {
		st[fmt.Sprintf("k%d", i)] = i
	}
	for range 20 {
		raw, err := msgpack.Marshal(st) // its own key order each time
		if err != nil {
			t.Fatal(err)
		}
		got, err := replay.DecodeState(spec, raw)
		if err != nil {
			t.Fatal(err)
		}
		if same, err := sameState(spec, got, raw, st); err != nil || !same {
			t.Fatalf("sameState of a state and its own snapshot: %v, %v", same, err)
		}
		other := maps.Clone(st)
		other["k7"]++
		if same, err := sameState(spec, got, raw, other); err != nil || same {
			t.Fatalf("sameState of a state and another's snapshot: %v, %v", same, err)
		}
	}
}
