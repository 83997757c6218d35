package fuzz

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/evlog/evlog"
	"github.com/evlog/evlog/event"
	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/replay"
	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

// FuzzReplayModel runs a program given by the fuzzer's bytes against a real
// log and an in-memory reference model of it, and checks every state
// replay serves against the model.
//
// The program (see progReader and runProgram) has three parts:
//
//  1. Build: appends (one stream, or two in one atomic batch; types and
//     payloads from the input; recorded times stamped by a clock the
//     program moves forwards and backwards, or given explicitly),
//     snapshot saves of the whole-log fold and of a stream's fold at seqs
//     of the program's choosing (their state is the model's), and reopens
//     of the writer. Each acknowledged append must get the seq and version
//     the model assigns.
//  2. Damage, to the closed directory: flip a bit of file K at offset N,
//     truncate file K at N, delete a snapshot (files: the segments and
//     snapshots, in name order).
//  3. Targets: latest, a seq, a time (an event's, or next to it), for the
//     whole log or one stream; each computed with snapshots and without.
//
// The oracle. The model is the list of acknowledged events, with the seq,
// version and time each must have. The log is opened read-only.
//
//   - If no segment was damaged, the log must open and serve exactly the
//     model, and every state must equal the model's (damaged snapshots
//     must be fallen back from, never an error).
//   - Otherwise opening may fail, with an error matching ErrCorrupt. If it
//     opens, it serves a prefix of the model: the events it reads (until a
//     read error matching ErrCorrupt, if any) equal the model's first ones,
//     and its LastSeq k is at most the model's. k may fall short of the
//     model only when the newest segment was damaged: recovery treats
//     damage to its last batches as a torn tail (under SyncNever, every
//     batch after the last fsync is), and a newest segment cut inside its
//     header as a torn creation; anywhere else, losing events is silent
//     loss and a failure.
//   - The truth for a target is then the model cut to the served prefix:
//     latest is seq k; a seq above k must fail with ErrBeyondEnd; a time
//     covers the model's events up to k recorded at or before it. Every
//     state replay returns must equal the model's fold of those events;
//     the only acceptable errors are ErrBeyondEnd (above) and, when a
//     segment was damaged, errors matching ErrCorrupt. A state that differs
//     from the model's is a wrong state served silently: the failure this
//     target exists to find.
func FuzzReplayModel(f *testing.F) {
	f.Fuzz(func(t *testing.T, prog []byte) {
		checkInput(t, func() { runProgram(t, prog) })
	})
}

// progReader hands out the program's bytes (zeros once exhausted).
type progReader struct {
	b []byte
	i int
}

func (p *progReader) next() byte {
	if p.i >= len(p.b) {
		return 0
	}
	c := p.b[p.i]
	p.i++
	return c
}

func (p *progReader) u16() int { return int(p.next()) | int(p.next())<<8 }

func (p *progReader) done() bool { return p.i >= len(p.b) }

// Program opcodes (the build phase; the op byte modulo 8, 0xff ends it).
const (
	opAppend     = 0 // 0–2: a: stream a%3, 1+(a>>2&3)%3 events, explicit time if a&0x10 (last + (a>>5)%3 ms); per event e: type e%2, qty e>>1
	opBatch      = 3 // a: one event each for streams a%3 and (a+1)%3, per event e as above
	opClock      = 4 // d: the clock moves by int8(d) ms
	opSnapLog    = 5 // s: snapshot the whole log at seq 1+s%n
	opSnapStream = 6 // a, s: snapshot stream a%3 at its last event at or before seq 1+s%n
	opReopen     = 7 // close and reopen the writer
	opEnd        = 0xff

	maxOps    = 160
	maxEvents = 256
)

var (
	modelStreams = []string{"cart-1", "cart-2", "stock"}
	modelTypes   = []string{"added", "removed"}
	modelT0      = time.Date(2026, 11, 25, 15, 0, 0, 0, time.UTC)
)

// mStats is the whole-log fold; its digest is order-sensitive.
type mStats struct {
	Events int
	ByType map[string]int
	Digest uint64
}

func foldStats(s mStats, e event.Envelope) mStats {
	if s.ByType == nil {
		s.ByType = map[string]int{}
	}
	s.Events++
	s.ByType[e.Type]++
	h := fnv.New64a()
	fmt.Fprintf(h, "%d %d %q %d %q %d %x", s.Digest, e.Seq, e.Stream, e.Version, e.Type, e.Time.UnixNano(), e.Data)
	s.Digest = h.Sum64()
	return s
}

// mCart is a stream's fold: its events, in order.
type mCart struct {
	Version uint64
	Events  []string
}

func foldCart(c mCart, e event.Envelope) mCart {
	c.Version = e.Version
	c.Events = append(c.Events, fmt.Sprintf("%d/%d %s %d %x", e.Seq, e.Version, e.Type, e.Time.UnixNano(), e.Data))
	return c
}

var (
	statsSpec = replay.Spec[mStats, event.Envelope]{Decode: replay.Raw, Fold: foldStats}
	cartSpec  = replay.Spec[mCart, event.Envelope]{Decode: replay.Raw, Fold: foldCart}
	statsSubj = replay.Subject{Name: "stats", SchemaVersion: 1}
)

func cartSubj(stream string) replay.Subject {
	return replay.Subject{Name: "cart/" + stream, SchemaVersion: 1, Scope: replay.Scope{Stream: stream}}
}

var modelCmp = cmpopts.EquateEmpty()

// model is the reference: the acknowledged events, as the log must record
// them.
type model struct {
	events   []event.Envelope
	versions map[string]uint64
}

func (m *model) lastTime() time.Time {
	if len(m.events) == 0 {
		return time.Time{}
	}
	return m.events[len(m.events)-1].Time
}

func (m *model) stats(n int) mStats {
	var s mStats
	for _, e := range m.events[:n] {
		s = foldStats(s, e)
	}
	return s
}

func (m *model) cart(stream string, n int) mCart {
	var c mCart
	for _, e := range m.events[:n] {
		if e.Stream == stream {
			c = foldCart(c, e)
		}
	}
	return c
}

// runProgram runs prog (see FuzzReplayModel).
func runProgram(t *testing.T, prog []byte) {
	ctx := context.Background()
	p := &progReader{b: prog}
	// In memory: a real directory made every input wait for dozens of
	// fsyncs (each append under SyncAlways, each snapshot's file and
	// directory, each roll and close), about a second an input on a
	// loaded disk. The oracle does not depend on the medium: the log is
	// closed (everything written is in the files) before the damage.
	dir := vfs.NewMem()
	var clock atomic.Int64
	clock.Store(modelT0.UnixNano())
	opts := evlog.Options{SegmentSize: evlog.MinSegmentSize, Sync: evlog.SyncNever,
		Clock: func() time.Time { return time.Unix(0, clock.Load()).UTC() }}
	if p.next()&1 == 1 {
		opts.Sync = evlog.SyncAlways
	}
	l, err := openMem(dir, opts, false)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { l.Close() }()
	m := &model{versions: map[string]uint64{}}

	// 1. Build.
	payload := func(e byte) []byte { return []byte{0x82, 0xa1, 'q', e >> 1, 0xa1, 'k', e & 1} } // {"q": e>>1, "k": e&1}
	appendBatch := func(reqs []evlog.AppendRequest, explicit time.Time) {
		// What the log must assign.
		tm := explicit
		if tm.IsZero() {
			tm = time.Unix(0, clock.Load()).UTC()
			if last := m.lastTime(); tm.Before(last) {
				tm = last // the log clamps a clock that went back
			}
		}
		var want []evlog.Position
		for _, r := range reqs {
			for _, e := range r.Events {
				m.versions[r.Stream]++
				e.Seq, e.Stream, e.Version, e.Time, e.SchemaVersion = uint64(len(m.events)+1), r.Stream, m.versions[r.Stream], tm, 1
				m.events = append(m.events, e)
			}
			want = append(want, evlog.Position{Seq: uint64(len(m.events)), Version: m.versions[r.Stream]})
		}
		pos, err := l.AppendBatch(ctx, reqs)
		if err != nil {
			t.Fatalf("AppendBatch: %v", err)
		}
		for i := range pos {
			if pos[i].Seq != want[i].Seq || pos[i].Version != want[i].Version {
				t.Fatalf("AppendBatch: request %d at seq %d version %d, the model says seq %d version %d", i, pos[i].Seq, pos[i].Version, want[i].Seq, want[i].Version)
			}
		}
	}
	newEvent := func(e byte, tm time.Time) event.Envelope {
		return event.Envelope{Type: modelTypes[e%2], Time: tm, Data: payload(e)}
	}
	saveStats := func(n int) {
		e := m.events[n-1]
		_, _, err := replay.Save(ctx, snaps(t, l), l.LogID(), statsSubj, statsSpec, replay.Result[mStats]{State: m.stats(n), Seq: e.Seq, Time: e.Time})
		if err != nil && !errors.Is(err, snapshot.ErrExists) {
			t.Fatalf("saving the whole-log snapshot at seq %d: %v", n, err)
		}
	}
	saveCart := func(stream string, n int) {
		for n > 0 && m.events[n-1].Stream != stream {
			n--
		}
		if n == 0 {
			return
		}
		e := m.events[n-1]
		res := replay.Result[mCart]{State: m.cart(stream, n), Seq: e.Seq, Time: e.Time, Version: e.Version}
		if _, _, err := replay.Save(ctx, snaps(t, l), l.LogID(), cartSubj(stream), cartSpec, res); err != nil && !errors.Is(err, snapshot.ErrExists) {
			t.Fatalf("saving the snapshot of %s at seq %d: %v", stream, n, err)
		}
	}
	for ops := 0; !p.done() && ops < maxOps && len(m.events) < maxEvents; ops++ {
		op := p.next()
		if op == opEnd {
			break
		}
		switch op % 8 {
		case opAppend, opAppend + 1, opAppend + 2:
			a := p.next()
			var explicit time.Time
			if a&0x10 != 0 {
				explicit = m.lastTime()
				if explicit.IsZero() {
					explicit = modelT0
				}
				explicit = explicit.Add(time.Duration((a>>5)%3) * time.Millisecond)
			}
			req := evlog.AppendRequest{Stream: modelStreams[a%3], Expect: evlog.ExpectAny}
			for range 1 + (a>>2&3)%3 {
				req.Events = append(req.Events, newEvent(p.next(), explicit))
			}
			appendBatch([]evlog.AppendRequest{req}, explicit)
		case opBatch:
			a := p.next()
			reqs := []evlog.AppendRequest{
				{Stream: modelStreams[a%3], Expect: evlog.ExpectAny, Events: []event.Envelope{newEvent(p.next(), time.Time{})}},
				{Stream: modelStreams[(a+1)%3], Expect: evlog.ExpectAny, Events: []event.Envelope{newEvent(p.next(), time.Time{})}},
			}
			appendBatch(reqs, time.Time{})
		case opClock:
			clock.Add(int64(int8(p.next())) * int64(time.Millisecond))
		case opSnapLog:
			s := int(p.next())
			if n := len(m.events); n > 0 {
				saveStats(1 + s%n)
			}
		case opSnapStream:
			a, s := p.next(), int(p.next())
			if n := len(m.events); n > 0 {
				saveCart(modelStreams[a%3], 1+s%n)
			}
		case opReopen:
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if l, err = openMem(dir, opts, false); err != nil {
				t.Fatalf("reopening: %v", err)
			}
			if l.LastSeq() != uint64(len(m.events)) {
				t.Fatalf("reopened at seq %d, the model has %d events", l.LastSeq(), len(m.events))
			}
		}
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// 2. Damage.
	d := damage(t, dir, p)

	// 3. Check.
	ro, err := openMem(dir, evlog.Options{}, true)
	if err != nil {
		if !d.segment || !errors.Is(err, evlog.ErrCorrupt) {
			t.Fatalf("OpenReadOnly after %s: %v; want success, or (a segment damaged) an error matching ErrCorrupt", d, err)
		}
		return
	}
	defer ro.Close()
	served, rerr := readLog(ctx, ro)
	if rerr != nil && (!d.segment || !errors.Is(rerr, evlog.ErrCorrupt)) {
		t.Fatalf("reading after %d events, after %s: %v", len(served), d, rerr)
	}
	n, k := len(m.events), int(ro.LastSeq())
	if len(served) > n || k > n {
		t.Fatalf("the log serves %d events (LastSeq %d), the model has only %d", len(served), k, n)
	}
	for i, e := range served {
		if !sameEvent(e, m.events[i]) {
			t.Fatalf("after %s, event %d is served as\n\t%s\nthe model has\n\t%s", d, i+1, describe(e), describe(m.events[i]))
		}
	}
	if rerr == nil && len(served) != k {
		t.Fatalf("LastSeq %d, but %d events are served", k, len(served))
	}
	if k < n && !d.newest {
		t.Fatalf("after %s (not of the newest segment), the log serves %d of the %d events: silent loss (recovery: %+v)", d, k, n, ro.Recovery())
	}
	store, err := ro.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	cutAt := func(tm time.Time) int {
		c := 0
		for _, e := range m.events[:k] {
			if !e.Time.After(tm) {
				c++
			}
		}
		return c
	}
	for range 1 + p.next()%4 {
		var tg replay.Target
		cut, beyond := k, false
		switch kind, arg := p.next()%4, p.next(); kind {
		case 0:
			tg = replay.Latest()
		case 1:
			s := int(arg) % (n + 2)
			tg, cut, beyond = replay.AtSeq(uint64(s)), s, s > k
		case 2:
			tm := modelT0
			if n > 0 {
				tm = m.events[int(arg)%n].Time.Add(time.Duration(int(arg>>6)-1) * time.Nanosecond)
			}
			tg, cut = replay.AtTime(tm), cutAt(tm)
		default:
			tm := modelT0.Add(time.Duration(int8(arg)) * time.Millisecond)
			tg, cut = replay.AtTime(tm), cutAt(tm)
		}
		switch sc := p.next() % 4; sc {
		case 0:
			checkState(t, ro, store, statsSubj, statsSpec, tg, cut, beyond, d, m.stats)
		default:
			stream := modelStreams[sc-1]
			checkState(t, ro, store, cartSubj(stream), cartSpec, tg, cut, beyond, d, func(n int) mCart { return m.cart(stream, n) })
		}
	}
}

// snaps returns l's snapshot store.
func snaps(t *testing.T, l *evlog.Log) *snapshot.Store {
	s, err := l.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkState computes the state at tg with snapshots and without, and
// checks each against want(cut) (see FuzzReplayModel's oracle).
func checkState[S any](t *testing.T, src *evlog.Log, store *snapshot.Store, subj replay.Subject, spec replay.Spec[S, event.Envelope], tg replay.Target, cut int, beyond bool, d damaged, want func(int) S) {
	t.Helper()
	for _, noSnap := range []bool{false, true} {
		res, err := replay.State(context.Background(), src, store, subj, tg, spec, replay.Options{NoSnapshot: noSnap})
		where := fmt.Sprintf("%s at %v (NoSnapshot %v), after %s", subj.Name, tg, noSnap, d)
		switch {
		case beyond:
			if !errors.Is(err, replay.ErrBeyondEnd) && !(d.segment && errors.Is(err, evlog.ErrCorrupt)) {
				t.Fatalf("%s: %v, want ErrBeyondEnd (the log ends at seq %d)", where, err, src.LastSeq())
			}
		case err != nil:
			if !d.segment || !errors.Is(err, evlog.ErrCorrupt) {
				t.Fatalf("%s: %v; want the state, or (a segment damaged) an error matching ErrCorrupt", where, err)
			}
		default:
			if w := want(cut); !cmp.Equal(w, res.State, modelCmp) {
				t.Fatalf("%s: WRONG STATE served (plan: snapshot %v, seqs %d..%d, fallbacks %+v) (-model +got):\n%s",
					where, res.Plan.Snapshot, res.Plan.FromSeq, res.Plan.ToSeq, res.Plan.Fallbacks, cmp.Diff(w, res.State, modelCmp))
			}
			if m := res.Plan.Snapshot; m != nil && slices.Contains(d.files, m.File) {
				t.Fatalf("%s: the damaged snapshot %s was used", where, m.File)
			}
		}
	}
}

// damaged records what damage did.
type damaged struct {
	what    []string
	files   []string // the files changed or removed
	segment bool     // a segment was changed
	newest  bool     // the newest segment was changed
}

func (d damaged) String() string {
	if len(d.what) == 0 {
		return "no damage"
	}
	return strings.Join(d.what, ", ")
}

// damage applies the program's damage to the files of dir.
func damage(t *testing.T, dir *vfs.Mem, p *progReader) damaged {
	var d damaged
	for range p.next() % 3 {
		names, err := dir.List()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(names)
		var files, snapFiles []string
		newest := ""
		for _, name := range names {
			if _, _, ok := segment.ParseFileName(name); ok {
				files = append(files, name)
				newest = max(newest, name)
			} else if _, _, ok := snapshot.ParseFileName(name); ok {
				files, snapFiles = append(files, name), append(snapFiles, name)
			}
		}
		k, kind, off, bit := int(p.next()), p.next()%3, p.u16(), p.next()
		if len(files) == 0 {
			continue
		}
		file := files[k%len(files)]
		b, err := dir.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case kind == 2 && len(snapFiles) > 0:
			file = snapFiles[k%len(snapFiles)]
			if err := dir.Remove(file); err != nil {
				t.Fatal(err)
			}
			d.what = append(d.what, "removed "+file)
		case kind == 1 && off%(len(b)+1) < len(b):
			at := off % (len(b) + 1)
			if err := dir.WriteFile(file, b[:at]); err != nil {
				t.Fatal(err)
			}
			d.what = append(d.what, fmt.Sprintf("truncated %s at %d of %d", file, at, len(b)))
		case len(b) > 0 && kind != 1:
			at := off % len(b)
			b[at] ^= 1 << (bit % 8)
			if err := dir.WriteFile(file, b); err != nil {
				t.Fatal(err)
			}
			d.what = append(d.what, fmt.Sprintf("flipped bit %d of byte %d of %s (%d bytes)", bit%8, at, file, len(b)))
		default:
			continue
		}
		d.files = append(d.files, file)
		if strings.HasSuffix(file, segment.Ext) {
			d.segment = true
			d.newest = d.newest || file == newest
		}
	}
	return d
}

// progBuilder writes FuzzReplayModel programs, for the seeds.
type progBuilder struct{ b []byte }

func (p *progBuilder) append(stream, count int, explicit bool, ms int, events ...byte) {
	a := byte(stream%3) | byte((count-1)%3)<<2 | byte(ms%3)<<5
	if explicit {
		a |= 0x10
	}
	p.b = append(p.b, opAppend, a)
	for i := range count {
		p.b = append(p.b, events[i%len(events)])
	}
}
func (p *progBuilder) batch(stream int, e1, e2 byte) {
	p.b = append(p.b, opBatch, byte(stream), e1, e2)
}
func (p *progBuilder) clock(ms int8)             { p.b = append(p.b, opClock, byte(ms)) }
func (p *progBuilder) snapLog(s byte)            { p.b = append(p.b, opSnapLog, s) }
func (p *progBuilder) snapStream(stream, s byte) { p.b = append(p.b, opSnapStream, stream, s) }
func (p *progBuilder) reopen()                   { p.b = append(p.b, opReopen) }
func (p *progBuilder) end()                      { p.b = append(p.b, opEnd) }
func (p *progBuilder) damage(n byte)             { p.b = append(p.b, n) }
func (p *progBuilder) flip(file byte, off int) {
	p.b = append(p.b, file, 0, byte(off), byte(off>>8), 3)
}
func (p *progBuilder) truncate(file byte, at int) {
	p.b = append(p.b, file, 1, byte(at), byte(at>>8), 0)
}
func (p *progBuilder) remove(snap byte) { p.b = append(p.b, snap, 2, 0, 0, 0) }
func (p *progBuilder) targets(ts ...[3]byte) {
	p.b = append(p.b, byte(len(ts)-1))
	for _, t := range ts {
		p.b = append(p.b, t[:]...)
	}
}

// replayModelSeeds returns FuzzReplayModel's seeds: a workload of every
// operation, with each kind of damage, and random programs.
func replayModelSeeds() seedCorpus {
	workload := func(sync byte) *progBuilder {
		p := &progBuilder{b: []byte{sync}}
		for i := range 120 {
			switch {
			case i == 60:
				p.reopen()
			case i%9 == 4:
				p.snapLog(byte(i * 7))
			case i%11 == 5:
				p.snapStream(byte(i), byte(i*13))
			case i%7 == 3:
				p.clock(-3) // the wall clock steps back
			case i%5 == 1:
				p.clock(2)
			case i%6 == 0:
				p.batch(i, byte(i), byte(i+1))
			default:
				p.append(i, 1+i%3, i%8 == 2, i%3, byte(i), byte(2*i+1), byte(3*i))
			}
		}
		p.end()
		return p
	}
	allTargets := [][3]byte{{0, 0, 0}, {1, 17, 0}, {2, 30, 1}, {3, 5, 2}, {1, 200, 3}, {2, 0x7f, 0}, {0, 0, 3}}
	seeds := seedCorpus{}
	add := func(name string, p *progBuilder) { seeds[name] = corpusFile(p.b) }

	p := workload(0)
	p.damage(0)
	p.targets(allTargets[:4]...)
	add("no-damage", p)
	p = workload(1)
	p.damage(0)
	p.targets(allTargets[3:]...)
	add("no-damage-sync-always", p)
	// The files are the segments (oldest first), then the snapshots.
	for i, file := range []byte{0, 1, 2, 3, 4, 5, 8, 13, 255} {
		p = workload(byte(i) & 1)
		p.damage(1)
		p.flip(file, 100+337*i)
		p.targets(allTargets[i%4 : i%4+4]...)
		add(fmt.Sprintf("flip-file-%d", file), p)

		p = workload(byte(i) & 1)
		p.damage(1)
		p.truncate(file, 40+450*i)
		p.targets(allTargets[i%4 : i%4+4]...)
		add(fmt.Sprintf("truncate-file-%d", file), p)
	}
	p = workload(0)
	p.damage(2)
	p.remove(0)
	p.remove(1)
	p.targets(allTargets[:4]...)
	add("remove-snapshots", p)
	p = workload(1)
	p.damage(2)
	p.flip(255, 3000)
	p.truncate(255, 2000)
	p.targets(allTargets[2:6]...)
	add("flip-and-truncate", p)
	// Explicit equal times, then a clock far behind.
	p = &progBuilder{b: []byte{0}}
	for i := range 20 {
		p.append(i, 2, true, 0, byte(i))
		if i%6 == 5 {
			p.snapLog(byte(i * 2))
			p.clock(-100)
		}
	}
	p.end()
	p.damage(0)
	p.targets(allTargets[1:5]...)
	add("equal-times", p)
	// Random programs.
	rng := rand.New(rand.NewPCG(6, 6))
	for i := range 6 {
		b := make([]byte, 64+rng.IntN(256))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		seeds[fmt.Sprintf("random-%d", i)] = corpusFile(b)
	}
	return seeds
}
