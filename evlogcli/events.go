package evlogcli

import (
	"bufio"
	"encoding/base64"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
)

// appendEventJSON appends dump's JSON form of e (one line, without the
// newline). Keys, in this order:
//
//	seq, stream, version, type, time,
//	schema_version (only when not 1), id (only when set), meta (only when set),
//	data, data_b64 (only when the payload is not valid msgpack)
//
// data is the payload converted to JSON (see mpjson.go), null when empty.
// A payload that is not exactly one valid msgpack value has data null and
// its bytes in data_b64.
func appendEventJSON(b []byte, e *evlog.Envelope) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"stream":`...)
	b = appendJSONString(b, e.Stream)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, e.Version, 10)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, e.Type)
	b = append(b, `,"time":"`...)
	b = e.Time.UTC().AppendFormat(b, timeLayout)
	b = append(b, '"')
	if e.SchemaVersion != 0 && e.SchemaVersion != event.DefaultSchemaVersion {
		b = append(b, `,"schema_version":`...)
		b = strconv.AppendUint(b, uint64(e.SchemaVersion), 10)
	}
	if e.ID != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, e.ID)
	}
	if len(e.Meta) > 0 {
		b = append(b, `,"meta":`...)
		b = appendMetaJSON(b, e.Meta)
	}
	b = append(b, `,"data":`...)
	b = appendDataJSON(b, e.Data)
	return append(b, '}')
}

// appendDataJSON appends the payload as JSON, and data_b64 when it is not
// valid msgpack (the caller has just written `"data":`).
func appendDataJSON(b []byte, data []byte) []byte {
	if len(data) == 0 {
		return append(b, "null"...)
	}
	out, err := appendMsgpackJSON(b, data)
	if err == nil {
		return out
	}
	b = append(b, `null,"data_b64":"`...)
	b = base64.StdEncoding.AppendEncode(b, data)
	return append(b, '"')
}

func appendMetaJSON(b []byte, meta map[string]string) []byte {
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, meta[k])
	}
	return append(b, '}')
}

// appendEventText appends the text form of e (one line, without the
// newline):
//
//	SEQ TIME STREAM vVERSION TYPE [schema=N] [id=ID] [meta=JSON] DATA
//
// Names holding spaces or unprintable characters are quoted (Go syntax);
// DATA is the same JSON as in the jsonl form, or b64:BASE64 for a payload
// that is not valid msgpack.
func appendEventText(b []byte, e *evlog.Envelope) []byte {
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, ' ')
	b = e.Time.UTC().AppendFormat(b, timeLayout)
	b = append(b, ' ')
	b = appendWord(b, e.Stream)
	b = append(b, " v"...)
	b = strconv.AppendUint(b, e.Version, 10)
	b = append(b, ' ')
	b = appendWord(b, e.Type)
	if e.SchemaVersion != 0 && e.SchemaVersion != event.DefaultSchemaVersion {
		b = append(b, " schema="...)
		b = strconv.AppendUint(b, uint64(e.SchemaVersion), 10)
	}
	if e.ID != "" {
		b = append(b, " id="...)
		b = appendWord(b, e.ID)
	}
	if len(e.Meta) > 0 {
		b = append(b, " meta="...)
		b = appendMetaJSON(b, e.Meta)
	}
	b = append(b, ' ')
	if len(e.Data) > 0 {
		if out, err := appendMsgpackJSON(b, e.Data); err == nil {
			return out
		}
		b = append(b, "b64:"...) // not msgpack: the bytes as they are
		return base64.StdEncoding.AppendEncode(b, e.Data)
	}
	return append(b, "null"...)
}

// appendWord appends s, quoted if it is empty or holds anything but
// printable, non-space characters or a quote.
func appendWord(b []byte, s string) []byte {
	plain := s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !unicode.IsPrint(r) || unicode.IsSpace(r) || r == '"' || r == unicode.ReplacementChar
	})
	if plain {
		return append(b, s...)
	}
	return strconv.AppendQuote(b, s)
}

// eventPrinter writes events in the text or jsonl form through a buffer.
type eventPrinter struct {
	w     *bufio.Writer
	jsonl bool
	line  []byte
	count int
}

func newEventPrinter(w io.Writer, format string) *eventPrinter {
	return &eventPrinter{w: bufio.NewWriterSize(w, 64<<10), jsonl: format == "jsonl"}
}

func (p *eventPrinter) print(e *evlog.Envelope) error {
	if p.jsonl {
		p.line = appendEventJSON(p.line[:0], e)
	} else {
		p.line = appendEventText(p.line[:0], e)
	}
	p.line = append(p.line, '\n')
	p.count++
	_, err := p.w.Write(p.line)
	return err
}

func (p *eventPrinter) flush() error { return p.w.Flush() }
