package evlogcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// env is what a command runs with: its standard streams and its clock. The
// real program uses the process's; tests substitute their own (a fixed
// clock, a fixed elapsed time, stdin from a file).
type env struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// now is the clock: "now" for relative times ("-24h") and the Clock of
	// logs the command writes.
	now func() time.Time
	// since measures elapsed time (state's elapsed_ms).
	since func(time.Time) time.Duration
	// poll is how often tail -f looks for new events.
	poll time.Duration
	// folds are the application's folds (Config.Folds), beside stats.
	folds []Fold
	// name is the program's name in messages and usage (Config.Name;
	// "": evlogctl).
	name string
}

// prog is the program's name in messages and usage.
func (e *env) prog() string {
	if e.name == "" {
		return "evlogctl"
	}
	return e.name
}

// defaultPoll is how often tail -f polls for events appended by another
// process.
const defaultPoll = 100 * time.Millisecond

// run runs evlogctl with args (without the program name). It prints
// failures (one line) on stderr and returns the error, which exitCode maps
// to the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runEnv(ctx, &env{stdin: os.Stdin, stdout: stdout, stderr: stderr, now: time.Now, since: time.Since, poll: defaultPoll}, args)
}

// runEnv is run with an explicit environment. A panic never escapes it: it
// is reported as an internal error (exit status 1), without a stack trace.
func runEnv(ctx context.Context, e *env, args []string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			ie := &internalError{msg: fmt.Sprint(r)}
			err = ie
			fmt.Fprintln(e.stderr, oneLine(ie.line(e.prog())))
		}
	}()
	err = dispatch(ctx, e, args)
	report(e, err)
	return err
}

// command is one verb of evlogctl.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, e *env, args []string) error
}

// commands lists the verbs in the order "evlogctl help" shows them.
var commands []command

func init() {
	commands = []command{
		{"demo", "run the inventory example end to end on a temporary log", runDemo},
		{"inspect", "show a log's segments and snapshots", runInspect},
		{"dump", "print events", runDump},
		{"tail", "print the last events, and follow new ones with -f", runTail},
		{"streams", "list streams with their version, first and last seq", runStreams},
		{"verify", "check every checksum of every segment and snapshot", runVerify},
		{"state", "compute a fold's state (built-in stats, or an application's) at a seq or time", runState},
		{"snapshot", "snapshot the built-in stats state at the last seq", runSnapshot},
		{"snapshots", "list snapshots, or prune old ones", runSnapshots},
		{"subscriptions", "list durable subscriptions with their position and lag", runSubscriptions},
		{"compact", "merge small sealed segments, optionally compressing them", runCompact},
		{"delete", "delete, truncate or tombstone a stream (compact then removes the payloads)", runDelete},
		{"salvage", "copy every readable event of a damaged log into a new log", runSalvage},
		{"backup", "back up a log beside its writer, check a backup, or keep one up to date", runBackup},
		{"restore", "restore a backup into a new log, optionally to a point in time", runRestore},
		{"import", "append events given in dump's JSON form", runImport},
		{"load", "generate load: append numbered events in batches", runLoad},
		{"help", "show help for evlogctl or one command", runHelp},
	}
}

// oneShot lists the commands that only read and end on their own: they
// do not act on a cancelled context (tail, listed apart, does with -f;
// snapshots does with --prune, which removes files). TestHandlesSignals keeps it to
// command names.
var oneShot = map[string]bool{
	"inspect": true, "dump": true, "streams": true, "verify": true, "state": true,
	"snapshots": true, "subscriptions": true, "help": true,
}

// HandlesSignals reports whether the command args names (Main's args)
// acts on the cancellation of Main's ctx: tail -f and backup --follow
// then end with status 0, and the commands that write stop between
// steps and report what they did. The others (inspect, dump, streams,
// verify, state, tail without -f, snapshots without --prune,
// subscriptions, help, and any usage error) only read and end on their
// own: a process running one
// loses nothing when SIGINT or SIGTERM ends it at once (the default
// action), so it need not install a handler — a thread and one to two
// milliseconds at the start of every short query. cmd/evlogctl cancels
// its ctx on SIGINT and SIGTERM only when HandlesSignals says so.
func HandlesSignals(args []string) bool {
	if len(args) == 0 || lookup(args[0]) == nil {
		return false
	}
	switch args[0] {
	case "snapshots":
		return flagGiven(args[1:], "prune")
	case "tail":
		return flagGiven(args[1:], "f")
	}
	return !oneShot[args[0]]
}

// flagGiven reports whether args (a command's, after its name) give the
// flag name (-name, --name, -name=…), before any "--".
func flagGiven(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		if n, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && n == name {
			return true
		}
	}
	return false
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func dispatch(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return &usageError{msg: "missing command", hint: "help"}
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		printOverview(e.stdout, e.prog())
		return nil
	}
	c := lookup(name)
	if c == nil {
		if strings.HasPrefix(name, "-") {
			return &usageError{msg: fmt.Sprintf("flags go after the command: %q", name), hint: "help"}
		}
		return &usageError{msg: fmt.Sprintf("unknown command %q", name), hint: "help"}
	}
	err := c.run(ctx, e, args[1:])
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

// runHelp implements "evlogctl help [COMMAND]".
func runHelp(_ context.Context, e *env, args []string) error {
	switch {
	case len(args) == 0:
		printOverview(e.stdout, e.prog())
		return nil
	case len(args) > 1:
		return &usageError{cmd: "help", msg: "too many arguments"}
	case args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help":
		printOverview(e.stdout, e.prog())
		return nil
	}
	c := lookup(args[0])
	if c == nil {
		return &usageError{cmd: "help", msg: fmt.Sprintf("unknown command %q", args[0]), hint: "help"}
	}
	return c.run(context.Background(), e, []string{"--help"})
}

// printOverview prints "evlogctl help", naming the program prog.
func printOverview(w io.Writer, prog string) {
	var b strings.Builder
	b.WriteString(`evlogctl: the operator's tool for evlog event logs

Usage: evlogctl COMMAND [ARGS] [FLAGS]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(&b, "  %-13s %s\n", c.name, c.summary)
	}
	b.WriteString(`
Run "evlogctl COMMAND --help" for a command's arguments and flags.
Every command takes --format text|json (dump, tail and load: text|jsonl;
backup --follow: text|jsonl).
Times are RFC 3339 (2026-11-25T15:00:00Z) or a Go duration relative to
now (-24h, -90m); range flags are inclusive.
Exit status: 0 success, 1 failure (corruption, lock held, I/O error),
2 usage error.
`)
	io.WriteString(w, renameProg(b.String(), prog))
}

// renameProg returns text, one of evlogctl's own help texts, with the
// program named prog instead of evlogctl (an application's own tool).
func renameProg(text, prog string) string {
	if prog == "evlogctl" {
		return text
	}
	return strings.ReplaceAll(text, "evlogctl", prog)
}

// errHelp is returned by a command that printed its usage for --help.
var errHelp = errors.New("help requested")

// usageError is a mistake in the command line: exit status 2, and a
// one-line hint.
type usageError struct {
	cmd  string // the command, "" for evlogctl itself
	msg  string
	hint string // the arguments to run for help after the program's name (default: "CMD --help")
}

func (e *usageError) Error() string { return e.line("evlogctl") }

// line is the error's stderr line in a program named prog.
func (e *usageError) line(prog string) string {
	hint := prog + " " + e.hint
	if e.cmd != "" {
		prog += " " + e.cmd
	}
	if e.hint == "" {
		hint = prog + " --help"
	}
	return fmt.Sprintf("%s: %s (see %s)", prog, e.msg, hint)
}

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// cmdError is a failure of a command: exit status 1, printed as
// "evlogctl CMD: message".
type cmdError struct {
	cmd string
	err error
}

func (e *cmdError) Error() string { return e.line("evlogctl") }

// line is the error's stderr line in a program named prog.
func (e *cmdError) line(prog string) string { return prog + " " + e.cmd + ": " + e.err.Error() }
func (e *cmdError) Unwrap() error           { return e.err }

// fail wraps err as a failure of cmd (nil stays nil).
func fail(cmd string, err error) error {
	if err == nil {
		return nil
	}
	_, isCmd := errors.AsType[*cmdError](err)
	_, isUsage := errors.AsType[*usageError](err)
	_, isLine := errors.AsType[*lineError](err)
	if isCmd || isUsage || isLine {
		return err
	}
	return &cmdError{cmd: cmd, err: err}
}

// lineError is a failure whose stderr line is given verbatim, for
// contracts scripts parse (dump's "corrupt FILE OFFSET REASON").
type lineError struct {
	line string
	err  error // the underlying error, for errors.Is
}

func (e *lineError) Error() string { return e.line }
func (e *lineError) Unwrap() error { return e.err }

// internalError is a recovered panic: a bug in evlogctl or evlog.
type internalError struct{ msg string }

func (e *internalError) Error() string { return e.line("evlogctl") }

// line is the error's stderr line in a program named prog.
func (e *internalError) line(prog string) string {
	return prog + ": internal error: " + e.msg + " (this is a bug; please report it)"
}

// report prints err's line on e's stderr, naming the program e.prog().
func report(e *env, err error) {
	if err == nil || errors.Is(err, errHelp) {
		return
	}
	msg := err.Error()
	if l, ok := err.(interface{ line(prog string) string }); ok {
		msg = l.line(e.prog())
	}
	fmt.Fprintln(e.stderr, oneLine(msg))
}

// oneLine folds a multi-line message (errors.Join) onto one line.
func oneLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return strings.NewReplacer("\r\n", "; ", "\n", "; ", "\r", " ").Replace(s)
}

// exitCode maps run's error to the exit status: 0 success (and --help),
// 2 usage error, 1 anything else.
func exitCode(err error) int {
	if err == nil || errors.Is(err, errHelp) {
		return 0
	}
	if _, ok := errors.AsType[*usageError](err); ok {
		return 2
	}
	return 1
}
