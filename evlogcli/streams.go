package evlogcli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/evlog/evlog"
)

const streamsAbout = `
Lists the streams of the log in DIR whose names start with --prefix (all
by default), in name order: each stream's version (its number of events),
the seqs of its first and last events and the recorded time of its last.

It reads the segments' stream indexes (the sealed segments' footers, the
newest segment's index) and two event frames per stream, never the whole
log. It only reads: it never modifies, creates or locks anything.

Streams whose events all read as gone (evlogctl delete; tombstoned) are not
listed among them; a second table (JSON: "deleted") lists every deleted,
truncated or tombstoned stream with the version below which its events
read as gone and the seq of its deletion marker, and JSON gives a
truncated stream's "truncated_before". The system stream $$deletions
holding the markers is listed like any stream.`

// streamsCmd is "evlogctl streams".
type streamsCmd struct {
	prefix string
	format string
}

// streamsResult is streams' JSON document.
type streamsResult struct {
	Streams []streamJSON  `json:"streams"`
	Deleted []deletedJSON `json:"deleted,omitempty"` // delete.go
}

type streamJSON struct {
	Stream   string `json:"stream"`
	Version  uint64 `json:"version"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
	LastTime string `json:"last_time"`
	// TruncatedBefore: its versions below it read as gone (delete.go).
	TruncatedBefore uint64 `json:"truncated_before,omitempty"`
}

func runStreams(ctx context.Context, e *env, args []string) error {
	var c streamsCmd
	f := newFlags("streams", "streams DIR [--prefix P] [--format text|json]", streamsAbout)
	f.StringVar(&c.prefix, "prefix", "", "list only the streams whose names start with `P`")
	f.format(&c.format, "text", "json")
	pos, err := f.parse(e, args, "DIR")
	if err != nil {
		return err
	}
	return fail("streams", c.run(ctx, e, pos[0]))
}

func (c *streamsCmd) run(ctx context.Context, e *env, dir string) error {
	l, err := evlog.OpenReadOnly(dir, evlog.Options{})
	if err != nil {
		return err
	}
	defer l.Close()
	out := streamsResult{Streams: []streamJSON{}}
	for si, err := range l.Streams(ctx, c.prefix) {
		if err != nil {
			return err
		}
		out.Streams = append(out.Streams, streamJSON{Stream: si.Stream, Version: si.Version, FirstSeq: si.FirstSeq, LastSeq: si.LastSeq, LastTime: formatTime(si.LastTime), TruncatedBefore: si.TruncatedBefore})
	}
	if out.Deleted, err = listDeleted(ctx, l, c.prefix); err != nil {
		return err
	}
	if c.format == "json" {
		return writeJSON(e.stdout, out)
	}
	var b strings.Builder
	if len(out.Streams) == 0 {
		if c.prefix != "" {
			fmt.Fprintf(&b, "no streams starting with %s\n", appendWord(nil, c.prefix))
		} else {
			b.WriteString("no streams\n")
		}
	} else {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "STREAM\tVERSION\tFIRST SEQ\tLAST SEQ\tLAST TIME")
		for _, s := range out.Streams {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", appendWord(nil, s.Stream), s.Version, s.FirstSeq, s.LastSeq, s.LastTime)
		}
		tw.Flush()
	}
	appendDeletedTable(&b, out.Deleted)
	_, err = e.stdout.Write([]byte(b.String()))
	return err
}
