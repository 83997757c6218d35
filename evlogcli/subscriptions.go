package evlogcli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/evlog/evlog"
)

const subscriptionsAbout = `
Lists the durable subscriptions stored in DIR (their NAME.sub position
files): name, position (the last acknowledged seq), lag (events in the log
after the position, matching the subscription's filter or not), when the
position was last acknowledged, and the filter.

It only reads: it never modifies, creates or locks anything, and runs
beside a writer (it sees what the writer has committed). A damaged
position file is an error naming it (exit status 1). A position past the
log's last seq is listed with lag 0 and a warning on stderr: the writer
may have acknowledged events appended after this reader opened the log,
or a power loss may have left committed events no durable mark records
(the writer's open keeps them), or the log was restored to an earlier
point.`

// subscriptionsCmd is "evlogctl subscriptions".
type subscriptionsCmd struct {
	format string
}

// subscriptionsResult is subscriptions' JSON document.
type subscriptionsResult struct {
	LastSeq       uint64             `json:"last_seq"`
	Subscriptions []subscriptionJSON `json:"subscriptions"`
}

type subscriptionJSON struct {
	Name           string   `json:"name"`
	Position       uint64   `json:"position"`
	Lag            uint64   `json:"lag"`
	Updated        string   `json:"updated,omitempty"`
	Types          []string `json:"types,omitempty"`
	StreamPrefixes []string `json:"stream_prefixes,omitempty"`
	Categories     []string `json:"categories,omitempty"`
}

func runSubscriptions(ctx context.Context, e *env, args []string) error {
	var c subscriptionsCmd
	f := newFlags("subscriptions", "subscriptions DIR [--format text|json]", subscriptionsAbout)
	f.format(&c.format, "text", "json")
	pos, err := f.parse(e, args, "DIR")
	if err != nil {
		return err
	}
	return fail("subscriptions", c.run(ctx, e, pos[0]))
}

func (c *subscriptionsCmd) run(_ context.Context, e *env, dir string) error {
	l, err := evlog.OpenReadOnly(dir, evlog.Options{})
	if err != nil {
		return err
	}
	defer l.Close()
	infos, err := l.Subscriptions()
	if err != nil {
		return err
	}
	out := subscriptionsResult{LastSeq: l.LastSeq(), Subscriptions: []subscriptionJSON{}}
	for _, s := range infos {
		j := subscriptionJSON{Name: s.Name, Position: s.Position, Lag: s.Lag,
			Types: s.Filter.Types, StreamPrefixes: s.Filter.StreamPrefixes, Categories: s.Filter.Categories}
		if !s.Updated.IsZero() {
			j.Updated = formatTime(s.Updated)
		}
		out.Subscriptions = append(out.Subscriptions, j)
		if s.Position > out.LastSeq {
			// Not corruption: see subscriptionsAbout.
			fmt.Fprintf(e.stderr, "warning: subscription %q is at seq %d, past the last seq this reader serves (%d): "+
				"a writer is appending beside, or a power loss right after its Ack by an older evlog left its last events committed with no durable mark recording them (open the log with its writer, which keeps them), "+
				"or the log was restored to an earlier point (its writer then refuses the subscription: remove %s to start over)\n",
				s.Name, s.Position, out.LastSeq, s.Name+evlog.SubscriptionExt)
		}
	}
	if c.format == "json" {
		return writeJSON(e.stdout, out)
	}
	var b strings.Builder
	if len(out.Subscriptions) == 0 {
		b.WriteString("no subscriptions\n")
	} else {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tPOSITION\tLAG\tUPDATED\tFILTER")
		for _, s := range out.Subscriptions {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", s.Name, s.Position, s.Lag, s.Updated, describeFilter(s))
		}
		tw.Flush()
	}
	_, err = e.stdout.Write([]byte(b.String()))
	return err
}

// describeFilter renders a subscription's filter for the text listing.
func describeFilter(s subscriptionJSON) string {
	var parts []string
	if len(s.Categories) > 0 {
		parts = append(parts, "categories="+strings.Join(s.Categories, ","))
	}
	if len(s.StreamPrefixes) > 0 {
		parts = append(parts, "prefixes="+strings.Join(s.StreamPrefixes, ","))
	}
	if len(s.Types) > 0 {
		parts = append(parts, "types="+strings.Join(s.Types, ","))
	}
	if len(parts) == 0 {
		return "all"
	}
	return strings.Join(parts, " ")
}
