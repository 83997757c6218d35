// Command evlogctl is the operator's tool for evlog event logs: it inspects,
// dumps, verifies, compacts, salvages, snapshots and replays a log
// directory, follows a log another process is writing, backs a log up and
// restores it (to a point in time), imports events, and generates load for
// benchmarks and crash tests.
//
//	evlogctl COMMAND [ARGS] [FLAGS]
//
// Run "evlogctl help" for the list of commands and "evlogctl COMMAND --help"
// for one command's flags. docs/CLI.md documents every command, its text
// and JSON output, and the exit status: 0 success, 1 failure (corruption,
// lock held, I/O error), 2 usage error.
//
// evlogctl is package evlogcli with the inventory example's aggregate as
// its one application fold ("state DIR --fold inventory --id alice");
// an application builds its own evlogctl, with its own folds, the same
// way.
package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/evlogcli"
	"github.com/evlog/evlog/examples/inventory"
)

// inventoryCodec is built on first use: building its registry costs about
// a millisecond, which only "state --fold inventory" needs to pay.
var inventoryCodec = sync.OnceValue(inventory.Codec)

func decodeInventory(e evlog.Envelope) (evlog.Event[inventory.Change], error) {
	return inventoryCodec().Decode(e)
}

func main() {
	// SIGINT and SIGTERM cancel ctx for the commands that act on it;
	// the one-shot queries keep the default action (see HandlesSignals).
	ctx, stop := context.Background(), context.CancelFunc(func() {})
	if evlogcli.HandlesSignals(os.Args[1:]) {
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	}
	code := evlogcli.Main(ctx, os.Args[1:], evlogcli.Config{Folds: []evlogcli.Fold{
		evlogcli.AggregateFold(inventory.Definition, decodeInventory),
	}})
	stop()
	os.Exit(code)
}
