package snapshot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"
)

// PrunePolicy says which snapshots of a subject Prune keeps. A snapshot is
// kept if any rule keeps it: KeepLast, KeepSince or a tier.
//
// The zero PrunePolicy (no KeepLast, no KeepSince, no Tiers; Now does not
// count) is DefaultPrunePolicy: the newest 2 snapshots, plus DefaultTiers
// (every snapshot of the last hour, one per hour for a day, one per day
// for 90 days), so that "the state at 3pm yesterday" or "at the end of
// last month" starts from a snapshot near its time instead of a full
// replay. A policy with any rule set is used exactly as given: KeepLast 5
// alone keeps only the newest 5.
type PrunePolicy struct {
	// KeepLast keeps the newest KeepLast snapshots (by Seq). ≥ 0.
	KeepLast int
	// KeepSince, if set, keeps every snapshot with Time >= KeepSince and
	// the newest one with Time < KeepSince, which time queries back to
	// KeepSince still need.
	KeepSince time.Time
	// Tiers is tiered retention by age (see Tier), in increasing Within.
	Tiers []Tier
	// Now is the time the tiers measure ages from (zero: the time of the
	// Prune, Keeps or Doomed call). Set it to make a decision
	// reproducible, or to follow a log's own clock.
	Now time.Time
	// Fold, if set, splits the snapshots of a subject into folds judged
	// each on its own, as if they were subjects of their own: KeepLast N
	// keeps the newest N of each fold, and a snapshot is removed only in
	// favour of a newer one of its fold (Removal.By). Snapshots of one
	// Name may hold different folds — another SchemaVersion, another
	// scope (Meta.Scope), another log — which cannot replace each other:
	// counted together, the newest N could all be of another fold, and
	// the only snapshot a fold can use be removed. nil: all the snapshots
	// of a subject are one fold.
	Fold func(Meta) string
}

// Tier is one age band of tiered retention. It covers the snapshots
// recorded (Meta.Time) less than Within before now and at least the
// previous tier's Within before now (the first tier starts at now; a
// snapshot recorded after now counts as age 0). Of those it keeps every
// one when Every is 0, and otherwise the newest (by Seq) of each
// Every-long period, periods aligned to the Unix epoch (so with Every 24h,
// UTC days): the state at the end of each period. Snapshots older than the
// last tier are kept only by the other rules.
// Because periods are aligned rather than measured from now, which
// snapshot a period keeps does not depend on when Prune runs, and the
// newest of a day is also the newest of its last hour.
type Tier struct {
	Within time.Duration // > 0, and greater than the previous tier's
	Every  time.Duration // ≥ 0; 0 keeps every snapshot in the band
}

// DefaultTiers returns the tiers of the zero PrunePolicy: every snapshot
// recorded in the last hour, the newest of each hour for a day, and the
// newest of each (UTC) day for 90 days.
func DefaultTiers() []Tier {
	return []Tier{
		{Within: time.Hour},
		{Within: 24 * time.Hour, Every: time.Hour},
		{Within: 90 * 24 * time.Hour, Every: 24 * time.Hour},
	}
}

// DefaultPrunePolicy returns what the zero PrunePolicy means: the newest 2
// snapshots plus DefaultTiers.
func DefaultPrunePolicy() PrunePolicy {
	return PrunePolicy{KeepLast: 2, Tiers: DefaultTiers()}
}

// IsZero reports whether p sets no rule (Now and Fold aside): whether it
// means DefaultPrunePolicy (with p's Now and Fold).
func (p PrunePolicy) IsZero() bool {
	return p.KeepLast == 0 && p.KeepSince.IsZero() && len(p.Tiers) == 0
}

// withDefaults returns DefaultPrunePolicy (with p's Now) for the zero
// policy, and p otherwise.
func (p PrunePolicy) withDefaults() PrunePolicy {
	if !p.IsZero() {
		return p
	}
	d := DefaultPrunePolicy()
	d.Now, d.Fold = p.Now, p.Fold
	return d
}

// Validate reports whether p is usable. The zero policy is (it means
// DefaultPrunePolicy); a policy keeping nothing cannot be expressed (use
// Remove to delete snapshots). The error matches ErrInvalid.
func (p PrunePolicy) Validate() error {
	if p.KeepLast < 0 {
		return invalidf("PrunePolicy.KeepLast %d is negative", p.KeepLast)
	}
	prev := time.Duration(0)
	for i, t := range p.Tiers {
		switch {
		case t.Within <= prev:
			return invalidf("PrunePolicy.Tiers[%d].Within %v: must be greater than %v (the previous tier's, or 0)", i, t.Within, prev)
		case t.Every < 0:
			return invalidf("PrunePolicy.Tiers[%d].Every %v is negative", i, t.Every)
		}
		prev = t.Within
	}
	return nil
}

// Doomed returns the snapshots of all — a listing sorted by name, then
// seq — that p does not keep, each subject judged on its own (Keeps),
// oldest first within a subject: what every snapshot store's Prune may
// remove. The file store's Prune removes one only if the nearest newer
// snapshot p keeps, which replaces it, verifies (see Store.Prune).
func (p PrunePolicy) Doomed(all []Meta) []Meta {
	var out []Meta
	for _, d := range p.Removals(all) {
		out = append(out, d.Meta)
	}
	return out
}

// Removal is a snapshot a policy does not keep, with its replacement By:
// the nearest newer snapshot of its subject the policy keeps (nil if
// none). A store removes it only once By verifies completely (Store.Prune
// and the JetStream store's Prune do): nothing is removed on the word of
// a snapshot whose body was never read.
type Removal struct {
	Meta
	By *Meta
}

// Removals is Doomed with each snapshot's replacement.
func (p PrunePolicy) Removals(all []Meta) []Removal {
	p = p.withDefaults()
	if p.Now.IsZero() {
		p.Now = time.Now()
	}
	var out []Removal
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && all[j].Name == all[i].Name {
			j++
		}
		start := len(out)
		for _, group := range p.folds(all[i:j]) {
			keep := p.Keeps(group)
			var by *Meta
			for k := len(group) - 1; k >= 0; k-- {
				if keep[k] {
					by = &group[k]
				} else {
					out = append(out, Removal{group[k], by})
				}
			}
		}
		// Oldest first within the subject.
		slices.SortStableFunc(out[start:], func(a, b Removal) int { return cmp.Compare(a.Seq, b.Seq) })
		i = j
	}
	return out
}

// folds splits the snapshots of one subject, sorted by Seq, into p.Fold's
// folds, each sorted by Seq (one fold when p.Fold is nil).
func (p PrunePolicy) folds(subject []Meta) [][]Meta {
	if p.Fold == nil {
		return [][]Meta{subject}
	}
	var keys []string
	by := map[string][]Meta{}
	for _, m := range subject {
		k := p.Fold(m)
		if _, ok := by[k]; !ok {
			keys = append(keys, k)
		}
		by[k] = append(by[k], m)
	}
	out := make([][]Meta, 0, len(keys))
	for _, k := range keys {
		out = append(out, by[k])
	}
	return out
}

// Keeps returns, for the snapshots of one subject sorted by Seq, which
// ones p keeps: the rule every snapshot store applies (the file store's
// Prune, and other backends'). It is a pure function of p and ms when
// p.Now is set. It judges ms as one fold, whatever p.Fold says: Removals
// (and Doomed, Prune) split a subject into folds first.
func (p PrunePolicy) Keeps(ms []Meta) []bool {
	p = p.withDefaults()
	keep := make([]bool, len(ms))
	for i := max(len(ms)-p.KeepLast, 0); i < len(ms); i++ {
		keep[i] = true
	}
	if !p.KeepSince.IsZero() {
		horizon := -1 // newest before KeepSince
		for i, m := range ms {
			if m.Time.Before(p.KeepSince) {
				horizon = i
			} else {
				keep[i] = true
			}
		}
		if horizon >= 0 {
			keep[horizon] = true
		}
	}
	if len(p.Tiers) > 0 {
		now := p.Now
		if now.IsZero() {
			now = time.Now()
		}
		type period struct {
			tier int
			n    int64
		}
		newest := map[period]int{} // the newest snapshot (by seq) of each period
		for i, m := range ms {
			age := max(now.Sub(m.Time), 0)
			t := 0
			for t < len(p.Tiers) && age >= p.Tiers[t].Within {
				t++
			}
			switch {
			case t == len(p.Tiers): // older than every tier
			case p.Tiers[t].Every == 0:
				keep[i] = true
			default:
				newest[period{t, periodOf(m.Time, p.Tiers[t].Every)}] = i
			}
		}
		for _, i := range newest {
			keep[i] = true
		}
	}
	return keep
}

// periodOf returns the number of the every-long period, counted from the
// Unix epoch, that holds t.
func periodOf(t time.Time, every time.Duration) int64 {
	n := t.UnixNano()
	q := n / int64(every)
	if n%int64(every) < 0 {
		q--
	}
	return q
}

// Prune removes the snapshots of name (of every subject, each on its own,
// when name is "") that p does not keep, oldest first, then fsyncs the
// directory. It returns what it removed. It decides from the headers, as
// List does, and leaves files with a corrupt header alone. Before removing
// a snapshot it verifies, as Load does, the snapshot that replaces it (the
// nearest newer one p keeps; each at most once per call): if that one is
// damaged, it is logged and kept, and so are the snapshots it was to
// replace, since they may be the only record of their state. A snapshot
// with no newer kept one (only a policy of tiers alone leaves such, once
// every snapshot is older than its last tier) is removed as p says, and a
// damaged snapshot p does not keep like any other.
//
// Durability: nothing is removed on the word of a snapshot that may not
// survive a power loss. A replacement's data was fsynced before it was
// renamed into place, but its directory entry is durable only once the
// directory is fsynced, which its Save may have failed to do (Save then
// returns an error, yet the file is listed) or, in another process, not
// done yet. So Prune verifies every replacement first, then fsyncs the
// directory, and only then removes anything: if that fsync fails, it
// removes nothing and returns the error. On a later error it stops, fsyncs
// the directory and returns what it removed so far; a crash at any point
// leaves a subset of the snapshots, all of them whole, and every removed
// snapshot's replacement.
//
// That fsync proves nothing about changes an earlier directory fsync
// failed to write: a file system may drop them for good at the failure
// (Linux does, "fsyncgate") and let a later fsync succeed without them.
// So once any directory fsync of s failed (a Save's, a Prune's, a
// Remove's or CleanTemps'; this one included), Prune refuses, before
// reading anything, with an error matching ErrDirSyncFailed (and the
// failure's cause) and removes nothing; see ErrDirSyncFailed for what to
// do. Another Store, in this process or another, does not know of the
// failure: its Prune relies on its own fsync as described above.
func (s *Store) Prune(ctx context.Context, name string, p PrunePolicy) (removed []Meta, err error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refuseLocked("Prune"); err != nil {
		return nil, err
	}
	all, err := s.List(name)
	if err != nil {
		return nil, err
	}
	// Decide, verifying the replacements, before removing anything.
	var doomed []Meta
	sound := map[string]bool{} // replacements verified, by file
	for _, d := range p.Removals(all) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m := d.Meta
		if d.By != nil {
			ok, seen := sound[d.By.File]
			if !seen {
				if ok, err = s.sound(ctx, *d.By); err != nil {
					return nil, err
				}
				sound[d.By.File] = ok
			}
			if !ok {
				s.log.Debug("evlog/snapshot: not pruning: its replacement is damaged", "name", m.Name, "seq", m.Seq, "file", m.File, "replacement", d.By.File)
				continue
			}
		}
		doomed = append(doomed, m)
	}
	if len(doomed) == 0 {
		return nil, nil
	}
	// Make the replacements' directory entries durable (and every other
	// entry listed) before the first removal.
	if err := s.syncDirLocked(); err != nil {
		return nil, fmt.Errorf("evlog/snapshot: prune: fsync directory before removing anything: %w; nothing was removed (the snapshots that replace the pruned ones might not survive a power loss): check the disk, then restart the machine or remount the file system before pruning again (see ErrDirSyncFailed)", err)
	}
	defer func() {
		if len(removed) > 0 {
			if serr := s.syncDirLocked(); serr != nil {
				err = errors.Join(err, fmt.Errorf("evlog/snapshot: fsync directory after pruning: %w", serr))
			}
		}
	}()
	for _, m := range doomed {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		if err := s.fs.Remove(m.File); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("evlog/snapshot: prune %v: remove %s: %w", m, m.File, err)
		}
		removed = append(removed, m)
		s.log.Debug("evlog/snapshot: pruned", "name", m.Name, "seq", m.Seq, "file", m.File)
	}
	return removed, nil
}

// sound verifies the snapshot m as Load does and reports whether it is
// whole and still the snapshot List reported. Damage, or a file removed or
// replaced since, is logged and reported as false; other failures (reading
// the file) are returned.
func (s *Store) sound(ctx context.Context, m Meta) (bool, error) {
	got, _, err := s.read(ctx, m.File, false)
	switch {
	case err == nil && matches(m, got):
		return true, nil
	case err == nil:
		err = staleError(m, got)
	case errors.Is(err, ErrCorrupt), errors.Is(err, ErrNotFound):
	default:
		return false, err
	}
	s.log.Warn("evlog/snapshot: not pruning the older snapshots that a snapshot failing to verify was to replace; run verify, then remove it", "file", m.File, "err", err)
	return false, nil
}

// Remove deletes the snapshot m (m.File, or FormatFileName(m.Name, m.Seq)
// if unset) and fsyncs the directory. It fsyncs the directory before the
// removal too, so every snapshot saved before it (in another process that
// has not fsynced the directory yet, or by a Save whose directory fsync
// failed, where the file system kept what that fsync did not write; a
// failure in this Store makes Remove refuse, below) is durable before the
// removal is: a caller that removes m on the word of another snapshot
// (a newer one, the projection runner's rebuild marker) never loses both
// to a power loss. If that fsync fails, nothing is removed. It removes the file only if its
// header is the snapshot m describes (SameSnapshot): for a Meta read from
// a store (as List, Candidates and Save return it: File set), every field
// equal, zero ones included (a Scope or Anchor of 0 is "not recorded",
// not "any"); for a Meta the caller built (File and CompressedSize not
// set), the same Name and Seq and the same value of every other field set
// in it, as Load checks. So a Meta read from the store removes that snapshot and never
// one another writer saved at the same name and seq since (the same file
// name): it refuses, with an error matching ErrNotFound, if the file is
// missing or holds another snapshot (list again to decide about that
// one); a Meta with only Name and Seq set removes whichever snapshot of
// that subject and seq is there. A file whose header is corrupt is
// removed, but not one whose header names a format version or flags newer
// than this build reads (ErrNewerFormat): perhaps a newer evlog's
// snapshot, it is left in place with an error matching ErrNewerFormat.
//
// Once any directory fsync of s failed (this Remove's included), Remove
// refuses, before reading anything, with an error matching
// ErrDirSyncFailed, and removes nothing, as Prune does: the fsync before
// the removal cannot prove durable what a failed one may have dropped.
func (s *Store) Remove(ctx context.Context, m Meta) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	file := m.File
	if file == "" {
		if err := checkName(m.Name); err != nil {
			return err
		}
		file = FormatFileName(m.Name, m.Seq)
	}
	if _, _, ok := ParseFileName(file); !ok {
		return invalidf("%q is not a snapshot file name", file)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.refuseLocked("Remove of " + file); err != nil {
		return err
	}
	got, err := s.readMeta(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s: %w", ErrNotFound, file, err)
	case errors.Is(err, ErrNewerFormat):
		// Perhaps a newer evlog's snapshot, which this build cannot
		// tell from the one m describes: never removed on its word.
		return fmt.Errorf("evlog/snapshot: not removing %s, written in a format newer than this build reads: run a newer evlog, or remove the file by hand if it is damaged: %w", file, err)
	case errors.Is(err, ErrCorrupt):
		s.log.Warn("evlog/snapshot: removing snapshot with a corrupt header", "file", file, "err", err)
	case err != nil:
		return err
	case !SameSnapshot(m, got):
		return staleError(m, got)
	}
	// Every entry saved before, by a Save whose directory fsync failed
	// or in another process, durable before the removal is.
	if err := s.syncDirLocked(); err != nil {
		return fmt.Errorf("evlog/snapshot: fsync directory before removing %s: %w; nothing was removed: check the disk, then restart the machine or remount the file system before removing it again (see ErrDirSyncFailed)", file, err)
	}
	if err := s.fs.Remove(file); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s: %w", ErrNotFound, file, err)
		}
		return fmt.Errorf("evlog/snapshot: remove %s: %w", file, err)
	}
	if err := s.syncDirLocked(); err != nil {
		return fmt.Errorf("evlog/snapshot: fsync directory after removing %s: %w", file, err)
	}
	s.log.Debug("evlog/snapshot: removed", "name", m.Name, "seq", m.Seq, "file", file)
	return nil
}
