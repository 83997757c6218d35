package replay

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/evlog/evlog/snapshot"
)

// Digest returns the digest of the scope that Save records in a snapshot
// (snapshot.Meta.Scope) and MakePlan compares: the first 8 bytes,
// little-endian, of the SHA-256 of "evlog/replay scope v1\x00" followed
// by the stream (u64 length, bytes), one byte saying whether Categories
// is nil (0: every stream) or not (1), and the categories sorted and
// without duplicates (u64 count, then each as u64 length and bytes);
// never 0 (a digest of 0 maps to 1), which means "not recorded". The
// order of Categories and duplicates in it do not change the scope, so
// they do not change the digest; nil (every stream) and empty (no
// stream) differ. It is part of the snapshot format: never change it.
func (s Scope) Digest() uint64 {
	var b []byte
	str := func(v string) {
		b = binary.LittleEndian.AppendUint64(b, uint64(len(v)))
		b = append(b, v...)
	}
	b = append(b, "evlog/replay scope v1\x00"...)
	str(s.Stream)
	if s.Categories == nil {
		b = append(b, 0)
	} else {
		cats := slices.Compact(slices.Sorted(slices.Values(s.Categories)))
		b = append(b, 1)
		b = binary.LittleEndian.AppendUint64(b, uint64(len(cats)))
		for _, c := range cats {
			str(c)
		}
	}
	sum := sha256.Sum256(b)
	d := binary.LittleEndian.Uint64(sum[:8])
	if d == 0 {
		d = 1
	}
	return d
}

// scoped reports whether the subject is limited to some categories: the
// only scope that can change under the same snapshot Name (an aggregate's
// stream is part of its Name; a whole-log fold without Categories has
// folded every stream since before snapshots recorded a scope).
func (s Subject) scoped() bool { return s.Stream == "" && s.Categories != nil }

// ScopeMismatch returns why a snapshot of the subject's Name and schema
// version is not of the subject's scope ("": it is, or may be trusted to
// be), the rule MakePlan applies and evlogctl follows:
//
//   - a snapshot that records a scope (snapshot format version 3) is of
//     the subject's scope only if it records subj.Scope.Digest(): one
//     folded under other Categories (changed without a new
//     SchemaVersion) holds the fold of another set of events;
//   - one that records none (Scope 0: saved by an older evlog, in format
//     version 1 or 2, or by a store that does not keep it) is trusted
//     for a subject without Categories (an aggregate's stream, the whole
//     log), as before; for a subject with Categories it cannot be told
//     apart from a checkpoint of other Categories and is passed over,
//     unless an event of the scope it folded has expired since
//     (Expirations; folding again would silently lose that event's
//     effect): then it is trusted as before, and the caller should say
//     so (MakePlan logs a warning).
//
// trustedUnrecorded reports that last case.
func ScopeMismatch(ctx context.Context, src Source, subj Subject, m snapshot.Meta) (reason string, trustedUnrecorded bool, err error) {
	switch {
	case m.Scope != 0 && m.Scope != subj.Scope.Digest():
		return fmt.Sprintf("folded another scope (scope digest %#016x, the current one is %#016x): its Categories differ from the current ones, changed without a new SchemaVersion", m.Scope, subj.Scope.Digest()), false, nil
	case m.Scope != 0 || !subj.scoped():
		return "", false, nil
	}
	if x, ok := src.(Expirations); ok {
		_, found, err := x.FirstExpired(ctx, 1, m.Seq, subj.Includes)
		if err != nil {
			return "", false, fmt.Errorf("evlog/replay: %s: reading which events up to seq %d expired: %w", subj.Name, m.Seq, err)
		}
		if found {
			return "", true, nil
		}
	}
	return "records no scope (saved by an older evlog): it may have folded other Categories than the current ones", false, nil
}
