package evlogcli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/segment"
)

const importAbout = `
Appends to the log in DIR (created if missing) the events read from stdin
(or --input FILE), one JSON object per line in dump's jsonl form. Each
event gets a new seq and a new version in its stream; "seq" and "version"
in the input are ignored. Its stream, type, schema_version, id, meta and
data are kept, and its "time" becomes its recorded time, provided it does
not go backwards (recorded times never decrease in seq order; an event
without a time is stamped with the current time) and is at most
--max-clock-skew (default 1m) ahead of the current time: one event from
the future would pin the recorded time of every later one to it. Past
times, however old, are fine. Stream and type names must be printable
UTF-8: no control characters (tab, newline, NUL, ...), line separators or
bidirectional formatting characters. "data" is converted back to msgpack
(objects with sorted keys; integers as integers, numbers with a "." or an
exponent as float64; base64 strings that were bin stay strings);
"data_b64" gives the payload bytes as they were.

An integer too large for 64 bits is an error (msgpack has no larger
integers): quote it, or give it a "." to import it as a rounded float.

Every event must encode within --max-event-size (default 1MiB, the
library's default; at most 16MiB), which is also the log's limit for this
run; a line longer than 6 times that (plus 64KiB) cannot hold such an event
and is rejected without being read whole.

Events are appended in atomic batches of up to 1000 lines. A line that
cannot be imported (bad JSON, an invalid event, a time earlier than the one
before it or in the future) stops the import with an error naming the line
(exit 1); every line before it has been appended. import takes the log's writer lock.`

// importCmd is "evlogctl import".
type importCmd struct {
	input    string
	format   string
	maxEvent byteSize
	maxSkew  time.Duration
}

// maxLineSize bounds an input line for events of at most maxEvent encoded
// bytes: JSON takes at most 6 bytes per encoded byte (a control character
// in a string is \u00XX, a msgpack nil is "null,"), plus the line's keys.
func maxLineSize(maxEvent int64) int64 { return 6*maxEvent + 64<<10 }

// importResult is import's JSON document.
type importResult struct {
	Imported int    `json:"imported"`
	FirstSeq uint64 `json:"first_seq"` // 0 when nothing was imported
	LastSeq  uint64 `json:"last_seq"`
}

// importBatch bounds one append: lines, and encoded bytes (well below the
// log's MaxBatchSize).
const (
	importBatch      = 1000
	importBatchBytes = 8 << 20
)

func runImport(ctx context.Context, e *env, args []string) error {
	var c importCmd
	f := newFlags("import", "import DIR [--input FILE] [--max-event-size BYTES] [--max-clock-skew D] [--format text|json] < events.jsonl", importAbout)
	c.maxEvent = evlog.DefaultMaxEventSize
	f.StringVar(&c.input, "input", "-", "read the events from `FILE` (- is stdin)")
	f.Var(&c.maxEvent, "max-event-size", "refuse events encoding to more than `BYTES` (the log's MaxEventSize for this run; at most 16MiB)")
	f.DurationVar(&c.maxSkew, "max-clock-skew", evlog.DefaultMaxClockSkew, "refuse events whose time is more than `D` ahead of the current time (negative: no limit)")
	f.format(&c.format, "text", "json")
	pos, err := f.parse(e, args, "DIR")
	if err != nil {
		return err
	}
	if c.maxEvent < 1 || c.maxEvent > evlog.MaxMaxEventSize {
		return usagef("import", "--max-event-size %d: must be between 1 and %d", c.maxEvent, evlog.MaxMaxEventSize)
	}
	if c.maxSkew == 0 {
		return usagef("import", "--max-clock-skew 0: give a positive duration, or a negative one for no limit")
	}
	return fail("import", c.run(ctx, e, pos[0]))
}

// jsonEvent is one input line.
type jsonEvent struct {
	Stream        string            `json:"stream"`
	Type          string            `json:"type"`
	Time          string            `json:"time"`
	SchemaVersion uint32            `json:"schema_version"`
	ID            string            `json:"id"`
	Meta          map[string]string `json:"meta"`
	Data          json.RawMessage   `json:"data"`
	DataB64       *string           `json:"data_b64"`
}

func (c *importCmd) run(ctx context.Context, e *env, dir string) error {
	in := e.stdin
	if c.input != "-" {
		f, err := os.Open(c.input)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	l, err := evlog.Open(dir, evlog.Options{Clock: e.now, MaxClockSkew: c.maxSkew, MaxEventSize: int(c.maxEvent), MaxBatchSize: evlog.MaxMaxBatchSize})
	if err != nil {
		return err
	}
	reportRecovery(e, "import", l)
	out := importResult{}
	err = c.importLines(ctx, e, l, in, &out)
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if out.Imported > 0 {
			err = fmt.Errorf("%w (%d %s imported before it: seqs %d..%d)", err, out.Imported, plural(out.Imported, "event was", "events were"), out.FirstSeq, out.LastSeq)
		}
		return err
	}
	if c.format == "json" {
		return writeJSON(e.stdout, out)
	}
	if out.Imported == 0 {
		_, err = io.WriteString(e.stdout, "imported 0 events\n")
	} else {
		_, err = fmt.Fprintf(e.stdout, "imported %d events (seqs %d..%d)\n", out.Imported, out.FirstSeq, out.LastSeq)
	}
	return err
}

func (c *importCmd) importLines(ctx context.Context, e *env, l *evlog.Log, in io.Reader, out *importResult) error {
	br := bufio.NewReaderSize(in, 64<<10)
	maxLine := maxLineSize(int64(c.maxEvent))
	var (
		batch    appendBuffer
		lastTime = l.LastTime()
		lineNo   int
	)
	flush := func() error {
		if batch.events == 0 {
			return nil
		}
		pos, err := l.AppendBatch(ctx, batch.reqs)
		if err != nil {
			return fmt.Errorf("appending lines %d..%d: %w", batch.firstLine, lineNo-1, err)
		}
		last := pos[len(pos)-1].Seq
		if out.FirstSeq == 0 {
			out.FirstSeq = last - uint64(batch.events) + 1
		}
		out.LastSeq = last
		out.Imported += batch.events
		batch.reset()
		return nil
	}
	var line []byte
	for {
		var err error
		line, err = readLine(br, line[:0], maxLine)
		if len(line) == 0 && err == io.EOF {
			break
		}
		if errors.Is(err, errLineTooLong) {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return fmt.Errorf("line %d: %w: it cannot hold an event of at most %d bytes (--max-event-size); nothing from this line on was imported",
				lineNo+1, err, c.maxEvent)
		}
		if err != nil && err != io.EOF {
			return errors.Join(flush(), err)
		}
		lineNo++
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		ev, err := c.parseLine(line, l)
		if err == nil && !ev.Time.IsZero() && ev.Time.Before(lastTime) {
			err = fmt.Errorf("time %s is earlier than the previous recorded time %s (recorded times never decrease)",
				formatTime(ev.Time), formatTime(lastTime))
		}
		if now := e.now(); err == nil && c.maxSkew > 0 && ev.Time.After(now.Add(c.maxSkew)) {
			err = fmt.Errorf("%w: time %s is %v ahead of the current time %s, more than --max-clock-skew (%v): it would pin the recorded time of every later event to it; fix the time or the clock",
				evlog.ErrFutureTime, formatTime(ev.Time), ev.Time.Sub(now), formatTime(now), c.maxSkew)
		}
		if err != nil {
			if ferr := flush(); ferr != nil {
				return ferr
			}
			return fmt.Errorf("line %d: %w; nothing from this line on was imported", lineNo, err)
		}
		if ev.Time.IsZero() {
			// Stamped here rather than by the log, so that a later line's
			// explicit time is checked against it.
			ev.Time = e.now().UTC()
			if ev.Time.Before(lastTime) {
				ev.Time = lastTime
			}
		}
		lastTime = ev.Time
		if batch.events == 0 {
			batch.firstLine = lineNo
		}
		batch.add(ev)
		if batch.events >= importBatch || batch.bytes >= importBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// parseLine decodes one input line into an envelope ready to append.
func (c *importCmd) parseLine(line []byte, l *evlog.Log) (evlog.Envelope, error) {
	var je jsonEvent
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&je); err != nil {
		return evlog.Envelope{}, fmt.Errorf("not a JSON event: %w", err)
	}
	if dec.More() {
		return evlog.Envelope{}, errors.New("more than one JSON value on the line")
	}
	ev := evlog.Envelope{Stream: je.Stream, Type: je.Type, SchemaVersion: je.SchemaVersion, ID: je.ID, Meta: je.Meta}
	if len(ev.Meta) == 0 {
		ev.Meta = nil
	}
	if je.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, je.Time)
		if err != nil {
			return ev, fmt.Errorf("time %q: %w", je.Time, err)
		}
		ev.Time = t.UTC()
		if ev.Time.IsZero() || ev.Time.Before(segment.MinTime) || ev.Time.After(segment.MaxTime) {
			return ev, fmt.Errorf("time %q is outside the years 1678-2262", je.Time)
		}
	}
	switch {
	case je.DataB64 != nil:
		b, err := base64.StdEncoding.DecodeString(*je.DataB64)
		if err != nil {
			return ev, fmt.Errorf("data_b64: %w", err)
		}
		ev.Data = b
	case len(je.Data) > 0 && string(je.Data) != "null":
		b, err := msgpackFromJSON(je.Data)
		if err != nil {
			return ev, fmt.Errorf("data: %w", err)
		}
		ev.Data = b
	}
	if err := ev.ValidateFields(); err != nil {
		return ev, err
	}
	if n := segment.EncodedSize(&ev) + 64; n > int(c.maxEvent) {
		return ev, fmt.Errorf("the event encodes to about %d bytes, over the maximum event size %d (raise --max-event-size, at most %d)", n, c.maxEvent, evlog.MaxMaxEventSize)
	}
	return ev, nil
}

// errLineTooLong is readLine's error for a line over its limit.
var errLineTooLong = errors.New("line too long")

// readLine appends the next line of br (with its '\n', if any) to dst. A
// line longer than max bytes is an error matching errLineTooLong, and no
// more than max bytes of it (plus br's buffer) are read.
func readLine(br *bufio.Reader, dst []byte, max int64) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if int64(len(dst)+len(chunk)) > max {
			return dst, fmt.Errorf("%w: over %d bytes", errLineTooLong, max)
		}
		dst = append(dst, chunk...)
		if err != bufio.ErrBufferFull {
			return dst, err
		}
	}
}

// appendBuffer collects events into one AppendBatch: one request per run
// of consecutive events of the same stream, so seq order is the input's.
type appendBuffer struct {
	reqs      []evlog.AppendRequest
	events    int
	bytes     int
	firstLine int
}

func (b *appendBuffer) add(ev evlog.Envelope) {
	stream := ev.Stream
	ev.Stream = ""
	if n := len(b.reqs); n > 0 && b.reqs[n-1].Stream == stream {
		b.reqs[n-1].Events = append(b.reqs[n-1].Events, ev)
	} else {
		b.reqs = append(b.reqs, evlog.AppendRequest{Stream: stream, Expect: evlog.ExpectAny, Events: []evlog.Envelope{ev}})
	}
	b.events++
	b.bytes += len(ev.Data) + len(stream) + len(ev.Type) + len(ev.ID) + 64
	for k, v := range ev.Meta {
		b.bytes += len(k) + len(v)
	}
}

func (b *appendBuffer) reset() {
	clear(b.reqs)
	b.reqs, b.events, b.bytes = b.reqs[:0], 0, 0
}
