package snapshot

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/evlog/evlog/event"
)

// Meta describes one snapshot: whose state it is, of which log, as of which
// event, and how big it is.
type Meta struct {
	// Name is the subject: an aggregate instance ("cart/cart-42"), a
	// projection ("projection/top-items"), a whole-log fold ("stats").
	// Non-empty UTF-8, at most MaxNameLen bytes.
	Name string
	// LogID identifies the log the snapshot belongs to. The store records
	// and returns it; checking it against the log is the caller's job.
	LogID [16]byte
	// Seq is the global seq of the last event folded into the state; ≥ 1.
	Seq uint64
	// Time is that event's recorded time, kept in UTC with nanosecond
	// precision (between the years 1678 and 2262).
	Time time.Time
	// SchemaVersion is the owner's version (or a hash) of the state's
	// shape and fold logic; the owner changes it when either changes, and
	// ignores snapshots of another version.
	SchemaVersion uint64
	// Anchor identifies the event at Seq: AnchorOf of that event as the
	// log holds it, so that a reader can tell the event the state was
	// folded up to from another event at the same seq and time (a log
	// whose tail was replaced: restored from an older backup, then
	// appended to again). Zero: not recorded (format version 1 files,
	// and stores without Options.Anchor); a reader then has only Time to
	// go by. Save records what Options.Anchor returns; a non-zero value
	// set by the caller must agree with it.
	Anchor uint64
	// Scope identifies which events the state folds, as its owner sees
	// it (replay.Scope.Digest: a projection's Categories), so that a
	// reader can tell a state of another scope from one of its own under
	// the same Name and SchemaVersion. Zero: not recorded (format version
	// 1 and 2 files, and owners that do not record one); the owner
	// decides whether to trust such a snapshot. The store records it as
	// given.
	Scope uint64
	// Unfolded lists seq ranges, up to Seq, holding no event folded into
	// the state (sorted, disjoint, not adjacent, each within [1, Seq]; at
	// most MaxUnfolded), as its owner recorded them: events there that
	// read as gone (expired by retention) were never folded, so the
	// state holds nothing of them (replay.Result.Unfolded: a fold from
	// the first event records the holes in what the log yielded). A
	// range may also cover events the fold did not read for other
	// reasons (other streams): it only promises that none was folded.
	// Empty: not recorded (format version 1 to 3 files; a fold that met
	// no hole); every event up to Seq may have been folded. The store
	// records it as given (format version 4, only when non-empty). It is
	// a value (Meta stays comparable with ==).
	//
	// The claim may say less than the truth, never more: a seq outside
	// the ranges counts as possibly folded, so its later expiry is
	// reported (replay.FirstFoldedExpired: replay.ErrHistoryLost) instead
	// of being folded again without it. A fold that met more than
	// MaxUnfolded holes records the first MaxUnfolded and leaves the rest
	// out (replay.Result.Unfolded): a deletion after one of the others
	// expired reports a loss that is not one, the price of the bound. No
	// writer merges ranges to fit: a merged range would cover a folded
	// event between them, whose expiry would then go unreported and its
	// effect be lost silently. Save refuses more than MaxUnfolded ranges
	// (ErrInvalid), writing nothing.
	Unfolded SeqRanges
	// RawSize is the size of the state in bytes; CompressedSize the size
	// of its zstd frame. Set by the Store.
	RawSize, CompressedSize int64
	// File is the base name of the file holding the snapshot. Set by the
	// Store.
	File string
}

// SeqRange is the seqs From to To, both included.
type SeqRange struct{ From, To uint64 }

// MaxUnfolded bounds Meta.Unfolded. It is part of the file format.
const MaxUnfolded = 256

// SeqRanges is an immutable list of SeqRange, comparable with == (equal
// lists are equal). The zero value is the empty list.
type SeqRanges struct{ b string } // 16 bytes a range: From, To, little-endian

// MakeSeqRanges returns the list of rs (copied).
func MakeSeqRanges(rs ...SeqRange) SeqRanges {
	b := make([]byte, 0, len(rs)*seqRangeLen)
	for _, r := range rs {
		b = binary.LittleEndian.AppendUint64(b, r.From)
		b = binary.LittleEndian.AppendUint64(b, r.To)
	}
	return SeqRanges{string(b)}
}

// Equal reports whether s and o list the same ranges (s == o; also what
// go-cmp compares them by).
func (s SeqRanges) Equal(o SeqRanges) bool { return s == o }

// Len returns the number of ranges.
func (s SeqRanges) Len() int { return len(s.b) / seqRangeLen }

// At returns range i (0 ≤ i < Len).
func (s SeqRanges) At(i int) SeqRange {
	b := s.b[i*seqRangeLen:]
	return SeqRange{From: binary.LittleEndian.Uint64([]byte(b[:8])), To: binary.LittleEndian.Uint64([]byte(b[8:16]))}
}

// All iterates the ranges in order.
func (s SeqRanges) All() iter.Seq[SeqRange] {
	return func(yield func(SeqRange) bool) {
		for i := range s.Len() {
			if !yield(s.At(i)) {
				return
			}
		}
	}
}

// Slice returns the ranges in a new slice (nil when empty).
func (s SeqRanges) Slice() []SeqRange { return slices.Collect(s.All()) }

func (s SeqRanges) String() string { return fmt.Sprint(s.Slice()) }

// CheckUnfolded returns an error saying why u is not a valid
// Meta.Unfolded of a snapshot at seq (nil if it is): at most MaxUnfolded
// ranges, each within [1, seq], in order with a gap between them. Stores
// that keep Unfolded in another form (evlog's JetStream backend) check
// what they read with it.
func CheckUnfolded(u SeqRanges, seq uint64) error {
	if why := checkUnfolded(u, seq); why != "" {
		return errors.New(why)
	}
	return nil
}

// checkUnfolded returns why u is not a valid Meta.Unfolded of a snapshot
// at seq ("" if it is).
func checkUnfolded(u SeqRanges, seq uint64) string {
	if u.Len() > MaxUnfolded {
		return fmt.Sprintf("%d unfolded ranges, more than %d", u.Len(), MaxUnfolded)
	}
	var prev uint64 // To of the previous range
	for i, r := range u.Slice() {
		switch {
		case r.From == 0 || r.From > r.To || r.To > seq:
			return fmt.Sprintf("unfolded range %d (%d..%d) is not within [1, %d]", i, r.From, r.To, seq)
		case i > 0 && r.From <= prev+1:
			return fmt.Sprintf("unfolded range %d (%d..%d) is not after range %d (..%d) with a gap", i, r.From, r.To, i-1, prev)
		}
		prev = r.To
	}
	return ""
}

// SameSnapshot reports whether got, read back from a store (a file's
// header, a record), is the snapshot m describes. Stores check it before
// acting on m (Store.Remove; the JetStream store's Load and Remove), so
// that a snapshot removed and saved again at the same name and seq since
// m was read (another fold: other schema, scope, Unfolded ranges, time or
// size) is never taken for m.
//
// For a Meta read from a store (File or CompressedSize set: List,
// Candidates and Save set File, also for an empty state, whose
// CompressedSize a store may report as 0), every field must be equal,
// zero ones included (a Scope, Anchor or Unfolded left zero means "not
// recorded", not "any"), Time by Equal, File only when m's is set. For a
// Meta the caller built (neither set), got must have the same Name and
// Seq and the same value of every other field set in m.
func SameSnapshot(m, got Meta) bool {
	if m.File == "" && m.CompressedSize == 0 {
		return matches(m, got)
	}
	return m.Name == got.Name && m.Seq == got.Seq && m.LogID == got.LogID && m.Time.Equal(got.Time) &&
		m.SchemaVersion == got.SchemaVersion && m.Anchor == got.Anchor && m.Scope == got.Scope &&
		m.Unfolded == got.Unfolded && m.RawSize == got.RawSize && m.CompressedSize == got.CompressedSize &&
		(m.File == "" || m.File == got.File)
}

func (m Meta) String() string {
	return fmt.Sprintf("%q@%d", m.Name, m.Seq)
}

// checkMeta checks the caller-supplied fields of m for Save.
func checkMeta(m *Meta) error {
	if err := checkName(m.Name); err != nil {
		return err
	}
	switch {
	case m.Seq == 0:
		return invalidf("snapshot %q has seq 0; it must be the seq of the last event folded in", m.Name)
	case m.Time.IsZero():
		return invalidf("snapshot %q at seq %d has no time; it must be the time of the last event folded in", m.Name, m.Seq)
	case m.Time.Before(minTime) || m.Time.After(maxTime):
		return invalidf("snapshot %q time %v is outside the years 1678 to 2262", m.Name, m.Time)
	case m.Unfolded.Len() > MaxUnfolded:
		return invalidf("snapshot %q at seq %d: %s; record the first %d and leave the rest out (a seq left out counts as possibly folded, the safe side), never merge ranges across folded events", m.Name, m.Seq, checkUnfolded(m.Unfolded, m.Seq), MaxUnfolded)
	case checkUnfolded(m.Unfolded, m.Seq) != "":
		return invalidf("snapshot %q at seq %d: %s", m.Name, m.Seq, checkUnfolded(m.Unfolded, m.Seq))
	}
	return nil
}

// AnchorOf returns the anchor of an event (see Meta.Anchor): the first 8
// bytes, little-endian, of the SHA-256 of a length-prefixed encoding of
// everything the log stores of it — seq, stream, version, type, schema
// version, ID, recorded time (Unix nanoseconds), meta (sorted by key) and
// data — never 0 (a digest of 0 maps to 1). It is part of the snapshot
// format: never change it (a change is a new format version).
func AnchorOf(e event.Envelope) uint64 {
	h := sha256.New()
	var b []byte
	str := func(s string) {
		b = binary.LittleEndian.AppendUint64(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = append(b, "evlog/snapshot anchor v1\x00"...)
	b = binary.LittleEndian.AppendUint64(b, e.Seq)
	str(e.Stream)
	b = binary.LittleEndian.AppendUint64(b, e.Version)
	str(e.Type)
	b = binary.LittleEndian.AppendUint32(b, e.SchemaVersion)
	str(e.ID)
	b = binary.LittleEndian.AppendUint64(b, uint64(e.Time.UnixNano()))
	keys := make([]string, 0, len(e.Meta))
	for k := range e.Meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(keys)))
	for _, k := range keys {
		str(k)
		str(e.Meta[k])
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(len(e.Data)))
	h.Write(b)
	h.Write(e.Data)
	var sum [sha256.Size]byte
	a := binary.LittleEndian.Uint64(h.Sum(sum[:0]))
	if a == 0 {
		a = 1
	}
	return a
}
