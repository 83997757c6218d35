package evlog

import (
	"github.com/evlog/evlog/segment"
	"time"
)

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	File       string
	FirstSeq   uint64
	LastSeq    uint64 // FirstSeq-1 when empty
	FirstTime  time.Time
	LastTime   time.Time
	Events     int
	Bytes      int64 // file size (the active segment: up to its committed end)
	Sealed     bool
	Compressed bool
	Generation uint64
}

// Segments describes the log's segments, oldest first, as visible now.
func (l *Log) Segments() ([]SegmentInfo, error) {
	v, pub, err := l.acquire()
	if err != nil {
		return nil, err
	}
	defer v.unref()
	out := make([]SegmentInfo, 0, len(v.segs))
	for _, s := range v.segs {
		si := SegmentInfo{File: s.Name, FirstSeq: s.FirstSeq(), Sealed: s.Sealed, Generation: s.Header.Generation,
			Compressed: s.Header.Flags&segment.FlagCompressed != 0}
		if s.Sealed {
			t := s.Trailer
			si.LastSeq, si.Events, si.Bytes = t.LastSeq, int(t.Count), s.Size
			if t.Count > 0 {
				si.FirstTime, si.LastTime = time.Unix(0, t.FirstTime).UTC(), time.Unix(0, t.LastTime).UTC()
			}
		} else {
			l.mu.RLock()
			x := v.active
			si.LastSeq, si.Events, si.Bytes = min(x.LastSeq, pub.seq), 0, pub.end
			if pub.seq >= x.BaseSeq {
				si.Events = int(pub.seq - x.BaseSeq + 1)
			}
			if x.Count > 0 {
				si.FirstTime = time.Unix(0, x.FirstTime).UTC()
				si.LastTime = time.Unix(0, pub.time).UTC()
			}
			l.mu.RUnlock()
		}
		out = append(out, si)
	}
	return out, nil
}
