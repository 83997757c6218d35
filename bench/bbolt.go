package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bbolt (B+tree in one mmapped file). Bucket "events": seq (8 bytes big
// endian) → evlog envelope (segment.AppendEnvelope). Bucket "streams":
// stream + 0x00 + version (8 bytes BE) → seq, the index a stream load
// needs. One Update transaction per batch.
func init() {
	register(&Contestant{
		Name:       "bbolt",
		Order:      3,
		Durability: "NoSync=false (default): each read-write transaction's Commit fdatasync(2)s the data pages, then writes and fdatasyncs the meta page, before it returns. Batched and single appends use DB.Update; with 64 writers the suite uses DB.Batch (bbolt's group commit, up to 10 ms / 1000 calls per transaction).",
		Open:       openBolt,
	})
}

var (
	boltEvents  = []byte("events")
	boltStreams = []byte("streams")
)

type boltStore struct {
	db       *bolt.DB
	c        *codec
	rd       *codec
	useBatch bool
}

func openBolt(dir string, writers int) (Store, error) {
	if err := mkdir(dir); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, "events.db"), 0o644, &bolt.Options{Timeout: time.Second, NoSync: false})
	if err != nil {
		return nil, err
	}
	s := &boltStore{db: db, c: newCodec(), rd: newCodec(), useBatch: writers > 1}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(boltEvents); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(boltStreams)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func seqKey(dst []byte, seq uint64) []byte { return binary.BigEndian.AppendUint64(dst, seq) }

func streamKey(dst []byte, stream string, version uint64) []byte {
	dst = append(dst, stream...)
	dst = append(dst, 0)
	return binary.BigEndian.AppendUint64(dst, version)
}

// put stores one event in tx with codec c; the seq comes from the events
// bucket's sequence.
func boltPut(tx *bolt.Tx, c *codec, e *Ev, now time.Time) error {
	ev, st := tx.Bucket(boltEvents), tx.Bucket(boltStreams)
	seq, err := ev.NextSequence()
	if err != nil {
		return err
	}
	v, err := c.encodeValue(seq, e, now)
	if err != nil {
		return err
	}
	// bbolt keeps the key and value slices until the transaction ends.
	k := seqKey(make([]byte, 0, 8), seq)
	if err := ev.Put(k, bytes.Clone(v)); err != nil {
		return err
	}
	return st.Put(streamKey(nil, e.Stream, e.Version), k)
}

func (s *boltStore) AppendBatch(evs []Ev) error {
	now := time.Now()
	return s.db.Update(func(tx *bolt.Tx) error {
		for i := range evs {
			if err := boltPut(tx, s.c, &evs[i], now); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *boltStore) Append(e *Ev) error {
	if s.useBatch {
		// Batch runs fn from several goroutines' calls in one transaction
		// (serially), and may rerun it: each call brings its own codec.
		c := codecs.Get().(*codec)
		defer codecs.Put(c)
		return s.db.Batch(func(tx *bolt.Tx) error { return boltPut(tx, c, e, time.Now()) })
	}
	return s.db.Update(func(tx *bolt.Tx) error { return boltPut(tx, s.c, e, time.Now()) })
}

// events iterates seqs [from, to] (to == 0: the last) in order.
func (s *boltStore) events(tx *bolt.Tx, from, to uint64, fn func(c *codec) (bool, error)) error {
	cur := tx.Bucket(boltEvents).Cursor()
	for k, v := cur.Seek(seqKey(nil, from)); k != nil; k, v = cur.Next() {
		if to != 0 && binary.BigEndian.Uint64(k) > to {
			return nil
		}
		if _, err := s.rd.decodeEnv(v); err != nil {
			return fmt.Errorf("bbolt: event %x: %w", k, err)
		}
		more, err := fn(s.rd)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

func (s *boltStore) ReadAll(fn func(seq uint64, p *Payload)) (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		return s.events(tx, 0, 0, deliver(&n, fn))
	})
	return n, err
}

// StateAt binary searches the events (keyed by seq, recorded times never
// decrease) for the last one recorded at or before t, then folds up to it.
func (s *boltStore) StateAt(t time.Time) (ItemCounts, error) {
	fold := ItemCounts{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(boltEvents)
		last := b.Sequence()
		var serr error
		k := sort.Search(int(last), func(i int) bool {
			v := b.Get(seqKey(nil, uint64(i)+1))
			if v == nil {
				serr = fmt.Errorf("bbolt: event %d missing", i+1)
				return true
			}
			if _, err := s.rd.decodeEnv(v); err != nil {
				serr = err
				return true
			}
			return s.rd.env.Time.After(t)
		})
		if serr != nil || k == 0 {
			return serr
		}
		return s.events(tx, 1, uint64(k), func(c *codec) (bool, error) {
			var p Payload
			if err := c.decode(c.env.Data, &p); err != nil {
				return false, err
			}
			fold.add(&p)
			return true, nil
		})
	})
	return fold, err
}

// LoadStream walks the stream's index keys and fetches each event.
func (s *boltStore) LoadStream(stream string) (int, error) {
	n := 0
	prefix := append([]byte(stream), 0)
	err := s.db.View(func(tx *bolt.Tx) error {
		evb := tx.Bucket(boltEvents)
		cur := tx.Bucket(boltStreams).Cursor()
		for k, seq := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, seq = cur.Next() {
			v := evb.Get(seq)
			if v == nil {
				return fmt.Errorf("bbolt: stream index points at missing event %x", seq)
			}
			var p Payload
			if _, err := s.rd.decodeValue(v, &p); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

func (s *boltStore) Close() error { return s.db.Close() }
