package evlogcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/aggregate"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/examples/inventory"
	"github.com/evlog/evlog/projection"
	"github.com/evlog/evlog/replay"
)

const demoAbout = `
Runs the inventory example (package examples/inventory) end to end: appends
a day of item_added / item_removed events to one inventory (the stream
inventory-alice: category "inventory", id "alice") through one typed view
over the inventory's event registry, which stamps each event's type and
schema version (2) from its Go type, and, beside them, a
wallet with the same id (wallet-alice, another aggregate type's category),
with past recorded times set explicitly (the first ones in the version 1 payload
format, read through an upcaster), has the inventory's repository take a
snapshot every --snapshot-every events (it keeps them by its default
tiered retention: every snapshot of the last hour, one per hour for a day,
one per day for 90 days), then prints the inventory now and at 3pm
yesterday, the most collected items, the items' origins, the items added
and removed most often, the audit trail of one item, how the 3pm answer was
computed (snapshot used, events applied, time with and without the
snapshot), how each category was read (Log.Category, through the streams'
indexes, against a scan of the whole log), and undoes the last action with
a compensating event. The projections fold the "inventory" category only.

The log lives in a temporary directory removed at the end, unless --dir
is given (then it is kept, and must be empty or new).`

type demoCmd struct {
	dir           string
	events        int
	legacy        int
	snapshotEvery int
	seed          uint64
	format        string
}

func runDemo(ctx context.Context, e *env, args []string) error {
	var c demoCmd
	f := newFlags("demo", "demo [--dir DIR] [--events N] [--format text|json]", demoAbout)
	f.StringVar(&c.dir, "dir", "", "keep the log in `DIR` (new or empty) instead of a temporary directory")
	f.IntVar(&c.events, "events", 200_000, "number of events to append (at least 1,000)")
	f.IntVar(&c.legacy, "legacy", 1_000, "how many of the first events use the version 1 payload")
	f.IntVar(&c.snapshotEvery, "snapshot-every", 20_000, "snapshot the inventory every `N` events")
	f.Uint64Var(&c.seed, "seed", 1, "seed of the generated events")
	f.format(&c.format, "text", "json")
	if _, err := f.parse(e, args); err != nil {
		return err
	}
	switch {
	case c.events < 1_000:
		return usagef("demo", "--events %d: use at least 1000", c.events)
	case c.snapshotEvery < 100:
		return usagef("demo", "--snapshot-every %d: use at least 100", c.snapshotEvery)
	case c.legacy < 0 || c.legacy > c.events:
		return usagef("demo", "--legacy %d: use 0 to --events", c.legacy)
	}
	dir := c.dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "evlog-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if names, err := os.ReadDir(dir); err == nil && len(names) > 0 {
		return fmt.Errorf("demo: %s is not empty: give a new or empty directory", dir)
	}
	rep, err := c.run(ctx, e, dir)
	if err != nil {
		return err
	}
	rep.Dir, rep.Kept = dir, c.dir != ""
	if c.format == "json" {
		return writeJSON(e.stdout, rep)
	}
	return rep.text(e.stdout)
}

// demoReport is everything the demo shows (its JSON document).
type demoReport struct {
	Dir        string              `json:"dir"`
	Kept       bool                `json:"kept"`
	Inventory  string              `json:"inventory"`
	Events     int                 `json:"events"`
	Legacy     int                 `json:"legacy_events"`
	From       string              `json:"from"`
	To         string              `json:"to"`
	AppendMS   float64             `json:"append_ms"`
	Snapshots  int                 `json:"snapshots"`      // taken by the repository
	SnapsKept  int                 `json:"snapshots_kept"` // left by its retention
	Now        []inventory.Stack   `json:"now"`
	At         string              `json:"at"`
	AtState    []inventory.Stack   `json:"at_state"`
	How        demoHow             `json:"how"`
	Collected  []inventory.Stack   `json:"most_collected"`
	Origins    map[string][]string `json:"origins"`
	Churn      []inventory.Churn   `json:"most_added_and_removed"`
	TrailItem  string              `json:"trail_item"`
	Trail      []demoTrailEntry    `json:"trail"`
	TrailTotal int                 `json:"trail_total"`
	Undo       demoTrailEntry      `json:"undo"`
	UndoSeq    uint64              `json:"undo_seq"`
	Categories []demoCategory      `json:"categories"`
	Types      []demoType          `json:"event_types"`
	Refused    string              `json:"refused_append"` // an append at the old schema version
	ScanMS     float64             `json:"full_scan_ms"`
}

// demoType is an event type of the inventory's registry.
type demoType struct {
	Name          string `json:"name"`
	SchemaVersion uint32 `json:"schema_version"`
	GoType        string `json:"go_type"`
}

// demoCategory is how one category was read.
type demoCategory struct {
	Name    string   `json:"name"`
	Streams []string `json:"streams"`
	Events  int      `json:"events"`
	MS      float64  `json:"ms"`
}

type demoHow struct {
	Snapshot       *planSnapshotJSON `json:"snapshot"`
	FromSeq        uint64            `json:"from_seq"`
	ToSeq          uint64            `json:"to_seq"`
	Applied        int               `json:"events_applied"`
	WithMS         float64           `json:"with_snapshot_ms"`
	WithoutMS      float64           `json:"without_snapshot_ms"`
	WithoutApplied int               `json:"without_snapshot_events_applied"`
}

type demoTrailEntry struct {
	Seq    uint64 `json:"seq"`
	Time   string `json:"time"`
	Type   string `json:"type"`
	Item   string `json:"item"`
	Rarity string `json:"rarity,omitempty"`
	Origin string `json:"origin,omitempty"`
}

// demoID is the id of the demo's inventory (stream inventory-alice) and
// of its wallet (stream wallet-alice).
const demoID = "alice"

// demoWallet is the wallet's category: an aggregate type other than the
// inventory, with instances of the same ids.
const demoWallet = "wallet"

func (c *demoCmd) run(ctx context.Context, e *env, dir string) (*demoReport, error) {
	now := e.now().UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -1)
	log, err := evlog.Open(dir, evlog.Options{Clock: e.now})
	if err != nil {
		return nil, err
	}
	defer log.Close()
	rep := &demoReport{Inventory: inventory.Stream(demoID), Events: c.events, Legacy: c.legacy}
	wallet := event.StreamName(demoWallet, demoID)

	// The inventory's repository, whose snapshots serve the time queries.
	// Its retention tiers measure ages on the demo's clock.
	inv, err := inventory.Open(log, demoID, aggregate.Options{Clock: e.now})
	if err != nil {
		return nil, err
	}
	defer inv.Close()
	repo := inv.Repository()
	subj := repo.Subject(demoID)

	// A day of events, in atomic, fsynced batches of up to 1,000, each
	// --snapshot-every events followed by a snapshot the repository takes
	// (and prunes by its retention policy).
	events := inventory.Generate(c.seed, c.events, c.legacy, day, 24*time.Hour)
	rep.From, rep.To = formatTime(events[0].Time), formatTime(events[len(events)-1].Time)
	// One typed view over the inventory's registry: each event's type and
	// schema version are stamped from its Go type (Added, Removed).
	reg := inventory.Registry()
	typed := evlog.Typed[inventory.Change](log, evlog.WithRegistry(reg))
	start := time.Now()
	cur := make([]inventory.Event, 0, 1000)
	for lo, nextSnap := 0, c.snapshotEvery; lo < len(events); {
		hi := min(lo+1000, len(events), nextSnap)
		batch := events[lo:hi]
		cur = cur[:0]
		for _, ev := range batch {
			ev.SchemaVersion = 0 // stamped (the legacy ones are replaced below)
			cur = append(cur, ev)
		}
		req, err := typed.Request(inventory.Stream(demoID), evlog.ExpectAny, cur...)
		if err != nil {
			return nil, err
		}
		for i, ev := range batch {
			if ev.SchemaVersion == 1 { // written by the first version: a bare name
				old, err := evlog.Encode(evlog.Event[string]{Type: ev.Type, SchemaVersion: 1, Time: ev.Time, Data: ev.Data.Item().Name})
				if err != nil {
					return nil, err
				}
				req.Events[i] = old
			}
		}
		// The wallet of the same id: credited once per batch.
		credit, err := evlog.Encode(evlog.Event[int]{Type: "credited", Time: batch[len(batch)-1].Time, Data: 10})
		if err != nil {
			return nil, err
		}
		walletReq := evlog.AppendRequest{Stream: wallet, Expect: evlog.ExpectAny, Events: []evlog.Envelope{credit}}
		if _, err := log.AppendBatch(ctx, []evlog.AppendRequest{req, walletReq}); err != nil {
			return nil, err
		}
		if lo = hi; hi == nextSnap {
			if err := repo.Snapshot(ctx, demoID); err != nil {
				return nil, err
			}
			rep.Snapshots++
			nextSnap += c.snapshotEvery
		}
	}
	rep.AppendMS = ms(time.Since(start))
	for _, t := range reg.Types() {
		rep.Types = append(rep.Types, demoType{Name: t.Name, SchemaVersion: t.SchemaVersion, GoType: t.GoType.String()})
	}
	// An append at the old schema version through the view is refused
	// (nothing written): readers would upcast the current shape as if it
	// were the old one.
	_, err = typed.Append(ctx, inventory.Stream(demoID), evlog.ExpectAny,
		inventory.Event{SchemaVersion: 1, Data: inventory.Added{Name: "sword"}})
	if !errors.Is(err, evlog.ErrSchemaVersion) {
		return nil, fmt.Errorf("demo: an append at schema version 1 was not refused: %v", err)
	}
	rep.Refused = err.Error()
	snaps, err := log.Snapshots()
	if err != nil {
		return nil, err
	}
	kept, err := snaps.List(subj.Name)
	if err != nil {
		return nil, err
	}
	rep.SnapsKept = len(kept)
	codec := evlog.CodecFor[inventory.Change](reg)
	spec := replay.Spec[inventory.State, inventory.Event]{Init: inventory.Definition.New, Decode: codec.Decode, Fold: inventory.Definition.Apply}

	if rep.Now, err = inv.Items(ctx); err != nil {
		return nil, err
	}
	at := day.Add(15 * time.Hour)
	rep.At = formatTime(at)
	res, err := inv.At(ctx, at)
	if err != nil {
		return nil, err
	}
	rep.AtState = res.State.Items()
	full, err := replay.State(ctx, log, snaps, subj, replay.AtTime(at), spec, replay.Options{NoSnapshot: true})
	if err != nil {
		return nil, err
	}
	if !slices.Equal(rep.AtState, full.State.Items()) {
		return nil, errors.New("demo: the state at 3pm differs with and without the snapshot")
	}
	rep.How = demoHow{FromSeq: res.Plan.FromSeq, ToSeq: res.Plan.ToSeq, Applied: res.Applied,
		WithMS: ms(res.Elapsed), WithoutMS: ms(full.Elapsed), WithoutApplied: full.Applied}
	if s := res.Plan.Snapshot; s != nil {
		rep.How.Snapshot = &planSnapshotJSON{File: s.File, Seq: s.Seq, Time: formatTime(s.Time)}
	}

	// The categories, each read through the streams' indexes, against one
	// scan of the whole log.
	for _, name := range []string{inventory.Category, demoWallet} {
		dc := demoCategory{Name: name}
		t0 := time.Now()
		for env, err := range log.Category(ctx, name, 1) {
			if err != nil {
				return nil, err
			}
			if !slices.Contains(dc.Streams, env.Stream) {
				dc.Streams = append(dc.Streams, env.Stream)
			}
			dc.Events++
		}
		dc.MS = ms(time.Since(t0))
		rep.Categories = append(rep.Categories, dc)
	}
	t0 := time.Now()
	for _, err := range log.Events(ctx, 1) {
		if err != nil {
			return nil, err
		}
	}
	rep.ScanMS = ms(time.Since(t0))

	// The projections, in one pass over the inventories' events (the
	// wallet's are another type's).
	collected, origins, churn := projection.Start(inventory.MostCollected), projection.Start(inventory.Origins), projection.Start(inventory.Turnover)
	if err := projection.FeedAll(projection.Map(log.Category(ctx, inventory.Category, 1), codec.Decode), collected, origins, churn); err != nil {
		return nil, err
	}
	rep.Collected = inventory.TopN(collected.State(), 5)
	rep.Origins = map[string][]string{}
	for _, s := range rep.Collected {
		rep.Origins[s.Name] = inventory.OriginsOf(origins.State(), s.Name)
	}
	rep.Churn = inventory.MostChurned(churn.State(), 3)

	// The audit trail of the rarest item.
	rep.TrailItem = "dragon-egg"
	trail, err := inv.History(ctx, rep.TrailItem)
	if err != nil {
		return nil, err
	}
	rep.TrailTotal = len(trail)
	for _, t := range trail[max(0, len(trail)-8):] {
		rep.Trail = append(rep.Trail, trailEntry(t))
	}

	undone, err := inv.Undo(ctx)
	if err != nil {
		return nil, err
	}
	rep.Undo, rep.UndoSeq = trailEntry(undone), log.LastSeq()
	return rep, nil
}

func trailEntry(t inventory.Event) demoTrailEntry {
	it := t.Data.Item()
	return demoTrailEntry{Seq: t.Seq, Time: formatTime(t.Time), Type: t.Type, Item: it.Name, Rarity: it.Rarity, Origin: it.Origin}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (r *demoReport) text(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "evlog demo: inventory %q over one day of events\n", r.Inventory)
	if r.Kept {
		fmt.Fprintf(&b, "log: %s (kept)\n\n", r.Dir)
	} else {
		fmt.Fprintf(&b, "log: %s (temporary; keep it with --dir)\n\n", r.Dir)
	}
	fmt.Fprintf(&b, "Appended %d events recorded from %s to %s\n", r.Events, r.From, r.To)
	fmt.Fprintf(&b, "  (the first %d with the version 1 payload, a bare item name), in batches of 1000,\n", r.Legacy)
	fmt.Fprintf(&b, "  each fsynced before it was acknowledged: %.0f ms, %.0f events/s.\n", r.AppendMS, float64(r.Events)/(r.AppendMS/1000))
	fmt.Fprintf(&b, "The repository took %d snapshots of the inventory and, by its retention policy, kept %d.\n", r.Snapshots, r.SnapsKept)
	b.WriteString("Event types (one registry; each append stamped its type and version from the payload's Go type):\n")
	for _, t := range r.Types {
		fmt.Fprintf(&b, "  %s v%d (%s)\n", t.Name, t.SchemaVersion, t.GoType)
	}
	fmt.Fprintf(&b, "An append at schema version 1 through the view was refused, nothing written:\n  %s\n\n", r.Refused)

	stacks := func(title string, s []inventory.Stack) {
		fmt.Fprintf(&b, "%s\n", title)
		tw := tabwriter.NewWriter(&b, 2, 8, 2, ' ', tabwriter.AlignRight)
		for _, x := range s {
			fmt.Fprintf(tw, "  %s\t%d\t\n", x.Name, x.Count)
		}
		tw.Flush()
		b.WriteString("\n")
	}
	stacks("The inventory now:", r.Now)
	stacks(fmt.Sprintf("The inventory at 3pm yesterday (%s):", r.At), r.AtState)

	h := r.How
	b.WriteString("How the 3pm answer was computed:\n")
	if h.Snapshot != nil {
		fmt.Fprintf(&b, "  from snapshot %s (seq %d, recorded %s)\n", h.Snapshot.File, h.Snapshot.Seq, h.Snapshot.Time)
	} else {
		b.WriteString("  from the first event (no usable snapshot)\n")
	}
	fmt.Fprintf(&b, "  then applied %d events (seqs %d to %d)\n", h.Applied, h.FromSeq, h.ToSeq)
	speed := ""
	if h.WithMS > 0 {
		speed = fmt.Sprintf(", %.0fx faster", h.WithoutMS/h.WithMS)
	}
	fmt.Fprintf(&b, "  %.2f ms with the snapshot; %.2f ms replaying all %d events%s\n\n", h.WithMS, h.WithoutMS, h.WithoutApplied, speed)

	b.WriteString("Categories (Log.Category, through the streams' indexes):\n")
	for _, c := range r.Categories {
		fmt.Fprintf(&b, "  %s: %d events of %s in %.2f ms\n", c.Name, c.Events, strings.Join(c.Streams, ", "), c.MS)
	}
	fmt.Fprintf(&b, "  (a scan of the whole log takes %.2f ms)\n\n", r.ScanMS)

	stacks("Most collected items (times added):", r.Collected)
	b.WriteString("Where they came from:\n")
	for _, s := range r.Collected {
		fmt.Fprintf(&b, "  %s: %s\n", s.Name, strings.Join(r.Origins[s.Name], ", "))
	}
	b.WriteString("\nAdded and removed most often:\n")
	for _, c := range r.Churn {
		fmt.Fprintf(&b, "  %s: added %d, removed %d\n", c.Name, c.Added, c.Removed)
	}
	fmt.Fprintf(&b, "\nAudit trail of %s (%d events; the last %d):\n", r.TrailItem, r.TrailTotal, len(r.Trail))
	for _, t := range r.Trail {
		fmt.Fprintf(&b, "  seq %d  %s  %s  %s\n", t.Seq, t.Time, t.Type, describeItem(t))
	}
	fmt.Fprintf(&b, "\nUndo: reverted the last action by appending seq %d: %s %s (history is never rewritten).\n", r.UndoSeq, r.Undo.Type, r.Undo.Item)
	_, err := io.WriteString(w, b.String())
	return err
}

func describeItem(t demoTrailEntry) string {
	if t.Origin == "" {
		return t.Item
	}
	return fmt.Sprintf("%s (%s, from %s)", t.Item, t.Rarity, t.Origin)
}
