package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/hallgren/eventsourcing/core"
	essql "github.com/hallgren/eventsourcing/eventstore/sql"
)

// hallgren/eventsourcing, the Go event-sourcing library: its SQL event
// store (github.com/hallgren/eventsourcing/eventstore/sql v0.7.0, the
// core.EventStore interface of .../core v0.5.2) on the same sqlite driver
// as the sqlite contestant (modernc.org/sqlite, WAL, synchronous=FULL).
// The store's own schema and SQL: table events(seq AUTOINCREMENT, id,
// version, reason, type, timestamp as RFC 3339 text, data, metadata,
// UNIQUE(id, type, version)). Save takes the events of one aggregate and
// checks its current version (optimistic concurrency) in the same
// transaction; NewSQLiteSingelWriter serialises writers with a mutex. Its
// read API is Get (one aggregate after a version) and All (every event
// from a global version), so it takes part in the workloads whose batches
// are one aggregate's: 2a/2b (one event per Save), 7 and 9.
func init() {
	register(&Contestant{
		Name:       "hallgren/es-sql",
		Order:      6,
		Durability: "hallgren/eventsourcing eventstore/sql (SQLite store) on modernc.org/sqlite, journal_mode=WAL, synchronous=FULL: each Save is one transaction whose COMMIT fsyncs the WAL; NewSQLiteSingelWriter (one writer at a time), so no group commit.",
		Open:       openHallgren,
		Workloads:  []string{WSingle1, WSingle64, WBatch1, WReopen},
		NAReason:   "Save takes one aggregate's events per transaction, and these batches span many streams (one Save per stream would not be one transaction per batch)",
	})
}

const hallgrenAggregateType = "bench"

type hallgrenStore struct {
	db *sql.DB
	es *essql.SQLite
	c  *codec
}

func openHallgren(dir string, _ int) (Store, error) {
	if err := mkdir(dir); err != nil {
		return nil, err
	}
	dsn := "file:" + filepath.Join(dir, "events.db") +
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	var syncMode int
	if err := db.QueryRow(`PRAGMA synchronous`).Scan(&syncMode); err != nil || syncMode != 2 {
		return nil, errors.Join(fmt.Errorf("hallgren: synchronous=%d (%v), want 2 (FULL)", syncMode, err), db.Close())
	}
	es, err := essql.NewSQLiteSingelWriter(db)
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	return &hallgrenStore{db: db, es: es, c: newCodec()}, nil
}

// save converts evs (all of one stream) to core.Events and saves them.
func (s *hallgrenStore) save(evs []Ev, c *codec) error {
	out := make([]core.Event, len(evs))
	now := time.Now()
	for i := range evs {
		e := &evs[i]
		data, err := c.encode(&e.Data)
		if err != nil {
			return err
		}
		t := e.Time
		if t.IsZero() {
			t = now
		}
		out[i] = core.Event{AggregateID: e.Stream, Version: core.Version(e.Version), AggregateType: hallgrenAggregateType,
			Timestamp: t, Reason: EventType, Data: append([]byte(nil), data...)}
	}
	return s.es.Save(out)
}

func (s *hallgrenStore) AppendBatch(evs []Ev) error {
	for i := range evs {
		if evs[i].Stream != evs[0].Stream {
			return notApplicable("Save takes one aggregate's events per transaction")
		}
	}
	return s.save(evs, s.c)
}

func (s *hallgrenStore) Append(e *Ev) error {
	c := codecs.Get().(*codec)
	defer codecs.Put(c)
	return s.save([]Ev{*e}, c)
}

// ReadAll reads every event with All(0) (global order) and decodes it.
func (s *hallgrenStore) ReadAll(fn func(seq uint64, p *Payload)) (n int, err error) {
	it, err := s.es.All(0)()
	if err != nil {
		return 0, err
	}
	defer it.Close()
	for it.Next() {
		ev, err := it.Value()
		if err != nil {
			return n, err
		}
		var p Payload
		if err := s.c.decode(ev.Data, &p); err != nil {
			return n, fmt.Errorf("hallgren: global version %d: %w", ev.GlobalVersion, err)
		}
		n++
		fn(uint64(ev.GlobalVersion), &p)
	}
	return n, nil
}

func (s *hallgrenStore) StateAt(time.Time) (ItemCounts, error) {
	return nil, notApplicable("no time index; not run")
}

// LoadStream loads one aggregate with Get (after version 0).
func (s *hallgrenStore) LoadStream(stream string) (n int, err error) {
	it, err := s.es.Get(context.Background(), stream, hallgrenAggregateType, 0)
	if err != nil {
		return 0, err
	}
	defer it.Close()
	for it.Next() {
		ev, err := it.Value()
		if err != nil {
			return n, err
		}
		var p Payload
		if err := s.c.decode(ev.Data, &p); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (s *hallgrenStore) Close() error { return s.db.Close() }
