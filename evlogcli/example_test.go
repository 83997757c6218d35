package evlogcli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/evlogcli"
)

// Account is an application's aggregate: a balance changed by "deposited"
// and "withdrawn" events whose payload is the amount.
type Account struct{ Balance int }

var accountDef = aggregate.Definition[Account, evlog.Event[int]]{
	Category:      "account",
	SchemaVersion: 1,
	Apply: func(s Account, e evlog.Event[int]) Account {
		switch e.Type {
		case "deposited":
			s.Balance += e.Data
		case "withdrawn":
			s.Balance -= e.Data
		}
		return s
	},
}

// An application's own evlogctl: Main with the application's folds. Its
// "state --fold account --id 42 --at -3h30m" computes the account's
// balance at 11:30 from the snapshot the application's repository took at
// 11:00.
func Example() {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
	dir, err := os.MkdirTemp("", "evlogcli-example-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	codec := evlog.NewCodec[int](nil)

	// The application: account 42 (stream account-42), one event an hour
	// from 10:00, its repository snapshotting every 2 events.
	log, err := evlog.Open(dir, evlog.Options{})
	if err != nil {
		panic(err)
	}
	snaps, err := log.Snapshots()
	if err != nil {
		panic(err)
	}
	repo := aggregate.NewRepository(log, snaps, accountDef, aggregate.Codec[evlog.Event[int]](codec),
		aggregate.Options{SnapshotEvery: 2, Clock: func() time.Time { return now }})
	for i, amount := range []int{100, -30, 50, -20} {
		typ := "deposited"
		if amount < 0 {
			typ, amount = "withdrawn", -amount
		}
		at := now.Add(time.Duration(i-5) * time.Hour) // 10:00, 11:00, ...
		if _, err := repo.Execute(ctx, "42", func(Account) ([]evlog.Event[int], error) {
			return []evlog.Event[int]{{Type: typ, Time: at, Data: amount}}, nil
		}); err != nil {
			panic(err)
		}
	}
	if err := repo.Close(); err != nil {
		panic(err)
	}
	if err := log.Close(); err != nil {
		panic(err)
	}

	// Its evlogctl (in main: evlogcli.Main(ctx, os.Args[1:], cfg) and
	// os.Exit with the status).
	var out bytes.Buffer
	cfg := evlogcli.Config{
		Folds:  []evlogcli.Fold{evlogcli.AggregateFold(accountDef, codec.Decode)},
		Stdout: &out,
		Now:    func() time.Time { return now },
	}
	code := evlogcli.Main(ctx, []string{"state", dir, "--fold", "account", "--id", "42", "--at", "-3h30m", "--format", "json"}, cfg)

	var res struct {
		Plan struct {
			Snapshot struct{ Seq uint64 }
		}
		State struct {
			Seq     uint64
			Applied int `json:"events_applied"`
			Value   Account
		}
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		panic(err)
	}
	fmt.Println("exit status:", code)
	fmt.Printf("balance at 11:30: %d (the snapshot at seq %d, then %d events)\n", res.State.Value.Balance, res.Plan.Snapshot.Seq, res.State.Applied)
	// Output:
	// exit status: 0
	// balance at 11:30: 70 (the snapshot at seq 2, then 0 events)
}
