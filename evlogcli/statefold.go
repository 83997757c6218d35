package evlogcli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/evlog/evlog/replay"
)

// foldsAbout is the list of folds in "state --help".
func foldsAbout(folds []Fold) string {
	var b strings.Builder
	b.WriteString("\n\nFolds (--fold NAME):\n")
	fmt.Fprintf(&b, "  %-16s %s\n", statsFoldName, "built-in: per-stream and per-type event counts of the whole log (default)")
	for _, f := range folds {
		fmt.Fprintf(&b, "  %-16s %s\n", f.Name, oneLine(f.Description))
	}
	if len(folds) == 0 {
		b.WriteString("(an evlogctl built with package evlogcli adds the application's folds)\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// pickFold returns the application fold named by cmd's --fold, checking
// --id against its kind.
func pickFold(e *env, cmd, name, id string) (*Fold, error) {
	folds := e.folds
	fd, ok := findFold(folds, name)
	switch {
	case !ok:
		return nil, usagef(cmd, "--fold %q: no such fold; this %s has %s", name, e.prog(), strings.Join(foldNames(folds), ", "))
	case fd.category != "" && id == "":
		return nil, usagef(cmd, "--fold %s is an aggregate: give the instance with --id ID (its stream is %s-ID)", fd.Name, fd.category)
	case fd.category == "" && id != "":
		return nil, usagef(cmd, "--fold %s is a projection over the whole log: it takes no --id", fd.Name)
	}
	if _, err := fd.subject(id); err != nil {
		return nil, usagef(cmd, "--id %q: %v", id, err)
	}
	return fd, nil
}

// foldStateResult is state's JSON document for an application fold.
type foldStateResult struct {
	Fold      string         `json:"fold"`
	ID        string         `json:"id,omitempty"`
	Stream    string         `json:"stream,omitempty"`
	Plan      foldPlanJSON   `json:"plan"`
	State     *foldStateJSON `json:"state,omitempty"`
	ElapsedMS float64        `json:"elapsed_ms"`
}

type foldPlanJSON struct {
	// Subject is the snapshot subject the plan looked for.
	Subject string `json:"subject"`
	planJSON
	// FromVersion is, for an aggregate, the first stream version folded
	// after the snapshot.
	FromVersion uint64 `json:"from_version,omitempty"`
}

type foldStateJSON struct {
	Seq uint64 `json:"seq"`
	// Time is the recorded time of the last event folded (null: none).
	Time *string `json:"time"`
	// Version is, for an aggregate, the stream version of that event.
	Version *uint64 `json:"version,omitempty"`
	Applied int     `json:"events_applied"`
	// Value is the state itself, in its JSON encoding (encoding/json).
	Value json.RawMessage `json:"value"`
}

func (c *stateCmd) runFold(ctx context.Context, e *env, dir string, target replay.Target, fd *Fold) error {
	start := time.Now()
	subj, err := fd.subject(c.id)
	if err != nil {
		return err
	}
	l, plan, err := c.openPlan(ctx, dir, subj, fd.rebuildMarker, target)
	if err != nil {
		return err
	}
	defer l.Close()
	out := foldStateResult{Fold: fd.Name, ID: c.id, Stream: subj.Stream,
		Plan: foldPlanJSON{Subject: subj.Name, planJSON: planJSON{FromSeq: plan.FromSeq, ToSeq: plan.ToSeq, Fallbacks: []fallbackJSON{}}}}
	if subj.Stream != "" {
		out.Plan.FromVersion = plan.FromVersion
	}
	if s := plan.Snapshot; s != nil {
		out.Plan.Snapshot = &planSnapshotJSON{File: s.File, Seq: s.Seq, Time: formatTime(s.Time)}
	}
	for _, fb := range plan.Fallbacks {
		out.Plan.Fallbacks = append(out.Plan.Fallbacks, fallbackJSON{File: fb.File, Seq: fb.Seq, Reason: fb.Reason})
	}
	if !c.dryRun {
		res, err := fd.run(ctx, l, plan)
		if err != nil {
			return err
		}
		var v bytes.Buffer
		enc := json.NewEncoder(&v)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(res.state); err != nil {
			return fmt.Errorf("fold %s: its state has no JSON encoding: %w", fd.Name, err)
		}
		out.State = &foldStateJSON{Seq: res.seq, Applied: res.applied, Value: bytes.TrimRight(v.Bytes(), "\n")}
		if res.seq > 0 {
			t := formatTime(res.time)
			out.State.Time = &t
		}
		if subj.Stream != "" {
			out.State.Version = &res.version
		}
	}
	out.ElapsedMS = float64(e.since(start).Microseconds()) / 1000
	if c.format == "json" {
		return writeJSON(e.stdout, out)
	}
	return out.text(e)
}

func (out *foldStateResult) text(e *env) error {
	var b strings.Builder
	p := out.Plan
	b.WriteString("plan: ")
	if s := p.Snapshot; s != nil {
		fmt.Fprintf(&b, "snapshot %s (seq %d, %s), then ", s.File, s.Seq, s.Time)
	} else {
		fmt.Fprintf(&b, "no snapshot of %s, ", p.Subject)
	}
	switch {
	case p.FromSeq > p.ToSeq:
		b.WriteString("no events\n")
	case out.Stream != "":
		fmt.Fprintf(&b, "the events of %s from version %d, up to seq %d\n", appendWord(nil, out.Stream), p.FromVersion, p.ToSeq)
	default:
		fmt.Fprintf(&b, "events %d..%d (%d)\n", p.FromSeq, p.ToSeq, p.ToSeq-p.FromSeq+1)
	}
	for _, fb := range p.Fallbacks {
		fmt.Fprintf(&b, "fallback: %s (seq %d): %s\n", fb.File, fb.Seq, oneLine(fb.Reason))
	}
	if s := out.State; s != nil {
		b.WriteString(out.Fold)
		if out.Stream != "" {
			fmt.Fprintf(&b, " %s (stream %s)", appendWord(nil, out.ID), appendWord(nil, out.Stream))
		}
		fmt.Fprintf(&b, " at seq %d", s.Seq)
		if s.Time != nil {
			fmt.Fprintf(&b, " (%s)", *s.Time)
		}
		if s.Version != nil {
			fmt.Fprintf(&b, ", version %d", *s.Version)
		}
		fmt.Fprintf(&b, ", %d %s applied:\n", s.Applied, plural(min(s.Applied, 2), "event", "events"))
		var v bytes.Buffer
		if err := json.Indent(&v, s.Value, "  ", "  "); err != nil {
			return err
		}
		b.WriteString("  ")
		b.Write(v.Bytes())
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "elapsed: %.3fms\n", out.ElapsedMS)
	_, err := e.stdout.Write([]byte(b.String()))
	return err
}
