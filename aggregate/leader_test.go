package aggregate_test

import (
	"testing"
	"testing/synctest"

	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/event"
)

// TestExecuteLeaderReturns: the caller whose Execute ran the batch of
// queued commands (the leader) returns once its own command is done, even
// while other callers' commands keep queueing. It used to go on running
// every later batch first, so under a steady stream of commands on one hot
// instance its Execute never returned (and ignored its context). Here the
// command queued behind it waits for it to return: the old code
// deadlocked, which synctest reports.
func TestExecuteLeaderReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := t.Context()
		r := aggregate.NewRepository(&memLog{}, nil, kindsDef("hot"), aggregate.Codec[event.Envelope](aggregate.RawCodec{}), aggregate.Options{})
		defer r.Close()
		inA, releaseA := make(chan struct{}), make(chan struct{})
		aReturned := make(chan struct{})
		go func() {
			defer close(aReturned)
			_, err := r.Execute(ctx, "x", func(kinds) ([]event.Envelope, error) {
				close(inA)
				<-releaseA
				return []event.Envelope{{Type: "a"}}, nil
			})
			if err != nil {
				t.Error(err)
			}
		}()
		<-inA
		bDone := make(chan error, 1)
		go func() {
			_, err := r.Execute(ctx, "x", func(kinds) ([]event.Envelope, error) {
				<-aReturned // B's batch runs only after A returned
				return []event.Envelope{{Type: "b"}}, nil
			})
			bDone <- err
		}()
		synctest.Wait() // B is queued behind A's batch
		close(releaseA)
		if err := <-bDone; err != nil {
			t.Fatal(err)
		}
		inst, err := r.Load(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		if inst.State["a"] != 1 || inst.State["b"] != 1 || inst.Version != 2 {
			t.Fatalf("state %v at version %d, want a:1 b:1 at 2", inst.State, inst.Version)
		}
	})
}
