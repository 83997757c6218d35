package evlog

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

// LockFile is the name of the lock file in a log directory.
const LockFile = "LOCK"

// Log is an open event log. All methods are safe for concurrent use: any
// number of goroutines may append and read at once. Appends are sequenced
// by one writer, which runs on its own goroutine or, when the log is idle,
// on the appending goroutine (saving two goroutine hand-offs); readers
// never block it and see only complete, committed batches.
type Log struct {
	opts     Options
	fs       vfs.FS
	closeFS  func() error
	lock     io.Closer
	readOnly bool
	logID    segment.LogID
	logger   *slog.Logger
	report   RecoveryReport

	refreshMu sync.Mutex // serialises Refresh
	compactMu sync.Mutex // serialises Compact

	// Close cancels closeCtx and then waits for running compactions.
	closeCtx    context.Context
	cancelClose context.CancelCauseFunc
	compactions sync.WaitGroup // Add only under mu, while !closed

	mu     sync.RWMutex
	v      *view
	pub    published
	notify chan struct{} // closed and replaced on every publish
	closed bool

	durableSeq uint64        // every event up to it is durable
	durableCh  chan struct{} // closed and replaced when durableSeq grows
	// markSynced is the last seq a mark records durable that was itself
	// fsynced (or sealed with its segment, or made durable by Open's
	// recovery: syncOpenMark): a reader in another process serves every
	// event up to it, also after a power loss (see syncThrough). Read
	// under SyncAlways only; 0 when read-only.
	markSynced atomic.Uint64

	w      *writer // nil when read-only
	stats  counters
	blocks *segment.BlockCache // decompressed blocks of compressed segments

	// dirSync is fs for a writer, remembering a failed directory fsync
	// (dirsync.go); nil when read-only.
	dirSync *dirSyncFS

	dir      string // the operating-system directory ("" for other FSs)
	snapOnce sync.Once
	snaps    *snapshot.Store
	snapErr  error

	dels deletions  // the deletion table (deletion.go)
	rets retentions // the recorded retention (retention.go)

	catMu   sync.Mutex            // guards cat and its entries, actSeg and actMemo
	cat     *streamCatalog        // the sealed segments' streams (Streams), built on first use
	actSeg  *segHandle            // the active segment actMemo describes
	actMemo map[string]activeSeen // what Streams read of actSeg's frames
}

// Open opens the log in dir for writing, creating dir (and fsyncing its
// parent) if needed. A new log is created only in an empty directory: a
// directory holding files but none of a log (no segment, snapshot or LOCK
// file; hidden files and subdirectories aside) fails with ErrNotALog and
// is left untouched. It takes an exclusive lock on dir/LOCK: a second
// writer, in this or another process, fails at once with ErrLocked. Open
// recovers from a crash: a torn tail of the newest segment is truncated and
// reported (Recovery, and Options.Logger); corruption anywhere else fails
// Open with an error matching ErrCorrupt.
func Open(dir string, opts Options) (*Log, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	fsys, err := vfs.CreateOSPerm(dir, o.Perm)
	if err != nil {
		return nil, fmt.Errorf("evlog: opening %s: %w", dir, err)
	}
	l, err := openResolved(fsys, o, false)
	if err != nil {
		if errors.Is(err, ErrNotALog) {
			err = fmt.Errorf("evlog: opening %s: %w", dir, err)
		}
		return nil, errors.Join(err, fsys.Close())
	}
	l.closeFS, l.dir = fsys.Close, dir
	return l, nil
}

// OpenReadOnly opens the log in dir for reading. It takes no lock and never
// modifies, creates or removes anything, so it can read a log that another
// process is writing; it sees the events committed when it opened (and
// after each Refresh). Its snapshot store is read-only too: a tool that
// writes snapshots beside the log opens it with OpenSnapshotWriter. dir
// must exist; an empty directory, or one with a
// LOCK file but no segments, is an empty log; a directory holding other
// files but none of a log fails with ErrNotALog. A torn tail is not served
// and is reported by Recovery.
func OpenReadOnly(dir string, opts Options) (*Log, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		return nil, fmt.Errorf("evlog: opening %s: %w", dir, err)
	}
	l, err := openResolved(vfs.ReadOnly(fsys), o, true)
	if err != nil {
		if errors.Is(err, ErrNotALog) {
			err = fmt.Errorf("evlog: opening %s: %w", dir, err)
		}
		return nil, errors.Join(err, fsys.Close())
	}
	l.closeFS, l.dir = fsys.Close, dir
	return l, nil
}

// openFS opens the log held by fsys; it is Open and OpenReadOnly without
// the operating system (tests pass in-memory and fault-injecting FSs).
func openFS(fsys vfs.FS, opts Options, readOnly bool) (*Log, error) {
	o, err := opts.resolve()
	if err != nil {
		return nil, err
	}
	return openResolved(fsys, o, readOnly)
}

// openResolved is openFS with options already resolved (validated, with
// defaults applied).
func openResolved(fsys vfs.FS, o Options, readOnly bool) (_ *Log, err error) {
	l := &Log{opts: o, fs: fsys, readOnly: readOnly, logger: o.Logger, notify: make(chan struct{}), durableCh: make(chan struct{}),
		blocks: segment.NewBlockCache(o.BlockCacheSize)}
	if !readOnly {
		// Everything the writer's Log does in the directory, and its
		// snapshot store, fsyncs it through dirSync (dirsync.go).
		l.dirSync = newDirSyncFS(fsys, o.Logger)
		l.fs = l.dirSync
	}
	l.closeCtx, l.cancelClose = context.WithCancelCause(context.Background())
	defer func() {
		if err != nil {
			l.cancelClose(ErrClosed)
		}
	}()
	if err := checkLogDir(fsys); err != nil {
		return nil, err
	}
	if !readOnly {
		if l.lock, err = fsys.Lock(LockFile); err != nil {
			if errors.Is(err, vfs.ErrLocked) {
				return nil, fmt.Errorf("evlog: the log is locked by another writer (use OpenReadOnly to read beside it): %w", err)
			}
			return nil, fmt.Errorf("evlog: locking the log: %w", err)
		}
		defer func() {
			if err != nil {
				l.lock.Close()
			}
		}()
		// Again under the lock: a restore into the directory takes the
		// same lock, and one that ran and was killed since the check above
		// left its marker. Taken for a log, its files would be appended
		// to, and the restore run again (as the marker asks) starts over
		// by removing them, acknowledged appends and all.
		if err := checkLogDir(fsys); err != nil {
			return nil, err
		}
	}
	var rec *recovered
	if readOnly {
		rec, err = recoverBesideWriter(fsys, o.Logger)
	} else {
		rec, err = recoverDir(fsys, o.Logger, false)
	}
	if err != nil {
		return nil, err
	}
	l.report = rec.report
	if t := rec.report.TornTail; t != nil {
		lvl, verb := slog.LevelWarn, "truncating"
		if readOnly {
			lvl, verb = slog.LevelInfo, "not serving"
		}
		o.Logger.Log(context.Background(), lvl, "evlog: recovery: "+verb+" the torn tail of the newest segment",
			"file", rec.report.TornFile, "offset", t.Offset, "bytes", t.Size, "uncommitted_events", t.Events,
			"first_seq", t.FirstSeq, "last_seq", t.LastSeq, "recorded_durable_end", t.Durable, "reason", t.Reason,
			"note", "not recorded as durable; under SyncNever or SyncInterval, or after a power loss took the last mark, it may hold acknowledged appends")
	}
	segs := make([]*segHandle, len(rec.segs))
	for i, s := range rec.segs {
		segs[i] = l.segHandle(s)
	}
	l.logID = rec.logID
	l.mu.Lock() // nobody else holds l yet: for the protocol's sake
	l.loadLocked(segs, rec.active)
	l.mu.Unlock()
	if readOnly {
		if err := l.checkRetention(context.Background()); err != nil { // retention.go
			l.v.unref()
			return nil, err
		}
		return l, nil
	}
	if l.w, err = startWriter(l, rec); err != nil {
		l.v.unref()
		return nil, err
	}
	if err := l.checkRetention(context.Background()); err != nil { // retention.go: records Options.Retention
		err = errors.Join(err, l.w.stop())
		l.mu.Lock()
		l.closeLocked()
		l.mu.Unlock()
		return nil, err
	}
	return l, nil
}

// CheckLogDir returns nil when the existing directory dir holds a log or
// is empty (ignoring hidden files and subdirectories), and an error
// matching ErrNotALog when it holds other files only: what Open and
// OpenReadOnly check before anything else. It only reads the directory.
func CheckLogDir(dir string) error {
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		return fmt.Errorf("evlog: opening %s: %w", dir, err)
	}
	defer fsys.Close()
	if err := checkLogDir(fsys); err != nil {
		return fmt.Errorf("evlog: opening %s: %w", dir, err)
	}
	return nil
}

// checkLogDir fails with ErrNotALog when fsys holds files but none that
// belongs to a log: no LOCK, segment, snapshot or temporary of either.
// Hidden files (".DS_Store") are ignored, and subdirectories are not
// listed (a mount point's lost+found), so such a directory counts as empty.
func checkLogDir(fsys vfs.FS) error {
	names, err := fsys.List()
	if err != nil {
		return fmt.Errorf("evlog: listing the log directory: %w", err)
	}
	var foreign []string
	if err := restoreMarked(names); err != nil {
		return err
	}
	for _, n := range names {
		if isLogFile(n) {
			return nil
		}
		if !strings.HasPrefix(n, ".") {
			foreign = append(foreign, n)
		}
	}
	if len(foreign) == 0 {
		return nil // empty: a new log
	}
	return fmt.Errorf("%w: the directory holds %d %s (%q%s) but no segment, snapshot or %s file; give a new or empty directory for a new log",
		ErrNotALog, len(foreign), plural(len(foreign), "file", "files"), foreign[0], moreSuffix(len(foreign)), LockFile)
}

// isLogFile reports whether name is one of the files a log directory holds.
func isLogFile(name string) bool {
	if name == LockFile {
		return true
	}
	base, _ := strings.CutSuffix(name, segment.TempExt) // segment and snapshot temporaries share it
	if _, _, ok := segment.ParseFileName(base); ok {
		return true
	}
	_, _, ok := snapshot.ParseFileName(base)
	return ok
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func moreSuffix(n int) string {
	if n > 1 {
		return ", …"
	}
	return ""
}

func newLogID() (segment.LogID, error) {
	var id segment.LogID
	_, err := rand.Read(id[:])
	return id, err
}

// LogID returns the log's identity (random, fixed when the log was
// created); zero for an empty log opened read-only.
func (l *Log) LogID() [16]byte {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.logID
}

// LastSeq returns the seq of the last visible event (0 for an empty log).
func (l *Log) LastSeq() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.pub.seq
}

// LastTime returns the recorded time of the last visible event (zero time
// for an empty log).
func (l *Log) LastTime() time.Time {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.pub.seq == 0 {
		return time.Time{}
	}
	return time.Unix(0, l.pub.time).UTC()
}

// Recovery reports what Open found (and, for a writer, repaired).
func (l *Log) Recovery() RecoveryReport { return l.report }

// ReadOnly reports whether the log was opened with OpenReadOnly.
func (l *Log) ReadOnly() bool { return l.readOnly }

// Close stops the writer (pending appends complete first), makes
// everything appended durable (even under SyncNever), releases the lock
// and closes the files. A running Compact is cancelled and Close waits for
// it to return first (groups it had committed stay committed). Iterations
// still running finish on the files they hold. Close is idempotent.
// Under SyncAlways, when the mark recording the last group cannot be
// written for lack of space (see SyncAlways), Close still closes the log
// but fails with an error matching syscall.ENOSPC: the group is durable,
// but a reader in another process does not serve it until a writer opens
// the log again.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.releaseSubscriptions() // subscription.go
	// No compaction may touch the directory once the lock is released.
	l.cancelClose(ErrClosed)
	l.compactions.Wait()
	var errs []error
	if l.w != nil {
		errs = append(errs, l.w.stop())
	}
	l.mu.Lock()
	l.closeLocked()
	l.mu.Unlock()
	if l.lock != nil {
		errs = append(errs, l.lock.Close())
	}
	if l.closeFS != nil {
		errs = append(errs, l.closeFS())
	}
	return errors.Join(errs...)
}

// checkLock fails if the lock file was removed or replaced since Open: a
// second writer may then have locked the new file, and the two would
// overwrite each other. The writer checks it at every roll (and compaction
// before each commit) and fail-stops on an error.
func (l *Log) checkLock() error {
	if l.lock == nil {
		return nil
	}
	if err := vfs.CheckLock(l.lock); err != nil {
		return fmt.Errorf("evlog: the log's %s file no longer guards it (it must never be removed; stop every process writing this log, then reopen): %w", LockFile, err)
	}
	return nil
}
