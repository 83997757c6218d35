package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Contestant is one engine under test. Each lives in its own file and adds
// itself to the registry from an init function, so that a peer whose module
// cannot be built is removed by deleting one file (and recorded in
// didNotRun, see didnotrun.go).
type Contestant struct {
	Name string
	// Order sorts the contestants in the output (raw first).
	Order int
	// Durability says what "fsync before ack" means for this engine.
	Durability string
	// Open opens (creating if needed) a store in dir. writers is the number
	// of goroutines that will call Append concurrently (1 unless the
	// workload is single64); an engine may pick its group-commit API on it.
	Open func(dir string, writers int) (Store, error)
	// DiskBytes reports the bytes the closed store in dir occupies
	// (nil: every regular file under dir).
	DiskBytes func(dir string) (int64, error)
	// Compact, if set, compacts the closed store in dir and reports its
	// bytes afterwards. It may return errCompactUnavailable.
	Compact func(dir string) (int64, error)
	// Workloads, if set, lists the only workloads the contestant runs; the
	// others show n/a with NAReason.
	Workloads []string
	NAReason  string
	// Background marks an engine that does I/O in goroutines of its own
	// (pebble's flushes and compactions, a NATS server's): in workloads 7
	// and 8 it does not take turns with the others (its background work
	// would land in their turns: raw appended 25-35% slower beside
	// pebble) but runs alone after them.
	Background bool
	// NoReopen, if set, is why workload "reopen" does not apply.
	NoReopen string
	// CtlState, if set, runs workload "ctlstate" (evlogctl state --at end
	// to end); the others show n/a.
	CtlState func(e *ctlEnv) (with, without float64, err error)
}

// runs reports whether the contestant takes part in workload id (if not,
// the reason).
func (c *Contestant) runs(id string) (string, bool) {
	if c.Workloads == nil || slices.Contains(c.Workloads, id) {
		return "", true
	}
	return c.NAReason, false
}

// readPreparer is implemented by stores with untimed setup to do when the
// suite reopens a written store for the read workloads (evlog: take the
// fold's snapshots).
type readPreparer interface{ PrepareReads() error }

// Store is an open contestant. Every method but Append is called from one
// goroutine at a time; Append must be safe for concurrent use.
type Store interface {
	// AppendBatch durably appends evs as one batch (one transaction, one
	// fsync): when it returns nil, every event is on stable storage.
	AppendBatch(evs []Ev) error
	// Append durably appends one event (fsync before it returns).
	Append(e *Ev) error
	// ReadAll reads every event in log order, decoding each payload into
	// a Payload, and calls fn for each. It returns the number of events.
	ReadAll(fn func(seq uint64, p *Payload)) (int, error)
	// StateAt folds every event recorded at or before t.
	StateAt(t time.Time) (ItemCounts, error)
	// LoadStream reads and decodes every event of one stream, in version
	// order, and returns how many there were.
	LoadStream(stream string) (int, error)
	Close() error
}

// naError marks a workload a contestant cannot do; the table shows "n/a"
// with the reason.
type naError struct{ reason string }

func (e *naError) Error() string { return "n/a: " + e.reason }

func notApplicable(reason string) error { return &naError{reason} }

func isNA(err error) (string, bool) {
	if na, ok := errors.AsType[*naError](err); ok {
		return na.reason, true
	}
	return "", false
}

// errCompactUnavailable is what a Compact hook returns until compaction
// exists; the report says "compact: not available yet".
var errCompactUnavailable = errors.New("compact: not available yet")

var registry []*Contestant

func register(c *Contestant) { registry = append(registry, c) }

// dirBytes sums the sizes of the regular files under dir whose names end
// in one of exts (none: every file).
func dirBytes(dir string, exts ...string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if len(exts) > 0 {
			ok := false
			for _, x := range exts {
				ok = ok || strings.HasSuffix(d.Name(), x)
			}
			if !ok {
				return nil
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		total += info.Size()
		return nil
	})
	return total, err
}

// syncDir fsyncs a directory, making the entries created in it durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	return errors.Join(err, f.Close())
}

func mkdir(dir string) error { return os.MkdirAll(dir, 0o755) }
