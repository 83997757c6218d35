package segment

import (
	"errors"
	"testing"
)

// TestMaterializeBoundsStreamsHint: a checkpoint's header declares its
// count of streams, bounded only by its count of events (up to 2^32-1);
// Materialize must not size a table by it before the stream blocks that
// back it are read. A checkpoint claiming 4M streams is found damaged by
// reading it (and the index rescued by a scan of the segment), without
// allocating for the claim.
func TestMaterializeBoundsStreamsHint(t *testing.T) {
	fx := newCkptFixture(t)
	s, c, err := fx.open(t, fx.ckpt)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c.Streams = 4 << 20 // as a hostile header declares (the checkpoint's tag is keyed by the segment's header, which the file's holder reads)
	checkAlloc(t, 16<<20, func() {
		if _, err := NewIndexFrom(c).Materialize(); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Errorf("Materialize of a checkpoint claiming %d streams: %v, want nil (rescued) or ErrCorrupt", c.Streams, err)
		}
	})
}
