package evlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/evlog/evlog/internal/vfs"
)

// ErrBackupDiverged is matched by the error of an incremental backup (and
// of FollowBackup) whose directory holds a backup that the log no longer
// continues: another log's, one whose files the log has since rewritten
// (it was restored from another backup), or one holding events the log has
// lost (committed batches a read-only pass copied, taken by a power loss
// of the source). Nothing is written: keep that backup, and take a full
// one into a new directory.
var ErrBackupDiverged = errors.New("evlog: the log does not continue this backup")

// FollowOptions configures FollowBackup.
type FollowOptions struct {
	// Interval between passes (default 1s): the backup is kept within
	// about one interval (plus a pass) of the source's durable end.
	Interval time.Duration
	// NoLink: see BackupOptions.
	NoLink bool
	// Logger receives a line per failed pass (default: discard).
	Logger *slog.Logger
	// OnPass, if set, is called after every pass with its result.
	OnPass func(BackupResult, error)
}

// FollowBackup keeps dst a backup of the log in src until ctx is done: a
// read-only follower (it takes no lock in src and never writes there) that
// refreshes the log and takes an incremental backup every Interval. It
// survives the source's segment rolls, compactions and restarts (a pass
// that fails — the source briefly unreadable, a writer restarting — is
// logged and retried on the next interval with the log reopened), and is
// resumable after kill -9: the next run continues from the last manifest
// written. It returns nil when ctx is done, and an error only for a
// backup that cannot continue (ErrBackupDiverged) or a dst it cannot
// write.
func FollowBackup(ctx context.Context, src, dst string, opts FollowOptions) error {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var l *Log
	defer func() {
		if l != nil {
			l.Close()
		}
	}()
	for {
		start := time.Now()
		res, err := func() (BackupResult, error) {
			if l == nil {
				var err error
				if l, err = OpenReadOnly(src, Options{Logger: logger}); err != nil {
					l = nil
					return BackupResult{}, err
				}
			} else if err := l.Refresh(); err != nil {
				l.Close()
				l = nil
				return BackupResult{}, err
			}
			return l.Backup(ctx, dst, BackupOptions{Incremental: true, NoLink: opts.NoLink, Source: src})
		}()
		if opts.OnPass != nil {
			opts.OnPass(res, err)
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrBackupDiverged), errors.Is(err, ErrNotABackup), errors.Is(err, vfs.ErrLocked):
			return err
		case err != nil:
			logger.Warn("evlog: follow backup: pass failed; retrying", "src", src, "dst", dst, "err", err)
			if l != nil { // reopen: the source may have been restarted or replaced
				l.Close()
				l = nil
			}
		}
		wait := time.NewTimer(max(0, opts.Interval-time.Since(start)))
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil
		case <-wait.C:
		}
	}
}

// BackupStatus describes a backup and how far it lags its source.
type BackupStatus struct {
	Dir   string `json:"dir"`
	LogID string `json:"log_id"`
	// Seq and Time: where the backup ends (S). Created: when its last pass
	// finished.
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	Created time.Time `json:"created"`
	Files   int       `json:"files"`
	Bytes   int64     `json:"bytes"`
	// Source is the log it was taken from; SourceSeq and SourceTime where
	// that log ends now (read-only, when it can be opened; SourceErr
	// otherwise).
	Source     string    `json:"source,omitempty"`
	SourceSeq  uint64    `json:"source_seq,omitempty"`
	SourceTime time.Time `json:"source_time,omitzero"`
	SourceErr  string    `json:"source_error,omitempty"`
	// LagEvents is SourceSeq - Seq; LagSeconds the time between the
	// backup's last event and the source's (both recorded times); Age the
	// time since the last pass finished.
	LagEvents  uint64  `json:"lag_events"`
	LagSeconds float64 `json:"lag_seconds"`
	AgeSeconds float64 `json:"age_seconds"`
}

// ReadBackupStatus reads the manifest of the backup in dir (without
// checking the files: see VerifyBackup) and, when its source log can be
// opened read-only, measures the lag.
func ReadBackupStatus(dir string) (BackupStatus, error) {
	st := BackupStatus{Dir: dir}
	fsys, err := vfs.OpenOS(dir)
	if err != nil {
		return st, fmt.Errorf("evlog: opening backup %s: %w", dir, err)
	}
	defer fsys.Close()
	m, err := readManifest(vfs.ReadOnly(fsys), dir)
	if err != nil {
		return st, err
	}
	st.LogID, st.Seq, st.Time, st.Created, st.Source = m.LogID, m.Seq, m.Time, m.Created, m.Source
	st.Files = len(m.Files)
	for _, f := range m.Files {
		st.Bytes += f.Size
	}
	st.AgeSeconds = time.Since(m.Created).Seconds()
	if m.Source == "" {
		return st, nil
	}
	l, err := OpenReadOnly(m.Source, Options{})
	if err != nil {
		st.SourceErr = err.Error()
		return st, nil
	}
	defer l.Close()
	if id := l.LogID(); fmt.Sprintf("%x", id[:]) != m.LogID {
		st.SourceErr = fmt.Sprintf("%s now holds log %x, not the backed-up log", m.Source, l.LogID())
		return st, nil
	}
	st.SourceSeq, st.SourceTime = l.LastSeq(), l.LastTime()
	if st.SourceSeq > st.Seq {
		st.LagEvents = st.SourceSeq - st.Seq
		st.LagSeconds = max(0, st.SourceTime.Sub(st.Time).Seconds())
	}
	return st, nil
}
