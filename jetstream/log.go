package jetstream

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evlog/evlog"
)

// Config configures Open. Only Name is required.
type Config struct {
	// Name names the log: 1 to 64 ASCII letters, digits, "-" or "_". The
	// log is the JetStream stream EVLOG_<Name> with subjects
	// evlog.<Name>.<stream>; its snapshots live in the KV bucket
	// EVLOG_<Name>_SNAPMETA and the object store EVLOG_<Name>_SNAPSHOTS.
	Name string
	// Replicas is the number of copies of the stream and of the snapshot
	// buckets (default 3; 1 for a single server). Fixed at creation.
	Replicas int
	// Duplicates is the stream's duplicate window: a retried append (same
	// event IDs) within it is recognised and not stored twice (default 2
	// minutes).
	Duplicates time.Duration
	// Clock stamps events appended without a Time (default time.Now).
	Clock func() time.Time
	// MaxClockSkew bounds how far ahead of Clock an event's explicit Time
	// may be, as evlog.Options.MaxClockSkew does: an append with a later
	// Time fails with evlog.ErrFutureTime (a *evlog.FutureTimeError) and
	// writes nothing, since recorded times never decrease and one event in
	// the future would pin every later event's time to it. 0 means
	// evlog.DefaultMaxClockSkew (1 minute); evlog.NoClockSkewLimit (any
	// negative value) disables the check.
	MaxClockSkew time.Duration
	// Timeout bounds each request to the servers when ctx has no deadline
	// (default 10 s).
	Timeout time.Duration
	// Retries bounds how often an append whose outcome is unknown (a
	// timeout, a lost connection) is retried with the same event IDs
	// before ErrUnknownOutcome (default 5).
	Retries int
	// Logger receives warnings (nil: discard).
	Logger *slog.Logger
}

// Errors of this package; the log also returns the evlog sentinels
// (evlog.ErrVersionConflict, evlog.ErrInvalid, evlog.ErrTimeBackwards).
var (
	// ErrUnknownOutcome is returned when an append was sent but no answer
	// came back (or none that could be parsed), even after Config.Retries
	// retries with the same event IDs: the events may or may not be in the
	// log. Retry the append with
	// the same IDs (it is idempotent within the duplicate window), or read
	// the stream to find out.
	ErrUnknownOutcome = errors.New("evlog/jetstream: the outcome of the append is unknown; retry it with the same event IDs or read the stream")
	// ErrBatchTooLarge is returned by an append of more than MaxBatch
	// events: JetStream commits at most that many atomically. Nothing was
	// written; split the batch yourself if its parts need not be atomic.
	ErrBatchTooLarge = errors.New("evlog/jetstream: more events in one atomic append than JetStream allows")
	// ErrConfig is returned by Open when the stream exists with a
	// configuration the log cannot work with (limits that delete events,
	// no atomic publish, other subjects, no log ID).
	ErrConfig = errors.New("evlog/jetstream: the stream's configuration does not suit an event log")
	// ErrStreamReplaced matches a *StreamReplacedError: the stream holding
	// the log is no longer the one the Log was opened on. Open the log
	// again.
	ErrStreamReplaced = errors.New("evlog/jetstream: the log's stream was replaced while the Log was open; open the log again")
	// ErrForeignStream matches a *ForeignStreamError: an append reached
	// another stream than the log's. It never counts as stored in the log.
	ErrForeignStream = errors.New("evlog/jetstream: an append reached another stream than the log's; check the account's subject mappings and the subjects of its other streams")
)

// ForeignStreamError reports an append that reached a JetStream stream
// other than the log's: the servers route the log's subjects elsewhere (an
// account subject mapping, a stream claiming them through an import, a
// misconfigured server). The events are not in the log, and the append is
// not retried (a retry would go the same way). Every message an append
// sends names the log's stream (the Nats-Expected-Stream header), so a
// server refuses to store it in another (Stored false, Other unknown: the
// server does not name it); a server that stores it there all the same
// acknowledges it from Other (Stored true, Seq its last seq there), and
// the events must then be removed from Other by hand. Fix the routing
// (check the account's subject mappings and other streams' subjects for
// Stream's subjects, evlog.<Name>.>) and append again.
type ForeignStreamError struct {
	Stream string // the log's stream
	Other  string // the stream that acknowledged the append ("": unknown)
	Seq    uint64 // the seq of its last event in Other, when Stored
	Stored bool   // Other stored the events (they are not in the log)
}

func (e *ForeignStreamError) Error() string {
	if !e.Stored {
		return fmt.Sprintf("evlog/jetstream: append to stream %s reached another stream, which refused it: nothing was stored; the servers route the log's subjects to another stream: check the account's subject mappings and other streams' subjects, then append again", e.Stream)
	}
	return fmt.Sprintf("evlog/jetstream: append to stream %s was acknowledged by stream %s (seq %d): the events are stored there, not in the log; check the account's subject mappings and other streams' subjects, remove them from %s, then append again", e.Stream, e.Other, e.Seq, e.Other)
}

// Is reports whether target is ErrForeignStream.
func (e *ForeignStreamError) Is(target error) bool { return target == ErrForeignStream }

// StreamReplacedError reports that the stream holding the log no longer
// holds an event the Log saw stored there: it was deleted and recreated
// under the same name (by hand or by another process's Open), restored
// from an older backup, purged, or lost acknowledged events in a crash of
// servers not run with sync_interval: always, while the Log was open.
// Deletes and purges are denied on a log's stream, so the stream the Log
// knew is gone;
// the Log refuses further work with this error (LastSeq aside), since
// appending after, or reading by, seqs of another stream would be wrong.
// Nothing was written by the call that returned it. Open the log again
// (Open) to work on the stream as it now is, and check that its contents
// are what you expect: the events the old stream held may be lost.
//
// The Log finds this out when it reads the stream's end (LastSeq, an
// append losing the race for the end, Range, SeqAt, a snapshot Save) and
// finds the last seq it knew of missing, or holding another event than the
// one it saw there (another Nats-Msg-Id), also when the new stream holds
// as many events as that or more. An append finds it too when the new
// stream ends exactly at the last seq the Log knew of (its expectation on
// the log's end then holds), by checking the event at that seq before
// sending: for free when one of its streams ends there (it reads that
// stream's head anyway); else it reads the event, with one more request
// made concurrently with the heads' reads, but only while the Log's watch
// of the servers' advisories about the stream is suspect (see the
// package documentation): until the watch has proof that the account's
// advisories reach the Log (an audit advisory of a request on the
// stream), after any advisory about the stream (the deletion and the
// creation of a replacement among them), after the connection
// reconnected or an advisory was dropped, until an append has read the
// event since. While the watch has seen nothing, an append costs no more
// than without the check. Where advisories do not reach the Log (a user
// who may not subscribe to $JS.EVENT.>, a JetStream domain or an API
// imported from another account) every append reads the event.
//
// What cannot be told apart: a replacement made between that read (or,
// while the watch has seen nothing, the arrival of its advisories: the
// servers send them asynchronously, after the deletion, usually within
// microseconds on one server and a route hop on a cluster) and the
// append's commit is not seen by that append (JetStream cannot make an
// atomic batch conditional on the last message's identity, and checks it
// for a single message only as each replica applies it: see checkEnd);
// on a cluster, the Log cannot know of advisories lost on a route between
// the servers that broke and healed while its connection stayed up, so a
// replacement made meanwhile, ending at the Log's last seq, is found only
// when the Log next reads the stream's end (LastSeq, Range, an append
// losing the race for the end); and a new stream holding the same
// message (the same Nats-Msg-Id) at the last seq the Log knew of is taken
// for the old one. A restart of the
// servers keeping the stream is no replacement (the event is still
// there); one that lost acknowledged events (servers not run with
// sync_interval: always) is reported as one, since the history the Log
// saw is gone.
type StreamReplacedError struct {
	Stream string // the JetStream stream
	Seen   uint64 // a seq the Log saw an event stored at, which the stream no longer holds there
	Last   uint64 // the stream's last seq when that was found (0: empty)
}

func (e *StreamReplacedError) Error() string {
	return fmt.Sprintf("evlog/jetstream: stream %s no longer holds the event this Log saw stored at seq %d (its last seq is now %d): it was deleted and recreated, restored from an older backup or purged while the Log was open; open the log again and check its contents",
		e.Stream, e.Seen, e.Last)
}

// Is reports whether target is ErrStreamReplaced.
func (e *StreamReplacedError) Is(target error) bool { return target == ErrStreamReplaced }

// MaxBatch is the largest number of events one Append or AppendBatch may
// carry: JetStream's limit on an atomic batch.
const MaxBatch = 1000

// metaLogID is the stream metadata key holding the log's identity.
const metaLogID = "evlog_log_id"

// Log is an evlog event log stored in a JetStream stream. It serves the
// same consumer-side interfaces as *evlog.Log (replay.Source,
// aggregate.Log, projection.Source), so aggregate.Repository,
// projection.Runner and replay run on it unchanged; Snapshots returns its
// snapshot store. All methods are safe for concurrent use, also by several
// processes on several machines appending to one log.
//
// Mapping: an event's global Seq is its JetStream stream sequence, its
// stream is the subject evlog.<Name>.<escaped stream>, and Version, Type,
// SchemaVersion, ID, Meta and Time travel in headers. Time is stamped by
// the appending client and kept non-decreasing in seq order by the log
// (each append expects the stream's last sequence it has read, and retries
// when another writer got there first), because JetStream's own timestamp
// is the stream leader's clock, which can run backwards across a leader
// change.
type Log struct {
	js         jetstream.JetStream
	nc         *nats.Conn
	cfg        Config
	logger     *slog.Logger
	streamName string
	prefix     string // subject prefix "evlog.<Name>."
	apiPrefix  string
	logID      [16]byte
	duplicates time.Duration // the stream's duplicate window, as configured

	mu         sync.Mutex
	lastSeq    uint64 // the last seq this Log knows of
	lastTime   time.Time
	lastID     string            // the Nats-Msg-Id (as stored) of the event at lastSeq
	lastStream string            // the stream of the event at lastSeq (see headsAndEnd)
	replaced   error             // the *StreamReplacedError once found (then final)
	hints      map[string][]hint // stream -> (version, seq) pairs seen lately

	// watch tells an append whether it must read the event at lastSeq
	// (nil: always; see watch).
	watch *watch

	// closed is done once Close was called (its cause evlog.ErrClosed).
	closed     context.Context
	closeCause context.CancelCauseFunc

	// snapMu guards snaps, set by the first Snapshots call that creates
	// the buckets; a failed call leaves it nil, so the next one retries.
	snapMu sync.Mutex
	snaps  *Snapshots
}

// Open opens the log cfg.Name on js, creating its stream if needed (file
// storage, cfg.Replicas copies, atomic batches and direct reads allowed,
// deletes and purges denied, no age/size/count limits so that seqs stay
// gap-free). An existing stream is checked, never changed: a configuration
// that could lose events (memory storage among them) is ErrConfig.
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Log, error) {
	if !validName(cfg.Name) {
		return nil, fmt.Errorf("evlog/jetstream: log name %q: use 1 to 64 ASCII letters, digits, '-' or '_'", cfg.Name)
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 3
	}
	if cfg.Duplicates == 0 {
		cfg.Duplicates = 2 * time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.MaxClockSkew == 0 {
		cfg.MaxClockSkew = evlog.DefaultMaxClockSkew
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Retries == 0 {
		cfg.Retries = 5
	}
	l := &Log{js: js, nc: js.Conn(), cfg: cfg, logger: cfg.Logger,
		streamName: "EVLOG_" + cfg.Name, prefix: "evlog." + cfg.Name + "."}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	l.closed, l.closeCause = context.WithCancelCause(context.Background())
	o := js.Options()
	switch {
	case o.Domain != "":
		l.apiPrefix = "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		l.apiPrefix = o.APIPrefix
	default:
		l.apiPrefix = jetstream.DefaultAPIPrefix
	}
	if !strings.HasSuffix(l.apiPrefix, ".") {
		l.apiPrefix += "."
	}
	// Watch before the first read: whatever happens to the stream after
	// the Log reads its end is seen (see watch).
	l.watch = startWatch(l.nc, l.apiPrefix, l.streamName)
	info, err := l.ensureStream(ctx)
	if err == nil {
		err = l.checkStream(info.Config)
	}
	if err == nil {
		err = l.refresh(ctx)
	}
	if err != nil {
		l.watch.stop()
		return nil, err
	}
	return l, nil
}

func (l *Log) streamConfig() (jetstream.StreamConfig, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return jetstream.StreamConfig{}, err
	}
	return jetstream.StreamConfig{
		Name:               l.streamName,
		Description:        "evlog event log " + l.cfg.Name,
		Subjects:           []string{l.prefix + ">"},
		Storage:            jetstream.FileStorage,
		Replicas:           l.cfg.Replicas,
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardNew,
		MaxMsgs:            -1,
		MaxBytes:           -1,
		MaxAge:             0,
		MaxMsgsPerSubject:  -1,
		MaxConsumers:       -1,
		Duplicates:         l.cfg.Duplicates,
		DenyDelete:         true,
		DenyPurge:          true,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		Metadata:           map[string]string{metaLogID: hex.EncodeToString(id[:])},
	}, nil
}

func (l *Log) ensureStream(ctx context.Context) (*jetstream.StreamInfo, error) {
	for range 3 {
		lctx, cancel := l.bound(ctx)
		s, err := l.js.Stream(lctx, l.streamName)
		cancel()
		if err == nil {
			return s.CachedInfo(), nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("evlog/jetstream: looking up stream %s: %w", l.streamName, err)
		}
		sc, err := l.streamConfig()
		if err != nil {
			return nil, err
		}
		cctx, cancel := l.bound(ctx)
		s, err = l.js.CreateStream(cctx, sc)
		cancel()
		if err == nil {
			return s.CachedInfo(), nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil, fmt.Errorf("evlog/jetstream: creating stream %s: %w", l.streamName, err)
		}
		// Created concurrently by another process: look it up again.
	}
	return nil, fmt.Errorf("evlog/jetstream: stream %s keeps appearing and disappearing", l.streamName)
}

// bound returns ctx bounded by Config.Timeout unless it has a deadline.
func (l *Log) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, l.cfg.Timeout)
}

func (l *Log) checkStream(c jetstream.StreamConfig) error {
	var bad []string
	l.duplicates = c.Duplicates
	if !slices.Equal(c.Subjects, []string{l.prefix + ">"}) {
		bad = append(bad, fmt.Sprintf("subjects %v, want [%s>]", c.Subjects, l.prefix))
	}
	if c.Storage != jetstream.FileStorage {
		bad = append(bad, fmt.Sprintf("%s storage (a restart of its servers would lose every event), want file", strings.ToLower(c.Storage.String())))
	}
	if !c.AllowAtomicPublish {
		bad = append(bad, "atomic publish not allowed")
	}
	if !c.AllowDirect {
		bad = append(bad, "direct get not allowed")
	}
	if !c.DenyDelete || !c.DenyPurge {
		bad = append(bad, "deletes or purges allowed (they would leave gaps in the seqs)")
	}
	if c.MaxMsgs > 0 || c.MaxBytes > 0 || c.MaxAge > 0 || c.MaxMsgsPerSubject > 0 || c.Retention != jetstream.LimitsPolicy {
		bad = append(bad, "limits or a retention policy that remove events")
	}
	id, err := hex.DecodeString(c.Metadata[metaLogID])
	if err != nil || len(id) != 16 {
		bad = append(bad, fmt.Sprintf("no valid %s in the stream metadata", metaLogID))
	} else {
		copy(l.logID[:], id)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: stream %s: %s; fix the stream or use another log name", ErrConfig, l.streamName, strings.Join(bad, "; "))
	}
	return nil
}

// hint is where one version of a stream is: Stream starts its scan there
// instead of at seq 1 when asked for later versions (an aggregate reloading
// after a snapshot or its cached state).
type hint struct{ version, seq uint64 }

// maxHints bounds the streams in the hint map (it is cleared when full),
// hintsPerStream the pairs kept per stream (the newest).
const (
	maxHints       = 4096
	hintsPerStream = 4
)

// learn records that version of stream is at seq.
func (l *Log) learn(stream string, version, seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.hints == nil || len(l.hints) >= maxHints {
		l.hints = map[string][]hint{}
	}
	hs := l.hints[stream]
	for _, h := range hs {
		if h.version == version {
			return
		}
	}
	if len(hs) == hintsPerStream {
		hs = hs[1:]
	}
	l.hints[stream] = append(slices.Clip(hs), hint{version, seq})
}

// hintBefore returns the known (version, seq) of stream with the highest
// version below v, or ok false.
func (l *Log) hintBefore(stream string, v uint64) (best hint, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.hints[stream] {
		if h.version < v && (!ok || h.version > best.version) {
			best, ok = h, true
		}
	}
	return best, ok
}

// Name returns the log's name.
func (l *Log) Name() string { return l.cfg.Name }

// StreamName returns the name of the JetStream stream holding the log.
func (l *Log) StreamName() string { return l.streamName }

// LogID returns the log's identity (random, fixed when the stream was
// created, kept in its metadata).
func (l *Log) LogID() [16]byte { return l.logID }

// LastSeq returns the seq of the last event (0: empty), asking the stream
// leader. The interface it serves has no error: if the servers cannot be
// reached within Config.Timeout it returns the last seq this Log knows of
// (never more than the truth) and logs a warning. If the stream was
// replaced (see StreamReplacedError) it returns the new stream's last seq
// and logs an error.
func (l *Log) LastSeq() uint64 {
	if err := l.refresh(context.Background()); errors.Is(err, ErrStreamReplaced) {
		l.logger.Error("evlog/jetstream: LastSeq: the log's stream was replaced; open the log again", "err", err)
	} else if err != nil {
		l.logger.Warn("evlog/jetstream: LastSeq: the stream leader did not answer; using the last known seq", "err", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastSeq
}

// refresh reads the stream's last event (seq and recorded time) from the
// stream leader. A seq below the last one this Log knows of is either an
// answer overtaken by this Log's own append or a stream that lost events:
// refresh tells them apart by asking for the event at the known seq, and
// returns a *StreamReplacedError for the latter.
//
// A stream holding as many events as the Log knows of, or more, is checked
// too: the event at the known seq must be the one the Log saw there (the
// same Nats-Msg-Id: random per event unless the caller set its ID). Its
// end is the last message read (no further request); a later seq costs
// one more read, of the event at the known seq.
func (l *Log) refresh(ctx context.Context) error {
	m, found, err := l.getMsg(ctx, 0, l.prefix+">")
	if err != nil {
		return err
	}
	seq, t, id, stream := uint64(0), time.Time{}, "", ""
	if found {
		e, err := l.decode(m.Subject, m.Seq, m.hdr, nil)
		if err != nil {
			return err
		}
		seq, t, id, stream = e.Seq, e.Time, m.hdr.Get(jetstream.MsgIDHeader), e.Stream
	}
	l.mu.Lock()
	known, knownID := l.lastSeq, l.lastID
	l.mu.Unlock()
	same := true // the stream holds the event the Log saw at known
	switch {
	case known == 0 || knownID == "":
	case seq == known:
		same = id == knownID
	default:
		// Below known: overtaken by an append of this Log, or events
		// lost. Above: appended since, or another stream holding more.
		k, found, err := l.getMsg(ctx, known, "")
		if err != nil {
			return err
		}
		same = found && k.hdr.Get(jetstream.MsgIDHeader) == knownID
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if same {
		if seq >= l.lastSeq {
			l.lastSeq, l.lastTime, l.lastID, l.lastStream = seq, t, id, stream
		}
		return nil
	}
	// Deletes and purges are denied: the stream is not the one this Log
	// saw the event in.
	rerr := &StreamReplacedError{Stream: l.streamName, Seen: known, Last: seq}
	if l.replaced == nil {
		l.replaced = rerr
	}
	l.lastSeq, l.lastTime, l.lastID, l.lastStream = seq, t, id, stream // never more than the truth
	return rerr
}

// Close marks the end of use, as closing the file log does: appends and
// reads started later fail with evlog.ErrClosed, and running
// subscriptions end with it (iterations of Range and Stream already
// running finish). It unsubscribes the Log from its stream's advisories
// (see StreamReplacedError) and releases nothing else: the connection and
// the stream are the caller's, shared with other Logs. Close is
// idempotent.
func (l *Log) Close() error {
	l.closeCause(evlog.ErrClosed)
	l.watch.stop()
	return nil
}

// closedErr returns evlog.ErrClosed once Close was called, else the
// *StreamReplacedError once refresh found the stream replaced.
func (l *Log) closedErr() error {
	if l.closed.Err() != nil {
		return evlog.ErrClosed
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.replaced
}
