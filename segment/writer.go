package segment

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// SegmentWriter writes a whole sealed segment sequentially — header,
// record frames copied from other segments, footer, trailer — for
// compaction. With compression the records go into zblocks (see
// compressed.go). It does not sync or close w.
type SegmentWriter struct {
	w        io.Writer
	hb       [HeaderSize]byte
	compress bool
	started  bool
	phys     int64 // bytes written to w
	idx      *Index
	pend     []byte // compressed: record bytes not yet in a block
	zmap     []byte // compressed: the zmap entries so far
	zblocks  uint32
	enc      *zstd.Encoder
	out      []byte
	err      error
}

// NewSegmentWriter returns a writer of a segment with header h.
func NewSegmentWriter(w io.Writer, h Header, compress bool) *SegmentWriter {
	if compress {
		h.Flags |= FlagCompressed
	}
	return &SegmentWriter{w: w, hb: h.Encode(), compress: compress, idx: NewIndex(h.BaseSeq)}
}

func (sw *SegmentWriter) write(p []byte) {
	if sw.err != nil {
		return
	}
	n, err := sw.w.Write(p)
	sw.phys += int64(n)
	sw.err = err
}

// AppendRecords copies the record frames read from r (a whole number of
// committed batches) and indexes them with infos, whose offsets are
// relative to the source segment (records starting at HeaderSize). The
// next event must have seq BaseSeq+events so far.
func (sw *SegmentWriter) AppendRecords(r io.Reader, infos []EventInfo, buf []byte) error {
	if !sw.started {
		sw.started = true
		sw.write(sw.hb[:])
	}
	if len(infos) > 0 && infos[0].Seq != sw.idx.LastSeq+1 {
		return fmt.Errorf("evlog/segment: records start at seq %d, want %d", infos[0].Seq, sw.idx.LastSeq+1)
	}
	delta := sw.idx.End - HeaderSize
	for _, e := range infos {
		e.Off += delta
		sw.idx.Add(e)
	}
	for {
		n, err := r.Read(buf)
		if n > 0 {
			sw.idx.End += int64(n)
			if sw.compress {
				sw.pend = append(sw.pend, buf[:n]...)
				for len(sw.pend) >= ZBlockSize {
					sw.block(sw.pend[:ZBlockSize])
					sw.pend = append(sw.pend[:0], sw.pend[ZBlockSize:]...)
				}
			} else {
				sw.write(buf[:n])
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	return sw.err
}

// block writes one zblock frame.
func (sw *SegmentWriter) block(p []byte) {
	if sw.enc == nil {
		sw.enc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(MaxZBlock))
	}
	start := sw.phys
	sw.out = AppendFrame(sw.out[:0], KindZBlock, sw.enc.EncodeAll(p, nil))
	sw.write(sw.out)
	sw.zmap = le.AppendUint64(sw.zmap, uint64(start))
	sw.zmap = le.AppendUint32(sw.zmap, uint32(len(sw.out)))
	sw.zmap = le.AppendUint32(sw.zmap, uint32(len(p)))
	sw.zblocks++
}

// Seal writes the footer and trailer.
func (sw *SegmentWriter) Seal() error {
	if !sw.started {
		sw.started = true
		sw.write(sw.hb[:])
	}
	recordsEnd := sw.phys
	if sw.compress {
		if len(sw.pend) > 0 {
			sw.block(sw.pend)
			sw.pend = sw.pend[:0]
		}
		recordsEnd = sw.phys
		p := le.AppendUint32(nil, sw.zblocks)
		sw.write(AppendFrame(nil, KindZMap, append(p, sw.zmap...)))
		if sw.enc != nil {
			sw.enc.Close()
		}
	}
	footer, _ := sw.idx.AppendFooterAt(nil, sw.hb, recordsEnd, sw.phys)
	sw.write(footer)
	return sw.err
}
