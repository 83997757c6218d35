package evlog

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/evlog/evlog/internal/vfs"
)

// Durable subscription position files (docs/FORMAT.md, "Subscription
// files"). Wire constants: never change them; a new layout gets a new
// version.
//
//	offset  size  field
//	0       6     magic "evlsub"
//	6       1     version (1)
//	7       1     flags (0)
//	8       8     position: the last acknowledged seq (uint64, little endian)
//	16      16    log ID
//	32      8     time of the acknowledgement, unix ns (int64)
//	40      4     filter length n (uint32, at most subMaxFilter)
//	44      n     filter, JSON ({"types":[…],"stream_prefixes":[…],"categories":[…]})
//	44+n    4     CRC32-C of bytes [0, 44+n)
const (
	SubscriptionExt = ".sub" // NAME.sub; NAME.sub.tmp while being replaced

	subMagic      = "evlsub"
	subVersion    = 1
	subVersionOff = 6
	subFlagsOff   = 7
	subPosOff     = 8
	subLogIDOff   = 16
	subTimeOff    = 32
	subFilterLen  = 40
	subFixedSize  = 44
	subMaxFilter  = 64 << 10
	subMaxNameLen = 100
)

// Subscription errors.
var (
	// ErrSubscriptionName is matched by the error for a subscription name
	// that is not 1 to 100 of the characters A-Z a-z 0-9 . _ - (not
	// starting with '.').
	ErrSubscriptionName = errors.New("evlog: invalid subscription name")
	// ErrSubscriptionInUse is matched by Log.Subscription's error when a
	// Subscription of that name is open on the same Log and not closed.
	ErrSubscriptionInUse = errors.New("evlog: subscription in use")
	// ErrAckBeyondEnd is matched by Ack's error for a seq past the log's
	// last event.
	ErrAckBeyondEnd = errors.New("evlog: acknowledged seq beyond the log's last event")
)

// openSubs is the registry of open Subscriptions, per log and name: two
// values writing one position file would interleave their temporaries.
var openSubs sync.Map // subKey -> struct{}

type subKey struct {
	l    *Log
	name string
}

// Subscription is a durable named subscription: a filtered subscription
// whose position — the last acknowledged seq — is stored in the log
// directory (NAME.sub), so that after a restart (of the process or the
// machine) it resumes right after the last acknowledged event.
//
// Delivery is at least once: an event handed over but not acknowledged
// before a crash is handed over again. Ack every event once handled (or
// every few, trading repeats after a crash for fewer fsyncs); handling
// must be idempotent. Exactly-once needs the position stored atomically
// with the handler's own state, as the projection runner does with its
// checkpoints: use it for projections.
//
// The position is that of the subscription's last acknowledged event. With
// a filter, the events between it and the log's end that do not match are
// counted in the lag (SubscriptionInfo.Lag) until the next Ack.
//
// A Subscription is safe for concurrent use. Only one value per name may
// be open on a Log at a time; Close releases the name.
type Subscription struct {
	l      *Log
	name   string
	filter Filter
	m      *matcher

	mu      sync.Mutex // serialises Ack and Close
	pos     uint64
	updated time.Time
	closed  bool
}

// SubscriptionInfo describes a durable subscription's stored state.
type SubscriptionInfo struct {
	Name     string
	Filter   Filter
	Position uint64    // last acknowledged seq (0: none yet)
	Updated  time.Time // when it was acknowledged (zero: never)
	// Lag is the number of events after Position in the log (LastSeq -
	// Position; 0 when the position is at or past the end), matching the
	// filter or not.
	Lag uint64
}

// validSubName reports whether name is a valid subscription name.
func validSubName(name string) bool {
	if name == "" || len(name) > subMaxNameLen || name[0] == '.' {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ParseSubscriptionFileName returns the subscription name of a position
// file name (NAME.sub), or ok false.
func ParseSubscriptionFileName(file string) (name string, ok bool) {
	name, ok = strings.CutSuffix(file, SubscriptionExt)
	return name, ok && validSubName(name)
}

// Subscription opens the durable subscription name (1 to 100 of A-Z a-z
// 0-9 . _ -, not starting with '.'), creating it at position 0 (nothing
// acknowledged: it starts from the first event) if the log directory holds
// no position file of that name. Nothing is written until the first Ack.
// f is the filter of its events; a subscription reopened with another
// filter keeps its position and stores the new filter at its next Ack.
//
// On a log opened with OpenReadOnly a Subscription reads its position and
// its events (following the writer), but Ack fails with ErrReadOnly: only
// the writer's process writes in the directory.
func (l *Log) Subscription(name string, f Filter) (*Subscription, error) {
	if !validSubName(name) {
		return nil, fmt.Errorf("%w %q: use 1 to %d of A-Z a-z 0-9 . _ - (not starting with '.')", ErrSubscriptionName, name, subMaxNameLen)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if _, _, err := l.acquireNothing(); err != nil {
		return nil, err
	}
	info, ok, err := l.readSubscription(name)
	if err != nil {
		return nil, err
	}
	if last := l.LastSeq(); ok && !l.readOnly && info.Position > last {
		return nil, &subFileError{file: name + SubscriptionExt, reason: fmt.Sprintf(
			"position %d is beyond the log's last seq %d (the log was restored to an earlier point, or lost its tail); remove the file to start over from the first event", info.Position, last)}
	}
	s := &Subscription{l: l, name: name, filter: cloneFilter(f), m: f.compile()}
	if ok {
		s.pos, s.updated = info.Position, info.Updated
	}
	if _, loaded := openSubs.LoadOrStore(subKey{l, name}, struct{}{}); loaded {
		return nil, fmt.Errorf("%w: %q is open on this log; Close it first", ErrSubscriptionInUse, name)
	}
	return s, nil
}

// acquireNothing fails with ErrClosed on a closed log.
func (l *Log) acquireNothing() (*view, published, error) {
	v, p, err := l.acquire()
	if err == nil {
		v.unref()
	}
	return v, p, err
}

func cloneFilter(f Filter) Filter {
	return Filter{Types: slices.Clone(f.Types), StreamPrefixes: slices.Clone(f.StreamPrefixes), Categories: slices.Clone(f.Categories)}
}

// Name returns the subscription's name.
func (s *Subscription) Name() string { return s.name }

// Filter returns the subscription's filter.
func (s *Subscription) Filter() Filter { return cloneFilter(s.filter) }

// Position returns the last acknowledged seq (0: none).
func (s *Subscription) Position() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pos
}

// Events returns SubscribeFiltered from right after the last acknowledged
// event: every matching event after Position, history then live, until
// ctx is done, the log is closed or a read fails. Each call starts again
// after the position acknowledged by then (events handed over but not
// acknowledged come again).
func (s *Subscription) Events(ctx context.Context) iter.Seq2[Envelope, error] {
	return func(yield func(Envelope, error) bool) {
		s.mu.Lock()
		from, closed := s.pos+1, s.closed
		s.mu.Unlock()
		if closed {
			yield(Envelope{}, fmt.Errorf("evlog: subscription %q is closed", s.name))
			return
		}
		for e, err := range s.l.subscribe(ctx, from, s.m) {
			if !yield(e, err) {
				return
			}
		}
	}
}

// Ack records that every matching event with a seq up to seq has been
// handled, durably: when Ack returns nil the position file holds seq (it
// was written to a temporary, fsynced, renamed over the old one and the
// directory fsynced), and a restart resumes after it. The position never
// goes back: an Ack of a seq at or before the position does nothing. Under
// SyncNever or SyncInterval, Ack first syncs the log up to seq (a stored
// position never runs ahead of the durable events). seq
// may be any seq up to the log's last (not only one handed over). A
// failed Ack leaves the old or the new position on disk; Ack again.
func (s *Subscription) Ack(ctx context.Context, seq uint64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("evlog: subscription %q is closed", s.name)
	}
	if seq <= s.pos {
		return nil
	}
	if s.l.readOnly {
		return fmt.Errorf("evlog: acknowledging subscription %q: %w (only the writer's process stores positions)", s.name, ErrReadOnly)
	}
	if last := s.l.LastSeq(); seq > last {
		return fmt.Errorf("%w: seq %d, the log ends at %d", ErrAckBeyondEnd, seq, last)
	}
	// The events must be durable before a position past them is: under
	// SyncNever or SyncInterval a crash could otherwise lose them while
	// the position survives, and their seqs, appended again, be skipped.
	if s.l.DurableSeq() < seq {
		if err := s.l.Sync(ctx); err != nil {
			return fmt.Errorf("evlog: acknowledging subscription %q: making the log durable first: %w", s.name, err)
		}
	}
	now := s.l.opts.Clock()
	if err := s.l.writeSubscription(s.name, seq, now, s.filter); err != nil {
		return err
	}
	s.pos, s.updated = seq, now
	return nil
}

// Close releases the subscription's name (the position file stays). It
// does not end running iterations (cancel their context).
func (s *Subscription) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		openSubs.Delete(subKey{s.l, s.name})
	}
	return nil
}

// DeleteSubscription removes the durable subscription name's position file
// (durably: the directory is fsynced). A missing one is not an error. It
// fails with ErrSubscriptionInUse while a Subscription of that name is
// open on l, and with ErrReadOnly on a read-only log.
func (l *Log) DeleteSubscription(name string) error {
	if !validSubName(name) {
		return fmt.Errorf("%w %q", ErrSubscriptionName, name)
	}
	if l.readOnly {
		return fmt.Errorf("evlog: deleting subscription %q: %w", name, ErrReadOnly)
	}
	if _, loaded := openSubs.LoadOrStore(subKey{l, name}, struct{}{}); loaded {
		return fmt.Errorf("%w: %q is open on this log; Close it first", ErrSubscriptionInUse, name)
	}
	defer openSubs.Delete(subKey{l, name})
	if _, _, err := l.acquireNothing(); err != nil {
		return err
	}
	err := l.fs.Remove(name + SubscriptionExt)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil {
		err = l.fs.SyncDir()
	}
	if err != nil {
		return fmt.Errorf("evlog: deleting subscription %q: %w", name, err)
	}
	return nil
}

// Subscriptions lists the durable subscriptions stored in the log
// directory, by name, with their lag against the log's last visible event.
// A position file that is damaged fails the call with an error matching
// ErrCorrupt naming it.
func (l *Log) Subscriptions() ([]SubscriptionInfo, error) {
	if _, _, err := l.acquireNothing(); err != nil {
		return nil, err
	}
	names, err := l.fs.List()
	if err != nil {
		return nil, fmt.Errorf("evlog: listing subscriptions: %w", err)
	}
	last := l.LastSeq()
	var out []SubscriptionInfo
	for _, n := range names {
		name, ok := ParseSubscriptionFileName(n)
		if !ok {
			continue
		}
		info, ok, err := l.readSubscription(name)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue // removed since the listing
		}
		if last > info.Position {
			info.Lag = last - info.Position
		}
		out = append(out, info)
	}
	return out, nil
}

// subFilterJSON is the filter's encoding in a position file.
type subFilterJSON struct {
	Types          []string `json:"types,omitempty"`
	StreamPrefixes []string `json:"stream_prefixes,omitempty"`
	Categories     []string `json:"categories,omitempty"`
}

var subCRC = crc32.MakeTable(crc32.Castagnoli)

// encodeSubscription returns the bytes of a position file.
func encodeSubscription(pos uint64, logID [16]byte, t time.Time, f Filter) ([]byte, error) {
	fj, err := json.Marshal(subFilterJSON(f))
	if err != nil {
		return nil, err
	}
	if len(fj) > subMaxFilter {
		return nil, fmt.Errorf("evlog: the subscription's filter encodes to %d bytes, more than %d", len(fj), subMaxFilter)
	}
	b := make([]byte, subFixedSize, subFixedSize+len(fj)+4)
	copy(b, subMagic)
	b[subVersionOff], b[subFlagsOff] = subVersion, 0
	binary.LittleEndian.PutUint64(b[subPosOff:], pos)
	copy(b[subLogIDOff:subTimeOff], logID[:])
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	binary.LittleEndian.PutUint64(b[subTimeOff:], uint64(ns))
	binary.LittleEndian.PutUint32(b[subFilterLen:], uint32(len(fj)))
	b = append(b, fj...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, subCRC)), nil
}

// decodeSubscription decodes a position file's bytes.
func decodeSubscription(b []byte) (pos uint64, logID [16]byte, t time.Time, f Filter, err error) {
	if len(b) < subFixedSize+4 || string(b[:len(subMagic)]) != subMagic {
		return 0, logID, t, f, errors.New("not a subscription position file (bad magic or too short)")
	}
	if b[subVersionOff] != subVersion {
		return 0, logID, t, f, fmt.Errorf("position file version %d, this build reads %d (upgrade evlog)", b[subVersionOff], subVersion)
	}
	n := binary.LittleEndian.Uint32(b[subFilterLen:])
	if n > subMaxFilter || int(n) != len(b)-subFixedSize-4 {
		return 0, logID, t, f, fmt.Errorf("filter length %d does not match the file's size %d", n, len(b))
	}
	body := b[:len(b)-4]
	if got, want := crc32.Checksum(body, subCRC), binary.LittleEndian.Uint32(b[len(body):]); got != want {
		return 0, logID, t, f, fmt.Errorf("checksum mismatch (stored %08x, computed %08x)", want, got)
	}
	if b[subFlagsOff] != 0 {
		return 0, logID, t, f, fmt.Errorf("unknown flags %#x", b[subFlagsOff])
	}
	var fj subFilterJSON
	if err := json.Unmarshal(body[subFixedSize:], &fj); err != nil {
		return 0, logID, t, f, fmt.Errorf("filter: %v", err)
	}
	f = Filter(fj)
	if err := f.Validate(); err != nil {
		return 0, logID, t, f, fmt.Errorf("filter: %v", err)
	}
	copy(logID[:], b[subLogIDOff:subTimeOff])
	if ns := int64(binary.LittleEndian.Uint64(b[subTimeOff:])); ns != 0 {
		t = time.Unix(0, ns).UTC()
	}
	return binary.LittleEndian.Uint64(b[subPosOff:]), logID, t, f, nil
}

// readSubscription reads name's position file (ok false if there is none).
func (l *Log) readSubscription(name string) (SubscriptionInfo, bool, error) {
	file := name + SubscriptionExt
	b, err := readSmallFile(l.fs, file, subFixedSize+subMaxFilter+4)
	if errors.Is(err, fs.ErrNotExist) {
		return SubscriptionInfo{}, false, nil
	}
	if err != nil {
		return SubscriptionInfo{}, false, fmt.Errorf("evlog: reading subscription %q: %w", name, err)
	}
	pos, id, t, f, err := decodeSubscription(b)
	if err != nil {
		return SubscriptionInfo{}, false, &subFileError{file: file, reason: err.Error() + " (remove the file to start the subscription over from the first event, or restore it from a copy)"}
	}
	if logID := l.LogID(); logID != ([16]byte{}) && id != logID {
		return SubscriptionInfo{}, false, &subFileError{file: file, reason: fmt.Sprintf("it belongs to another log (log ID %x, this log's %x); remove it", id, logID)}
	}
	return SubscriptionInfo{Name: name, Filter: f, Position: pos, Updated: t}, true, nil
}

// subFileError is a damaged subscription position file; it matches
// ErrCorrupt.
type subFileError struct{ file, reason string }

func (e *subFileError) Error() string {
	return "evlog: damaged subscription position file " + e.file + ": " + e.reason
}

func (e *subFileError) Is(target error) bool { return target == ErrCorrupt }

// readSmallFile reads a regular file of at most limit bytes.
func readSmallFile(fsys vfs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	if size > limit {
		return nil, &subFileError{file: name, reason: fmt.Sprintf("%d bytes, more than %d", size, limit)}
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !(errors.Is(err, io.EOF) && size == 0) {
		return nil, err
	}
	return b, nil
}

// writeSubscription replaces name's position file atomically and durably:
// temporary, fsync, rename, directory fsync.
func (l *Log) writeSubscription(name string, pos uint64, t time.Time, filter Filter) error {
	b, err := encodeSubscription(pos, l.LogID(), t, filter)
	if err != nil {
		return err
	}
	file := name + SubscriptionExt
	tmp := file + ".tmp"
	fail := func(err error) error {
		return fmt.Errorf("evlog: storing the position of subscription %q (the previous one stays; Ack again): %w", name, err)
	}
	f, err := l.fs.Create(tmp)
	if err != nil {
		return fail(err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.fs.Rename(tmp, file)
	}
	if err == nil {
		err = l.fs.SyncDir()
	}
	if err != nil {
		return fail(err)
	}
	return nil
}
