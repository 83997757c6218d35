package segment

import (
	"sync/atomic"

	"github.com/evlog/evlog/internal/testhook"
)

// footerFrameLimit is the largest payload readers accept for the frames
// that grow with the segment (footer frames and the zmap, which they read
// by reference): MaxFramePayload, except in tests, which lower it
// (through testhook.SetFrameLimit) to reach the bound with small inputs.
var footerFrameLimit atomic.Int64

func init() {
	footerFrameLimit.Store(MaxFramePayload)
	testhook.SetFrameLimit = func(n int64) (restore func()) {
		old := footerFrameLimit.Swap(n)
		return func() { footerFrameLimit.Store(old) }
	}
}

// frameLimit returns the payload bound of a frame of kind read by
// reference: events and zblocks (whose size does not grow with the
// segment's) are bounded by MaxFramePayload, the others by
// footerFrameLimit.
func frameLimit(kind Kind) int64 {
	if kind == KindEvent || kind == KindZBlock {
		return MaxFramePayload
	}
	return footerFrameLimit.Load()
}
