package evlog

import (
	"sync/atomic"

	"github.com/evlog/evlog/segment"
)

// segHandle is an open segment shared by the views that list it. Its file is
// closed when the last view holding it is released.
type segHandle struct {
	*segment.Segment
	refs atomic.Int32
}

// segHandle wraps a segment of l's view, giving it l's block cache.
func (l *Log) segHandle(s *segment.Segment) *segHandle {
	s.SetBlockCache(l.blocks)
	return &segHandle{Segment: s}
}

func (h *segHandle) ref() { h.refs.Add(1) }

func (h *segHandle) unref() {
	if h.refs.Add(-1) == 0 {
		h.Segment.Close()
	}
}

// view is an immutable list of the log's segments, in log order. Readers
// take a reference for the duration of an iteration; rolling (and
// compaction) publish a new view, and a segment's file closes once no view
// lists it.
type view struct {
	refs atomic.Int32
	segs []*segHandle
	// active is the index of the last segment when it is the unsealed,
	// growing one; it is mutated only under Log.mu.
	active *segment.Index
}

func newView(segs []*segHandle, active *segment.Index) *view {
	v := &view{segs: segs, active: active}
	for _, s := range segs {
		s.ref()
	}
	v.refs.Store(1)
	return v
}

func (v *view) ref() { v.refs.Add(1) }

func (v *view) unref() {
	if v.refs.Add(-1) == 0 {
		for _, s := range v.segs {
			s.unref()
		}
	}
}

// findSeq returns the index of the segment holding seq (the last whose
// first seq is <= seq).
func (v *view) findSeq(seq uint64) int {
	lo, hi := 0, len(v.segs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if v.segs[m].FirstSeq() <= seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}
