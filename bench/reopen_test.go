package main

import (
	"encoding/binary"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// BenchmarkReopenPebble: pebble.Open and Close of a store holding ~64 MiB
// written in batches of 1,000 (~110-byte values), after a clean Close: the
// reference for evlog's BenchmarkOpenNewest (issue 17, item 1).
func BenchmarkReopenPebble(b *testing.B) {
	dir := b.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		b.Fatal(err)
	}
	val := make([]byte, 110)
	var key [8]byte
	for i := 0; i < 600_000; {
		batch := db.NewBatch()
		for range 1000 {
			binary.BigEndian.PutUint64(key[:], uint64(i))
			if err := batch.Set(key[:], val, nil); err != nil {
				b.Fatal(err)
			}
			i++
		}
		if err := batch.Commit(pebble.NoSync); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
		if err != nil {
			b.Fatal(err)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
