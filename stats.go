package evlog

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a log's size and of its writer's activity since
// Open.
type Stats struct {
	Events   uint64 // events in the log (= last seq)
	Streams  uint64 // streams with at least one event
	Segments int    // segment files
	Bytes    int64  // bytes of segment files (the active one up to its committed end)

	Appends     uint64 // Append/AppendBatch calls that succeeded
	Groups      uint64 // write groups (one write, at most one fsync each)
	GroupEvents uint64 // events written in those groups
	MaxGroup    uint64 // most appends (calls) that shared one group
	// GroupSizes[i] counts groups that carried between 2^i and 2^(i+1)-1
	// append calls: how well group commit batches concurrent appenders.
	GroupSizes [16]uint64

	Fsyncs     uint64        // fsyncs of segment files (appends, Sync, rolls)
	FsyncTotal time.Duration // time spent in them
	FsyncMax   time.Duration
	// FsyncLatency[i] counts fsyncs that took between 2^i and 2^(i+1)
	// microseconds (the last bucket holds everything slower).
	FsyncLatency [24]uint64
}

// FsyncQuantile estimates the q-quantile (0 < q <= 1) of fsync latency
// from the histogram: the upper bound of the bucket holding it.
func (s Stats) FsyncQuantile(q float64) time.Duration {
	if s.Fsyncs == 0 {
		return 0
	}
	target := uint64(q*float64(s.Fsyncs) + 0.5)
	var n uint64
	for i, c := range s.FsyncLatency {
		n += c
		if n >= target && c > 0 {
			return time.Duration(1<<(i+1)) * time.Microsecond
		}
	}
	return s.FsyncMax
}

// counters are the writer's statistics, updated with atomics.
type counters struct {
	appends, groups, groupEvents, maxGroup atomic.Uint64
	groupSizes                             [16]atomic.Uint64
	fsyncs, fsyncNanos, fsyncMax           atomic.Uint64
	fsyncLatency                           [24]atomic.Uint64
}

func (c *counters) fsync(d time.Duration) {
	c.fsyncs.Add(1)
	c.fsyncNanos.Add(uint64(d))
	for {
		m := c.fsyncMax.Load()
		if uint64(d) <= m || c.fsyncMax.CompareAndSwap(m, uint64(d)) {
			break
		}
	}
	us := uint64(d / time.Microsecond)
	i := 0
	if us > 0 {
		i = min(bits.Len64(us)-1, len(c.fsyncLatency)-1)
	}
	c.fsyncLatency[i].Add(1)
}

func (c *counters) group(calls, events int) {
	c.appends.Add(uint64(calls))
	c.groups.Add(1)
	c.groupEvents.Add(uint64(events))
	for {
		m := c.maxGroup.Load()
		if uint64(calls) <= m || c.maxGroup.CompareAndSwap(m, uint64(calls)) {
			break
		}
	}
	c.groupSizes[min(bits.Len(uint(calls))-1, len(c.groupSizes)-1)].Add(1)
}

// Stats returns the log's current statistics.
func (l *Log) Stats() Stats {
	l.mu.RLock()
	v, p := l.v, l.pub
	s := Stats{Events: p.seq, Streams: p.streams, Segments: len(v.segs)}
	for i, seg := range v.segs {
		if i == len(v.segs)-1 && v.active != nil {
			s.Bytes += p.end
		} else {
			s.Bytes += seg.Size
		}
	}
	l.mu.RUnlock()
	c := &l.stats
	s.Appends = c.appends.Load()
	s.Groups = c.groups.Load()
	s.GroupEvents = c.groupEvents.Load()
	s.MaxGroup = c.maxGroup.Load()
	for i := range s.GroupSizes {
		s.GroupSizes[i] = c.groupSizes[i].Load()
	}
	s.Fsyncs = c.fsyncs.Load()
	s.FsyncTotal = time.Duration(c.fsyncNanos.Load())
	s.FsyncMax = time.Duration(c.fsyncMax.Load())
	for i := range s.FsyncLatency {
		s.FsyncLatency[i] = c.fsyncLatency[i].Load()
	}
	return s
}
