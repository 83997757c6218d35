package snapshot

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/evlog/evlog/internal/vfs"
)

// Store keeps snapshots in one directory.
//
// A Store is safe for concurrent use by multiple goroutines. Reads (List,
// Candidates, Load, Verify, VerifyAll) take no lock and
// run beside each other and beside the writing methods (Save, Prune,
// Remove, CleanTemps), which are serialised among themselves. Reads never
// create, modify, rename or remove anything, so a process that only reads
// can use a read-only FS. Writes from several processes are safe with
// respect to temporaries: a Save locks its temporary, and CleanTemps only
// removes temporaries nobody holds locked (see CleanTemps).
//
// A Store remembers, for as long as it lives, that one of its directory
// fsyncs failed: from then on Prune and Remove refuse with an error
// matching ErrDirSyncFailed and remove nothing, since the failed fsync may
// have lost directory changes for good that no later fsync brings back
// (see ErrDirSyncFailed for why, and for what to do). Save, CleanTemps and
// the reads go on. Options.DirSyncFailed lets the Store learn of such a
// failure elsewhere in its directory (the log's).
type Store struct {
	fs   vfs.FS
	opts Options // with defaults applied
	log  *slog.Logger

	// mu serialises the writing methods, so that the existence check and
	// the rename of a Save are atomic with respect to other writes and a
	// Save's temporary is never removed by CleanTemps while in use.
	mu sync.Mutex
	// dirSyncErr is the first directory fsync failure (guarded by mu):
	// once set, Prune and Remove refuse (ErrDirSyncFailed).
	dirSyncErr error
}

// syncDirLocked fsyncs the directory. A failure is remembered, so that
// Prune and Remove refuse from then on, and returned matching both
// ErrDirSyncFailed and its cause (as the FS returned it when it already
// matches ErrDirSyncFailed, as the log's directory does).
func (s *Store) syncDirLocked() error {
	err := s.fs.SyncDir()
	if err == nil {
		return nil
	}
	if s.dirSyncErr == nil {
		s.dirSyncErr = err
		s.log.Error("evlog/snapshot: a directory fsync failed; this Store prunes and removes nothing from now on (check the disk, then restart the machine or remount the file system before pruning)", "err", err)
	}
	if errors.Is(err, ErrDirSyncFailed) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrDirSyncFailed, err)
}

// refuseLocked returns the refusal of Prune or Remove (op) once a
// directory fsync of s failed, or Options.DirSyncFailed reports one
// elsewhere, and nil before.
func (s *Store) refuseLocked(op string) error {
	if s.dirSyncErr == nil {
		if s.opts.DirSyncFailed == nil {
			return nil
		}
		err := s.opts.DirSyncFailed()
		if err == nil {
			return nil
		}
		return fmt.Errorf("%w in the store's directory (reported by Options.DirSyncFailed), so %s removes nothing: %w",
			ErrDirSyncFailed, op, err)
	}
	return fmt.Errorf("%w earlier in this Store (%w), so %s removes nothing: the file system may have lost directory changes made before it (a snapshot renamed into place) for good, and no later fsync proves them durable; check the disk, then restart the machine or remount the file system before pruning or removing snapshots (reopening the store or restarting the process proves nothing: listings still come from the kernel's cache)",
		ErrDirSyncFailed, s.dirSyncErr, op)
}

// Open returns a Store over the directory fsys with the given options. It
// validates opts and never modifies anything; it does not clean up
// leftover temporaries (the writer calls CleanTemps). The Store knows no
// log: only opts.BeforeSave ties a Save to the durability of the events
// it folds (see Options.BeforeSave). A log's snapshots are saved through
// evlog.Log.Snapshots or evlog.OpenSnapshotWriter, which set it; a Store
// opened here without it is for reading and tests. (Open takes an
// internal/vfs FS, so only code inside this module can call it.)
func Open(fsys vfs.FS, opts Options) (*Store, error) {
	if fsys == nil {
		return nil, invalidf("nil FS")
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	return &Store{fs: fsys, opts: opts, log: opts.Logger}, nil
}

// List returns the snapshots of name, or of every subject when name is "",
// sorted by (Name, Seq). It reads only headers: every entry has a header
// with a matching checksum and a file of the declared size, but its payload
// is unchecked, so Load or Verify may still find it corrupt. Files whose
// header is corrupt are logged and left out, as are files removed while
// List runs. Other read failures are returned.
func (s *Store) List(name string) ([]Meta, error) {
	var want uint64
	if name != "" {
		if err := checkName(name); err != nil {
			return nil, err
		}
		want = NameHash(name)
	}
	files, err := s.regularFiles()
	if err != nil {
		return nil, fmt.Errorf("evlog/snapshot: list directory: %w", err)
	}
	var out []Meta
	for _, file := range files {
		h, _, ok := ParseFileName(file)
		if !ok || name != "" && h != want {
			continue
		}
		m, err := s.readMeta(file)
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist):
			continue
		case errors.Is(err, ErrCorrupt):
			s.log.Warn("evlog/snapshot: skipping snapshot with a corrupt header", "file", file, "err", err)
			continue
		default:
			return nil, err
		}
		if name != "" && m.Name != name {
			continue // another subject whose name hash collides
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Meta) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), cmp.Compare(a.Seq, b.Seq))
	})
	return out, nil
}

// Candidate is one file Candidates visits: a snapshot whose header reads
// (Meta, as List reports it), or, when Unreadable is set, a file named like
// a snapshot of the subject whose header is corrupt or cannot be read
// (Meta then holds only File and Seq, from the file name), which a caller
// falling back over it should report.
type Candidate struct {
	Meta       Meta
	Unreadable string // why the header cannot be read; "" when it can
}

// Candidates visits the snapshot files of name with Seq <= maxSeq
// (math.MaxUint64: every one), newest (highest Seq) first: those whose
// header reads, as List reports them, and those whose header is corrupt
// (Unreadable set). The caller tries them in order and falls back to the
// next when one is unusable; Load verifies the payload. Each header is read
// once and only when the iteration reaches it, so a caller that stops at
// the first usable snapshot reads no older header. A corrupt header is
// logged as List logs it; a file removed while Candidates runs is left
// out; a file that cannot be opened or read (no permission, an I/O error)
// is visited with Unreadable set, as a corrupt one is; an invalid name or
// a failure to list the directory ends the iteration with that error. No
// file is not an error.
func (s *Store) Candidates(name string, maxSeq uint64) iter.Seq2[Candidate, error] {
	return func(yield func(Candidate, error) bool) {
		if err := checkName(name); err != nil {
			yield(Candidate{}, err)
			return
		}
		files, err := s.regularFiles()
		if err != nil {
			yield(Candidate{}, fmt.Errorf("evlog/snapshot: list directory: %w", err))
			return
		}
		want := NameHash(name)
		// File names are fixed-width (hash, then seq), so among one
		// subject's files name order is seq order.
		for _, file := range slices.Backward(files) {
			h, seq, ok := ParseFileName(file)
			if !ok || h != want || seq > maxSeq {
				continue
			}
			m, err := s.readMeta(file)
			var c Candidate
			switch {
			case err == nil:
				if m.Name != name {
					continue // another subject whose name hash collides
				}
				c.Meta = m
			case errors.Is(err, fs.ErrNotExist):
				continue
			case errors.Is(err, ErrCorrupt):
				s.log.Warn("evlog/snapshot: skipping snapshot with a corrupt header", "file", file, "err", err)
				c = Candidate{Meta: Meta{File: file, Seq: seq}, Unreadable: err.Error()}
			default:
				// Cannot be read (no permission, an I/O error): like a
				// damaged one, it is passed over, not the end of the
				// subject's snapshots.
				s.log.Warn("evlog/snapshot: skipping snapshot whose header cannot be read", "file", file, "err", err)
				c = Candidate{Meta: Meta{File: file, Seq: seq}, Unreadable: err.Error()}
			}
			if !yield(c, nil) {
				return
			}
		}
	}
}

// Load reads the snapshot m, verifies it fully (file checksum, sizes,
// decompressed size) and returns its state, which the caller owns. m needs
// Name and Seq (File defaults to FormatFileName(m.Name, m.Seq)); every
// other non-zero field must match the file, so a Meta from List also
// detects a file replaced since. A damaged file gives a *CorruptError
// (ErrCorrupt); a missing file or a mismatch gives an error matching
// ErrNotFound.
func (s *Store) Load(ctx context.Context, m Meta) ([]byte, error) {
	file := m.File
	if file == "" {
		if err := checkName(m.Name); err != nil {
			return nil, err
		}
		file = FormatFileName(m.Name, m.Seq)
	}
	got, state, err := s.read(ctx, file, true)
	if err != nil {
		return nil, err
	}
	if !matches(m, got) {
		return nil, staleError(m, got)
	}
	return state, nil
}

// Verify reads the snapshot file (a base name made by FormatFileName),
// verifies it fully as Load does, and returns its metadata. A damaged file
// gives a *CorruptError (ErrCorrupt), a missing one ErrNotFound.
func (s *Store) Verify(ctx context.Context, file string) (Meta, error) {
	m, _, err := s.read(ctx, file, false)
	return m, err
}

// VerifyAll verifies every snapshot file in the directory, for tools. It
// returns the metadata of those that verify, sorted by (Name, Seq), and an
// error joining one error per file that does not (each a *CorruptError
// for damage) or the first failure to list the directory. A file removed
// while VerifyAll runs (by a writer's Prune beside it) is left out, as List
// leaves it out. Leftover temporaries are not snapshots and are not
// reported.
func (s *Store) VerifyAll(ctx context.Context) ([]Meta, error) {
	files, err := s.regularFiles()
	if err != nil {
		return nil, fmt.Errorf("evlog/snapshot: list directory: %w", err)
	}
	var good []Meta
	var errs []error
	for _, file := range files {
		if _, _, ok := ParseFileName(file); !ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return good, err
		}
		m, err := s.Verify(ctx, file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		good = append(good, m)
	}
	slices.SortFunc(good, func(a, b Meta) int {
		return cmp.Or(strings.Compare(a.Name, b.Name), cmp.Compare(a.Seq, b.Seq))
	})
	return good, errors.Join(errs...)
}

// readMeta reads and checks the header of file.
func (s *Store) readMeta(file string) (Meta, error) {
	f, err := s.fs.Open(file)
	if err != nil {
		return Meta{}, fmt.Errorf("evlog/snapshot: open %s: %w", file, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return Meta{}, fmt.Errorf("evlog/snapshot: size of %s: %w", file, err)
	}
	m, _, err := readHeader(file, f, size, s.opts.MaxRawSize)
	if err != nil {
		return Meta{}, err
	}
	return m, checkFileName(file, &m)
}

// read opens file, decodes and checks it, and returns its metadata, and
// its state when wantState is set (it is decompressed either way).
func (s *Store) read(ctx context.Context, file string, wantState bool) (Meta, []byte, error) {
	if err := ctx.Err(); err != nil {
		return Meta{}, nil, err
	}
	if _, _, ok := ParseFileName(file); !ok {
		return Meta{}, nil, invalidf("%q is not a snapshot file name", file)
	}
	f, err := s.fs.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return Meta{}, nil, fmt.Errorf("%w: %s: %w", ErrNotFound, file, err)
	}
	if err != nil {
		return Meta{}, nil, fmt.Errorf("evlog/snapshot: open %s: %w", file, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return Meta{}, nil, fmt.Errorf("evlog/snapshot: size of %s: %w", file, err)
	}
	m, state, err := decode(file, f, size, s.opts.MaxRawSize, wantState)
	if err != nil {
		return Meta{}, nil, err
	}
	if err := checkFileName(file, &m); err != nil {
		return Meta{}, nil, err
	}
	return m, state, nil
}

// checkFileName checks that the header m agrees with the name of its file
// and sets m.File.
func checkFileName(file string, m *Meta) error {
	h, seq, ok := ParseFileName(file)
	if !ok || h != NameHash(m.Name) || seq != m.Seq {
		return &CorruptError{File: file, Offset: offSeq,
			Reason: fmt.Sprintf("file name does not match its header (%q at seq %d belongs in %s)",
				m.Name, m.Seq, FormatFileName(m.Name, m.Seq))}
	}
	m.File = file
	return nil
}

// matches reports whether got, read from a file, is the snapshot want
// describes: same Name and Seq, and same value of every other non-zero
// field of want.
func matches(want, got Meta) bool {
	return want.Name == got.Name && want.Seq == got.Seq &&
		(want.LogID == [16]byte{} || want.LogID == got.LogID) &&
		(want.Time.IsZero() || want.Time.Equal(got.Time)) &&
		(want.SchemaVersion == 0 || want.SchemaVersion == got.SchemaVersion) &&
		(want.Anchor == 0 || want.Anchor == got.Anchor) &&
		(want.Scope == 0 || want.Scope == got.Scope) &&
		(want.Unfolded.Len() == 0 || want.Unfolded == got.Unfolded) &&
		(want.RawSize == 0 || want.RawSize == got.RawSize) &&
		(want.CompressedSize == 0 || want.CompressedSize == got.CompressedSize) &&
		(want.File == "" || want.File == got.File)
}

// staleError reports that a file holds another snapshot than the one asked
// for, typically because it was replaced after it was listed.
func staleError(want, got Meta) error {
	return fmt.Errorf("%w: %s holds %v (schema %d, %d bytes), not the requested %v (schema %d, %d bytes); list again",
		ErrNotFound, got.File, got, got.SchemaVersion, got.RawSize, want, want.SchemaVersion, want.RawSize)
}

// regularFiles lists the names of the directory's regular files, sorted.
// A symbolic link, FIFO, device or directory named like a snapshot is not
// a snapshot: it is never opened (a FIFO would block the reader) and never
// removed.
func (s *Store) regularFiles() ([]string, error) {
	entries, err := s.fs.ReadDir()
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Regular() {
			out = append(out, e.Name)
		}
	}
	return out, nil
}
