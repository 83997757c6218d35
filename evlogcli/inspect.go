package evlogcli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/snapshot"
)

const inspectAbout = `
Describes the log in DIR: its segments (file, first and last seq, first and
last recorded time, events, bytes, sealed or active, compressed), the torn
tail a writer would truncate, the retention the log records (which every
reader and compaction applies), and its snapshots (subject, seq, time, bytes,
compression ratio of the state), with totals. inspect only reads: it never
modifies, creates or locks anything.`

// inspectCmd is "evlogctl inspect".
type inspectCmd struct {
	format string
}

// inspectReport is inspect's JSON document.
type inspectReport struct {
	LogID     string            `json:"log_id"`
	Segments  []segmentJSON     `json:"segments"`
	TornTail  *tornTailJSON     `json:"torn_tail"`
	Retention *retentionJSON    `json:"retention"` // null: none recorded
	Snapshots []snapshotJSON    `json:"snapshots"`
	Totals    inspectTotalsJSON `json:"totals"`
}

type segmentJSON struct {
	File       string  `json:"file"`
	FirstSeq   uint64  `json:"first_seq"`
	LastSeq    uint64  `json:"last_seq"`
	FirstTime  *string `json:"first_time"` // null when the segment is empty
	LastTime   *string `json:"last_time"`
	Events     int     `json:"events"`
	Bytes      int64   `json:"bytes"`
	Sealed     bool    `json:"sealed"`
	Compressed bool    `json:"compressed"`
}

type tornTailJSON struct {
	File   string `json:"file"`
	Offset int64  `json:"offset"`
	Bytes  int64  `json:"bytes"`
	Reason string `json:"reason"`
}

// retentionJSON is the retention the log records (evlog.Log.RecordedRetention),
// which every reader and compaction applies.
type retentionJSON struct {
	Seq        uint64                  `json:"seq"`        // of the record
	Categories []retentionCategoryJSON `json:"categories"` // in name order; empty: the record says no retention
}

type retentionCategoryJSON struct {
	Category    string `json:"category"`
	MaxAge      string `json:"max_age,omitempty"`    // Go duration
	MaxAgeNanos int64  `json:"max_age_ns,omitempty"` // the same in nanoseconds
	MaxCount    int    `json:"max_count,omitempty"`
}

type snapshotJSON struct {
	Name            string  `json:"name"`
	File            string  `json:"file"`
	Seq             uint64  `json:"seq"`
	Time            string  `json:"time"`
	Bytes           int64   `json:"bytes"`
	RawBytes        int64   `json:"raw_bytes"`
	CompressedBytes int64   `json:"compressed_bytes"`
	Ratio           float64 `json:"ratio"` // raw / compressed
	SchemaVersion   uint64  `json:"schema_version"`
}

type inspectTotalsJSON struct {
	Segments      int    `json:"segments"`
	Events        uint64 `json:"events"`
	Bytes         int64  `json:"bytes"`
	Snapshots     int    `json:"snapshots"`
	SnapshotBytes int64  `json:"snapshot_bytes"`
}

func runInspect(ctx context.Context, e *env, args []string) error {
	var c inspectCmd
	f := newFlags("inspect", "inspect DIR [--format text|json]", inspectAbout)
	f.format(&c.format, "text", "json")
	pos, err := f.parse(e, args, "DIR")
	if err != nil {
		return err
	}
	return fail("inspect", c.run(ctx, e, pos[0]))
}

func (c *inspectCmd) run(ctx context.Context, e *env, dir string) error {
	l, err := evlog.OpenReadOnly(dir, evlog.Options{})
	if err != nil {
		return err
	}
	defer l.Close()
	segs, err := l.Segments()
	if err != nil {
		return err
	}
	id := l.LogID()
	rep := inspectReport{Segments: []segmentJSON{}, Snapshots: []snapshotJSON{}}
	if id != [16]byte{} {
		rep.LogID = fmt.Sprintf("%x", id[:])
	}
	for _, s := range segs {
		sj := segmentJSON{File: s.File, FirstSeq: s.FirstSeq, LastSeq: s.LastSeq, Events: s.Events, Bytes: s.Bytes, Sealed: s.Sealed, Compressed: s.Compressed}
		if s.Events > 0 {
			ft, lt := formatTime(s.FirstTime), formatTime(s.LastTime)
			sj.FirstTime, sj.LastTime = &ft, &lt
		}
		rep.Segments = append(rep.Segments, sj)
		rep.Totals.Segments++
		rep.Totals.Events += uint64(s.Events)
		rep.Totals.Bytes += s.Bytes
	}
	if rec := l.Recovery(); rec.TornTail != nil {
		t := rec.TornTail
		rep.TornTail = &tornTailJSON{File: rec.TornFile, Offset: t.Offset, Bytes: t.Size, Reason: t.Reason}
	}
	ret, seq, err := l.RecordedRetention(ctx)
	if err != nil {
		return err
	}
	if seq > 0 {
		rep.Retention = &retentionJSON{Seq: seq, Categories: []retentionCategoryJSON{}}
		for _, cat := range slices.Sorted(maps.Keys(ret)) {
			x := ret[cat]
			c := retentionCategoryJSON{Category: cat, MaxCount: x.MaxCount}
			if x.MaxAge > 0 {
				c.MaxAge, c.MaxAgeNanos = x.MaxAge.String(), int64(x.MaxAge)
			}
			rep.Retention.Categories = append(rep.Retention.Categories, c)
		}
	}
	store, err := l.Snapshots()
	if err != nil {
		return err
	}
	metas, err := store.List("")
	if err != nil {
		return err
	}
	for _, m := range metas {
		s := snapshotEntry(m)
		s.Bytes = snapshotFileSize(dir, m)
		rep.Snapshots = append(rep.Snapshots, s)
		rep.Totals.Snapshots++
		rep.Totals.SnapshotBytes += s.Bytes
	}
	if c.format == "json" {
		return writeJSON(e.stdout, rep)
	}
	return c.text(e, dir, &rep)
}

// retentionLine is inspect's text line for the recorded retention.
func retentionLine(r *retentionJSON) string {
	if r == nil || len(r.Categories) == 0 {
		if r != nil {
			return fmt.Sprintf("retention (recorded at seq %d): none (every event is kept)\n", r.Seq)
		}
		return "retention: none (every event is kept)\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "retention (recorded at seq %d): ", r.Seq)
	for i, c := range r.Categories {
		if i > 0 {
			b.WriteString(", ")
		}
		b.Write(appendWord(nil, c.Category))
		b.WriteString(":")
		if c.MaxAge != "" {
			b.WriteString(" MaxAge " + c.MaxAge)
		}
		if c.MaxCount > 0 {
			fmt.Fprintf(&b, " MaxCount %d", c.MaxCount)
		}
	}
	b.WriteString("\n")
	return b.String()
}

func snapshotEntry(m snapshot.Meta) snapshotJSON {
	s := snapshotJSON{Name: m.Name, File: m.File, Seq: m.Seq, Time: formatTime(m.Time),
		RawBytes: m.RawSize, CompressedBytes: m.CompressedSize, SchemaVersion: m.SchemaVersion}
	if m.CompressedSize > 0 {
		s.Ratio = float64(int64(float64(m.RawSize)/float64(m.CompressedSize)*100+0.5)) / 100
	}
	return s
}

func (c *inspectCmd) text(e *env, dir string, rep *inspectReport) error {
	var b strings.Builder
	fmt.Fprintf(&b, "log %s: %d %s in %d %s, %d bytes", dir, rep.Totals.Events, plural(int(min(rep.Totals.Events, 2)), "event", "events"),
		rep.Totals.Segments, plural(rep.Totals.Segments, "segment", "segments"), rep.Totals.Bytes)
	if rep.LogID != "" {
		fmt.Fprintf(&b, ", log ID %s", rep.LogID)
	}
	b.WriteString("\n")
	if len(rep.Segments) > 0 {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SEGMENT\tFIRST\tLAST\tFIRST TIME\tLAST TIME\tEVENTS\tBYTES\tSTATE\tCOMPRESSED")
		for _, s := range rep.Segments {
			state, comp := "active", "no"
			if s.Sealed {
				state = "sealed"
			}
			if s.Compressed {
				comp = "yes"
			}
			ft, lt := "-", "-"
			if s.FirstTime != nil {
				ft, lt = *s.FirstTime, *s.LastTime
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%d\t%d\t%s\t%s\n", s.File, s.FirstSeq, s.LastSeq, ft, lt, s.Events, s.Bytes, state, comp)
		}
		tw.Flush()
	}
	if t := rep.TornTail; t != nil {
		fmt.Fprintf(&b, "torn tail: %s at offset %d, %d bytes (%s): not served; a crash left it, or a live writer is writing it (a writer opening the log truncates a crash's)\n", t.File, t.Offset, t.Bytes, t.Reason)
	}
	b.WriteString(retentionLine(rep.Retention))
	fmt.Fprintf(&b, "%d %s, %d bytes\n", rep.Totals.Snapshots, plural(rep.Totals.Snapshots, "snapshot", "snapshots"), rep.Totals.SnapshotBytes)
	if len(rep.Snapshots) > 0 {
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SNAPSHOT\tSEQ\tTIME\tBYTES\tRAW\tRATIO\tFILE")
		for _, s := range rep.Snapshots {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%.2f\t%s\n", appendWord(nil, s.Name), s.Seq, s.Time, s.Bytes, s.RawBytes, s.Ratio, s.File)
		}
		tw.Flush()
	}
	_, err := e.stdout.Write([]byte(b.String()))
	return err
}
