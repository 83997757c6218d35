package evlog

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/evlog/evlog/segment"
	"github.com/evlog/evlog/snapshot"
)

// planBackup lists the segments of the backup at seq: every sealed segment
// that ends at or before seq, whole, then the segment holding seq+1 (the
// newest, normally) up to the end of seq's batch. visibleEnd is where the
// visible frames of the newest segment end.
func (l *Log) planBackup(ctx context.Context, v *view, seq uint64, visibleEnd int64) ([]backupPart, error) {
	var parts []backupPart
	for _, h := range v.segs {
		if h.FirstSeq() > seq+1 {
			break
		}
		p := backupPart{seg: h, BackupedFile: BackupedFile{Name: h.Name, Kind: kindSegment, FirstSeq: h.FirstSeq()}}
		if h.Sealed && h.Trailer.LastSeq <= seq {
			p.cut, p.Sealed, p.LastSeq = h.Size, true, h.Trailer.LastSeq
			var tb [segment.TrailerSize]byte
			if _, err := h.File().ReadAt(tb[:], h.Size-segment.TrailerSize); err != nil {
				return nil, fmt.Errorf("evlog: backup: reading %s: %w", h.Name, err)
			}
			p.Trailer = hex.EncodeToString(tb[:])
			parts = append(parts, p)
			if h.Trailer.LastSeq == seq && h == v.segs[len(v.segs)-1] {
				break
			}
			continue
		}
		if h.Header.Flags&segment.FlagCompressed != 0 {
			// Compaction rewrites only segments at or before the durable
			// end; a compressed one holding seqs after it is corruption.
			return nil, fmt.Errorf("evlog: backup: compressed segment %s holds seqs after the durable end %d: %w", h.Name, seq, ErrCorrupt)
		}
		end := h.Size
		if !h.Sealed && h == v.segs[len(v.segs)-1] {
			end = visibleEnd // the writer's active segment grows
		}
		cut, err := batchEnd(ctx, h, seq, end)
		if err != nil {
			return nil, err
		}
		p.cut, p.LastSeq = cut, seq
		parts = append(parts, p)
		break
	}
	return parts, nil
}

// batchEnd returns the offset in the uncompressed segment h right after
// the batch that ends at seq, reading no further than end — and after the mark that directly follows
// it, if any (the mark of the fsync that made it durable) — or HeaderSize
// when seq precedes the segment. It reads and checks every frame up to
// there.
func batchEnd(ctx context.Context, h *segHandle, seq uint64, end int64) (int64, error) {
	if seq < h.FirstSeq() {
		return segment.HeaderSize, nil
	}
	ra, recEnd, err := h.Records()
	if err != nil {
		return 0, err
	}
	if h.Sealed {
		end = recEnd
	}
	r := segment.NewReader(ra, segment.HeaderSize, end)
	found := int64(-1)
	for n := 0; ; n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		off := r.Offset()
		f, err := r.Next()
		if found >= 0 {
			if err == nil && f.Kind == segment.KindMark {
				if d, derr := segment.DecodeMark(f.Payload, f.Offset); derr == nil && d == found {
					return r.Offset(), nil
				}
			}
			return found, nil
		}
		if err == io.EOF {
			return 0, fmt.Errorf("evlog: backup: %s ends before the batch of seq %d: %w", h.Name, seq, ErrCorrupt)
		}
		if fe, ok := errors.AsType[*segment.FrameError](err); ok {
			return 0, &segment.CorruptError{File: h.Name, Offset: fe.Offset, Reason: fe.Reason}
		}
		if err != nil {
			return 0, fmt.Errorf("evlog: backup: reading %s at %d: %w", h.Name, off, err)
		}
		if f.Kind != segment.KindCommit {
			continue
		}
		c, err := segment.DecodeCommit(f.Payload)
		if err != nil {
			return 0, &segment.CorruptError{File: h.Name, Offset: f.Offset, Reason: err.Error()}
		}
		switch last := c.FirstSeq + uint64(c.Count) - 1; {
		case last == seq:
			found = r.Offset()
		case last > seq:
			return 0, fmt.Errorf("evlog: backup: seq %d is not the end of a batch in %s: %w", seq, h.Name, ErrCorrupt)
		}
	}
}

// backupSnapshots lists the snapshots at or before seq that verify and
// belong to this log.
func (l *Log) backupSnapshots(ctx context.Context, seq uint64) (parts []backupPart, skipped []string, err error) {
	names, err := l.fs.List()
	if err != nil {
		return nil, nil, fmt.Errorf("evlog: backup: listing the log directory: %w", err)
	}
	var store *snapshot.Store
	for _, n := range names {
		_, s, ok := snapshot.ParseFileName(n)
		if !ok || s > seq {
			continue
		}
		if store == nil {
			if store, err = l.Snapshots(); err != nil {
				return nil, nil, err
			}
		}
		m, err := store.Verify(ctx, n)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // pruned meanwhile
		case err != nil || m.LogID != l.logID:
			skipped = append(skipped, n)
			l.logger.Warn("evlog: backup: leaving out a snapshot that does not verify", "file", n, "err", err)
			continue
		}
		parts = append(parts, backupPart{snap: n, BackupedFile: BackupedFile{Name: n, Kind: kindSnapshot, Subject: m.Name, Seq: m.Seq}})
	}
	return parts, skipped, ctx.Err()
}

// eventTime returns the recorded time of the event at seq, one that reads
// as gone included: a backup's end, or a point-in-time restore's, may be
// an event that a later deletion marker hides (or a placeholder Compact
// left in its place, which keeps its time).
func (l *Log) eventTime(ctx context.Context, seq uint64) (time.Time, error) {
	var t time.Time
	found := false
	err := l.inView(ctx, func(v *view, pub published) error {
		if seq == 0 || seq > pub.seq {
			return nil
		}
		return l.scanAllIn(ctx, v, pub, seq, seq, func(e *Envelope) error {
			t, found = e.Time, true
			return nil
		})
	})
	if err != nil {
		return time.Time{}, err
	}
	if !found {
		return time.Time{}, fmt.Errorf("evlog: no event at seq %d", seq)
	}
	return t, nil
}
