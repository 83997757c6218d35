package main

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite" (pure Go)
)

// modernc.org/sqlite (SQLite translated to Go), WAL journal,
// synchronous=FULL. Table events(seq INTEGER PRIMARY KEY, stream TEXT,
// version INT, type TEXT, time INT, data BLOB) with an index on (stream,
// version); data is the msgpack payload. One transaction per batch, one
// autocommit INSERT per single append. One connection (SQLite has one
// writer at a time; a pool would only add SQLITE_BUSY retries).
func init() {
	register(&Contestant{
		Name:       "sqlite",
		Order:      5,
		Durability: "journal_mode=WAL, synchronous=FULL: every COMMIT fsyncs the WAL file before it returns; one writer connection, so no group commit.",
		Open:       openSQLite,
	})
}

const sqliteSchema = `
CREATE TABLE IF NOT EXISTS events (
	seq     INTEGER PRIMARY KEY,
	stream  TEXT NOT NULL,
	version INT NOT NULL,
	type    TEXT NOT NULL,
	time    INT NOT NULL,
	data    BLOB
);
CREATE INDEX IF NOT EXISTS events_stream_version ON events(stream, version);`

const sqliteInsert = `INSERT INTO events(stream, version, type, time, data) VALUES (?, ?, ?, ?, ?)`

type sqliteStore struct {
	db  *sql.DB
	ins *sql.Stmt
	c   *codec
}

func openSQLite(dir string, _ int) (Store, error) {
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
	s := &sqliteStore{db: db, c: newCodec()}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *sqliteStore) init() error {
	var mode string
	if err := s.db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		return err
	}
	var syncMode int
	if err := s.db.QueryRow(`PRAGMA synchronous`).Scan(&syncMode); err != nil {
		return err
	}
	if mode != "wal" || syncMode != 2 {
		return fmt.Errorf("sqlite: journal_mode=%s synchronous=%d, want wal and 2 (FULL)", mode, syncMode)
	}
	if _, err := s.db.Exec(sqliteSchema); err != nil {
		return err
	}
	var err error
	s.ins, err = s.db.Prepare(sqliteInsert)
	return err
}

func (s *sqliteStore) AppendBatch(evs []Ev) error {
	tx, err := s.db.Begin()
	if err != nil {
		return err
	}
	st := tx.Stmt(s.ins)
	now := time.Now()
	for i := range evs {
		e := &evs[i]
		data, err := s.c.encode(&e.Data)
		if err != nil {
			tx.Rollback()
			return err
		}
		t := e.Time
		if t.IsZero() {
			t = now
		}
		if _, err := st.Exec(e.Stream, int64(e.Version), EventType, t.UnixNano(), data); err != nil {
			tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

func (s *sqliteStore) Append(e *Ev) error {
	c := codecs.Get().(*codec) // concurrent callers
	defer codecs.Put(c)
	data, err := c.encode(&e.Data)
	if err != nil {
		return err
	}
	_, err = s.ins.Exec(e.Stream, int64(e.Version), EventType, time.Now().UnixNano(), data)
	return err
}

// query runs a query returning (seq, data) rows and decodes each payload.
func (s *sqliteStore) query(fn func(seq uint64, p *Payload), q string, args ...any) (n int, err error) {
	rows, err := s.db.Query(q, args...)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, rows.Close()) }()
	var (
		seq           int64
		stream, typ   string
		version, tnan int64
		data          sql.RawBytes
	)
	for rows.Next() {
		if err := rows.Scan(&seq, &stream, &version, &typ, &tnan, &data); err != nil {
			return n, err
		}
		var p Payload
		if err := s.c.decode(data, &p); err != nil {
			return n, fmt.Errorf("sqlite: seq %d: %w", seq, err)
		}
		n++
		fn(uint64(seq), &p)
	}
	return n, rows.Err()
}

func (s *sqliteStore) ReadAll(fn func(seq uint64, p *Payload)) (int, error) {
	return s.query(fn, `SELECT seq, stream, version, type, time, data FROM events ORDER BY seq`)
}

// StateAt: WHERE time <= ? ORDER BY seq (no index on time: a scan of the
// table in rowid order, filtering every row).
func (s *sqliteStore) StateAt(t time.Time) (ItemCounts, error) {
	fold := ItemCounts{}
	_, err := s.query(func(_ uint64, p *Payload) { fold.add(p) },
		`SELECT seq, stream, version, type, time, data FROM events WHERE time <= ? ORDER BY seq`, t.UnixNano())
	return fold, err
}

func (s *sqliteStore) LoadStream(stream string) (int, error) {
	return s.query(func(uint64, *Payload) {},
		`SELECT seq, stream, version, type, time, data FROM events WHERE stream = ? ORDER BY version`, stream)
}

func (s *sqliteStore) Close() error {
	return errors.Join(s.ins.Close(), s.db.Close())
}
