package evlog

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// rollChildEnv makes the test binary the writer process of
// TestReadersBesideRollingWriterProcess: EVLOG_ROLL_CHILD=DIR.
const rollChildEnv = "EVLOG_ROLL_CHILD"

// rollProcEvents is how many events the writer process appends: with
// MinSegmentSize segments, some twenty-five rolls and as many interval
// checkpoints.
const rollProcEvents = 800

// rollProcQuick is how many quick opens and Refreshes (LastSeq only)
// begin each round of reads beside a step of the writer process.
const rollProcQuick = 4

// rollProcData is the payload of the event of seq n (a msgpack str 8):
// a reader checks every event it serves against it.
func rollProcData(n uint64) []byte {
	s := fmt.Sprintf("%08d%s", n, strings.Repeat("p", 64))
	return append([]byte{0xd9, byte(len(s))}, s...)
}

// rollProcBatch is one of the writer process's appends: seqs first..last
// to stream.
type rollProcBatch struct {
	first, last uint64
	stream      string
}

// rollProcBatches are the writer process's appends: of 1, 2, 3 and 4
// events in turn, to streams s-0 to s-4 in turn.
func rollProcBatches() []rollProcBatch {
	var bs []rollProcBatch
	for n, b := uint64(0), 0; n < rollProcEvents; b++ {
		first := n + 1
		n = min(n+uint64(1+b%4), rollProcEvents)
		bs = append(bs, rollProcBatch{first, n, fmt.Sprintf("s-%d", b%5)})
	}
	return bs
}

// rollProcStep is how many of rollProcBatches the writer process appends
// in one step (20 events: about half a segment).
const rollProcStep = 8

// rollChild is a writer process under SyncAlways with the smallest
// segments on the real directory dir: it appends rollProcBatches (seq n
// holds rollProcData(n)) in steps of rollProcStep batches, each begun by
// a line on its stdin (every third step, from the second on, closes the
// log and opens it again first), printing "acked SEQ" once each batch is
// acknowledged and "stepped SEQ" after each step but the last, after
// which it prints "done SEQ CKPTS SEGS" (the checkpoints written and the
// segments created, counted through a Faulty FS that injects nothing)
// and waits for its stdin to end before it closes the log. It never
// returns.
func rollChild(dir string) {
	fail := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "roll child: %s: %v\n", what, err)
		os.Exit(2)
	}
	osfs, err := vfs.CreateOS(dir)
	if err != nil {
		fail("opening the directory", err)
	}
	var ckpts, segs atomic.Int32
	fsys := vfs.NewFaulty(osfs, func(op vfs.Op) error {
		if op.Kind == vfs.OpRename {
			switch {
			case strings.HasSuffix(op.NewName, segment.CheckpointExt):
				ckpts.Add(1)
			case strings.HasSuffix(op.NewName, segment.Ext):
				segs.Add(1)
			}
		}
		return nil
	})
	l, err := openFS(fsys, Options{Sync: SyncAlways, SegmentSize: MinSegmentSize}, false)
	if err != nil {
		fail("open", err)
	}
	out := bufio.NewWriter(os.Stdout)
	in := bufio.NewScanner(os.Stdin)
	ctx := context.Background()
	batches := rollProcBatches()
	for i, b := range batches {
		if i%rollProcStep == 0 {
			if i > 0 {
				fmt.Fprintf(out, "stepped %d\n", l.LastSeq())
				out.Flush()
			}
			if !in.Scan() {
				fail("step", errors.New("stdin ended before the last step"))
			}
			if i%(rollProcStep*3) == rollProcStep {
				if err := l.Close(); err != nil {
					fail("close", err)
				}
				if l, err = openFS(fsys, Options{Sync: SyncAlways, SegmentSize: MinSegmentSize}, false); err != nil {
					fail("reopen", err)
				}
			}
		}
		var evs []Envelope
		for n := b.first; n <= b.last; n++ {
			evs = append(evs, Envelope{Type: "e", Data: rollProcData(n)})
		}
		pos, err := l.Append(ctx, b.stream, ExpectAny, evs...)
		if err != nil {
			fail(fmt.Sprintf("append of seqs %d..%d", b.first, b.last), err)
		}
		if pos.Seq != b.last {
			fail("append", fmt.Errorf("acknowledged seq %d, want %d", pos.Seq, b.last))
		}
		fmt.Fprintf(out, "acked %d\n", b.last)
		out.Flush()
	}
	fmt.Fprintf(out, "done %d %d %d\n", l.LastSeq(), ckpts.Load(), segs.Load())
	out.Flush()
	io.Copy(io.Discard, os.Stdin)
	if err := l.Close(); err != nil {
		fail("close", err)
	}
	if err := osfs.Close(); err != nil {
		fail("closing the directory", err)
	}
	os.Exit(0)
}

// servesAcked checks that l serves seqs 1..LastSeq in order, each as the
// writer process appended it, and at least up to acked, and serves each
// stream's events among them, and no others, in version order.
func servesAcked(ctx context.Context, l *Log, acked uint64) error {
	streams := make(map[uint64]string, rollProcEvents)
	for _, b := range rollProcBatches() {
		for n := b.first; n <= b.last; n++ {
			streams[n] = b.stream
		}
	}
	want := uint64(1)
	for e, err := range l.Events(ctx, 1) {
		if err != nil {
			return fmt.Errorf("reading on from seq %d: %w", want, err)
		}
		if e.Seq != want {
			return fmt.Errorf("served seq %d, want %d", e.Seq, want)
		}
		if e.Stream != streams[e.Seq] || !bytes.Equal(e.Data, rollProcData(e.Seq)) {
			return fmt.Errorf("seq %d: stream %q, payload %q; the writer appended %q, %q", e.Seq, e.Stream, e.Data, streams[e.Seq], rollProcData(e.Seq))
		}
		want++
	}
	last := want - 1
	if last < acked || last != l.LastSeq() {
		return fmt.Errorf("served seqs 1..%d (LastSeq %d); the writer had acknowledged %d", last, l.LastSeq(), acked)
	}
	// And through the stream index (a checkpoint's, for the newest
	// segment, when the open or Refresh took one): each stream's events
	// up to last, in version order.
	for i := range 5 {
		stream := fmt.Sprintf("s-%d", i)
		var wantSeqs, gotSeqs []uint64
		for n := uint64(1); n <= last; n++ {
			if streams[n] == stream {
				wantSeqs = append(wantSeqs, n)
			}
		}
		for e, err := range l.Stream(ctx, stream, 1) {
			if err != nil {
				return fmt.Errorf("reading stream %s: %w", stream, err)
			}
			if e.Version != uint64(len(gotSeqs))+1 || !bytes.Equal(e.Data, rollProcData(e.Seq)) {
				return fmt.Errorf("stream %s: version %d is seq %d, payload %q; want version %d, payload %q", stream, e.Version, e.Seq, e.Data, len(gotSeqs)+1, rollProcData(e.Seq))
			}
			gotSeqs = append(gotSeqs, e.Seq)
		}
		if diff := cmp.Diff(wantSeqs, gotSeqs); diff != "" {
			return fmt.Errorf("stream %s of the log served up to seq %d: its seqs differ (-want +got):\n%s", stream, last, diff)
		}
	}
	return nil
}

// TestReadersBesideRollingWriterProcess: read-only paths never fail on a
// state a live writer passes through. A writer process appends with the
// smallest segments under SyncAlways, so it rolls (a new segment
// created, the old one sealed, its checkpoint removed) and writes
// interval checkpoints (checkpointInterval: half a segment) all the
// time, and reports each acknowledged seq; now and then it closes the
// log and opens it again (a final checkpoint, then Open's recovery and
// clean-up beside the readers). It goes in steps of half a segment,
// each started by this process, which, while the step runs, reads
// beside it (a round):
//   - a fresh OpenReadOnly, which must serve 1..LastSeq, each event as
//     written and each stream through its index, with LastSeq at least
//     what the writer had acknowledged when the open began;
//   - Refresh of a read-only log opened at the start, the same;
//   - Verify of the directory: no corruption, LastSeq at least what was
//     acknowledged when it began (a torn tail is a live writer's state).
//
// and waits for the step's end before it starts the next, so that the
// writer never runs far ahead of the reads (Refresh meets the newest
// segment grown, and rolled, and both). Each round begins with a few
// opens and Refreshes alone (rollProcQuick), checking LastSeq only:
// most instants of a roll are short.
//
// How the reads interleave with the writer's operations is up to the
// scheduler; what each must find is not. The writer's own counts say it
// did roll and checkpoint (else the test tests nothing).
func TestReadersBesideRollingWriterProcess(t *testing.T) {
	if dir := os.Getenv(rollChildEnv); dir != "" {
		rollChild(dir)
	}
	if testing.Short() {
		t.Skip("starts processes")
	}
	ctx, cancel := guarded(t.Context())
	defer cancel()
	dir := t.TempDir()
	c := startChild(t, "TestReadersBesideRollingWriterProcess", rollChildEnv+"="+dir)
	cmd, steps, out, stderr := c.cmd, c.stdin, c.stdout, c.stderr
	var (
		acked   atomic.Uint64          // the writer's last acknowledged seq
		lines   = make(chan string, 1) // its other lines: "stepped …", "done …", or trouble
		outDone = make(chan struct{})  // stdout read to its end
		done    = make(chan struct{})  // the writer is done (or stopped)
		endOnce sync.Once
	)
	end := func() { endOnce.Do(func() { close(done) }) }
	go func() {
		defer close(outDone)
		defer end()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var n uint64
			if _, err := fmt.Sscanf(sc.Text(), "acked %d", &n); err == nil {
				acked.Store(n)
				continue
			}
			if !strings.HasPrefix(sc.Text(), "stepped ") {
				end()
			}
			lines <- sc.Text() // read by the test before the next step
		}
	}()
	// stop ends the writer process (kill: it may be anywhere) and returns
	// its exit error, once all of its stdout is read; again, the same.
	var (
		stopped bool
		waitErr error
	)
	stop := func(kill bool) error {
		if stopped {
			return waitErr
		}
		stopped = true
		steps.Close()
		if kill {
			cmd.Process.Kill()
		}
		for {
			select {
			case <-lines:
			case <-outDone:
				waitErr = cmd.Wait()
				return waitErr
			}
		}
	}
	fatal := func(format string, args ...any) {
		t.Helper()
		werr := stop(true)
		t.Fatalf(format+"\nthe writer process: %v\n%s", append(args, werr, stderr.String())...)
	}

	ro, err := OpenReadOnly(dir, Options{})
	if err != nil {
		fatal("read-only open beside the writer process: %v", err)
	}
	defer ro.Close()
	quick, err := OpenReadOnly(dir, Options{})
	if err != nil {
		fatal("read-only open beside the writer process: %v", err)
	}
	defer quick.Close()
	round := func(step int) {
		t.Helper()
		// First a few opens and Refreshes alone, quick to go through
		// the short instants of a roll.
		for range rollProcQuick {
			before := acked.Load()
			l, err := OpenReadOnly(dir, Options{})
			if err != nil {
				fatal("step %d: read-only open (acknowledged: %d): %v", step, before, err)
			}
			last := l.LastSeq()
			if err := l.Close(); err != nil {
				fatal("step %d: closing a read-only log: %v", step, err)
			}
			if last < before {
				fatal("step %d: a read-only open serves up to seq %d; the writer had acknowledged %d", step, last, before)
			}
			before = acked.Load()
			if err := quick.Refresh(); err != nil {
				fatal("step %d: Refresh (acknowledged: %d): %v", step, before, err)
			}
			if last := quick.LastSeq(); last < before {
				fatal("step %d: after Refresh a read-only log serves up to seq %d; the writer had acknowledged %d", step, last, before)
			}
		}
		// Then everything they serve.
		before := acked.Load()
		l, err := OpenReadOnly(dir, Options{})
		if err != nil {
			fatal("step %d: read-only open (acknowledged: %d): %v", step, before, err)
		}
		err = servesAcked(ctx, l, before)
		if cerr := l.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			fatal("step %d: read-only open: %v", step, err)
		}

		before = acked.Load()
		if err := ro.Refresh(); err != nil {
			fatal("step %d: Refresh (acknowledged: %d): %v", step, before, err)
		}
		if err := servesAcked(ctx, ro, before); err != nil {
			fatal("step %d: after Refresh: %v", step, err)
		}

		before = acked.Load()
		rep, err := Verify(ctx, dir)
		if err != nil || rep.Corrupt() || rep.LastSeq < before {
			fatal("step %d: Verify beside the writer process (acknowledged: %d): %v; findings %v, LastSeq %d", step, before, err, rep.Findings, rep.LastSeq)
		}
	}
	var last string // the writer's last line
	for step := 0; !strings.HasPrefix(last, "done "); step++ {
		if _, err := io.WriteString(steps, "go\n"); err != nil {
			fatal("step %d: starting it: %v", step, err)
		}
		round(step)
		select {
		case last = <-lines:
		case <-ctx.Done():
			fatal("step %d: waiting for its end: %v", step, hungErr(ctx, ctx.Err()))
		}
		if !strings.HasPrefix(last, "stepped ") && !strings.HasPrefix(last, "done ") {
			fatal("step %d: the writer process said %q", step, last)
		}
	}
	round(-1) // the writer idle, done (step -1; closed: -2)
	var n uint64
	var ckpts, segs int
	if _, err := fmt.Sscanf(last, "done %d %d %d", &n, &ckpts, &segs); err != nil || n != rollProcEvents {
		fatal("the writer process ended with %q, want \"done %d CKPTS SEGS\"", last, rollProcEvents)
	}
	if ckpts < 10 || segs < 10 {
		fatal("the writer process wrote %d checkpoints and created %d segments; want 10 of each at least: the test does not test what it claims", ckpts, segs)
	}
	if err := stop(false); err != nil {
		t.Fatalf("the writer process: %v\n%s", err, stderr.String())
	}
	// Closed (a last checkpoint, the last marks): the log is whole and
	// clean to a new reader and to the refreshed one alike.
	round(-2)
	if rep, err := Verify(ctx, dir); err != nil || len(rep.Findings) > 0 || rep.LastSeq != rollProcEvents {
		t.Fatalf("Verify of the closed log: %v; findings %v, LastSeq %d, want none and %d", err, rep.Findings, rep.LastSeq, rollProcEvents)
	}
	t.Logf("%d checkpoints, %d segments", ckpts, segs)
}
