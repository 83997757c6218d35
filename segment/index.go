package segment

import (
	"encoding/binary"
	"slices"

	"github.com/evlog/evlog/event"
)

// Posting locates one event frame: its offset and its size (header
// included), so a stream read fetches exactly its frames.
type Posting struct {
	Off int64
	Len uint32
}

// SparseEntry is one entry of a segment's sparse index: every
// SparseInterval-th event's seq, frame offset and recorded time.
type SparseEntry struct {
	Seq  uint64
	Off  int64
	Time int64 // unix ns
}

// SparseInterval is how many events apart the sparse index entries are.
// Seeking by seq or time reads at most this many frames past an entry.
const SparseInterval = 256

// StreamPostings is one stream's events within one segment.
type StreamPostings struct {
	FirstVersion uint64
	Posts        []Posting
}

// IDEntry is one entry of a sealed segment's ID table: the IDHash of an
// event's ID and the event's seq.
type IDEntry struct {
	Hash uint64
	Seq  uint64
}

// Index is the index of one segment's events: per-stream postings, a sparse
// seq/time index and the segment's totals. The active segment keeps one in
// memory (built by scanning at open, extended on every append); sealing
// encodes it into the segment's footer.
//
// An Index is not safe for concurrent use; the log guards it. Slices
// returned by Stream and Sparse are never modified afterwards (appends go
// past their length), so a reader may keep using them without the lock.
type Index struct {
	BaseSeq    uint64
	Count      int
	LastSeq    uint64 // BaseSeq-1 while empty
	FirstTime  int64
	LastTime   int64
	NewStreams int
	End        int64 // offset just past the last committed frame (or mark)
	// Durable is the largest durable end recorded by a mark frame among
	// the frames indexed (HeaderSize when none): the file was fsynced up
	// to it. Scan sets it; the writer keeps it current.
	Durable int64
	// Marked says a mark was indexed; Strict is the strict flag of the
	// last one (its writer acknowledges appends only once durable).
	Marked, Strict bool
	streams        map[string]*StreamPostings
	sparse         []SparseEntry
	// ids lists the (IDHash, seq) of the events carrying an ID, in seq
	// order; idsLost says some were not recorded (events indexed by a
	// checkpoint, which keeps no IDs): the footer then has no ID table.
	ids     idList
	idsLost bool
	// base, when set, is a checkpoint indexing the events before base.End:
	// the counters above include its events, streams and sparse only
	// what was added after it (see NewIndexFrom).
	base *Checkpoint
	// slab is where postings lists of up to slabMaxCap entries get their
	// backing arrays (see grow): one allocation per postSlab postings,
	// not one per growth of every short list.
	slab []Posting
	// hint is the number of postings the segment before held of each of
	// its streams with more than one (see NewIndexLike): a stream's first
	// postings array is sized for as many.
	hint map[string]int
	// maxPosts is the most postings one stream has in streams, maxName
	// the longest name there (for ExtentWith).
	maxPosts, maxName int
}

// Frozen returns a copy of x as it is now that later changes to x never
// reach, for encoding a checkpoint (AppendCheckpoint) in another goroutine
// while x's writer goes on adding to it: it copies the totals and each
// stream's entry, and shares the postings and sparse arrays up to their
// current lengths, which x never modifies (appends go past them; see
// Index). It keeps no event IDs (a checkpoint has none) and cannot grow.
// x must have no checkpoint under it (Materialize first). Freezing costs a
// map entry per stream; nothing is copied per event.
func (x *Index) Frozen() *Index {
	if x.base != nil {
		panic("evlog/segment: Frozen of an index with a checkpoint under it")
	}
	y := *x
	y.streams = make(map[string]*StreamPostings, len(x.streams))
	entries := make([]StreamPostings, 0, len(x.streams))
	for name, sp := range x.streams {
		entries = append(entries, StreamPostings{FirstVersion: sp.FirstVersion, Posts: sp.Posts[:len(sp.Posts):len(sp.Posts)]})
		y.streams[name] = &entries[len(entries)-1]
	}
	y.sparse = x.sparse[:len(x.sparse):len(x.sparse)]
	y.ids, y.idsLost = idList{}, true
	y.slab, y.hint = nil, nil
	return &y
}

// NewIndexFrom returns the index of a segment's events as far as the
// checkpoint c indexes them (up to c.End, which it proves durable). Events
// added later are kept in memory; c's postings are read on use, so
// building it reads nothing.
func NewIndexFrom(c *Checkpoint) *Index {
	t := c.Trailer
	return &Index{
		BaseSeq: c.baseSeq, Count: int(t.Count), LastSeq: t.LastSeq, FirstTime: t.FirstTime, LastTime: t.LastTime,
		NewStreams: int(t.NewStreams), End: c.End, Durable: c.End, Marked: c.Marked, Strict: c.Strict,
		streams: make(map[string]*StreamPostings), base: c,
	}
}

// Base returns the checkpoint under the index (nil if none).
func (x *Index) Base() *Checkpoint { return x.base }

// Materialize returns an index holding everything x holds wholly in
// memory: x itself when no checkpoint is under it, else a new index with
// the checkpoint's postings read in. x is not modified.
func (x *Index) Materialize() (*Index, error) {
	if x.base == nil {
		return x, nil
	}
	y := *x
	y.base, y.sparse, y.streams = nil, nil, make(map[string]*StreamPostings, min(x.base.Streams, maxHintStreams)+len(x.streams))
	y.slab = nil     // x's: y must not cut arrays from it as well
	y.idsLost = true // a checkpoint keeps no event IDs
	if err := x.base.load(&y); err != nil {
		return nil, err
	}
	y.sparse = append(y.sparse, x.sparse...)
	for name, sp := range x.streams {
		if b := y.streams[name]; b != nil {
			if b.FirstVersion+uint64(len(b.Posts)) != sp.FirstVersion {
				return nil, corruptf(x.base.seg, sp.Posts[0].Off, "stream %q is at version %d before offset %d and continues at version %d", name, b.FirstVersion+uint64(len(b.Posts))-1, x.base.End, sp.FirstVersion)
			}
			b.Posts = append(b.Posts, sp.Posts...)
			continue
		}
		y.streams[name] = &StreamPostings{FirstVersion: sp.FirstVersion, Posts: sp.Posts}
	}
	y.maxPosts, y.maxName = 0, 0
	for name, sp := range y.streams {
		y.maxPosts, y.maxName = max(y.maxPosts, len(sp.Posts)), max(y.maxName, len(name))
	}
	return &y, nil
}

// NewIndex returns the empty index of a segment whose first seq is baseSeq.
func NewIndex(baseSeq uint64) *Index {
	return &Index{BaseSeq: baseSeq, LastSeq: baseSeq - 1, End: HeaderSize, Durable: HeaderSize, streams: make(map[string]*StreamPostings)}
}

const (
	// maxHintStreams bounds the streams NewIndexLike records a size
	// hint for (a segment may hold a stream per event), and the hint
	// Materialize takes from a checkpoint's header (untrusted: up to its
	// count of events, 2^32-1).
	maxHintStreams = 1 << 16
	// maxHint bounds one stream's hint, in postings (1 MiB).
	maxHint = 1 << 16
)

// NewIndexLike is NewIndex for the segment following the one prev indexes
// (its events in memory: a Materialize-d index), expecting appends like
// prev's: the stream table is sized for prev's streams, and the first
// postings array of a stream prev held several events of is sized for a
// quarter more (at most maxHint), so that it is not grown (and copied)
// again and again as the segment fills. Nothing else of prev is kept.
func NewIndexLike(baseSeq uint64, prev *Index) *Index {
	x := NewIndex(baseSeq)
	n := min(len(prev.streams), maxHintStreams)
	if n == 0 {
		return x
	}
	x.streams = make(map[string]*StreamPostings, n)
	x.sparse = make([]SparseEntry, 0, prev.Count/SparseInterval+1)
	for name, sp := range prev.streams {
		if len(x.hint) == maxHintStreams {
			break
		}
		if k := len(sp.Posts); k > 1 {
			if x.hint == nil {
				x.hint = make(map[string]int)
			}
			x.hint[name] = min(k+k/4, maxHint) // a little more: segments differ
		}
	}
	return x
}

// EventInfo is what the index records of one event.
type EventInfo struct {
	Seq     uint64
	Stream  string
	Version uint64
	Time    int64 // unix ns
	Off     int64 // frame offset
	Len     uint32
	// ID is the event's ID ("" if none), for the footer's ID table.
	ID string
	// IDHash is IDHash(ID) if the caller has it (0: AddBatch computes
	// it), so that a writer that hashed the ID already does not hash it
	// again.
	IDHash uint64
	// Postings, when set, is the stream's entry in the index the event
	// is added to, as AddBatch left it there (AddBatch sets it on every
	// event it adds): AddBatch then does not look the stream up. It must
	// be nil, or that index's own entry for Stream.
	Postings *StreamPostings
}

// Add records one committed event. Events must be added in seq order,
// starting at BaseSeq; the caller has checked that.
func (x *Index) Add(e EventInfo) {
	x.count(&e)
	sp := x.streams[e.Stream]
	if sp == nil {
		sp = x.newStream(e.Stream, e.Version, 1)
	}
	sp.Posts = append(x.grow(sp.Posts, 1), Posting{Off: e.Off, Len: e.Len})
	x.maxPosts = max(x.maxPosts, len(sp.Posts))
}

// newStream adds the entry of a stream new to the index, whose first
// event has version v, with room for n postings or as many as its hint
// says.
func (x *Index) newStream(name string, v uint64, n int) *StreamPostings {
	sp := &StreamPostings{FirstVersion: v}
	if h := x.hint[name]; h > n {
		n = h
	}
	sp.Posts = x.grow(nil, n)
	x.streams[name] = sp
	x.maxName = max(x.maxName, len(name))
	return sp
}

const (
	// postSlab is the largest size, in postings, of the slabs grow cuts
	// short postings lists' arrays from (32 KiB, a small object: no
	// large-object allocation per slab).
	postSlab = 2048
	// slabMaxCap is the largest capacity grow cuts from a slab; longer
	// lists grow on the heap, so that a slab never holds a long list's
	// outgrown arrays.
	slabMaxCap = 64
)

// grow returns p with room for n more postings. A short list's new array
// is cut from x's slab, capacity-limited so that no append can run into
// its neighbour: with many streams of a few events each (the 1,000-stream
// batch), that is one allocation per postSlab postings rather than one
// per stream per doubling. An outgrown array stays in the slab until the
// index is dropped: at most the list's final size again.
func (x *Index) grow(p []Posting, n int) []Posting {
	if cap(p)-len(p) >= n {
		return p
	}
	c := max(2*cap(p), len(p)+n)
	if c > slabMaxCap {
		return slices.Grow(p, n)
	}
	if len(x.slab) < c {
		// No larger than the postings indexed so far (a small log's
		// index keeps a small slab), at least 4*slabMaxCap.
		x.slab = make([]Posting, min(postSlab, max(4*slabMaxCap, x.Count)))
	}
	q := x.slab[:len(p):c]
	copy(q, p)
	x.slab = x.slab[c:]
	return q
}

// count records e in the counters, the sparse index and the ID list (all
// but its stream's postings).
func (x *Index) count(e *EventInfo) {
	if x.Count == 0 {
		x.FirstTime = e.Time
	}
	if x.Count%SparseInterval == 0 {
		x.sparse = append(x.sparse, SparseEntry{Seq: e.Seq, Off: e.Off, Time: e.Time})
	}
	x.Count++
	x.LastSeq = e.Seq
	x.LastTime = e.Time
	if e.Version == 1 {
		x.NewStreams++
	}
	if e.ID != "" {
		h := e.IDHash
		if h == 0 {
			h = IDHash(e.ID) // 0 too if that is the hash
		}
		x.ids.add(IDEntry{Hash: h, Seq: e.Seq})
	}
}

// AddBatch adds events in order, as Add does one by one, looking each run
// of consecutive events of one stream up once (not at all when the run's
// first event carries its Postings), and sets every event's Postings.
func (x *Index) AddBatch(events []EventInfo) {
	var (
		sp   *StreamPostings
		last string
	)
	for i := range events {
		e := &events[i]
		x.count(e)
		if sp == nil || e.Stream != last {
			last = e.Stream
			// Room for the whole run at once: a batch of one new
			// stream grows its postings once, not log2(run) times.
			run := 1
			for i+run < len(events) && events[i+run].Stream == last {
				run++
			}
			if sp = e.Postings; sp == nil {
				sp = x.streams[last]
			}
			if sp == nil {
				sp = x.newStream(last, e.Version, run)
			} else {
				sp.Posts = x.grow(sp.Posts, run)
			}
		}
		sp.Posts = append(sp.Posts, Posting{Off: e.Off, Len: e.Len})
		e.Postings = sp
		x.maxPosts = max(x.maxPosts, len(sp.Posts))
	}
}

// ExtentWith bounds the extent of the segment this index would seal into
// with n more events, each maybe of a stream of its own with a name of up
// to nameLen bytes: the writer rolls before a batch that would take the
// segment past a bound of the format (Extent.Fits), since readers refuse
// such a segment once it is sealed. The bound is loose where exact sizes
// would cost the append path (each posting at its widest; a checkpoint's
// stream with as many postings as the checkpoint has events, and names of
// event.MaxStreamLen), so only segments of tiny events far larger than the
// default SegmentSize roll early because of it.
func (x *Index) ExtentWith(n, nameLen int) Extent {
	e := Extent{
		Events:   uint64(x.Count + n),
		Records:  x.End - HeaderSize,
		Streams:  uint64(len(x.streams) + n),
		Postings: int64(x.maxPosts+n)*maxPosting + binary.MaxVarintLen64,
		NameLen:  max(x.maxName, nameLen),
	}
	if x.base != nil {
		e.Streams += uint64(x.base.Streams)
		e.Postings += int64(x.base.Trailer.Count) * maxPosting
		e.NameLen = event.MaxStreamLen
	}
	return e
}

// Stream returns the stream's postings in this segment (ok false if none):
// the checkpoint's, read from its file, followed by those added since.
// Errors come from reading the checkpoint.
func (x *Index) Stream(name string) (StreamPostings, bool, error) {
	sp := x.streams[name]
	if x.base == nil {
		if sp == nil {
			return StreamPostings{}, false, nil
		}
		return *sp, true, nil
	}
	b, ok, err := x.base.stream(name)
	if err != nil {
		return StreamPostings{}, false, err
	}
	if !ok {
		if sp == nil {
			return StreamPostings{}, false, nil
		}
		return *sp, true, nil
	}
	if sp != nil {
		if n := b.FirstVersion + uint64(len(b.Posts)); sp.FirstVersion != n {
			return StreamPostings{}, false, corruptf(x.base.seg, sp.Posts[0].Off, "stream %q is at version %d before offset %d and continues at version %d", name, n-1, x.base.End, sp.FirstVersion)
		}
		b.Posts = append(b.Posts[:len(b.Posts):len(b.Posts)], sp.Posts...)
	}
	return b, true, nil
}

// LastVersion returns the version of the stream's last event in this
// segment, or 0. Errors come from reading the checkpoint.
func (x *Index) LastVersion(name string) (uint64, error) {
	if sp := x.streams[name]; sp != nil {
		return sp.FirstVersion + uint64(len(sp.Posts)) - 1, nil
	}
	if x.base == nil {
		return 0, nil
	}
	return x.base.lastVersion(name)
}

// Streams returns the number of distinct streams in the segment. With a
// checkpoint under the index it is only a lower bound (the streams of the
// checkpoint or of the events added since, whichever are more).
func (x *Index) Streams() int {
	if x.base != nil {
		return max(x.base.Streams, len(x.streams))
	}
	return len(x.streams)
}

// Sparse returns the sparse index. With a checkpoint under the index it is
// a new slice (the checkpoint's summary is read on first use).
func (x *Index) Sparse() ([]SparseEntry, error) {
	if x.base == nil {
		return x.sparse, nil
	}
	s, err := x.base.sparse()
	if err != nil {
		return nil, err
	}
	out := make([]SparseEntry, 0, len(s)+len(x.sparse))
	return append(append(out, s...), x.sparse...), nil
}

// FirstSeq returns the seq of the segment's first event.
func (x *Index) FirstSeq() uint64 { return x.BaseSeq }
