// Package evlogcli is evlogctl, the operator's tool for evlog event logs,
// as a package: an application builds its own evlogctl in a few lines,
// with its own folds, and gets every evlogctl command plus "state --fold
// NAME" for its aggregates and projections, served from the snapshots its
// aggregate.Repository and projection.Runner saved:
//
//	func main() {
//		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
//		code := evlogcli.Main(ctx, os.Args[1:], evlogcli.Config{Folds: []evlogcli.Fold{
//			evlogcli.AggregateFold(cart.Definition, evlog.NewCodec[cart.Item](nil).Decode),
//		}})
//		stop()
//		os.Exit(code)
//	}
//
// and then
//
//	cartctl state DIR --fold cart --id 42 --at -24h
//
// The stock evlogctl (cmd/evlogctl) is exactly that, with the inventory
// example's aggregate as its one application fold. docs/CLI.md documents
// every command, its text and JSON output, and the exit status.
//
// # Contract
//
//   - Main never calls os.Exit and never panics: it returns the exit status
//     (0 success and --help, 1 failure: corruption, lock held, I/O error,
//     an invalid Config; 2 usage error), and a panic inside a command is
//     reported as an internal error (status 1).
//   - Results go to Config.Stdout; each failure is one line on
//     Config.Stderr ("evlogctl CMD: what went wrong (what to do)"), as are
//     warnings. Messages, usage and help name the program Config.Name,
//     by default the name it was run by (the stock tool: "evlogctl").
//     Only stdin-reading commands (import) read Config.Stdin.
//   - ctx cancels long commands (tail -f, backup --follow, load); pass a
//     context cancelled by SIGINT/SIGTERM, as cmd/evlogctl does for the
//     commands HandlesSignals names (the one-shot queries do not act on
//     it, and need no signal handler).
//   - Read-only commands (inspect, dump, verify, state, snapshots without
//     --prune, tail, and salvage and backup on their source; backup
//     --verify and --status, and restore on the backup) never modify,
//     create or lock anything in the log directory, so they are safe
//     beside the application's running writer.
//   - Main may be called concurrently and repeatedly: it keeps no state
//     between calls.
package evlogcli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config is what Main runs with. The zero Config is the stock evlogctl
// without application folds, on the process's standard streams.
type Config struct {
	// Name is the program's name in messages, usage and help ("cartctl
	// state: ..."). Empty: the name the program was run by
	// (filepath.Base(os.Args[0])), or "evlogctl" when there is none.
	Name string
	// Folds are the application's states "state --fold NAME" computes,
	// beside the built-in "stats". Build them with AggregateFold and
	// ProjectionFold; names must be unique.
	Folds []Fold
	// Stdin, Stdout and Stderr are the command's streams (nil: os.Stdin,
	// os.Stdout, os.Stderr).
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Now is the clock: "now" for relative times (--at -24h) and the Clock
	// of logs the command writes (nil: time.Now).
	Now func() time.Time
}

// programName is the name the program was run by, without a directory
// or ".exe" ("" when unknown).
func programName() string {
	if len(os.Args) == 0 {
		return ""
	}
	name := strings.TrimSuffix(filepath.Base(os.Args[0]), ".exe")
	if name == "." || name == string(filepath.Separator) {
		return ""
	}
	return name
}

// Main runs evlogctl with args (without the program name) and returns its
// exit status; see the package contract.
func Main(ctx context.Context, args []string, cfg Config) int {
	e := &env{stdin: cfg.Stdin, stdout: cfg.Stdout, stderr: cfg.Stderr, now: cfg.Now, since: time.Since, poll: defaultPoll, folds: cfg.Folds,
		name: cmpOr(cfg.Name, programName())}
	if e.stdin == nil {
		e.stdin = os.Stdin
	}
	if e.stdout == nil {
		e.stdout = os.Stdout
	}
	if e.stderr == nil {
		e.stderr = os.Stderr
	}
	if e.now == nil {
		e.now = time.Now
	}
	if err := validFolds(cfg.Folds); err != nil {
		fmt.Fprintln(e.stderr, oneLine(err.Error()))
		return 1
	}
	return exitCode(runEnv(ctx, e, args))
}
