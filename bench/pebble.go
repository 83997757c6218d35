package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// pebble v2 (LSM tree, CockroachDB's storage engine), default options.
// Keys: 'e' + seq (8 bytes BE) → evlog envelope (segment.AppendEnvelope);
// 's' + stream + 0x00 + version (8 bytes BE) → seq, the index a stream load
// needs. One pebble.Batch committed with pebble.Sync per batch.
func init() {
	register(&Contestant{
		Name:       "pebble",
		Background: true,
		Order:      4,
		Durability: "WriteOptions{Sync: true} (pebble.Sync) on every Batch.Commit / Set: the commit returns after the WAL record is fdatasync'd; concurrent commits share WAL syncs (pebble's commit pipeline groups them).",
		Open:       openPebble,
	})
}

type pebbleStore struct {
	db  *pebble.DB
	c   *codec
	rd  *codec
	seq atomic.Uint64 // last assigned seq
}

func openPebble(dir string, _ int) (Store, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		return nil, err
	}
	s := &pebbleStore{db: db, c: newCodec(), rd: newCodec()}
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{'e'}, UpperBound: []byte{'f'}})
	if err != nil {
		db.Close()
		return nil, err
	}
	if it.Last() {
		s.seq.Store(binary.BigEndian.Uint64(it.Key()[1:]))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// quietLogger drops pebble's informational lines ("Found 0 WALs"), which
// would interleave with the progress output; errors still go to stderr.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	pebble.DefaultLogger.Errorf(format, args...)
}
func (quietLogger) Fatalf(format string, args ...any) {
	pebble.DefaultLogger.Fatalf(format, args...)
}

func pebbleEventKey(dst []byte, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, 'e'), seq)
}

func pebbleStreamKey(dst []byte, stream string, version uint64) []byte {
	return streamKey(append(dst, 's'), stream, version)
}

// put adds one event to b (Set copies key and value into the batch).
func (s *pebbleStore) put(b *pebble.Batch, c *codec, seq uint64, e *Ev, now time.Time, kbuf []byte) ([]byte, error) {
	v, err := c.encodeValue(seq, e, now)
	if err != nil {
		return kbuf, err
	}
	kbuf = pebbleEventKey(kbuf[:0], seq)
	if err := b.Set(kbuf, v, nil); err != nil {
		return kbuf, err
	}
	n := len(kbuf)
	kbuf = pebbleStreamKey(kbuf, e.Stream, e.Version)
	return kbuf, b.Set(kbuf[n:], kbuf[1:n], nil)
}

func (s *pebbleStore) AppendBatch(evs []Ev) error {
	b := s.db.NewBatch()
	defer b.Close()
	now := time.Now()
	first := s.seq.Add(uint64(len(evs))) - uint64(len(evs)) + 1
	var kbuf []byte
	var err error
	for i := range evs {
		if kbuf, err = s.put(b, s.c, first+uint64(i), &evs[i], now, kbuf); err != nil {
			return err
		}
	}
	return b.Commit(pebble.Sync)
}

func (s *pebbleStore) Append(e *Ev) error {
	b := s.db.NewBatch()
	defer b.Close()
	c := codecs.Get().(*codec) // concurrent callers
	_, err := s.put(b, c, s.seq.Add(1), e, time.Now(), nil)
	codecs.Put(c)
	if err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// events iterates seqs [from, to] in order.
func (s *pebbleStore) events(from, to uint64, fn func(c *codec) (bool, error)) (err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: pebbleEventKey(nil, from), UpperBound: pebbleEventKey(nil, to+1)})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		if _, err := s.rd.decodeEnv(v); err != nil {
			return fmt.Errorf("pebble: event %x: %w", it.Key(), err)
		}
		more, err := fn(s.rd)
		if err != nil || !more {
			return err
		}
	}
	return it.Error()
}

func (s *pebbleStore) ReadAll(fn func(seq uint64, p *Payload)) (int, error) {
	n := 0
	err := s.events(1, s.seq.Load(), deliver(&n, fn))
	return n, err
}

// StateAt binary searches the events (keyed by seq, recorded times never
// decrease) with point gets for the last one recorded at or before t, then
// folds up to it with an iterator.
func (s *pebbleStore) StateAt(t time.Time) (ItemCounts, error) {
	fold := ItemCounts{}
	last := s.seq.Load()
	var serr error
	k := sort.Search(int(last), func(i int) bool {
		v, closer, err := s.db.Get(pebbleEventKey(nil, uint64(i)+1))
		if err == nil {
			_, err = s.rd.decodeEnv(v)
			after := err == nil && s.rd.env.Time.After(t)
			closer.Close()
			if err == nil {
				return after
			}
		}
		serr = errors.Join(serr, err)
		return true
	})
	if serr != nil || k == 0 {
		return fold, serr
	}
	err := s.events(1, uint64(k), func(c *codec) (bool, error) {
		var p Payload
		if err := c.decode(c.env.Data, &p); err != nil {
			return false, err
		}
		fold.add(&p)
		return true, nil
	})
	return fold, err
}

// LoadStream iterates the stream's index keys and gets each event.
func (s *pebbleStore) LoadStream(stream string) (n int, err error) {
	lo := pebbleStreamKey(nil, stream, 0)
	hi := pebbleStreamKey(nil, stream, 0)
	hi[len(hi)-9]++ // the 0x00 separator: the next prefix
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi[:len(hi)-8]})
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	key := []byte{'e'}
	for ok := it.First(); ok; ok = it.Next() {
		seq, err := it.ValueAndErr()
		if err != nil {
			return n, err
		}
		v, closer, err := s.db.Get(append(key[:1], seq...))
		if err != nil {
			return n, fmt.Errorf("pebble: stream index points at event %x: %w", seq, err)
		}
		var p Payload
		_, err = s.rd.decodeValue(v, &p)
		closer.Close()
		if err != nil {
			return n, err
		}
		n++
	}
	return n, it.Error()
}

func (s *pebbleStore) Close() error { return s.db.Close() }
