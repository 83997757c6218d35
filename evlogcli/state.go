package evlogcli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/replay"
)

const stateAbout = `
Computes the built-in stats state (the last seq applied, the number of
events, per stream the count and last version, per type the count) of the
log in DIR at a target: the last event (default), --seq N, or --at TIME (the
events recorded at or before TIME, inclusive; recorded times never decrease
in seq order). It starts from the newest usable stats snapshot at or before
the target and folds the events after it; snapshots that cannot be used
are listed as fallbacks. --dry-run prints only the plan; --no-snapshot
forces a full replay (the same answer, for checking and timing).

--fold NAME computes an application's fold instead (an evlogctl built
with package evlogcli and its own folds): an aggregate instance's state
(--id ID: the stream CATEGORY-ID), or a projection's view, from the
snapshots the application's repository or projection runner saved.

state only reads: it never modifies, creates or locks anything.`

// stateCmd is "evlogctl state".
type stateCmd struct {
	at         string
	seq        uint64
	dryRun     bool
	noSnapshot bool
	format     string
	fold       string
	id         string
}

// stateResult is state's JSON document: how the answer was computed under
// plan and elapsed_ms, the answer under state (absent with --dry-run).
type stateResult struct {
	Plan      planJSON   `json:"plan"`
	State     *stateJSON `json:"state,omitempty"`
	ElapsedMS float64    `json:"elapsed_ms"`
}

type planJSON struct {
	Snapshot  *planSnapshotJSON `json:"snapshot"` // null: from the initial state
	FromSeq   uint64            `json:"from_seq"`
	ToSeq     uint64            `json:"to_seq"`
	Fallbacks []fallbackJSON    `json:"fallbacks"`
}

type planSnapshotJSON struct {
	File string `json:"file"`
	Seq  uint64 `json:"seq"`
	Time string `json:"time"`
}

type fallbackJSON struct {
	File   string `json:"file"`
	Seq    uint64 `json:"seq"`
	Reason string `json:"reason"`
}

type stateJSON struct {
	stats
	// Time is the recorded time of the last event applied (null: none).
	Time *string `json:"time"`
}

func runState(ctx context.Context, e *env, args []string) error {
	var c stateCmd
	f := newFlags("state", "state DIR [--fold NAME [--id ID]] [--at TIME | --seq N] [--dry-run] [--no-snapshot] [--format text|json]", stateAbout+foldsAbout(e.folds))
	f.StringVar(&c.fold, "fold", statsFoldName, "the fold to compute: `NAME` (see the list above)")
	f.StringVar(&c.id, "id", "", "with an aggregate fold, the instance `ID` (its stream is CATEGORY-ID)")
	f.StringVar(&c.at, "at", "", "the state after every event recorded at or before `TIME`")
	f.Uint64Var(&c.seq, "seq", 0, "the state after the event with seq `N` (0: the initial state)")
	f.BoolVar(&c.dryRun, "dry-run", false, "print only the plan: the snapshot used and the event range")
	f.BoolVar(&c.noSnapshot, "no-snapshot", false, "ignore snapshots: replay every event")
	f.format(&c.format, "text", "json")
	pos, err := f.parse(e, args, "DIR")
	if err != nil {
		return err
	}
	target := replay.Latest()
	switch {
	case f.isSet("at") && f.isSet("seq"):
		return usagef("state", "--at and --seq exclude each other")
	case f.isSet("at"):
		t, err := parseTime(c.at, e.now())
		if err != nil {
			return usagef("state", "--at: %v", err)
		}
		target = replay.AtTime(t)
	case f.isSet("seq"):
		target = replay.AtSeq(c.seq)
	}
	if c.fold != statsFoldName {
		fd, err := pickFold(e, "state", c.fold, c.id)
		if err != nil {
			return err
		}
		return fail("state", c.runFold(ctx, e, pos[0], target, fd))
	}
	if f.isSet("id") {
		return usagef("state", "--id is for an aggregate fold; the stats fold covers the whole log")
	}
	return fail("state", c.run(ctx, e, pos[0], target))
}

// openPlan opens the log in dir read-only and plans the state of subj at
// target under the rule every fold follows (planFold; marker: the
// projection's rebuild marker subject, "" for none; from no snapshot
// with --no-snapshot). The caller closes the log.
func (c *stateCmd) openPlan(ctx context.Context, dir string, subj replay.Subject, marker string, target replay.Target) (*evlog.Log, *replay.Plan, error) {
	l, err := evlog.OpenReadOnly(dir, evlog.Options{})
	if err != nil {
		return nil, nil, err
	}
	store, err := l.Snapshots()
	if err != nil {
		return nil, nil, errors.Join(err, l.Close())
	}
	plan, err := planFold(ctx, l, store, subj, marker, target, c.noSnapshot)
	if errors.Is(err, replay.ErrBeyondEnd) {
		err = fmt.Errorf("--seq %d is beyond the end of the log (%d)", c.seq, l.LastSeq())
	}
	if err != nil {
		return nil, nil, errors.Join(err, l.Close())
	}
	return l, plan, nil
}

func (c *stateCmd) run(ctx context.Context, e *env, dir string, target replay.Target) error {
	start := time.Now()
	l, plan, err := c.openPlan(ctx, dir, statsSubject, "", target)
	if err != nil {
		return err
	}
	defer l.Close()
	out := stateResult{Plan: planJSON{FromSeq: plan.FromSeq, ToSeq: plan.ToSeq, Fallbacks: []fallbackJSON{}}}
	if s := plan.Snapshot; s != nil {
		out.Plan.Snapshot = &planSnapshotJSON{File: s.File, Seq: s.Seq, Time: formatTime(s.Time)}
	}
	for _, fb := range plan.Fallbacks {
		out.Plan.Fallbacks = append(out.Plan.Fallbacks, fallbackJSON{File: fb.File, Seq: fb.Seq, Reason: fb.Reason})
	}
	if !c.dryRun {
		res, err := replay.Run(ctx, l, plan, statsSpec)
		if err != nil {
			return err
		}
		out.State = &stateJSON{stats: res.State}
		if res.Seq > 0 {
			t := formatTime(res.Time)
			out.State.Time = &t
		}
	}
	out.ElapsedMS = float64(e.since(start).Microseconds()) / 1000
	if c.format == "json" {
		return out.writeJSON(e.stdout)
	}
	return c.text(e, &out)
}

// writeJSON writes out as writeJSON(w, out) does, byte for byte
// (TestStateJSONAsEncodingJSON), but without encoding/json's reflection,
// whose first use a one-shot process pays in full, and streaming the
// state's maps (an entry per stream) through a small buffer instead of
// building the whole document: for state that document was a large part
// of the work.
func (out *stateResult) writeJSON(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 8<<10)
	b := make([]byte, 0, 1<<10)
	b = append(b, `{"plan":`...)
	b, err := out.Plan.appendJSON(b)
	if err != nil {
		return err
	}
	if s := out.State; s != nil {
		b = append(b, `,"state":{"seq":`...)
		b = strconv.AppendUint(b, s.Seq, 10)
		b = append(b, `,"events":`...)
		b = strconv.AppendUint(b, s.Events, 10)
		b = append(b, `,"streams":`...)
		if b, err = appendJSONMap(bw, b, s.Streams, func(b []byte, st streamStats) []byte {
			b = append(b, `{"count":`...)
			b = strconv.AppendUint(b, st.Count, 10)
			b = append(b, `,"version":`...)
			b = strconv.AppendUint(b, st.Version, 10)
			return append(b, '}')
		}); err != nil {
			return err
		}
		b = append(b, `,"types":`...)
		if b, err = appendJSONMap(bw, b, s.Types, func(b []byte, n uint64) []byte {
			return strconv.AppendUint(b, n, 10)
		}); err != nil {
			return err
		}
		b = append(b, `,"time":`...)
		if s.Time == nil {
			b = append(b, "null"...)
		} else if b, err = appendJSONStr(b, *s.Time); err != nil {
			return err
		}
		b = append(b, '}')
	}
	b = append(b, `,"elapsed_ms":`...)
	if b, err = appendJSONFloat(b, out.ElapsedMS); err != nil {
		return err
	}
	b = append(b, "}\n"...)
	if _, err := bw.Write(b); err != nil {
		return err
	}
	return bw.Flush()
}

// appendJSON appends p as encoding/json encodes it.
func (p *planJSON) appendJSON(b []byte) ([]byte, error) {
	var err error
	b = append(b, `{"snapshot":`...)
	if s := p.Snapshot; s == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"file":`...)
		if b, err = appendJSONStr(b, s.File); err != nil {
			return nil, err
		}
		b = strconv.AppendUint(append(b, `,"seq":`...), s.Seq, 10)
		if b, err = appendJSONStr(append(b, `,"time":`...), s.Time); err != nil {
			return nil, err
		}
		b = append(b, '}')
	}
	b = strconv.AppendUint(append(b, `,"from_seq":`...), p.FromSeq, 10)
	b = strconv.AppendUint(append(b, `,"to_seq":`...), p.ToSeq, 10)
	b = append(b, `,"fallbacks":`...)
	if p.Fallbacks == nil {
		return append(b, "null}"...), nil
	}
	b = append(b, '[')
	for i, fb := range p.Fallbacks {
		if i > 0 {
			b = append(b, ',')
		}
		if b, err = appendJSONStr(append(b, `{"file":`...), fb.File); err != nil {
			return nil, err
		}
		b = strconv.AppendUint(append(b, `,"seq":`...), fb.Seq, 10)
		if b, err = appendJSONStr(append(b, `,"reason":`...), fb.Reason); err != nil {
			return nil, err
		}
		b = append(b, '}')
	}
	return append(b, "]}"...), nil
}

// appendJSONFloat appends f as encoding/json encodes a float64 (NaN and
// infinities, which it rejects, by encoding/json itself).
func appendJSONFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return appendJSON(b, f)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if n := len(b); format == 'e' && n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
		b[n-2] = b[n-1] // e-09 -> e-9, as encoding/json writes it
		b = b[:n-1]
	}
	return b, nil
}

// appendJSONMap appends m as encoding/json encodes it (keys sorted, nil:
// null), each value by val, passing full chunks of b on to w.
func appendJSONMap[V any](w io.Writer, b []byte, m map[string]V, val func([]byte, V) []byte) ([]byte, error) {
	if m == nil {
		return append(b, "null"...), nil
	}
	b = append(b, '{')
	for i, k := range sortedKeys(m) {
		if len(b) > 4<<10 {
			if _, err := w.Write(b); err != nil {
				return nil, err
			}
			b = b[:0]
		}
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendJSONStr(b, k); err != nil {
			return nil, err
		}
		b = val(append(b, ':'), m[k])
	}
	return append(b, '}'), nil
}

// appendJSONStr appends s as a JSON string exactly as writeJSON's encoder
// writes it: printable ASCII other than '"' and '\\' as is, anything else
// (escapes, invalid UTF-8, U+2028) by encoding/json itself.
func appendJSONStr(b []byte, s string) ([]byte, error) {
	for i := range len(s) {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return appendJSON(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}

// appendJSON appends v as writeJSON encodes it, without the newline.
func appendJSON(b []byte, v any) ([]byte, error) {
	var buf bytes.Buffer
	if err := writeJSON(&buf, v); err != nil {
		return nil, err
	}
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...), nil
}

func (c *stateCmd) text(e *env, out *stateResult) error {
	var b strings.Builder
	p := out.Plan
	b.WriteString("plan: ")
	if s := p.Snapshot; s != nil {
		fmt.Fprintf(&b, "snapshot %s (seq %d, %s), then ", s.File, s.Seq, s.Time)
	} else {
		b.WriteString("no snapshot, ")
	}
	if p.FromSeq > p.ToSeq {
		b.WriteString("no events\n")
	} else {
		fmt.Fprintf(&b, "events %d..%d (%d)\n", p.FromSeq, p.ToSeq, p.ToSeq-p.FromSeq+1)
	}
	for _, fb := range p.Fallbacks {
		fmt.Fprintf(&b, "fallback: %s (seq %d): %s\n", fb.File, fb.Seq, oneLine(fb.Reason))
	}
	if s := out.State; s != nil {
		fmt.Fprintf(&b, "state at seq %d", s.Seq)
		if s.Time != nil {
			fmt.Fprintf(&b, " (%s)", *s.Time)
		}
		fmt.Fprintf(&b, ": %d %s, %d %s, %d %s\n", s.Events, plural(int(min(s.Events, 2)), "event", "events"),
			len(s.Streams), plural(len(s.Streams), "stream", "streams"), len(s.Types), plural(len(s.Types), "type", "types"))
		// One line per stream and type, appended to one buffer (a state
		// may list thousands of streams: fmt per line cost a tenth of
		// `state --at`'s time from a recent snapshot).
		var line []byte
		for _, k := range sortedKeys(s.Streams) {
			st := s.Streams[k]
			line = appendWord(append(line[:0], "  stream "...), k)
			line = strconv.AppendUint(append(line, ": "...), st.Count, 10)
			line = append(append(line, ' '), plural(int(min(st.Count, 2)), "event", "events")...)
			line = strconv.AppendUint(append(line, ", version "...), st.Version, 10)
			b.Write(append(line, '\n'))
		}
		for _, k := range sortedKeys(s.Types) {
			line = appendWord(append(line[:0], "  type "...), k)
			line = strconv.AppendUint(append(line, ": "...), s.Types[k], 10)
			line = append(append(line, ' '), plural(int(min(s.Types[k], 2)), "event", "events")...)
			b.Write(append(line, '\n'))
		}
	}
	fmt.Fprintf(&b, "elapsed: %.3fms\n", out.ElapsedMS)
	_, err := e.stdout.Write([]byte(b.String()))
	return err
}
