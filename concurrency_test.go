package evlog

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/evlog/evlog/internal/vfs"
)

// TestConcurrentAppendsAndReads: many goroutines append batches to many
// streams while readers iterate; readers only ever see whole batches, in
// contiguous seq order; nothing is lost.
func TestConcurrentAppendsAndReads(t *testing.T) {
	ctx := t.Context()
	l := openMem(t, vfs.NewMem(), Options{SegmentSize: 16 << 10})
	defer l.Close()
	const writers, perWriter = 8, 60
	var wg sync.WaitGroup
	var stop atomic.Bool
	readErr := make(chan error, 3+writers) // each reader and writer sends at most once
	for r := range 3 {
		wg.Go(func() {
			for !stop.Load() {
				if err := checkWholeBatches(ctx, l); err != nil {
					readErr <- fmt.Errorf("reader %d: %w", r, err)
					return
				}
			}
		})
	}
	var ww sync.WaitGroup
	for w := range writers {
		ww.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 5))
			for i := range perWriter {
				n := 1 + rng.IntN(4)
				var evs []Envelope
				for j := range n {
					evs = append(evs, Envelope{Type: "t", Data: []byte{0x93, byte(w), byte(i), byte(n*16 + j)}})
				}
				s := fmt.Sprintf("s-%d", rng.IntN(20))
				if _, err := l.Append(ctx, s, ExpectAny, evs...); err != nil {
					readErr <- err
					return
				}
			}
		})
	}
	ww.Wait()
	stop.Store(true)
	wg.Wait()
	close(readErr)
	for err := range readErr {
		t.Fatal(err)
	}
	if err := checkWholeBatches(ctx, l); err != nil {
		t.Fatal(err)
	}
	if s := l.Stats(); s.Appends != writers*perWriter {
		t.Fatalf("%d appends, want %d", s.Appends, writers*perWriter)
	}
}

// checkWholeBatches reads the log: seqs contiguous, and every batch (events
// tagged [writer, i, n*16+j]) complete and in order.
func checkWholeBatches(ctx context.Context, l *Log) error {
	want := uint64(1)
	pending := 0
	for e, err := range l.Events(ctx, 1) {
		if err != nil {
			return err
		}
		if e.Seq != want {
			return fmt.Errorf("seq %d, want %d", e.Seq, want)
		}
		want++
		n, j := int(e.Data[3]>>4), int(e.Data[3]&15)
		if j != pending {
			return fmt.Errorf("seq %d is event %d of its batch, want %d", e.Seq, j, pending)
		}
		if pending = j + 1; pending == n {
			pending = 0
		}
	}
	if pending != 0 {
		return fmt.Errorf("the log ends inside a batch")
	}
	return nil
}

// TestConflictsExactlyOncePerLostRace: in every round all racers read the
// stream's version, wait on a barrier, then append with ExpectVersion; the
// race is created, not hoped for, so each round has exactly one winner and
// racers-1 losers, each loser getting a ConflictError with a newer actual
// version.
func TestConflictsExactlyOncePerLostRace(t *testing.T) {
	ctx := t.Context()
	l := openMem(t, vfs.NewMem(), Options{})
	defer l.Close()
	const racers, rounds = 6, 40
	for round := range rounds {
		var read, done sync.WaitGroup
		start := make(chan struct{})
		var wins, losses atomic.Int64
		read.Add(racers)
		for r := range racers {
			done.Go(func() {
				v, err := l.StreamVersion(ctx, "hot")
				read.Done()
				if err != nil {
					t.Error(err)
					return
				}
				<-start // every racer holds the same version now
				_, err = l.Append(ctx, "hot", ExpectVersion(v), Envelope{Type: "inc", Data: []byte{byte(r)}})
				switch ce, ok := errors.AsType[*ConflictError](err); {
				case err == nil:
					wins.Add(1)
				case ok && errors.Is(err, ErrVersionConflict) && ce.Actual == v+1 && ce.Expected == ExpectVersion(v):
					losses.Add(1)
				default:
					t.Errorf("round %d: append: %v", round, err)
				}
			})
		}
		read.Wait()
		close(start)
		done.Wait()
		if wins.Load() != 1 || losses.Load() != racers-1 {
			t.Fatalf("round %d: %d wins and %d conflicts, want 1 and %d", round, wins.Load(), losses.Load(), racers-1)
		}
		if v, err := l.StreamVersion(ctx, "hot"); err != nil || v != uint64(round+1) {
			t.Fatalf("round %d: stream at version %d (%v), want %d", round, v, err, round+1)
		}
	}
}

// TestConcurrentCrash: concurrent appenders, a power loss at a random op
// (seeded, fixed budget): every acknowledged append survives.
func TestConcurrentCrash(t *testing.T) {
	ctx := t.Context()
	for trial := range 40 {
		rng := rand.New(rand.NewPCG(uint64(trial), 9))
		mem := vfs.NewMem()
		mem.CrashAt(5 + rng.IntN(150))
		l, err := openFS(mem, crashOpts(SyncAlways), false)
		if err != nil {
			continue
		}
		type ack struct {
			stream string
			pos    Position
			data   byte
		}
		var mu sync.Mutex
		var acks []ack
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := range 40 {
					s := fmt.Sprintf("w%d", w)
					d := byte(i)
					pos, err := l.Append(ctx, s, ExpectAny, Envelope{Type: "t", Data: []byte{d}})
					if err != nil {
						return
					}
					mu.Lock()
					acks = append(acks, ack{s, pos, d})
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		l.Close()
		for _, model := range vfs.CrashModels() {
			after := mem.CrashClone(model, rand.New(rand.NewPCG(uint64(trial), uint64(model))))
			l2, err := openFS(after, crashOpts(SyncAlways), false)
			if err != nil {
				t.Fatalf("trial %d %v: reopen: %v", trial, model, err)
			}
			got := readAll(t, l2)
			l2.Close()
			for _, a := range acks {
				if a.pos.Seq > uint64(len(got)) {
					t.Fatalf("trial %d %v: acknowledged seq %d missing (log has %d)", trial, model, a.pos.Seq, len(got))
				}
				e := got[a.pos.Seq-1]
				if e.Stream != a.stream || e.Version != a.pos.Version || e.Data[0] != a.data {
					t.Fatalf("trial %d %v: seq %d is %s v%d %v, want %s v%d %d", trial, model, a.pos.Seq, e.Stream, e.Version, e.Data, a.stream, a.pos.Version, a.data)
				}
			}
		}
	}
}
