package evlogcli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

// besideWriterEnv makes the test binary act as the writer process of
// TestReadOnlyCommandsBesideWriterProcess: EVLOGCTL_BESIDE_WRITER=DIR,
// the number of steps in argv[1].
const besideWriterEnv = "EVLOGCTL_BESIDE_WRITER"

// besideWriter is a writer process that goes, one step at a time, through
// every operation a writer does to its directory: appends rolling tiny
// segments, stats snapshots saved and pruned, a durable subscription's
// acknowledgements, a stream deleted (a deletion marker), a category under
// Options.Retention whose MaxCount expires events the stats snapshots
// folded, and compactions (plain and compressed) that redact what reads as
// gone. Before each step it waits for a line on stdin (the
// barrier: EOF ends it); after each step it prints "paused STEP SEQ" and
// does nothing until the next line. Returns the exit status.
func besideWriter(dir string, steps int) int {
	fail := func(what string, err error) int {
		fmt.Fprintf(os.Stderr, "beside writer: %s: %v\n", what, err)
		return 1
	}
	l, err := evlog.Open(dir, evlog.Options{
		SegmentSize: evlog.MinSegmentSize,
		// Recorded in the log (docs/FORMAT.md, "Deletion and
		// retention"), so the reader processes hide what this writer
		// hides. Each step appends 16 events to each of r-0 and r-1, so
		// from step 2 on (48 > 40) events the stats snapshots folded
		// expire (verify --replay passes over those snapshots, with a
		// warning). Not before: the deletion of step 1 makes the stats
		// snapshot of step 0 stale while the readers run, and had an
		// event it folded expired by then, the log's stats history
		// would be lost (state fails with ErrHistoryLost, rightly).
		Retention: map[string]evlog.Retention{"r": {MaxCount: 40}},
	})
	if err != nil {
		return fail("open", err)
	}
	store, err := l.Snapshots()
	if err != nil {
		return fail("snapshots", err)
	}
	sub, err := l.Subscription("beside", evlog.Filter{})
	if err != nil {
		return fail("subscription", err)
	}
	ctx := context.Background()
	in := bufio.NewScanner(os.Stdin)
	pad := strings.Repeat("p", 50)
	var n uint64
	for step := range steps {
		if !in.Scan() {
			return fail("barrier", errors.New("stdin closed before the last step"))
		}
		var last evlog.Position
		for b := range 24 {
			var evs []evlog.Envelope
			for range 4 {
				n++
				evs = append(evs, evlog.Envelope{Type: "tick", Data: loadData(nil, n, pad)})
			}
			stream := fmt.Sprintf("s-%d", b%6)
			if b%3 == 0 {
				stream = fmt.Sprintf("r-%d", b%2) // under Retention: older versions read as gone
			}
			if last, err = l.Append(ctx, stream, evlog.ExpectAny, evs...); err != nil {
				return fail("append", err)
			}
		}
		if err := sub.Ack(ctx, last.Seq); err != nil {
			return fail("ack", err)
		}
		// The deletion before the step's stats snapshot, which is then
		// not stale while the writer pauses.
		if step%3 == 1 {
			if _, _, err := l.DeleteStream(ctx, fmt.Sprintf("s-%d", step%6)); err != nil {
				return fail("delete stream", err)
			}
		}
		res, err := replay.State(ctx, l, store, statsSubject, replay.Latest(), statsSpec, replay.Options{})
		if err != nil {
			return fail("stats", err)
		}
		if _, _, err := replay.Save(ctx, store, l.LogID(), statsSubject, statsSpec, res); err != nil && !errors.Is(err, snapshot.ErrExists) {
			return fail("save snapshot", err)
		}
		if _, err := store.Prune(ctx, statsSubject.Name, snapshot.PrunePolicy{KeepLast: 2}); err != nil {
			return fail("prune snapshots", err)
		}
		if step%2 == 1 {
			if _, err := l.Compact(ctx, evlog.CompactOptions{TargetSize: 32 << 10, Compress: step%4 == 3}); err != nil {
				return fail("compact", err)
			}
		}
		fmt.Printf("paused %d %d\n", step, l.LastSeq())
	}
	if err := l.Close(); err != nil {
		return fail("close", err)
	}
	return 0
}
