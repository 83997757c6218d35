package segment

import (
	"bufio"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// SealedWriter writes a whole sealed segment sequentially — header,
// record frames copied from other segments, footer, trailer — for
// compaction. With compression the records go into zblocks (see
// compressed.go). It does not sync or close w.
type SealedWriter struct {
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
	// zblockSize is the record bytes per zblock: ZBlockSize (tests make
	// golden files with smaller blocks).
	zblockSize int
}

// NewSealedWriter returns a writer of a segment with header h.
func NewSealedWriter(w io.Writer, h Header, compress bool) *SealedWriter {
	if compress {
		h.Flags |= FlagCompressed
	}
	return &SealedWriter{w: w, hb: h.Encode(), compress: compress, idx: NewIndex(h.BaseSeq), zblockSize: ZBlockSize}
}

func (sw *SealedWriter) write(p []byte) {
	if sw.err != nil {
		return
	}
	n, err := sw.w.Write(p)
	sw.phys += int64(n)
	sw.err = err
}

// AppendRecords copies the record frames read from r (a whole number of
// committed batches, checked by the caller with a strict Scan) and indexes
// them with infos, whose offsets are relative to the source segment
// (records starting at HeaderSize). Mark frames are dropped: they record
// fsyncs of the file they were written to, and a sealed segment needs none
// (so compaction's output is the same whatever the marks' random tags).
// The next event must have seq BaseSeq+events so far.
func (sw *SealedWriter) AppendRecords(r io.Reader, infos []EventInfo, buf []byte) error {
	if !sw.started {
		sw.started = true
		sw.write(sw.hb[:])
	}
	if len(infos) > 0 && infos[0].Seq != sw.idx.LastSeq+1 {
		return fmt.Errorf("evlog/segment: records start at seq %d, want %d", infos[0].Seq, sw.idx.LastSeq+1)
	}
	delta := sw.idx.End - HeaderSize
	type cut struct{ off, size int64 } // a dropped mark, at its source offset
	var cuts []cut
	br := bufio.NewReaderSize(r, max(len(buf), 4096))
	src := int64(HeaderSize)
	var hdr [FrameHeaderSize]byte
	for {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err == io.EOF {
				break
			}
			return fmt.Errorf("evlog/segment: reading records at %d: %w", src, err)
		}
		n := int64(le.Uint32(hdr[frameLenOff:]))
		if n > MaxFramePayload {
			return fmt.Errorf("evlog/segment: frame at %d: length %d exceeds the limit", src, n)
		}
		size := FrameHeaderSize + n
		if Kind(hdr[frameKindOff]) == KindMark {
			if _, err := br.Discard(int(n)); err != nil {
				return fmt.Errorf("evlog/segment: reading records at %d: %w", src, err)
			}
			cuts = append(cuts, cut{src, size})
			src += size
			continue
		}
		sw.emit(hdr[:])
		for rest := n; rest > 0; {
			m := min(rest, int64(len(buf)))
			if _, err := io.ReadFull(br, buf[:m]); err != nil {
				return fmt.Errorf("evlog/segment: reading records at %d: %w", src, err)
			}
			sw.emit(buf[:m])
			rest -= m
		}
		src += size
	}
	shift, k := int64(0), 0
	for _, e := range infos {
		for k < len(cuts) && cuts[k].off < e.Off {
			shift += cuts[k].size
			k++
		}
		e.Off += delta - shift
		sw.idx.Add(e)
	}
	return sw.err
}

// emit appends record bytes to the output (compressed: to the pending
// block).
func (sw *SealedWriter) emit(p []byte) {
	sw.idx.End += int64(len(p))
	if !sw.compress {
		sw.write(p)
		return
	}
	sw.pend = append(sw.pend, p...)
	for len(sw.pend) >= sw.zblockSize {
		sw.block(sw.pend[:sw.zblockSize])
		sw.pend = append(sw.pend[:0], sw.pend[sw.zblockSize:]...)
	}
}

// block writes one zblock frame.
func (sw *SealedWriter) block(p []byte) {
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

// Seal writes the footer and trailer. A segment that would pass a bound
// of the format (Extent.Fits: a footer frame or the zmap past the frame
// limit readers accept, more than 2^32-1 events) is never sealed: Seal
// then writes nothing more and returns an error matching ErrTooLarge
// (what was written is not a segment: discard it). The check is on the
// segment's exact extent, so it refuses only what readers would refuse
// (the summary's size is bounded with the longest name).
func (sw *SealedWriter) Seal() error {
	if !sw.started {
		sw.started = true
		sw.write(sw.hb[:])
	}
	if sw.err != nil {
		return sw.err
	}
	if err := sw.idx.extent().Fits(sw.compress); err != nil {
		return err
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
