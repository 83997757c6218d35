package evlog

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/segment"
)

// Benchmarks of the typed append path against raw frames: the same bytes
// (event frames with the typed payload's encoding, one commit frame per
// batch) encoded before the timed loop and written to a plain file with
// one write(2) per batch and the same fsync policy. The ratio
// evlog/raw is the engine's and the codec's cost together. Run:
//
//	go test -run '^$' -bench TypedAppend -benchtime 200x -count 5 .

// customItem is benchItem with a hand-written msgpack.CustomEncoder that
// writes the very bytes msgpack's reflection writes for benchItem (a map
// of field names to values), so both payload kinds store the same bytes.
type customItem benchItem

var _ msgpack.CustomEncoder = (*customItem)(nil)

func (c *customItem) EncodeMsgpack(enc *msgpack.Encoder) error {
	if err := enc.EncodeMapLen(5); err != nil {
		return err
	}
	for _, kv := range [...]struct {
		k, v string
	}{{"Name", c.Name}, {"Rarity", c.Rarity}, {"Origin", c.Origin}} {
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
	if err := enc.EncodeInt(int64(c.Count)); err != nil {
		return err
	}
	if err := enc.EncodeString("Pad"); err != nil {
		return err
	}
	return enc.EncodeString(c.Pad)
}

func (c *customItem) DecodeMsgpack(dec *msgpack.Decoder) error {
	return dec.Decode((*benchItem)(c))
}

// TestCustomItemBytes: the custom encoder writes what reflection writes,
// so the raw baseline is the same bytes for both payload kinds.
func TestCustomItemBytes(t *testing.T) {
	it := newBenchItem(123456)
	plain, err := Encode(Event[benchItem]{Type: "x", Data: it})
	if err != nil {
		t.Fatal(err)
	}
	custom, err := Encode(Event[customItem]{Type: "x", Data: customItem(it)})
	if err != nil {
		t.Fatal(err)
	}
	if string(plain.Data) != string(custom.Data) {
		t.Fatalf("custom encoding %x, reflection %x", custom.Data, plain.Data)
	}
}

const appendBatchEvents = 1000

// streamNames returns n stream names.
func streamNames(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("s-%d", i)
	}
	return s
}

// rawFrames returns the frames of batch i (events spread over the
// streams as the typed benchmark spreads them), as evlog would write them.
func rawFrames(items []benchItem, streams []string, perStream bool, batch int, seq uint64, versions map[string]uint64) []byte {
	var buf []byte
	now := time.Now()
	for j := range items {
		data, err := Encode(Event[benchItem]{Type: "item_added", Data: items[j]})
		if err != nil {
			panic(err)
		}
		s := streams[batch%len(streams)]
		if perStream {
			s = streams[(batch*len(items)+j)%len(streams)]
		}
		versions[s]++
		e := event.Envelope{Seq: seq + uint64(j), Stream: s, Version: versions[s], Type: "item_added", SchemaVersion: 1, Time: now, Data: data.Data}
		buf = segment.AppendEventFrame(buf, &e)
	}
	return segment.AppendCommitFrame(buf, segment.Commit{FirstSeq: seq, Count: uint32(len(items))})
}

// BenchmarkTypedAppend: typed batches of 1,000 events, under SyncAlways
// and SyncNever, all in one stream per batch (100 streams in turn) or each
// event in its own stream version (streams=1000: 1,000 streams per batch,
// 10k in all); the payload with a CustomEncoder or plain (reflection).
func BenchmarkTypedAppend(b *testing.B) {
	items := benchItems(appendBatchEvents, 0)
	for _, sync := range []SyncMode{SyncAlways, SyncNever} {
		for _, streams := range []int{1, 1000} {
			names := streamNames(100)
			if streams > 1 {
				names = streamNames(10_000)
			}
			prefix := fmt.Sprintf("sync=%s/streams=%d", sync, streams)
			b.Run(prefix+"/impl=raw", func(b *testing.B) {
				// Pre-encode 10 batches' frames (different streams and
				// seqs), written in turn.
				versions := map[string]uint64{}
				var frames [][]byte
				for i := range 10 {
					frames = append(frames, rawFrames(items, names, streams > 1, i, uint64(i*appendBatchEvents+1), versions))
				}
				f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				b.SetBytes(int64(len(frames[0])))
				b.ReportAllocs()
				i := 0
				cpu0 := processCPU()
				for b.Loop() {
					if _, err := f.Write(frames[i%len(frames)]); err != nil {
						b.Fatal(err)
					}
					if sync == SyncAlways {
						if err := f.Sync(); err != nil {
							b.Fatal(err)
						}
					}
					i++
				}
				reportEvents(b, b.N*appendBatchEvents, cpu0)
			})
			// raw-encode: the same frames encoded in the loop (the
			// payload with the CustomEncoder, into a reused buffer) and
			// written with one write(2) per batch: the limit of an
			// engine that encodes, the baseline of bench/'s "raw".
			b.Run(prefix+"/impl=raw-encode", func(b *testing.B) {
				f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				custom := make([]customItem, len(items))
				for i := range custom {
					custom[i] = customItem(items[i])
				}
				var pbuf appendWriter
				enc := msgpack.NewEncoder(&pbuf)
				enc.UseCompactInts(true)
				enc.SetSortMapKeys(true)
				versions := map[string]uint64{}
				var buf []byte
				seq := uint64(1)
				b.ReportAllocs()
				i := 0
				cpu0 := processCPU()
				for b.Loop() {
					buf = buf[:0]
					first := seq
					now := time.Now()
					for j := range custom {
						pbuf.b = pbuf.b[:0]
						if err := custom[j].EncodeMsgpack(enc); err != nil {
							b.Fatal(err)
						}
						s := names[i%len(names)]
						if streams > 1 {
							s = names[(i*len(custom)+j)%len(names)]
						}
						versions[s]++
						e := event.Envelope{Seq: seq, Stream: s, Version: versions[s], Type: "item_added", SchemaVersion: 1, Time: now, Data: pbuf.b}
						buf = segment.AppendEventFrame(buf, &e)
						seq++
					}
					buf = segment.AppendCommitFrame(buf, segment.Commit{FirstSeq: first, Count: uint32(len(custom))})
					if _, err := f.Write(buf); err != nil {
						b.Fatal(err)
					}
					if sync == SyncAlways {
						if err := f.Sync(); err != nil {
							b.Fatal(err)
						}
					}
					i++
				}
				reportEvents(b, b.N*appendBatchEvents, cpu0)
			})
			b.Run(prefix+"/impl=evlog/payload=custom", func(b *testing.B) {
				evs := make([]Event[customItem], len(items))
				for i := range evs {
					evs[i] = Event[customItem]{Type: "item_added", Data: customItem(items[i])}
				}
				benchTypedAppend(b, sync, names, streams > 1, evs)
			})
			b.Run(prefix+"/impl=evlog/payload=plain", func(b *testing.B) {
				evs := make([]Event[benchItem], len(items))
				for i := range evs {
					evs[i] = Event[benchItem]{Type: "item_added", Data: items[i]}
				}
				benchTypedAppend(b, sync, names, streams > 1, evs)
			})
		}
	}
}

func benchTypedAppend[T any](b *testing.B, sync SyncMode, names []string, perStream bool, evs []Event[T]) {
	l, err := Open(b.TempDir(), Options{Sync: sync})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	tl := Typed[T](l)
	ctx := context.Background()
	parts := make([]Batch[T], len(evs))
	b.ReportAllocs()
	i := 0
	cpu0 := processCPU()
	for b.Loop() {
		if perStream {
			for j := range parts {
				parts[j] = Batch[T]{Stream: names[(i*len(evs)+j)%len(names)], Expect: ExpectAny, Events: evs[j : j+1]}
			}
			if _, err := tl.AppendBatch(ctx, parts); err != nil {
				b.Fatal(err)
			}
		} else if _, err := tl.Append(ctx, names[i%len(names)], ExpectAny, evs...); err != nil {
			b.Fatal(err)
		}
		i++
	}
	reportEvents(b, b.N*len(evs), cpu0)
}

// reportEvents reports events per second and, where the platform tells,
// per CPU-second of the process since cpu0.
func reportEvents(b *testing.B, events int, cpu0 time.Duration) {
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	if cpu := processCPU() - cpu0; cpu0 > 0 && cpu > 0 {
		b.ReportMetric(float64(events)/cpu.Seconds(), "events/cpu-s")
	}
}
