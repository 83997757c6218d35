package evlogcli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/evlog/evlog"
)

const deleteAbout = `
Deletes the stream STREAM of the log in DIR. Without options it is a soft
delete: the stream's events up to its current version read as gone, and
the stream may be written again from its next version. With --before N
only its versions below N read as gone (a truncation). With --hard it is
tombstoned: every event reads as gone and appends to it fail for good.

The deletion is an event appended to the system stream $$deletions, made
durable like any append; every reader (dump, streams, subscriptions,
replays, projections) honours it at once, and snapshots and projection
checkpoints from before it are passed over. The payloads stay on disk
until the next compaction of the sealed segments holding them (compact),
which rewrites the deleted events as placeholders without payload and
shrinks the directory; run compact after delete to remove them.

delete takes the log's writer lock, so it fails with "locked" while
another process writes the log (that process can delete itself). On a
terminal (standard input), delete asks for --yes before it changes
anything. It prints what it did; evlogctl streams shows deleted and
truncated streams.`

// deleteCmd is "evlogctl delete".
type deleteCmd struct {
	hard   bool
	before uint64
	yes    bool
	format string
}

// deleteResult is delete's JSON document.
type deleteResult struct {
	Stream    string `json:"stream"`
	Kind      string `json:"kind"`                 // "deleted", "truncated" or "tombstoned"
	Before    uint64 `json:"before,omitempty"`     // versions below it read as gone
	MarkerSeq uint64 `json:"marker_seq,omitempty"` // 0: nothing to delete
}

func runDelete(ctx context.Context, e *env, args []string) error {
	var c deleteCmd
	f := newFlags("delete", "delete DIR STREAM [--hard | --before N] [--yes] [--format text|json]", deleteAbout)
	f.BoolVar(&c.hard, "hard", false, "tombstone the stream: it reads as empty and can never be written again")
	f.Uint64Var(&c.before, "before", 0, "delete only the versions below `N` (a truncation)")
	f.BoolVar(&c.yes, "yes", false, "delete without asking (needed when standard input is a terminal)")
	f.format(&c.format, "text", "json")
	pos, err := f.parse(e, args, "DIR", "STREAM")
	if err != nil {
		return err
	}
	if c.hard && f.isSet("before") {
		return usagef("delete", "--hard deletes every version: give --hard or --before, not both")
	}
	if f.isSet("before") && c.before == 0 {
		return usagef("delete", "--before 0: give the first version to keep (1 or more)")
	}
	if !c.yes && isTerminal(e.stdin) {
		return usagef("delete", "delete makes events of the log read as gone: run it with --yes")
	}
	return fail("delete", c.run(ctx, e, pos[0], pos[1]))
}

func (c *deleteCmd) run(ctx context.Context, e *env, dir, stream string) error {
	l, err := openExisting(e, "delete", dir)
	if err != nil {
		return err
	}
	out := deleteResult{Stream: stream}
	var pos evlog.Position
	switch {
	case c.hard:
		out.Kind = "tombstoned"
		pos, err = l.TombstoneStream(ctx, stream)
	case c.before != 0:
		out.Kind, out.Before = "truncated", c.before
		pos, err = l.TruncateStream(ctx, stream, c.before)
	default:
		var v uint64
		out.Kind = "deleted"
		pos, v, err = l.DeleteStream(ctx, stream)
		if v > 0 {
			out.Before = v + 1
		}
	}
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	out.MarkerSeq = pos.Seq
	if c.format == "json" {
		return writeJSON(e.stdout, out)
	}
	var b []byte
	switch {
	case pos.Seq == 0:
		b = fmt.Appendf(nil, "stream %s has no events: nothing deleted\n", appendWord(nil, stream))
	case out.Kind == "tombstoned":
		b = fmt.Appendf(nil, "tombstoned %s (marker at seq %d)\n", appendWord(nil, stream), pos.Seq)
	default:
		b = fmt.Appendf(nil, "%s %s: versions below %d read as gone (marker at seq %d)\n", out.Kind, appendWord(nil, stream), out.Before, pos.Seq)
	}
	if pos.Seq != 0 {
		b = append(b, "run compact to remove their payloads from the disk\n"...)
	}
	_, err = e.stdout.Write(b)
	return err
}

// deletedJSON is one entry of streams' "deleted" list.
type deletedJSON struct {
	Stream    string `json:"stream"`
	State     string `json:"state"` // "deleted", "truncated" or "tombstoned"
	Before    uint64 `json:"before,omitempty"`
	MarkerSeq uint64 `json:"marker_seq"`
}

// listDeleted returns the deletion state of the streams starting with
// prefix (for streams).
func listDeleted(ctx context.Context, l *evlog.Log, prefix string) ([]deletedJSON, error) {
	dels, err := l.Deletions(ctx)
	if err != nil {
		return nil, err
	}
	var out []deletedJSON
	for _, d := range dels {
		if !strings.HasPrefix(d.Stream, prefix) {
			continue
		}
		state := "truncated"
		switch {
		case d.Tombstoned:
			state = "tombstoned"
		case d.Kind == evlog.TypeDeleted:
			state = "deleted"
		}
		out = append(out, deletedJSON{Stream: d.Stream, State: state, Before: d.Before, MarkerSeq: d.Seq})
	}
	return out, nil
}

// appendDeletedTable appends streams' text table of deleted streams.
func appendDeletedTable(b *strings.Builder, dels []deletedJSON) {
	if len(dels) == 0 {
		return
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DELETED STREAM\tSTATE\tGONE BELOW\tMARKER SEQ")
	for _, d := range dels {
		before := "all"
		if !(d.State == "tombstoned") {
			before = fmt.Sprint(d.Before)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", appendWord(nil, d.Stream), d.State, before, d.MarkerSeq)
	}
	tw.Flush()
}
