package evlog

import (
	"strings"
	"sync"

	"github.com/evlog/evlog/internal/vfs"
	"github.com/evlog/evlog/segment"
)

// writeGate holds the writer inside its next write to a segment file, so
// a test can queue more work behind a write in progress. A test arms it,
// starts an append, receives from Holding once the writer is held, queues
// the rest and then releases it. Use it from a vfs.Faulty hook: Hold
// returns at once for anything but a segment write, and for a segment
// write while the gate is not armed. It holds segment writes only: the
// writer also writes a checkpoint (NAME.ckpt.tmp) after acknowledging an
// append, which the gate must not catch instead.
type writeGate struct {
	mu   sync.Mutex
	next chan struct{} // when set, the next segment write waits for it to close
	// Holding receives once per held write, before it waits.
	Holding chan struct{}
}

func newWriteGate() *writeGate {
	return &writeGate{Holding: make(chan struct{}, 1)}
}

// Arm makes the next segment write wait until the returned release is
// called (once).
func (g *writeGate) Arm() (release func()) {
	ch := make(chan struct{})
	g.mu.Lock()
	g.next = ch
	g.mu.Unlock()
	return func() { close(ch) }
}

// Disarm drops an armed gate that no write has taken yet.
func (g *writeGate) Disarm() {
	g.mu.Lock()
	g.next = nil
	g.mu.Unlock()
}

// Hold is the Faulty hook's part: if op is a write to a segment and the
// gate is armed, it disarms the gate, signals Holding and waits for the
// release.
func (g *writeGate) Hold(op vfs.Op) {
	if !isSegmentWrite(op) {
		return
	}
	g.mu.Lock()
	ch := g.next
	g.next = nil
	g.mu.Unlock()
	if ch != nil {
		g.Holding <- struct{}{}
		<-ch
	}
}

// isSegmentWrite reports whether op writes a segment file (sealed name or
// the temporary one a new segment is created under).
func isSegmentWrite(op vfs.Op) bool {
	return op.Kind == vfs.OpWrite && strings.HasSuffix(strings.TrimSuffix(op.Name, segment.TempExt), segment.Ext)
}
