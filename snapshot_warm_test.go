package evlog

import (
	"context"
	"fmt"
	"time"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/snapshot"
)

// warmSnapshotCodecs creates the snapshot package's process-wide zstd
// encoder (the default level) and decoder before any test runs (TestMain),
// outside every synctest bubble: the channels they make belong to the
// bubble that creates them, so if a test in a bubble were the first to
// save or load a snapshot, every later test doing so outside it would
// crash ("receive on synctest channel from outside bubble"), and which
// test is first depends on -run and -shuffle.
func warmSnapshotCodecs() error {
	ctx := context.Background()
	s, err := snapshot.Open(vfs.NewMem(), snapshot.Options{})
	if err != nil {
		return err
	}
	m, err := s.Save(ctx, snapshot.Meta{Name: "warm", LogID: [16]byte{1}, Seq: 1, Time: time.Unix(0, 0), SchemaVersion: 1}, []byte("warm"))
	if err != nil {
		return err
	}
	if b, err := s.Load(ctx, m); err != nil || string(b) != "warm" {
		return fmt.Errorf("loading the warm-up snapshot: %q, %v", b, err)
	}
	return nil
}
