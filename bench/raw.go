package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/evlog/evlog/segment"
)

// raw is the physical limit of evlog's format: the same event and commit
// frames (segment.AppendEventFrame / AppendCommitFrame, CRC32C inside),
// written through bufio to one file, one commit frame and one fsync per
// batch; no segment header, no index, no recovery. Single appends share
// fsyncs (a minimal leader/follower group commit), so raw is also the
// limit for concurrent single appends. Reads go through segment.Reader
// (256 KiB reads, CRC check per frame) and segment.Decoder, then the
// payload through a reused msgpack Decoder. Stream loads and time queries
// have no index: they scan.
func init() {
	register(&Contestant{
		Name:       "raw",
		Order:      0,
		Durability: "write(2) of the batch's frames, then fsync(2) of the file (os.File.Sync) before returning; concurrent single appends share one fsync (group commit).",
		Open:       openRaw,
		DiskBytes:  func(dir string) (int64, error) { return dirBytes(dir, ".log") },
	})
}

type rawStore struct {
	path string
	f    *os.File
	w    *bufio.Writer
	c    *codec
	buf  []byte

	mu      sync.Mutex
	cond    *sync.Cond
	seq     uint64 // last written seq
	end     int64  // bytes written (flushed or buffered)
	durable int64  // bytes fsynced
	synced  uint64 // last fsynced seq
	syncing bool
	err     error // sticky write/fsync error
}

func openRaw(dir string, _ int) (Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "events.log")
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	s := &rawStore{path: path, f: f, c: newCodec()}
	s.cond = sync.NewCond(&s.mu)
	if errors.Is(statErr, os.ErrNotExist) {
		if err := syncDir(dir); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := s.recoverEnd(); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Seek(s.end, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	s.durable, s.synced = s.end, s.seq
	s.w = bufio.NewWriterSize(f, 1<<20)
	return s, nil
}

// writeEvent buffers the frame of one event; s.mu is held.
func (s *rawStore) writeEvent(e *Ev, now time.Time) error {
	env, err := s.c.envelope(s.seq+1, e, now)
	if err != nil {
		return err
	}
	s.buf = segment.AppendEventFrame(s.buf[:0], env)
	if _, err := s.w.Write(s.buf); err != nil {
		return err
	}
	s.seq++
	s.end += int64(len(s.buf))
	return nil
}

func (s *rawStore) writeCommit(first uint64, count int) error {
	s.buf = segment.AppendCommitFrame(s.buf[:0], segment.Commit{FirstSeq: first, Count: uint32(count), DurableEnd: s.durable})
	if _, err := s.w.Write(s.buf); err != nil {
		return err
	}
	s.end += int64(len(s.buf))
	return nil
}

func (s *rawStore) AppendBatch(evs []Ev) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	first := s.seq + 1
	now := time.Now()
	for i := range evs {
		if err := s.writeEvent(&evs[i], now); err != nil {
			s.err = err
			return err
		}
	}
	if err := s.writeCommit(first, len(evs)); err != nil {
		s.err = err
		return err
	}
	if err := s.w.Flush(); err != nil {
		s.err = err
		return err
	}
	if err := s.f.Sync(); err != nil {
		s.err = err
		return err
	}
	s.durable, s.synced = s.end, s.seq
	return nil
}

// Append writes one event and its commit frame, then waits until an fsync
// covers it: the first waiter to find no fsync running flushes and fsyncs
// for everyone buffered so far (group commit).
func (s *rawStore) Append(e *Ev) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if err := s.writeEvent(e, time.Now()); err != nil {
		s.err = err
		return err
	}
	if err := s.writeCommit(s.seq, 1); err != nil {
		s.err = err
		return err
	}
	mine := s.seq
	for s.synced < mine && s.err == nil {
		if s.syncing {
			s.cond.Wait()
			continue
		}
		s.syncing = true
		if err := s.w.Flush(); err != nil {
			s.err = err
			break
		}
		target, end := s.seq, s.end
		s.mu.Unlock()
		err := s.f.Sync()
		s.mu.Lock()
		s.syncing = false
		if err != nil {
			s.err = err
		} else {
			s.synced, s.durable = target, end
		}
		s.cond.Broadcast()
	}
	return s.err
}

// recoverEnd finds the end of the last committed batch (and its last
// seq); frames after it are a torn or uncommitted tail and are ignored
// (a reopened raw file is only read in this suite).
func (s *rawStore) recoverEnd() error {
	info, err := s.f.Stat()
	if err != nil {
		return err
	}
	r := segment.NewReader(s.f, 0, info.Size())
	for {
		f, err := r.Next()
		if err == io.EOF || errors.Is(err, segment.ErrTruncated) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("raw: %w", err)
		}
		if f.Kind == segment.KindCommit {
			c, err := segment.DecodeCommit(f.Payload)
			if err != nil {
				return fmt.Errorf("raw: frame at %d: %w", f.Offset, err)
			}
			s.seq, s.end = c.FirstSeq+uint64(c.Count)-1, r.Offset()
		}
	}
}

// readFrames calls fn with the envelope of every event in the file, in
// order, until fn returns false. The envelope's Data aliases the reader's
// buffer.
func (s *rawStore) readFrames(fn func(c *codec) (bool, error)) error {
	info, err := s.f.Stat()
	if err != nil {
		return err
	}
	r := segment.NewReader(s.f, 0, info.Size())
	c := newCodec()
	for {
		f, err := r.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("raw: %w", err)
		}
		if f.Kind != segment.KindEvent {
			continue
		}
		if _, err := c.decodeEnv(f.Payload); err != nil {
			return fmt.Errorf("raw: frame at %d: %w", f.Offset, err)
		}
		more, err := fn(c)
		if err != nil || !more {
			return err
		}
	}
}

func (s *rawStore) flushForRead() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Flush()
}

func (s *rawStore) ReadAll(fn func(seq uint64, p *Payload)) (int, error) {
	if err := s.flushForRead(); err != nil {
		return 0, err
	}
	n := 0
	err := s.readFrames(deliver(&n, fn))
	return n, err
}

// StateAt replays from the start and stops at the first event recorded
// after t (recorded times never decrease).
func (s *rawStore) StateAt(t time.Time) (ItemCounts, error) {
	if err := s.flushForRead(); err != nil {
		return nil, err
	}
	fold := ItemCounts{}
	err := s.readFrames(func(c *codec) (bool, error) {
		if c.env.Time.After(t) {
			return false, nil
		}
		var p Payload
		if err := c.decode(c.env.Data, &p); err != nil {
			return false, err
		}
		fold.add(&p)
		return true, nil
	})
	return fold, err
}

// LoadStream has no index: it scans the whole file, decoding envelopes,
// and decodes the payloads of the stream's events.
func (s *rawStore) LoadStream(stream string) (int, error) {
	if err := s.flushForRead(); err != nil {
		return 0, err
	}
	n := 0
	err := s.readFrames(func(c *codec) (bool, error) {
		if c.env.Stream != stream {
			return true, nil
		}
		var p Payload
		if err := c.decode(c.env.Data, &p); err != nil {
			return false, err
		}
		n++
		return true, nil
	})
	return n, err
}

func (s *rawStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.w.Flush()
	if err == nil && s.end != s.durable {
		err = s.f.Sync()
	}
	return errors.Join(err, s.f.Close())
}
