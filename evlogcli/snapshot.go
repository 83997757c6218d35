package evlogcli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/snapshot"
)

const snapshotAbout = `
Takes a snapshot of the built-in stats fold (per-stream counts and last
versions, per-type counts) at the last seq of the log in DIR: from the
newest usable stats snapshot plus the events after it. Each snapshot is one
new file, written atomically (temporary, fsync, rename, directory fsync)
after the events it folds are made durable. If a snapshot already exists at
that seq, snapshot says so and exits 0.

--fold NAME snapshots an application's fold instead (a tool built with
package evlogcli and its own folds): an aggregate instance's state (--id
ID: the stream CATEGORY-ID) or a projection's view, encoded and named as
the application's repository or projection runner saves them, so that
they start from it. It starts from the snapshot state would start from
(for a projection, none while an interrupted rebuild's marker is there),
and writes nothing when state would report a history lost.

snapshot touches only snapshot files: it takes no lock and is safe beside a
running writer and readers.`

// snapshotCmd is "evlogctl snapshot".
type snapshotCmd struct {
	format string
	fold   string
	id     string
}

// snapshotResult is snapshot's JSON document.
type snapshotResult struct {
	Created  bool   `json:"created"`
	Exists   bool   `json:"exists"` // one was there already at that seq
	Name     string `json:"name"`
	File     string `json:"file,omitempty"`
	Seq      uint64 `json:"seq"` // 0: the log is empty, nothing to snapshot
	Time     string `json:"time,omitempty"`
	Bytes    int64  `json:"bytes,omitempty"`
	RawBytes int64  `json:"raw_bytes,omitempty"`
	// Applied is the number of events folded after the snapshot the state
	// started from.
	Applied int `json:"applied"`
}

func runSnapshot(ctx context.Context, e *env, args []string) error {
	var c snapshotCmd
	f := newFlags("snapshot", "snapshot DIR [--fold NAME [--id ID]] [--format text|json]", snapshotAbout+foldsAbout(e.folds))
	f.StringVar(&c.fold, "fold", statsFoldName, "the fold to snapshot: `NAME` (see the list above)")
	f.StringVar(&c.id, "id", "", "with an aggregate fold, the instance `ID` (its stream is CATEGORY-ID)")
	f.format(&c.format, "text", "json")
	pos, err := f.parse(e, args, "DIR")
	if err != nil {
		return err
	}
	if c.fold != statsFoldName {
		fd, err := pickFold(e, "snapshot", c.fold, c.id)
		if err != nil {
			return err
		}
		return fail("snapshot", c.runFold(ctx, e, pos[0], fd))
	}
	if f.isSet("id") {
		return usagef("snapshot", "--id is for an aggregate fold; the stats fold covers the whole log")
	}
	return fail("snapshot", c.run(ctx, e, pos[0]))
}

// runFold snapshots the application fold fd (instance c.id).
func (c *snapshotCmd) runFold(ctx context.Context, e *env, dir string, fd *Fold) error {
	subj, err := fd.subject(c.id)
	if err != nil {
		return err
	}
	w, err := evlog.OpenSnapshotWriter(dir, evlog.Options{})
	if err != nil {
		return err
	}
	defer w.Close()
	l, store := w.Log(), w.Snapshots()
	plan, err := planFold(ctx, l, store, subj, fd.rebuildMarker, replay.Latest(), false)
	if err != nil {
		return err
	}
	res, err := fd.save(ctx, l, store, l.LogID(), subj, plan)
	if err != nil {
		return err
	}
	warnFallbacks(e.stderr, res.plan)
	out := snapshotResult{Name: subj.Name, Seq: res.seq, Applied: res.applied}
	if res.seq > 0 {
		out.Time = formatTime(res.time)
		if res.exists {
			out.Exists, out.File = true, snapshot.FormatFileName(subj.Name, res.seq)
			if err := checkNotPassedOver(res.plan, out.File); err != nil {
				return err
			}
		} else {
			out.Created, out.File, out.RawBytes = true, res.meta.File, res.meta.RawSize
		}
		out.Bytes = snapshotFileSize(dir, snapshot.Meta{File: out.File})
	}
	return c.print(e, out, subj.Stream)
}

func (c *snapshotCmd) run(ctx context.Context, e *env, dir string) error {
	w, err := evlog.OpenSnapshotWriter(dir, evlog.Options{})
	if err != nil {
		return err
	}
	defer w.Close()
	l, store := w.Log(), w.Snapshots()
	plan, err := planFold(ctx, l, store, statsSubject, "", replay.Latest(), false)
	if err != nil {
		return err
	}
	res, err := replay.Run(ctx, l, plan, statsSpec)
	if err != nil {
		return err
	}
	warnFallbacks(e.stderr, res.Plan)
	out := snapshotResult{Name: statsSubject.Name, Seq: res.Seq, Applied: res.Applied}
	if res.Seq > 0 {
		out.Time = formatTime(res.Time)
		m, _, err := replay.Save(ctx, store, l.LogID(), statsSubject, statsSpec, res)
		switch {
		case errors.Is(err, snapshot.ErrExists):
			out.Exists, out.File = true, snapshot.FormatFileName(statsSubject.Name, res.Seq)
			if err := checkNotPassedOver(res.Plan, out.File); err != nil {
				return err
			}
		case err != nil:
			return err
		default:
			out.Created, out.File, out.RawBytes = true, m.File, m.RawSize
		}
		out.Bytes = snapshotFileSize(dir, snapshot.Meta{File: out.File})
	}
	return c.print(e, out, "")
}

// print writes snapshot's result; stream is the stream of an aggregate
// instance ("" for the whole log).
func (c *snapshotCmd) print(e *env, out snapshotResult, stream string) error {
	if c.format == "json" {
		return writeJSON(e.stdout, out)
	}
	var s string
	switch {
	case out.Seq == 0 && stream != "":
		s = fmt.Sprintf("stream %s has no events: nothing to snapshot\n", appendWord(nil, stream))
	case out.Seq == 0:
		s = "the log is empty: nothing to snapshot\n"
	case out.Exists:
		s = fmt.Sprintf("a snapshot of %s at seq %d already exists: %s\n", out.Name, out.Seq, out.File)
	default:
		s = fmt.Sprintf("snapshot of %s at seq %d (%s): %s, %d bytes (state %d bytes, %d events folded after the previous snapshot)\n",
			out.Name, out.Seq, out.Time, out.File, out.Bytes, out.RawBytes, out.Applied)
	}
	_, err := io.WriteString(e.stdout, s)
	return err
}

// warnFallbacks reports on stderr the snapshots a replay passed over.
func warnFallbacks(w io.Writer, p *replay.Plan) {
	if p == nil {
		return
	}
	for _, fb := range p.Fallbacks {
		fmt.Fprintf(w, "warning: snapshot %s (seq %d) not used: %s\n", fb.File, fb.Seq, oneLine(fb.Reason))
	}
}
