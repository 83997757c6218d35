package main

import (
	"bytes"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/segment"
)

// Payload is the body of every benchmark event: a small struct that encodes
// to about 100 bytes of msgpack (see TestPayloadSize).
type Payload struct {
	Item   string
	Rarity string
	Origin string
	Count  int
	Pad    string
}

// EventType is the type name of every benchmark event.
const EventType = "item_found"

// Ev is one event handed to a contestant. Seq is assigned by the
// contestant. Version is precomputed by the generator (the data set is
// deterministic), so the peers need no version look-up; evlog assigns its
// own and the suite checks it agrees. A zero Time means "now" (single
// appends); the batched data set carries explicit, increasing times so
// that "state at time t" asks every contestant the same question.
type Ev struct {
	Stream  string
	Version uint64
	Time    time.Time
	Data    Payload
}

var (
	items    = []string{"obsidian-dagger", "elven-cloak", "healing-potion", "iron-helm", "dragon-scale", "rune-of-fire", "silver-ring", "oak-staff", "ancient-map", "phoenix-feather", "war-hammer", "ghost-lantern", "amber-amulet", "frost-bow", "golden-chalice", "shadow-boots"}
	rarities = []string{"common", "uncommon", "rare", "epic", "legendary"}
	origins  = []string{"dungeon-1", "dungeon-2", "forest-3", "castle-4", "market-5", "quest-6", "boss-7", "chest-8"}
	pad      = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ"[:41]
)

// baseTime is the recorded time of event 0 of the batched data set; event
// i is recorded at baseTime + i ms.
var baseTime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// numStreams is the number of streams of the batched data set.
const numStreams = 10_000

// aggStream is the stream whose load is timed (workload "aggregate").
const aggStream = "s-0"

// Dataset describes the batched data set of n events: aggStream gets
// AggEvents events spread evenly over the log (one every Stride events),
// the others are dealt round-robin to the other numStreams-1 streams.
type Dataset struct {
	N         int
	AggEvents int
	Stride    int
	names     []string
}

func newDataset(n int) *Dataset {
	agg := min(1000, max(n/10, 1))
	d := &Dataset{N: n, AggEvents: agg, Stride: max(n/agg, 1)}
	d.names = make([]string, numStreams)
	for i := range d.names {
		d.names[i] = "s-" + strconv.Itoa(i)
	}
	return d
}

// payloadFor returns the deterministic payload of event i.
func payloadFor(i int) Payload {
	return Payload{
		Item:   items[(i*7+i/13)%len(items)],
		Rarity: rarities[(i*3)%len(rarities)],
		Origin: origins[(i/5)%len(origins)],
		Count:  i % 100,
		Pad:    pad,
	}
}

// Event fills e with event i (0-based) of the data set.
func (d *Dataset) Event(i int, e *Ev) {
	e.Time = baseTime.Add(time.Duration(i) * time.Millisecond)
	e.Data = payloadFor(i)
	// aggStream events sit at i = 0, Stride, 2*Stride, ... (AggEvents of them).
	if i%d.Stride == 0 && i/d.Stride < d.AggEvents {
		e.Stream, e.Version = d.names[0], uint64(i/d.Stride+1)
		return
	}
	before := min((i+d.Stride-1)/d.Stride, d.AggEvents) // aggStream events before i
	j := i - before
	others := numStreams - 1
	e.Stream, e.Version = d.names[1+j%others], uint64(j/others+1)
}

// TimeOf returns the recorded time of event i.
func (d *Dataset) TimeOf(i int) time.Time { return baseTime.Add(time.Duration(i) * time.Millisecond) }

// ItemCounts is the state computed by workload "stateat": items counted by name.
type ItemCounts map[string]int

func (f ItemCounts) add(p *Payload) { f[p.Item]++ }

func (f ItemCounts) total() int {
	n := 0
	for _, c := range f {
		n += c
	}
	return n
}

// codec encodes and decodes payloads the way evlog's typed view does: a
// msgpack/v5 Encoder with UseCompactInts(true) and SetSortMapKeys(true)
// into a reused buffer, and a reused Decoder. Not safe for concurrent use.
type codec struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
	rd  bytes.Reader
	dec *msgpack.Decoder
	env event.Envelope
	sd  segment.Decoder
	out []byte
}

// codecs pools codecs for the concurrent single-append paths.
var codecs = sync.Pool{New: func() any { return newCodec() }}

func newCodec() *codec {
	c := &codec{}
	c.enc = msgpack.NewEncoder(&c.buf)
	c.enc.UseCompactInts(true)
	c.enc.SetSortMapKeys(true)
	c.dec = msgpack.NewDecoder(&c.rd)
	return c
}

// encode returns the msgpack encoding of p; it aliases c's buffer.
func (c *codec) encode(p *Payload) ([]byte, error) {
	c.buf.Reset()
	if err := c.enc.Encode(p); err != nil {
		return nil, err
	}
	return c.buf.Bytes(), nil
}

// deliver is ReadAll's callback for each event a contestant reads: decode
// its payload, count it in *n, hand it to fn.
func deliver(n *int, fn func(seq uint64, p *Payload)) func(c *codec) (bool, error) {
	return func(c *codec) (bool, error) {
		var p Payload
		if err := c.decode(c.env.Data, &p); err != nil {
			return false, err
		}
		*n++
		fn(c.env.Seq, &p)
		return true, nil
	}
}

// decode decodes a msgpack payload into p.
func (c *codec) decode(b []byte, p *Payload) error {
	c.rd.Reset(b)
	c.dec.ResetReader(&c.rd)
	return c.dec.Decode(p)
}

// envelope returns the evlog envelope of e at seq, its Data encoded by c
// (aliasing c's buffer). A zero e.Time is stamped with now.
func (c *codec) envelope(seq uint64, e *Ev, now time.Time) (*event.Envelope, error) {
	data, err := c.encode(&e.Data)
	if err != nil {
		return nil, err
	}
	t := e.Time
	if t.IsZero() {
		t = now
	}
	c.env = event.Envelope{Seq: seq, Stream: e.Stream, Version: e.Version, Type: EventType,
		SchemaVersion: event.DefaultSchemaVersion, Time: t.UTC(), Data: data}
	return &c.env, nil
}

// encodeValue returns e at seq as an evlog envelope (segment.AppendEnvelope:
// seq, stream, version, type, schema version, id, time, meta, payload), the
// value the key-value peers store. It aliases c's buffers.
func (c *codec) encodeValue(seq uint64, e *Ev, now time.Time) ([]byte, error) {
	env, err := c.envelope(seq, e, now)
	if err != nil {
		return nil, err
	}
	c.out = segment.AppendEnvelope(c.out[:0], env)
	return c.out, nil
}

// decodeEnv decodes an envelope (a value written by encodeValue, or an
// event frame's payload) with segment.Decoder into c.env; its Data aliases b.
func (c *codec) decodeEnv(b []byte) (*event.Envelope, error) {
	if err := c.sd.Decode(b, &c.env); err != nil {
		return nil, fmt.Errorf("envelope: %w", err)
	}
	return &c.env, nil
}

// decodeValue decodes an envelope and then its payload into p.
func (c *codec) decodeValue(b []byte, p *Payload) (*event.Envelope, error) {
	env, err := c.decodeEnv(b)
	if err != nil {
		return nil, err
	}
	if err := c.decode(env.Data, p); err != nil {
		return nil, fmt.Errorf("payload of seq %d: %w", env.Seq, err)
	}
	return env, nil
}

// EncPayload is Payload with a hand-written msgpack.CustomEncoder: the
// same bytes as the reflection encoding of Payload (a map of the five
// field names in declaration order, compact ints), without reflection.
// evlog's "evlog" contestant appends it through Typed[EncPayload];
// "evlog-plain" appends the plain Payload (reflection) for comparison.
type EncPayload Payload

var _ msgpack.CustomEncoder = EncPayload{}

// EncodeMsgpack implements msgpack.CustomEncoder.
func (p EncPayload) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeMapLen(5); err != nil {
		return err
	}
	for _, kv := range [...]struct {
		k string
		v string
	}{{"Item", p.Item}, {"Rarity", p.Rarity}, {"Origin", p.Origin}} {
		if err := enc.EncodeString(kv.k); err != nil {
			return err
		}
		if err := enc.EncodeString(kv.v); err != nil {
			return err
		}
	}
	if err := enc.EncodeString("Count"); err != nil {
		return err
	}
	if err := enc.EncodeInt(int64(p.Count)); err != nil {
		return err
	}
	if err := enc.EncodeString("Pad"); err != nil {
		return err
	}
	return enc.EncodeString(p.Pad)
}
