package evlogcli

// Opening an existing log for writing, shared by the commands that change
// one (compact, delete), and the recovery report every writer's open
// gives.

import (
	"fmt"
	"os"

	"github.com/evlog/evlog"
)

// requireDir fails unless dir exists and is a directory: evlog.Open would
// create a missing one, and a command that changes or reads an existing
// log is better told it named the wrong path.
func requireDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// openExisting opens the existing log in dir for writing and reports on
// e's stderr what recovery repaired, naming cmd.
func openExisting(e *env, cmd, dir string) (*evlog.Log, error) {
	if err := requireDir(dir); err != nil {
		return nil, err
	}
	l, err := evlog.Open(dir, evlog.Options{Clock: e.now})
	if err != nil {
		return nil, err
	}
	reportRecovery(e, cmd, l)
	return l, nil
}

// reportRecovery tells on e's stderr what a writer's open repaired.
func reportRecovery(e *env, cmd string, l *evlog.Log) {
	w, prog := e.stderr, e.prog()
	rec := l.Recovery()
	if t := rec.TornTail; t != nil {
		fmt.Fprintf(w, "%s %s: recovery truncated the torn tail of %s at offset %d (%d bytes not recorded as durable)\n", prog, cmd, rec.TornFile, t.Offset, t.Size)
	}
	for _, f := range rec.Removed {
		fmt.Fprintf(w, "%s %s: recovery removed %s\n", prog, cmd, f)
	}
}
