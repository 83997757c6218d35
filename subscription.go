package evlog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"
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
// Deletions: an event deleted after it was handed over is not retracted;
// the deletion marker (an event of DeletionsStream) is the signal, and it
// is filtered like any event. A subscriber keeping data of the events it
// handles must see the markers: include DeletionsStream in the filter's
// StreamPrefixes (and TypeDeleted, TypeTruncate and TypeTombstone in its
// Types, if it sets Types), or it keeps deleted data without knowing.
//
// A Subscription is safe for concurrent use. Only one value per name may
// be open on a Log at a time; Close releases the name (closing the Log
// releases every name).
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
// filter keeps its position and stores the new filter at its next Ack. A
// filter whose encoding is longer than a position file holds (64 KiB of
// JSON) is refused with an error matching ErrInvalidFilter.
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
	if _, err := subFilterBytes(f); err != nil { // Ack stores it
		return nil, err
	}
	if _, _, err := l.acquireNothing(); err != nil {
		return nil, err
	}
	// The name is taken before the position is read, so that no
	// DeleteSubscription removes the file between the read and the
	// registration (the subscription would go on from a deleted position).
	if _, loaded := openSubs.LoadOrStore(subKey{l, name}, struct{}{}); loaded {
		return nil, fmt.Errorf("%w: %q is open on this log; Close it first", ErrSubscriptionInUse, name)
	}
	info, ok, err := l.readSubscription(name)
	if err == nil && ok && !l.readOnly {
		if last := l.LastSeq(); info.Position > last {
			err = &subFileError{file: name + SubscriptionExt, reason: fmt.Sprintf(
				"position %d is beyond the log's last seq %d (the log was restored to an earlier point, or lost its tail); remove the file to start over from the first event", info.Position, last)}
		}
	}
	if err != nil {
		openSubs.Delete(subKey{l, name})
		return nil, err
	}
	s := &Subscription{l: l, name: name, filter: cloneFilter(f), m: f.compile()}
	if ok {
		s.pos, s.updated = info.Position, info.Updated
	}
	return s, nil
}

// releaseSubscriptions drops l's names from the registry (Close): a
// Subscription left open must not keep the closed Log reachable for good.
func (l *Log) releaseSubscriptions() {
	openSubs.Range(func(k, _ any) bool {
		if k.(subKey).l == l {
			openSubs.Delete(k)
		}
		return true
	})
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
// goes back: an Ack of a seq at or before the position does nothing. Ack
// first syncs the log up to seq unless that is durable already, so that a
// stored position never runs ahead of the durable events, nor of what a
// reader in another process (OpenReadOnly, evlogctl) serves after a power
// loss: under SyncAlways the events are durable once appended, but the
// mark that lets such a reader serve the last group is durable only with
// the next fsync, which Ack then has the writer make (at most one fsync
// per Ack: none when the fsync of a group appended meanwhile, or queued
// with the Ack, makes the mark durable, and one for all the Acks and
// snapshot Saves queued together); when that mark
// cannot be written for lack of space (see SyncAlways), Ack fails with an
// error matching syscall.ENOSPC and stores nothing. seq
// may be any seq up to the log's last (not only one handed over). A
// failed Ack leaves the old or the new position on disk; Ack again. On a
// closed log Ack fails with ErrClosed.
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
	// A closed log's process no longer holds the directory's lock.
	if _, _, err := s.l.acquireNothing(); err != nil {
		return fmt.Errorf("evlog: acknowledging subscription %q: %w", s.name, err)
	}
	if last := s.l.LastSeq(); seq > last {
		return fmt.Errorf("%w: seq %d, the log ends at %d", ErrAckBeyondEnd, seq, last)
	}
	// The events must be durable before a position past them is: under
	// SyncNever or SyncInterval a crash could otherwise lose them while
	// the position survives, and their seqs, appended again, be skipped.
	// Under SyncAlways they are, but the mark recording it may not be,
	// and a reader in another process (evlogctl subscriptions, verify)
	// serves only what a durable mark records: after a power loss it
	// would list a position past the end of the log it serves (see
	// syncThrough, the same rule for snapshots).
	if !s.l.servedAfterPowerLoss(seq) {
		if err := s.l.syncMarkedThrough(ctx, seq); err != nil {
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
	if err := l.dirSyncFailure(); err != nil { // dirsync.go
		return fmt.Errorf("evlog: deleting subscription %q: nothing was removed: %w", name, err)
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
