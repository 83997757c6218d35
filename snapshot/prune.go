package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// PrunePolicy says which snapshots of a subject Prune keeps. A snapshot is
// kept if either rule keeps it.
type PrunePolicy struct {
	// KeepLast keeps the newest KeepLast snapshots (by Seq). ≥ 0.
	KeepLast int
	// KeepSince, if set, keeps every snapshot with Time >= KeepSince and
	// the newest one with Time < KeepSince, which time queries back to
	// KeepSince still need.
	KeepSince time.Time
}

// Validate reports whether p is usable. A policy keeping nothing (KeepLast
// 0 and no KeepSince) is invalid: use Remove to delete snapshots outright.
// The error matches ErrInvalid.
func (p PrunePolicy) Validate() error {
	switch {
	case p.KeepLast < 0:
		return invalidf("PrunePolicy.KeepLast %d is negative", p.KeepLast)
	case p.KeepLast == 0 && p.KeepSince.IsZero():
		return invalidf("PrunePolicy keeps nothing (KeepLast 0, no KeepSince); use Remove to delete snapshots")
	}
	return nil
}

// Doomed returns the snapshots of all — a listing sorted by name, then
// seq — that p does not keep, each subject judged on its own (Keeps),
// oldest first within a subject: what every snapshot store's Prune removes.
func (p PrunePolicy) Doomed(all []Meta) []Meta {
	var out []Meta
	for i := 0; i < len(all); {
		j := i + 1
		for j < len(all) && all[j].Name == all[i].Name {
			j++
		}
		group := all[i:j]
		for k, keep := range p.Keeps(group) {
			if !keep {
				out = append(out, group[k])
			}
		}
		i = j
	}
	return out
}

// Keeps returns, for the snapshots of one subject sorted by Seq, which
// ones p keeps: the rule every snapshot store applies (the file store's
// Prune, and other backends').
func (p PrunePolicy) Keeps(ms []Meta) []bool {
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
	return keep
}

// Prune removes the snapshots of name (of every subject, each on its own,
// when name is "") that p does not keep, oldest first, then fsyncs the
// directory. It returns what it removed. It decides from the headers, as
// List does, and leaves files with a corrupt header alone. On error it
// stops, fsyncs the directory and returns what it removed so far; a crash
// midway leaves a subset of the snapshots, all of them whole.
func (s *Store) Prune(ctx context.Context, name string, p PrunePolicy) (removed []Meta, err error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.List(name)
	if err != nil {
		return nil, err
	}
	defer func() {
		if len(removed) > 0 {
			if serr := s.fs.SyncDir(); serr != nil {
				err = errors.Join(err, fmt.Errorf("evlog/snapshot: fsync directory after pruning: %w", serr))
			}
		}
	}()
	for _, m := range p.Doomed(all) {
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

// Remove deletes the snapshot m (m.File, or FormatFileName(m.Name, m.Seq)
// if unset) and fsyncs the directory. It refuses, with an error matching
// ErrNotFound, if the file is missing or its header names another
// snapshot; a file whose header is corrupt is removed.
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
	got, err := s.readMeta(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s: %w", ErrNotFound, file, err)
	case errors.Is(err, ErrCorrupt):
		s.log.Warn("evlog/snapshot: removing snapshot with a corrupt header", "file", file, "err", err)
	case err != nil:
		return err
	case got.Name != m.Name || got.Seq != m.Seq:
		return staleError(m, got)
	}
	if err := s.fs.Remove(file); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s: %w", ErrNotFound, file, err)
		}
		return fmt.Errorf("evlog/snapshot: remove %s: %w", file, err)
	}
	if err := s.fs.SyncDir(); err != nil {
		return fmt.Errorf("evlog/snapshot: fsync directory after removing %s: %w", file, err)
	}
	s.log.Debug("evlog/snapshot: removed", "name", m.Name, "seq", m.Seq, "file", file)
	return nil
}
