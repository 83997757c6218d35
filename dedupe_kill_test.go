package evlog

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// dedupeChildEnv makes the test binary a child of TestDedupeKilled: it
// appends the batches of idWorkload from index $EVLOG_DEDUPE_FROM on to
// the log in $EVLOG_DEDUPE_CHILD, printing "ack i" after each.
const dedupeChildEnv = "EVLOG_DEDUPE_CHILD"

const dedupeKillBatches = 60

func dedupeChild() {
	from, _ := strconv.Atoi(os.Getenv("EVLOG_DEDUPE_FROM"))
	l, err := Open(os.Getenv(dedupeChildEnv), Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	for i, b := range idWorkload(7, dedupeKillBatches)[from:] {
		if _, err := l.AppendBatch(ctx, b); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Printf("ack %d\n", from+i)
	}
	if err := l.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	os.Exit(0)
}

// TestDedupeKilled is a client's retry loop across kill -9: a child
// process appends batches with event IDs and is killed at random points;
// each time the parent starts a new child from the first batch it did
// not see acknowledged (which the killed one may or may not have
// written). At the end every batch is in the log exactly once.
func TestDedupeKilled(t *testing.T) {
	if os.Getenv(dedupeChildEnv) != "" {
		dedupeChild()
	}
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := t.TempDir()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	next, kills := 0, 0
	for round := 0; next < dedupeKillBatches; round++ {
		if round > 10*dedupeKillBatches {
			t.Fatalf("no progress: batch %d after %d rounds", next, round)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestDedupeKilled$")
		cmd.Env = append(os.Environ(), dedupeChildEnv+"="+dir, "EVLOG_DEDUPE_FROM="+strconv.Itoa(next))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer // read after Wait
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		killAfter := rng.IntN(4) // acknowledgements to read before the kill
		killed := false
		if rng.IntN(5) == 0 {
			cmd.Process.Kill() // during Open (recovery), or before any append
			killed = true
		}
		sc := bufio.NewScanner(out)
		for !killed && sc.Scan() {
			var i int
			if _, err := fmt.Sscanf(sc.Text(), "ack %d", &i); err != nil || i != next {
				t.Fatalf("child said %q, want ack %d", sc.Text(), next)
			}
			next++
			if killAfter--; killAfter < 0 {
				cmd.Process.Kill() // SIGKILL: mid-append, most likely
				killed = true
				break
			}
		}
		werr := cmd.Wait()
		if killed {
			kills++
		} else if werr != nil {
			t.Fatalf("child failed: %v\n%s", werr, stderr.String())
		}
	}
	l, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if msg := checkExactlyOnce(t, l, idWorkload(7, dedupeKillBatches)); msg != "" {
		t.Fatal(msg)
	}
	t.Logf("%d kills", kills)
}
