package replay_test

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/replay"
)

// The benchmarks build their logs once per process, in a temporary
// directory removed by TestMain. Issue 3 asks for a 10-million-event log:
//
//	go test ./replay -run '^$' -bench StateAtTime -replay.events 10000000
//
// (about 1.2 GB of disk and a few minutes to build).
var benchEvents = flag.Int("replay.events", 1_000_000, "events in BenchmarkStateAtTime's log (the issue's figure: 10000000)")

const (
	benchSnapEvery = 100_000 // a whole-log snapshot every this many events
	benchStreams   = 1000
	benchTargets   = 20
	aggEvents      = 100_000 // events of the aggregate BenchmarkLoadAggregate loads
)

var benchTmp struct {
	once sync.Once
	dir  string
	err  error
}

// benchRoot returns the process's temporary directory for benchmark logs.
func benchRoot(b *testing.B) string {
	benchTmp.once.Do(func() { benchTmp.dir, benchTmp.err = os.MkdirTemp("", "evlog-replay-bench-") })
	if benchTmp.err != nil {
		b.Fatal(benchTmp.err)
	}
	return benchTmp.dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if benchTmp.dir != "" {
		os.RemoveAll(benchTmp.dir)
	}
	os.Exit(code)
}

// benchStats is the whole-log fold of the benchmarks: per-type and
// per-stream counts.
type benchStats struct {
	Events   uint64            `msgpack:"events"`
	ByType   map[string]uint64 `msgpack:"by_type"`
	ByStream map[string]uint64 `msgpack:"by_stream"`
}

func foldBenchStats(s benchStats, e event.Envelope) benchStats {
	if s.ByType == nil {
		s.ByType, s.ByStream = map[string]uint64{}, map[string]uint64{}
	}
	s.Events++
	s.ByType[e.Type]++
	s.ByStream[e.Stream]++
	return s
}

var (
	benchSpec    = replay.Spec[benchStats, event.Envelope]{Decode: replay.Raw, Fold: foldBenchStats}
	benchSubject = replay.Subject{Name: "bench-stats", SchemaVersion: 1}
)

// timeLog is BenchmarkStateAtTime's log: events recorded 1 ms apart from
// t0, a snapshot every benchSnapEvery events.
type timeLog struct {
	dir     string
	events  int
	targets []time.Time
}

var timeLogs sync.Map // events → *timeLogOnce

type timeLogOnce struct {
	once sync.Once
	tl   timeLog
	err  error
}

func benchTimeLog(b *testing.B, n int) timeLog {
	v, _ := timeLogs.LoadOrStore(n, &timeLogOnce{})
	o := v.(*timeLogOnce)
	o.once.Do(func() {
		start := time.Now()
		o.tl, o.err = buildTimeLog(benchRoot(b), n)
		b.Logf("built a log of %d events with a snapshot every %d in %v", n, benchSnapEvery, time.Since(start).Round(time.Millisecond))
	})
	if o.err != nil {
		b.Fatal(o.err)
	}
	return o.tl
}

func buildTimeLog(root string, n int) (timeLog, error) {
	dir, err := os.MkdirTemp(root, fmt.Sprintf("time-%d-", n))
	if err != nil {
		return timeLog{}, err
	}
	l, err := evlog.Open(dir, evlog.Options{Sync: evlog.SyncNever})
	if err != nil {
		return timeLog{}, err
	}
	defer l.Close()
	store, err := l.Snapshots()
	if err != nil {
		return timeLog{}, err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	streams := make([]string, benchStreams)
	for i := range streams {
		streams[i] = fmt.Sprintf("stream-%04d", i)
	}
	types := []string{"created", "renamed", "item_added", "item_removed", "checked_out", "paid", "shipped", "closed"}
	payload, _ := msgpack.Marshal(map[string]any{"sku": "SKU-0000000042", "qty": 3, "price": 1999, "note": "benchmark payload, about sixty bytes"})
	var st benchStats
	const parts, per = 20, 50 // a batch: 20 streams × 50 events; benchSnapEvery is a multiple
	ctx := context.Background()
	for seq := 0; seq < n; {
		var batch []evlog.AppendRequest
		for range parts {
			req := evlog.AppendRequest{Stream: streams[rng.IntN(len(streams))], Expect: evlog.ExpectAny}
			for range min(per, n-seq) {
				seq++
				e := event.Envelope{Type: types[rng.IntN(len(types))], Time: t0.Add(time.Duration(seq) * time.Millisecond), Data: payload}
				req.Events = append(req.Events, e)
				e.Stream, e.Seq = req.Stream, uint64(seq)
				st = foldBenchStats(st, e)
			}
			if len(req.Events) > 0 {
				batch = append(batch, req)
			}
		}
		if _, err := l.AppendBatch(ctx, batch); err != nil {
			return timeLog{}, err
		}
		if seq%benchSnapEvery == 0 {
			res := replay.Result[benchStats]{State: st, Seq: uint64(seq), Time: t0.Add(time.Duration(seq) * time.Millisecond)}
			if _, _, err := replay.Save(ctx, store, l.LogID(), benchSubject, benchSpec, res); err != nil {
				return timeLog{}, err
			}
		}
	}
	tl := timeLog{dir: dir, events: n}
	for range benchTargets {
		// Between two events, anywhere in the log.
		tl.targets = append(tl.targets, t0.Add(time.Duration(1+rng.IntN(n))*time.Millisecond+time.Millisecond/2))
	}
	return tl, l.Close()
}

// BenchmarkStateAtTime measures the state of a whole-log fold at
// benchTargets times spread over the log, via the newest snapshot before
// each (path=snapshot) and by a full replay to the same time (path=full);
// an op computes all the targets. path=compare times both per target in
// the same run and reports the distribution of the speed-up, and the cost
// of the snapshot path per event applied after the snapshot (flat when the
// cost tracks those events, not the log).
func BenchmarkStateAtTime(b *testing.B) {
	n := *benchEvents
	tl := benchTimeLog(b, n)
	l, err := evlog.OpenReadOnly(tl.dir, evlog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	store, err := l.Snapshots()
	if err != nil {
		b.Fatal(err)
	}
	state := func(b *testing.B, tm time.Time, noSnap bool) replay.Result[benchStats] {
		res, err := replay.State(b.Context(), l, store, benchSubject, replay.AtTime(tm), benchSpec, replay.Options{NoSnapshot: noSnap})
		if err != nil {
			b.Fatal(err)
		}
		return res
	}
	for _, path := range []string{"snapshot", "full"} {
		b.Run(fmt.Sprintf("events=%d/path=%s", n, path), func(b *testing.B) {
			b.ReportAllocs()
			applied := 0
			for b.Loop() {
				for _, tm := range tl.targets {
					applied += state(b, tm, path == "full").Applied
				}
			}
			b.ReportMetric(float64(applied)/float64(b.N), "applied/op")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(tl.targets)), "ns/target")
		})
	}
	b.Run(fmt.Sprintf("events=%d/path=compare", n), func(b *testing.B) {
		b.ReportAllocs()
		var speedups, nsPerApplied []float64
		maxApplied := 0
		for b.Loop() {
			for i, tm := range tl.targets {
				start := time.Now()
				snap := state(b, tm, false)
				ts := time.Since(start)
				start = time.Now()
				full := state(b, tm, true)
				tf := time.Since(start)
				if snap.Seq != full.Seq || snap.State.Events != full.State.Events || !maps.Equal(snap.State.ByStream, full.State.ByStream) || !maps.Equal(snap.State.ByType, full.State.ByType) {
					b.Fatalf("target %d (%v): the state via snapshot (%d events, seq %d) differs from a full replay's (%d events, seq %d)", i, tm, snap.State.Events, snap.Seq, full.State.Events, full.Seq)
				}
				if snap.Plan.Snapshot == nil && snap.Seq >= benchSnapEvery {
					b.Fatalf("target %d (%v): no snapshot used at seq %d", i, tm, snap.Seq)
				}
				speedups = append(speedups, float64(tf)/float64(ts))
				nsPerApplied = append(nsPerApplied, float64(ts.Nanoseconds())/float64(max(snap.Applied, 1)))
				maxApplied = max(maxApplied, snap.Applied)
				if len(speedups) <= len(tl.targets) {
					b.Logf("target %2d: seq %9d, snapshot at %9d, applied %6d: snapshot %10v, full %10v, speed-up %6.1f×", i, snap.Seq, snapSeq(snap.Plan), snap.Applied, ts.Round(time.Microsecond), tf.Round(time.Microsecond), float64(tf)/float64(ts))
				}
			}
		}
		slices.Sort(speedups)
		slices.Sort(nsPerApplied)
		b.ReportMetric(speedups[0], "speedup-min")
		b.ReportMetric(quantile(speedups, 0.5), "speedup-p50")
		b.ReportMetric(speedups[len(speedups)-1], "speedup-max")
		b.ReportMetric(quantile(nsPerApplied, 0.5), "snap-ns/applied-p50")
		b.ReportMetric(float64(maxApplied), "applied-max")
	})
}

func snapSeq(p *replay.Plan) uint64 {
	if p.Snapshot == nil {
		return 0
	}
	return p.Snapshot.Seq
}

// quantile returns the q-quantile of sorted xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	return xs[min(len(xs)-1, int(q*float64(len(xs))))]
}

// aggregate is BenchmarkLoadAggregate's state: a shopping cart.
type aggregate struct {
	Version uint64         `msgpack:"version"`
	Qty     map[string]int `msgpack:"qty"`
	Total   int            `msgpack:"total"`
}

var aggSpec = replay.Spec[aggregate, evlog.Event[item]]{
	Decode: func(e event.Envelope) (evlog.Event[item], error) { return evlog.Decode[item](e, nil) },
	Fold: func(a aggregate, e evlog.Event[item]) aggregate {
		if a.Qty == nil {
			a.Qty = map[string]int{}
		}
		a.Version = e.Version
		a.Qty[e.Data.Name] += e.Data.Qty
		a.Total += e.Data.Qty
		return a
	},
}

var aggLog struct {
	once sync.Once
	dir  string
	err  error
}

var aggSubject = replay.Subject{Name: "cart/cart-1", SchemaVersion: 1, Scope: replay.Scope{Stream: "cart-1"}}

// buildAggLog writes a log holding stream "cart-1" of aggEvents events
// interleaved with as many events of 99 other streams, and a snapshot of
// cart-1 100 events before its end.
func buildAggLog(root string) (string, error) {
	dir, err := os.MkdirTemp(root, "agg-")
	if err != nil {
		return "", err
	}
	l, err := evlog.Open(dir, evlog.Options{Sync: evlog.SyncNever})
	if err != nil {
		return "", err
	}
	defer l.Close()
	ctx := context.Background()
	typed := evlog.Typed[item](l)
	evs := make([]evlog.Event[item], 100)
	for j := range evs {
		evs[j] = evlog.Event[item]{Type: "added", Data: item{Name: itemNames[j%len(itemNames)], Qty: 1 + j%3}}
	}
	var snapAt uint64 // cart-1's seq 100 events before its end
	for i := range aggEvents / len(evs) {
		req, err := typed.Request("cart-1", evlog.ExpectAny, evs...)
		if err != nil {
			return "", err
		}
		other, err := typed.Request(fmt.Sprintf("cart-%d", 2+i%99), evlog.ExpectAny, evs...)
		if err != nil {
			return "", err
		}
		pos, err := l.AppendBatch(ctx, []evlog.AppendRequest{other, req})
		if err != nil {
			return "", err
		}
		if i == aggEvents/len(evs)-2 {
			snapAt = pos[1].Seq
		}
	}
	res, err := replay.State(ctx, l, nil, aggSubject, replay.AtSeq(snapAt), aggSpec, replay.Options{NoSnapshot: true})
	if err != nil {
		return "", err
	}
	store, err := l.Snapshots()
	if err != nil {
		return "", err
	}
	if _, _, err := replay.Save(ctx, store, l.LogID(), aggSubject, aggSpec, res); err != nil {
		return "", err
	}
	return dir, l.Close()
}

// BenchmarkLoadAggregate loads one aggregate of aggEvents events (a stream
// of a log twice that size) with a recent snapshot (100 events before its
// end) and without one. Issue 4 asks for at least 50× between them.
func BenchmarkLoadAggregate(b *testing.B) {
	aggLog.once.Do(func() { aggLog.dir, aggLog.err = buildAggLog(benchRoot(b)) })
	if aggLog.err != nil {
		b.Fatal(aggLog.err)
	}
	l, err := evlog.OpenReadOnly(aggLog.dir, evlog.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	store, err := l.Snapshots()
	if err != nil {
		b.Fatal(err)
	}
	for _, with := range []bool{true, false} {
		name := "snapshot=without"
		if with {
			name = "snapshot=with"
		}
		b.Run(fmt.Sprintf("events=%d/%s", aggEvents, name), func(b *testing.B) {
			b.ReportAllocs()
			var res replay.Result[aggregate]
			for b.Loop() {
				if res, err = replay.State(b.Context(), l, store, aggSubject, replay.Latest(), aggSpec, replay.Options{NoSnapshot: !with}); err != nil {
					b.Fatal(err)
				}
			}
			if res.State.Version != aggEvents || (with && res.Applied != 100) || (!with && res.Applied != aggEvents) {
				b.Fatalf("loaded version %d, applying %d events", res.State.Version, res.Applied)
			}
			b.ReportMetric(float64(res.Applied), "applied/op")
		})
	}
}

// BenchmarkOpenPlan measures what a short-lived process (evlogctl state
// --at) pays before it applies its first event: OpenReadOnly, the
// snapshot store, MakePlan for a time just after the newest snapshot
// (the plan loads it), and Close. The cost must not grow with the log.
func BenchmarkOpenPlan(b *testing.B) {
	n := *benchEvents
	tl := benchTimeLog(b, n)
	last := n / benchSnapEvery * benchSnapEvery
	at := replay.AtTime(t0.Add(time.Duration(last)*time.Millisecond + time.Millisecond/2))
	b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			l, err := evlog.OpenReadOnly(tl.dir, evlog.Options{})
			if err != nil {
				b.Fatal(err)
			}
			store, err := l.Snapshots()
			if err != nil {
				b.Fatal(err)
			}
			p, err := replay.MakePlan(b.Context(), l, store, benchSubject, at, replay.Options{})
			if err != nil {
				b.Fatal(err)
			}
			if p.Snapshot == nil || p.Snapshot.Seq != uint64(last) {
				b.Fatalf("plan %+v: want the snapshot at seq %d", p, last)
			}
			if err := l.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
