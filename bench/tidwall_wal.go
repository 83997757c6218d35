package main

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/tidwall/wal"
)

// tidwall/wal: an append-only log of opaque entries indexed 1, 2, 3, …
// Each entry is the event's evlog envelope (segment.AppendEnvelope: seq,
// stream, version, type, time, payload); the index is the seq. There is no
// secondary index: a stream load scans the log, a time query binary
// searches the entries' times by index.
func init() {
	register(&Contestant{
		Name:       "tidwall/wal",
		Order:      2,
		Durability: "Options.NoSync=false (the default): every Write/WriteBatch ends with an fsync(2) of the tail segment file (os.File.Sync); no group commit (writes serialize on the log's mutex); it does not fsync the directory when it starts a new segment file, and entries carry no checksum.",
		Open:       openTidwallWAL,
	})
}

type walStore struct {
	l     *wal.Log
	c     *codec
	b     wal.Batch
	mu    sync.Mutex
	last  uint64
	rdDec *codec
}

func openTidwallWAL(dir string, _ int) (Store, error) {
	opts := *wal.DefaultOptions
	opts.NoSync = false
	opts.NoCopy = true // reads decode at once; saves a copy per entry
	l, err := wal.Open(dir, &opts)
	if err != nil {
		return nil, err
	}
	last, err := l.LastIndex()
	if err != nil {
		l.Close()
		return nil, err
	}
	return &walStore{l: l, c: newCodec(), rdDec: newCodec(), last: last}, nil
}

func (s *walStore) AppendBatch(evs []Ev) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for i := range evs {
		v, err := s.c.encodeValue(s.last+uint64(i)+1, &evs[i], now)
		if err != nil {
			return err
		}
		s.b.Write(s.last+uint64(i)+1, v) // copies v
	}
	if err := s.l.WriteBatch(&s.b); err != nil {
		s.b.Clear()
		return err
	}
	s.last += uint64(len(evs))
	return nil
}

func (s *walStore) Append(e *Ev) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, err := s.c.encodeValue(s.last+1, e, time.Now())
	if err != nil {
		return err
	}
	if err := s.l.Write(s.last+1, v); err != nil {
		return err
	}
	s.last++
	return nil
}

func (s *walStore) bounds() (uint64, uint64, error) {
	first, err := s.l.FirstIndex()
	if err != nil {
		return 0, 0, err
	}
	last, err := s.l.LastIndex()
	return first, last, err
}

// each decodes the envelopes of entries [from, to] in order and calls fn
// until it returns false.
func (s *walStore) each(from, to uint64, fn func(c *codec) (bool, error)) error {
	c := s.rdDec
	for i := from; i <= to && i != 0; i++ {
		b, err := s.l.Read(i)
		if err != nil {
			return fmt.Errorf("tidwall/wal: read %d: %w", i, err)
		}
		if _, err := c.decodeEnv(b); err != nil {
			return fmt.Errorf("tidwall/wal: entry %d: %w", i, err)
		}
		more, err := fn(c)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func (s *walStore) ReadAll(fn func(seq uint64, p *Payload)) (int, error) {
	first, last, err := s.bounds()
	if err != nil {
		return 0, err
	}
	n := 0
	err = s.each(first, last, deliver(&n, fn))
	return n, err
}

// StateAt binary searches the entries for the last one recorded at or
// before t (recorded times never decrease), then folds entries 1..that.
func (s *walStore) StateAt(t time.Time) (ItemCounts, error) {
	first, last, err := s.bounds()
	if err != nil {
		return nil, err
	}
	fold := ItemCounts{}
	if last == 0 {
		return fold, nil
	}
	var searchErr error
	k := sort.Search(int(last-first+1), func(i int) bool {
		b, err := s.l.Read(first + uint64(i))
		if err == nil {
			_, err = s.rdDec.decodeEnv(b)
		}
		if err != nil {
			searchErr = errors.Join(searchErr, err)
			return true
		}
		return s.rdDec.env.Time.After(t)
	})
	if searchErr != nil {
		return nil, searchErr
	}
	if k == 0 {
		return fold, nil
	}
	err = s.each(first, first+uint64(k)-1, func(c *codec) (bool, error) {
		var p Payload
		if err := c.decode(c.env.Data, &p); err != nil {
			return false, err
		}
		fold.add(&p)
		return true, nil
	})
	return fold, err
}

// LoadStream has no index to use: it scans every entry.
func (s *walStore) LoadStream(stream string) (int, error) {
	first, last, err := s.bounds()
	if err != nil {
		return 0, err
	}
	n := 0
	err = s.each(first, last, func(c *codec) (bool, error) {
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

func (s *walStore) Close() error { return s.l.Close() }
