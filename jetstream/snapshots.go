package jetstream

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/evlog/evlog/snapshot"
)

// Snapshot storage limits.
const (
	// MaxSnapshotSize is the largest state Save accepts.
	MaxSnapshotSize = 1 << 30
	// inlineMax is the largest state kept in the KV record itself
	// (projection checkpoints and most aggregates); larger states go to
	// the object store, which chunks them below max_payload.
	inlineMax = 64 << 10
)

// Snapshots is the snapshot store of a JetStream log: a KV bucket holding
// one record per snapshot (its snapshot.Meta, a SHA-256 of the state, and
// the state itself when it is at most 64 KiB, as projection checkpoints
// usually are), and an object store holding the larger states. It
// satisfies replay.Snapshots, replay.Saver, aggregate.Snapshots and
// projection.Checkpoints.
//
// The KV record is the commit point: Save writes the object first, then
// creates the record (failing with snapshot.ErrExists if one exists);
// Prune and Remove delete the record first, then the object. A crash in
// between leaves at worst an unreferenced object, never a record without
// its state; Sweep deletes such objects. A record is created only at the
// revision its key had before the object was stored (a Save whose key
// moved on meanwhile tries again), which is what lets Sweep run beside
// Saves. Load verifies size and checksum; a mismatch is a
// *snapshot.CorruptError, which replay treats as a fallback.
type Snapshots struct {
	l        *Log
	kv       jetstream.KeyValue
	kvBucket string
	obs      jetstream.ObjectStore
}

// record is the KV value of one snapshot.
type record struct {
	Name          string `json:"name"`
	LogID         string `json:"log_id"`
	Seq           uint64 `json:"seq"`
	Time          int64  `json:"time_ns"`
	SchemaVersion uint64 `json:"schema_version"`
	RawSize       int64  `json:"raw_size"`
	SHA256        string `json:"sha256"`
	Inline        []byte `json:"inline,omitempty"`
	Object        string `json:"object,omitempty"`
	// Anchor is snapshot.AnchorOf the log's event at Seq at Save (0 or
	// absent: not recorded, in records saved before it was).
	Anchor uint64 `json:"anchor,omitempty"`
	// Scope is snapshot.Meta.Scope, the digest of the owner's scope (a
	// projection's Categories; 0 or absent: not recorded).
	Scope uint64 `json:"scope,omitempty"`
	// Unfolded is snapshot.Meta.Unfolded, each range a pair [from, to]
	// (absent: not recorded). Untrusted on load: more than
	// snapshot.MaxUnfolded ranges, a range not a pair, or ranges not
	// sorted, disjoint, not adjacent and within [1, Seq] make the record
	// corrupt (unfoldedOf).
	Unfolded [][]uint64 `json:"unfolded,omitempty"`
}

// unfoldedRecord returns u as the record holds it (nil when empty).
func unfoldedRecord(u snapshot.SeqRanges) [][]uint64 {
	var out [][]uint64
	for r := range u.All() {
		out = append(out, []uint64{r.From, r.To})
	}
	return out
}

// unfoldedOf returns the ranges a record at seq holds, or why they are
// not a valid snapshot.Meta.Unfolded of it (snapshot.CheckUnfolded).
func unfoldedOf(rec [][]uint64, seq uint64) (snapshot.SeqRanges, error) {
	if len(rec) > snapshot.MaxUnfolded {
		return snapshot.SeqRanges{}, fmt.Errorf("%d unfolded ranges, more than %d", len(rec), snapshot.MaxUnfolded)
	}
	rs := make([]snapshot.SeqRange, 0, len(rec))
	for i, p := range rec {
		if len(p) != 2 {
			return snapshot.SeqRanges{}, fmt.Errorf("unfolded range %d has %d bounds, not 2", i, len(p))
		}
		rs = append(rs, snapshot.SeqRange{From: p[0], To: p[1]})
	}
	u := snapshot.MakeSeqRanges(rs...)
	if err := snapshot.CheckUnfolded(u, seq); err != nil {
		return snapshot.SeqRanges{}, err
	}
	return u, nil
}

// Snapshots returns the log's snapshot store, creating its buckets on
// first use (with the log's replica count). A failure (a timeout on a
// busy cluster, a conflicting bucket) is returned and not kept: the next
// call tries again. Safe for concurrent use.
func (l *Log) Snapshots() (*Snapshots, error) {
	l.snapMu.Lock()
	defer l.snapMu.Unlock()
	if l.snaps != nil {
		return l.snaps, nil
	}
	ctx, cancel := l.bound(context.Background())
	defer cancel()
	kvName, obsName := l.streamName+"_SNAPMETA", l.streamName+"_SNAPSHOTS"
	s := &Snapshots{l: l, kvBucket: kvName}
	var err error
	s.kv, err = l.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: kvName, Description: "evlog snapshot records of " + l.cfg.Name,
		History: 1, Storage: jetstream.FileStorage, Replicas: l.cfg.Replicas})
	if err != nil {
		return nil, fmt.Errorf("evlog/jetstream: snapshot bucket %s: %w (nothing is kept: call Snapshots again to retry)", kvName, err)
	}
	s.obs, err = l.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: obsName, Description: "evlog snapshot states of " + l.cfg.Name,
		Storage: jetstream.FileStorage, Replicas: l.cfg.Replicas})
	if err != nil {
		return nil, fmt.Errorf("evlog/jetstream: snapshot object store %s: %w (call Snapshots again to retry)", obsName, err)
	}
	l.snaps = s
	return s, nil
}

// key returns the record key of a snapshot: the escaped name and the seq.
func key(name string, seq uint64) string { return escape(name) + "." + fmt.Sprintf("%020d", seq) }

func checkName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty snapshot name", snapshot.ErrInvalid)
	case len(name) > snapshot.MaxNameLen:
		return fmt.Errorf("%w: snapshot name is %d bytes, the limit is %d", snapshot.ErrInvalid, len(name), snapshot.MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: snapshot name %q is not valid UTF-8", snapshot.ErrInvalid, name)
	}
	return nil
}

// Save stores a snapshot of state as m (Name, LogID, Seq, Time,
// SchemaVersion; the rest is set, Anchor from the log's event at Seq, as
// the file store does: see snapshot.Meta.Anchor) and returns its full Meta. It refuses a
// snapshot beyond the end of the log, an existing one (snapshot.ErrExists)
// and states over MaxSnapshotSize (snapshot.ErrTooLarge). When it returns
// nil the snapshot is stored with the servers' durability (see README).
// When the answer to the record's create is lost (a timeout, a cut
// connection), Save reads the record back: its own record stored is
// success, never an error over a stored snapshot; if it cannot tell, the
// error says so, and the state object is kept for the record that may
// reference it (saving again then reports snapshot.ErrExists if it does);
// Sweep deletes it once no record can.
func (s *Snapshots) Save(ctx context.Context, m snapshot.Meta, state []byte) (snapshot.Meta, error) {
	if err := checkName(m.Name); err != nil {
		return snapshot.Meta{}, err
	}
	switch {
	case m.Seq == 0:
		return snapshot.Meta{}, fmt.Errorf("%w: snapshot %q has seq 0; it must be the seq of the last event folded in", snapshot.ErrInvalid, m.Name)
	case m.Time.IsZero():
		return snapshot.Meta{}, fmt.Errorf("%w: snapshot %q at seq %d has no time", snapshot.ErrInvalid, m.Name, m.Seq)
	case m.Time.Before(minTime) || m.Time.After(maxTime):
		return snapshot.Meta{}, fmt.Errorf("%w: snapshot %q time %v is outside the years 1678 to 2262", snapshot.ErrInvalid, m.Name, m.Time)
	case len(state) > MaxSnapshotSize:
		return snapshot.Meta{}, fmt.Errorf("%w: state of %v is %d bytes, the limit is %d", snapshot.ErrTooLarge, m, len(state), MaxSnapshotSize)
	}
	if _, err := unfoldedOf(unfoldedRecord(m.Unfolded), m.Seq); err != nil {
		return snapshot.Meta{}, fmt.Errorf("%w: snapshot %v: %w", snapshot.ErrInvalid, m, err)
	}
	if err := s.l.refresh(ctx); err != nil {
		return snapshot.Meta{}, err
	}
	s.l.mu.Lock()
	last := s.l.lastSeq
	s.l.mu.Unlock()
	if m.Seq > last {
		return snapshot.Meta{}, fmt.Errorf("evlog/jetstream: a snapshot at seq %d is beyond the end of the log (%d)", m.Seq, last)
	}
	// The anchor: which event the state was folded up to, so that replay
	// tells it from another event at the same seq and time.
	var anchor uint64
	for e, err := range s.l.Range(ctx, m.Seq, m.Seq) {
		if err != nil {
			return snapshot.Meta{}, fmt.Errorf("evlog/jetstream: save %v: reading the event at its seq: %w", m, err)
		}
		anchor = snapshot.AnchorOf(e)
	}
	switch {
	case anchor != 0 && m.Anchor != 0 && anchor != m.Anchor:
		return snapshot.Meta{}, fmt.Errorf("%w: snapshot %v: the log's event at seq %d is not the one the state was folded up to (anchor mismatch); fold again from the log",
			snapshot.ErrInvalid, m, m.Seq)
	case anchor != 0:
		m.Anchor = anchor
	}
	m.Time = m.Time.UTC()
	m.RawSize, m.CompressedSize = int64(len(state)), int64(len(state))
	m.File = key(m.Name, m.Seq)
	sum := sha256.Sum256(state)
	rec := record{Name: m.Name, LogID: hex.EncodeToString(m.LogID[:]), Seq: m.Seq, Time: m.Time.UnixNano(),
		SchemaVersion: m.SchemaVersion, RawSize: m.RawSize, SHA256: hex.EncodeToString(sum[:]), Anchor: m.Anchor, Scope: m.Scope,
		Unfolded: unfoldedRecord(m.Unfolded)}
	callerCtx := ctx
	ctx, cancel := s.l.bound(ctx)
	defer cancel()
	for attempt := 1; ; attempt++ {
		// The record is created only if its key is still at the revision
		// read here, before the object is stored: a Sweep that may delete
		// the object moves the key on first, so the record can never
		// name a deleted object (see Sweep).
		_, rev, found, err := s.getRecord(ctx, m.File)
		if err != nil {
			return snapshot.Meta{}, fmt.Errorf("evlog/jetstream: save %v: %w", m, err)
		} else if found {
			return snapshot.Meta{}, fmt.Errorf("%w: %v", snapshot.ErrExists, m)
		}
		if len(state) <= inlineMax {
			rec.Inline = state
			if rec.Inline == nil {
				rec.Inline = []byte{}
			}
		} else {
			rec.Object = m.File + "." + newID()
			if _, err := s.obs.PutBytes(ctx, rec.Object, state); err != nil {
				return snapshot.Meta{}, fmt.Errorf("evlog/jetstream: save %v: storing the state: %w", m, err)
			}
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return snapshot.Meta{}, err
		}
		if _, err := s.kv.Update(ctx, m.File, b, rev); err != nil {
			got, again, err := s.created(callerCtx, m, rec.Object, b, err)
			if again && attempt < saveAttempts {
				continue
			}
			return got, err
		}
		return m, nil
	}
}

// saveAttempts bounds the attempts of one Save whose key moves on between
// reading it and creating the record (a concurrent Sweep, or another
// process's Save and Remove).
const saveAttempts = 3

// created settles a Save whose record create failed with err: the answer
// may have been lost after the record was stored (a timeout, a cut
// connection), so the record is read back from the leader (in a request
// of its own: err may be ctx's deadline) before anything is decided. Its
// own record stored (value b, which names its object) is success; another
// record under the key is snapshot.ErrExists, and its object, which no
// record references, is deleted (best effort). A key that moved on with
// no record under it (the server refused the create: a Sweep, or another
// Save and Remove, came between) asks for another attempt (again), its
// object deleted. Otherwise the object is left alone (the record might
// yet be stored, until a Sweep makes sure it cannot) and err is returned.
func (s *Snapshots) created(ctx context.Context, m snapshot.Meta, object string, b []byte, err error) (_ snapshot.Meta, again bool, _ error) {
	ctx, cancel := s.l.bound(ctx)
	defer cancel()
	value, _, found, gerr := s.getRecord(ctx, m.File)
	refused := errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
	switch {
	case gerr == nil && found && bytes.Equal(value, b):
		return m, false, nil
	case gerr == nil && (found || refused):
		if object != "" {
			_ = s.obs.Delete(ctx, object) // best effort: unreferenced for good
		}
		if !found {
			return snapshot.Meta{}, true, fmt.Errorf("evlog/jetstream: save %v: the record's key kept changing (concurrent sweeps or saves); save again: %w", m, err)
		}
		return snapshot.Meta{}, false, fmt.Errorf("%w: %v", snapshot.ErrExists, m)
	case gerr != nil:
		return snapshot.Meta{}, false, fmt.Errorf("evlog/jetstream: save %v: %w; reading the record back to see whether it was stored failed too (%w): Load it to find out, or Save again (snapshot.ErrExists: it is stored)", m, err, gerr)
	}
	return snapshot.Meta{}, false, fmt.Errorf("evlog/jetstream: save %v: %w", m, err)
}

// getRecord reads the record under k from the KV bucket's stream leader
// (kv.Get may be answered by a replica that has not caught up, so a
// snapshot just saved could look missing). found is false for a missing
// or deleted key; rev is the key's revision (its last message: the record
// or the deletion; 0: none ever).
func (s *Snapshots) getRecord(ctx context.Context, k string) (value []byte, rev uint64, found bool, err error) {
	m, found, err := s.l.getStreamMsg(ctx, "KV_"+s.kvBucket, 0, "$KV."+s.kvBucket+"."+k)
	if err != nil || !found {
		return nil, 0, false, err
	}
	if op := m.hdr.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
		return nil, m.Seq, false, nil
	}
	return m.Data, m.Seq, true, nil
}

// meta turns a record into a Meta.
func (r *record) meta(k string) (snapshot.Meta, error) {
	m := snapshot.Meta{Name: r.Name, Seq: r.Seq, Time: time.Unix(0, r.Time).UTC(), SchemaVersion: r.SchemaVersion,
		RawSize: r.RawSize, CompressedSize: r.RawSize, Anchor: r.Anchor, Scope: r.Scope, File: k}
	id, err := hex.DecodeString(r.LogID)
	if err != nil || len(id) != 16 || k != key(r.Name, r.Seq) {
		return snapshot.Meta{}, fmt.Errorf("record %s does not match its key or has a bad log ID", k)
	}
	copy(m.LogID[:], id)
	if m.Unfolded, err = unfoldedOf(r.Unfolded, r.Seq); err != nil {
		return snapshot.Meta{}, fmt.Errorf("record %s: %w", k, err)
	}
	return m, nil
}

// list returns the snapshots of name ("" for all), sorted by name then
// seq. Records that do not decode are logged and left out.
//
// It asks the KV stream's leader twice over, never through a consumer
// (a KV watch is an ordered consumer, whose creation on a replicated
// bucket costs a meta-group round): first for the keys that hold a
// message (STREAM.INFO with a subjects filter), then for each record
// (getRecord, the leader's copy; the requests run concurrently). Both
// answers come from the leader, which stores a record before Save is
// acknowledged, so a snapshot saved by any process before the call
// started is listed; a key whose last message is a deletion is skipped.
func (s *Snapshots) list(ctx context.Context, name string) ([]snapshot.Meta, error) {
	filter := ">"
	if name != "" {
		if err := checkName(name); err != nil {
			return nil, err
		}
		filter = escape(name) + ".*"
	}
	ctx, cancel := s.l.bound(ctx)
	defer cancel()
	keys, err := s.keys(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("evlog/jetstream: listing snapshots: %w", err)
	}
	metas := make([]snapshot.Meta, len(keys))
	found := make([]bool, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, listConcurrency)
	for i, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			value, _, ok, err := s.getRecord(ctx, k)
			if err != nil || !ok {
				errs[i] = err
				return
			}
			var r record
			m, err := func() (snapshot.Meta, error) {
				if err := json.Unmarshal(value, &r); err != nil {
					return snapshot.Meta{}, err
				}
				return r.meta(k)
			}()
			if err != nil {
				s.l.logger.Warn("evlog/jetstream: skipping an unreadable snapshot record", "key", k, "err", err)
				return
			}
			metas[i], found[i] = m, name == "" || m.Name == name
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("evlog/jetstream: listing snapshots: %w", err)
	}
	var out []snapshot.Meta
	for i, m := range metas {
		if found[i] {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b snapshot.Meta) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), cmp.Compare(a.Seq, b.Seq))
	})
	return out, nil
}

// listConcurrency bounds the record reads one list has in flight.
const listConcurrency = 16

// keys returns the keys of the snapshot bucket matching filter (a subject
// filter below the bucket's prefix) that hold a message (a record or a
// deletion marker), from the stream leader's subject index, page by page.
func (s *Snapshots) keys(ctx context.Context, filter string) ([]string, error) {
	stream, prefix := "KV_"+s.kvBucket, "$KV."+s.kvBucket+"."
	var keys []string
	for {
		req, _ := json.Marshal(struct {
			SubjectsFilter string `json:"subjects_filter"`
			Offset         int    `json:"offset,omitempty"`
		}{prefix + filter, len(keys)})
		resp, err := s.l.nc.RequestWithContext(ctx, s.l.apiPrefix+"STREAM.INFO."+stream, req)
		if err != nil {
			return nil, fmt.Errorf("stream info of %s: %w", stream, err)
		}
		var r struct {
			Error *jetstream.APIError `json:"error"`
			Total int                 `json:"total"`
			State struct {
				Subjects map[string]uint64 `json:"subjects"`
			} `json:"state"`
		}
		if err := json.Unmarshal(resp.Data, &r); err != nil {
			return nil, fmt.Errorf("stream info of %s: bad response: %w", stream, err)
		}
		if r.Error != nil {
			return nil, fmt.Errorf("stream info of %s: %w", stream, r.Error)
		}
		for subj := range r.State.Subjects {
			if k, ok := strings.CutPrefix(subj, prefix); ok {
				keys = append(keys, k)
			}
		}
		if len(r.State.Subjects) == 0 || len(keys) >= r.Total {
			return keys, nil
		}
	}
}

// List returns the snapshots of name ("" for every subject), sorted by
// name, then seq.
func (s *Snapshots) List(ctx context.Context, name string) ([]snapshot.Meta, error) {
	return s.list(ctx, name)
}

// Candidates visits the snapshots of name with seq <= maxSeq
// (math.MaxUint64: all), newest first. Every record is listed before the
// first is yielded; none is reported unreadable (a record that does not
// decode is left out, as List leaves it out). The request is bounded by
// Config.Timeout.
func (s *Snapshots) Candidates(name string, maxSeq uint64) iter.Seq2[snapshot.Candidate, error] {
	return func(yield func(snapshot.Candidate, error) bool) {
		all, err := s.list(context.Background(), name)
		if err != nil {
			yield(snapshot.Candidate{}, err)
			return
		}
		for _, m := range slices.Backward(all) {
			if m.Seq <= maxSeq && !yield(snapshot.Candidate{Meta: m}, nil) {
				return
			}
		}
	}
}

// Load reads and verifies the state of snapshot m (by m.File, or its name
// and seq). A missing snapshot or one that is not m is
// snapshot.ErrNotFound: as Remove decides it, for a Meta read from the
// store (List, Candidates, Save: File set) every field of the record must
// equal m's, zero ones included, so a snapshot removed and saved again at
// the same name and seq since m was listed (another fold: other schema,
// scope, Unfolded ranges, time or size) is never returned as m; for a
// Meta the caller built, the same Name and Seq and the same value of
// every other field set in it. A state of the wrong size or checksum is a
// *snapshot.CorruptError. A state object's size is checked against the
// record (at most MaxSnapshotSize) before any of it is read.
func (s *Snapshots) Load(ctx context.Context, m snapshot.Meta) ([]byte, error) {
	k := recordKey(m)
	ctx, cancel := s.l.bound(ctx)
	defer cancel()
	value, _, found, err := s.getRecord(ctx, k)
	if err != nil {
		return nil, fmt.Errorf("evlog/jetstream: load %v: %w", m, err)
	}
	if !found {
		return nil, fmt.Errorf("%w: %v (%s)", snapshot.ErrNotFound, m, k)
	}
	var r record
	if err := json.Unmarshal(value, &r); err != nil {
		return nil, &snapshot.CorruptError{File: k, Reason: "record does not decode", Err: err}
	}
	got, err := r.meta(k)
	if err != nil {
		return nil, &snapshot.CorruptError{File: k, Reason: err.Error()}
	}
	if !snapshot.SameSnapshot(m, got) {
		return nil, fmt.Errorf("%w: %s holds %v (schema %d, %d bytes, scope %#x, unfolded %v), not the requested %v (schema %d, %d bytes, scope %#x, unfolded %v): replaced since it was listed; list again",
			snapshot.ErrNotFound, k, got, got.SchemaVersion, got.RawSize, got.Scope, got.Unfolded, m, m.SchemaVersion, m.RawSize, m.Scope, m.Unfolded)
	}
	state := r.Inline
	if r.Object != "" {
		// The object is untrusted: check its size (and the record's)
		// before reading a byte of it.
		if r.RawSize < 0 || r.RawSize > MaxSnapshotSize {
			return nil, &snapshot.CorruptError{File: k, Reason: fmt.Sprintf("record claims a state of %d bytes, the limit is %d", r.RawSize, MaxSnapshotSize)}
		}
		info, err := s.obs.GetInfo(ctx, r.Object)
		if err != nil {
			if errors.Is(err, jetstream.ErrObjectNotFound) {
				return nil, &snapshot.CorruptError{File: k, Reason: "state object " + r.Object + " is missing", Err: err}
			}
			return nil, fmt.Errorf("evlog/jetstream: load %v: %w", m, err)
		}
		if info.Size != uint64(r.RawSize) || info.Opts != nil && info.Opts.Link != nil {
			return nil, &snapshot.CorruptError{File: k, Reason: fmt.Sprintf("state object %s is %d bytes (link %v), the record says %d", r.Object, info.Size, info.Opts != nil && info.Opts.Link != nil, r.RawSize)}
		}
		if state, err = s.obs.GetBytes(ctx, r.Object); err != nil {
			if errors.Is(err, jetstream.ErrObjectNotFound) || errors.Is(err, jetstream.ErrDigestMismatch) {
				return nil, &snapshot.CorruptError{File: k, Reason: "state object " + r.Object + " is missing or damaged", Err: err}
			}
			return nil, fmt.Errorf("evlog/jetstream: load %v: %w", m, err)
		}
	}
	sum := sha256.Sum256(state)
	if int64(len(state)) != r.RawSize || hex.EncodeToString(sum[:]) != r.SHA256 {
		return nil, &snapshot.CorruptError{File: k, Offset: int64(len(state)), Reason: "state size or SHA-256 differs from the record"}
	}
	if state == nil {
		state = []byte{}
	}
	return bytes.Clone(state), nil
}

// Prune removes the snapshots of name (of every subject, each on its own,
// when name is "") that p does not keep, oldest first, and returns them.
// As the file store's Prune, it removes a snapshot only once the newer
// snapshot p keeps in its place (snapshot.Removal's By) has been loaded
// and verified; one that fails to verify is logged and keeps the
// snapshots it was to replace. It removes a snapshot only if it is still
// the one listed (see Remove); one removed or replaced since is not
// returned. On error it stops and returns what it removed so far.
func (s *Snapshots) Prune(ctx context.Context, name string, p snapshot.PrunePolicy) (removed []snapshot.Meta, err error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	all, err := s.list(ctx, name)
	if err != nil {
		return nil, err
	}
	sound := map[string]bool{} // replacements verified, by record key
	for _, d := range p.Removals(all) {
		if d.By != nil {
			k := recordKey(*d.By)
			ok, seen := sound[k]
			if !seen {
				if ok, err = s.sound(ctx, *d.By); err != nil {
					return removed, err
				}
				sound[k] = ok
			}
			if !ok {
				continue
			}
		}
		if err := s.Remove(ctx, d.Meta); errors.Is(err, snapshot.ErrNotFound) {
			// Removed, or replaced (by another process) since it was
			// listed: the replacement was not judged; the next Prune does.
			continue
		} else if err != nil {
			return removed, err
		}
		removed = append(removed, d.Meta)
	}
	return removed, nil
}

// sound loads the snapshot m, which a prune keeps in place of older ones,
// and reports whether it verifies (record, state object, size and
// SHA-256). A damaged or vanished one is logged and reported as false, so
// that what it was to replace stays; other failures are returned.
func (s *Snapshots) sound(ctx context.Context, m snapshot.Meta) (bool, error) {
	_, err := s.Load(ctx, m)
	if _, corrupt := errors.AsType[*snapshot.CorruptError](err); err != nil && !corrupt && !errors.Is(err, snapshot.ErrNotFound) {
		return false, err
	}
	if err != nil {
		s.l.logger.Warn("evlog/jetstream: not pruning the older snapshots that a snapshot failing to verify was to replace; remove it (Remove), then prune again", "snapshot", recordKey(m), "err", err)
		return false, nil
	}
	return true, nil
}

// Remove deletes snapshot m (by m.File, or its name and seq): its
// record, then its state object. It deletes the record only if it is the
// snapshot m describes, as the file store's Remove decides it: for a Meta
// read from the store (as List, Candidates and Save return it: File set),
// every field equal, zero ones included; for a Meta the caller built
// (File and CompressedSize unset), the same Name and Seq and the same
// value of every other field set in it. So a Meta read from the store
// removes that snapshot and never one another process saved at the same
// name and seq since: it fails with an error matching
// snapshot.ErrNotFound if the record is missing or holds another snapshot
// (list again to decide about that one); a Meta with only Name and Seq
// set removes whichever snapshot of that subject and seq is there. A
// record that does not decode is removed all the same (logged). When the
// answer to the record's deletion is lost (a timeout, a cut connection),
// it reads the record back: deleted is success, and the object is
// deleted too, never left behind with no record to find it by.
func (s *Snapshots) Remove(ctx context.Context, m snapshot.Meta) error {
	k := recordKey(m)
	callerCtx := ctx
	ctx, cancel := s.l.bound(ctx)
	defer cancel()
	value, rev, found, err := s.getRecord(ctx, k)
	if err != nil {
		return fmt.Errorf("evlog/jetstream: remove %v: %w", m, err)
	}
	if !found {
		return fmt.Errorf("%w: %v (%s)", snapshot.ErrNotFound, m, k)
	}
	var r record
	got, err := func() (snapshot.Meta, error) {
		if err := json.Unmarshal(value, &r); err != nil {
			return snapshot.Meta{}, err
		}
		return r.meta(k)
	}()
	switch {
	case err != nil:
		// A damaged record is removed all the same.
		s.l.logger.Warn("evlog/jetstream: removing a snapshot record that does not decode", "key", k, "err", err)
	case !snapshot.SameSnapshot(m, got):
		return fmt.Errorf("%w: %s holds %v (schema %d, %d bytes, scope %#x, unfolded %v), not the requested %v (schema %d, %d bytes, scope %#x, unfolded %v); list again",
			snapshot.ErrNotFound, k, got, got.SchemaVersion, got.RawSize, got.Scope, got.Unfolded, m, m.SchemaVersion, m.RawSize, m.Scope, m.Unfolded)
	}
	if err := s.kv.Delete(ctx, k, jetstream.LastRevision(rev)); err != nil {
		// Deleted after all, the answer lost? Ask in a request of its
		// own (err may be ctx's deadline).
		cancel()
		ctx, cancel = s.l.bound(callerCtx)
		defer cancel()
		_, nowRev, found, gerr := s.getRecord(ctx, k)
		if gerr != nil || found && nowRev == rev {
			return fmt.Errorf("evlog/jetstream: remove %v: %w", m, err)
		}
		if found {
			// Replaced since it was read: by another Remove and a new
			// Save, say. r.Object is referenced by neither record.
			s.l.logger.Warn("evlog/jetstream: snapshot record replaced while being removed", "key", k, "err", err)
		}
	}
	if r.Object != "" {
		if err := s.obs.Delete(ctx, r.Object); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			s.l.logger.Warn("evlog/jetstream: snapshot record removed, its state object not", "object", r.Object, "err", err)
		}
	}
	return nil
}

// recordKey is the KV key of snapshot m: its File as listed, else the key
// its name and seq make.
func recordKey(m snapshot.Meta) string {
	if m.File != "" {
		return m.File
	}
	return key(m.Name, m.Seq)
}

// DefaultSweepLimit is the number of state objects one Sweep deletes at
// most when its limit is 0.
const DefaultSweepLimit = 1000

// Sweep deletes state objects that no snapshot record references and none
// ever can: those a Save left behind when its record was not stored (its
// answer lost, its process killed) and those a Remove or Prune failed to
// delete. It deletes at most limit objects (0: DefaultSweepLimit) and
// returns their names; call it again while it returns limit names. It is
// safe beside Saves, Removes and Sweeps of other processes: it never
// deletes an object a stored record names, nor one a Save still running
// (or a record create still on its way, however late) may yet name. An
// object whose key holds a record that does not decode is kept.
//
// How: every object is named after its record's key. Sweep lists the
// objects first, then reads each key's revision. A key holding a record
// at that revision: every object of the key the record does not name is
// kept by no one, since a Save creates its record only if the key is at
// the revision it read before storing its object (one that read this
// record stored nothing; one that read earlier cannot create it any
// more). A key with no record: Sweep first moves it on with a deletion
// marker conditional on that revision, after which no Save that stored
// an object of the key before can create its record; if the key moved
// meanwhile, the key is skipped.
func (s *Snapshots) Sweep(ctx context.Context, limit int) (removed []string, err error) {
	if limit <= 0 {
		limit = DefaultSweepLimit
	}
	// The listing is a watch that ends only once the server delivered
	// every object: bound it as a request, or a caller without a
	// deadline waits for ever for a delivery that never comes.
	lctx, cancel := s.l.bound(ctx)
	objs, err := s.obs.List(lctx)
	cancel()
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return nil, fmt.Errorf("evlog/jetstream: sweep: listing the state objects: %w", err)
	}
	byKey := map[string][]string{}
	for _, o := range objs {
		k, ok := objectKey(o.Name)
		if !ok {
			continue // not a Save's: leave it alone
		}
		byKey[k] = append(byKey[k], o.Name)
	}
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		if len(removed) >= limit {
			break
		}
		rctx, cancel := s.l.bound(ctx)
		doomed, err := s.unreferenced(rctx, k, byKey[k])
		if err == nil {
			for _, name := range doomed[:min(len(doomed), limit-len(removed))] {
				if err = s.obs.Delete(rctx, name); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
					break
				}
				err = nil
				removed = append(removed, name)
			}
		}
		cancel()
		if err != nil {
			return removed, fmt.Errorf("evlog/jetstream: sweep: key %s: %w (nothing unsafe was deleted; sweep again)", k, err)
		}
	}
	return removed, nil
}

// unreferenced returns those of the objects of key k, listed before the
// call, that no record references or ever can (see Sweep).
func (s *Snapshots) unreferenced(ctx context.Context, k string, objects []string) ([]string, error) {
	value, rev, found, err := s.getRecord(ctx, k)
	if err != nil {
		return nil, err
	}
	keep := ""
	if found {
		var r record
		if err := json.Unmarshal(value, &r); err != nil {
			s.l.logger.Warn("evlog/jetstream: sweep: keeping the state objects of a snapshot record that does not decode", "key", k, "err", err)
			return nil, nil
		}
		keep = r.Object
	}
	var doomed []string
	for _, name := range objects {
		if name != keep {
			doomed = append(doomed, name)
		}
	}
	if found || len(doomed) == 0 {
		return doomed, nil
	}
	// No record: a Save that stored one of these objects may still
	// create its record at rev. Move the key on first.
	m := nats.NewMsg("$KV." + s.kvBucket + "." + k)
	m.Header.Set("KV-Operation", "DEL")
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(rev, 10))
	m.Header.Set(jetstream.ExpectedStreamHeader, "KV_"+s.kvBucket)
	if _, err := s.l.js.PublishMsg(ctx, m, jetstream.WithRetryAttempts(0)); err != nil {
		if c := apiCode(err); c == codeWrongLastSeq || c == codeWrongLastSeqConstant {
			return nil, nil // a record arrived (or another sweep): leave the key for the next sweep
		}
		return nil, err
	}
	return doomed, nil
}

// objectKey returns the record key a state object's name starts with
// (Save names it key + "." + a random ID), or ok false for a name no Save
// gives.
func objectKey(name string) (k string, ok bool) {
	k, id, ok := cutLast(name, ".")
	if !ok || id == "" {
		return "", false
	}
	_, seq, ok := cutLast(k, ".")
	if !ok || len(seq) != 20 || strings.Trim(seq, "0123456789") != "" {
		return "", false
	}
	return k, true
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
