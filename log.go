package evlog

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

// LockFile is the name of the lock file in a log directory.
const LockFile = "LOCK"

// Log is an open event log. All methods are safe for concurrent use: any
// number of goroutines may append and read at once. Appends are sequenced
// by a single writer goroutine; readers never block it and see only
// complete, committed batches.
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

	mu     sync.RWMutex
	v      *view
	pub    published
	notify chan struct{} // closed and replaced on every publish
	closed bool

	durableSeq uint64        // every event up to it is durable
	durableCh  chan struct{} // closed and replaced when durableSeq grows

	w     *writer // nil when read-only
	stats counters

	rawFS    vfs.FS // read-only logs: the FS without the read-only guard
	snapOnce sync.Once
	snaps    *snapshot.Store
	snapErr  error
}

// published is the state readers may see: everything up to seq, which in
// the active segment ends at end.
type published struct {
	seq     uint64 // last visible seq (0: empty log)
	time    int64  // its recorded time, unix ns
	end     int64  // end of the visible frames in the newest segment
	streams uint64 // number of streams with visible events
}

// Open opens the log in dir for writing, creating dir (and fsyncing its
// parent) if needed. It takes an exclusive lock on dir/LOCK: a second
// writer, in this or another process, fails at once with ErrLocked. Open
// recovers from a crash: a torn tail of the newest segment is truncated and
// reported (Recovery, and Options.Logger); corruption anywhere else fails
// Open with an error matching ErrCorrupt.
func Open(dir string, opts Options) (*Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	fsys, err := vfs.CreateOS(dir)
	if err != nil {
		return nil, fmt.Errorf("evlog: opening %s: %w", dir, err)
	}
	l, err := openFS(fsys, opts, false)
	if err != nil {
		return nil, errors.Join(err, fsys.Close())
	}
	l.closeFS = fsys.Close
	return l, nil
}

// OpenReadOnly opens the log in dir for reading. It takes no lock and never
// modifies, creates or removes anything, so it can read a log that another
// process is writing; it sees the events committed when it opened (and
// after each Refresh). dir must exist; a directory without segments is an
// empty log. A torn tail is not served and is reported by Recovery.
func OpenReadOnly(dir string, opts Options) (*Log, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		return nil, fmt.Errorf("evlog: opening %s: %w", dir, err)
	}
	l, err := openFS(vfs.ReadOnly(fsys), opts, true)
	if err != nil {
		return nil, errors.Join(err, fsys.Close())
	}
	l.closeFS, l.rawFS = fsys.Close, fsys
	return l, nil
}

// openFS opens the log held by fsys; it is Open and OpenReadOnly without
// the operating system (tests pass in-memory and fault-injecting FSs).
func openFS(fsys vfs.FS, opts Options, readOnly bool) (_ *Log, err error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	o := opts.withDefaults()
	l := &Log{opts: o, fs: fsys, readOnly: readOnly, logger: o.Logger, notify: make(chan struct{}), durableCh: make(chan struct{})}
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
	}
	rec, err := recoverDir(fsys, o.Logger, readOnly)
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
		segs[i] = newSegHandle(s)
	}
	l.logID = rec.logID
	l.v = newView(segs, rec.active)
	l.pub = initialPublished(segs, rec.active)
	l.durableSeq = l.pub.seq // a writer fsyncs it before appending (a reader cannot know)
	if readOnly {
		return l, nil
	}
	if l.w, err = startWriter(l, rec); err != nil {
		l.v.unref()
		return nil, err
	}
	return l, nil
}

func initialPublished(segs []*segHandle, active *segment.Index) published {
	var p published
	for _, s := range segs {
		if s.Sealed {
			p.seq = s.Trailer.LastSeq
			p.streams += uint64(s.Trailer.NewStreams)
			if s.Trailer.Count > 0 {
				p.time = s.Trailer.LastTime
			}
		}
	}
	if active != nil {
		p.end = active.End
		p.streams += uint64(active.NewStreams)
		if active.Count > 0 {
			p.seq, p.time = active.LastSeq, active.LastTime
		}
	}
	return p
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
// and closes the files. Iterations still running finish on the files they
// hold. Close is idempotent.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	var errs []error
	if l.w != nil {
		errs = append(errs, l.w.stop())
	}
	l.mu.Lock()
	l.v.unref()
	close(l.notify)
	close(l.durableCh)
	l.mu.Unlock()
	if l.lock != nil {
		errs = append(errs, l.lock.Close())
	}
	if l.closeFS != nil {
		errs = append(errs, l.closeFS())
	}
	return errors.Join(errs...)
}

// acquire returns the current view (referenced: call unref) and the
// published state, or ErrClosed.
func (l *Log) acquire() (*view, published, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, published{}, ErrClosed
	}
	l.v.ref()
	return l.v, l.pub, nil
}
