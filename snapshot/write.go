package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/evlog/evlog/internal/vfs"
)

// Save writes the snapshot of m.Name at m.Seq holding state, and returns
// m with Time in UTC and RawSize, CompressedSize and File set. m needs
// Name, Seq (≥ 1) and Time; LogID and SchemaVersion are recorded as given;
// Anchor as Options.Anchor says (see Meta.Anchor);
// RawSize, CompressedSize and File are ignored. state is read, never
// retained or modified.
//
// Save refuses a state larger than Options.MaxRawSize (ErrTooLarge) and a
// snapshot whose file already exists (ErrExists: there is nothing to do; a
// corrupt file in the way must be removed first). Otherwise it calls
// Options.BeforeSave(m.Seq), compresses the state, writes it to a
// temporary, fsyncs it, renames it into place and fsyncs the directory.
//
// Durability: when Save returns nil the snapshot is durable. That the
// events it folds are durable, and served by readers, is BeforeSave's
// promise, not Save's: without Options.BeforeSave nothing about the log is
// checked (see Options.BeforeSave). When it fails,
// the temporary is removed (best effort; CleanTemps removes what is left)
// and no other file is touched; if only the final directory fsync failed
// (the error then matches ErrDirSyncFailed), the complete snapshot is in
// place but may not survive a power loss, even after a later directory
// fsync succeeds, and retrying reports ErrExists; the Store then prunes
// and removes nothing (see ErrDirSyncFailed), but Save goes on: a later
// Save's nil still means its snapshot is durable. A crash at any point
// leaves either no snapshot under the final name or a complete one, never
// a torn one.
func (s *Store) Save(ctx context.Context, m Meta, state []byte) (Meta, error) {
	if err := checkMeta(&m); err != nil {
		return Meta{}, err
	}
	if int64(len(state)) > s.opts.MaxRawSize {
		return Meta{}, fmt.Errorf("%w: state of %v is %d bytes, Options.MaxRawSize is %d; raise it to snapshot this subject",
			ErrTooLarge, m, len(state), s.opts.MaxRawSize)
	}
	m.Time = m.Time.UTC()
	m.File = FormatFileName(m.Name, m.Seq)
	if err := ctx.Err(); err != nil {
		return Meta{}, err
	}
	if err := s.checkAbsent(m); err != nil {
		return Meta{}, err
	}
	if s.opts.BeforeSave != nil {
		if err := s.opts.BeforeSave(ctx, m.Seq); err != nil {
			return Meta{}, fmt.Errorf("evlog/snapshot: save %v: BeforeSave: %w", m, err)
		}
	}
	if s.opts.Anchor != nil {
		a, err := s.opts.Anchor(ctx, m.Seq)
		switch {
		case err != nil:
			return Meta{}, fmt.Errorf("evlog/snapshot: save %v: reading the anchor event: %w", m, err)
		case a != 0 && m.Anchor != 0 && a != m.Anchor:
			return Meta{}, invalidf("snapshot %v: the log's event at seq %d is not the one the state was folded up to (anchor %#016x, the caller's %#016x); fold again from the log",
				m, m.Seq, a, m.Anchor)
		case a != 0:
			m.Anchor = a
		}
	}
	start := time.Now()
	bp := encodeBufs.Get().(*[]byte)
	buf, m, err := encode(m, state, s.opts.Level, *bp)
	if err != nil {
		return Meta{}, err
	}
	defer func() {
		*bp = buf[:0]
		encodeBufs.Put(bp)
	}()
	if err := ctx.Err(); err != nil {
		return Meta{}, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkAbsent(m); err != nil {
		return Meta{}, err
	}
	if err := s.writeLocked(m.File, buf); err != nil {
		return Meta{}, fmt.Errorf("evlog/snapshot: save %v: %w", m, err)
	}
	s.log.Debug("evlog/snapshot: saved", "name", m.Name, "seq", m.Seq, "file", m.File,
		"raw", m.RawSize, "compressed", m.CompressedSize, "took", time.Since(start))
	return m, nil
}

// checkAbsent returns an error matching ErrExists if m's file exists.
func (s *Store) checkAbsent(m Meta) error {
	_, err := s.fs.Stat(m.File)
	switch {
	case err == nil:
		return fmt.Errorf("%w: %v (or a subject whose name hash collides) is in %s; nothing was written",
			ErrExists, m, m.File)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	}
	return fmt.Errorf("evlog/snapshot: save %v: stat %s: %w", m, m.File, err)
}

// writeLocked writes data to file atomically and durably: temporary,
// fsync, close, rename, directory fsync. On failure before the rename it
// removes the temporary.
//
// The temporary is locked (FS.Lock) from before it is created until after
// it is renamed or removed: CleanTemps, in this or another process, never
// removes a locked temporary, and the lock dies with the process, so an
// unlocked temporary is provably abandoned.
func (s *Store) writeLocked(file string, data []byte) (err error) {
	tmp := file + tempExt
	if fi, err := s.fs.Lstat(tmp); err == nil && !fi.Regular() {
		return fmt.Errorf("%s is a %s, not a temporary of ours; nothing was written or removed (remove it if it does not belong here): %w",
			tmp, vfs.TypeName(fi.Mode), vfs.ErrNotRegular)
	}
	lk, err := s.fs.Lock(tmp)
	if errors.Is(err, vfs.ErrLocked) {
		return fmt.Errorf("another process is saving this snapshot (its temporary %s is locked); try again later: %w", tmp, err)
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", tmp, err)
	}
	defer func() {
		if cerr := lk.Close(); cerr != nil && err == nil {
			s.log.Warn("evlog/snapshot: releasing the lock of a temporary", "file", tmp, "err", cerr)
		}
	}()
	f, err := s.fs.Create(tmp)
	if err != nil {
		s.removeTemp(tmp)
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	open := true
	defer func() {
		if err != nil {
			if open {
				_ = f.Close() // the write already failed; this error adds nothing
			}
			s.removeTemp(tmp)
		}
	}()
	n, err := f.Write(data)
	if err == nil && n != len(data) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	open = false
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	// Never over an existing file (another process may have saved the
	// same snapshot meanwhile).
	if err := s.fs.RenameNoReplace(tmp, file); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s appeared while this Save was writing it; nothing was replaced", ErrExists, file)
		}
		return fmt.Errorf("rename %s to %s: %w", tmp, file, err)
	}
	if err := s.syncDirLocked(); err != nil {
		return fmt.Errorf("fsync directory after renaming %s: %w", file, err)
	}
	return nil
}

// removeTemp removes a temporary, logging (not returning) a failure.
func (s *Store) removeTemp(tmp string) {
	if err := s.fs.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.log.Warn("evlog/snapshot: cannot remove temporary; CleanTemps will", "file", tmp, "err", err)
	}
}

// CleanTemps removes the temporaries left behind by Saves that crashed or
// failed, then fsyncs the directory. A temporary is removed only when it
// is provably abandoned: a Save holds a lock (FS.Lock) on its temporary
// while it writes it, the lock dies with its process, and CleanTemps
// skips every temporary whose lock it cannot take. Only the log's writer
// calls it (when its snapshot store is first used); Open, readers and
// tools never do. Entries that are not regular files are never removed.
// It returns the joined errors of the removals that failed. It runs also
// after a directory fsync of the Store failed (a temporary is no snapshot's
// only copy); a failure of its own directory fsync makes Prune and Remove
// refuse from then on, as any (ErrDirSyncFailed).
func (s *Store) CleanTemps() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	files, err := s.regularFiles()
	if err != nil {
		return fmt.Errorf("evlog/snapshot: list directory: %w", err)
	}
	var errs []error
	removed := 0
	for _, file := range files {
		if !isTemp(file) {
			continue
		}
		lk, err := s.fs.Lock(file)
		if errors.Is(err, vfs.ErrLocked) {
			continue // a Save in progress, in this or another process
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("evlog/snapshot: lock temporary %s: %w", file, err))
			continue
		}
		err = s.fs.Remove(file)
		lk.Close()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("evlog/snapshot: remove temporary %s: %w", file, err))
			continue
		}
		removed++
		s.log.Info("evlog/snapshot: removed leftover temporary", "file", file)
	}
	if removed > 0 {
		if err := s.syncDirLocked(); err != nil {
			errs = append(errs, fmt.Errorf("evlog/snapshot: fsync directory: %w", err))
		}
	}
	return errors.Join(errs...)
}
